//! Storage metrics under kube-apiserver's names, for any backend: [`InstrumentedStore`] wraps a [`Store`], times
//! each operation and keeps the number of stored objects per resource.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `etcd_request_duration_seconds` | histogram | `operation`, `type` | time of one store operation (kube-apiserver's name, for the embedded store too) |
//! | `apiserver_storage_objects` | gauge | `resource` | objects stored per resource |
//!
//! `type` and `resource` are kube's group-resource string: `networks.networking.ironcore.dev`, or the plural alone
//! for the core group (`namespaces`), read from the key (`/registry/<group>/<plural>/...`). `operation` is `get`,
//! `list`, `create` (a put that must not exist), `update` (any other single put), `delete`, `txn` (a transaction
//! of several writes, typed by its first key: an object with the objects its admission allocates), `compact` or
//! `revision`. Watches are long-running and not timed, as in kube-apiserver.
//!
//! Object counts are taken once when the wrapper is created (a paged list of `/registry/`) and then follow every
//! transaction that goes through the wrapper: a put creating a key adds one, a delete that removed a key subtracts
//! one. Writes by another process sharing an etcd cluster are not seen.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::{ListOptions, ListPage, Op, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream};

/// The root of every object key.
const REGISTRY_ROOT: &str = "/registry/";

/// Operations timed, in the order of a type's histogram table.
const OPERATIONS: [&str; 8] = [
    "get", "list", "create", "update", "delete", "txn", "compact", "revision",
];
const GET: usize = 0;
const LIST: usize = 1;
const CREATE: usize = 2;
const UPDATE: usize = 3;
const DELETE: usize = 4;
const TXN: usize = 5;
const COMPACT: usize = 6;
const REVISION: usize = 7;

/// Label set `{operation, type}` of `etcd_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OperationLabels {
    /// `get`, `list`, `create`, `update`, `delete`, `txn`, `compact` or `revision`.
    pub operation: String,
    /// The group-resource the key belongs to (empty for operations spanning resources).
    pub r#type: String,
}

/// Label set `{resource}` of `apiserver_storage_objects`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResourceLabel {
    /// The group-resource (`networks.networking.ironcore.dev`).
    pub resource: String,
}

/// kube-apiserver's buckets of `etcd_request_duration_seconds`.
#[derive(Debug, Clone, Copy)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new([
            0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0,
            15.0, 20.0, 30.0, 45.0, 60.0,
        ])
    }
}

type IntGauge = Gauge<i64, AtomicI64>;

/// One resource type's handles: its object count and per operation its histogram, created on first use.
#[derive(Debug)]
struct TypeHandles {
    name: String,
    objects: OnceLock<IntGauge>,
    latency: [OnceLock<Histogram>; OPERATIONS.len()],
}

/// The storage metric families; clones share them.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    latency: Family<OperationLabels, Histogram, LatencyBuckets>,
    objects: Family<ResourceLabel, IntGauge>,
    /// Handles by type, so an operation looks its histogram up under a read lock without building labels.
    types: Arc<RwLock<HashMap<Box<str>, Arc<TypeHandles>>>>,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        StorageMetrics {
            latency: Family::new_with_constructor(LatencyBuckets),
            objects: Family::default(),
            types: Arc::default(),
        }
    }
}

impl StorageMetrics {
    /// Adds the families to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "etcd_request_duration_seconds",
            "Etcd request latency in seconds for each operation and object type",
            self.latency.clone(),
        );
        registry.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            self.objects.clone(),
        );
    }

    /// The handles of a `<group>/<plural>` type key.
    fn handles(&self, resource_type: &str) -> Arc<TypeHandles> {
        if let Some(h) = self.types.read().get(resource_type) {
            return Arc::clone(h);
        }
        Arc::clone(self.types.write().entry(resource_type.into()).or_insert_with(|| {
            Arc::new(TypeHandles {
                name: display_name(resource_type),
                objects: OnceLock::new(),
                latency: std::array::from_fn(|_| OnceLock::new()),
            })
        }))
    }

    fn objects_gauge(&self, handles: &TypeHandles) -> IntGauge {
        handles
            .objects
            .get_or_init(|| {
                self.objects
                    .get_or_create(&ResourceLabel {
                        resource: handles.name.clone(),
                    })
                    .clone()
            })
            .clone()
    }

    /// Shows the resource stored under `key_prefix` (`/registry/<group>/<plural>/`) in
    /// `apiserver_storage_objects`, at its current count (0 if nothing is stored).
    pub fn track(&self, key_prefix: &str) {
        let t = type_key(key_prefix);
        if !t.is_empty() {
            let h = self.handles(t);
            self.objects_gauge(&h);
        }
    }

    fn observe(&self, operation: usize, resource_type: &str, started: Instant) {
        let h = self.handles(resource_type);
        self.observe_on(operation, &h, started);
    }

    fn observe_on(&self, operation: usize, h: &TypeHandles, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        h.latency[operation]
            .get_or_init(|| {
                self.latency
                    .get_or_create(&OperationLabels {
                        operation: OPERATIONS[operation].to_owned(),
                        r#type: h.name.clone(),
                    })
                    .clone()
            })
            .observe(seconds);
    }

    fn add_objects(&self, resource_type: &str, delta: i64) {
        if resource_type.is_empty() {
            return;
        }
        let h = self.handles(resource_type);
        self.objects_gauge(&h).inc_by(delta);
    }
}

