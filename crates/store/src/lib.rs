//! A revisioned key-value store with watch, the storage layer under ironnet's API server.
//!
//! The model is etcd v3's, which is also what kube-apiserver relies on:
//!
//! - one global revision that increases by exactly one for every successful write transaction;
//!   it becomes the Kubernetes `resourceVersion`;
//! - per key a `create_revision`, a `mod_revision` and a `version` (number of writes since creation);
//! - writes are transactions conditional on `mod_revision` (0 meaning "absent"); a failed condition
//!   returns the current values, like the else-branch of an etcd `Txn`;
//! - a watch delivers every change after a revision, in revision order, with the previous value;
//! - history before the compaction revision is gone: reading or watching there fails with
//!   [`StoreError::Compacted`], which the API server maps to `410 Gone`.
//!
//! Backends implement [`Store`]; every backend passes the same conformance suite.

// The production library has no unsafe code; only the etcd spawner for tests (feature
// `testing`) has one block, allowed where it is.
#![cfg_attr(not(feature = "testing"), forbid(unsafe_code))]
#![cfg_attr(feature = "testing", deny(unsafe_code))]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;

mod codec;
pub mod embedded;
pub mod etcd;
mod hub;
pub mod metrics;
mod private;
#[cfg(feature = "testing")]
pub mod testing;
mod validate;

pub use private::{DIR_MODE, FILE_MODE, create_private_dir};
pub use validate::MAX_TXN_BYTES;

/// A store revision. Revision 0 is "before the first write"; the first write gets revision 1.
pub type Revision = u64;

/// A key with its value and revision metadata, as of some revision.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/networking.ironcore.dev/networks/default/my-net`.
    pub key: String,
    /// The stored bytes (for a deletion event: empty).
    pub value: Bytes,
    /// Revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key (for a deletion event: the deleting revision).
    pub mod_revision: Revision,
    /// Number of writes since creation, starting at 1 (0 for a deletion event).
    pub version: u64,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .finish()
    }
}

/// Options for [`Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision instead of the current one. Fails with [`StoreError::Compacted`]
    /// below the compaction revision and [`StoreError::FutureRevision`] above the current one.
    pub revision: Option<Revision>,
    /// Return at most this many items (`None` or `Some(0)`: all).
    pub limit: Option<usize>,
    /// Start strictly after this key (the last key of the previous page). A continuation must
    /// also pass the previous page's [`ListPage::revision`] as `revision`, which pins every page
    /// of one list to the revision of the first.
    pub start_after: Option<String>,
}

/// One page of a [`Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Items in ascending key order.
    pub items: Vec<KeyValue>,
    /// The revision this page was read at.
    pub revision: Revision,
    /// Whether more items follow the last one of this page.
    pub more: bool,
}

/// One condition of a [`Txn`]: the key's current `mod_revision` must equal `mod_revision`
/// (0 meaning the key must not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key to check.
    pub key: String,
    /// Expected `mod_revision`; 0 means "absent".
    pub mod_revision: Revision,
}

/// One write of a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create or overwrite the key.
    Put {
        /// Key to write.
        key: String,
        /// New value.
        value: Bytes,
    },
    /// Delete the key (a no-op, emitting no event, if it does not exist).
    Delete {
        /// Key to delete.
        key: String,
    },
}

/// An all-or-nothing transaction: if every compare holds, every op is applied at one new revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions that must all hold.
    pub compares: Vec<Compare>,
    /// Writes applied, in order, when they do. At most one op per key.
    pub ops: Vec<Op>,
}

/// The outcome of a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held; the ops were applied at `revision`.
    Succeeded {
        /// The revision of this transaction.
        revision: Revision,
        /// Per op, in order: for a put the new key-value; for a delete the value it removed
        /// (`None` if the key did not exist).
        results: Vec<Option<KeyValue>>,
    },
    /// Some compare failed; nothing was written.
    Failed {
        /// Per compare, in order: the key's current value (`None` if absent).
        current: Vec<Option<KeyValue>>,
    },
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete, the key with an empty value and
    /// `mod_revision` set to the deleting revision.
    pub kv: KeyValue,
    /// The value before the change (`None` for a creation).
    pub prev: Option<KeyValue>,
}

/// What a watch stream yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchResponse {
    /// Changes in ascending revision order (ops of one transaction in op order). Empty for a
    /// progress notification.
    pub events: Vec<Event>,
    /// Progress: every change matching the watch with revision ≤ `revision` has been delivered.
    /// Used by the API server for BOOKMARK events.
    pub revision: Revision,
}

/// A stream of watch responses. It ends only when the store shuts down; an `Err` item
/// (e.g. [`StoreError::Compacted`] when the watcher fell too far behind) is the last item.
pub type WatchStream = BoxStream<'static, Result<WatchResponse, StoreError>>;

/// Errors of every store operation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The requested revision has been compacted away ("too old"; HTTP 410 Gone).
    #[error("required revision {requested} has been compacted (compact revision {compact_revision})")]
    Compacted {
        /// The revision that was asked for.
        requested: Revision,
        /// The current compaction revision: reads at or above it still work.
        compact_revision: Revision,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("required revision {requested} is in the future (current revision {current})")]
    FutureRevision {
        /// The revision that was asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A transaction was malformed (e.g. two ops on one key, an empty key).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A value exceeds the backend's size limit.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the rejected value.
        size: usize,
        /// The backend's limit.
        limit: usize,
    },
    /// The backend cannot be reached or has shut down; the write may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed (I/O error, corruption, protocol error).
    #[error("store backend error: {0}")]
    Backend(String),
}

