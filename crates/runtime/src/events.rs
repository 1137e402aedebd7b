//! Kubernetes Events, recorded the one way every ironnet controller records them.
//!
//! An [`EventRecorder`] writes `events.k8s.io/v1` Events (the API server mirrors them to core/v1, where
//! `kubectl describe` and `kubectl events` read them) under one reporting controller name per component.
//! Repeats are folded into an event **series** as client-go's recorder does: the first occurrence creates
//! an Event, every repeat within [`SERIES_TTL`] of the last one patches that Event's `series.count` and
//! `series.lastObservedTime` instead of creating another, so a reconcile that keeps hitting the same problem
//! leaves one Event with a count (`kubectl describe` shows `(x7 over 3m)`).
//!
//! Repeats are recognised by the regarding object, type, reason, action **and note**. kube-runtime's
//! `Recorder` and client-go's `tools/events` key without the note, so a changed message (e.g. "applied to 3
//! network interfaces" after "applied to 2") would only bump the count of the first Event and the new text
//! would be lost; client-go's core/v1 recorder (`tools/record`) keys with the message, as here.
//!
//! Recording never fails a reconcile: [`EventRecorder::record`] logs a failed write and carries on (an
//! Event is advice, and the API server may refuse it, e.g. without RBAC on events).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

pub use kube::runtime::events::EventType;

/// The reasons ironnet's components record, in one place so that a reason means one thing everywhere.
/// Upstream IronCore records none of these moments (its only networking reasons are the scheduler's
/// `OutOfCapacity` and metalnet's `NetworkNotFound`), so they are CamelCase in kube's style.
pub mod reason {
    /// Normal: an object got its addresses (a VirtualIP, NAT gateway or load balancer its public IPs, a
    /// network interface its IPs).
    pub const ADDRESS_ALLOCATED: &str = "AddressAllocated";
    /// Warning: an allocation failed because the pool it draws from has no free value left.
    pub const POOL_EXHAUSTED: &str = "PoolExhausted";
    /// Normal: a Network peering is declared here but not (yet) mutual.
    pub const PEERING_PENDING: &str = "PeeringPending";
    /// Normal: a network interface was bound to its interface on a node.
    pub const PLACED: &str = "Placed";
    /// Normal: a network interface is ready on its node.
    pub const READY: &str = "Ready";
    /// Normal: a NetworkPolicy's rule now selects a (new) number of network interfaces.
    pub const POLICY_APPLIED: &str = "PolicyApplied";
}

/// How long after its last occurrence a series still absorbs repeats (client-go's and kube-runtime's 6
/// minutes); a later repeat starts a new Event.
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// At most this many series are remembered per recorder (client-go's event cache size); beyond it the
/// oldest are forgotten first, so a repeat of a forgotten one creates a new Event.
pub const MAX_SERIES: usize = 4096;

/// One occurrence to record about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// `Normal` or `Warning`.
    pub type_: EventType,
    /// Why, in CamelCase (`AddressAllocated`, `PoolExhausted`): what `kubectl describe` shows as Reason.
    pub reason: String,
    /// What the controller was doing (`Allocate`, `Peer`); kept in the Event's `action`.
    pub action: String,
    /// The human-readable message (`kubectl describe`'s Message), at most 1 kB as the API requires.
    pub note: String,
}

impl Occurrence {
    /// A `Normal` occurrence.
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self::new(EventType::Normal, reason, action, note)
    }

    /// A `Warning` occurrence.
    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self::new(EventType::Warning, reason, action, note)
    }

    fn new(type_: EventType, reason: &str, action: &str, note: impl Into<String>) -> Self {
        Occurrence {
            type_,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: truncate(note.into(), NOTE_LIMIT),
        }
    }
}

/// events.k8s.io/v1 refuses notes longer than this many bytes.
const NOTE_LIMIT: usize = 1024;

fn truncate(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The regarding object as (apiVersion, kind, namespace, name, uid).
type RegardingKey = (String, String, String, String, String);

/// What identifies a series: the object and everything `kubectl describe` shows except the count.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    regarding: RegardingKey,
    type_: &'static str,
    reason: String,
    action: String,
    note: String,
}

