//! The work-queue metrics of a real controller: a controller built with `ironnet_runtime::controller`, watching
//! the real API server over TCP, whose reconciles block until the test releases them. Its waiting keys show as
//! `workqueue_depth`, and every key taken from the queue is observed once in `workqueue_queue_duration_seconds`,
//! also the keys whose object was deleted while they waited.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ironnet_api::apinet::Node;
use ironnet_apiserver::{ApiServer, ResourceDefinition, Strategy};
use ironnet_runtime::controller::{Action, Config, Controller};
use ironnet_runtime::{ReconcileError, metrics};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use prometheus_client::registry::Registry;
use serde_json::json;

/// Serves the kinds as their CRDs declare them, without admission: the test is about the controller.
struct PassThrough;

impl Strategy for PassThrough {}

/// The API server on a loopback port, and a kube-rs client for it; the server stops when the sender drops.
async fn server() -> (kube::Client, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).unwrap();
    let mut builder = ApiServer::builder(Arc::new(store));
    for kind in ironnet_api::kinds() {
        let def = ResourceDefinition::from_crd(&kind.crd).unwrap();
        builder = builder.register(def, Arc::new(PassThrough)).unwrap();
    }
    let server = builder.build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .serve_with_shutdown(listener, async move {
                let _ = stopped.await;
            })
            .await;
    });
    let config = kube::Config::new(url.parse().unwrap());
    (kube::Client::try_from(config).unwrap(), stop, dir)
}

