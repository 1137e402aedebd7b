//! IPAddress and NetworkID garbage collection over [`crate::allocation_gc`] (upstream ironcore-net's
//! IPAddress, `ipaddressgc` and `networkidgc` controllers, `internal/controllers`): an allocation whose
//! claimer (by group/resource/namespace/name **and UID**) is gone is deleted, and a deleting IPAddress loses
//! its protection finalizer once its claimer is gone.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ironnet_api::apinet::{IPAddress, NetworkID};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::allocation_gc::{AllocationAction, allocation_action};
use crate::release::{ClaimRef, Claimer};
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

/// The finalizer the API server puts on every IPAddress.
pub const IPADDRESS_PROTECTION: &str = "apinet.ironcore.dev/ipaddress-protection";
/// How often a deleting allocation whose claimer lives is checked again.
const CLAIMER_RECHECK: Duration = Duration::from_secs(1);

struct Ctx {
    client: Client,
}

/// Looks up the claimer named by a `claimRef` (`{group, resource, namespace?, name}`), always `v1alpha1`.
async fn claimer(client: &Client, claim: &Value) -> Result<Claimer, kube::Error> {
    let field = |k: &str| claim.get(k).and_then(Value::as_str).unwrap_or_default();
    let (group, resource, ns, name) = (
        field("group"),
        field("resource"),
        field("namespace"),
        field("name"),
    );
    if resource.is_empty() || name.is_empty() {
        return Ok(Claimer::Missing);
    }
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1alpha1", ""), resource);
    let api: Api<DynamicObject> = if ns.is_empty() {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), ns, &ar)
    };
    Ok(match api.get_opt(name).await {
        Ok(Some(o)) => Claimer::Exists {
            uid: o.uid().unwrap_or_default(),
        },
        Ok(None) => Claimer::Missing,
        // An unknown group/resource means the claimer can never exist.
        Err(kube::Error::Api(s)) if s.code == 404 => Claimer::Missing,
        Err(e) => return Err(e),
    })
}

async fn reconcile_allocation<K>(obj: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError>
where
    K: Resource<Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    let v = serde_json::to_value(obj.as_ref()).unwrap_or(Value::Null);
    let claim_json = v.pointer("/spec/claimRef").filter(|c| !c.is_null());
    let found = match claim_json {
        Some(c) => claimer(&ctx.client, c).await?,
        None => Claimer::Missing,
    };
    let claim = claim_json.map(|c| ClaimRef {
        namespace: c
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        name: c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        uid: c
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    });
    let deleting = obj.meta().deletion_timestamp.is_some();
    let has_finalizer = obj.finalizers().iter().any(|f| f == IPADDRESS_PROTECTION);
    let api: Api<K> = Api::all(ctx.client.clone());
    let result = match allocation_action(deleting, has_finalizer, claim.as_ref(), &found) {
        AllocationAction::Keep | AllocationAction::None => return Ok(Action::await_change()),
        AllocationAction::WaitForClaimer => return Ok(Action::requeue(CLAIMER_RECHECK)),
        AllocationAction::Delete => api
            .delete(&obj.name_any(), &DeleteParams::default())
            .await
            .map(|_| ()),
        AllocationAction::RemoveFinalizer => {
            let finalizers: Vec<&String> = obj
                .finalizers()
                .iter()
                .filter(|f| *f != IPADDRESS_PROTECTION)
                .collect();
            let patch =
                json!({"metadata": {"resourceVersion": obj.resource_version(), "finalizers": finalizers}});
            api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
        Err(e) => Err(e.into()),
    }
}

/// Runs the IPAddress and NetworkID garbage collectors until `shutdown` resolves.
///
/// Claimers are checked when an allocation changes; a claimer that disappears later is caught by the periodic
/// recheck (every 30 s) of each allocation.
pub async fn run(
    client: Client,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let cfg = ControllerConfig::default().concurrency(concurrency);
    let wc = watcher::Config::default();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let recheck = |r: Result<Action, ReconcileError>| {
        r.map(|a| {
            if a == Action::await_change() {
                Action::requeue(Duration::from_secs(30))
            } else {
                a
            }
        })
    };
    let ips = Controller::new(Api::<IPAddress>::all(client.clone()), wc.clone())
        .with_config(cfg.clone())
        .graceful_shutdown_on(stop(rx.clone()))
        .run(
            ironnet_runtime::metrics::instrument("ipaddress-gc", move |o, c| async move {
                recheck(reconcile_allocation(o, c).await)
            }),
            ironnet_runtime::error_policy,
            Arc::new(Ctx {
                client: client.clone(),
            }),
        )
        .for_each(|_| futures::future::ready(()));
    let ids = Controller::new(Api::<NetworkID>::all(client.clone()), wc)
        .with_config(cfg)
        .graceful_shutdown_on(stop(rx))
        .run(
            ironnet_runtime::metrics::instrument("networkid-gc", move |o, c| async move {
                recheck(reconcile_allocation(o, c).await)
            }),
            ironnet_runtime::error_policy,
            Arc::new(Ctx { client }),
        )
        .for_each(|_| futures::future::ready(()));
    let trigger = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    futures::join!(ips, ids, trigger);
}
