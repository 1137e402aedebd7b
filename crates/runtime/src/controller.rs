//! The controller every ironnet reconciler runs on: kube-runtime's `Controller` builder and applier, with the
//! work queue made observable.
//!
//! kube-runtime's scheduler (its work queue) is internal, so `workqueue_depth` and
//! `workqueue_queue_duration_seconds` cannot be read from it. This controller builds the same trigger streams
//! kube-runtime's `Controller` builds (with kube-runtime's own trigger functions) and hands them to
//! kube-runtime's `applier`, as `Controller::run` does; on the way, every request entering the applier, every
//! requeue a reconcile or its error policy asks for, and every key a worker takes is recorded in a
//! [`PendingKeys`] (see [`crate::metrics`] for what is exported). Reconciling itself (merging, debouncing,
//! concurrency, one reconcile per object at a time, requeues, graceful shutdown) stays kube-runtime's.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, BoxFuture};
use futures::stream::{self, BoxStream, SelectAll};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use ironnet_apimachinery::clock::SystemClock;
use kube::api::{Api, Resource};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{
    ReconcileReason, ReconcileRequest, trigger_owners, trigger_self, trigger_with,
};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::{CancelableJoinHandle, StreamBackoff};
use kube::runtime::watcher::{self, DefaultBackoff};
use serde::de::DeserializeOwned;
use tracing::Instrument;

pub use kube::runtime::controller::{Action, Config, Error};

use crate::metrics::Instrumented;
use crate::queue::{PendingKeys, QueueKey};

type Trigger<K> = BoxStream<'static, Result<ReconcileRequest<K>, watcher::Error>>;

/// A controller for kind `K`, built like kube-runtime's `Controller` (same builder methods, same meaning) and
/// run with a reconcile function wrapped by [`crate::metrics::instrument`].
pub struct Controller<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    triggers: SelectAll<Trigger<K>>,
    graceful_shutdown: Vec<BoxFuture<'static, ()>>,
    dyntype: K::DynamicType,
    reader: Store<K>,
    config: Config,
}

impl<K> Debug for Controller<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("dyntype", &self.dyntype)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<K> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Debug + Eq + Hash + Clone + Unpin + Send + Sync,
{
    /// A controller for the objects `main_api` lists and watches under `wc`, cached in its own store.
    #[must_use]
    pub fn new(main_api: Api<K>, wc: watcher::Config) -> Self {
        let (reader, writer) = reflector::store();
        let objects = reflector::reflector(writer, watcher::watcher(main_api, wc)).applied_objects();
        Self::for_stream(objects, reader)
    }

    /// A controller reconciling the objects `trigger` yields, looked up in `reader` (which the caller keeps
    /// filled, e.g. a shared informer's store).
    #[must_use]
    pub fn for_stream(
        trigger: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
        reader: Store<K>,
    ) -> Self {
        let dyntype = K::DynamicType::default();
        let mut triggers = SelectAll::new();
        triggers.push(trigger_self(trigger, dyntype.clone()).boxed());
        Controller {
            triggers,
            // Never resolves, so that a controller without a shutdown trigger runs until dropped.
            graceful_shutdown: vec![future::pending().boxed()],
            dyntype,
            reader,
            config: Config::default(),
        }
    }

    /// Sets the debounce and concurrency of the controller.
    #[must_use]
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The store the controller looks objects up in.
    pub fn store(&self) -> Store<K> {
        self.reader.clone()
    }