fn page() -> String {
    let mut registry = Registry::default();
    metrics::register(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

struct Ctx {
    release: tokio::sync::watch::Receiver<bool>,
    started: Mutex<Vec<String>>,
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    ctx.started.lock().unwrap().push(name);
    let mut release = ctx.release.clone();
    let _ = release.wait_for(|r| *r).await;
    Ok(Action::await_change())
}

const QUEUE: &str = "test-workqueue-blocking";

/// Polls the metrics page until `check` accepts it, for at most 30 s.
async fn page_until(what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = page();
        if check(&page) {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {what}:\n{page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_keys_are_the_depth_and_every_taken_key_is_timed_once() {
    const OBJECTS: usize = 6;
    const CONCURRENCY: u16 = 2;
    let (client, _stop_server, _dir) = server().await;
    let (release, release_rx) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Ctx {
        release: release_rx,
        started: Mutex::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let nodes: Api<Node> = Api::all(client.clone());
    let controller = Controller::new(nodes.clone(), watcher::Config::default())
        .with_config(Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        })
        .run(
            metrics::instrument(QUEUE, reconcile),
            ironnet_runtime::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|_| futures::future::ready(()));
    let controller = tokio::spawn(controller);

    let series = |metric: &str| format!("{metric}{{name=\"{QUEUE}\"}}");
    let depth = series("workqueue_depth");
    let timed = series("workqueue_queue_duration_seconds_count");
    let adds = series("workqueue_adds_total");
    let active = format!("controller_runtime_active_workers{{controller=\"{QUEUE}\"}}");
    // The series exist before the first object.
    let empty = page();
    assert_eq!(value(&empty, &depth), Some(0.0), "{empty}");
    assert_eq!(value(&empty, &timed), Some(0.0), "{empty}");

    for i in 0..OBJECTS {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node",
            "metadata": {"name": format!("node-{i}")}, "spec": {},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }

    // Two workers blocked, the other keys waiting behind them; each key taken so far was timed once.
    let waiting = OBJECTS - usize::from(CONCURRENCY);
    let blocked = page_until("two reconciles blocked and the rest waiting", |p| {
        value(p, &depth) == Some(waiting as f64)
            && value(p, &active) == Some(f64::from(CONCURRENCY))
            && value(p, &adds) == Some(OBJECTS as f64)
    })
    .await;
    assert_eq!(value(&blocked, &timed), Some(f64::from(CONCURRENCY)), "{blocked}");
    // promtool reads the Prometheus text format, which the components serve to scrapers that do not ask for
    // OpenMetrics.
    let text = ironnet_telemetry::openmetrics_to_prometheus_text(&blocked);
    ironnet_telemetry::scrape::promtool_check(&text).await.unwrap();

    // Two waiting objects are deleted: kube-runtime still hands their keys out, finds no object and
    // reconciles nothing; the keys leave the queue all the same.
    let running: BTreeSet<String> = ctx.started.lock().unwrap().iter().cloned().collect();
    assert_eq!(running.len(), usize::from(CONCURRENCY));
    let deleted: Vec<String> = (0..OBJECTS)
        .map(|i| format!("node-{i}"))
        .filter(|n| !running.contains(n))
        .take(2)
        .collect();
    for name in &deleted {
        nodes.delete(name, &DeleteParams::default()).await.unwrap();
    }
    release.send_replace(true);

    let done = page_until("the queue empty and every key timed", |p| {
        value(p, &depth) == Some(0.0)
            && value(p, &timed) == Some(OBJECTS as f64)
            && value(p, &active) == Some(0.0)
    })
    .await;
    let started = ctx.started.lock().unwrap().clone();
    assert_eq!(started.len(), OBJECTS - deleted.len(), "{started:?}");
    assert!(deleted.iter().all(|d| !started.contains(d)), "{started:?}");
    assert_eq!(value(&done, &adds), Some(OBJECTS as f64), "{done}");
    let success = format!("controller_runtime_reconcile_total{{controller=\"{QUEUE}\",result=\"success\"}}");
    assert_eq!(
        value(&done, &success),
        Some((OBJECTS - deleted.len()) as f64),
        "{done}"
    );
    // The waits of the keys queued behind the blocked workers were long enough to leave the lowest buckets.
    let lowest_bucket = done
        .lines()
        .find(|l| l.starts_with("workqueue_queue_duration_seconds_bucket{") && l.contains(QUEUE))
        .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok());
    assert!(lowest_bucket.is_some_and(|v| v < OBJECTS as f64), "{done}");

    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .expect("the controller stops on its graceful shutdown")
        .unwrap();
}

struct RequeueCtx {
    /// When each reconcile started.
    starts: Mutex<Vec<tokio::time::Instant>>,
}

const REQUEUE_DELAY: Duration = Duration::from_millis(400);

async fn reconcile_requeue_once(_: Arc<Node>, ctx: Arc<RequeueCtx>) -> Result<Action, ReconcileError> {
    let mut starts = ctx.starts.lock().unwrap();
    starts.push(tokio::time::Instant::now());
    Ok(if starts.len() == 1 {
        Action::requeue(REQUEUE_DELAY)
    } else {
        Action::await_change()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_enters_the_queue_once_its_delay_has_passed() {
    const QUEUE: &str = "test-workqueue-requeue";
    let (client, _stop_server, _dir) = server().await;
    let ctx = Arc::new(RequeueCtx {
        starts: Mutex::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let nodes: Api<Node> = Api::all(client.clone());
    let controller = Controller::new(nodes.clone(), watcher::Config::default())
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        })
        .run(
            metrics::instrument(QUEUE, reconcile_requeue_once),
            ironnet_runtime::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|_| futures::future::ready(()));
    let controller = tokio::spawn(controller);
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": "requeued"}, "spec": {},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();

    let series = |metric: &str| format!("{metric}{{name=\"{QUEUE}\"}}");
    let done = page_until("the requeued reconcile timed", |p| {
        value(p, &series("workqueue_queue_duration_seconds_count")) == Some(2.0)
    })
    .await;
    let starts = ctx.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 2);
    assert!(starts[1] - starts[0] >= REQUEUE_DELAY, "{starts:?}");
    // The requeue was recorded when the reconcile asked for it, and counted as an add once due: the creation
    // and the requeue are the two adds.
    assert_eq!(value(&done, &series("workqueue_adds_total")), Some(2.0), "{done}");
    // Neither wait includes the requeue delay: the requeued key waited only from when its delay had passed.
    let waited = value(&done, &series("workqueue_queue_duration_seconds_sum")).unwrap();
    assert!(waited < REQUEUE_DELAY.as_secs_f64(), "{done}");
    assert_eq!(value(&done, &series("workqueue_depth")), Some(0.0), "{done}");

    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .expect("the controller stops on its graceful shutdown")
        .unwrap();
}
