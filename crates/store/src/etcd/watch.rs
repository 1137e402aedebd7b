//! etcd watches: one long-lived etcd watch per store feeding the shared [`WatchHub`], and
//! private feeds for subscribers that start before the hub's window.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::convert::{event, prefix_end, range_start, revision};
use super::proto::etcdserverpb::{self, watch_client::WatchClient, watch_request};
use crate::hub::{RevisionEvents, WatchHub};
use crate::{Revision, StoreError};

/// Feeds `hub` with every change under `key_prefix` after `after`, reconnecting on stream
/// errors from the last delivered revision, until the task is aborted. When etcd reports that
/// the next revision was compacted (possible only after a long disconnection), the hub fails with
/// [`StoreError::Compacted`], because a gap-free stream can no longer be produced.
///
/// `created` fires once etcd has confirmed the first watch: from then on etcd keeps the watch
/// synced and a compaction can no longer cancel it, so callers wait for it before relying on
/// the feed.
pub async fn feed(
    client: WatchClient<Channel>,
    key_prefix: String,
    hub: Arc<WatchHub>,
    after: Revision,
    created: oneshot::Sender<()>,
) {
    feed_range(client, key_prefix.clone(), key_prefix, hub, after, created).await;
}

/// Like [`feed`], but watches only keys starting with `watch_prefix` (which starts with
/// `key_prefix`), reporting keys relative to `key_prefix`.
pub async fn feed_range(
    client: WatchClient<Channel>,
    key_prefix: String,
    watch_prefix: String,
    hub: Arc<WatchHub>,
    after: Revision,
    created: oneshot::Sender<()>,
) {
    let mut next = after + 1;
    let mut created = Some(created);
    let mut backoff = Duration::from_millis(100);
    loop {
        match run_once(
            client.clone(),
            &key_prefix,
            &watch_prefix,
            &hub,
            &mut next,
            &mut created,
        )
        .await
        {
            Ok(()) => {}
            Err(StoreError::Compacted {
                requested,
                compact_revision,
            }) => {
                hub.fail(StoreError::Compacted {
                    requested,
                    compact_revision,
                });
                return;
            }
            Err(error) => {
                tracing::warn!(%error, next, "etcd watch interrupted; reconnecting");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn run_once(
    mut client: WatchClient<Channel>,
    key_prefix: &str,
    watch_prefix: &str,
    hub: &WatchHub,
    next: &mut Revision,
    created: &mut Option<oneshot::Sender<()>>,
) -> Result<(), StoreError> {
    let (tx, rx) = mpsc::channel(1);
    let create = etcdserverpb::WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            etcdserverpb::WatchCreateRequest {
                key: range_start(watch_prefix.as_bytes().to_vec()).into(),
                range_end: prefix_end(watch_prefix.as_bytes()).into(),
                start_revision: i64::try_from(*next).unwrap_or(i64::MAX),
                progress_notify: true,
                prev_kv: true,
                ..Default::default()
            },
        )),
    };
    tx.send(create)
        .await
        .map_err(|_| StoreError::Unavailable("watch request channel closed".into()))?;
    let mut stream = client
        .watch(ReceiverStream::new(rx))
        .await
        .map_err(|s| StoreError::Unavailable(format!("etcd watch: {}", s.message())))?
        .into_inner();
    // `tx` stays alive for the stream's lifetime: closing it would half-close the RPC.
    let _keep_open = tx;
    loop {
        let response = stream
            .message()
            .await
            .map_err(|s| StoreError::Unavailable(format!("etcd watch: {}", s.message())))?
            .ok_or_else(|| StoreError::Unavailable("etcd watch stream ended".into()))?;
        if response.canceled {
            if response.compact_revision > 0 {
                return Err(StoreError::Compacted {
                    requested: next.saturating_sub(1),
                    compact_revision: revision(response.compact_revision),
                });
            }
            return Err(StoreError::Unavailable(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason
            )));
        }
        if response.created {
            if let Some(created) = created.take() {
                let _ = created.send(());
            }
            continue;
        }
        if response.events.is_empty() {
            // A server progress notification: sent only for synced watchers, after every event
            // up to the header revision.
            let progress = revision(response.header.map_or(0, |h| h.revision));
            if progress >= *next {
                *next = progress + 1;
                hub.publish(Vec::new(), progress);
            }
            continue;
        }
        let mut revisions: Vec<RevisionEvents> = Vec::new();
        for e in response.events {
            let e = event(key_prefix, e)?;
            let rev = e.kv.mod_revision;
            match revisions.last_mut() {
                Some(last) if last.revision == rev => last.events.push(e),
                _ => revisions.push(RevisionEvents {
                    revision: rev,
                    events: vec![e],
                }),
            }
        }
        let last = revisions.last().map_or(*next - 1, |r| r.revision);
        *next = last + 1;
        hub.publish(revisions, last);
    }
}
