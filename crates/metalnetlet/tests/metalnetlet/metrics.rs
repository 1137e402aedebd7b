//! metalnetlet's controller metrics and readiness over real HTTP after a scripted workload (two Networks).

use ironnet_api::metalnet;
use ironnet_telemetry::scrape::{get, promtool_check};
use kube::ResourceExt;
use serde_json::json;

use crate::common::{env, poll};

fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_are_counted_and_the_page_passes_promtool() {
    let env = env().await;
    let telemetry = ironnet_runtime::health::controller_telemetry(&env.client);
    let args = ironnet_telemetry::TelemetryArgs {
        metrics_bind_address: ironnet_telemetry::parse_bind_address("127.0.0.1:0").unwrap(),
        health_probe_bind_address: ironnet_telemetry::parse_bind_address("127.0.0.1:0").unwrap(),
    };
    let endpoints = telemetry.serve(&args).await.unwrap();
    let (metrics, health) = (endpoints.metrics.unwrap(), endpoints.health.unwrap());

    let n1 = env.network("metrics-1", json!([])).await;
    let n2 = env.network("metrics-2", json!([])).await;
    for uid in [n1.uid().unwrap(), n2.uid().unwrap()] {
        poll(&format!("metalnet network {uid}"), || async {
            env.metalnet::<metalnet::Network>().get_opt(&uid).await.unwrap()
        })
        .await;
    }
    // Each Network was reconciled successfully at least once (other tests of this binary add to the same
    // process-wide counters, so these are lower bounds).
    let page = poll("two successful network reconciles", || async {
        let page = get(metrics, "/metrics", None).await.unwrap();
        let ok = value(
            &page.body,
            "controller_runtime_reconcile_total{controller=\"metalnetlet-network\",result=\"success\"}",
        )
        .is_some_and(|v| v >= 2.0);
        ok.then_some(page)
    })
    .await;
    assert_eq!(page.status, 200);
    promtool_check(&page.body).await.unwrap();
    let body = &page.body;
    for controller in [
        "metalnetlet-network",
        "metalnetlet-networkinterface",
        "metalnetlet-node",
        "metalnetlet-instance",
    ] {
        for result in ["success", "error", "requeue", "requeue_after"] {
            let series = format!(
                "controller_runtime_reconcile_total{{controller=\"{controller}\",result=\"{result}\"}}"
            );
            assert!(value(body, &series).is_some(), "{series} missing in\n{body}");
        }
        let active = format!("controller_runtime_active_workers{{controller=\"{controller}\"}}");
        assert!(value(body, &active).is_some_and(|v| v >= 0.0), "{active}");
    }
    let timed = value(
        body,
        "controller_runtime_reconcile_time_seconds_count{controller=\"metalnetlet-network\"}",
    );
    assert!(timed.is_some_and(|v| v >= 2.0), "{body}");
    let worked = value(
        body,
        "workqueue_work_duration_seconds_count{name=\"metalnetlet-network\"}",
    );
    assert!(worked.is_some_and(|v| v >= 2.0), "{body}");
    assert!(body.contains("# TYPE controller_runtime_reconcile_time_seconds histogram"));

    let ready = poll("apiserver-reachable", || async {
        let r = get(health, "/readyz?verbose", None).await.unwrap();
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(ready.body, "[+]apiserver-reachable ok\nreadyz check passed\n");
}
