//! Shutdown plumbing between a component's own stop signal and kube-rs controllers.

use std::future::Future;

/// kube-rs's `graceful_shutdown_on` needs a `Sync` future, which the callers' shutdown futures need not be.
///
/// Returns that `Sync` future and a relay that completes when `shutdown` does; the relay must be polled beside
/// the controller (`futures::join!(controller, relay)`), otherwise the `Sync` future never completes.
pub fn sync_shutdown(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    impl Future<Output = ()> + Send + Sync + 'static,
    impl Future<Output = ()> + Send + 'static,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sync_future_completes_once_the_relayed_shutdown_does() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (stop, relay) = sync_shutdown(async move {
            let _ = rx.await;
        });
        let relay = tokio::spawn(relay);
        let stop = tokio::spawn(stop);
        assert!(!stop.is_finished());
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), stop)
            .await
            .expect("stop completes after shutdown")
            .unwrap();
        relay.await.unwrap();
    }
}
