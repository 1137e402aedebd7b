//! Controller metrics under controller-runtime's names, so that dashboards built for Kubernetes controllers work.
//!
//! Every controller is built with [`crate::controller::Controller`], whose `run` takes the reconcile function
//! wrapped with [`instrument`]; together they record per controller:
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `controller_runtime_reconcile_total` | counter | `controller`, `result` | reconciles by result: `success` (await change), `requeue` (requeue now), `requeue_after` (requeue later), `error` |
//! | `controller_runtime_reconcile_errors_total` | counter | `controller` | reconciles that returned an error |
//! | `controller_runtime_reconcile_time_seconds` | histogram | `controller` | reconcile duration |
//! | `controller_runtime_active_workers` | gauge | `controller` | reconciles running now |
//! | `workqueue_work_duration_seconds` | histogram | `name` | time an item is processed (= the reconcile, as in client-go's queue) |
//! | `workqueue_retries_total` | counter | `name` | items put back for a retry (errors and immediate requeues) |
//! | `workqueue_adds_total` | counter | `name` | items entering the queue: requests for a key not already waiting (client-go's count) |
//! | `workqueue_depth` | gauge | `name` | keys waiting for a worker now (delayed requeues count once due) |
//! | `workqueue_queue_duration_seconds` | histogram | `name` | time a key waited before a worker took it |
//! | `workqueue_unfinished_work_seconds` | gauge | `name` | seconds the reconciles running now have been running, summed |
//! | `workqueue_longest_running_processor_seconds` | gauge | `name` | seconds the longest-running reconcile has been running |
//! | `leader_election_master_status` | gauge | `name` | 1 while this process holds the Lease `name`, else 0 |
//!
//! The queue is kube-runtime's scheduler, which is internal, so the controller records the waiting keys beside
//! it ([`crate::queue::PendingKeys`]): a key waits from its earliest request (requests for a waiting key merge,
//! as in the scheduler), a requeue after `d` waits from `d` later (client-go counts a delayed item once its
//! delay has passed), debouncing counts as waiting (as client-go's rate-limited adds do), and a key stops
//! waiting when a worker takes it. `workqueue_depth` and the in-flight gauges are computed at each scrape
//! (client-go refreshes the in-flight ones every 500 ms).
//!
//! The metrics live in one process-wide set ([`global`]) so that controllers need no handle passed down; a
//! component exposes them by calling [`register`] on its registry.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label set `{controller}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ControllerLabel {
    /// The controller's name.
    pub controller: String,
}

/// Label set `{controller, result}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ControllerResultLabels {
    /// The controller's name.
    pub controller: String,
    /// `success`, `error`, `requeue` or `requeue_after`.
    pub result: String,
}

/// Label set `{name}` (work queue and lease names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NameLabel {
    /// The queue (= controller) or Lease name.
    pub name: String,
}

/// Histogram buckets of controller-runtime's reconcile time (exponential from 5 ms to ~82 s, then 100 s).
#[derive(Debug, Clone, Copy)]
pub struct ReconcileBuckets;

impl MetricConstructor<Histogram> for ReconcileBuckets {
    fn new_metric(&self) -> Histogram {
        let mut buckets: Vec<f64> =
            prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 15).collect();
        buckets.push(100.0);
        Histogram::new(buckets)
    }
}

/// Histogram buckets of client-go's work-queue latencies: powers of ten from 10 ns to 1000 s.
#[derive(Debug, Clone, Copy)]
pub struct QueueBuckets;

impl MetricConstructor<Histogram> for QueueBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            10e-9, 10.0, 12,
        ))
    }
}

/// The controller metric families (see the module documentation).
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    reconcile_total: Family<ControllerResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabel, Counter>,
    reconcile_time: Family<ControllerLabel, Histogram, ReconcileBuckets>,
    active_workers: Family<ControllerLabel, Gauge>,
    work_duration: Family<NameLabel, Histogram, ReconcileBuckets>,
    retries: Family<NameLabel, Counter>,
    pub(crate) adds: Family<NameLabel, Counter>,
    pub(crate) queue_duration: Family<NameLabel, Histogram, QueueBuckets>,
    leader: Family<NameLabel, Gauge>,
    in_flight: Arc<InFlight>,
}

/// The start times of the reconciles running now, per controller (work queue) name.
#[derive(Debug, Default)]
struct InFlight {
    next_id: AtomicU64,
    running: Mutex<HashMap<String, HashMap<u64, Instant>>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, Instant>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `name`'s series exist (at 0) before its first reconcile.
    fn declare(&self, name: &str) {
        self.lock().entry(name.to_owned()).or_default();
    }

