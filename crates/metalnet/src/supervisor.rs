//! Keeping dpservice and metalbond usable: waiting for dpservice at start (instead of exiting, as upstream does),
//! noticing a dpservice restart (its process UUID changes, or it answers "not initialized") and re-programming
//! everything without restarting metalnet, and telling the reconcilers when the received routes have settled.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::Agent;
use crate::dp::Dp;

/// First retry delay while dpservice is unreachable.
const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest retry delay while dpservice is unreachable.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often a healthy dpservice is checked for a restart.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long after metalbond's sessions are established its table counts as complete: the servers send their whole
/// table right after the handshake, so this only has to cover the transfer.
pub const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// The next retry delay: doubled, between 0.2 s and 5 s.
pub fn next_delay(d: Duration) -> Duration {
    (d * 2).clamp(RETRY_MIN, RETRY_MAX)
}

/// Checks dpservice once: its UUID, initializing it first if it is a fresh process. Returns the UUID and whether
/// this call initialized it.
pub async fn check(dp: &Dp) -> Result<(String, bool), crate::dp::DpError> {
    match dp.check_initialized().await {
        Ok(uuid) => Ok((uuid, false)),
        Err(e) if e.is_not_initialized() => Ok((dp.initialize().await?, true)),
        Err(e) => Err(e),
    }
}

/// Waits until dpservice answers (initializing it if needed), retrying with backoff and logging; `None` if
/// `stop` fires first.
pub async fn connect(dp: &Dp, mut stop: watch::Receiver<bool>) -> Option<String> {
    let mut delay = RETRY_MIN;
    let mut attempts = 0u32;
    loop {
        match check(dp).await {
            Ok((uuid, initialized)) => {
                tracing::info!(%uuid, initialized, "dpservice ready");
                return Some(uuid);
            }
            Err(e) => {
                attempts += 1;
                // Warn on the first failure and then now and then, not on every retry.
                if attempts == 1 || attempts.is_multiple_of(20) {
                    tracing::warn!(error = %e, attempts, "dpservice not available yet; retrying");
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = next_delay(delay);
    }
}

/// Watches dpservice until `stop`: on a restart (new UUID, or "not initialized") it is initialized and `all` is
/// bumped so that every object is reconciled, i.e. re-created in the fresh dpservice.
pub async fn watch_dpservice(
    agent: Arc<Agent>,
    mut uuid: String,
    all: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = CHECK_EVERY;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            _ = tokio::time::sleep(delay) => {}
            _ = agent.dp_suspect.notified() => {}
        }
        match check(&agent.dp).await {
            Ok((now, initialized)) => {
                if failing {
                    tracing::info!("dpservice reachable again");
                    failing = false;
                }
                delay = CHECK_EVERY;
                if now != uuid || initialized {
                    tracing::warn!(old = %uuid, new = %now, "dpservice restart detected; re-programming every object");
                    uuid = now;
                    all.send_modify(|v| *v = v.wrapping_add(1));
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "dpservice not available; retrying");
                }
                failing = true;
                delay = next_delay(delay.min(RETRY_MAX / 2));
            }
        }
    }
}

/// Marks the received routes settled once every metalbond peer is ESTABLISHED (plus [`SETTLE_AFTER`] for the
/// table transfer), then bumps `all` so that deletions held back meanwhile are made. Without peers the routes are
/// settled at once.
pub async fn settle_routes(
    agent: Arc<Agent>,
    settled: watch::Sender<bool>,
    all: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut waited = Duration::ZERO;
    loop {
        let wait = Duration::from_secs(10);
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            r = agent.mb.wait_established(wait) => {
                if r.is_ok() {
                    break;
                }
            }
        }
        waited += wait;
        tracing::warn!(waited = ?waited, peers = ?agent.mb.peers(), "metalbond peers not established yet; received routes are not complete");
    }
    if !agent.mb.peers().is_empty() {
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            _ = tokio::time::sleep(SETTLE_AFTER) => {}
        }
    }
    tracing::info!("metalbond established; received routes settled");
    settled.send_replace(true);
    all.send_modify(|v| *v = v.wrapping_add(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        assert_eq!(next_delay(RETRY_MIN), Duration::from_millis(400));
        assert_eq!(next_delay(Duration::from_secs(4)), RETRY_MAX);
        assert_eq!(next_delay(Duration::ZERO), RETRY_MIN);
    }
}
