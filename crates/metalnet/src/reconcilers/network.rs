//! The Network reconciler: the external routes (default route, received and peered routes) and neighbour NATs of
//! the Network's VNI in dpservice, metalbond subscriptions, and `status.peerings`.
//!
//! Upstream (`controllers/network_controller.go`) handles Networks the node does not use too (it puts its per-node
//! finalizer on every Network of the cluster); here a Network gets the finalizer only while an interface or load
//! balancer of this node uses it.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::metalnet::{LoadBalancer, Network, NetworkInterface};
use ironnet_runtime::controller::{Action, Controller};
use ironnet_runtime::related::RelatedObjects;
use ironnet_vni::Vni;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{UnboundedReceiverStream, WatchStream};

use super::{Error, api, ensure_finalizer, error_policy, identity, remove_finalizer, stopped, write_status};
use crate::agent::{Agent, network_finalizer};
use crate::dp::{DpRoute, code};
use crate::routes::{desired_neighbor_nats, desired_routes, plan_routes, plan_set};

/// Brings the external routes and neighbour NATs of `vni` to what the received and local routes say.
/// Deletions wait until the received routes have settled (see [`Agent::settled`]).
pub async fn sync_vni(agent: &Agent, vni: Vni) -> Result<(), Error> {
    let peerings = agent.peerings();
    let mut vnis: BTreeSet<Vni> = [vni].into();
    // Networks exporting into this VNI contribute their received routes.
    vnis.extend(
        peerings
            .iter()
            .filter(|p| p.peered_ids.contains(&vni))
            .map(|p| p.vni),
    );
    // This node's own announcements matter only as routes exported into `vni` by a peered Network.
    let local = if vnis.len() > 1 {
        agent.announcer.local_routes()
    } else {
        Vec::new()
    };
    let received = agent.received(vnis);
    let desired = desired_routes(
        vni,
        agent.router(),
        agent.enable_ipv6,
        &received,
        &local,
        &peerings,
    );
    let actual = agent.dp.list_routes(vni).await?;
    let plan = plan_routes(&desired, &actual);
    let settled = agent.is_settled();
    let mut errors = Vec::new();
    for prefix in &plan.delete {
        let replaced = plan.create.iter().any(|r| r.prefix == *prefix);
        if !settled && !replaced {
            continue;
        }
        match agent.dp.delete_route(vni, *prefix).await {
            Err(e) if !matches!(e.code(), Some(code::ROUTE_NOT_FOUND | code::NO_VNI)) => {
                errors.push(e.to_string())
            }
            _ => tracing::debug!(vni = vni.get(), %prefix, "route deleted"),
        }
    }
    for r in &plan.create {
        match agent.dp.create_route(vni, r).await {
            Err(e) if e.code() != Some(code::ROUTE_EXISTS) => errors.push(e.to_string()),
            _ => tracing::debug!(vni = vni.get(), prefix = %r.prefix, nexthop = %r.nexthop, "route created"),
        }
    }

    let want_nats = desired_neighbor_nats(vni, &received);
    let have_nats: BTreeSet<_> = agent
        .dp
        .list_neighbor_nats()
        .await?
        .into_iter()
        .filter(|n| n.vni == Some(vni))
        .collect();
    let (delete, create) = plan_set(&want_nats, &have_nats);
    for n in delete.iter().filter(|_| settled) {
        if let Err(e) = agent.dp.delete_neighbor_nat(n).await
            && e.code() != Some(code::NOT_FOUND)
        {
            errors.push(e.to_string());
        }
    }
    for n in &create {
        if let Err(e) = agent.dp.create_neighbor_nat(n).await
            && e.code() != Some(code::ALREADY_EXISTS)
        {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Steps(errors))
    }
}

