//! The in-memory watch window shared by all watchers of one backend.
//!
//! A backend publishes every committed revision's events once into a bounded ring; each watch
//! stream is only a cursor into it. Watchers therefore cost no memory per event (memory stays
//! flat with the number of watchers), and a slow watcher never blocks the publisher: when its
//! cursor falls out of the ring it either re-reads history through a [`HistoryReader`]
//! (embedded: the on-disk log) or ends with [`StoreError::Compacted`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Event, Revision, StoreError, WatchResponse, WatchStream};

/// The events of one committed revision, in op order.
#[derive(Debug)]
pub struct RevisionEvents {
    /// The revision that produced the events.
    pub revision: Revision,
    /// Its events (never empty).
    pub events: Vec<Event>,
}

impl RevisionEvents {
    fn approx_bytes(&self) -> usize {
        self.events
            .iter()
            .map(|e| {
                128 + 2 * e.kv.key.len() + e.kv.value.len() + e.prev.as_ref().map_or(0, |p| p.value.len())
            })
            .sum()
    }
}

/// Reads retained history that is no longer in the ring.
pub trait HistoryReader: Send + Sync + 'static {
    /// Returns the events of revisions in `(after, until]` for keys under `prefix`, reading at
    /// most `max_revisions` revisions, plus the revision up to which the result is complete.
    /// Fails with [`StoreError::Compacted`] if `after` is below the compaction revision.
    fn read(
        &self,
        prefix: &str,
        after: Revision,
        until: Revision,
        max_revisions: usize,
    ) -> Result<(Vec<Event>, Revision), StoreError>;
}

/// Bounds of the ring.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Maximum number of revisions kept in memory.
    pub max_revisions: usize,
    /// Maximum approximate bytes of events kept in memory.
    pub max_bytes: usize,
    /// Interval of progress notifications on an idle watch.
    pub progress_interval: Duration,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            max_revisions: 10_000,
            max_bytes: 64 << 20,
            progress_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
struct HubState {
    ring: VecDeque<Arc<RevisionEvents>>,
    ring_bytes: usize,
    /// Every event with a revision > `ring_start` and ≤ `progress` is in the ring.
    ring_start: Revision,
    /// Every event with revision ≤ `progress` has been published.
    progress: Revision,
    compact_revision: Revision,
    /// Set when the backend failed permanently; watchers end with this error.
    failure: Option<StoreError>,
    /// Set when the backend shut down; watch streams end.
    closed: bool,
}

/// The shared watch window. See the module documentation.
#[derive(Debug)]
pub struct WatchHub {
    state: Mutex<HubState>,
    progress_tx: watch::Sender<Revision>,
    limits: HubLimits,
}

/// Maximum events handed to one watcher in one response.
const MAX_EVENTS_PER_RESPONSE: usize = 1024;

enum Collected {
    /// Events after the cursor (possibly none) and the revision the cursor may advance to.
    Events(Vec<Event>, Revision),
    /// The cursor is before the ring: history must be read from `ring_start` backwards.
    Behind {
        ring_start: Revision,
        compact_revision: Revision,
    },
    Failed(StoreError),
    Closed,
}

impl WatchHub {
    /// Creates a hub whose history starts after `current` (nothing is in the ring yet).
    pub fn new(current: Revision, compact_revision: Revision, limits: HubLimits) -> Arc<Self> {
        let (progress_tx, _) = watch::channel(current);
        Arc::new(Self {
            state: Mutex::new(HubState {
                ring: VecDeque::new(),
                ring_bytes: 0,
                ring_start: current,
                progress: current,
                compact_revision,
                failure: None,
                closed: false,
            }),
            progress_tx,
            limits,
        })
    }

    /// Publishes committed revisions (ascending, each above the current progress) and declares
    /// that every event up to `progress` is now published.
    pub fn publish(&self, revisions: Vec<RevisionEvents>, progress: Revision) {
        {
            let mut state = self.state.lock();
            for rev in revisions {
                if rev.revision <= state.progress {
                    // Already covered (e.g. a backend re-delivering after reconnect).
                    continue;
                }
                state.ring_bytes += rev.approx_bytes();
                state.ring.push_back(Arc::new(rev));
            }
            while state.ring.len() > self.limits.max_revisions
                || (state.ring_bytes > self.limits.max_bytes && state.ring.len() > 1)
            {
                let Some(old) = state.ring.pop_front() else { break };
                state.ring_bytes -= old.approx_bytes();
                state.ring_start = old.revision;
            }
            if progress > state.progress {
                state.progress = progress;
            }
        }
        self.progress_tx.send_replace(progress);
    }

    /// Records a new compaction revision.
    pub fn set_compact_revision(&self, compact_revision: Revision) {
        let mut state = self.state.lock();
        state.compact_revision = state.compact_revision.max(compact_revision);
    }

