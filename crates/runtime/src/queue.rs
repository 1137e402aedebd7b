//! The keys waiting in a controller's work queue, recorded beside kube-runtime's scheduler (which is internal
//! and cannot be asked), so that client-go's `workqueue_depth`, `workqueue_queue_duration_seconds` and
//! `workqueue_adds_total` describe the queue the way they do for a Go controller.
//!
//! [`crate::controller::Controller`] calls [`PendingKeys::add`] for every reconcile request that enters
//! kube-runtime's applier, [`PendingKeys::add_after`] for every requeue a reconcile or its error policy asks
//! for, and [`PendingKeys::take`] when a worker takes a key (or kube-runtime drops it because its object is
//! gone). Merging follows kube-runtime's scheduler: a key waits at most once, since its earliest request.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use ironnet_apimachinery::clock::SharedClock;
use jiff::{SignedDuration, Timestamp};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::{NameLabel, global};

/// A queue key: the namespace (`None` for cluster-scoped objects) and name of the object to reconcile.
pub type QueueKey = (Option<String>, String);

/// One waiting key.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// When the key became (or, for a delayed requeue, becomes) ready to be handed to a worker.
    since: Timestamp,
    /// Whether `workqueue_adds_total` has counted this wait: client-go counts a delayed item only once its
    /// delay has passed, so a delayed requeue is counted when it falls due (or is taken, or is merged with an
    /// earlier request).
    counted: bool,
}

/// The keys of one running controller that wait for a worker.
///
/// Memory is bounded by the keys of the controller's objects: a key leaves when a worker takes it or when
/// kube-runtime discards it because its object was deleted, and the whole record goes with the controller.
#[derive(Debug)]
pub struct PendingKeys {
    name: String,
    clock: SharedClock,
    waiting: Mutex<HashMap<QueueKey, Waiting>>,
    adds: Counter,
    queue_duration: Histogram,
}

impl PendingKeys {
    /// An empty queue record for the controller `name`, reading time from `clock`; its metric series exist
    /// (at 0) from now on, and it counts in `workqueue_depth{name}` until it is dropped.
    pub fn new(name: &str, clock: SharedClock) -> Arc<PendingKeys> {
        let m = global();
        let label = NameLabel {
            name: name.to_owned(),
        };
        let keys = Arc::new(PendingKeys {
            name: name.to_owned(),
            clock,
            waiting: Mutex::default(),
            adds: m.adds.get_or_create(&label).clone(),
            queue_duration: m.queue_duration.get_or_create(&label).clone(),
        });
        live_queues().register(&keys);
        keys
    }

    /// The controller (queue) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<QueueKey, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request to reconcile `key` now. A key already waiting keeps its earlier time (kube-runtime's scheduler
    /// merges the two requests into one), and `workqueue_adds_total` counts only keys not already waiting.
    pub fn add(&self, key: QueueKey) {
        let now = self.clock.now();
        self.add_at(key, now, now);
    }

    /// A request to reconcile `key` once `delay` has passed (a requeue); until then the key is not part of
    /// the depth. An earlier request for the key wins, as in kube-runtime's scheduler.
    pub fn add_after(&self, key: QueueKey, delay: Duration) {
        let now = self.clock.now();
        let at = SignedDuration::try_from(delay)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        self.add_at(key, at, now);
    }

    fn add_at(&self, key: QueueKey, at: Timestamp, now: Timestamp) {
        let mut waiting = self.lock();
        let entry = waiting.entry(key).or_insert(Waiting {
            since: at,
            counted: false,
        });
        if at < entry.since {
            entry.since = at;
        }
        self.count_if_due(entry, now);
    }

    fn count_if_due(&self, entry: &mut Waiting, now: Timestamp) {
        if !entry.counted && entry.since <= now {
            entry.counted = true;
            self.adds.inc();
        }
    }

    /// A worker takes `key` (or kube-runtime drops it because its object is gone): the key stops waiting and
    /// the time it waited is observed into `workqueue_queue_duration_seconds` and returned.
    ///
    /// A key that was not recorded as waiting (which the controller never does) is observed as having waited
    /// 0 s, so that every item handed out is timed once, but not counted as an add: it was never seen to enter.
    pub fn take(&self, key: &QueueKey) -> Duration {
        let now = self.clock.now();
        let waited = match self.lock().remove(key) {
            Some(entry) => {
                if !entry.counted {
                    self.adds.inc();
                }
                Duration::try_from(entry.since.duration_until(now)).unwrap_or(Duration::ZERO)
            }
            None => Duration::ZERO,
        };
        self.queue_duration.observe(waited.as_secs_f64());
        waited
    }

