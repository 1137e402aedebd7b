//! The etcd v3 backend: a thin tonic client over a minimal copy of etcd's protocol (no
//! `etcd-client`, which needs a system `protoc`). See `docs/store.md`.
//!
//! - Keys are stored under `key_prefix`, which is stripped again on the way out.
//! - Conditional writes are etcd Txns comparing `mod_revision` (`create_revision == 0` for
//!   "absent"), with a Range of every compared key in the else-branch.
//! - One etcd watch on the whole prefix feeds a shared in-process window that all subscribers
//!   read; a subscriber starting before that window gets its own etcd watch.

mod convert;
mod proto;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::hub::{HubLimits, WatchHub};
use crate::validate::{MAX_TXN_BYTES, validate_key, validate_txn};
use crate::{KeyValue, ListOptions, ListPage, Op, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream};
use convert::{StatusKind, classify, etcd_revision, key_value, prefix_end, range_start, revision};
use proto::etcdserverpb::{
    self, compare, kv_client::KvClient, request_op, response_op, watch_client::WatchClient,
};

/// Settings of an [`EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Prefix prepended to every key in etcd (e.g. `/ironnet`); may be empty.
    pub key_prefix: String,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout of one unary request.
    pub request_timeout: Duration,
    /// Maximum size of one transaction (sum of key and value bytes); etcd's own limit is
    /// `--max-request-bytes` (1.5 MiB by default).
    pub max_txn_bytes: usize,
    /// Revisions of events kept in memory for watches.
    pub watch_window_revisions: usize,
    /// Approximate bytes of events kept in memory for watches.
    pub watch_window_bytes: usize,
    /// Interval of progress notifications on idle watches.
    pub progress_interval: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_txn_bytes: MAX_TXN_BYTES,
            watch_window_revisions: 10_000,
            watch_window_bytes: 64 << 20,
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// A [`Store`] on an etcd v3 cluster.
#[derive(Debug)]
pub struct EtcdStore {
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    options: EtcdOptions,
    hub: Arc<WatchHub>,
    hub_limits: HubLimits,
    feed: JoinHandle<()>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.feed.abort();
        self.hub.close();
    }
}

