//! Leader election against the real in-process API server (built-in `coordination.k8s.io/v1` Lease).

use std::sync::Arc;
use std::time::Duration;

use ironnet_apimachinery::clock::ManualClock;
use ironnet_apiserver::ApiServer;
use ironnet_runtime::leader::{LeaderElectionConfig, LeaderElector};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use jiff::{SignedDuration, Timestamp};

async fn client() -> (kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).unwrap();
    let server = ApiServer::builder(Arc::new(store)).build().await.unwrap();
    (kube::Client::new(server.router(), "default"), dir)
}

#[tokio::test]
async fn one_leader_at_a_time_and_takeover_after_expiry() {
    let (client, _dir) = client().await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_700_000_000).unwrap()));
    let cfg = |id: &str| LeaderElectionConfig::new("default", "ironnet-controller-manager", id).unwrap();
    let mut a = LeaderElector::new(client.clone(), cfg("a"), clock.clone());
    let mut b = LeaderElector::new(client.clone(), cfg("b"), clock.clone());

    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "first candidate creates the lease"
    );
    assert!(!b.try_acquire_or_renew().await.unwrap(), "lease is held");
    clock.advance(SignedDuration::from_secs(10));
    assert!(a.try_acquire_or_renew().await.unwrap(), "holder renews");
    clock.advance(SignedDuration::from_secs(10));
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "renewal changed the record: b restarts its expiry clock"
    );
    clock.advance(SignedDuration::from_secs(14));
    assert!(!b.try_acquire_or_renew().await.unwrap());
    clock.advance(SignedDuration::from_secs(1));
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "a stopped renewing 15s ago: b takes over"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap(), "a has lost");

    let lease: k8s_openapi::api::coordination::v1::Lease = kube::Api::namespaced(client, "default")
        .get("ironnet-controller-manager")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn racing_candidates_never_both_win() {
    let (client, _dir) = client().await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_700_000_000).unwrap()));
    let mut handles = Vec::new();
    for i in 0..8 {
        let cfg = LeaderElectionConfig::new("default", "race", format!("c{i}")).unwrap();
        let mut e = LeaderElector::new(client.clone(), cfg, clock.clone());
        handles.push(tokio::spawn(
            async move { e.try_acquire_or_renew().await.unwrap() },
        ));
    }
    let mut winners = 0;
    for h in handles {
        winners += usize::from(
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(winners, 1);
}