    /// The keys ready for a worker now (delayed requeues not yet due are not counted): client-go's depth.
    /// Delayed keys that have fallen due are counted into `workqueue_adds_total` on the way.
    pub fn depth(&self) -> usize {
        let now = self.clock.now();
        let mut waiting = self.lock();
        let mut depth = 0;
        for entry in waiting.values_mut() {
            self.count_if_due(entry, now);
            if entry.since <= now {
                depth += 1;
            }
        }
        depth
    }

    /// Every key recorded, delayed ones included (what the record holds in memory).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The queue records alive in this process, by name; several controllers may share a name (e.g. one per
/// simulated node), and their depths are summed.
#[derive(Debug, Default)]
struct LiveQueues {
    names: Mutex<(BTreeSet<String>, Vec<Weak<PendingKeys>>)>,
}

impl LiveQueues {
    fn register(&self, keys: &Arc<PendingKeys>) {
        let mut guard = self.names.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.insert(keys.name.clone());
        guard.1.retain(|q| q.strong_count() > 0);
        guard.1.push(Arc::downgrade(keys));
    }

    /// `(name, depth)` for every name ever registered (0 once its controllers are gone), sorted by name.
    fn depths(&self) -> Vec<(String, usize)> {
        // Depths are read outside this lock: each queue takes its own.
        let (mut depths, queues): (HashMap<String, usize>, Vec<Arc<PendingKeys>>) = {
            let mut guard = self.names.lock().unwrap_or_else(|p| p.into_inner());
            guard.1.retain(|q| q.strong_count() > 0);
            (
                guard.0.iter().map(|n| (n.clone(), 0)).collect(),
                guard.1.iter().filter_map(Weak::upgrade).collect(),
            )
        };
        for queue in queues {
            *depths.entry(queue.name.clone()).or_default() += queue.depth();
        }
        let mut out: Vec<(String, usize)> = depths.into_iter().collect();
        out.sort();
        out
    }
}

fn live_queues() -> &'static LiveQueues {
    static LIVE: OnceLock<LiveQueues> = OnceLock::new();
    LIVE.get_or_init(LiveQueues::default)
}

/// Encodes `workqueue_depth` at each scrape from the live queue records.
#[derive(Debug)]
pub(crate) struct DepthCollector;

