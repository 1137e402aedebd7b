//! Store benchmark: the embedded backend against etcd (Debian's `/usr/bin/etcd`, started by
//! `EtcdProcess` on this machine in the same run), same workloads, reported as medians.
//!
//! Run: `cargo bench -p ironnet-store --bench store` (`STORE_BENCH_SECS` sets the seconds per
//! write run, default 3). Prints a Markdown table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use ironnet_store::etcd::{EtcdOptions, EtcdStore};
use ironnet_store::testing::EtcdProcess;
use ironnet_store::{ListOptions, Op, Store, StoreExt, Txn};

const VALUE_BYTES: usize = 1024;
const RUNS: usize = 3;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

struct Results {
    writes: Vec<(usize, f64)>,
    list_10k_ms: f64,
    watch_p50_us: u64,
    watch_p99_us: u64,
    watch_events: u64,
    rss_watchers_kib: Vec<(usize, i64)>,
}

async fn run() {
    let secs: f64 = std::env::var("STORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("bench.redb"), EmbeddedOptions::default()).unwrap());
    let embedded_results = bench(embedded.clone(), secs).await;
    drop(embedded);

    let etcd_process = EtcdProcess::start().unwrap();
    let etcd: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(
            vec![etcd_process.endpoint().to_owned()],
            EtcdOptions {
                key_prefix: "/bench".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap(),
    );
    let etcd_results = bench(etcd.clone(), secs).await;
    drop(etcd);
    drop(etcd_process);

    println!("\n| metric | embedded | etcd 3.4.23 | embedded / etcd |");
    println!("|---|---|---|---|");
    for ((c, e), (_, x)) in embedded_results.writes.iter().zip(&etcd_results.writes) {
        println!(
            "| durable writes/s, {c} concurrent writers | {e:.0} | {x:.0} | {:.2}× |",
            e / x
        );
    }
    let (e, x) = (embedded_results.list_10k_ms, etcd_results.list_10k_ms);
    println!(
        "| list of 10k keys (ms) | {e:.1} | {x:.1} | {:.2}× faster |",
        x / e
    );
    println!(
        "| write→watch latency p50 / p99, 100 watchers (µs) | {} / {} | {} / {} | |",
        embedded_results.watch_p50_us,
        embedded_results.watch_p99_us,
        etcd_results.watch_p50_us,
        etcd_results.watch_p99_us
    );
    println!(
        "| watch events delivered | {} | {} | |",
        embedded_results.watch_events, etcd_results.watch_events
    );
    for ((n, e), (_, x)) in embedded_results
        .rss_watchers_kib
        .iter()
        .zip(&etcd_results.rss_watchers_kib)
    {
        println!("| client RSS growth with {n} watchers during 1000 writes (KiB) | {e} | {x} | |");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_kib() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

async fn bench(store: Arc<dyn Store>, secs: f64) -> Results {
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let mut writes = Vec::new();
    for concurrency in [1usize, 16, 64] {
        let mut rates = Vec::new();
        for run in 0..RUNS {
            rates.push(write_rate(&store, concurrency, run, secs, &value).await);
        }
        let m = median(rates);
        eprintln!("writes/s at {concurrency}: {m:.0}");
        writes.push((concurrency, m));
    }

    // 10k keys in batched transactions, then full lists.
    for chunk in 0..100 {
        let ops = (0..100)
            .map(|i| Op::Put {
                key: format!("/list/{:05}", chunk * 100 + i),
                value: Bytes::from(vec![b'y'; 512]),
            })
            .collect();
        store
            .txn(Txn {
                compares: vec![],
                ops,
            })
            .await
            .unwrap();
    }
    let mut list_times = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        let page = store.list("/list/", ListOptions::default()).await.unwrap();
        list_times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page.items.len(), 10_000);
    }
    let list_10k_ms = median(list_times);
    eprintln!("list 10k: {list_10k_ms:.1} ms");

    let (watch_p50_us, watch_p99_us, watch_events) = watch_latency(&store, 100).await;
    eprintln!("watch p50 {watch_p50_us} µs, p99 {watch_p99_us} µs");
    let mut rss_watchers_kib = Vec::new();
    for n in [10usize, 100, 1000] {
        rss_watchers_kib.push((n, watch_rss(&store, n).await));
    }
    Results {
        writes,
        list_10k_ms,
        watch_p50_us,
        watch_p99_us,
        watch_events,
        rss_watchers_kib,
    }
}

/// Durable single-key puts per second with `concurrency` writers, each writing its own keys.
async fn write_rate(store: &Arc<dyn Store>, concurrency: usize, run: usize, secs: f64, value: &Bytes) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (store, stop, done, value) = (store.clone(), stop.clone(), done.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                store
                    .put(&format!("/w/{concurrency}/{run}/{w}/{}", n % 1000), value.clone())
                    .await
                    .unwrap();
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    count as f64 / elapsed
}

/// Latency from just before a put until each of `watchers` watchers receives its event. Writes
/// are paced (a new put every 2 ms, 4 in flight at most) so the number measures delivery, not
/// queueing behind a saturated disk.
async fn watch_latency(store: &Arc<dyn Store>, watchers: usize) -> (u64, u64, u64) {
    const WRITES: u64 = 1000;
    let base = Instant::now();
    let rev = store.current_revision().await.unwrap();
    let hist = Arc::new(parking_lot::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut stream = store.watch("/lat/", rev).await.unwrap();
        let hist = hist.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < WRITES {
                let resp = stream.next().await.unwrap().unwrap();
                let now = base.elapsed().as_micros() as u64;
                let mut h = hist.lock();
                for e in resp.events {
                    let sent: u64 = std::str::from_utf8(&e.kv.value).unwrap().parse().unwrap();
                    h.record(now.saturating_sub(sent).max(1)).unwrap();
                    seen += 1;
                }
            }
        }));
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut interval = tokio::time::interval(Duration::from_millis(2));
    let mut writers = Vec::new();
    for i in 0..WRITES {
        interval.tick().await;
        let permit = sem.clone().acquire_owned().await.unwrap();
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let sent = base.elapsed().as_micros() as u64;
            store
                .put(&format!("/lat/{}", i % 100), Bytes::from(sent.to_string()))
                .await
                .unwrap();
            drop(permit);
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
    }
    let h = hist.lock();
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.len())
}

/// RSS growth (KiB) of this process while `watchers` watchers consume 1000 writes of 1 KiB.
async fn watch_rss(store: &Arc<dyn Store>, watchers: usize) -> i64 {
    let before = rss_kib();
    let rev = store.current_revision().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut stream = store.watch("/rss/", rev).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < 1000 {
                seen += stream.next().await.unwrap().unwrap().events.len();
            }
        }));
    }
    let value = Bytes::from(vec![b'r'; VALUE_BYTES]);
    for chunk in 0..100 {
        let ops = (0..10)
            .map(|i| Op::Put {
                key: format!("/rss/{}", chunk * 10 + i),
                value: value.clone(),
            })
            .collect();
        store
            .txn(Txn {
                compares: vec![],
                ops,
            })
            .await
            .unwrap();
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
    }
    rss_kib() - before
}
