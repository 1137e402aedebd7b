//! controller-manager's reconciles reach the controller metrics page: a placement workload is scraped over
//! real HTTP from the same telemetry endpoint `ironnet controller-manager` serves.

use crate::common;

use common::{server, start};
use ironnet_api::apinet::{Instance, Node};
use ironnet_controllers::reconcilers::placement;
use ironnet_telemetry::scrape::{get, promtool_check};
use kube::api::{Api, PostParams};
use serde_json::json;

fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_reconciles_are_counted_and_the_page_passes_promtool() {
    let (client, _server, _dir) = server().await;
    let telemetry = ironnet_runtime::health::controller_telemetry(&client);
    let args = ironnet_telemetry::TelemetryArgs {
        metrics_bind_address: ironnet_telemetry::parse_bind_address("127.0.0.1:0").unwrap(),
        health_probe_bind_address: ironnet_telemetry::parse_bind_address("127.0.0.1:0").unwrap(),
    };
    let metrics = telemetry.serve(&args).await.unwrap().metrics.unwrap();

    let node: Node = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": "metrics-node"}, "spec": {},
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let _stop = start(&client, placement::run);
    let instances: Api<Instance> = Api::namespaced(client.clone(), "default");
    for name in ["metrics-1", "metrics-2"] {
        let instance: Instance = serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Instance",
            "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "loadBalancerType": "Public", "networkRef": {"name": "net"}},
        }))
        .unwrap();
        instances.create(&PostParams::default(), &instance).await.unwrap();
    }

    // Both Instances bound means placement reconciled each successfully at least once; the counters are
    // process-wide and other tests of this binary may add to them, so the checks are lower bounds.
    let success = "controller_runtime_reconcile_total{controller=\"instanceplacement\",result=\"success\"}";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let page = loop {
        let page = get(metrics, "/metrics", None).await.unwrap();
        assert_eq!(page.status, 200);
        let bound = instances
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|i| {
                i.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("metrics-"))
            })
            .filter(|i| i.spec.node_ref.is_some())
            .count();
        if bound == 2 && value(&page.body, success).is_some_and(|v| v >= 2.0) {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no two successful placement reconciles in\n{}",
            page.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    promtool_check(&page.body).await.unwrap();
    let body = &page.body;
    for result in ["error", "requeue", "requeue_after"] {
        let series = format!(
            "controller_runtime_reconcile_total{{controller=\"instanceplacement\",result=\"{result}\"}}"
        );
        assert!(value(body, &series).is_some(), "{series} missing in\n{body}");
    }
    let timed = value(
        body,
        "controller_runtime_reconcile_time_seconds_count{controller=\"instanceplacement\"}",
    );
    assert!(timed.is_some_and(|v| v >= 2.0), "{body}");
    let worked = value(
        body,
        "workqueue_work_duration_seconds_count{name=\"instanceplacement\"}",
    );
    assert!(worked.is_some_and(|v| v >= 2.0), "{body}");
    // Each of those reconciles took its key from the work queue: its wait was timed.
    let waited = value(
        body,
        "workqueue_queue_duration_seconds_count{name=\"instanceplacement\"}",
    );
    assert!(waited.is_some_and(|v| v >= 2.0), "{body}");
    assert!(
        value(body, "workqueue_depth{name=\"instanceplacement\"}").is_some(),
        "{body}"
    );
}
