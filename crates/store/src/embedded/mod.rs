//! The embedded backend: a single-file redb database with group commit and an in-memory watch
//! window. See `docs/store.md` for the design.
//!
//! - Writes go to one writer thread ([`writer`]) that commits every queued transaction in one
//!   durable redb write transaction and assigns consecutive revisions.
//! - Reads run on redb MVCC snapshots on the blocking pool ([`read`]).
//! - Watches are cursors into the shared [`crate::hub::WatchHub`]; history older than the ring
//!   is re-read from the on-disk log.

mod compaction;
mod read;
mod syncer;
mod tables;
mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

pub use compaction::RetentionPolicy;
pub use tables::FORMAT_VERSION;

use crate::hub::{HistoryReader, HubLimits, WatchHub};
use crate::validate::{MAX_TXN_BYTES, validate_key, validate_txn};
use crate::{
    Event, KeyValue, ListOptions, ListPage, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream,
};
use writer::{BatchLimits, Request, SharedRevisions, Writer};

/// Settings of an [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How much history automatic compaction keeps.
    pub retention: RetentionPolicy,
    /// Revisions of events kept in memory for watches (older retained history is read from disk).
    pub watch_window_revisions: usize,
    /// Approximate bytes of events kept in memory for watches.
    pub watch_window_bytes: usize,
    /// Interval of progress notifications on idle watches (at most 1 s is useful for bookmarks).
    pub progress_interval: Duration,
    /// Maximum transactions committed together in one durable write.
    pub max_batch_txns: usize,
    /// Maximum size of one transaction (sum of key and value bytes).
    pub max_txn_bytes: usize,
    /// redb page cache size in bytes.
    pub cache_bytes: usize,
    /// Size of the write-ahead log file (`<path>.wal`), pre-allocated; a checkpoint happens
    /// when half of it is used.
    pub wal_bytes: u64,
    /// Checkpoint (make the database file itself durable) at least this often while writes
    /// arrive, bounding replay work after a crash.
    pub checkpoint_interval: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            retention: RetentionPolicy::default(),
            watch_window_revisions: 10_000,
            watch_window_bytes: 64 << 20,
            progress_interval: Duration::from_secs(1),
            max_batch_txns: 512,
            max_txn_bytes: MAX_TXN_BYTES,
            cache_bytes: 256 << 20,
            wal_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(30),
        }
    }
}

impl EmbeddedOptions {
    fn validate(&self) -> Result<(), StoreError> {
        let bad = |what: &str| {
            Err(StoreError::InvalidRequest(format!(
                "invalid embedded store options: {what}"
            )))
        };
        if self.watch_window_revisions == 0 {
            return bad("watch_window_revisions must be > 0");
        }
        if self.max_batch_txns == 0 {
            return bad("max_batch_txns must be > 0");
        }
        if self.max_txn_bytes == 0 {
            return bad("max_txn_bytes must be > 0");
        }
        if self.progress_interval.is_zero() || self.retention.check_interval.is_zero() {
            return bad("intervals must be > 0");
        }
        if self.wal_bytes < 1 << 20 || self.checkpoint_interval.is_zero() {
            return bad("wal_bytes must be at least 1 MiB and checkpoint_interval > 0");
        }
        if self.retention.max_revisions == Some(0) {
            return bad("retention.max_revisions must be > 0");
        }
        Ok(())
    }
}

