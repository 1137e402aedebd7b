//! Reflector throughput on loopback, everything in one process on a 2-worker tokio runtime.
//!
//! 1. fan-out: one announcer client → one server → 100 subscriber connections (raw protocol peers that decode
//!    every frame); reports delivered UPDATEs per second (100 × routes announced / time until the last subscriber
//!    decoded the last one).
//! 2. fresh subscriber: a server holding 100,000 routes of a VNI; a new `MetalBond` client subscribes and the time
//!    until its route stream has reported all 100,000 `RouteEvent::Added` is measured.
//!
//! Run: `cargo bench -p ironnet-metalbond --bench reflector` (prints medians of 5 runs each).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ironnet_metalbond::{Config, Message, MessageCodec, MetalBond, NextHop, Route, RouteEvent, Vni};
use ironnet_vni::vni;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

const SUBSCRIBERS: usize = 100;
const FANOUT_ROUTES: u32 = 5_000;
const TABLE_ROUTES: u32 = 100_000;
const RUNS: usize = 5;

fn config() -> Config {
    // Long keepalives: the raw subscribers do not send any during a run.
    Config {
        keepalive_interval: 600,
        ..Config::default()
    }
}

fn route(vni: Vni, i: u32) -> Route {
    let dest = ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 32).unwrap();
    let hop: IpAddr = format!("fc00::{:x}:{:x}", i >> 16, i & 0xffff).parse().unwrap();
    Route::new(vni, dest, NextHop::standard(hop))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A raw subscriber: handshake, SUBSCRIBE `vni`, then count decoded UPDATEs into `counter`.
async fn raw_subscriber(addr: String, vni: Vni, counter: Arc<AtomicU64>) {
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut codec = MessageCodec;
    let send = |m: Message| m.to_frame().unwrap();
    s.write_all(&send(Message::Hello {
        keepalive_interval: 600,
        is_server: false,
    }))
    .await
    .unwrap();
    let mut established = false;
    loop {
        while let Some(msg) = codec.decode(&mut buf).unwrap() {
            match msg {
                Message::Hello { .. } => s.write_all(&send(Message::Keepalive)).await.unwrap(),
                Message::Keepalive if !established => {
                    established = true;
                    s.write_all(&send(Message::Subscribe(vni))).await.unwrap();
                    counter.fetch_add(1 << 32, Ordering::Relaxed);
                }
                Message::Update(..) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

async fn fanout() -> f64 {
    let server = MetalBond::new(config()).unwrap();
    let addr = server
        .start_server("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .to_string();
    let counter = Arc::new(AtomicU64::new(0));
    for _ in 0..SUBSCRIBERS {
        tokio::spawn(raw_subscriber(addr.clone(), vni!(1), counter.clone()));
    }
    wait_for("subscribers established", Duration::from_secs(30), || {
        counter.load(Ordering::Relaxed) >> 32 == SUBSCRIBERS as u64
    })
    .await;
    let announcer = MetalBond::new(config()).unwrap();
    announcer.add_peer(&addr).unwrap();
    announcer.wait_established(Duration::from_secs(10)).await.unwrap();
    // Subscriptions are processed by the server before the first UPDATE arrives on the (separate) announcer
    // connection only if we give them a moment; the counter check above already saw their SUBSCRIBEs sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut rates = Vec::new();
    for run in 0..RUNS as u32 {
        let base = counter.load(Ordering::Relaxed) & 0xffff_ffff;
        let target = base + u64::from(FANOUT_ROUTES) * SUBSCRIBERS as u64;
        let start = Instant::now();
        for i in 0..FANOUT_ROUTES {
            announcer
                .announce(route(vni!(1), run * FANOUT_ROUTES + i))
                .unwrap();
        }
        wait_for("fan-out delivered", Duration::from_secs(120), || {
            counter.load(Ordering::Relaxed) & 0xffff_ffff >= target
        })
        .await;
        let secs = start.elapsed().as_secs_f64();
        let rate = f64::from(FANOUT_ROUTES) * SUBSCRIBERS as f64 / secs;
        println!(
            "fan-out run {run}: {} updates to {SUBSCRIBERS} subscribers in {secs:.3} s = {rate:.0} updates/s",
            FANOUT_ROUTES
        );
        rates.push(rate);
    }
    announcer.shutdown();
    server.shutdown();
    median(rates)
}

async fn fresh_subscriber() -> f64 {
    let server = MetalBond::new(config()).unwrap();
    let addr = server
        .start_server("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .to_string();
    let announcer = MetalBond::new(config()).unwrap();
    announcer.add_peer(&addr).unwrap();
    announcer.wait_established(Duration::from_secs(10)).await.unwrap();
    let load = Instant::now();
    for i in 0..TABLE_ROUTES {
        announcer.announce(route(vni!(2), i)).unwrap();
    }
    let last = route(vni!(2), TABLE_ROUTES - 1);
    wait_for("server holds the table", Duration::from_secs(120), || {
        server
            .peers()
            .iter()
            .any(|(p, _)| server.peer_received_routes(p).is_some_and(|r| r.contains(&last)))
    })
    .await;
    println!(
        "loaded {TABLE_ROUTES} routes into the server in {:.3} s",
        load.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for run in 0..RUNS {
        let client = MetalBond::new(config()).unwrap();
        client.add_peer(&addr).unwrap();
        client.wait_established(Duration::from_secs(10)).await.unwrap();
        let mut events = client.route_events();
        let start = Instant::now();
        client.subscribe(vni!(2)).unwrap();
        let mut added = 0u32;
        while added < TABLE_ROUTES {
            match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
                Ok(Some(RouteEvent::Added(_))) => added += 1,
                Ok(Some(RouteEvent::Removed(r))) => panic!("unexpected removal of {r}"),
                _ => panic!("route stream stalled at {added}"),
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("fresh subscriber run {run}: {TABLE_ROUTES} routes in {secs:.3} s");
        times.push(secs);
        client.shutdown();
    }
    announcer.shutdown();
    server.shutdown();
    median(times)
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        println!("reflector benchmark: run with `cargo bench -p ironnet-metalbond --bench reflector`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rate = fanout().await;
        println!("MEDIAN fan-out: {rate:.0} delivered updates/s (1 announcer -> 1 server -> {SUBSCRIBERS} subscribers)");
        let secs = fresh_subscriber().await;
        println!("MEDIAN fresh subscriber: {TABLE_ROUTES} routes in {secs:.3} s");
    });
}
