//! Network peering reconciler over [`crate::peering`]: `spec.incomingPeerings` lists the Available Networks
//! that peer back (upstream ironcore's `networkpeering` controller, `internal/controllers/networking`).

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::networking::Network;
use ironnet_api::networking::network::NetworkState;
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::peering::{self, ObjectKey, PeeringClaimRef, PeeringNetworkView, PeeringRef};
use ironnet_runtime::events::{EventRecorder, Occurrence, reason};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

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

/// The claims a Network's `spec.incomingPeerings` holds.
pub(crate) fn incoming_of(n: &Network) -> Vec<PeeringClaimRef> {
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
    events: EventRecorder,
}

/// Why each of `network`'s own peerings is not (yet) mutual: `(peering name, message)` for every peering
/// whose target is missing, does not peer back, or is not Available. Nothing while `network` itself is not
/// Available or is being deleted (its peerings are not evaluated then).
pub fn pending_peerings<'a>(
    network: &PeeringNetworkView,
    lookup: impl Fn(&peering::ObjectKey) -> Option<&'a PeeringNetworkView>,
) -> Vec<(String, String)> {
    if network.deleting || !network.available {
        return Vec::new();
    }
    let own = network.key();
    network
        .peerings
        .iter()
        .zip(network.peer_keys())
        .filter_map(|(p, target)| {
            let who = format!("Network {}/{}", target.namespace, target.name);
            let why = match lookup(&target) {
                None => format!("waiting for {who} to exist"),
                Some(peer) if !peer.peer_keys().any(|k| k == own) => {
                    format!("waiting for {who} to declare a peering to this Network")
                }
                Some(peer) if !peer.available => format!("waiting for {who} to become Available"),
                Some(_) => return None,
            };
            Some((p.name.clone(), format!("Peering {}: {why}", p.name)))
        })
        .collect()
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
    for (_, note) in pending_peerings(&own, |k| views.iter().find(|v| &v.key() == k)) {
        ctx.events
            .record(
                net.as_ref(),
                Occurrence::normal(reason::PEERING_PENDING, "Peer", note),
            )
            .await;
    }
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

/// Runs the Network peering controller until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let networks = informers.get::<Network>();
    let cfg = ControllerConfig::default().concurrency(concurrency);
    let peering_ctrl =
        Controller::for_stream(networks.subscribe(), networks.store().reader()).with_config(cfg);
    let peering_ctx = Arc::new(Ctx {
        events: EventRecorder::new(client.clone(), super::EVENT_REPORTER),
        client,
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

    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let controller = peering_ctrl
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("networkpeering", reconcile_peering),
            ironnet_runtime::error_policy,
            peering_ctx,
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}

fn network_key(ns: &str, name: &str) -> ObjectRef<Network> {
    ObjectRef::new(name).within(ns)
}
