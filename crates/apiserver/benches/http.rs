//! HTTP benchmark of the API server on the embedded store, over loopback TCP:
//! creates/s and gets/s with 1, 16 and 64 concurrent clients, watch latency with 100 watchers,
//! and resident memory per stored small object.
//!
//! `cargo bench -p ironnet-apiserver --bench http` (set `BENCH_SECONDS`, `BENCH_OBJECTS` to scale).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ironnet_apiserver::{ApiServer, ResourceDefinition, Scope};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use parking_lot::Mutex;
use serde_json::json;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn widget(name: &str) -> Bytes {
    Bytes::from(
        json!({"apiVersion": "bench.ironnet.dev/v1", "kind": "Widget", "metadata": {"name": name, "labels": {"app": "bench"}}, "spec": {"size": 1, "color": "red"}})
            .to_string(),
    )
}

async fn send(client: &HttpClient, method: &str, uri: &str, body: Bytes) -> u16 {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    code
}

/// Runs `clients` loops of `op(client, task, i)` for `secs`; returns operations per second.
async fn throughput<F, Fut>(base: &str, clients: usize, secs: f64, op: F) -> f64
where
    F: Fn(HttpClient, String, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for task in 0..clients {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let (op, done, base) = (op.clone(), done.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                op(client.clone(), base.clone(), task, i).await;
                i += 1;
            }
            done.fetch_add(i, Ordering::Relaxed);
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let objects: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let rss_empty = rss_bytes();
    let store =
        Arc::new(EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).unwrap());
    let def =
        ResourceDefinition::new("bench.ironnet.dev", "v1", "Widget", "widgets", Scope::Namespaced).unwrap();
    let server = ApiServer::builder(store.clone())
        .register(def, Arc::new(ironnet_apiserver::DefaultStrategy))
        .unwrap()
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = server.clone();
    tokio::spawn(async move { s.serve(listener).await });
    let base = format!("http://{addr}/apis/bench.ironnet.dev/v1/namespaces/default/widgets");
    println!("apiserver HTTP benchmark: {secs} s per point, {objects} objects for memory");

    for clients in [1usize, 16, 64] {
        let rate = throughput(&base, clients, secs, move |c, base, task, i| async move {
            let code = send(&c, "POST", &base, widget(&format!("c{clients}-{task}-{i}"))).await;
            assert_eq!(code, 201);
        })
        .await;
        println!("creates/s  clients={clients:<3} {rate:>10.0}");
    }
    for clients in [1usize, 16, 64] {
        let rate = throughput(&base, clients, secs, move |c, base, task, i| async move {
            let name = format!("c64-{}-{}", task % 64, i % 20);
            let code = send(&c, "GET", &format!("{base}/{name}"), Bytes::new()).await;
            assert!(code == 200 || code == 404);
        })
        .await;
        println!("gets/s     clients={clients:<3} {rate:>10.0}");
    }

    // Watch latency: 100 watchers, a writer creating 100 objects/s.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let rv = {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let req = http::Request::get(format!("{base}?limit=1"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let body = client
            .request(req)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["metadata"]["resourceVersion"].as_str().unwrap().to_owned()
    };
    let mut watchers = Vec::new();
    for _ in 0..100 {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let uri = format!("{base}?watch=true&resourceVersion={rv}&labelSelector=app%3Dwatch");
        let (sent, latencies) = (sent.clone(), latencies.clone());
        watchers.push(tokio::spawn(async move {
            let req = http::Request::get(uri).body(Full::new(Bytes::new())).unwrap();
            let mut body = client.request(req).await.unwrap().into_body();
            let mut buf = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else { continue };
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let now = Instant::now();
                    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
                    if let Some(name) = v["object"]["metadata"]["name"].as_str()
                        && let Some(t0) = sent.lock().get(name)
                    {
                        latencies
                            .lock()
                            .push(now.duration_since(*t0).as_secs_f64() * 1000.0);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let events = (secs * 100.0) as usize;
    for i in 0..events {
        let name = format!("watch-{i}");
        let body = Bytes::from(
            json!({"metadata": {"name": name, "labels": {"app": "watch"}}, "spec": {"size": 1}}).to_string(),
        );
        sent.lock().insert(name, Instant::now());
        assert_eq!(send(&client, "POST", &base, body).await, 201);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for w in watchers {
        w.abort();
    }
    let mut l = latencies.lock().clone();
    l.sort_by(f64::total_cmp);
    println!(
        "watch latency ms (100 watchers, {} events, {} deliveries): p50 {:.2} p99 {:.2} max {:.2}",
        events,
        l.len(),
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        percentile(&l, 1.0)
    );

    // Memory: fill to `objects` small objects, then compare RSS.
    let current = {
        let page = ironnet_store::Store::list(
            store.as_ref(),
            "/registry/bench.ironnet.dev/widgets/",
            Default::default(),
        )
        .await
        .unwrap();
        page.items.len()
    };
    let rss_before = rss_bytes();
    let missing = objects.saturating_sub(current);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let (next, base) = (next.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i as usize >= missing {
                    return;
                }
                assert_eq!(send(&client, "POST", &base, widget(&format!("m-{i}"))).await, 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_bytes();
    println!(
        "memory: {objects} objects stored; RSS empty process {:.1} MiB, before fill ({current} objects) {:.1} MiB, after {:.1} MiB; {:.0} bytes/object over the fill, {:.0} bytes/object total",
        rss_empty as f64 / 1048576.0,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        (rss_after.saturating_sub(rss_before)) as f64 / missing.max(1) as f64,
        (rss_after.saturating_sub(rss_empty)) as f64 / objects as f64,
    );
}
