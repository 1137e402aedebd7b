//! The syncer: makes the writer's batches durable and only then acknowledges them.
//!
//! The writer applies a batch and commits it to redb non-durably, then hands it here and
//! goes on with the next batch, so applying batch N+1 overlaps with the log flush of batch N.
//! The syncer appends every queued batch to the write-ahead log with one `fdatasync`, then, in
//! order, advances the durable revision (the ceiling for readers), publishes the events to the
//! watch hub and answers the callers. Readers never see past the durable revision: reads at
//! "now" are served at it through the log overlay.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::oneshot;

use super::tables::DbError;
use super::wal::{RevisionRecord, Wal};
use super::writer::SharedRevisions;
use crate::hub::{RevisionEvents, WatchHub};
use crate::{Revision, StoreError, TxnOutcome};

/// A batch committed non-durably by the writer, waiting to be made durable.
#[derive(Debug)]
pub struct SyncJob {
    /// The batch's revisions, encoded for the log.
    pub records: Vec<RevisionRecord>,
    /// The same revisions' events, for the watch hub.
    pub published: Vec<RevisionEvents>,
    /// The writer's current revision after the batch.
    pub current: Revision,
    /// Callers and their outcomes.
    pub replies: Vec<(oneshot::Sender<Result<TxnOutcome, StoreError>>, TxnOutcome)>,
}

/// The syncer's state; see the module documentation.
#[derive(Debug)]
pub struct Syncer {
    /// The database, for checkpoints.
    pub db: Arc<Database>,
    /// The write-ahead log.
    pub wal: Wal,
    /// Where events are published once durable.
    pub hub: Arc<WatchHub>,
    /// The durable revision, read by readers.
    pub shared: Arc<SharedRevisions>,
    /// Set when a log sync failed: the writer then refuses further writes.
    pub failed: Arc<AtomicBool>,
    /// Checkpoint once this many log bytes were written since the last one.
    pub checkpoint_bytes: u64,
    /// Checkpoint at least this often while the log is not empty.
    pub checkpoint_interval: Duration,
}

impl Syncer {
    /// Serves jobs until the writer hangs up, then checkpoints.
    pub fn run(mut self, rx: Receiver<SyncJob>) {
        let mut last_checkpoint = Instant::now();
        loop {
            let first = match rx.recv_timeout(self.checkpoint_interval) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if self.wal.used() > 0 && last_checkpoint.elapsed() >= self.checkpoint_interval {
                        match self.checkpoint() {
                            Ok(()) => last_checkpoint = Instant::now(),
                            Err(error) => tracing::warn!(%error, "store checkpoint failed"),
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut jobs = vec![first];
            while let Ok(job) = rx.try_recv() {
                jobs.push(job);
            }
            if self.wal.used() == 0 {
                last_checkpoint = Instant::now();
            }
            let records: Vec<RevisionRecord> = jobs
                .iter_mut()
                .flat_map(|j| std::mem::take(&mut j.records))
                .collect();
            let due = self.wal.used() >= self.checkpoint_bytes
                || (self.wal.used() > 0 && last_checkpoint.elapsed() >= self.checkpoint_interval)
                || !self.wal.fits(&records);
            let result = if self.failed.load(Ordering::Acquire) {
                Err(DbError::Store(StoreError::Backend(
                    "an earlier write-ahead log sync failed".into(),
                )))
            } else if due {
                // The writer committed these batches before handing them over, so a durable
                // commit now persists them too.
                self.checkpoint().inspect(|()| last_checkpoint = Instant::now())
            } else if records.is_empty() {
                Ok(())
            } else {
                self.wal
                    .append(&records)
                    .map_err(|e| DbError::Store(StoreError::Backend(e.to_string())))
            };
            match result {
                Ok(()) => {
                    for job in jobs {
                        self.shared.current.store(job.current, Ordering::Release);
                        self.hub.publish(job.published, job.current);
                        for (reply, outcome) in job.replies {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "store write-ahead log sync failed; refusing further writes");
                    self.failed.store(true, Ordering::Release);
                    let error = StoreError::Backend(format!("durable write failed: {error}"));
                    self.hub.fail(error.clone());
                    for job in jobs {
                        for (reply, _) in job.replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
        if let Err(error) = self.checkpoint() {
            tracing::warn!(%error, "final store checkpoint failed; the write-ahead log will be replayed");
        }
    }

    /// Makes the database itself durable (an empty `Durability::Immediate` commit persists every
    /// earlier non-durable one) and starts the write-ahead log over.
    fn checkpoint(&mut self) -> Result<(), DbError> {
        let wtxn = self.db.begin_write()?;
        wtxn.commit()?;
        self.wal
            .reset()
            .map_err(|e| DbError::Store(StoreError::Backend(e.to_string())))
    }
}

/// Starts a thread that flushes the database file's dirty pages every `interval` through its
/// own file descriptor, without taking any redb lock. The kernel then has little left to write
/// when a checkpoint's durable commit flushes the file, so checkpoints do not stall the writer.
/// The thread ends once the database is dropped.
pub fn spawn_flusher(
    path: &std::path::Path,
    db: std::sync::Weak<Database>,
    interval: Duration,
) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    std::thread::Builder::new()
        .name("store-flusher".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                if db.strong_count() == 0 {
                    return;
                }
                if let Err(error) = file.sync_data() {
                    tracing::debug!(%error, "background flush of the store file failed");
                }
            }
        })?;
    Ok(())
}