    /// Also reconciles the owner (of kind `K`) of every `Child` that changes, as named by its owner
    /// references; only the children's metadata is watched.
    #[must_use]
    pub fn owns<Child>(mut self, api: Api<Child>, wc: watcher::Config) -> Self
    where
        Child: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        // kube-runtime's own `owns` uses the same (deprecated) metadata watcher: an `Api<Child>` cannot be
        // turned into the `Api<PartialObjectMeta<Child>>` its replacement needs.
        #[allow(deprecated)]
        let children = kube::runtime::metadata_watcher(api, wc).touched_objects();
        self.triggers
            .push(trigger_owners(children, self.dyntype.clone(), ()).boxed());
        self
    }

    /// Also reconciles the objects `mapper` names for every `Other` that changes (watched through `api`).
    #[must_use]
    pub fn watches<Other, I>(
        self,
        api: Api<Other>,
        wc: watcher::Config,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
    ) -> Self
    where
        Other: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        Other::DynamicType: Default + Debug + Clone + Eq + Hash + Send,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        self.watches_with(api, Default::default(), wc, mapper)
    }

    /// [`Controller::watches`] for a kind whose type information is `dyntype` (dynamic objects).
    #[must_use]
    pub fn watches_with<Other, I>(
        self,
        api: Api<Other>,
        dyntype: Other::DynamicType,
        wc: watcher::Config,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
    ) -> Self
    where
        Other: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        Other::DynamicType: Debug + Clone + Eq + Hash + Send,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        let others = watcher::watcher(api, wc).touched_objects();
        self.watches_stream_with(others, mapper, dyntype)
    }

    /// Also reconciles the objects `mapper` names for every `Other` that `trigger` yields.
    #[must_use]
    pub fn watches_stream<Other, I>(
        self,
        trigger: impl Stream<Item = Result<Other, watcher::Error>> + Send + 'static,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
    ) -> Self
    where
        Other: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        Other::DynamicType: Default + Debug + Clone + Send,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        self.watches_stream_with(trigger, mapper, Default::default())
    }

    fn watches_stream_with<Other, I>(
        mut self,
        trigger: impl Stream<Item = Result<Other, watcher::Error>> + Send + 'static,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
        dyntype: Other::DynamicType,
    ) -> Self
    where
        Other: Resource + Send + 'static,
        Other::DynamicType: Clone + Send,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        // The reason names the related object, as kube-runtime's `watches` does (it shows in the reconcile span).
        let requests = trigger_with(trigger, move |other: Other| {
            let related = Box::new(ObjectRef::from_obj_with(&other, dyntype.clone()).erase());
            mapper(other).into_iter().map(move |obj_ref| ReconcileRequest {
                obj_ref,
                reason: ReconcileReason::RelatedObjectUpdated {
                    obj_ref: related.clone(),
                },
            })
        });
        self.triggers.push(requests.boxed());
        self
    }

    /// Also reconciles every object in the store each time `trigger` yields.
    #[must_use]
    pub fn reconcile_all_on(mut self, trigger: impl Stream<Item = ()> + Send + 'static) -> Self {
        let store = self.store();
        let dyntype = self.dyntype.clone();
        let requests = trigger.flat_map(move |()| {
            let dyntype = dyntype.clone();
            stream::iter(store.state().into_iter().map(move |obj| {
                Ok(ReconcileRequest {
                    obj_ref: ObjectRef::from_obj_with(&*obj, dyntype.clone()),
                    reason: ReconcileReason::BulkReconcile,
                })
            }))
        });
        self.triggers.push(requests.boxed());
        self
    }

    /// Also reconciles every object `trigger` names.
    #[must_use]
    pub fn reconcile_on(mut self, trigger: impl Stream<Item = ObjectRef<K>> + Send + 'static) -> Self {
        let requests = trigger.map(|obj_ref| {
            Ok(ReconcileRequest {
                obj_ref,
                reason: ReconcileReason::Unknown,
            })
        });
        self.triggers.push(requests.boxed());
        self
    }

    /// Once `trigger` resolves, starts no new reconcile, lets the running ones finish, then ends `run`'s
    /// stream.
    #[must_use]
    pub fn graceful_shutdown_on(mut self, trigger: impl Future<Output = ()> + Send + Sync + 'static) -> Self {
        self.graceful_shutdown.push(trigger.boxed());
        self
    }

    /// Runs `reconcile` (from [`crate::metrics::instrument`], whose name labels the queue metrics) on every
    /// requested object, at most `concurrency` at once and one at a time per object, requeueing as its
    /// [`Action`] or, on error, `error_policy` says. The stream yields each reconcile's outcome; nothing
    /// happens unless it is polled.
    pub fn run<Ctx, E>(
        self,
        reconcile: Instrumented<K, Ctx, E>,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        context: Arc<Ctx>,
    ) -> impl Stream<Item = Result<(ObjectRef<K>, Action), Error<E, watcher::Error>>> + Send
    where
        Ctx: Send + Sync + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let queue = PendingKeys::new(reconcile.name(), Arc::new(SystemClock));
        let entering = Arc::clone(&queue);
        let requests = StreamBackoff::new(self.triggers, DefaultBackoff::default())
            .take_until(future::select_all(self.graceful_shutdown))
            .inspect_ok(move |request: &ReconcileRequest<K>| entering.add(ref_key(&request.obj_ref)));
        let taken = Arc::clone(&queue);
        let reconciler = move |obj: Arc<K>, ctx: Arc<Ctx>| {
            let key = obj_key(&*obj);
            taken.take(&key);
            let requeued = Arc::clone(&taken);
            let run = reconcile.call(obj, ctx).inspect(move |result| {
                if let Ok(action) = result {
                    requeue(&requeued, key, action);
                }
            });
            // As kube-runtime's `Controller::run`: each reconcile is a task (parallel across the runtime's
            // threads), aborted if the controller is dropped.
            CancelableJoinHandle::spawn(run.in_current_span(), &tokio::runtime::Handle::current())
        };
        let retried = Arc::clone(&queue);
        let policy = move |obj: Arc<K>, err: &E, ctx: Arc<Ctx>| {
            let key = obj_key(&*obj);
            let action = error_policy(obj, err, ctx);
            requeue(&retried, key, &action);
            action
        };
        let gone = queue;
        kube::runtime::applier(reconciler, policy, context, self.reader, requests, self.config).inspect(
            move |outcome| {
                // kube-runtime takes a key whose object left the store without reconciling it: it leaves the
                // queue all the same.
                if let Err(Error::ObjectNotFound(obj_ref)) = outcome {
                    gone.take(&(obj_ref.namespace.clone(), obj_ref.name.clone()));
                }
            },
        )
    }
}