    fn start(&self, name: &str) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(name.to_owned())
            .or_default()
            .insert(id, Instant::now());
        id
    }

    fn finish(&self, name: &str, id: u64) {
        if let Some(running) = self.lock().get_mut(name) {
            running.remove(&id);
        }
    }

    /// `(name, unfinished seconds, longest running seconds)` per controller at `now`, sorted by name.
    fn snapshot(&self, now: Instant) -> Vec<(String, f64, f64)> {
        let mut out: Vec<(String, f64, f64)> = self
            .lock()
            .iter()
            .map(|(name, running)| {
                let (unfinished, longest) = in_flight_seconds(running.values().copied(), now);
                (name.clone(), unfinished, longest)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// client-go's two in-flight numbers for reconciles started at `starts`, seen at `now`: the summed and the
/// longest running time, in seconds.
pub fn in_flight_seconds(starts: impl IntoIterator<Item = Instant>, now: Instant) -> (f64, f64) {
    starts.into_iter().fold((0.0, 0.0), |(sum, max), start| {
        let s = now.saturating_duration_since(start).as_secs_f64();
        (sum + s, if s > max { s } else { max })
    })
}

/// Encodes the in-flight gauges at each scrape.
#[derive(Debug)]
struct InFlightCollector(Arc<InFlight>);

impl Collector for InFlightCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot(Instant::now());
        type Value = fn(&(String, f64, f64)) -> f64;
        let gauges: [(&str, &str, Value); 2] = [
            (
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
                |e| e.1,
            ),
            (
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
                |e| e.2,
            ),
        ];
        for (metric, help, value) in gauges {
            let mut family = encoder.encode_descriptor(
                metric,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for entry in &snapshot {
                let label = NameLabel {
                    name: entry.0.clone(),
                };
                ConstGauge::new(value(entry)).encode(family.encode_family(&label)?)?;
            }
        }
        Ok(())
    }
}

/// The process-wide controller metrics.
pub fn global() -> &'static ControllerMetrics {
    static METRICS: OnceLock<ControllerMetrics> = OnceLock::new();
    METRICS.get_or_init(|| ControllerMetrics {
        reconcile_total: Family::default(),
        reconcile_errors: Family::default(),
        reconcile_time: Family::new_with_constructor(ReconcileBuckets),
        active_workers: Family::default(),
        work_duration: Family::new_with_constructor(ReconcileBuckets),
        retries: Family::default(),
        adds: Family::default(),
        queue_duration: Family::new_with_constructor(QueueBuckets),
        leader: Family::default(),
        in_flight: Arc::default(),
    })
}

/// Adds the controller metrics to `registry` (several registries may share them).
pub fn register(registry: &mut Registry) {
    let m = global();
    // prometheus-client appends `_total` to counters.
    registry.register(
        "controller_runtime_reconcile",
        "Total number of reconciliations per controller",
        m.reconcile_total.clone(),
    );
    registry.register(
        "controller_runtime_reconcile_errors",
        "Total number of reconciliation errors per controller",
        m.reconcile_errors.clone(),
    );
    registry.register(
        "controller_runtime_reconcile_time_seconds",
        "Length of time per reconciliation per controller",
        m.reconcile_time.clone(),
    );
    registry.register(
        "controller_runtime_active_workers",
        "Number of currently used workers per controller",
        m.active_workers.clone(),
    );
    registry.register(
        "workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes",
        m.work_duration.clone(),
    );
    registry.register(
        "workqueue_retries",
        "Total number of retries handled by workqueue",
        m.retries.clone(),
    );
    registry.register(
        "workqueue_adds",
        "Total number of adds handled by workqueue",
        m.adds.clone(),
    );
    registry.register_collector(Box::new(crate::queue::DepthCollector));
    registry.register(
        "workqueue_queue_duration_seconds",
        "How long in seconds an item stays in workqueue before being requested",
        m.queue_duration.clone(),
    );
    registry.register_collector(Box::new(InFlightCollector(Arc::clone(&m.in_flight))));
    registry.register(
        "leader_election_master_status",
        "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
        m.leader.clone(),
    );
}

/// Records whether this process leads the Lease `name` (called by [`crate::leader::LeaderElector::run`]).
pub fn set_leader(name: &str, leading: bool) {
    global()
        .leader
        .get_or_create(&NameLabel {
            name: name.to_owned(),
        })
        .set(i64::from(leading));
}

/// The result label of one reconcile outcome.
pub fn result_label<E>(result: &Result<Action, E>) -> &'static str {
    match result {
        Err(_) => "error",
        Ok(action) if *action == Action::await_change() => "success",
        Ok(action) if *action == Action::requeue(Duration::ZERO) => "requeue",
        Ok(_) => "requeue_after",
    }
}

