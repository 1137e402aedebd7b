//! Ephemeral ipam Prefixes of NetworkInterfaces and LoadBalancers over [`crate::ephemeral::plan_ephemeral`]
//! (upstream ironcore's `loadbalancerephemeralprefix` and `networkinterfaceephemeralprefix`,
//! `internal/controllers/networking`).
//!
//! ipam Prefixes (`ipam.ironcore.dev/v1alpha1`) belong to IronCore's ipam, which ironnet does not serve itself;
//! the controllers start once the API server serves the kind and stay idle until then.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ironnet_api::networking::{LoadBalancer, NetworkInterface};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ephemeral::{
    DesiredObject, EPHEMERAL_MANAGED_BY, EPHEMERAL_MANAGER, ExistingObject, ip_prefix_name, plan_ephemeral,
    prefix_prefix_name,
};
use ironnet_runtime::informer::{Informed, Informers};
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError};

/// The group/version of ipam Prefixes.
pub const IPAM_GROUP_VERSION: &str = "ipam.ironcore.dev/v1alpha1";

/// The ipam Prefix resource.
pub fn prefix_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ipam.ironcore.dev", "v1alpha1", "Prefix"),
        "prefixes",
    )
}

/// The Prefix templates an owner's wire form asks for, as (name, template): `spec.ips[i]` → `<owner>-<i>` and
/// (NetworkInterfaces) `spec.prefixes[i]` → `<owner>-pf-<i>`.
pub fn desired_templates(owner: &Value, with_prefixes: bool) -> Vec<(String, Value)> {
    let name = owner
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let templates = |key: &str| -> Vec<(usize, Value)> {
        owner
            .pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| {
                let t = s.pointer("/ephemeral/prefixTemplate").filter(|t| t.is_object())?;
                Some((i, t.clone()))
            })
            .collect()
    };
    let mut out: Vec<(String, Value)> = templates("ips")
        .into_iter()
        .map(|(i, t)| (ip_prefix_name(name, i), t))
        .collect();
    if with_prefixes {
        out.extend(
            templates("prefixes")
                .into_iter()
                .map(|(i, t)| (prefix_prefix_name(name, i), t)),
        );
    }
    out
}

