//! One watch per kind, shared by every controller of a process (client-go's shared informers).
//!
//! A NetworkInterface event used to be decoded, cloned into a cache and indexed once per controller that
//! watched NetworkInterfaces: six times in the controller-manager alone. An [`Informer`] runs one watch into
//! one [`IndexedStore`] and hands each touched object to any number of subscribers; [`Informers`] keeps one
//! informer per kind for a whole process, so every controller reads the same cache.
//!
//! Ordering contract (as for [`crate::cache`]): an event is applied to the cache *before* any subscriber sees
//! the touched object, so a reconcile triggered by a subscription reads a cache at least as new as its
//! trigger. A subscriber that joins after the first list receives every cached object first, so joining late
//! loses nothing.
//!
//! Watch errors are logged by the informer and not handed on: kube-rs retries the watch (with backoff), and
//! subscribers could do nothing with them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::cache::{Index, IndexFn, IndexedStore};

/// The fingerprint of what one subscriber reacts to (see [`Informer::subscribe_filtered`]).
type RelevantFn<K> = Box<dyn Fn(&K) -> u64 + Send + Sync>;

/// One subscription: where its objects go, and which updates it ignores.
struct Subscriber<K> {
    tx: mpsc::UnboundedSender<K>,
    relevant: Option<RelevantFn<K>>,
}

/// The subscribers of one informer, and whether its first list is in (late subscribers then get a replay).
struct Hub<K> {
    subscribers: Vec<Subscriber<K>>,
    listed: bool,
}

/// A watch of one kind feeding one indexed cache and any number of subscribers.
///
/// Cheap to clone; every clone shares the watch. The watch runs on a task of its own (so this needs a tokio
/// runtime) and stops once every clone of the informer and every subscription is dropped. It does not depend
/// on anyone polling the subscriptions: a kube-rs controller stops polling its trigger streams while all its
/// reconcile slots are busy, and the cache must go on filling meanwhile (reconciles may be waiting for it).
pub struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: IndexedStore<K>,
    hub: Arc<Mutex<Hub<K>>>,
    /// Held by every handle and subscription; the feeding task stops when the last one is dropped.
    alive: watch::Receiver<()>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            hub: Arc::clone(&self.hub),
            alive: self.alive.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Debug for Informer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subscribers = self
            .hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribers
            .len();
        f.debug_struct("Informer")
            .field("store", &self.store)
            .field("subscribers", &subscribers)
            .finish()
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// Starts feeding `events` (a kube-rs watcher stream) into a new cache indexed by `index_fn`.
    pub fn new<S>(index_fn: impl Fn(&K) -> Vec<String> + Send + Sync + 'static, events: S) -> Self
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let mut writer: Writer<K> = Writer::new(());
        let index_fn: Arc<IndexFn<K>> = Arc::new(index_fn);
        let (ready_tx, ready) = watch::channel(false);
        let index = Arc::new(RwLock::new(Index::new()));
        let store = IndexedStore::new(
            writer.as_reader(),
            Arc::clone(&index),
            Arc::clone(&index_fn),
            ready,
        );
        let hub = Arc::new(Mutex::new(Hub {
            subscribers: Vec::new(),
            listed: false,
        }));
        let (alive_tx, alive) = watch::channel(());
        let feed_hub = Arc::clone(&hub);
        let reader = writer.as_reader();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            loop {
                let event = tokio::select! {
                    () = alive_tx.closed() => break,
                    event = events.next() => event,
                };
                let event = match event {
                    None => break,
                    Some(Ok(event)) => event,
                    Some(Err(error)) => {
                        tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
                        continue;
                    }
                };
                let mut hub = feed_hub.lock().unwrap_or_else(PoisonError::into_inner);
                let mut idx = index.write().unwrap_or_else(PoisonError::into_inner);
                match &event {
                    watcher::Event::Apply(obj) => {
                        let r = ObjectRef::from_obj(obj);
                        let old = reader.get(&r);
                        writer.apply_watcher_event(&event);
                        idx.insert(r, index_fn(obj));
                        drop(idx);
                        hub.subscribers.retain(|s| {
                            let unchanged = s
                                .relevant
                                .as_ref()
                                .zip(old.as_deref())
                                .is_some_and(|(f, old)| f(old) == f(obj));
                            unchanged || s.tx.send(obj.clone()).is_ok()
                        });
                    }
                    watcher::Event::Delete(obj) => {
                        writer.apply_watcher_event(&event);
                        idx.remove(&ObjectRef::from_obj(obj));
                        drop(idx);
                        hub.subscribers.retain(|s| s.tx.send(obj.clone()).is_ok());
                    }
                    watcher::Event::Init => {
                        writer.apply_watcher_event(&event);
                        idx.begin_relist();
                    }
                    watcher::Event::InitApply(obj) => {
                        writer.apply_watcher_event(&event);
                        idx.relist_insert(ObjectRef::from_obj(obj), index_fn(obj));
                    }
                    watcher::Event::InitDone => {
                        // The objects gone during a watch gap: their dependents must be re-evaluated too.
                        let gone: Vec<Arc<K>> = idx
                            .vanished_in_relist()
                            .iter()
                            .filter_map(|r| reader.get(r))
                            .collect();
                        writer.apply_watcher_event(&event);
                        idx.finish_relist();
                        drop(idx);
                        ready_tx.send_replace(true);
                        hub.listed = true;
                        let state = reader.state();
                        hub.subscribers.retain(|s| {
                            gone.iter()
                                .chain(state.iter())
                                .all(|o| s.tx.send(K::clone(o)).is_ok())
                        });
                    }
                }
            }
        });
        Informer { store, hub, alive }
    }

    /// The cache this informer fills.
    pub fn store(&self) -> IndexedStore<K> {
        self.store.clone()
    }

    /// Every object the watch touches from now on (applied, deleted, or re-listed after a gap), each handed
    /// over only once the cache holds it. Joining after the first list first yields every cached object.
    /// For `Controller::for_stream` / `watches_stream`.
    pub fn subscribe(&self) -> Subscription<K> {
        self.add_subscriber(None)
    }

    /// As [`Informer::subscribe`], but an update whose `relevant` fingerprint equals that of the cached
    /// version is not handed over: the controller it triggers would find nothing new.
    ///
    /// Unlike kube-rs's `predicate_filter`, creations, deletions and re-lists are always handed over (a
    /// deletion does not change the object, yet its dependents must hear of it); only no-op updates are held
    /// back.
    pub fn subscribe_filtered(
        &self,
        relevant: impl Fn(&K) -> u64 + Send + Sync + 'static,
    ) -> Subscription<K> {
        self.add_subscriber(Some(Box::new(relevant)))
    }

    fn add_subscriber(&self, relevant: Option<RelevantFn<K>>) -> Subscription<K> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
            if hub.listed {
                // Under the hub lock no event is in flight, so the replay and later events do not interleave.
                for o in self.store.state() {
                    let _ = tx.send(K::clone(&o));
                }
            }
            hub.subscribers.push(Subscriber { tx, relevant });
        }
        Subscription {
            rx,
            _alive: self.alive.clone(),
        }
    }
}

