//! The metalnetlet entry point: optional leader election, the shared caches, then every controller.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use ironnet_api::{apinet, metalnet};
use ironnet_runtime::leader::{LeaderElectionConfig, LeaderElector, SystemClock};
use tokio::sync::watch;

use crate::names::{INSTANCE_ORIGIN, NETWORK_INTERFACE_ORIGIN, NETWORK_ORIGIN};
use crate::reconcilers::{self, Caches, Ctx, Stop, gc};

/// The leader-election Lease of the metalnetlet of `partition`, on the metalnet server: upstream's id
/// `bf12dae0.metalnetlet.apinet.ironcore.dev`, prefixed with the partition so that the metalnetlets of several
/// partitions can share one metalnet server (as they do under `ironnet up`).
pub fn lease_name(partition: &str) -> String {
    format!("{partition}.bf12dae0.metalnetlet.apinet.ironcore.dev")
}

/// metalnetlet settings.
#[derive(Clone, Debug)]
pub struct MetalnetletConfig {
    /// The partition served (`--partition`).
    pub partition: String,
    /// The namespace of the metalnet objects (`--metalnet-namespace`, default `default`).
    pub metalnet_namespace: String,
    /// Label selector restricting the metalnet Nodes of the partition (`--metalnet-node-selector`).
    pub metalnet_node_selector: Option<String>,
    /// Labels put on every apinet Node of the partition (`--node-label`).
    pub node_labels: BTreeMap<String, String>,
    /// `--disable-network-peering`: no peerings in metalnet Networks, no apinet Network `status.peerings`.
    pub network_peering_disabled: bool,
    /// Maximum concurrent reconciles per controller (0 is turned into 1).
    pub concurrency: u16,
    /// Lease-based leader election on the metalnet server; `None` runs unconditionally.
    pub leader_election: Option<LeaderElectionConfig>,
}

impl MetalnetletConfig {
    /// Defaults for `partition`: metalnet namespace `default`, every Node, no node labels, peering on,
    /// 8 concurrent reconciles, no leader election.
    pub fn new(partition: impl Into<String>) -> Self {
        MetalnetletConfig {
            partition: partition.into(),
            metalnet_namespace: "default".into(),
            metalnet_node_selector: None,
            node_labels: BTreeMap::new(),
            network_peering_disabled: false,
            concurrency: 8,
            leader_election: None,
        }
    }
}

/// Runs metalnetlet until `shutdown` resolves (or, with leader election, until leadership is lost).
///
/// `apinet` talks to the API server serving `core.apinet.ironcore.dev`, `metalnet` to the one serving core/v1
/// Nodes and `networking.metalnet.ironcore.dev` for this partition; both may be the same server.
pub async fn run(
    config: MetalnetletConfig,
    apinet: kube::Client,
    metalnet: kube::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let Some(le) = config.leader_election.clone() else {
        run_controllers(&config, apinet, metalnet, stop_rx).await;
        return;
    };
    let (lead_tx, mut lead_rx) = watch::channel(false);
    let elector = LeaderElector::new(metalnet.clone(), le, Arc::new(SystemClock));
    let election = tokio::spawn(elector.run(lead_tx, stop_rx.clone()));
    if lead_rx.wait_for(|l| *l).await.is_err() || *stop_rx.borrow() {
        let _ = election.await;
        return;
    }
    tracing::info!(partition = %config.partition, "metalnetlet elected leader; starting controllers");
    // Stop on shutdown or on lost leadership, whichever comes first.
    let (inner_tx, inner_rx) = watch::channel(false);
    let mut outer = stop_rx.clone();
    let trigger = async move {
        tokio::select! {
            _ = lead_rx.wait_for(|l| !*l) => {}
            _ = outer.wait_for(|v| *v) => {}
        }
        let _ = inner_tx.send(true);
    };
    futures::join!(run_controllers(&config, apinet, metalnet, inner_rx), trigger);
    let _ = election.await;
}

/// Starts the caches and runs every controller until `stop` fires.
async fn run_controllers(
    config: &MetalnetletConfig,
    apinet: kube::Client,
    metalnet: kube::Client,
    stop: Stop,
) {
    let caches = Caches::start(
        &apinet,
        &metalnet,
        &config.metalnet_namespace,
        config.metalnet_node_selector.as_deref(),
    );
    let ctx = Arc::new(Ctx {
        apinet,
        metalnet,
        partition: config.partition.clone(),
        metalnet_namespace: config.metalnet_namespace.clone(),
        node_labels: config.node_labels.clone(),
        network_peering_disabled: config.network_peering_disabled,
        metalnet_node_selector: config.metalnet_node_selector.clone(),
        concurrency: config.concurrency.max(1),
        caches,
    });
    let c = || Arc::clone(&ctx);
    let s = || stop.clone();
    let caches = &ctx.caches;
    futures::join!(
        reconcilers::node::run(c(), s()),
        reconcilers::node::run_orphans(c(), s()),
        reconcilers::network::run(c(), s()),
        reconcilers::networkinterface::run(c(), s()),
        reconcilers::instance::run(c(), s()),
        gc::run::<metalnet::Network, apinet::Network>(
            c(),
            caches.metalnet_networks.clone(),
            caches.networks.store(),
            NETWORK_ORIGIN,
            s()
        ),
        gc::run::<metalnet::NetworkInterface, apinet::NetworkInterface>(
            c(),
            caches.metalnet_nics.clone(),
            caches.nics.store(),
            NETWORK_INTERFACE_ORIGIN,
            s()
        ),
        gc::run::<metalnet::LoadBalancer, apinet::Instance>(
            c(),
            caches.metalnet_lbs.clone(),
            caches.instances.store(),
            INSTANCE_ORIGIN,
            s()
        ),
    );
}