/// Aborts a private watch feed when its subscriber's stream is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (URLs like `http://127.0.0.1:2379`), checks that it
    /// answers, and starts the shared watch.
    ///
    /// Fails with [`StoreError::InvalidRequest`] for no or malformed endpoints and with
    /// [`StoreError::Unavailable`] when etcd does not answer within the connect timeout.
    pub async fn connect(endpoints: Vec<String>, options: EtcdOptions) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidRequest("no etcd endpoints".into()));
        }
        if options.watch_window_revisions == 0 || options.progress_interval.is_zero() {
            return Err(StoreError::InvalidRequest("invalid etcd store options".into()));
        }
        let mut list = Vec::with_capacity(endpoints.len());
        for url in &endpoints {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| StoreError::InvalidRequest(format!("bad etcd endpoint {url:?}: {e}")))?
                .connect_timeout(options.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(10));
            list.push(endpoint);
        }
        let channel = Channel::balance_list(list.into_iter());
        let kv = KvClient::new(channel.clone()).max_decoding_message_size(usize::MAX);
        let watch = WatchClient::new(channel).max_decoding_message_size(usize::MAX);
        let hub_limits = HubLimits {
            max_revisions: options.watch_window_revisions,
            max_bytes: options.watch_window_bytes,
            progress_interval: options.progress_interval,
        };
        let mut store = Self {
            kv,
            watch: watch.clone(),
            options,
            hub: WatchHub::new(0, 0, hub_limits),
            hub_limits,
            feed: tokio::spawn(async {}),
        };
        let current = tokio::time::timeout(store.options.connect_timeout, store.current_revision())
            .await
            .map_err(|_| StoreError::Unavailable(format!("etcd at {endpoints:?} did not answer")))??;
        store.hub = WatchHub::new(current, 0, hub_limits);
        let (created_tx, created) = tokio::sync::oneshot::channel();
        store.feed = tokio::spawn(watch::feed(
            watch,
            store.options.key_prefix.clone(),
            store.hub.clone(),
            current,
            created_tx,
        ));
        // Until etcd has created the shared watch, a compaction past `current` would cancel it
        // and fail every watch of this store; wait for it.
        wait_created(created, store.options.connect_timeout, &endpoints).await?;
        Ok(store)
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.options.key_prefix.len() + key.len());
        full.extend_from_slice(self.options.key_prefix.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    async fn range(
        &self,
        request: etcdserverpb::RangeRequest,
    ) -> Result<etcdserverpb::RangeResponse, tonic::Status> {
        let mut kv = self.kv.clone();
        match tokio::time::timeout(self.options.request_timeout, kv.range(request)).await {
            Ok(result) => result.map(|r| r.into_inner()),
            Err(_) => Err(tonic::Status::deadline_exceeded("etcd request timed out")),
        }
    }

    /// Maps an etcd error for a request at `requested`.
    async fn error(&self, status: tonic::Status, requested: Revision) -> StoreError {
        match classify(&status) {
            StatusKind::Compacted => match self.compact_revision().await {
                Ok(compact_revision) => StoreError::Compacted {
                    requested,
                    compact_revision,
                },
                Err(e) => e,
            },
            StatusKind::FutureRevision => match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(e) => e,
            },
            StatusKind::Other(StoreError::ValueTooLarge { .. }) => StoreError::ValueTooLarge {
                size: 0,
                limit: self.options.max_txn_bytes,
            },
            StatusKind::Other(e) => e,
        }
    }

    /// Whether a read at `revision` is possible (`Ok(())`), compacted or in the future.
    async fn check_revision(&self, requested: Revision) -> Result<(), StoreError> {
        let current = self.current_revision().await?;
        if requested > current {
            return Err(StoreError::FutureRevision { requested, current });
        }
        if requested == current {
            return Ok(());
        }
        if requested == 0 {
            let compact_revision = self.compact_revision().await?;
            if compact_revision > 0 {
                return Err(StoreError::Compacted {
                    requested,
                    compact_revision,
                });
            }
            return Ok(());
        }
        let probe = etcdserverpb::RangeRequest {
            key: range_start(self.full_key("")).into(),
            revision: etcd_revision(requested)?,
            count_only: true,
            ..Default::default()
        };
        match self.range(probe).await {
            Ok(_) => Ok(()),
            Err(status) => Err(self.error(status, requested).await),
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        // A point read of one key: its response header carries the current revision.
        let request = etcdserverpb::RangeRequest {
            key: range_start(self.full_key("")).into(),
            count_only: true,
            ..Default::default()
        };
        match self.range(request).await {
            Ok(r) => Ok(revision(r.header.map_or(0, |h| h.revision))),
            Err(status) => Err(match classify(&status) {
                StatusKind::Other(e) => e,
                _ => StoreError::Backend(format!("etcd: {}", status.message())),
            }),
        }
    }

    /// etcd does not report its compaction revision directly; it is the lowest revision a
    /// Range still accepts, found by binary search (only called on the rare compacted path).
    async fn compact_revision(&self) -> Result<Revision, StoreError> {
        let current = self.current_revision().await?;
        let readable = |rev: Revision| async move {
            let probe = etcdserverpb::RangeRequest {
                key: range_start(self.full_key("")).into(),
                revision: etcd_revision(rev)?,
                count_only: true,
                ..Default::default()
            };
            match self.range(probe).await {
                Ok(_) => Ok(true),
                Err(status) => match classify(&status) {
                    StatusKind::Compacted => Ok(false),
                    StatusKind::FutureRevision => Ok(true),
                    StatusKind::Other(e) => Err(e),
                },
            }
        };
        if readable(1).await? {
            return Ok(0);
        }
        // Invariant: `lo` is compacted, `hi` is readable.
        let (mut lo, mut hi) = (1, current.max(1));
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if readable(mid).await? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>, StoreError> {
        validate_key(key)?;
        let request = etcdserverpb::RangeRequest {
            key: self.full_key(key).into(),
            revision: etcd_revision(revision.unwrap_or(0))?,
            ..Default::default()
        };
        match self.range(request).await {
            Ok(r) => r
                .kvs
                .into_iter()
                .next()
                .map(|kv| key_value(&self.options.key_prefix, kv))
                .transpose(),
            Err(status) => Err(self.error(status, revision.unwrap_or(0)).await),
        }
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let full_prefix = self.full_key(prefix);
        let start = match &options.start_after {
            Some(after) if after.as_str() >= prefix => {
                let mut start = self.full_key(after);
                start.push(0);
                start
            }
            _ => full_prefix.clone(),
        };
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(0);
        let request = etcdserverpb::RangeRequest {
            key: range_start(start).into(),
            range_end: prefix_end(&full_prefix).into(),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            revision: etcd_revision(options.revision.unwrap_or(0))?,
            ..Default::default()
        };
        match self.range(request).await {
            Ok(r) => {
                let revision = options
                    .revision
                    .unwrap_or_else(|| revision(r.header.map_or(0, |h| h.revision)));
                let items = r
                    .kvs
                    .into_iter()
                    .map(|kv| key_value(&self.options.key_prefix, kv))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ListPage {
                    items,
                    revision,
                    more: r.more,
                })
            }
            Err(status) => Err(self.error(status, options.revision.unwrap_or(0)).await),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let size = validate_txn(&txn, self.options.max_txn_bytes)?;
        let compares = txn
            .compares
            .iter()
            .map(|c| {
                let (target, union) = if c.mod_revision == 0 {
                    (
                        compare::CompareTarget::Create,
                        compare::TargetUnion::CreateRevision(0),
                    )
                } else {
                    (
                        compare::CompareTarget::Mod,
                        compare::TargetUnion::ModRevision(etcd_revision(c.mod_revision)?),
                    )
                };
                Ok(etcdserverpb::Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: target as i32,
                    key: self.full_key(&c.key).into(),
                    target_union: Some(union),
                    range_end: Default::default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let success = txn
            .ops
            .iter()
            .map(|op| etcdserverpb::RequestOp {
                request: Some(match op {
                    Op::Put { key, value } => request_op::Request::RequestPut(etcdserverpb::PutRequest {
                        key: self.full_key(key).into(),
                        value: value.clone(),
                        prev_kv: true,
                        ..Default::default()
                    }),
                    Op::Delete { key } => {
                        request_op::Request::RequestDeleteRange(etcdserverpb::DeleteRangeRequest {
                            key: self.full_key(key).into(),
                            prev_kv: true,
                            ..Default::default()
                        })
                    }
                }),
            })
            .collect();
        let failure = txn
            .compares
            .iter()
            .map(|c| etcdserverpb::RequestOp {
                request: Some(request_op::Request::RequestRange(etcdserverpb::RangeRequest {
                    key: self.full_key(&c.key).into(),
                    ..Default::default()
                })),
            })
            .collect();
        let request = etcdserverpb::TxnRequest {
            compare: compares,
            success,
            failure,
        };
        let mut kv = self.kv.clone();
        let response = match tokio::time::timeout(self.options.request_timeout, kv.txn(request)).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                return Err(match self.error(status, 0).await {
                    // etcd's own request limit can be lower than ours: report the real size.
                    StoreError::ValueTooLarge { limit, .. } => StoreError::ValueTooLarge { size, limit },
                    other => other,
                });
            }
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "etcd txn timed out; its outcome is unknown".into(),
                ));
            }
        };
        let rev = revision(response.header.map_or(0, |h| h.revision));
        let prefix = &self.options.key_prefix;
        let malformed = || StoreError::Backend("etcd txn response does not match the request".into());
        if !response.succeeded {
            let mut current = Vec::with_capacity(txn.compares.len());
            for r in response.responses {
                match r.response {
                    Some(response_op::Response::ResponseRange(range)) => current.push(
                        range
                            .kvs
                            .into_iter()
                            .next()
                            .map(|kv| key_value(prefix, kv))
                            .transpose()?,
                    ),
                    _ => return Err(malformed()),
                }
            }
            if current.len() != txn.compares.len() {
                return Err(malformed());
            }
            return Ok(TxnOutcome::Failed { current });
        }
        if response.responses.len() != txn.ops.len() {
            return Err(malformed());
        }
        let mut results = Vec::with_capacity(txn.ops.len());
        for (op, r) in txn.ops.into_iter().zip(response.responses) {
            match (op, r.response) {
                (Op::Put { key, value }, Some(response_op::Response::ResponsePut(put))) => {
                    let prev = put.prev_kv.map(|p| key_value(prefix, p)).transpose()?;
                    results.push(Some(KeyValue {
                        key,
                        value,
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                    }));
                }
                (Op::Delete { .. }, Some(response_op::Response::ResponseDeleteRange(del))) => {
                    results.push(
                        del.prev_kvs
                            .into_iter()
                            .next()
                            .map(|p| key_value(prefix, p))
                            .transpose()?,
                    );
                }
                _ => return Err(malformed()),
            }
        }
        Ok(TxnOutcome::Succeeded {
            revision: rev,
            results,
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.check_revision(after).await?;
        if after >= self.hub.ring_start() {
            return Ok(self.hub.subscribe(prefix.to_owned(), after, None));
        }
        // Before the shared window: a private etcd watch on just this prefix from `after`.
        let hub = WatchHub::new(after, 0, self.hub_limits);
        let feed_prefix = format!("{}{prefix}", self.options.key_prefix);
        let (created_tx, created) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(watch::feed_range(
            self.watch.clone(),
            self.options.key_prefix.clone(),
            feed_prefix,
            hub.clone(),
            after,
            created_tx,
        ));
        let guard = AbortOnDrop(task);
        // A compaction or cancellation before creation is reported through the hub's stream;
        // a timeout here means etcd did not answer.
        let _ = tokio::time::timeout(self.options.request_timeout, created).await;
        let stream = hub.subscribe(prefix.to_owned(), after, None);
        Ok(Box::pin(futures::StreamExt::map(stream, move |item| {
            let _keep = &guard;
            item
        })))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        let mut kv = self.kv.clone();
        let request = etcdserverpb::CompactionRequest {
            revision: etcd_revision(revision)?,
            physical: false,
        };
        match tokio::time::timeout(self.options.request_timeout, kv.compact(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(self.error(status, revision).await),
            Err(_) => Err(StoreError::Unavailable("etcd compact timed out".into())),
        }
    }
}

/// Waits until the shared etcd watch is created, or fails after `timeout`.
async fn wait_created(
    created: tokio::sync::oneshot::Receiver<()>,
    timeout: Duration,
    endpoints: &[String],
) -> Result<(), StoreError> {
    match tokio::time::timeout(timeout, created).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(StoreError::Unavailable(format!(
            "etcd at {endpoints:?}: the watch feed stopped before it started"
        ))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "etcd at {endpoints:?} did not create the watch in time"
        ))),
    }
}