/// The Prefix body for `template`, named `name` and controlled by `owner_ref`. Unlike upstream, Prefixes for
/// NetworkInterface `spec.prefixes` carry the ephemeral annotation too, so they are deleted when no longer
/// desired instead of lingering until the interface goes.
pub fn prefix_body(name: &str, namespace: &str, template: &Value, owner_ref: Value) -> Value {
    let mut annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    annotations[EPHEMERAL_MANAGED_BY] = json!(EPHEMERAL_MANAGER);
    let mut metadata = json!({"name": name, "namespace": namespace, "annotations": annotations,
                              "ownerReferences": [owner_ref]});
    if let Some(labels) = template.pointer("/metadata/labels").filter(|l| l.is_object()) {
        metadata["labels"] = labels.clone();
    }
    json!({
        "apiVersion": IPAM_GROUP_VERSION,
        "kind": "Prefix",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

fn existing_view(p: &DynamicObject) -> ExistingObject {
    ExistingObject {
        name: p.name_any(),
        controller_uid: p
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone()),
        ephemeral_annotation: p.annotations().get(EPHEMERAL_MANAGED_BY).map(String::as_str)
            == Some(EPHEMERAL_MANAGER),
        target_uid: None,
        deleting: p.metadata.deletion_timestamp.is_some(),
    }
}

struct Ctx {
    client: Client,
    with_prefixes: bool,
}

async fn reconcile<K>(owner: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    if owner.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = owner
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = owner.uid().unwrap_or_default();
    let wire = serde_json::to_value(owner.as_ref()).unwrap_or(Value::Null);
    let desired = desired_templates(&wire, ctx.with_prefixes);
    let want: Vec<DesiredObject> = desired
        .iter()
        .map(|(name, _)| DesiredObject {
            name: name.clone(),
            controlled: true,
        })
        .collect();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &prefix_resource());
    let existing: Vec<ExistingObject> = api
        .list(&ListParams::default())
        .await?
        .iter()
        .map(existing_view)
        .collect();
    let plan = plan_ephemeral(&uid, &want, &existing);
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in &plan.conflicts {
        tracing::info!(owner = %owner.name_any(), prefix = %name, "prefix exists and is not managed by its owner; won't adopt");
    }
    let owner_ref = json!({
        "apiVersion": K::api_version(&()), "kind": K::kind(&()), "name": owner.name_any(), "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    });
    let mut requeue = false;
    for (name, template) in desired.iter().filter(|(n, _)| plan.create.contains(n)) {
        let body = prefix_body(name, &ns, template, owner_ref.clone());
        let obj: DynamicObject = match serde_json::from_value(body) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(prefix = %name, error = %e, "invalid ephemeral prefix template");
                continue;
            }
        };
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            // Created concurrently: the next run sees it as existing.
            Err(kube::Error::Api(s)) if s.code == 409 => requeue = true,
            Err(kube::Error::Api(s)) if s.code == 422 => {
                tracing::warn!(prefix = %name, message = %s.message, "ephemeral prefix rejected");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if requeue {
        return Ok(Action::requeue(CONFLICT_RETRY));
    }
    Ok(Action::await_change())
}

/// The owner names a Prefix name can stem from: `<owner>-<i>` and `<owner>-pf-<i>`.
pub fn candidate_owners(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((base, idx)) = prefix.rsplit_once('-')
        && !idx.is_empty()
        && idx.bytes().all(|b| b.is_ascii_digit())
    {
        out.push(base.to_owned());
        if let Some(b) = base.strip_suffix("-pf") {
            out.push(b.to_owned());
        }
    }
    out
}

async fn run_for<K>(
    informers: Informers,
    concurrency: u16,
    with_prefixes: bool,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) where
    K: Informed + Serialize,
{
    let client = informers.client().clone();
    let owners = informers.get::<K>();
    let wc = watcher::Config::default();
    let ar = prefix_resource();
    // A Prefix event re-reconciles its controller and the owners its name can stem from: that covers owned
    // Prefixes and a foreign Prefix freeing or taking a desired name.
    Controller::for_stream(owners.subscribe(), owners.store().reader())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .watches_with(Api::<DynamicObject>::all_with(client.clone(), &ar), ar, wc, |p| {
            let mut owners = candidate_owners(&p.name_any());
            owners.extend(
                p.owner_references()
                    .iter()
                    .filter(|o| o.controller == Some(true) && o.kind == K::kind(&()))
                    .map(|o| o.name.clone()),
            );
            let ns = p.namespace();
            owners
                .into_iter()
                .filter_map(|o| ns.as_ref().map(|ns| ObjectRef::<K>::new(&o).within(ns)))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument(
                &format!("ephemeralprefix-{}", K::kind(&()).to_lowercase()),
                reconcile::<K>,
            ),
            ironnet_runtime::error_policy,
            Arc::new(Ctx {
                client,
                with_prefixes,
            }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Whether the API server serves ipam Prefixes.
pub async fn prefixes_served(client: &Client) -> bool {
    client
        .list_api_group_resources(IPAM_GROUP_VERSION)
        .await
        .is_ok_and(|l| l.resources.iter().any(|r| r.name == "prefixes"))
}

/// How often to look again for the Prefix kind while it is not served.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Runs the NetworkInterface and LoadBalancer ephemeral prefix controllers until `shutdown` resolves; they
/// start once ipam Prefixes are served.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let trigger = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    let controllers = async {
        let mut stopped = std::pin::pin!(wait(rx.clone()));
        while !prefixes_served(informers.client()).await {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(DISCOVERY_INTERVAL) => {}
            }
        }
        futures::join!(
            run_for::<NetworkInterface>(informers.clone(), concurrency, true, wait(rx.clone())),
            run_for::<LoadBalancer>(informers.clone(), concurrency, false, wait(rx.clone())),
        );
    };
    futures::join!(controllers, trigger);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_named_by_index_and_source() {
        let nic = json!({"metadata": {"name": "nic"}, "spec": {
            "ips": [{"value": "10.0.0.1"}, {"ephemeral": {"prefixTemplate": {"spec": {"ipFamily": "IPv4"}}}}],
            "prefixes": [{"ephemeral": {"prefixTemplate": {"spec": {"prefixLength": 28}}}}],
        }});
        let names: Vec<String> = desired_templates(&nic, true)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["nic-1", "nic-pf-0"]);
        assert_eq!(desired_templates(&nic, false).len(), 1);
    }

    #[test]
    fn bodies_carry_the_annotation_labels_and_owner() {
        let t = json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
                       "spec": {"ipFamily": "IPv4", "prefix": "10.0.0.1/32"}});
        let b = prefix_body("lb-0", "ns", &t, json!({"uid": "u"}));
        assert_eq!(
            b["metadata"]["annotations"],
            json!({"x": "y", EPHEMERAL_MANAGED_BY: EPHEMERAL_MANAGER})
        );
        assert_eq!(b["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(b["spec"], json!({"ipFamily": "IPv4", "prefix": "10.0.0.1/32"}));
        assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "u");
    }

    #[test]
    fn owners_are_derived_from_prefix_names() {
        assert_eq!(candidate_owners("nic-0"), ["nic"]);
        assert_eq!(candidate_owners("nic-pf-12"), ["nic-pf", "nic"]);
        assert!(candidate_owners("nic").is_empty() && candidate_owners("nic-x").is_empty());
    }
}