/// A revisioned key-value store with watch. See the crate documentation for the model.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest committed revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// The compaction revision: reads and watches need a revision ≥ this.
    async fn compact_revision(&self) -> Result<Revision, StoreError>;

    /// Reads one key at the current revision or at `revision`.
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>, StoreError>;

    /// Lists keys starting with `prefix`, in key order, consistently at one revision.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError>;

    /// Runs an all-or-nothing conditional transaction. An acknowledged success is durable.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;

    /// Watches every change to keys starting with `prefix` with revision > `after`.
    /// Fails with [`StoreError::Compacted`] if `after` < the compaction revision, and with
    /// [`StoreError::FutureRevision`] if `after` > the current revision.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// Discards history before `revision` (latest values are kept).
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;
}

/// The result of a conditional single-key write from [`StoreExt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conditional {
    /// The condition held. For a create or update: the new key-value; for a delete: the value
    /// that was removed.
    Applied(KeyValue),
    /// The condition failed; nothing was written. The key's current value (`None`: absent),
    /// like the else-branch of an etcd `Txn`.
    Conflict(Option<KeyValue>),
}

/// Single-key conditional writes built on [`Store::txn`], in the shapes kube-apiserver uses.
#[async_trait::async_trait]
pub trait StoreExt: Store {
    /// Creates `key` if it does not exist.
    async fn create(&self, key: &str, value: Bytes) -> Result<Conditional, StoreError> {
        self.update(key, value, 0).await
    }

    /// Writes `key` if its `mod_revision` equals `expected_mod_revision` (0: it must not exist).
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<Conditional, StoreError> {
        let txn = Txn {
            compares: vec![Compare {
                key: key.to_owned(),
                mod_revision: expected_mod_revision,
            }],
            ops: vec![Op::Put {
                key: key.to_owned(),
                value,
            }],
        };
        match self.txn(txn).await? {
            TxnOutcome::Succeeded { mut results, .. } => results
                .pop()
                .flatten()
                .map(Conditional::Applied)
                .ok_or_else(|| StoreError::Backend("put returned no key-value".into())),
            TxnOutcome::Failed { mut current } => Ok(Conditional::Conflict(current.pop().flatten())),
        }
    }

    /// Writes `key` unconditionally; returns the new key-value.
    async fn put(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        let txn = Txn {
            compares: vec![],
            ops: vec![Op::Put {
                key: key.to_owned(),
                value,
            }],
        };
        match self.txn(txn).await? {
            TxnOutcome::Succeeded { mut results, .. } => results
                .pop()
                .flatten()
                .ok_or_else(|| StoreError::Backend("put returned no key-value".into())),
            TxnOutcome::Failed { .. } => {
                Err(StoreError::Backend("unconditional put failed a compare".into()))
            }
        }
    }

    /// Deletes `key` if its `mod_revision` equals `expected_mod_revision` (which must be > 0);
    /// returns the removed value.
    async fn delete(&self, key: &str, expected_mod_revision: Revision) -> Result<Conditional, StoreError> {
        if expected_mod_revision == 0 {
            return Err(StoreError::InvalidRequest(
                "delete needs the expected mod_revision (> 0)".into(),
            ));
        }
        let txn = Txn {
            compares: vec![Compare {
                key: key.to_owned(),
                mod_revision: expected_mod_revision,
            }],
            ops: vec![Op::Delete { key: key.to_owned() }],
        };
        match self.txn(txn).await? {
            TxnOutcome::Succeeded { mut results, .. } => results
                .pop()
                .flatten()
                .map(Conditional::Applied)
                .ok_or_else(|| StoreError::Backend("delete of an existing key removed nothing".into())),
            TxnOutcome::Failed { mut current } => Ok(Conditional::Conflict(current.pop().flatten())),
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// Which backend [`open`] creates.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// The embedded redb store in one file.
    Embedded {
        /// The database file (created if missing).
        path: PathBuf,
        /// Retention, watch window and batching settings.
        options: embedded::EmbeddedOptions,
    },
    /// An etcd v3 cluster.
    Etcd {
        /// Client URLs, e.g. `http://127.0.0.1:2379`.
        endpoints: Vec<String>,
        /// Prefix of every key in etcd, e.g. `/ironnet`.
        key_prefix: String,
    },
}

/// Opens the configured backend.
pub async fn open(config: StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Embedded { path, options } => {
            let store = tokio::task::spawn_blocking(move || embedded::EmbeddedStore::open(path, options))
                .await
                .map_err(|e| StoreError::Backend(format!("open task failed: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreConfig::Etcd {
            endpoints,
            key_prefix,
        } => {
            let options = etcd::EtcdOptions {
                key_prefix,
                ..Default::default()
            };
            Ok(Arc::new(etcd::EtcdStore::connect(endpoints, options).await?))
        }
    }
}
