//! Allocations per second through the real API server (in process, embedded store): Network
//! creates (VNI + NetworkID claim) and IP creates (address + IPAddress claim) from 64 concurrent
//! clients, with 1,000 and with 1,000,000 values already allocated.
//!
//! Run: `cargo bench -p ironnet-registry --bench allocations` (prints medians of 3 rounds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ironnet_registry::AllocationConfig;
use ironnet_registry::alloc::VniRange;
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use ironnet_store::{Op, Store, Txn};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;

const CLIENTS: usize = 64;
const PER_ROUND: usize = 4_000;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "core.apinet.ironcore.dev".into(),
        version: "v1alpha1".into(),
        api_version: "core.apinet.ironcore.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Writes `count` claim keys under `prefix` directly, in large transactions (setup only).
async fn prefill(store: &dyn Store, prefix: &str, names: impl Iterator<Item = String>) {
    let mut ops = Vec::new();
    for name in names {
        ops.push(Op::Put {
            key: format!("{prefix}{name}"),
            value: Bytes::from_static(b"{}"),
        });
        if ops.len() == 20_000 {
            store
                .txn(Txn {
                    compares: vec![],
                    ops: std::mem::take(&mut ops),
                })
                .await
                .unwrap();
        }
    }
    if !ops.is_empty() {
        store
            .txn(Txn {
                compares: vec![],
                ops,
            })
            .await
            .unwrap();
    }
}

async fn round(api: &Api<DynamicObject>, kind: &str, prefix: &str, spec: serde_json::Value) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let api = api.clone();
        let spec = spec.clone();
        let kind = kind.to_owned();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (c..PER_ROUND).step_by(CLIENTS) {
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": kind,
                    "metadata": {"name": format!("{prefix}-{i}")}, "spec": spec,
                }))
                .unwrap();
                api.create(&PostParams::default(), &obj).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    PER_ROUND as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn scenario(already: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("s.redb"), EmbeddedOptions::default()).unwrap());
    // VNIs 200.. and addresses of a /8 are pre-claimed (keys only; the index reads names).
    let vni_prefix = "/registry/core.apinet.ironcore.dev/networkids/";
    let ip_prefix = "/registry/core.apinet.ironcore.dev/ipaddresses/";
    prefill(
        store.as_ref(),
        vni_prefix,
        (0..already as u32).map(|i| (200 + i).to_string()),
    )
    .await;
    prefill(
        store.as_ref(),
        ip_prefix,
        (0..already as u32).map(|i| {
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + i).to_string()
        }),
    )
    .await;
    let allocation = AllocationConfig {
        vni_range: VniRange::DEFAULT,
        public_prefixes: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let server = ironnet_registry::build(store, &allocation, |b| b).await.unwrap();
    assert!(server.index.wait_ready(Duration::from_secs(120)).await);
    let client = kube::Client::new(server.server.router(), "default");
    let networks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &resource("Network", "networks"));
    let ips: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource("IP", "ips"));
    let mut vni_rates = Vec::new();
    let mut ip_rates = Vec::new();
    for r in 0..3 {
        vni_rates.push(round(&networks, "Network", &format!("n{r}"), json!({})).await);
        ip_rates.push(
            round(
                &ips,
                "IP",
                &format!("i{r}"),
                json!({"type": "Public", "ipFamily": "IPv4"}),
            )
            .await,
        );
    }
    println!(
        "already allocated {already:>9}: VNI allocations/s {:>8.0}   IP allocations/s {:>8.0}   ({CLIENTS} clients, {PER_ROUND} per round, median of 3)",
        median(vni_rates),
        median(ip_rates)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        scenario(1_000).await;
        scenario(1_000_000).await;
    });
}
