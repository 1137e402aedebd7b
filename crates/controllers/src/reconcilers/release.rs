//! Release of stale claims over [`crate::release`] (upstream ironcore's `networkrelease` and
//! `virtualiprelease`, `internal/controllers/networking`): a VirtualIP's `targetRef` whose NetworkInterface
//! is gone, and `spec.incomingPeerings` entries whose Network is gone.
//!
//! A claim holds only while an object with the claimed UID exists (upstream checks the name only).
//! NetworkInterface `machineRef` release needs the `compute.ironcore.dev` Machine kind, which ironnet does not
//! serve; it is not implemented.

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::networking::{Network, NetworkInterface, VirtualIP};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::ephemeral::{EPHEMERAL_MANAGED_BY, EPHEMERAL_MANAGER};
use crate::release::{ClaimRef, Claimer, claim_holds};
use ironnet_runtime::cache::index_key;
use ironnet_runtime::informer::{BY_TARGET_UID, Informers};
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

struct Ctx {
    client: Client,
}

async fn lookup<K>(client: &Client, ns: &str, name: &str) -> Result<Claimer, kube::Error>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(
        match Api::<K>::namespaced(client.clone(), ns).get_opt(name).await? {
            Some(o) => Claimer::Exists {
                uid: o.meta().uid.clone().unwrap_or_default(),
            },
            None => Claimer::Missing,
        },
    )
}

async fn reconcile_vip(vip: Arc<VirtualIP>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let Some(target) = vip.spec.target_ref.as_ref() else {
        return Ok(Action::await_change());
    };
    let ns = vip
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let claim = ClaimRef {
        namespace: ns.clone(),
        name: target.name.clone(),
        uid: target.uid.clone(),
    };
    let found = lookup::<NetworkInterface>(&ctx.client, &ns, &target.name).await?;
    if claim_holds(&claim, &found) {
        return Ok(Action::await_change());
    }
    let patch = json!({"metadata": {"resourceVersion": vip.resource_version()}, "spec": {"targetRef": null}});
    let api = Api::<VirtualIP>::namespaced(ctx.client.clone(), &ns);
    match api
        .patch(&vip.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(e) if is_conflict(&e) => return Ok(Action::requeue(CONFLICT_RETRY)),
        Err(e) => return Err(e.into()),
    }
    // An ephemeral VIP controlled by the vanished interface is garbage. The garbage collector's own delete was
    // refused while the VIP was bound (`virtualip::validate_delete`) and is only retried at its resync, so it
    // is deleted here, as upstream's collector would have done right away.
    let controlled_by_target = vip
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == target.uid);
    let ephemeral =
        vip.annotations().get(EPHEMERAL_MANAGED_BY).map(String::as_str) == Some(EPHEMERAL_MANAGER);
    if controlled_by_target && ephemeral {
        match api.delete(&vip.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

async fn reconcile_network(net: Arc<Network>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if net.spec.incoming_peerings.is_empty() || net.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = net
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let claims: Vec<ClaimRef> = net
        .spec
        .incoming_peerings
        .iter()
        .map(|c| ClaimRef {
            namespace: if c.namespace.is_empty() {
                ns.clone()
            } else {
                c.namespace.clone()
            },
            name: c.name.clone(),
            uid: c.uid.clone(),
        })
        .collect();
    let mut found = Vec::with_capacity(claims.len());
    for c in &claims {
        found.push(lookup::<Network>(&ctx.client, &c.namespace, &c.name).await?);
    }
    let stale: Vec<usize> = claims
        .iter()
        .zip(&found)
        .enumerate()
        .filter(|(_, (c, f))| !claim_holds(c, f))
        .map(|(i, _)| i)
        .collect();
    if stale.is_empty() {
        return Ok(Action::await_change());
    }
    let keep: Vec<_> = net
        .spec
        .incoming_peerings
        .iter()
        .enumerate()
        .filter(|(i, _)| !stale.contains(i))
        .map(|(_, c)| json!({"namespace": c.namespace, "name": c.name, "uid": c.uid}))
        .collect();
    let value = if keep.is_empty() {
        serde_json::Value::Null
    } else {
        json!(keep)
    };
    let patch =
        json!({"metadata": {"resourceVersion": net.resource_version()}, "spec": {"incomingPeerings": value}});
    match Api::<Network>::namespaced(ctx.client.clone(), &ns)
        .patch(&net.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
        Err(e) => Err(e.into()),
    }
}

/// Runs the VirtualIP and Network release controllers until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let cfg = ControllerConfig::default().concurrency(concurrency);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let vip_informer = informers.get::<VirtualIP>();
    let vip_store = vip_informer.store();
    let vip_ctrl =
        Controller::for_stream(vip_informer.subscribe(), vip_store.reader()).with_config(cfg.clone());
    // A NetworkInterface going away releases the VirtualIPs that target it.
    let vips = vip_ctrl
        .watches_stream(informers.get::<NetworkInterface>().subscribe(), move |nic| {
            let key = index_key(
                BY_TARGET_UID,
                nic.namespace().as_deref(),
                &nic.uid().unwrap_or_default(),
            );
            vip_store
                .indexed(&key)
                .iter()
                .map(|v| ObjectRef::from_obj(v.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop(rx.clone()))
        .run(
            ironnet_runtime::metrics::instrument("virtualiprelease", reconcile_vip),
            ironnet_runtime::error_policy,
            Arc::new(Ctx {
                client: client.clone(),
            }),
        )
        .for_each(|_| futures::future::ready(()));
    let networks = informers.get::<Network>();
    let net_store = networks.store();
    let net_ctrl = Controller::for_stream(networks.subscribe(), net_store.reader()).with_config(cfg);
    // A Network going away releases the claims other Networks hold on it.
    let nets = net_ctrl
        .watches_stream(networks.subscribe(), move |gone| {
            let uid = gone.uid().unwrap_or_default();
            if gone.metadata.deletion_timestamp.is_none() {
                return Vec::new();
            }
            net_store
                .state()
                .iter()
                .filter(|n| n.spec.incoming_peerings.iter().any(|c| c.uid == uid))
                .map(|n| ObjectRef::from_obj(n.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop(rx))
        .run(
            ironnet_runtime::metrics::instrument("networkrelease", reconcile_network),
            ironnet_runtime::error_policy,
            Arc::new(Ctx { client }),
        )
        .for_each(|_| futures::future::ready(()));
    let trigger = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    futures::join!(vips, nets, trigger);
}
