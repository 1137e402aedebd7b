//! Network protection reconciler over [`crate::protection`]: the finalizer `networking.ironcore.dev/network`
//! stays while NetworkInterfaces, LoadBalancers, NATGateways or peers use the Network (upstream ironcore's
//! `networkprotection` controller, `internal/controllers/networking`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ironnet_api::networking::{LoadBalancer, NATGateway, Network, NetworkInterface};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::peering::incoming_of;
use crate::peering::ObjectKey;
use crate::protection::{self, FinalizerAction, NETWORK_FINALIZER, NetworkUser};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

/// How often a deleting Network that is still in use is checked again.
const IN_USE_RECHECK: Duration = Duration::from_secs(1);

fn key_of(n: &Network) -> ObjectKey {
    ObjectKey::new(n.namespace().unwrap_or_default(), n.name_any())
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

/// Runs the Network protection controller until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let networks = informers.get::<Network>();
    let cfg = ControllerConfig::default().concurrency(concurrency);
    let protection = Controller::for_stream(networks.subscribe(), networks.store().reader()).with_config(cfg);
    let ctx = Arc::new(Ctx {
        client,
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

    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let controller = protection
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("networkprotection", reconcile_protection),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}

fn network_key(ns: &str, name: &str) -> ObjectRef<Network> {
    ObjectRef::new(name).within(ns)
}
