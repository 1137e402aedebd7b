//! Discovery: aggregated `apidiscovery.k8s.io/v2` on `/api` and `/apis`, and the legacy
//! `APIVersions`, `APIGroupList`, `APIGroup` and `APIResourceList` documents.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::definition::ResourceDefinition;
use crate::error::ApiError;
use crate::registry::Registry;
use crate::request::{Output, Target};
use crate::server::Reply;

/// Verbs every kind supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const AGGREGATED_CT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn v2_resource(def: &ResourceDefinition) -> Value {
    let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
    let mut r = json!({
        "resource": def.plural,
        "responseKind": gvk,
        "scope": if def.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": VERBS,
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    if def.status_subresource {
        r["subresources"] =
            json!([{"subresource": "status", "responseKind": gvk, "verbs": ["get", "patch", "update"]}]);
    }
    r
}

fn v2_group(registry: &Registry, group: &str) -> Value {
    let mut versions: Vec<String> = registry
        .kinds()
        .filter(|k| k.def.group == group)
        .map(|k| k.def.version.clone())
        .collect();
    versions.sort();
    versions.dedup();
    versions.reverse();
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = registry
                .in_group_version(group, v)
                .map(|k| v2_resource(&k.def))
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut meta = json!({"creationTimestamp": null});
    if !group.is_empty() {
        meta["name"] = json!(group);
    }
    json!({"metadata": meta, "versions": versions})
}

/// The served groups in registration order. Like kube-apiserver's group priorities, this order is
/// what kubectl uses to resolve a resource name served by several groups (`kubectl get networks`),
/// so the server registers the user-facing group before the internal ones.
fn groups(registry: &Registry) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for kind in registry.kinds() {
        if !kind.def.group.is_empty() && !groups.contains(&kind.def.group) {
            groups.push(kind.def.group.clone());
        }
    }
    groups
}

fn legacy_resources(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for k in registry.in_group_version(group, version) {
        let d = &k.def;
        let mut r = json!({
            "name": d.plural, "singularName": d.singular, "namespaced": d.namespaced(),
            "kind": d.kind, "verbs": VERBS,
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        if d.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced(),
                "kind": d.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn legacy_group(registry: &Registry, group: &str) -> Value {
    let mut versions: Vec<String> = registry
        .kinds()
        .filter(|k| k.def.group == group)
        .map(|k| k.def.version.clone())
        .collect();
    versions.sort();
    versions.dedup();
    versions.reverse();
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// Serves a discovery target in the negotiated representation.
pub(crate) fn serve(registry: &Registry, target: &Target, output: Output) -> Response {
    let aggregated = output == Output::AggregatedDiscovery;
    let body = match target {
        Target::CoreVersions if aggregated => {
            json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": [v2_group(registry, "")]})
        }
        Target::CoreVersions => json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }),
        Target::Groups if aggregated => {
            let items: Vec<Value> = groups(registry).iter().map(|g| v2_group(registry, g)).collect();
            json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
        }
        Target::Groups => {
            let gs: Vec<Value> = groups(registry)
                .iter()
                .map(|g| legacy_group(registry, g))
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
        }
        Target::Group(g) if groups(registry).contains(g) => {
            let mut v = legacy_group(registry, g);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        }
        Target::CoreResources => legacy_resources(registry, "", "v1"),
        Target::GroupResources(g, v) if registry.in_group_version(g, v).next().is_some() => {
            legacy_resources(registry, g, v)
        }
        _ => return ApiError::path_not_found().into_response(),
    };
    let mut reply = Reply::new(StatusCode::OK, body);
    if aggregated && matches!(target, Target::CoreVersions | Target::Groups) {
        reply.content_type = AGGREGATED_CT;
    }
    reply.into_response(if output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    })
}