/// The `<group>/<plural>` part of a key or prefix under `/registry/<group>/<plural>/` (a slice of it, so looking
/// a type's handles up allocates nothing); empty for keys elsewhere or prefixes spanning resources.
fn type_key(key: &str) -> &str {
    let Some(rest) = key.strip_prefix(REGISTRY_ROOT) else {
        return "";
    };
    let Some(group_end) = rest.find('/') else {
        return "";
    };
    match rest[group_end + 1..].find('/') {
        Some(plural_end) => &rest[..group_end + 1 + plural_end],
        None => "",
    }
}

/// kube's group-resource string of a `<group>/<plural>` type key: `<plural>.<group>`, the plural alone for the
/// core group (stored under `core`).
fn display_name(type_key: &str) -> String {
    match type_key.split_once('/') {
        Some(("core", plural)) => plural.to_owned(),
        Some((group, plural)) => format!("{plural}.{group}"),
        None => type_key.to_owned(),
    }
}

/// The group-resource of a key or prefix (`networks.networking.ironcore.dev`, `namespaces`); empty for keys
/// outside `/registry/<group>/<plural>/`.
pub fn resource_type(key: &str) -> String {
    display_name(type_key(key))
}

/// A [`Store`] that times every operation and counts stored objects per resource (see the module docs).
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: StorageMetrics,
}

impl std::fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStore").finish_non_exhaustive()
    }
}

impl InstrumentedStore {
    /// Wraps `inner`, counting the objects it holds now (one paged list of `/registry/`).
    pub async fn new(inner: Arc<dyn Store>) -> Result<Self, StoreError> {
        let metrics = StorageMetrics::default();
        let mut counts: HashMap<String, i64> = HashMap::new();
        let mut options = ListOptions {
            limit: Some(1000),
            ..Default::default()
        };
        loop {
            let page = inner.list(REGISTRY_ROOT, options.clone()).await?;
            for kv in &page.items {
                let t = type_key(&kv.key);
                if !t.is_empty() {
                    *counts.entry(t.to_owned()).or_default() += 1;
                }
            }
            match page.items.last() {
                Some(last) if page.more => {
                    options.start_after = Some(last.key.clone());
                    options.revision = Some(page.revision);
                }
                _ => break,
            }
        }
        for (t, n) in counts {
            metrics.add_objects(&t, n);
        }
        Ok(InstrumentedStore { inner, metrics })
    }

    /// The families this store updates (register them to serve them).
    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }
}

/// The operation a transaction stands for, and the key it is typed by.
fn classify_txn(txn: &Txn) -> (usize, &str) {
    match txn.ops.as_slice() {
        [Op::Put { key, .. }] => {
            let create = txn.compares.iter().any(|c| c.key == *key && c.mod_revision == 0);
            (if create { CREATE } else { UPDATE }, key)
        }
        [Op::Delete { key }] => (DELETE, key),
        [Op::Put { key, .. } | Op::Delete { key }, ..] => (TXN, key),
        [] => (TXN, ""),
    }
}

