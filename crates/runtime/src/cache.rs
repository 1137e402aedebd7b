//! A reflector cache with a secondary index, shared between a watch and the reconciles that read it.
//!
//! Reconcilers that need "every NetworkInterface of this Network" used to list the whole namespace per
//! reconcile, which made convergence quadratic in the number of interfaces. An [`IndexedStore`] is a kube-rs
//! reflector [`Store`] plus an index from caller-defined keys (for example `net:<namespace>/<network>`) to
//! objects, fed by one watch.
//!
//! Ordering contract: [`indexed_reflector`] applies each watch event to the cache *before* it yields the
//! touched object downstream. A controller that takes its triggers from that stream
//! (`Controller::watches_stream` / `Controller::for_stream`) therefore never reconciles on an event its cache
//! has not seen yet: a reconcile reads a cache at least as new as whatever triggered it, and any later change
//! triggers again. The cache may still be older than the API server; writes derived from it must stay
//! conflict-checked (resourceVersion preconditions or server-side apply), as every reconciler here does.
//!
//! During a re-list (after a watch gap or a 410) the cache keeps serving the previous complete state; the
//! re-listed objects are yielded only once the new state is in place, together with the objects that
//! disappeared during the gap, so no trigger is evaluated against a half-built cache.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::Stream;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::informer::{Informer, Subscription};

/// The index keys of one object; an object may have any number of keys.
pub type IndexFn<K> = dyn Fn(&K) -> Vec<String> + Send + Sync;

/// The index key of `value` within `namespace` under the index named `index` (`<index>:<namespace>/<value>`).
///
/// Index functions and lookups should both build their keys with this, so that the namespaces of
/// namespaced objects are never confused.
pub fn index_key(index: &str, namespace: Option<&str>, value: &str) -> String {
    format!("{index}:{}/{value}", namespace.unwrap_or_default())
}

/// The name of the index of objects by the Network they are on (see [`by_network`]).
pub const BY_NETWORK: &str = "net";

/// An index function keying each object under `net:<namespace>/<its network>`, where `network_of` names the
/// object's Network (for example its `spec.networkRef.name`). Look objects up with
/// `index_key(BY_NETWORK, Some(namespace), network)`.
pub fn by_network<K: Resource + 'static>(
    network_of: fn(&K) -> &str,
) -> impl Fn(&K) -> Vec<String> + Send + Sync + 'static {
    move |o| {
        vec![index_key(
            BY_NETWORK,
            o.meta().namespace.as_deref(),
            network_of(o),
        )]
    }
}

/// A secondary index over a reflector cache: the keys of each object and the objects under each key.
pub(crate) struct Index<K: Resource<DynamicType = ()>> {
    /// The keys each cached object is indexed under.
    keys: HashMap<ObjectRef<K>, Vec<String>>,
    /// The objects under each key.
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    /// The objects of an ongoing re-list, swapped in at `InitDone`.
    relist: Option<HashMap<ObjectRef<K>, Vec<String>>>,
}

impl<K: Resource<DynamicType = ()>> Index<K> {
    pub(crate) fn new() -> Self {
        Index {
            keys: HashMap::new(),
            by_key: HashMap::new(),
            relist: None,
        }
    }

