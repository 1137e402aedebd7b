//! Network protection (finalizer) and Network peering (`spec.incomingPeerings`) reconcilers
//! (networking-api §4.5, §4.6) over [`crate::protection`] and [`crate::peering`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ironnet_api::networking::network::NetworkState;
use ironnet_api::networking::{LoadBalancer, NATGateway, Network, NetworkInterface};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::peering::{self, ObjectKey, PeeringClaimRef, PeeringNetworkView, PeeringRef};
use crate::protection::{self, FinalizerAction, NETWORK_FINALIZER, NetworkUser};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

/// How often a deleting Network that is still in use is checked again.
const IN_USE_RECHECK: Duration = Duration::from_secs(1);

fn key_of(n: &Network) -> ObjectKey {
    ObjectKey::new(n.namespace().unwrap_or_default(), n.name_any())
}

/// The peering view of a Network.
pub fn peering_view(n: &Network) -> PeeringNetworkView {
    PeeringNetworkView {
        namespace: n.namespace().unwrap_or_default(),
        name: n.name_any(),
        uid: n.uid().unwrap_or_default(),
        available: n.status.as_ref().and_then(|s| s.state.as_ref()) == Some(&NetworkState::Available),
        deleting: n.metadata.deletion_timestamp.is_some(),
        peerings: n
            .spec
            .peerings
            .iter()
            .map(|p| PeeringRef {
                name: p.name.clone(),
                namespace: p.network_ref.namespace.clone(),
                network: p.network_ref.name.clone(),
            })
            .collect(),
    }
}

fn incoming_of(n: &Network) -> Vec<PeeringClaimRef> {
    n.spec
        .incoming_peerings
        .iter()
        .map(|c| PeeringClaimRef {
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            uid: c.uid.clone(),
        })
        .collect()
}

struct Ctx {
    client: Client,
    networks: Store<Network>,
}

async fn reconcile_protection(net: Arc<Network>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = net
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let api: Api<Network> = Api::namespaced(ctx.client.clone(), &ns);
    let deleting = net.metadata.deletion_timestamp.is_some();
    let has = net.finalizers().iter().any(|f| f == NETWORK_FINALIZER);
    let in_use = if deleting && has {
        network_in_use(&net, &ns, &ctx).await?
    } else {
        false
    };
    let rv = net.resource_version();
    let mut finalizers = net.finalizers().to_vec();
    match protection::finalizer_action(deleting, has, in_use) {
        FinalizerAction::None => return Ok(Action::await_change()),
        FinalizerAction::WaitInUse => return Ok(Action::requeue(IN_USE_RECHECK)),
        FinalizerAction::Add => finalizers.push(NETWORK_FINALIZER.to_owned()),
        FinalizerAction::Remove => finalizers.retain(|f| f != NETWORK_FINALIZER),
    }
    let patch = json!({ "metadata": { "resourceVersion": rv, "finalizers": finalizers } });
    match api
        .patch(&net.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
        Err(e) => Err(e.into()),
    }
}

async fn network_in_use(net: &Network, ns: &str, ctx: &Ctx) -> Result<bool, ReconcileError> {
    let lp = ListParams::default();
    let mut users = Vec::new();
    let reference = |m: &kube::api::ObjectMeta, network: &str| NetworkUser::Reference {
        namespace: ns.to_owned(),
        network: network.to_owned(),
        deleting: m.deletion_timestamp.is_some(),
    };
    for n in Api::<NetworkInterface>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await?
    {
        users.push(reference(&n.metadata, &n.spec.network_ref.name));
    }
    for n in Api::<LoadBalancer>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await?
    {
        users.push(reference(&n.metadata, &n.spec.network_ref.name));
    }
    for n in Api::<NATGateway>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await?
    {
        users.push(reference(&n.metadata, &n.spec.network_ref.name));
    }
    let own_uid = net.uid();
    for peer in ctx.networks.state() {
        if peer.uid() == own_uid {
            continue;
        }
        users.push(NetworkUser::Peer {
            namespace: peer.namespace().unwrap_or_default(),
            incoming: incoming_of(&peer),
            deleting: peer.metadata.deletion_timestamp.is_some(),
        });
    }
    Ok(protection::network_in_use(&key_of(net), &users))
}

