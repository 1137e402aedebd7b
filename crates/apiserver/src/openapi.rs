//! OpenAPI v3: the `/openapi/v3` index and one document per group-version, generated from the
//! registered schemas. Every PATCH operation carries `x-kubernetes-group-version-kind` and the
//! `fieldValidation` parameter (kubectl's server-side validation check); strategic merge patch is
//! advertised only for kinds that accept it, so client-side apply uses JSON merge patch.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::definition::ResourceDefinition;
use crate::error::ApiError;
use crate::registry::Registry;

/// The component-schema name kube uses: reversed group, version, kind
/// (`dev.ironnet.test.v1.Widget`; core: `io.k8s.api.core.v1.Namespace`).
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let g = if group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else if group.ends_with(".k8s.io") {
        format!(
            "io.k8s.api.{}",
            group
                .trim_end_matches(".k8s.io")
                .split('.')
                .next()
                .unwrap_or(group)
        )
    } else {
        group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{g}.{version}.{kind}")
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

fn object_meta_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "uid": s("UID is the unique in time and space value for this object. Populated by the system. Read-only."),
            "resourceVersion": s("An opaque value that represents the internal version of this object. Populated by the system. Read-only."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state. Populated by the system. Read-only."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "List of objects depended by this object."},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow."}
        }
    })
}

fn object_schema(def: &ResourceDefinition) -> Value {
    let mut schema = def.schema.clone();
    if !schema.is_object() {
        schema = json!({"type": "object"});
    }
    let props = schema
        .as_object_mut()
        .expect("object")
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(p) = props.as_object_mut() {
        p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        p.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "description": "Standard object's metadata."}));
    }
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": def.group, "version": def.version, "kind": def.kind}]);
    schema
}

fn param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": true}})
}

fn operations(def: &ResourceDefinition, item: bool) -> Value {
    let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
    let name = schema_name(&def.group, &def.version, &def.kind);
    let obj_ref = json!({"$ref": format!("#/components/schemas/{name}")});
    let list_ref = json!({"$ref": format!("#/components/schemas/{name}List")});
    let json_content =
        |r: &Value| json!({"application/json": {"schema": r}, "application/yaml": {"schema": r}});
    let ok = |r: &Value| json!({"200": {"description": "OK", "content": json_content(r)}});
    let write_params = || {
        json!([
            param(
                "dryRun",
                "When present, indicates that modifications should not be persisted."
            ),
            param(
                "fieldManager",
                "fieldManager is a name associated with the actor or entity that is making these changes."
            ),
            param(
                "fieldValidation",
                "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict."
            ),
        ])
    };
    let action = |verb: &str, extra: Value| {
        let mut op = json!({"x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk, "tags": [def.group], "description": format!("{verb} {}", def.kind)});
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                op[k] = v.clone();
            }
        }
        op
    };
    if item {
        let mut patch_content = Map::new();
        for ct in [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ] {
            patch_content.insert(ct.into(), json!({"schema": {"type": "object"}}));
        }
        if def.strategic_merge_patch {
            patch_content.insert(
                "application/strategic-merge-patch+json".into(),
                json!({"schema": {"type": "object"}}),
            );
        }
        let mut patch_params = write_params();
        if let Some(a) = patch_params.as_array_mut() {
            a.push(
                json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}),
            );
        }
        json!({
            "get": action("get", json!({"responses": ok(&obj_ref)})),
            "put": action("put", json!({"parameters": write_params(), "requestBody": {"content": {"*/*": {"schema": obj_ref}}, "required": true}, "responses": ok(&obj_ref)})),
            "patch": action("patch", json!({"parameters": patch_params, "requestBody": {"content": patch_content, "required": true}, "responses": ok(&obj_ref)})),
            "delete": action("delete", json!({"parameters": [param("dryRun", ""), param("propagationPolicy", "")], "responses": ok(&obj_ref)})),
            "parameters": [
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}},
            ],
        })
    } else {
        json!({
            "get": action("list", json!({"parameters": [param("labelSelector", ""), param("fieldSelector", ""), param("limit", ""), param("continue", ""), param("resourceVersion", ""), param("watch", "")], "responses": ok(&list_ref)})),
            "post": action("post", json!({"parameters": write_params(), "requestBody": {"content": {"*/*": {"schema": obj_ref}}, "required": true}, "responses": {"201": {"description": "Created", "content": json_content(&obj_ref)}}})),
            "delete": action("deletecollection", json!({"responses": ok(&list_ref)})),
        })
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI v3 document of one group-version.
pub fn gv_document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<_> = registry.in_group_version(group, version).collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    schemas.insert(LIST_META.into(), json!({"type": "object", "properties": {"resourceVersion": {"type": "string"}, "continue": {"type": "string"}}}));
    for k in kinds {
        let d = &k.def;
        let base = format!("/{}", gv_path(group, version));
        let coll = if d.namespaced() {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        paths.insert(coll.clone(), operations(d, false));
        paths.insert(format!("{coll}/{{name}}"), operations(d, true));
        if d.status_subresource {
            paths.insert(format!("{coll}/{{name}}/status"), operations(d, true));
        }
        let name = schema_name(group, version, &d.kind);
        schemas.insert(name.clone(), object_schema(d));
        schemas.insert(
            format!("{name}List"),
            json!({
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
                    "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{LIST_META}")}]},
                },
                "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": d.list_kind}],
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

fn json_response(v: &Value, cache: bool) -> Response {
    let mut resp = (StatusCode::OK, serde_json::to_vec(v).unwrap_or_default()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if cache {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
    }
    resp
}

/// `/openapi/v3`: the index of group-version documents with content hashes.
pub(crate) fn root(registry: &Registry) -> Response {
    let mut paths = Map::new();
    for (g, v) in registry.group_versions() {
        if let Some(doc) = gv_document(registry, &g, &v) {
            let p = gv_path(&g, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
            );
        }
    }
    json_response(&json!({"paths": paths}), false)
}

/// `/openapi/v3/<api/v1 | apis/g/v>`.
pub(crate) fn document(registry: &Registry, rest: &str) -> Response {
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let (g, v) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return ApiError::path_not_found().into_response(),
    };
    match gv_document(registry, g, v) {
        Some(doc) => json_response(&doc, true),
        None => ApiError::path_not_found().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert_eq!(
            schema_name("test.ironnet.dev", "v1", "Widget"),
            "dev.ironnet.test.v1.Widget"
        );
        assert_eq!(schema_name("", "v1", "Namespace"), "io.k8s.api.core.v1.Namespace");
        assert_eq!(
            schema_name("coordination.k8s.io", "v1", "Lease"),
            "io.k8s.api.coordination.v1.Lease"
        );
    }
}