/// The Event a series lives in, and how often it occurred.
#[derive(Clone, Debug)]
struct Series {
    name: String,
    count: i32,
    last: jiff::Timestamp,
}

#[derive(Default)]
struct Cache {
    series: HashMap<SeriesKey, Series>,
    /// The last note recorded per (regarding object, reason), for [`EventRecorder::record_change`].
    latest: HashMap<(RegardingKey, String), String>,
}

/// Occurrences waiting to be written, at most this many per recorder (client-go's broadcaster queue size);
/// beyond it new ones are dropped and logged, so a flood of Events never blocks or grows a controller.
pub const MAX_QUEUED: usize = 1000;

struct Inner {
    client: Client,
    controller: String,
    instance: String,
    cache: Mutex<Cache>,
    queue: tokio::sync::mpsc::Sender<(ObjectReference, Occurrence)>,
}

/// Writes the queued occurrences one at a time, in order (so a repeat finds the Event of its first
/// occurrence), until every handle of the recorder is gone.
async fn write_queued(
    inner: std::sync::Weak<Inner>,
    mut queue: tokio::sync::mpsc::Receiver<(ObjectReference, Occurrence)>,
) {
    while let Some((regarding, occurrence)) = queue.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let recorder = EventRecorder { inner };
        if let Err(e) = recorder.publish(&regarding, &occurrence).await {
            tracing::debug!(
                controller = %recorder.inner.controller,
                object = ?regarding.name,
                reason = %occurrence.reason,
                error = %e,
                "recording an event failed"
            );
        }
    }
}

/// Records Events under one reporting controller name, folding repeats into series (see the module
/// documentation). Cheap to clone; clones share the series.
#[derive(Clone)]
pub struct EventRecorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("controller", &self.inner.controller)
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

