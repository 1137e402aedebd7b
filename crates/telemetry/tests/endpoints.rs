//! The endpoints over real HTTP: metrics in both formats (the Prometheus text checked by promtool), readiness
//! following its checks, liveness, and the flags' on/off/shared-address behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use ironnet_telemetry::prometheus_client::metrics::counter::Counter;
use ironnet_telemetry::prometheus_client::metrics::family::Family;
use ironnet_telemetry::scrape::{get, promtool_check};
use ironnet_telemetry::{Telemetry, TelemetryArgs};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

fn args(argv: &[&str]) -> TelemetryArgs {
    Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))
        .unwrap()
        .telemetry
}

#[tokio::test]
async fn metrics_and_probes_on_separate_listeners() {
    let telemetry = Telemetry::new();
    let requests = Family::<Vec<(String, String)>, Counter>::default();
    telemetry.register(|r| r.register("demo_requests", "Requests handled", requests.clone()));
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    telemetry.add_readiness_check("demo-synced", move || {
        if flag.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("informers not synced".into())
        }
    });
    telemetry.add_readiness_check("always", || Ok(()));
    let endpoints = telemetry
        .serve(&args(&[
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--health-probe-bind-address",
            "127.0.0.1:0",
        ]))
        .await
        .unwrap();
    let (metrics, health) = (endpoints.metrics.unwrap(), endpoints.health.unwrap());
    assert_ne!(metrics, health);

    for _ in 0..3 {
        requests.get_or_create(&vec![("code".into(), "200".into())]).inc();
    }
    let page = get(metrics, "/metrics", None).await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        page.body
            .lines()
            .any(|l| l == "demo_requests_total{code=\"200\"} 3"),
        "{}",
        page.body
    );
    promtool_check(&page.body).await.unwrap();
    let open = get(
        metrics,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    )
    .await
    .unwrap();
    assert_eq!(
        open.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(
        open.body.contains("# TYPE demo_requests counter\n"),
        "{}",
        open.body
    );
    assert!(open.body.ends_with("# EOF\n"));
    // Each listener serves only its own paths.
    assert_eq!(get(health, "/metrics", None).await.unwrap().status, 404);
    assert_eq!(get(metrics, "/readyz", None).await.unwrap().status, 404);

    let not_ready = get(health, "/readyz?verbose", None).await.unwrap();
    assert_eq!(not_ready.status, 500);
    assert_eq!(
        not_ready.body,
        "[-]demo-synced failed: informers not synced\n[+]always ok\nreadyz check failed\n"
    );
    for path in ["/livez", "/healthz"] {
        let live = get(health, path, None).await.unwrap();
        assert_eq!((live.status, live.body.as_str()), (200, "ok"), "{path}");
    }
    ready.store(true, Ordering::SeqCst);
    let now_ready = get(health, "/readyz", None).await.unwrap();
    assert_eq!((now_ready.status, now_ready.body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn one_address_serves_everything_and_zero_serves_nothing() {
    let telemetry = Telemetry::new();
    let off = telemetry.serve(&args(&[])).await.unwrap();
    assert_eq!((off.metrics, off.health), (None, None));
    // A fixed shared port: pick a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let both = telemetry
        .serve(&args(&[
            "--metrics-bind-address",
            &addr,
            "--health-probe-bind-address",
            &addr,
        ]))
        .await
        .unwrap();
    assert_eq!(both.metrics, both.health);
    let shared = both.metrics.unwrap();
    assert_eq!(get(shared, "/readyz", None).await.unwrap().status, 200);
    let page = get(shared, "/metrics", None).await.unwrap();
    assert_eq!(page.status, 200);
    promtool_check(&page.body).await.unwrap();
    // Taken now: a second bind fails with the address named.
    let err = telemetry
        .serve(&args(&["--metrics-bind-address", &addr]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {addr} for metrics: ")),
        "{err}"
    );
    assert!(Cli::try_parse_from(["x", "--metrics-bind-address", "nonsense"]).is_err());
}
