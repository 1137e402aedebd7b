//! The IronCore API server's own `/metrics` after allocations: pool usage read from the allocation index,
//! object counts and storage latency per resource, checked with exact values and by `promtool check metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironnet_registry::AllocationConfig;
use ironnet_registry::alloc::VniRange;
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

const GROUP: &str = "core.apinet.ironcore.dev";

fn api(client: &Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{GROUP}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), "default", &resource)
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

async fn scrape(client: &Client) -> String {
    client
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .unwrap()
}

/// The value of the sample `series` (name and labels exactly as printed).
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `(in use, free, size)` of `pool`.
fn pool(page: &str, pool: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    let get = |metric: &str| {
        value(
            page,
            &format!("ironnet_allocation_pool_{metric}{{pool=\"{pool}\"}}"),
        )
    };
    (get("in_use"), get("free"), get("size"))
}

/// Polls the page until `check` holds (the allocation index follows the store through a watch).
async fn eventually(client: &Client, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = scrape(client).await;
        if check(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "{what}:\n{page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_objects_and_storage_latency_follow_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).unwrap();
    let allocation = AllocationConfig {
        vni_range: VniRange::new(200, 209).unwrap(),
        public_prefixes: vec!["192.0.2.0/30".parse().unwrap(), "2001:db8::/126".parse().unwrap()],
    };
    let server = ironnet_registry::build(Arc::new(store), &allocation, |b| b)
        .await
        .unwrap();
    assert!(server.index.wait_ready(Duration::from_secs(5)).await);
    let client = Client::new(server.server.router(), "default");

    let page = scrape(&client).await;
    assert_eq!(pool(&page, "vni"), (Some(0.0), Some(10.0), Some(10.0)), "{page}");
    assert_eq!(
        pool(&page, "192.0.2.0/30"),
        (Some(0.0), Some(4.0), Some(4.0)),
        "{page}"
    );
    assert_eq!(
        pool(&page, "2001:db8::/126"),
        (Some(0.0), Some(4.0), Some(4.0)),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "apiserver_storage_objects{resource=\"networks.core.apinet.ironcore.dev\"}"
        ),
        Some(0.0),
        "every served resource is shown from the start: {page}"
    );

    let networks = api(&client, "Network", "networks");
    for name in ["a", "b"] {
        networks
            .create(&PostParams::default(), &object("Network", name, json!({})))
            .await
            .unwrap();
    }
    api(&client, "IP", "ips")
        .create(
            &PostParams::default(),
            &object("IP", "ip", json!({"type": "Public", "ipFamily": "IPv4"})),
        )
        .await
        .unwrap();

    let page = eventually(&client, "2 VNIs and 1 IPv4 address in use", |p| {
        pool(p, "vni").0 == Some(2.0) && pool(p, "192.0.2.0/30").0 == Some(1.0)
    })
    .await;
    assert_eq!(pool(&page, "vni"), (Some(2.0), Some(8.0), Some(10.0)), "{page}");
    assert_eq!(
        pool(&page, "192.0.2.0/30"),
        (Some(1.0), Some(3.0), Some(4.0)),
        "{page}"
    );
    assert_eq!(
        pool(&page, "2001:db8::/126"),
        (Some(0.0), Some(4.0), Some(4.0)),
        "{page}"
    );
    for (resource, n) in [
        ("networks.core.apinet.ironcore.dev", 2.0),
        ("networkids.core.apinet.ironcore.dev", 2.0),
        ("ips.core.apinet.ironcore.dev", 1.0),
        ("ipaddresses.core.apinet.ironcore.dev", 1.0),
    ] {
        assert_eq!(
            value(
                &page,
                &format!("apiserver_storage_objects{{resource=\"{resource}\"}}")
            ),
            Some(n),
            "{resource}: {page}"
        );
    }
    // Each Network and its NetworkID claim are one transaction, typed by the Network.
    assert_eq!(
        value(
            &page,
            "etcd_request_duration_seconds_count{operation=\"txn\",type=\"networks.core.apinet.ironcore.dev\"}"
        ),
        Some(2.0),
        "{page}"
    );
    ironnet_telemetry::scrape::promtool_check(&page)
        .await
        .unwrap_or_else(|problems| panic!("promtool: {problems}\n{page}"));

    networks.delete("a", &DeleteParams::default()).await.unwrap();
    let page = eventually(&client, "the VNI is released", |p| pool(p, "vni").0 == Some(1.0)).await;
    assert_eq!(pool(&page, "vni"), (Some(1.0), Some(9.0), Some(10.0)), "{page}");
    assert_eq!(
        value(
            &page,
            "apiserver_storage_objects{resource=\"networks.core.apinet.ironcore.dev\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "apiserver_storage_objects{resource=\"networkids.core.apinet.ironcore.dev\"}"
        ),
        Some(1.0),
        "{page}"
    );
}
