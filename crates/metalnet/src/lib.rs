//! metalnet: the per-hypervisor node agent.
//!
//! It watches the `networking.metalnet.ironcore.dev` objects of its node (NetworkInterfaces and LoadBalancers with
//! `spec.nodeName` = the node, and the Networks they use), programs the node's dpservice over gRPC and exchanges
//! routes with the other nodes and the routers through metalbond. See `docs/metalnet.md`.
//!
//! - [`args`]: the command line ([`MetalnetArgs`]); [`run`] starts everything;
//! - [`claims`]: which device (TAP port) each interface occupies, persisted;
//! - [`dp`]: the dpservice client; [`announce`]: what the node announces, per object;
//! - pure decisions: [`interface`] (interface, VIP, NAT), [`firewall`] (rules by content), [`routes`] (received
//!   routes → dpservice routes, neighbour NATs, load balancer targets);
//! - [`orphans`]: what a restarted metalnet removes from dpservice;
//! - [`agent`]: the shared state; [`reconcilers`]: the three controllers; [`supervisor`]: dpservice restarts,
//!   metalbond settling.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod agent;
pub mod announce;
pub mod args;
pub mod claims;
pub mod dp;
pub mod firewall;
pub mod interface;
pub mod orphans;
pub mod reconcilers;
pub mod routes;
pub mod supervisor;

use std::future::Future;
use std::sync::Arc;

use ironnet_api::metalnet::{LoadBalancer, Network, NetworkInterface};
use ironnet_metalbond::{MetalBond, RouteEvent};
use ironnet_runtime::cache::{by_network, hash_of};
use ironnet_runtime::informer::Informer;
use ironnet_vni::Vni;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};

pub use args::{MetalnetArgs, client};

use crate::agent::{Agent, Triggers};
use crate::announce::Announcer;
use crate::claims::ClaimStore;
use crate::dp::Dp;

/// Why metalnet could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The claim directory could not be read or created.
    #[error("interface claims in {dir}: {source}")]
    Claims {
        /// The directory.
        dir: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `--dp-service-address` is not a valid address.
    #[error("invalid --dp-service-address: {0}")]
    DpAddress(String),
    /// The metrics or health endpoint could not be bound.
    #[error(transparent)]
    Telemetry(#[from] ironnet_telemetry::ServeError),
    /// metalbond rejected its configuration or a peer.
    #[error("metalbond: {0}")]
    Metalbond(#[from] ironnet_metalbond::Error),
}

/// Serves the controller and metalbond metrics and readiness (API server reachable, every metalbond server
/// ESTABLISHED) on the `--metrics-bind-address`/`--health-probe-bind-address` flags.
async fn serve_telemetry(args: &MetalnetArgs, client: &kube::Client, mb: &MetalBond) -> Result<(), RunError> {
    let telemetry = ironnet_runtime::health::controller_telemetry(client);
    telemetry.register(|registry| mb.register_metrics(registry));
    let peers = mb.clone();
    telemetry.add_readiness_check("metalbond-peers-established", move || {
        let down: Vec<String> = peers
            .peers()
            .into_iter()
            .filter(|(_, state)| *state != ironnet_metalbond::ConnectionState::Established)
            .map(|(addr, state)| format!("{addr} {state}"))
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!("not ESTABLISHED: {}", down.join(", ")))
        }
    });
    telemetry.serve(&args.telemetry).await?;
    Ok(())
}

/// The keepalive interval metalnet uses with metalbond servers (upstream's `KeepaliveInterval: 3`).
pub const METALBOND_KEEPALIVE: u32 = 3;

fn watched<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs metalnet until `shutdown` resolves, with the metalbond defaults of upstream metalnet.
///
/// `client` talks to the API server serving `networking.metalnet.ironcore.dev`. dpservice (`--dp-service-address`)
/// and the metalbond servers (`--metalbond-peer`) need not be up yet: metalnet waits for dpservice, retrying with
/// backoff, and metalbond sessions are (re)established in the background.
pub async fn run(
    args: MetalnetArgs,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let config = ironnet_metalbond::Config {
        keepalive_interval: METALBOND_KEEPALIVE,
        ..ironnet_metalbond::Config::default()
    };
    run_with(args, client, config, shutdown).await
}

