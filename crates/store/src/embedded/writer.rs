//! The single writer: group commit of queued transactions into one redb write transaction,
//! revision assignment and compaction. Durability, publication and replies are the
//! [`super::syncer`]'s job, which overlaps the log flush of one batch with applying the next.
//!
//! It runs on a dedicated OS thread because redb commits block. Callers enqueue requests on an
//! unbounded channel and await a oneshot reply; the queue is bounded in practice by the number
//! of concurrent callers, each of which has at most one request in flight.

use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SendError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Database, ReadableTable, Table};
use tokio::sync::oneshot;

use super::compaction::{CommitTimeline, RetentionPolicy};
use super::syncer::SyncJob;
use super::tables::{DbError, KV, LOG, META, META_COMPACT, META_CURRENT};
use super::wal::RevisionRecord;
use crate::codec::{decode_kv, encode_kv, encode_log, kv_mod_revision};
use crate::hub::{RevisionEvents, WatchHub};
use crate::{Event, EventKind, KeyValue, Op, Revision, StoreError, Txn, TxnOutcome};

/// A request to the writer.
#[derive(Debug)]
pub enum Request {
    /// Run a (validated) transaction.
    Txn {
        /// The transaction.
        txn: Txn,
        /// Its encoded size, for batch sizing.
        size: usize,
        /// Where the outcome goes once durable.
        reply: oneshot::Sender<Result<TxnOutcome, StoreError>>,
    },
    /// Compact history before `revision`.
    Compact {
        /// The new compaction revision.
        revision: Revision,
        /// Where the result goes.
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Revisions shared with readers for cheap `current_revision`/`compact_revision` calls.
#[derive(Debug, Default)]
pub struct SharedRevisions {
    /// Latest durable (acknowledged) revision: the ceiling of every read.
    pub current: AtomicU64,
    /// Compaction revision.
    pub compact: AtomicU64,
}

/// Group-commit limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Maximum transactions per commit.
    pub max_txns: usize,
    /// Maximum bytes of keys and values per commit (a larger single transaction still commits).
    pub max_bytes: usize,
}

type PendingTxn = (Txn, oneshot::Sender<Result<TxnOutcome, StoreError>>);

/// The writer's state; see the module documentation.
pub struct Writer {
    /// The database (shared with readers).
    pub db: Arc<Database>,
    /// The watch hub (closed on shutdown, told about compactions).
    pub hub: Arc<WatchHub>,
    /// Revisions mirrored for readers.
    pub shared: Arc<SharedRevisions>,
    /// Latest applied revision (committed to redb, maybe not durable yet).
    pub current: Revision,
    /// Compaction revision.
    pub compact: Revision,
    /// Retention policy for automatic compaction.
    pub policy: RetentionPolicy,
    /// Group-commit limits.
    pub batch: BatchLimits,
    /// Where applied batches go to be made durable.
    pub sync: Option<Sender<SyncJob>>,
    /// The syncer thread, joined on shutdown.
    pub syncer: Option<JoinHandle<()>>,
    /// Set by the syncer when a log sync failed: no further writes are accepted.
    pub failed: Arc<AtomicBool>,
}

impl Writer {
    /// Serves requests until every sender is dropped, waits until the syncer has made
    /// everything durable, then ends all watches.
    pub fn run(mut self, rx: Receiver<Request>) {
        let mut timeline = CommitTimeline::default();
        timeline.record(Instant::now(), self.current);
        let mut last_check = Instant::now();
        loop {
            let first = match rx.recv_timeout(self.policy.check_interval) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    last_check = Instant::now();
                    self.auto_compact(&mut timeline);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut queue = vec![first];
            let mut bytes = 0;
            while queue.len() < self.batch.max_txns && bytes < self.batch.max_bytes {
                match rx.try_recv() {
                    Ok(request) => {
                        if let Request::Txn { size, .. } = &request {
                            bytes += size;
                        }
                        queue.push(request);
                    }
                    Err(_) => break,
                }
            }
            let mut txns: Vec<PendingTxn> = Vec::new();
            for request in queue {
                match request {
                    Request::Txn { txn, reply, .. } => txns.push((txn, reply)),
                    Request::Compact { revision, reply } => {
                        self.commit_txns(mem::take(&mut txns), &mut timeline);
                        let _ = reply.send(self.compact_to(revision));
                    }
                }
            }
            self.commit_txns(txns, &mut timeline);
            if last_check.elapsed() >= self.policy.check_interval {
                last_check = Instant::now();
                self.auto_compact(&mut timeline);
            }
        }
        self.sync = None;
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
        self.hub.close();
    }