    pub(crate) fn remove(&mut self, r: &ObjectRef<K>) {
        for key in self.keys.remove(r).unwrap_or_default() {
            if let Some(set) = self.by_key.get_mut(&key) {
                set.remove(r);
                if set.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    pub(crate) fn insert(&mut self, r: ObjectRef<K>, keys: Vec<String>) {
        self.remove(&r);
        for key in &keys {
            self.by_key.entry(key.clone()).or_default().insert(r.clone());
        }
        self.keys.insert(r, keys);
    }

    /// Starts collecting a re-list; the current index keeps serving until [`Index::finish_relist`].
    pub(crate) fn begin_relist(&mut self) {
        self.relist = Some(HashMap::new());
    }

    /// Records one object of the ongoing re-list.
    pub(crate) fn relist_insert(&mut self, r: ObjectRef<K>, keys: Vec<String>) {
        self.relist.get_or_insert_with(HashMap::new).insert(r, keys);
    }

    /// The indexed objects missing from the ongoing re-list (gone during the watch gap).
    pub(crate) fn vanished_in_relist(&self) -> Vec<ObjectRef<K>> {
        let empty = HashMap::new();
        let fresh = self.relist.as_ref().unwrap_or(&empty);
        self.keys
            .keys()
            .filter(|r| !fresh.contains_key(r))
            .cloned()
            .collect()
    }

    /// Replaces the index with the completed re-list.
    pub(crate) fn finish_relist(&mut self) {
        let objects = self.relist.take().unwrap_or_default();
        self.by_key.clear();
        for (r, keys) in &objects {
            for key in keys {
                self.by_key.entry(key.clone()).or_default().insert(r.clone());
            }
        }
        self.keys = objects;
    }
}

/// A read handle on an indexed reflector cache. Cheap to clone; every clone sees the same cache.
pub struct IndexedStore<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    index: Arc<RwLock<Index<K>>>,
    index_fn: Arc<IndexFn<K>>,
    /// `true` once the first complete list is in the cache.
    ///
    /// Not kube-rs's `Store::wait_until_ready`: its `DelayedInit` keeps the waker of only the task that
    /// polled it last, so of several reconciles waiting at once all but one sleep forever (kube-runtime
    /// 5.0). A `watch` channel wakes every waiter.
    ready: tokio::sync::watch::Receiver<bool>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for IndexedStore<K> {
    fn clone(&self) -> Self {
        IndexedStore {
            store: self.store.clone(),
            index: Arc::clone(&self.index),
            index_fn: Arc::clone(&self.index_fn),
            ready: self.ready.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> std::fmt::Debug for IndexedStore<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let index = self
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.debug_struct("IndexedStore")
            .field("objects", &index.keys.len())
            .field("keys", &index.by_key.len())
            .finish()
    }
}

impl<K> IndexedStore<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    pub(crate) fn new(
        store: Store<K>,
        index: Arc<RwLock<Index<K>>>,
        index_fn: Arc<IndexFn<K>>,
        ready: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        IndexedStore {
            store,
            index,
            index_fn,
            ready,
        }
    }

    /// The plain kube-rs reader over the same objects (for `Controller::for_stream`).
    pub fn reader(&self) -> Store<K> {
        self.store.clone()
    }

    /// Waits until the first complete list is in the cache.
    ///
    /// Reconcilers call this before trusting an absence in the cache; it returns at once afterwards. It also
    /// returns (and the cache stays empty) if the feeding stream is dropped before its first list.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        // An error means the feeding task ended before its first list; the cache then stays empty.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// The cached object `name` in `namespace` (`None` for cluster-scoped kinds), if any.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut r = ObjectRef::new(name);
        if let Some(ns) = namespace {
            r = r.within(ns);
        }
        self.store.get(&r)
    }

    /// The cached objects indexed under `key` (built with [`index_key`]), in no particular order.
    ///
    /// Each object returned is re-checked against the index function, so a lookup racing with an update
    /// never returns an object that no longer has the key.
    pub fn indexed(&self, key: &str) -> Vec<Arc<K>> {
        let refs: Vec<ObjectRef<K>> = {
            let index = self
                .index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            index
                .by_key
                .get(key)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        refs.iter()
            .filter_map(|r| self.store.get(r))
            .filter(|o| (self.index_fn)(o).iter().any(|k| k == key))
            .collect()
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.store.state()
    }
}

/// Feeds `events` (a kube-rs watcher stream) into a new [`IndexedStore`] indexed by `index_fn`.
///
/// Returns the store and the stream of touched objects (applied, deleted, or re-listed), each yielded only
/// after the cache holds it; hand it to `Controller::watches_stream` / `for_stream`. This is an
/// [`Informer`] with a single subscriber: for a kind several controllers watch, share one informer instead
/// (see [`crate::informer::Informers`]).
///
/// The watch is driven by a task of its own (spawned here, so this needs a tokio runtime), not by whoever
/// polls the returned stream: a kube-rs controller stops polling its trigger streams while all its
/// reconcile slots are busy, and reconciles that wait for this cache to be ready would otherwise wait
/// forever. The task ends when the returned stream is dropped. Watch errors are logged, not yielded.
pub fn indexed_reflector<K, S>(
    index_fn: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    events: S,
) -> (IndexedStore<K>, Subscription<K>)
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let informer = Informer::new(index_fn, events);
    (informer.store(), informer.subscribe())
}

/// A fingerprint of the parts of an object a controller reacts to, for
/// [`Informer::subscribe_filtered`]: the hash of their JSON form.
pub fn fingerprint(relevant: &impl serde::Serialize) -> u64 {
    hash_of(&serde_json::to_string(relevant).unwrap_or_default())
}

/// The hash of `value`, for predicates and fingerprints that compare what a controller reads (stable within
/// one process, which is all a predicate cache needs).
pub fn hash_of(value: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use ironnet_api::apinet::NetworkInterface;
    use kube::ResourceExt;

    fn nic(name: &str, network: &str) -> NetworkInterface {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"networkRef": {"name": network}, "nodeRef": {"name": "n"}, "ips": ["10.0.0.1"]},
        }))
        .expect("valid interface")
    }

    fn by_network(n: &NetworkInterface) -> Vec<String> {
        vec![index_key(
            "net",
            n.namespace().as_deref(),
            &n.spec.network_ref.name,
        )]
    }

    fn names(v: Vec<Arc<NetworkInterface>>) -> Vec<String> {
        let mut n: Vec<String> = v.iter().map(|o| o.name_any()).collect();
        n.sort();
        n
    }

    type Ev = Result<watcher::Event<NetworkInterface>, watcher::Error>;

    #[tokio::test]
    async fn events_update_the_index_before_they_are_yielded() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
        let (store, touched) = indexed_reflector(by_network, rx);
        let mut touched = Box::pin(touched);
        let a = index_key("net", Some("ns"), "a");
        let b = index_key("net", Some("ns"), "b");

        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitApply(nic("n1", "a"))))
            .expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitApply(nic("n2", "a"))))
            .expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        let mut first = Vec::new();
        for _ in 0..2 {
            first.push(touched.next().await.expect("item").expect("ok").name_any());
            // Whatever the consumer sees, the cache already holds.
            assert_eq!(names(store.indexed(&a)), ["n1", "n2"]);
        }
        first.sort();
        assert_eq!(first, ["n1", "n2"]);
        store.wait_ready().await;

        // A move to another network leaves the old key.
        tx.unbounded_send(Ok(watcher::Event::Apply(nic("n2", "b"))))
            .expect("send");
        assert_eq!(touched.next().await.expect("item").expect("ok").name_any(), "n2");
        assert_eq!(names(store.indexed(&a)), ["n1"]);
        assert_eq!(names(store.indexed(&b)), ["n2"]);

        tx.unbounded_send(Ok(watcher::Event::Delete(nic("n1", "a"))))
            .expect("send");
        assert_eq!(touched.next().await.expect("item").expect("ok").name_any(), "n1");
        assert!(store.indexed(&a).is_empty());
        assert!(store.get(Some("ns"), "n1").is_none());
        assert!(store.get(Some("ns"), "n2").is_some());
        assert!(store.indexed(&index_key("net", Some("other"), "b")).is_empty());
    }

    #[tokio::test]
    async fn irrelevant_updates_are_cached_but_not_yielded() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
        let informer = Informer::new(by_network, rx);
        let (store, mut touched) = (
            informer.store(),
            informer.subscribe_filtered(|n: &NetworkInterface| fingerprint(n.labels())),
        );
        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::Apply(nic("n1", "a"))))
            .expect("send");
        assert_eq!(
            touched.next().await.expect("item").expect("ok").name_any(),
            "n1",
            "creations pass"
        );

        // Same labels, new IPs: cached, not yielded.
        let mut quiet = nic("n1", "a");
        quiet.spec.ips = vec!["10.0.0.2".parse().expect("ip")];
        tx.unbounded_send(Ok(watcher::Event::Apply(quiet))).expect("send");
        let mut labelled = nic("n1", "a");
        labelled.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
        tx.unbounded_send(Ok(watcher::Event::Apply(labelled)))
            .expect("send");
        let next = touched.next().await.expect("item").expect("ok");
        assert_eq!(
            next.labels().get("app").map(String::as_str),
            Some("web"),
            "the quiet update was held back"
        );
        let cached = store.get(Some("ns"), "n1").expect("cached");
        assert_eq!(cached.labels().len(), 1);

        // A deletion passes although nothing relevant changed.
        tx.unbounded_send(Ok(watcher::Event::Delete(next))).expect("send");
        assert_eq!(touched.next().await.expect("item").expect("ok").name_any(), "n1");
        assert!(store.get(Some("ns"), "n1").is_none());
    }

    #[tokio::test]
    async fn every_concurrent_waiter_wakes_when_the_first_list_is_done() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
        let (store, touched) = indexed_reflector(by_network, rx);
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.wait_ready().await })
            })
            .collect();
        // Every waiter has polled (and parked) before the list completes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        for w in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("every waiter wakes, not only the last one to poll")
                .expect("waiter task");
        }
        drop(touched);
    }

    #[tokio::test]
    async fn a_relist_serves_the_old_state_until_done_then_yields_new_and_vanished_objects() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
        let (store, touched) = indexed_reflector(by_network, rx);
        let mut touched = Box::pin(touched);
        let a = index_key("net", Some("ns"), "a");
        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitApply(nic("old", "a"))))
            .expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        touched.next().await.expect("item").expect("ok");

        // The watch restarts; during the re-list the previous state is still served.
        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitApply(nic("new", "a"))))
            .expect("send");
        tx.unbounded_send(Err(watcher::Error::NoResourceVersion))
            .expect("send");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(names(store.indexed(&a)), ["old"]);

        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        let mut yielded = vec![
            touched.next().await.expect("item").expect("ok").name_any(),
            touched.next().await.expect("item").expect("ok").name_any(),
        ];
        yielded.sort();
        assert_eq!(
            yielded,
            ["new", "old"],
            "the vanished object triggers its dependents too"
        );
        assert_eq!(names(store.indexed(&a)), ["new"]);
        assert!(store.get(Some("ns"), "old").is_none());
    }
}