/// [`run`] with an explicit metalbond configuration (tests shorten its timers).
pub async fn run_with(
    args: MetalnetArgs,
    client: kube::Client,
    metalbond: ironnet_metalbond::Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let node = args.node();
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let claims = ClaimStore::open(&args.metalnet_dir, args.devices()).map_err(|source| RunError::Claims {
        dir: args.metalnet_dir.clone(),
        source,
    })?;
    let dp = Dp::lazy(&args.dp_service_uri()).map_err(RunError::DpAddress)?;
    tracing::info!(%node, dpservice = %args.dp_service_address, "metalnet starting; waiting for dpservice");
    let Some(uuid) = supervisor::connect(&dp, stop.clone()).await else {
        return Ok(());
    };
    match dp.get_version(&format!("metalnet-{node}")).await {
        Ok(v) => tracing::info!(version = %v, "dpservice version"),
        Err(e) => tracing::warn!(error = %e, "dpservice GetVersion failed"),
    }

    let metalbond = match args.metalbond_tls().map_err(ironnet_metalbond::Error::from)? {
        Some(tls) => ironnet_metalbond::Config {
            tls: Some(tls),
            ..metalbond
        },
        None => metalbond,
    };
    let mb = MetalBond::new(metalbond)?;
    serve_telemetry(&args, &client, &mb).await?;
    // Route changes (received, or of our own announcements) are mapped to reconciles by one task.
    let (route_tx, mut route_rx) = mpsc::unbounded_channel::<Vni>();
    let on_change = route_tx.clone();
    let announcer = Announcer::new(
        mb.clone(),
        Arc::new(move |vni| {
            let _ = on_change.send(vni);
        }),
    );
    mb.subscribe(args.public_vni)?;
    for peer in &args.metalbond_peers {
        mb.add_peer(peer)?;
    }

    let ns = args.namespace.as_deref();
    let on_node = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let networks = Informer::new(
        |_: &Network| Vec::new(),
        watcher::watcher(watched::<Network>(&client, ns), watcher::Config::default()).default_backoff(),
    );
    let interfaces = Informer::new(
        by_network(|n: &NetworkInterface| n.spec.network_ref.name.as_str()),
        watcher::watcher(watched::<NetworkInterface>(&client, ns), on_node.clone()).default_backoff(),
    );
    let load_balancers = Informer::new(
        by_network(|l: &LoadBalancer| l.spec.network_ref.name.as_str()),
        watcher::watcher(watched::<LoadBalancer>(&client, ns), on_node).default_backoff(),
    );

    let (net_tx, net_rx) = mpsc::unbounded_channel();
    let (lb_tx, lb_rx) = mpsc::unbounded_channel();
    let (all_tx, all_rx) = watch::channel(0u64);
    let (settled_tx, settled_rx) = watch::channel(false);
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "metalnet".into(),
            instance: Some(node.clone()),
        },
    );
    let agent = Arc::new(Agent {
        client,
        node,
        public_vni: args.public_vni,
        enable_ipv6: args.enable_ipv6,
        router_fallback: args.router_address,
        prefer_network: args.prefer_network,
        tap_mode: args.tapdevice_mod || !args.tap_devices.is_empty(),
        dp,
        mb: mb.clone(),
        announcer,
        claims,
        networks: networks.store(),
        interfaces: interfaces.store(),
        load_balancers: load_balancers.store(),
        triggers: Triggers {
            network: net_tx,
            load_balancer: lb_tx,
            all: all_tx.clone(),
        },
        settled: settled_rx,
        subscriptions: tokio::sync::Mutex::new(()),
        dp_suspect: tokio::sync::Notify::new(),
        recorder,
    });

    let mut events = mb.route_events();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let (RouteEvent::Added(r) | RouteEvent::Removed(r)) = ev;
            tracing::debug!(route = %r, added = matches!(ev, RouteEvent::Added(_)), "received route changed");
            if route_tx.send(r.vni).is_err() {
                return;
            }
        }
    });
    let pump = Arc::clone(&agent);
    let mut pump_stop = stop.clone();
    tokio::spawn(async move {
        let mut last_router = None;
        loop {
            tokio::select! {
                _ = pump_stop.wait_for(|v| *v) => return,
                vni = route_rx.recv() => match vni {
                    Some(vni) => pump.route_changed(vni, &mut last_router),
                    None => return,
                },
            }
        }
    });
    let gc = Arc::clone(&agent);
    let mut gc_stop = stop.clone();
    tokio::spawn(async move {
        // Retried until it succeeds once: an orphan left in dpservice holds a device and an underlay address.
        while let Err(e) = orphans::collect(&gc).await {
            tracing::warn!(error = %e, "removing orphans from dpservice failed; retrying");
            tokio::select! {
                _ = gc_stop.wait_for(|v| *v) => return,
                _ = tokio::time::sleep(ironnet_runtime::reconcile::RETRY_AFTER) => {}
            }
        }
    });
    tokio::spawn(supervisor::settle_routes(
        Arc::clone(&agent),
        settled_tx,
        all_tx.clone(),
        stop.clone(),
    ));
    tokio::spawn(supervisor::watch_dpservice(
        Arc::clone(&agent),
        uuid,
        all_tx,
        stop.clone(),
    ));

    futures::join!(
        reconcilers::network::run(
            Arc::clone(&agent),
            networks.subscribe(),
            // What a Network exports into its peers.
            networks.subscribe_filtered(|n: &Network| {
                hash_of(&(
                    &n.spec.peered_ids,
                    serde_json::to_string(&n.spec.peered_prefixes).unwrap_or_default(),
                    n.metadata.deletion_timestamp.is_some(),
                ))
            }),
            // A Network cares whether interfaces and load balancers use it, not about their other changes (their
            // reconcilers request a Network reconcile when they create something in dpservice).
            interfaces.subscribe_filtered(|n: &NetworkInterface| hash_of(&n.spec.network_ref.name)),
            load_balancers.subscribe_filtered(|l: &LoadBalancer| hash_of(&l.spec.network_ref.name)),
            net_rx,
            all_rx.clone(),
            stop.clone(),
        ),
        reconcilers::networkinterface::run(
            Arc::clone(&agent),
            interfaces.subscribe(),
            // Interfaces depend on their Network's VNI only (status and finalizer writes do not concern them).
            networks.subscribe_filtered(|n: &Network| hash_of(&n.spec.id)),
            all_rx.clone(),
            stop.clone(),
        ),
        reconcilers::loadbalancer::run(
            Arc::clone(&agent),
            load_balancers.subscribe(),
            lb_rx,
            all_rx,
            stop
        ),
    );
    mb.shutdown();
    tracing::info!("metalnet stopped");
    Ok(())
}