/// A boxed reconcile future, as [`instrument`] returns.
pub type ReconcileFuture<E> = Pin<Box<dyn Future<Output = Result<Action, E>> + Send>>;

/// Decrements the active-worker gauge and ends the in-flight entry also when kube-runtime drops a reconcile
/// midway (shutdown).
struct ActiveWorker {
    gauge: Gauge,
    queue: String,
    id: u64,
}

impl Drop for ActiveWorker {
    fn drop(&mut self) {
        self.gauge.dec();
        global().in_flight.finish(&self.queue, self.id);
    }
}

/// A reconcile function wrapped by [`instrument`], with the controller name it is counted under; what
/// [`crate::controller::Controller::run`] takes.
pub struct Instrumented<K, C, E> {
    name: String,
    reconcile: Arc<ReconcileFn<K, C, E>>,
}

/// The shared reconcile function inside an [`Instrumented`].
type ReconcileFn<K, C, E> = dyn Fn(Arc<K>, Arc<C>) -> ReconcileFuture<E> + Send + Sync;

impl<K, C, E> Clone for Instrumented<K, C, E> {
    fn clone(&self) -> Self {
        Instrumented {
            name: self.name.clone(),
            reconcile: Arc::clone(&self.reconcile),
        }
    }
}

impl<K, C, E> std::fmt::Debug for Instrumented<K, C, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K, C, E> Instrumented<K, C, E> {
    /// The controller's name (its `controller` and `name` label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs one counted and timed reconcile of `obj`.
    pub fn call(&self, obj: Arc<K>, ctx: Arc<C>) -> ReconcileFuture<E> {
        (self.reconcile)(obj, ctx)
    }
}