fn type_str(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn regarding_key(r: &ObjectReference) -> RegardingKey {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    (
        s(&r.api_version),
        s(&r.kind),
        s(&r.namespace),
        s(&r.name),
        s(&r.uid),
    )
}

/// This machine's host name, which tells replicas of one controller apart in `reportingInstance`.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

impl EventRecorder {
    /// A recorder writing through `client` as reporting controller `controller` (`kubectl describe`'s
    /// "From"); the reporting instance is `<controller>-<host name>`. Starts the task that writes what
    /// [`record`](Self::record) queues, so it must be called inside a tokio runtime; the task ends when the
    /// last handle is dropped.
    pub fn new(client: Client, controller: &str) -> Self {
        let instance = match host_name() {
            Some(host) => format!("{controller}-{host}"),
            None => controller.to_owned(),
        };
        let (queue, queued) = tokio::sync::mpsc::channel(MAX_QUEUED);
        let inner = Arc::new(Inner {
            client,
            controller: controller.to_owned(),
            instance,
            cache: Mutex::new(Cache::default()),
            queue,
        });
        tokio::spawn(write_queued(Arc::downgrade(&inner), queued));
        EventRecorder { inner }
    }

    /// The reporting controller name.
    pub fn controller(&self) -> &str {
        &self.inner.controller
    }

    /// Queues `occurrence` about `obj` for writing and returns at once, as client-go's recorder does: a
    /// reconcile never waits for its Events. A failed write is logged, never returned (see the module docs).
    pub async fn record<K>(&self, obj: &K, occurrence: Occurrence)
    where
        K: Resource<DynamicType = ()>,
    {
        let regarding = obj.object_ref(&());
        self.lock().latest.insert(
            (regarding_key(&regarding), occurrence.reason.clone()),
            occurrence.note.clone(),
        );
        self.enqueue(regarding, occurrence);
    }

    /// Records `occurrence` about `obj` only if its note differs from the last one this recorder recorded
    /// for the same object and reason: for states that are re-derived on every reconcile ("applied to 3
    /// network interfaces"), which should leave an Event when they change, not on every pass. After a
    /// restart the current state is recorded once again.
    pub async fn record_change<K>(&self, obj: &K, occurrence: Occurrence)
    where
        K: Resource<DynamicType = ()>,
    {
        let regarding = obj.object_ref(&());
        let key = (regarding_key(&regarding), occurrence.reason.clone());
        let changed = {
            let mut cache = self.lock();
            if cache.latest.get(&key) == Some(&occurrence.note) {
                false
            } else {
                if cache.latest.len() >= MAX_SERIES {
                    cache.latest.clear();
                }
                cache.latest.insert(key, occurrence.note.clone());
                true
            }
        };
        if changed {
            self.enqueue(regarding, occurrence);
        }
    }

    fn enqueue(&self, regarding: ObjectReference, occurrence: Occurrence) {
        if let Err(e) = self.inner.queue.try_send((regarding, occurrence)) {
            tracing::debug!(
                controller = %self.inner.controller,
                error = %e,
                "event queue full; event dropped"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `occurrence` about `regarding` now: a new Event, or the next count of its live series.
    ///
    /// [`record`](Self::record) goes through one queue, so its occurrences are written one at a time; a caller
    /// of this method directly racing the queue with the first occurrence of a series could create two
    /// Events.
    ///
    /// # Errors
    ///
    /// The API server's answer when it refuses the Event (e.g. 403 without RBAC on events).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        occurrence: &Occurrence,
    ) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let key = SeriesKey {
            regarding: regarding_key(regarding),
            type_: type_str(occurrence.type_),
            reason: occurrence.reason.clone(),
            action: occurrence.action.clone(),
            note: occurrence.note.clone(),
        };
        let live = {
            let mut cache = self.lock();
            let ttl = jiff::SignedDuration::try_from(SERIES_TTL).unwrap_or_default();
            cache.series.retain(|_, s| s.last + ttl > now);
            cache.series.get(&key).cloned()
        };
        let namespace = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let events: Api<K8sEvent> = Api::namespaced(self.inner.client.clone(), &namespace);
        let series = match live {
            Some(mut s) => {
                s.count += 1;
                s.last = now;
                let patch = json!({ "series": EventSeries {
                    count: s.count,
                    last_observed_time: MicroTime(now),
                } });
                match events
                    .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => s,
                    // The Event expired or was deleted on the server: start over with a new one.
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.create(&events, regarding, occurrence, now).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => self.create(&events, regarding, occurrence, now).await?,
        };
        let mut cache = self.lock();
        if cache.series.len() >= MAX_SERIES && !cache.series.contains_key(&key) {
            let oldest = cache
                .series
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                cache.series.remove(&k);
            }
        }
        if cache.latest.len() >= MAX_SERIES {
            cache.latest.clear();
        }
        cache
            .latest
            .insert((key.regarding.clone(), key.reason.clone()), key.note.clone());
        cache.series.insert(key, series);
        Ok(())
    }

    async fn create(
        &self,
        events: &Api<K8sEvent>,
        regarding: &ObjectReference,
        occurrence: &Occurrence,
        now: jiff::Timestamp,
    ) -> Result<Series, kube::Error> {
        let stem = regarding.name.as_deref().unwrap_or(&self.inner.controller);
        // client-go's name: the object's name and the time in hex nanoseconds, unique per occurrence.
        let name = format!("{stem}.{:x}", now.as_nanosecond());
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            action: Some(occurrence.action.clone()),
            reason: Some(occurrence.reason.clone()),
            note: Some(occurrence.note.clone()),
            type_: Some(type_str(occurrence.type_).to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.inner.controller.clone()),
            reporting_instance: Some(self.inner.instance.clone()),
            ..Default::default()
        };
        let created = events.create(&PostParams::default(), &event).await?;
        Ok(Series {
            name: created.metadata.name.unwrap_or(name),
            count: 1,
            last: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_at_the_api_limit_on_a_character_boundary() {
        let long = "ä".repeat(600);
        let o = Occurrence::warning("PoolExhausted", "Allocate", long);
        assert!(o.note.len() <= NOTE_LIMIT);
        assert_eq!(o.note.len(), NOTE_LIMIT);
        assert!(o.note.chars().all(|c| c == 'ä'));
        let short = Occurrence::normal("AddressAllocated", "Allocate", "ok");
        assert_eq!(short.note, "ok");
        assert_eq!(short.type_, EventType::Normal);
    }
}
