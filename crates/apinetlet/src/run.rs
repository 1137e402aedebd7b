//! The apinetlet entry point: optional leader election, the apinet namespace, then every reconciler.

use std::future::Future;
use std::sync::Arc;

use ironnet_api::{apinet, networking};
use ironnet_runtime::leader::{LeaderElectionConfig, LeaderElector, SystemClock};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::origin;
use crate::reconcilers::gc::{self, Orphan};
use crate::reconcilers::{self, Ctx, Stop};

/// Name of the leader-election Lease (upstream's leader-election id).
pub const LEASE_NAME: &str = "fa89daf5.apinetlet.apinet.ironcore.dev";

/// apinetlet settings.
#[derive(Clone, Debug)]
pub struct ApinetletConfig {
    /// The apinet namespace every derived object is created in (`--api-net-namespace`).
    pub apinet_namespace: String,
    /// Maximum concurrent reconciles per controller (0 is turned into 1).
    pub concurrency: u16,
    /// Lease-based leader election on the ironcore API server; `None` runs unconditionally.
    pub leader_election: Option<LeaderElectionConfig>,
    /// `--is-node-affinity-aware`: LoadBalancer instances get node affinity to the destinations' nodes.
    pub node_affinity_aware: bool,
    /// `--disable-network-peering`: ironcore Network `status.peerings` is not written.
    pub network_peering_disabled: bool,
    /// `--watch-filter`: only reconcile ironcore objects labelled `common.ironcore.dev/watch-filter=<value>`.
    pub watch_filter: Option<String>,
}

impl ApinetletConfig {
    /// Defaults (8 concurrent reconciles, no leader election, no watch filter, flags off) for `apinet_namespace`.
    pub fn new(apinet_namespace: impl Into<String>) -> Self {
        ApinetletConfig {
            apinet_namespace: apinet_namespace.into(),
            concurrency: 8,
            leader_election: None,
            node_affinity_aware: false,
            network_peering_disabled: false,
            watch_filter: None,
        }
    }
}

/// Creates the apinet namespace if the server serves namespaces and it does not exist yet.
async fn ensure_namespace(apinet: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(apinet.clone());
    if matches!(api.get_opt(name).await, Ok(Some(_))) {
        return;
    }
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    // AlreadyExists (a concurrent creator) and Forbidden (an apinetlet without namespace rights, where an
    // operator created it) are fine; anything else shows up as failing applies with a clear error.
    if let Err(e) = api.create(&PostParams::default(), &ns).await {
        tracing::debug!(namespace = name, error = %e, "could not create the apinet namespace");
    }
}

/// Runs apinetlet until `shutdown` resolves (or, with leader election, until leadership is lost).
///
/// `ironcore` talks to the API server serving `networking.ironcore.dev`, `apinet` to the one serving
/// `core.apinet.ironcore.dev`; both may be the same server.
pub async fn run(
    config: ApinetletConfig,
    ironcore: kube::Client,
    apinet: kube::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let ctx = Arc::new(Ctx {
        ironcore: ironcore.clone(),
        apinet: apinet.clone(),
        namespace: config.apinet_namespace.clone(),
        node_affinity_aware: config.node_affinity_aware,
        network_peering_disabled: config.network_peering_disabled,
        concurrency: config.concurrency.max(1),
        watch_filter: config.watch_filter.clone(),
        ironcore_informers: ironnet_runtime::informer::Informers::new(ironcore.clone()),
        apinet_informers: ironnet_runtime::informer::Informers::namespaced(
            apinet.clone(),
            &config.apinet_namespace,
        ),
        applied: ironnet_runtime::applied::AppliedBodies::new(crate::meta::FIELD_MANAGER),
        events: ironnet_runtime::events::EventRecorder::new(ironcore.clone(), reconcilers::EVENT_REPORTER),
    });
    let Some(le) = config.leader_election else {
        run_reconcilers(ctx, stop_rx).await;
        return;
    };
    let (lead_tx, mut lead_rx) = watch::channel(false);
    let elector = LeaderElector::new(ironcore, le, Arc::new(SystemClock));
    let election = tokio::spawn(elector.run(lead_tx, stop_rx.clone()));
    if lead_rx.wait_for(|l| *l).await.is_err() || *stop_rx.borrow() {
        let _ = election.await;
        return;
    }
    tracing::info!("apinetlet elected leader; starting reconcilers");
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
    futures::join!(run_reconcilers(ctx, inner_rx), trigger);
    let _ = election.await;
}

/// Runs every reconciler until `stop` fires.
async fn run_reconcilers(ctx: Arc<Ctx>, stop: Stop) {
    ensure_namespace(&ctx.apinet, &ctx.namespace).await;
    let c = || Arc::clone(&ctx);
    let s = || stop.clone();
    futures::join!(
        reconcilers::network::run(c(), s()),
        reconcilers::virtualip::run(c(), s()),
        reconcilers::natgateway::run(c(), s()),
        reconcilers::loadbalancer::run(c(), s()),
        reconcilers::networkpolicy::run(c(), s()),
        reconcilers::networkinterface::run(c(), s()),
        gc::run::<apinet::Network, networking::Network>(c(), origin::NETWORK, Orphan::Delete, s()),
        gc::run::<apinet::IP, networking::VirtualIP>(c(), origin::VIRTUAL_IP, Orphan::Delete, s()),
        gc::run::<apinet::NATGateway, networking::NATGateway>(c(), origin::NAT_GATEWAY, Orphan::Delete, s()),
        gc::run::<apinet::LoadBalancer, networking::LoadBalancer>(
            c(),
            origin::LOAD_BALANCER,
            Orphan::Delete,
            s()
        ),
        gc::run::<apinet::NetworkPolicy, networking::NetworkPolicy>(
            c(),
            origin::NETWORK_POLICY,
            Orphan::Delete,
            s()
        ),
        gc::run::<apinet::NetworkInterface, networking::NetworkInterface>(
            c(),
            origin::NETWORK_INTERFACE,
            Orphan::Release,
            s()
        ),
    );
}