    /// Ends every watch with `error` (the backend can no longer guarantee a gap-free stream).
    pub fn fail(&self, error: StoreError) {
        self.state.lock().failure = Some(error);
        self.progress_tx.send_modify(|_| {});
    }

    /// Ends every watch stream (the backend shut down).
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.progress_tx.send_modify(|_| {});
    }

    /// The oldest revision the ring can serve a watch from (events after it are in memory).
    pub fn ring_start(&self) -> Revision {
        self.state.lock().ring_start
    }

    fn collect(&self, prefix: &str, cursor: Revision) -> Collected {
        let state = self.state.lock();
        if state.closed {
            return Collected::Closed;
        }
        if let Some(error) = &state.failure {
            return Collected::Failed(error.clone());
        }
        if cursor < state.ring_start {
            return Collected::Behind {
                ring_start: state.ring_start,
                compact_revision: state.compact_revision,
            };
        }
        let start = state.ring.partition_point(|r| r.revision <= cursor);
        let mut events = Vec::new();
        for rev in state.ring.range(start..) {
            if rev.revision > state.progress {
                break;
            }
            if events.len() >= MAX_EVENTS_PER_RESPONSE {
                // Stop at a revision boundary: everything before `rev` is complete.
                return Collected::Events(events, rev.revision - 1);
            }
            events.extend(
                rev.events
                    .iter()
                    .filter(|e| e.kv.key.starts_with(prefix))
                    .cloned(),
            );
        }
        Collected::Events(events, state.progress.max(cursor))
    }

    /// Starts a watch stream of events under `prefix` after `after`. The caller has checked
    /// that `after` is neither compacted nor in the future.
    pub fn subscribe(
        self: &Arc<Self>,
        prefix: String,
        after: Revision,
        history: Option<Arc<dyn HistoryReader>>,
    ) -> WatchStream {
        let progress_rx = self.progress_tx.subscribe();
        let sub = Subscription {
            hub: self.clone(),
            prefix,
            cursor: after,
            history,
            progress_rx,
            last_sent: Instant::now(),
            done: false,
        };
        Box::pin(futures::stream::unfold(sub, |mut sub| async move {
            let item = sub.next().await?;
            Some((item, sub))
        }))
    }
}

/// One watcher: a prefix and a cursor (every matching event ≤ `cursor` has been delivered).
struct Subscription {
    hub: Arc<WatchHub>,
    prefix: String,
    cursor: Revision,
    history: Option<Arc<dyn HistoryReader>>,
    progress_rx: watch::Receiver<Revision>,
    last_sent: Instant,
    done: bool,
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<WatchResponse, StoreError>> {
        loop {
            if self.done {
                return None;
            }
            // Mark the current progress as seen before collecting, so a publish racing with the
            // collection wakes us again instead of being missed.
            self.progress_rx.borrow_and_update();
            match self.hub.collect(&self.prefix, self.cursor) {
                Collected::Closed => {
                    self.done = true;
                    return None;
                }
                Collected::Failed(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
                Collected::Events(events, through) => {
                    self.cursor = through;
                    if !events.is_empty() {
                        return Some(Ok(self.respond(events)));
                    }
                }
                Collected::Behind {
                    ring_start,
                    compact_revision,
                } => {
                    let Some(history) = self.history.clone() else {
                        self.done = true;
                        return Some(Err(StoreError::Compacted {
                            requested: self.cursor,
                            compact_revision: compact_revision.max(ring_start),
                        }));
                    };
                    let prefix = self.prefix.clone();
                    let after = self.cursor;
                    let read = tokio::task::spawn_blocking(move || {
                        history.read(&prefix, after, ring_start, MAX_EVENTS_PER_RESPONSE)
                    })
                    .await;
                    match read {
                        Ok(Ok((events, through))) => {
                            self.cursor = through;
                            if !events.is_empty() {
                                return Some(Ok(self.respond(events)));
                            }
                            continue;
                        }
                        Ok(Err(error)) => {
                            self.done = true;
                            return Some(Err(error));
                        }
                        Err(join) => {
                            self.done = true;
                            return Some(Err(StoreError::Backend(format!("history read failed: {join}"))));
                        }
                    }
                }
            }
            let deadline = self.last_sent + self.hub.limits.progress_interval;
            tokio::select! {
                changed = self.progress_rx.changed() => {
                    if changed.is_err() {
                        // The backend shut down.
                        self.done = true;
                        return None;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Some(Ok(self.respond(Vec::new())));
                }
            }
        }
    }

    fn respond(&mut self, events: Vec<Event>) -> WatchResponse {
        self.last_sent = Instant::now();
        WatchResponse {
            events,
            revision: self.cursor,
        }
    }
}