/// The objects an [`Informer`] hands one subscriber (see [`Informer::subscribe`]); it keeps the watch
/// running while it exists. Never yields an error: the informer logs watch errors and retries.
pub struct Subscription<K> {
    rx: mpsc::UnboundedReceiver<K>,
    _alive: watch::Receiver<()>,
}

impl<K> Stream for Subscription<K> {
    type Item = Result<K, watcher::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

impl<K> Debug for Subscription<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("queued", &self.rx.len())
            .finish()
    }
}

/// The kinds an [`Informers`] registry can share, with the index their cache keeps.
///
/// One index per kind, because every controller of the process reads the same cache. Every shared kind is
/// namespaced (a registry may watch one namespace).
pub trait Informed:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The index keys of this object (see [`crate::cache::index_key`]); empty for kinds looked up by name
    /// only.
    fn index_keys(&self) -> Vec<String>;
}

/// One [`Informer`] per kind for a whole process, started on first use.
///
/// The controller-manager builds one and hands it to every controller, so each kind is watched, decoded and
/// cached once. All of a registry's informers stop when the registry and every subscription are dropped.
///
/// Cheap to clone; every clone is the same registry.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    /// The namespace watched, or every namespace.
    namespace: Option<String>,
    by_kind: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl Informers {
    /// An empty registry whose informers watch through `client`.
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            namespace: None,
            by_kind: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// An empty registry whose informers watch only `namespace` through `client` (for a component whose
    /// objects all live in one namespace, like apinetlet's apinet objects).
    pub fn namespaced(client: Client, namespace: &str) -> Self {
        Informers {
            client,
            namespace: Some(namespace.to_owned()),
            by_kind: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The client the informers watch through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The informer of kind `K` across all namespaces (or the registry's one), started by the first call.
    pub fn get<K: Informed>(&self) -> Informer<K> {
        let mut by_kind = self.by_kind.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(informer) = by_kind
            .get(&TypeId::of::<K>())
            .and_then(|e| e.downcast_ref::<Informer<K>>())
        {
            return informer.clone();
        }
        let api = match &self.namespace {
            Some(ns) => Api::<K>::namespaced(self.client.clone(), ns),
            None => Api::<K>::all(self.client.clone()),
        };
        let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let informer = Informer::new(K::index_keys, events);
        by_kind.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds = self.by_kind.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Informers").field("kinds", &kinds).finish()
    }
}

/// The index key of an object on a Network: `net:<namespace>/<network>` (see [`crate::cache::BY_NETWORK`]).
fn on_network(o: &impl Resource, network: &str) -> Vec<String> {
    vec![crate::cache::index_key(
        crate::cache::BY_NETWORK,
        o.meta().namespace.as_deref(),
        network,
    )]
}

/// Kinds on a Network (`spec.networkRef.name`), indexed by it.
macro_rules! informed_by_network {
    ($($kind:ty),* $(,)?) => {$(
        impl Informed for $kind {
            fn index_keys(&self) -> Vec<String> {
                on_network(self, &self.spec.network_ref.name)
            }
        }
    )*};
}

/// Kinds looked up by name only.
macro_rules! informed_unindexed {
    ($($kind:ty),* $(,)?) => {$(
        impl Informed for $kind {
            fn index_keys(&self) -> Vec<String> {
                Vec::new()
            }
        }
    )*};
}

informed_by_network!(
    ironnet_api::networking::NetworkInterface,
    ironnet_api::networking::LoadBalancer,
    ironnet_api::networking::NATGateway,
    ironnet_api::apinet::NetworkInterface,
    ironnet_api::apinet::NATGateway,
    ironnet_api::apinet::LoadBalancer,
);

informed_unindexed!(
    ironnet_api::networking::Network,
    ironnet_api::apinet::Network,
    ironnet_api::apinet::IP,
    ironnet_api::apinet::LoadBalancerRouting,
    ironnet_api::apinet::NATGatewayAutoscaler,
    ironnet_api::apinet::NetworkPolicy,
    ironnet_api::apinet::NetworkPolicyRule,
);

/// The name of the index of VirtualIPs by the UID of the object they are bound to (`spec.targetRef.uid`).
pub const BY_TARGET_UID: &str = "target";

impl Informed for ironnet_api::networking::VirtualIP {
    fn index_keys(&self) -> Vec<String> {
        self.spec
            .target_ref
            .iter()
            .map(|t| crate::cache::index_key(BY_TARGET_UID, self.meta().namespace.as_deref(), &t.uid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::fingerprint;
    use ironnet_api::apinet::NetworkInterface;
    use kube::ResourceExt;
    use std::time::Duration;

    type Ev = Result<watcher::Event<NetworkInterface>, watcher::Error>;

    fn nic(name: &str, app: &str) -> NetworkInterface {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": app}},
            "spec": {"networkRef": {"name": "net"}, "nodeRef": {"name": "n"}, "ips": ["10.0.0.1"]},
        }))
        .expect("valid interface")
    }

    async fn next_name(s: &mut Subscription<NetworkInterface>) -> String {
        tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("an item in time")
            .expect("open")
            .expect("ok")
            .name_any()
    }

    #[tokio::test]
    async fn every_subscriber_sees_each_event_once_and_filters_apply_per_subscriber() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
        let informer = Informer::new(NetworkInterface::index_keys, rx);
        let mut all = informer.subscribe();
        let mut by_label = informer.subscribe_filtered(|n: &NetworkInterface| fingerprint(n.labels()));
        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitApply(nic("a", "web"))))
            .expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        assert_eq!(next_name(&mut all).await, "a");
        assert_eq!(next_name(&mut by_label).await, "a");

        // An update that leaves the labels alone reaches only the unfiltered subscriber.
        let mut quiet = nic("a", "web");
        quiet.spec.ips = vec!["10.0.0.2".parse().expect("ip")];
        tx.unbounded_send(Ok(watcher::Event::Apply(quiet))).expect("send");
        tx.unbounded_send(Ok(watcher::Event::Apply(nic("b", "db"))))
            .expect("send");
        assert_eq!(next_name(&mut all).await, "a");
        assert_eq!(next_name(&mut all).await, "b");
        assert_eq!(
            next_name(&mut by_label).await,
            "b",
            "the quiet update was held back"
        );
        let key = crate::cache::index_key(crate::cache::BY_NETWORK, Some("ns"), "net");
        assert_eq!(informer.store().indexed(&key).len(), 2, "one cache for both");
    }

    #[tokio::test]
    async fn a_late_subscriber_first_receives_every_cached_object() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
        let informer = Informer::new(NetworkInterface::index_keys, rx);
        let mut early = informer.subscribe();
        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitApply(nic("a", "web"))))
            .expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        assert_eq!(next_name(&mut early).await, "a");

        let mut late = informer.subscribe();
        assert_eq!(next_name(&mut late).await, "a", "replayed from the cache");
        tx.unbounded_send(Ok(watcher::Event::Delete(nic("a", "web"))))
            .expect("send");
        assert_eq!(next_name(&mut late).await, "a", "then live events");
        assert!(informer.store().get(Some("ns"), "a").is_none());
    }

    #[tokio::test]
    async fn the_watch_stops_when_every_handle_and_subscription_is_gone() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Ev>();
        let informer = Informer::new(NetworkInterface::index_keys, rx);
        let subscription = informer.subscribe();
        drop(informer);
        tx.unbounded_send(Ok(watcher::Event::Init))
            .expect("still watched");
        drop(subscription);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !tx.is_closed() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the feeding task dropped the watch");
    }
}