    fn auto_compact(&mut self, timeline: &mut CommitTimeline) {
        let durable = self.shared.current.load(Ordering::Acquire);
        if let Some(target) = timeline.target(&self.policy, Instant::now(), durable, self.compact)
            && let Err(error) = self.compact_to(target)
        {
            tracing::warn!(%error, target, "automatic compaction failed");
        }
    }

    /// Applies `txns` in order in one write transaction, commits it non-durably and hands the
    /// batch to the syncer, which acknowledges it once it is in the synced write-ahead log.
    fn commit_txns(&mut self, txns: Vec<PendingTxn>, timeline: &mut CommitTimeline) {
        if txns.is_empty() {
            return;
        }
        if self.failed.load(Ordering::Acquire) {
            for (_, reply) in txns {
                let _ = reply.send(Err(StoreError::Backend("an earlier durable write failed".into())));
            }
            return;
        }
        let result = (|| -> Result<_, DbError> {
            let mut wtxn = self.db.begin_write()?;
            wtxn.set_durability(redb::Durability::None)
                .map_err(|e| DbError::Redb(e.into()))?;
            let mut outcomes = Vec::with_capacity(txns.len());
            let mut published = Vec::new();
            let mut records: Vec<RevisionRecord> = Vec::new();
            let mut next = self.current + 1;
            {
                let mut kv = wtxn.open_table(KV)?;
                let mut log = wtxn.open_table(LOG)?;
                for (txn, _) in &txns {
                    let (outcome, events) = apply(&mut kv, txn, next)?;
                    if !events.is_empty() {
                        let raw = encode_log(&events);
                        log.insert(next, raw.as_slice())?;
                        records.push((next, raw));
                        published.push(RevisionEvents {
                            revision: next,
                            events,
                        });
                        next += 1;
                    }
                    outcomes.push(outcome);
                }
                wtxn.open_table(META)?.insert(META_CURRENT, next - 1)?;
            }
            wtxn.commit()?;
            Ok((outcomes, published, records, next - 1))
        })();
        match result {
            Ok((outcomes, published, records, current)) => {
                self.current = current;
                timeline.record(Instant::now(), current);
                let replies = txns.into_iter().map(|(_, reply)| reply).zip(outcomes).collect();
                let job = SyncJob {
                    records,
                    published,
                    current,
                    replies,
                };
                let sent = match &self.sync {
                    Some(sync) => sync.send(job).map_err(|SendError(job)| job),
                    None => Err(job),
                };
                if let Err(job) = sent {
                    for (reply, _) in job.replies {
                        let _ = reply.send(Err(StoreError::Unavailable("store syncer stopped".into())));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "store commit failed; the batch was rolled back");
                let error = StoreError::from(error);
                for (_, reply) in txns {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Sets the compaction revision and deletes the history before it, durably (which also
    /// persists every earlier non-durable batch).
    fn compact_to(&mut self, revision: Revision) -> Result<(), StoreError> {
        if revision <= self.compact {
            return Err(StoreError::Compacted {
                requested: revision,
                compact_revision: self.compact,
            });
        }
        let durable = self.shared.current.load(Ordering::Acquire);
        if revision > durable {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: durable,
            });
        }
        (|| -> Result<(), DbError> {
            let wtxn = self.db.begin_write()?;
            {
                let mut log = wtxn.open_table(LOG)?;
                log.retain_in(..=revision, |_, _| false)?;
                wtxn.open_table(META)?.insert(META_COMPACT, revision)?;
            }
            wtxn.commit()?;
            Ok(())
        })()?;
        self.compact = revision;
        self.shared.compact.store(revision, Ordering::Release);
        self.hub.set_compact_revision(revision);
        tracing::debug!(revision, "compacted store history");
        Ok(())
    }
}

/// Applies one transaction at revision `rev` to the `kv` table; returns the outcome and the
/// events (empty when nothing changed, in which case `rev` is not used).
fn apply(
    kv: &mut Table<'_, &str, &[u8]>,
    txn: &Txn,
    rev: Revision,
) -> Result<(TxnOutcome, Vec<Event>), DbError> {
    let mut holds = true;
    for compare in &txn.compares {
        let actual = match kv.get(compare.key.as_str())? {
            Some(raw) => kv_mod_revision(raw.value())?,
            None => 0,
        };
        holds &= actual == compare.mod_revision;
    }
    if !holds {
        let mut current = Vec::with_capacity(txn.compares.len());
        for compare in &txn.compares {
            let kv = kv
                .get(compare.key.as_str())?
                .map(|raw| decode_kv(&compare.key, raw.value()))
                .transpose()?;
            current.push(kv);
        }
        return Ok((TxnOutcome::Failed { current }, Vec::new()));
    }
    let mut events = Vec::with_capacity(txn.ops.len());
    let mut results = Vec::with_capacity(txn.ops.len());
    for op in &txn.ops {
        match op {
            Op::Put { key, value } => {
                let prev = kv
                    .get(key.as_str())?
                    .map(|raw| decode_kv(key, raw.value()))
                    .transpose()?;
                let new = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                    mod_revision: rev,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                };
                kv.insert(key.as_str(), encode_kv(&new).as_slice())?;
                events.push(Event {
                    kind: EventKind::Put,
                    kv: new.clone(),
                    prev,
                });
                results.push(Some(new));
            }
            Op::Delete { key } => {
                let prev = kv
                    .remove(key.as_str())?
                    .map(|raw| decode_kv(key, raw.value()))
                    .transpose()?;
                if let Some(prev) = &prev {
                    events.push(Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key: key.clone(),
                            value: bytes::Bytes::new(),
                            create_revision: 0,
                            mod_revision: rev,
                            version: 0,
                        },
                        prev: Some(prev.clone()),
                    });
                }
                results.push(prev);
            }
        }
    }
    let revision = if events.is_empty() { rev - 1 } else { rev };
    Ok((TxnOutcome::Succeeded { revision, results }, events))
}

/// Re-applies write-ahead log records newer than the database (after a crash) in one durable
/// commit; returns the new current revision.
pub fn replay(db: &Database, current: Revision, records: Vec<RevisionRecord>) -> Result<Revision, DbError> {
    let records: Vec<RevisionRecord> = records.into_iter().filter(|(rev, _)| *rev > current).collect();
    let Some(&(first, _)) = records.first() else {
        return Ok(current);
    };
    if first != current + 1 {
        return Err(DbError::Store(StoreError::Backend(format!(
            "write-ahead log starts at revision {first} but the database is at {current}"
        ))));
    }
    let wtxn = db.begin_write()?;
    let mut last = current;
    {
        let mut kv = wtxn.open_table(KV)?;
        let mut log = wtxn.open_table(LOG)?;
        for (rev, raw) in &records {
            for event in crate::codec::decode_log(*rev, raw)? {
                match event.kind {
                    EventKind::Put => {
                        kv.insert(event.kv.key.as_str(), encode_kv(&event.kv).as_slice())?;
                    }
                    EventKind::Delete => {
                        kv.remove(event.kv.key.as_str())?;
                    }
                }
            }
            log.insert(*rev, raw.as_slice())?;
            last = *rev;
        }
        wtxn.open_table(META)?.insert(META_CURRENT, last)?;
    }
    wtxn.commit()?;
    Ok(last)
}