fn ref_key<K: Resource>(obj_ref: &ObjectRef<K>) -> QueueKey {
    (obj_ref.namespace.clone(), obj_ref.name.clone())
}

fn obj_key<K: Resource>(obj: &K) -> QueueKey {
    // The same name and namespace kube-runtime's `ObjectRef::from_obj` reads.
    let meta = obj.meta();
    (meta.namespace.clone(), meta.name.clone().unwrap_or_default())
}

/// Records the requeue `action` asks for (kube-runtime schedules it when the reconcile ends).
fn requeue(queue: &PendingKeys, key: QueueKey, action: &Action) {
    if let Some(delay) = requeue_after(action) {
        queue.add_after(key, delay);
    }
}

/// The delay after which `action` requeues its object (`None`: it waits for a change).
///
/// kube-runtime 5's `Action` keeps its delay private and offers only equality and `Debug`; the delay is read
/// from the `Debug` form (`Action { requeue_after: Some(1.5s) }`) and confirmed by rebuilding the action and
/// comparing, so a changed format can only make a requeue count as due at once, never as another delay.
pub fn requeue_after(action: &Action) -> Option<Duration> {
    if *action == Action::await_change() {
        return None;
    }
    let text = format!("{action:?}");
    let delay = text
        .split_once("Some(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(duration, _)| parse_debug_duration(duration));
    match delay {
        Some(delay) if Action::requeue(delay) == *action => Some(delay),
        _ => {
            tracing::debug!(action = %text, "requeue delay not readable; counted as due now");
            Some(Duration::ZERO)
        }
    }
}

/// Parses `Duration`'s `Debug` form (`5s`, `1.5s`, `250ms`, `3µs`, `7ns`): an exact decimal with a unit.
fn parse_debug_duration(text: &str) -> Option<Duration> {
    let (number, nanos_per_unit): (&str, u128) =
        [("ns", 1), ("µs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000)]
            .into_iter()
            .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, scale)))?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut nanos = whole.parse::<u128>().ok()?.checked_mul(nanos_per_unit)?;
    let mut scale = nanos_per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        nanos = nanos.checked_add(u128::from(digit - b'0') * scale)?;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requeue_delay_of_every_action_is_read_exactly() {
        assert_eq!(requeue_after(&Action::await_change()), None);
        for delay in [
            Duration::ZERO,
            Duration::from_nanos(7),
            Duration::from_micros(3),
            Duration::from_nanos(1_500),
            Duration::from_millis(250),
            Duration::from_millis(1_500),
            Duration::from_secs(5),
            Duration::new(1, 1),
            Duration::new(86_400 * 365, 999_999_999),
            Duration::from_secs(u64::MAX),
        ] {
            assert_eq!(requeue_after(&Action::requeue(delay)), Some(delay), "{delay:?}");
        }
    }

    #[test]
    fn a_malformed_duration_is_refused() {
        for text in ["", "s", ".5s", "1.5", "1,5s", "-1s", "1.5h", "1e3ms"] {
            assert_eq!(parse_debug_duration(text), None, "{text}");
        }
    }
}