async fn reconcile_peering(net: Arc<Network>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if net.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = net
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let own = peering_view(&net);
    // Peers are read fresh: the event that makes a peering one-sided may not have reached our cache yet.
    let mut views: Vec<PeeringNetworkView> = Vec::new();
    for key in peering::affected_by(&own) {
        let api: Api<Network> = Api::namespaced(ctx.client.clone(), &key.namespace);
        if let Some(peer) = api.get_opt(&key.name).await? {
            views.push(peering_view(&peer));
        }
    }
    let desired = peering::incoming_peerings(&own, |k| views.iter().find(|v| &v.key() == k));
    if desired == incoming_of(&net) {
        return Ok(Action::await_change());
    }
    let value = if desired.is_empty() {
        serde_json::Value::Null
    } else {
        json!(
            desired
                .iter()
                .map(|c| json!({"namespace": c.namespace, "name": c.name, "uid": c.uid}))
                .collect::<Vec<_>>()
        )
    };
    let patch = json!({ "metadata": { "resourceVersion": net.resource_version() }, "spec": { "incomingPeerings": value } });
    let api: Api<Network> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .patch(&net.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
        Err(e) => Err(e.into()),
    }
}

fn network_key(ns: &str, name: &str) -> ObjectRef<Network> {
    ObjectRef::new(name).within(ns)
}

/// Runs the Network protection and peering controllers until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let networks = informers.get::<Network>();
    let cfg = ControllerConfig::default().concurrency(concurrency);

    let protection =
        Controller::for_stream(networks.subscribe(), networks.store().reader()).with_config(cfg.clone());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        networks: networks.store().reader(),
    });
    let by_ref = |ns: Option<String>, name: &str| ns.map(|ns| network_key(&ns, name));
    let protection = protection
        .watches_stream(informers.get::<NetworkInterface>().subscribe(), move |n| {
            by_ref(n.namespace(), &n.spec.network_ref.name)
        })
        .watches_stream(informers.get::<LoadBalancer>().subscribe(), move |n| {
            by_ref(n.namespace(), &n.spec.network_ref.name)
        })
        .watches_stream(informers.get::<NATGateway>().subscribe(), move |n| {
            by_ref(n.namespace(), &n.spec.network_ref.name)
        });

    let peering_ctrl =
        Controller::for_stream(networks.subscribe(), networks.store().reader()).with_config(cfg);
    let peering_ctx = Arc::new(Ctx {
        client: client.clone(),
        networks: networks.store().reader(),
    });
    // A change of a Network affects its peering targets and the Networks it currently lists as peers
    // (kube-rs mappers only see the new object, so the claims stand in for the old peerings).
    let peering_ctrl = peering_ctrl.watches_stream(networks.subscribe(), |n| {
        let ns = n.namespace().unwrap_or_default();
        let mut keys = peering::affected_by(&peering_view(&n));
        keys.extend(n.spec.incoming_peerings.iter().map(|c| {
            ObjectKey::new(
                if c.namespace.is_empty() {
                    ns.clone()
                } else {
                    c.namespace.clone()
                },
                &c.name,
            )
        }));
        keys.sort();
        keys.dedup();
        keys.into_iter().map(|k| network_key(&k.namespace, &k.name))
    });

    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let a = protection
        .graceful_shutdown_on(stop(rx.clone()))
        .run(reconcile_protection, ironnet_runtime::error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    let b = peering_ctrl
        .graceful_shutdown_on(stop(rx))
        .run(reconcile_peering, ironnet_runtime::error_policy, peering_ctx)
        .for_each(|_| futures::future::ready(()));
    let trigger = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    futures::join!(a, b, trigger);
}
