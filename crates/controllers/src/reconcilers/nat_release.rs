//! NetworkInterface NAT release (upstream ironcore-net's NetworkInterfaceNATRelease controller,
//! `internal/controllers`): `spec.natGateways` entries whose gateway (by UID) is gone
//! are removed.

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet::{NATGateway, NetworkInterface};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::release::{ClaimRef, Claimer, claim_holds};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

struct Ctx {
    client: Client,
}

async fn reconcile(nic: Arc<NetworkInterface>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if nic.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = nic
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let v = serde_json::to_value(nic.as_ref()).unwrap_or(Value::Null);
    let entries: Vec<Value> = v
        .pointer("/spec/natGateways")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return Ok(Action::await_change());
    }
    let gws: Api<NATGateway> = Api::namespaced(ctx.client.clone(), &ns);
    let mut keep = Vec::with_capacity(entries.len());
    for e in &entries {
        let name = e
            .pointer("/claimRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let uid = e
            .pointer("/claimRef/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let found = match gws.get_opt(name).await? {
            Some(g) => Claimer::Exists {
                uid: g.uid().unwrap_or_default(),
            },
            None => Claimer::Missing,
        };
        let claim = ClaimRef {
            namespace: ns.clone(),
            name: name.to_owned(),
            uid: uid.to_owned(),
        };
        if claim_holds(&claim, &found) {
            keep.push(e.clone());
        }
    }
    if keep.len() == entries.len() {
        return Ok(Action::await_change());
    }
    let patch =
        json!({"metadata": {"resourceVersion": nic.resource_version()}, "spec": {"natGateways": keep}});
    match Api::<NetworkInterface>::namespaced(ctx.client.clone(), &ns)
        .patch(&nic.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
        Err(e) => Err(e.into()),
    }
}

/// Runs the NetworkInterface NAT release controller until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let nics = informers.get::<NetworkInterface>();
    let store = nics.store();
    let ctrl = Controller::for_stream(nics.subscribe(), store.reader())
        .with_config(ControllerConfig::default().concurrency(concurrency));
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    // A deleting gateway releases the interfaces it claimed.
    let controller = ctrl
        .watches_stream(informers.get::<NATGateway>().subscribe(), move |gw| {
            let uid = gw.uid().unwrap_or_default();
            if gw.metadata.deletion_timestamp.is_none() {
                return Vec::new();
            }
            store
                .state()
                .iter()
                .filter(|n| {
                    serde_json::to_value(n.as_ref()).is_ok_and(|v| {
                        v.pointer("/spec/natGateways")
                            .and_then(Value::as_array)
                            .is_some_and(|a| {
                                a.iter().any(|e| {
                                    e.pointer("/claimRef/uid").and_then(Value::as_str) == Some(uid.as_str())
                                })
                            })
                    })
                })
                .map(|n| ObjectRef::from_obj(n.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("natrelease", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx { client }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
