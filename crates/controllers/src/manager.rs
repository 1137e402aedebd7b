//! The controller-manager entry point: optional leader election, then every implemented reconciler.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use ironnet_runtime::informer::Informers;
use ironnet_runtime::leader::{LeaderElectionConfig, LeaderElector, SystemClock};

/// Controller-manager settings.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Lease-based leader election; `None` runs the controllers unconditionally (single replica).
    pub leader_election: Option<LeaderElectionConfig>,
    /// Maximum concurrent reconciles per controller (kube-rs defaults to unbounded; 0 is turned into 1).
    pub concurrency: u16,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            leader_election: None,
            concurrency: 8,
        }
    }
}

/// Runs the controllers until `shutdown` resolves (or, with leader election, until leadership is lost).
///
/// With leader election the controllers start only once this process holds the Lease and stop when it is
/// lost; the function then returns so that the process can exit and restart cleanly, as client-go does.
pub async fn run(
    config: ControllerConfig,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let concurrency = config.concurrency.max(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let Some(le) = config.leader_election else {
        run_controllers(client, concurrency, wait_stop(stop_rx)).await;
        return;
    };
    let (lead_tx, mut lead_rx) = watch::channel(false);
    let elector = LeaderElector::new(client.clone(), le, Arc::new(SystemClock));
    let election = tokio::spawn(elector.run(lead_tx, stop_rx.clone()));
    if lead_rx.wait_for(|l| *l).await.is_err() || *stop_rx.borrow() {
        let _ = election.await;
        return;
    }
    tracing::info!("elected leader; starting controllers");
    let lost = async move {
        let _ = lead_rx.wait_for(|l| !*l).await;
    };
    let stop = wait_stop(stop_rx);
    run_controllers(client, concurrency, async move {
        tokio::select! { _ = lost => {}, _ = stop => {} }
    })
    .await;
    let _ = election.await;
}

/// Runs every reconciler until `stop` resolves.
async fn run_controllers(
    client: kube::Client,
    concurrency: u16,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let trigger = async move {
        stop.await;
        let _ = tx.send(true);
    };
    // One watch per kind for all controllers: each event is decoded and cached once.
    let informers = Informers::new(client.clone());
    let i = || informers.clone();
    futures::join!(
        crate::reconcilers::protection::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::peering::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::loadbalancer_routing::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::release::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::nat_allocation::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::nat_autoscaler::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::nat_release::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::allocation_gc::run(client.clone(), concurrency, wait(rx.clone())),
        crate::reconcilers::ephemeral_vip::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::ephemeral_prefix::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::apinet_loadbalancer::run(i(), concurrency, wait(rx.clone())),
        crate::reconcilers::daemonset::run(client.clone(), concurrency, wait(rx.clone())),
        crate::reconcilers::placement::run(client.clone(), wait(rx.clone())),
        crate::reconcilers::network_policy::run(i(), concurrency, wait(rx)),
        trigger,
    );
}