#[async_trait::async_trait]
impl Store for InstrumentedStore {
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let started = Instant::now();
        let result = self.inner.current_revision().await;
        self.metrics.observe(REVISION, "", started);
        result
    }

    async fn compact_revision(&self) -> Result<Revision, StoreError> {
        let started = Instant::now();
        let result = self.inner.compact_revision().await;
        self.metrics.observe(REVISION, "", started);
        result
    }

    async fn get(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<Option<crate::KeyValue>, StoreError> {
        let started = Instant::now();
        let result = self.inner.get(key, revision).await;
        self.metrics.observe(GET, type_key(key), started);
        result
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let started = Instant::now();
        let result = self.inner.list(prefix, options).await;
        self.metrics.observe(LIST, type_key(prefix), started);
        result
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let started = Instant::now();
        // The ops' kinds and keys are needed after the transaction consumed them.
        let writes: Vec<(bool, String)> = txn
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, .. } => (true, key.clone()),
                Op::Delete { key } => (false, key.clone()),
            })
            .collect();
        let (operation, first_key) = classify_txn(&txn);
        let first_type = self.metrics.handles(type_key(first_key));
        let result = self.inner.txn(txn).await;
        self.metrics.observe_on(operation, &first_type, started);
        if let Ok(TxnOutcome::Succeeded { results, .. }) = &result {
            for ((put, key), result) in writes.iter().zip(results) {
                match (put, result) {
                    (true, Some(kv)) if kv.version == 1 => self.metrics.add_objects(type_key(key), 1),
                    (false, Some(_)) => self.metrics.add_objects(type_key(key), -1),
                    _ => {}
                }
            }
        }
        result
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, after).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.compact(revision).await;
        self.metrics.observe(COMPACT, "", started);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreExt;
    use crate::embedded::{EmbeddedOptions, EmbeddedStore};
    use crate::{Compare, Conditional};

    #[test]
    fn types_are_kube_group_resources_read_from_keys() {
        assert_eq!(
            resource_type("/registry/networking.ironcore.dev/networks/default/a"),
            "networks.networking.ironcore.dev"
        );
        assert_eq!(resource_type("/registry/core/namespaces/default"), "namespaces");
        assert_eq!(resource_type("/registry/core/namespaces/"), "namespaces");
        assert_eq!(resource_type("/registry/"), "");
        assert_eq!(resource_type("/registry/core"), "");
        assert_eq!(resource_type("/elsewhere/a/b/c"), "");
    }

    fn page(metrics: &StorageMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    fn sample(page: &str, series: &str) -> Option<f64> {
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    const WIDGETS: &str = "apiserver_storage_objects{resource=\"widgets.test.ironnet.dev\"}";

    #[tokio::test]
    async fn objects_are_counted_from_the_start_and_follow_creates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(dir.path().join("s.redb"), EmbeddedOptions::default()).unwrap());
        for name in ["a", "b"] {
            raw.create(
                &format!("/registry/test.ironnet.dev/widgets/default/{name}"),
                "{}".into(),
            )
            .await
            .unwrap();
        }
        raw.create("/registry/core/namespaces/default", "{}".into())
            .await
            .unwrap();
        let store = InstrumentedStore::new(raw).await.unwrap();
        store.metrics().track("/registry/test.ironnet.dev/gadgets/");
        let p = page(store.metrics());
        assert_eq!(sample(&p, WIDGETS), Some(2.0), "{p}");
        assert_eq!(
            sample(&p, "apiserver_storage_objects{resource=\"namespaces\"}"),
            Some(1.0),
            "{p}"
        );
        assert_eq!(
            sample(
                &p,
                "apiserver_storage_objects{resource=\"gadgets.test.ironnet.dev\"}"
            ),
            Some(0.0),
            "{p}"
        );

        let c = store
            .create("/registry/test.ironnet.dev/widgets/default/c", "{}".into())
            .await
            .unwrap();
        let Conditional::Applied(c) = c else {
            panic!("created")
        };
        // A create that finds the key, and an update, change no count.
        assert!(matches!(
            store
                .create("/registry/test.ironnet.dev/widgets/default/c", "{}".into())
                .await
                .unwrap(),
            Conditional::Conflict(_)
        ));
        let c = match store
            .update(
                "/registry/test.ironnet.dev/widgets/default/c",
                "{\"x\":1}".into(),
                c.mod_revision,
            )
            .await
            .unwrap()
        {
            Conditional::Applied(kv) => kv,
            Conditional::Conflict(_) => panic!("updated"),
        };
        assert_eq!(sample(&page(store.metrics()), WIDGETS), Some(3.0));
        store
            .delete("/registry/test.ironnet.dev/widgets/default/c", c.mod_revision)
            .await
            .unwrap();
        // A transaction of several writes: one widget deleted, one created.
        let a = store
            .get("/registry/test.ironnet.dev/widgets/default/a", None)
            .await
            .unwrap()
            .unwrap();
        store
            .txn(Txn {
                compares: vec![Compare {
                    key: a.key.clone(),
                    mod_revision: a.mod_revision,
                }],
                ops: vec![
                    Op::Delete { key: a.key.clone() },
                    Op::Put {
                        key: "/registry/test.ironnet.dev/widgets/default/d".into(),
                        value: "{}".into(),
                    },
                ],
            })
            .await
            .unwrap();
        let p = page(store.metrics());
        assert_eq!(sample(&p, WIDGETS), Some(2.0), "{p}");
        for (operation, n) in [
            ("create", 2.0),
            ("update", 1.0),
            ("delete", 1.0),
            ("txn", 1.0),
            ("get", 1.0),
        ] {
            assert_eq!(
                sample(
                    &p,
                    &format!(
                        "etcd_request_duration_seconds_count{{operation=\"{operation}\",type=\"widgets.test.ironnet.dev\"}}"
                    )
                ),
                Some(n),
                "{operation}: {p}"
            );
        }
    }
}