impl Collector for DepthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let depths = live_queues().depths();
        let mut family = encoder.encode_descriptor(
            "workqueue_depth",
            "Current depth of workqueue",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, depth) in depths {
            let depth = i64::try_from(depth).unwrap_or(i64::MAX);
            ConstGauge::new(depth).encode(family.encode_family(&NameLabel { name })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_apimachinery::clock::ManualClock;

    fn key(name: &str) -> QueueKey {
        (Some("default".to_owned()), name.to_owned())
    }

    fn queue(name: &str) -> (Arc<ManualClock>, Arc<PendingKeys>) {
        let clock = Arc::new(ManualClock::new("2026-12-07T20:00:00Z".parse().unwrap()));
        let keys = PendingKeys::new(name, clock.clone());
        (clock, keys)
    }

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    fn scrape() -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        crate::metrics::register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    fn has(page: &str, line: &str) -> bool {
        page.lines().any(|l| l == line)
    }

    #[test]
    fn a_duplicate_request_merges_and_keeps_the_earliest_time() {
        let (clock, keys) = queue("unit-queue-merge");
        keys.add(key("a"));
        clock.advance(secs(3));
        keys.add(key("a"));
        keys.add(key("b"));
        assert_eq!(keys.depth(), 2);
        assert_eq!(keys.adds.get(), 2, "the second request for a merged");
        clock.advance(secs(2));
        assert_eq!(keys.take(&key("a")), Duration::from_secs(5));
        assert_eq!(keys.take(&key("b")), Duration::from_secs(2));
        assert_eq!(keys.depth(), 0);
        assert!(keys.is_empty());
        let page = scrape();
        for line in [
            "workqueue_depth{name=\"unit-queue-merge\"} 0",
            "workqueue_adds_total{name=\"unit-queue-merge\"} 2",
            "workqueue_queue_duration_seconds_count{name=\"unit-queue-merge\"} 2",
            "workqueue_queue_duration_seconds_sum{name=\"unit-queue-merge\"} 7.0",
        ] {
            assert!(has(&page, line), "missing {line:?} in\n{page}");
        }
    }

    #[test]
    fn a_delayed_requeue_is_not_in_the_depth_before_its_time() {
        let (clock, keys) = queue("unit-queue-delay");
        keys.add_after(key("a"), Duration::from_secs(10));
        assert_eq!((keys.depth(), keys.len()), (0, 1));
        assert_eq!(
            keys.adds.get(),
            0,
            "client-go counts a delayed add once it is due"
        );
        assert!(has(&scrape(), "workqueue_depth{name=\"unit-queue-delay\"} 0"));
        clock.advance(secs(9));
        assert_eq!(keys.depth(), 0);
        clock.advance(secs(1));
        assert_eq!(keys.depth(), 1);
        assert_eq!(keys.adds.get(), 1);
        assert!(has(&scrape(), "workqueue_depth{name=\"unit-queue-delay\"} 1"));
        clock.advance(secs(4));
        // Waiting is counted from when the delay ended, not from the requeue.
        assert_eq!(keys.take(&key("a")), Duration::from_secs(4));
        assert_eq!(keys.adds.get(), 1);
    }

    #[test]
    fn a_request_before_a_delayed_requeue_is_due_makes_it_wait_from_now() {
        let (clock, keys) = queue("unit-queue-expedite");
        keys.add_after(key("a"), Duration::from_secs(30));
        clock.advance(secs(5));
        keys.add(key("a"));
        assert_eq!((keys.depth(), keys.adds.get()), (1, 1));
        // A later requeue of a key already waiting changes nothing (the scheduler keeps the earlier run).
        keys.add_after(key("a"), Duration::from_secs(60));
        clock.advance(secs(2));
        assert_eq!(keys.take(&key("a")), Duration::from_secs(2));
        assert_eq!((keys.depth(), keys.len(), keys.adds.get()), (0, 0, 1));
    }

    #[test]
    fn the_queue_duration_is_observed_when_a_worker_takes_the_key() {
        let (clock, keys) = queue("unit-queue-take");
        keys.add(key("a"));
        clock.advance(SignedDuration::from_millis(250));
        assert!(has(
            &scrape(),
            "workqueue_queue_duration_seconds_count{name=\"unit-queue-take\"} 0"
        ));
        assert_eq!(keys.take(&key("a")), Duration::from_millis(250));
        let page = scrape();
        for line in [
            "workqueue_queue_duration_seconds_count{name=\"unit-queue-take\"} 1",
            "workqueue_queue_duration_seconds_sum{name=\"unit-queue-take\"} 0.25",
            // client-go's buckets are powers of ten from 10 ns to 1000 s.
            "workqueue_queue_duration_seconds_bucket{le=\"0.1\",name=\"unit-queue-take\"} 0",
            "workqueue_queue_duration_seconds_bucket{le=\"1.0\",name=\"unit-queue-take\"} 1",
        ] {
            assert!(has(&page, line), "missing {line:?} in\n{page}");
        }
        // A key re-added while its reconcile runs waits again, from the new request.
        keys.add(key("a"));
        clock.advance(secs(1));
        assert_eq!(keys.take(&key("a")), Duration::from_secs(1));
        assert_eq!(keys.adds.get(), 2);
    }

    #[test]
    fn queues_sharing_a_name_add_up_and_a_dropped_queue_stops_counting() {
        let (_c1, first) = queue("unit-queue-shared");
        let (_c2, second) = queue("unit-queue-shared");
        first.add(key("a"));
        second.add(key("a"));
        second.add(key("b"));
        assert!(has(&scrape(), "workqueue_depth{name=\"unit-queue-shared\"} 3"));
        drop(second);
        assert!(has(&scrape(), "workqueue_depth{name=\"unit-queue-shared\"} 1"));
        drop(first);
        assert!(has(&scrape(), "workqueue_depth{name=\"unit-queue-shared\"} 0"));
    }
}
