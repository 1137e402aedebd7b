//! Keeps an in-memory copy of the objects under a store prefix current: one list, then a watch
//! from the list's revision; after a watch error (e.g. compaction) it lists again. The authorizers
//! decide from such copies so that a request never costs a store read.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ironnet_store::{EventKind, ListOptions, Revision, Store};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ApiError;

/// Receives the changes of the mirrored prefix: `reset` means the batch is a full listing that
/// replaces everything seen before; `None` is a deletion.
pub(crate) type Sink = Arc<dyn Fn(bool, &[(String, Option<Value>)]) + Send + Sync>;

/// The running mirror: the revision up to which every change has been applied.
#[derive(Clone)]
pub(crate) struct Mirror {
    applied: watch::Receiver<Revision>,
}

impl Mirror {
    /// Waits until every change up to `revision` has been applied (at most `timeout`).
    pub(crate) async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.applied.clone();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

async fn list_all(
    store: &dyn Store,
    prefix: &str,
) -> Result<(Vec<(String, Option<Value>)>, Revision), ApiError> {
    let mut out = Vec::new();
    let mut options = ListOptions::default();
    loop {
        let page = store.list(prefix, options.clone()).await?;
        for kv in &page.items {
            match serde_json::from_slice::<Value>(&kv.value) {
                Ok(v) => out.push((kv.key.clone(), Some(v))),
                Err(e) => tracing::warn!(key = %kv.key, error = %e, "unreadable object skipped"),
            }
        }
        if !page.more {
            return Ok((out, page.revision));
        }
        options = ListOptions {
            revision: Some(page.revision),
            limit: None,
            start_after: page.items.last().map(|kv| kv.key.clone()),
        };
    }
}

/// Lists `prefix` into `sink`, then keeps it current in a background task (returned, so that
/// the server can stop it).
pub(crate) async fn start(
    store: Arc<dyn Store>,
    prefix: String,
    sink: Sink,
) -> Result<(Mirror, JoinHandle<()>), ApiError> {
    let (items, revision) = list_all(store.as_ref(), &prefix).await?;
    sink(true, &items);
    let (tx, rx) = watch::channel(revision);
    let task = tokio::spawn(async move {
        let mut from = revision;
        loop {
            match follow(store.as_ref(), &prefix, from, &sink, &tx).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(%prefix, error = %e, "authorization cache relisting"),
            }
            // The watch failed (compacted or the store restarting): start over from a fresh list.
            loop {
                match list_all(store.as_ref(), &prefix).await {
                    Ok((items, revision)) => {
                        sink(true, &items);
                        tx.send_replace(revision);
                        from = revision;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(%prefix, error = %e, "authorization cache list failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    });
    Ok((Mirror { applied: rx }, task))
}

/// Applies watch events until the stream ends (`Ok`: the store shut down) or fails.
async fn follow(
    store: &dyn Store,
    prefix: &str,
    from: Revision,
    sink: &Sink,
    applied: &watch::Sender<Revision>,
) -> Result<(), ApiError> {
    let mut stream = store.watch(prefix, from).await?;
    while let Some(response) = stream.next().await {
        let response = response?;
        let changes: Vec<(String, Option<Value>)> = response
            .events
            .iter()
            .map(|e| {
                let obj = match e.kind {
                    EventKind::Put => serde_json::from_slice(&e.kv.value).ok(),
                    EventKind::Delete => None,
                };
                (e.kv.key.clone(), obj)
            })
            .collect();
        if !changes.is_empty() {
            sink(false, &changes);
        }
        let last = response
            .events
            .iter()
            .map(|e| e.kv.mod_revision)
            .max()
            .unwrap_or(0)
            .max(response.revision);
        applied.send_if_modified(|r| {
            let newer = last > *r;
            if newer {
                *r = last;
            }
            newer
        });
    }
    Ok(())
}