/// Wraps `reconcile` so that every call is counted and timed under `controller` (controller-runtime names a
/// controller after its kind in lower case, e.g. `network`; ironnet's names say what the controller does).
///
/// The result series of the controller exist (at 0) from this call on, as controller-runtime initialises them.
pub fn instrument<K, C, E, Fut>(
    controller: &str,
    reconcile: impl Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + 'static,
) -> Instrumented<K, C, E>
where
    K: Send + Sync + 'static,
    C: Send + Sync + 'static,
    E: Send + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let m = global();
    let label = ControllerLabel {
        controller: controller.to_owned(),
    };
    let queue = NameLabel {
        name: controller.to_owned(),
    };
    for result in ["success", "error", "requeue", "requeue_after"] {
        let _ = m.reconcile_total.get_or_create(&ControllerResultLabels {
            controller: controller.to_owned(),
            result: result.to_owned(),
        });
    }
    let _ = m.reconcile_errors.get_or_create(&label);
    let _ = m.active_workers.get_or_create(&label);
    let _ = m.retries.get_or_create(&queue);
    let _ = m.adds.get_or_create(&queue);
    let _ = m.queue_duration.get_or_create(&queue);
    m.in_flight.declare(controller);
    let wrapped = move |obj, ctx| -> ReconcileFuture<E> {
        let fut = reconcile(obj, ctx);
        let (label, queue) = (label.clone(), queue.clone());
        Box::pin(async move {
            let active = m.active_workers.get_or_create(&label).clone();
            active.inc();
            let id = m.in_flight.start(&queue.name);
            let worker = ActiveWorker {
                gauge: active,
                queue: queue.name.clone(),
                id,
            };
            let start = Instant::now();
            let result = fut.await;
            let seconds = start.elapsed().as_secs_f64();
            drop(worker);
            m.reconcile_time.get_or_create(&label).observe(seconds);
            m.work_duration.get_or_create(&queue).observe(seconds);
            let outcome = result_label(&result);
            m.reconcile_total
                .get_or_create(&ControllerResultLabels {
                    controller: label.controller.clone(),
                    result: outcome.to_owned(),
                })
                .inc();
            if outcome == "error" {
                m.reconcile_errors.get_or_create(&label).inc();
            }
            if matches!(outcome, "error" | "requeue") {
                m.retries.get_or_create(&queue).inc();
            }
            result
        })
    };
    Instrumented {
        name: controller.to_owned(),
        reconcile: Arc::new(wrapped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape() -> String {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    fn outcome(i: usize) -> Result<Action, &'static str> {
        match i {
            0 => Ok(Action::await_change()),
            1 => Ok(Action::requeue(Duration::ZERO)),
            2 => Ok(Action::requeue(Duration::from_secs(5))),
            _ => Err("boom"),
        }
    }

    #[tokio::test]
    async fn every_outcome_is_counted_under_its_result() {
        let reconcile = instrument("unit-outcomes", |i: Arc<usize>, _ctx: Arc<()>| {
            let result = outcome(*i);
            async move { result }
        });
        for i in 0..5 {
            assert_eq!(reconcile.call(Arc::new(i), Arc::new(())).await, outcome(i));
        }
        let page = scrape();
        for line in [
            "controller_runtime_reconcile_total{controller=\"unit-outcomes\",result=\"success\"} 1",
            "controller_runtime_reconcile_total{controller=\"unit-outcomes\",result=\"requeue\"} 1",
            "controller_runtime_reconcile_total{controller=\"unit-outcomes\",result=\"requeue_after\"} 1",
            "controller_runtime_reconcile_total{controller=\"unit-outcomes\",result=\"error\"} 2",
            "controller_runtime_reconcile_errors_total{controller=\"unit-outcomes\"} 2",
            "controller_runtime_reconcile_time_seconds_count{controller=\"unit-outcomes\"} 5",
            "controller_runtime_active_workers{controller=\"unit-outcomes\"} 0",
            "workqueue_work_duration_seconds_count{name=\"unit-outcomes\"} 5",
            "workqueue_retries_total{name=\"unit-outcomes\"} 3",
            "workqueue_unfinished_work_seconds{name=\"unit-outcomes\"} 0.0",
            "workqueue_longest_running_processor_seconds{name=\"unit-outcomes\"} 0.0",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line:?} in\n{page}");
        }
    }

    #[tokio::test]
    async fn a_running_reconcile_is_an_active_worker_until_it_ends_or_is_dropped() {
        let (release, wait) = tokio::sync::watch::channel(false);
        let reconcile = instrument("unit-active", move |_: Arc<()>, _: Arc<()>| {
            let mut wait = wait.clone();
            async move {
                let _ = wait.wait_for(|v| *v).await;
                Ok::<_, ()>(Action::await_change())
            }
        });
        let running = tokio::spawn(reconcile.call(Arc::new(()), Arc::new(())));
        let dropped = reconcile.call(Arc::new(()), Arc::new(()));
        let gauge = || {
            global()
                .active_workers
                .get_or_create(&ControllerLabel {
                    controller: "unit-active".into(),
                })
                .get()
        };
        // The spawned one starts on the runtime; the other is polled once by hand.
        let mut dropped = dropped;
        let _ = futures::poll!(&mut dropped);
        while gauge() < 2 {
            tokio::task::yield_now().await;
        }
        // Two reconciles in flight: the summed time is at least the longest, both positive once time passed.
        let in_flight = |page: &str, metric: &str| -> f64 {
            let prefix = format!("{metric}{{name=\"unit-active\"}} ");
            page.lines()
                .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
                .unwrap_or_else(|| panic!("no {metric} in\n{page}"))
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(20) {
            tokio::task::yield_now().await;
        }
        let page = scrape();
        let unfinished = in_flight(&page, "workqueue_unfinished_work_seconds");
        let longest = in_flight(&page, "workqueue_longest_running_processor_seconds");
        assert!(longest >= 0.02, "{page}");
        assert!(unfinished >= longest + 0.02, "{page}");
        drop(dropped);
        assert_eq!(gauge(), 1);
        release.send_replace(true);
        running.await.unwrap().unwrap();
        assert_eq!(gauge(), 0);
        let page = scrape();
        assert_eq!(in_flight(&page, "workqueue_unfinished_work_seconds"), 0.0);
        assert_eq!(
            in_flight(&page, "workqueue_longest_running_processor_seconds"),
            0.0
        );
        // Adds are counted where keys enter the queue (the controller), not by the wrapper.
        assert!(
            page.lines()
                .any(|l| l == "workqueue_adds_total{name=\"unit-active\"} 0"),
            "{page}"
        );
    }

    #[test]
    fn in_flight_seconds_are_the_sum_and_the_longest_of_the_running_times() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_millis(3500);
        let starts = [
            t0,
            t0 + Duration::from_millis(2500),
            t0 + Duration::from_millis(3000),
        ];
        assert_eq!(in_flight_seconds(starts, now), (3.5 + 1.0 + 0.5, 3.5));
        assert_eq!(in_flight_seconds([], now), (0.0, 0.0));
        // A start after `now` (a scrape racing a reconcile start) counts as 0, never negative.
        assert_eq!(in_flight_seconds([now + Duration::from_secs(1)], now), (0.0, 0.0));
    }

    #[test]
    fn leader_status_is_one_while_leading() {
        set_leader("unit-lease", true);
        assert!(
            scrape()
                .lines()
                .any(|l| l == "leader_election_master_status{name=\"unit-lease\"} 1")
        );
        set_leader("unit-lease", false);
        assert!(
            scrape()
                .lines()
                .any(|l| l == "leader_election_master_status{name=\"unit-lease\"} 0")
        );
    }
}
