//! kube-rs reconcilers: thin shells that read the objects involved, call a pure decision function and write
//! only what differs.

pub mod allocation_gc;
pub mod apinet_loadbalancer;
pub mod autoscaler;
pub mod daemonset;
pub mod ephemeral_prefix;
pub mod ephemeral_vip;
pub mod instance_scheduler;
pub mod loadbalancer;
pub mod nat_release;
pub mod natgateway;
pub mod network;
pub mod network_policy;
pub mod release;

use std::time::Duration;

/// A reconcile failed; the controller retries with a delay.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API request failed.
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    /// The object is missing required metadata.
    #[error("object without {0}")]
    MissingMetadata(&'static str),
}

/// kube-rs's `graceful_shutdown_on` needs a `Sync` future, which the callers' shutdown futures need not be.
///
/// Returns that `Sync` future and a relay that completes when `shutdown` does; the relay must be polled beside
/// the controller (`futures::join!(controller, relay)`).
pub(crate) fn sync_shutdown(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    impl std::future::Future<Output = ()> + Send + Sync + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let relay = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    (stop, relay)
}

/// Delay before retrying a failed reconcile.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(2);

/// How long fan-in controllers (one object derived from all interfaces of a Network: LB routing,
/// NetworkPolicy rules, NATGateway tables) wait for further triggers before reconciling.
///
/// Attaching a Network's interfaces sends a burst of interface events, each of which re-triggers every
/// such object on the Network; without a window each event cost a reconcile and usually a write, which
/// every watcher then decoded. The window is trailing (kube-rs resets it on every trigger), so a result
/// is at most this much later than the last change it reflects.
pub(crate) const FAN_IN_DEBOUNCE: Duration = Duration::from_millis(200);

/// Whether `e` is an optimistic-concurrency conflict (the object changed under us; a retry reads it again).
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
