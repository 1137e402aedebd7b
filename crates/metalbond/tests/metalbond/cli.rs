//! The `metalbond server|client` command line end to end (same code path as `ironnet metalbond ...`), and the
//! HTTP route table view.

use crate::common;

use std::time::Duration;

use clap::Parser;
use common::*;
use ironnet_metalbond::cli::{self, MetalbondCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: MetalbondCommand,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from `addr` over HTTP/1.1; returns (status line, content type, body).
async fn http_get(addr: &str, path: &str) -> Option<(String, String, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_owned();
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Some((status, ctype, body.to_owned()))
}

/// Polls `/routes.json` at `addr` until `done` accepts the document.
async fn routes_json_until(addr: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        if let Some((status, ctype, body)) = http_get(addr, "/routes.json").await {
            assert!(status.contains("200"), "{status}");
            assert_eq!(ctype, "application/json");
            let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
            if done(&doc) {
                return doc;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out polling {addr}/routes.json"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_cli(
    args: &[&str],
) -> (
    tokio::task::JoinHandle<Result<(), ironnet_metalbond::Error>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let cli = Cli::try_parse_from(args).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(cli::run(cli.command, fast_config(), async move {
        let _ = stop_rx.await;
    }));
    (handle, stop_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_clients_from_the_command_line() {
    let listen = format!("127.0.0.1:{}", free_port());
    let server_http = format!("127.0.0.1:{}", free_port());
    let client_http = format!("127.0.0.1:{}", free_port());
    let (server, server_stop) = spawn_cli(&[
        "metalbond",
        "server",
        "--listen",
        &listen,
        "--http",
        &server_http,
        "--keepalive",
        "3",
        "-v",
    ]);
    let (announcer, announcer_stop) = spawn_cli(&[
        "metalbond",
        "client",
        "--server",
        &listen,
        "--subscribe",
        "100",
        "--announce",
        "100#10.0.0.1/32#fc00:1::d0",
        "--announce",
        "100#192.0.2.5/32#fc00:1::d1#NAT#32768#65535",
        "--announce",
        "100#10.0.0.9/32#fc00:1::d2#LB",
    ]);
    let (subscriber, subscriber_stop) = spawn_cli(&[
        "metalbond",
        "client",
        "--server",
        &listen,
        "--subscribe",
        "100",
        "--http",
        &client_http,
    ]);

    let doc = routes_json_until(&client_http, |doc| {
        doc["vnet"]["100"].as_object().is_some_and(|m| m.len() == 3)
    })
    .await;
    let vnet = &doc["vnet"]["100"];
    let std_hop = &vnet[r#"{"IPVersion":4,"Prefix":"10.0.0.1/32"}"#][0];
    assert_eq!(std_hop["TargetAddress"], "fc00:1::d0");
    assert_eq!(std_hop["Type"], 0);
    let nat_hop = &vnet[r#"{"IPVersion":4,"Prefix":"192.0.2.5/32"}"#][0];
    assert_eq!(nat_hop["Type"], 1);
    assert_eq!(nat_hop["NATPortRangeFrom"], 32768);
    assert_eq!(nat_hop["NATPortRangeTo"], 65535);
    assert_eq!(vnet[r#"{"IPVersion":4,"Prefix":"10.0.0.9/32"}"#][0]["Type"], 2);
    assert!(doc["date"].as_str().is_some_and(|d| d.len() == 19), "{doc}");
    assert!(doc["metalbondVersion"].is_string());

    // The server's table holds what the clients announced; YAML and HTML views render it.
    let (status, ctype, yaml) = http_get(&server_http, "/routes.yaml").await.unwrap();
    assert!(status.contains("200"));
    assert_eq!(ctype, "text/yaml");
    assert!(
        yaml.contains("fc00:1::d0") && yaml.contains("metalbondVersion"),
        "{yaml}"
    );
    let (_, ctype, html) = http_get(&server_http, "/").await.unwrap();
    assert!(ctype.starts_with("text/html"));
    assert!(html.contains("VNI 100") && html.contains("10.0.0.1/32"), "{html}");

    // Stopping the announcer withdraws its routes from the subscriber.
    announcer_stop.send(()).unwrap();
    announcer.await.unwrap().unwrap();
    routes_json_until(&client_http, |doc| {
        doc["vnet"].as_object().is_some_and(|m| m.is_empty())
    })
    .await;
    subscriber_stop.send(()).unwrap();
    subscriber.await.unwrap().unwrap();
    server_stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gives_up_when_servers_are_unreachable() {
    let nowhere = format!("127.0.0.1:{}", free_port());
    let started = tokio::time::Instant::now();
    let (client, _stop) = spawn_cli(&["metalbond", "client", "--server", &nowhere, "--subscribe", "1"]);
    let err = tokio::time::timeout(SOON, client)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("ESTABLISHED"), "{err}");
    // 10 wire seconds of 200 ms each.
    assert!(started.elapsed() >= UNIT * 9);
}

#[test]
fn bad_arguments_are_rejected() {
    for args in [
        &["metalbond", "client"][..],
        &[
            "metalbond",
            "client",
            "--server",
            "x:1",
            "--announce",
            "100#10.0.0.1/32",
        ],
        &[
            "metalbond",
            "client",
            "--server",
            "x:1",
            "--announce",
            "100#10.0.0.1/32#fc00::1#NAT#1#70000",
        ],
        &["metalbond", "client", "--server", "x:1", "--subscribe", "-1"],
        &["metalbond", "server", "--listen", "nonsense"],
    ] {
        assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
    }
}