/// Deletes the default routes of `vni` (the VNI disappears with its last interface; until then traffic must not
/// leave through a router of a Network that is gone).
async fn delete_default_routes(agent: &Agent, vni: Vni) -> Result<(), Error> {
    let routes: Vec<DpRoute> = match agent.dp.list_routes(vni).await {
        Ok(r) => r,
        Err(e) if e.code() == Some(code::NO_VNI) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for r in routes
        .iter()
        .filter(|r| r.prefix.prefix_len() == 0 && r.nexthop_vni == Some(vni))
    {
        match agent.dp.delete_route(vni, r.prefix).await {
            Err(e) if !matches!(e.code(), Some(code::ROUTE_NOT_FOUND | code::NO_VNI)) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

fn peerings_status(net: &Network, state: &str) -> Value {
    let mut ids: Vec<i32> = net.spec.peered_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    json!({ "peerings": ids.iter().map(|id| json!({"id": id, "state": state})).collect::<Vec<_>>() })
}

async fn reconcile(net: Arc<Network>, agent: Arc<Agent>) -> Result<Action, Error> {
    let (_, namespace) = identity(net.as_ref())?;
    let networks = api::<Network>(&agent, &namespace);
    let finalizer = network_finalizer(&agent.node);
    let vni = net.spec.vni()?;
    let used = agent.is_used(&net);
    if net.metadata.deletion_timestamp.is_some() || !used {
        if net.finalizers().iter().any(|f| f == &finalizer) {
            delete_default_routes(&agent, vni).await?;
            agent.sync_subscriptions().await?;
            remove_finalizer(&networks, &net, &finalizer).await?;
            tracing::info!(network = %net.name_any(), vni = vni.get(), "network released on this node");
        }
        return Ok(Action::await_change());
    }
    if ensure_finalizer(&networks, &net, &finalizer).await? {
        return Ok(Action::await_change());
    }
    let in_use = agent.dp.vni_in_use(vni).await?;
    let synced = if in_use {
        sync_vni(&agent, vni).await
    } else {
        Ok(())
    };
    let subscribed = agent.sync_subscriptions().await.map_err(Error::from);
    let state = match (&synced, &subscribed, in_use) {
        (Err(_), _, _) | (_, Err(_), _) => "Error",
        (_, _, false) => "Pending",
        _ => "Ready",
    };
    let current = net
        .status
        .as_ref()
        .map_or(json!({}), |s| serde_json::to_value(s).unwrap_or_default());
    write_status(&networks, net.as_ref(), current, peerings_status(&net, state)).await?;
    synced?;
    subscribed?;
    Ok(Action::await_change())
}

/// The Network of a namespaced object with a `networkRef`.
fn network_of(namespace: Option<String>, network: &str) -> Option<ObjectRef<Network>> {
    Some(ObjectRef::new(network).within(&namespace?))
}

/// The Networks that take routes from `exporter`: those whose VNI it lists among its peers (see [`sync_vni`]).
/// None while it is being deleted (a deleting Network exports nothing).
fn importers_of(agent: &Agent, exporter: &Network) -> Vec<ObjectRef<Network>> {
    if exporter.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let peers: BTreeSet<Vni> = exporter.spec.peered_vnis().collect();
    agent
        .networks
        .state()
        .iter()
        .filter(|n| n.namespace() == exporter.namespace() && n.name_any() != exporter.name_any())
        .filter(|n| n.spec.vni().is_ok_and(|v| peers.contains(&v)))
        .map(|n| ObjectRef::from_obj(n.as_ref()))
        .collect()
}

/// Runs the Network controller until `stop` fires. `triggers` are reconcile requests from route changes and the
/// interface and load balancer reconcilers; `all` re-reconciles every Network. `exporters` are Network events
/// that may change what a Network exports into its peers (its peered IDs and prefixes, its deletion): the
/// Networks importing from it before and after are reconciled, since a table takes routes from every Network
/// that exports into it and nothing else would bring it up to date.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    agent: Arc<Agent>,
    networks: ironnet_runtime::informer::Subscription<Network>,
    exporters: ironnet_runtime::informer::Subscription<Network>,
    interfaces: ironnet_runtime::informer::Subscription<NetworkInterface>,
    load_balancers: ironnet_runtime::informer::Subscription<LoadBalancer>,
    triggers: mpsc::UnboundedReceiver<ObjectRef<Network>>,
    all: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    let (store, importers) = (Arc::clone(&agent), RelatedObjects::new());
    Controller::for_stream(networks, agent.networks.reader())
        .watches_stream(exporters, move |n: Network| {
            let deleted = store
                .network(&n.namespace().unwrap_or_default(), &n.name_any())
                .is_none();
            importers.update(&n, deleted, importers_of(&store, &n))
        })
        .watches_stream(interfaces, |n: NetworkInterface| {
            network_of(n.namespace(), &n.spec.network_ref.name)
        })
        .watches_stream(load_balancers, |l: LoadBalancer| {
            network_of(l.namespace(), &l.spec.network_ref.name)
        })
        .reconcile_on(UnboundedReceiverStream::new(triggers))
        .reconcile_all_on(WatchStream::from_changes(all).map(|_| ()))
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnet-network", reconcile),
            error_policy,
            agent,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