/// The embedded, single-process store on a redb file.
///
/// Dropping it stops the writer (after the in-flight batch), ends every watch stream and closes
/// the file, so the same path can be reopened right away.
#[derive(Debug)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    hub: Arc<WatchHub>,
    shared: Arc<SharedRevisions>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    max_txn_bytes: usize,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`.
    ///
    /// Fails with [`StoreError::Backend`] naming the file when it is corrupt, of a newer format
    /// version, not an ironnet store, or already open; with [`StoreError::InvalidRequest`] for
    /// invalid options.
    pub fn open(path: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self, StoreError> {
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        // Created (or tightened) owner-only before redb opens it; redb would create it 0666 minus the umask.
        crate::private::open_private_file(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open store {}: {e}", path.display())))?;
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open store {}: {e}", path.display())))?;
        let mut revisions = tables::initialize(&db, &path)?;
        let mut wal_path = path.clone().into_os_string();
        wal_path.push(".wal");
        let mut wal = wal::Wal::open(Path::new(&wal_path), options.wal_bytes)
            .map_err(|e| StoreError::Backend(format!("cannot open store {}: {e}", path.display())))?;
        let records = wal
            .read_all()
            .map_err(|e| StoreError::Backend(format!("cannot open store {}: {e}", path.display())))?;
        revisions.current = writer::replay(&db, revisions.current, records)
            .map_err(|e| StoreError::Backend(format!("cannot open store {}: {e}", path.display())))?;
        wal.reset()
            .map_err(|e| StoreError::Backend(format!("cannot open store {}: {e}", path.display())))?;
        let db = Arc::new(db);
        let hub = WatchHub::new(
            revisions.current,
            revisions.compact,
            HubLimits {
                max_revisions: options.watch_window_revisions,
                max_bytes: options.watch_window_bytes,
                progress_interval: options.progress_interval,
            },
        );
        let shared = Arc::new(SharedRevisions::default());
        shared.current.store(revisions.current, Ordering::Release);
        shared.compact.store(revisions.compact, Ordering::Release);
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sync_tx, sync_rx) = mpsc::channel();
        let syncer = syncer::Syncer {
            db: db.clone(),
            wal,
            hub: hub.clone(),
            shared: shared.clone(),
            failed: failed.clone(),
            checkpoint_bytes: options.wal_bytes / 2,
            checkpoint_interval: options.checkpoint_interval,
        };
        let syncer = std::thread::Builder::new()
            .name("store-syncer".into())
            .spawn(move || syncer.run(sync_rx))
            .map_err(|e| StoreError::Backend(format!("cannot start store syncer: {e}")))?;
        syncer::spawn_flusher(&path, Arc::downgrade(&db), Duration::from_millis(250))
            .map_err(|e| StoreError::Backend(format!("cannot start store flusher: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            hub: hub.clone(),
            shared: shared.clone(),
            current: revisions.current,
            compact: revisions.compact,
            policy: options.retention,
            batch: BatchLimits {
                max_txns: options.max_batch_txns,
                max_bytes: 16 << 20,
            },
            sync: Some(sync_tx),
            syncer: Some(syncer),
            failed,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(format!("cannot start store writer: {e}")))?;
        Ok(Self {
            db,
            hub,
            shared,
            requests: Some(tx),
            writer: Some(writer),
            max_txn_bytes: options.max_txn_bytes,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A point read on the calling thread. A single-key lookup touches a handful of (usually cached) pages,
    /// which costs less than handing it to the blocking pool and waking the caller again: that hand-off was
    /// most of a `get` and a visible share of the control plane's system time.
    fn read_inline<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction, Revision) -> Result<T, tables::DbError>,
    ) -> Result<T, StoreError> {
        let durable = self.shared.current.load(Ordering::Acquire);
        let txn = self
            .db
            .begin_read()
            .map_err(|e| tables::DbError::from(redb::Error::from(e)))?;
        f(&txn, durable).map_err(StoreError::from)
    }

    /// A read that may scan many keys, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction, Revision) -> Result<T, tables::DbError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            // The durable revision, read before the snapshot: the snapshot contains at least
            // everything up to it, and possibly newer batches that are not durable yet.
            let durable = shared.current.load(Ordering::Acquire);
            let txn = db
                .begin_read()
                .map_err(|e| tables::DbError::from(redb::Error::from(e)))?;
            f(&txn, durable)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
        .map_err(StoreError::from)
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests
            .as_ref()
            .and_then(|tx| tx.send(request).ok())
            .ok_or_else(|| StoreError::Unavailable("store is shut down".into()))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Reads watch history from the log; holds the database weakly so that open watch streams do
/// not keep a dropped store's file open.
struct LogHistory {
    db: Weak<Database>,
}

impl HistoryReader for LogHistory {
    fn read(
        &self,
        prefix: &str,
        after: Revision,
        until: Revision,
        max_revisions: usize,
    ) -> Result<(Vec<Event>, Revision), StoreError> {
        let db = self
            .db
            .upgrade()
            .ok_or_else(|| StoreError::Unavailable("store is shut down".into()))?;
        let txn = db
            .begin_read()
            .map_err(|e| tables::DbError::from(redb::Error::from(e)))?;
        Ok(read::history(&txn, prefix, after, until, max_revisions)?)
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.current.load(Ordering::Acquire))
    }

    async fn compact_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.compact.load(Ordering::Acquire))
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>, StoreError> {
        validate_key(key)?;
        self.read_inline(|txn, durable| read::get(txn, durable, key, revision))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |txn, durable| read::list(txn, durable, &prefix, &options))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let size = validate_txn(&txn, self.max_txn_bytes)?;
        let (reply, rx) = oneshot::channel();
        self.send(Request::Txn { txn, size, reply })?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let meta = self.read(read::durable_meta).await?;
        read::check_revision(after, meta)?;
        let history: Arc<dyn HistoryReader> = Arc::new(LogHistory {
            db: Arc::downgrade(&self.db),
        });
        Ok(self.hub.subscribe(prefix.to_owned(), after, Some(history)))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Compact { revision, reply })?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}
