//! `metalbond server|client` metrics and readiness over real HTTP after known announcements.

use crate::common;

use std::net::SocketAddr;

use clap::Parser;
use common::*;
use ironnet_metalbond::cli::MetalbondCommand;
use ironnet_metalbond::{MetalBond, NextHop, Route};
use ironnet_telemetry::scrape::{get, promtool_check};
use ironnet_vni::{Vni, vni};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: MetalbondCommand,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn route(vni: Vni, dest: &str, hop: &str) -> Route {
    Route::new(
        vni,
        dest.parse().unwrap(),
        NextHop::standard(hop.parse().unwrap()),
    )
}

fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_count_peers_routes_and_updates() {
    let (listen, http) = (free_addr(), free_addr());
    let argv = [
        "x",
        "server",
        "--listen",
        &listen.to_string(),
        "--metrics-bind-address",
        &http.to_string(),
        "--health-probe-bind-address",
        &http.to_string(),
    ];
    let cmd = Cli::try_parse_from(argv).unwrap().command;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ironnet_metalbond::cli::run(cmd, fast_config(), async move {
        let _ = stop_rx.await;
    }));
    let addr = listen.to_string();
    let subscriber = MetalBond::new(fast_config()).unwrap();
    subscriber.subscribe(vni!(100)).unwrap();
    subscriber.add_peer(&addr).unwrap();
    let announcer = MetalBond::new(fast_config()).unwrap();
    for r in [
        route(vni!(100), "10.0.0.1/32", "fc00::1"),
        route(vni!(100), "10.0.0.2/32", "fc00::1"),
        route(vni!(200), "10.0.0.3/32", "fc00::1"),
    ] {
        announcer.announce(r).unwrap();
    }
    announcer.add_peer(&addr).unwrap();
    announcer.wait_established(SOON).await.unwrap();
    subscriber.wait_established(SOON).await.unwrap();
    eventually("both VNI 100 routes reach the subscriber", || {
        subscriber.routes_in(vni!(100)).len() == 2
    })
    .await;
    announcer
        .withdraw(route(vni!(100), "10.0.0.2/32", "fc00::1"))
        .unwrap();
    eventually("the withdrawal reaches the subscriber", || {
        subscriber.routes_in(vni!(100)).len() == 1
    })
    .await;

    let page = get(http, "/metrics", None).await.unwrap();
    assert_eq!(page.status, 200);
    promtool_check(&page.body).await.unwrap();
    let body = &page.body;
    for (series, want) in [
        ("metalbond_peers{state=\"ESTABLISHED\"}", 2.0),
        ("metalbond_peers{state=\"RETRY\"}", 0.0),
        ("metalbond_routes{vni=\"100\"}", 1.0),
        ("metalbond_routes{vni=\"200\"}", 1.0),
        ("metalbond_subscriptions", 0.0),
        ("metalbond_updates_received_total{action=\"add\"}", 3.0),
        ("metalbond_updates_received_total{action=\"remove\"}", 1.0),
        // Reflected to the one VNI 100 subscriber: two ADDs (replay or reflection) and one REMOVE.
        ("metalbond_updates_sent_total{action=\"add\"}", 2.0),
        ("metalbond_updates_sent_total{action=\"remove\"}", 1.0),
        ("metalbond_protocol_faults_total", 0.0),
    ] {
        assert_eq!(value(body, series), Some(want), "{series} in\n{body}");
    }
    // A client's own view: its announcements per VNI and its subscriptions.
    let mut client_page = ironnet_telemetry::prometheus_client::registry::Registry::default();
    announcer.register_metrics(&mut client_page);
    let mut text = String::new();
    ironnet_telemetry::prometheus_client::encoding::text::encode(&mut text, &client_page).unwrap();
    assert_eq!(
        value(&text, "metalbond_announced_routes{vni=\"100\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "metalbond_announced_routes{vni=\"200\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "metalbond_updates_sent_total{action=\"add\"}"),
        Some(3.0),
        "{text}"
    );

    // A faulty UPDATE is counted.
    let mut raw = RawPeer::connect(&addr).await;
    raw.handshake_as_client(2).await;
    raw.send_raw(&[1, 0, 4, 5, 0x1a, 0x02, 0x12, 0x01]).await;
    assert!(raw.closed_within(SOON).await);
    let page = get(http, "/metrics", None).await.unwrap();
    assert_eq!(
        value(&page.body, "metalbond_protocol_faults_total"),
        Some(1.0),
        "{}",
        page.body
    );
    assert_eq!(get(http, "/readyz", None).await.unwrap().status, 200);
    for mb in [subscriber, announcer] {
        mb.shutdown();
    }
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_ready_only_while_its_servers_are_established() {
    let (srv, addr) = server().await;
    let health = free_addr();
    let cmd = Cli::try_parse_from([
        "x",
        "client",
        "--server",
        &addr,
        "--subscribe",
        "100",
        "--health-probe-bind-address",
        &health.to_string(),
    ])
    .unwrap()
    .command;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let client = tokio::spawn(ironnet_metalbond::cli::run(cmd, fast_config(), async move {
        let _ = stop_rx.await;
    }));
    let mut ready = false;
    for _ in 0..500 {
        if let Ok(r) = get(health, "/readyz", None).await
            && r.status == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ready, "the client never became ready");
    // The server goes away: the client is no longer ready, and says which peer is down.
    srv.shutdown();
    let mut report = String::new();
    for _ in 0..500 {
        let r = get(health, "/readyz?verbose", None).await.unwrap();
        if r.status == 500 {
            report = r.body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        report.starts_with(&format!(
            "[-]metalbond-peers-established failed: not ESTABLISHED: {addr} "
        )),
        "{report:?}"
    );
    stop_tx.send(()).unwrap();
    client.await.unwrap().unwrap();
}
