//! WATCH: newline-delimited JSON events from the store's watch, with selectors, initial events
//! (`resourceVersion` ""/"0" and KEP-3157 `sendInitialEvents`), BOOKMARKs, `timeoutSeconds`,
//! Table/metadata projections and "too old" reported in-stream as an ERROR event with code 410.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use ironnet_store::{EventKind, Revision, StoreError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::definition::ResourceDefinition;
use crate::error::ApiError;
use crate::handlers::decode_stored;
use crate::handlers::read::Selectors;
use crate::request::{Output, Query};
use crate::server::{Call, Server};
use crate::table::{IncludeObject, TableConvertor, partial_object_metadata};

/// Annotation on the BOOKMARK that ends the initial events of a streaming list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Synthetic ADDED events for the current state, then changes.
    WithInitialState {
        /// End the initial events with an annotated BOOKMARK (KEP-3157).
        bookmark_end: bool,
    },
    /// Changes after this revision.
    After(Revision),
    /// Changes after the current revision.
    Now,
}

fn parse_start(q: &Query) -> Result<Start, ApiError> {
    let rv = q.get("resourceVersion").unwrap_or("");
    let send_initial = match q.get("sendInitialEvents") {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid sendInitialEvents {other:?}"
            )));
        }
    };
    if let Some(send) = send_initial {
        if q.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::bad_request(
                "sendInitialEvents: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if send && !q.flag("allowWatchBookmarks")? {
            return Err(ApiError::bad_request(
                "allowWatchBookmarks: Forbidden: allowWatchBookmarks is required when sendInitialEvents is set",
            ));
        }
        if send {
            return Ok(Start::WithInitialState { bookmark_end: true });
        }
    } else if q.get("resourceVersionMatch").is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    match rv {
        "" | "0" if send_initial.is_none() => Ok(Start::WithInitialState { bookmark_end: false }),
        "" | "0" => Ok(Start::Now),
        n => n.parse().map(Start::After).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resourceVersion {n:?}: must be a decimal integer"
            ))
        }),
    }
}

/// Encodes watch events for one watcher in the negotiated representation.
struct Encoder {
    output: Output,
    table: Option<(TableConvertor, IncludeObject)>,
    headers_sent: bool,
    def: ResourceDefinition,
    /// Length-prefixed protobuf `WatchEvent` frames instead of JSON lines.
    protobuf: bool,
}

impl Encoder {
    fn event(&mut self, type_: &str, obj: Value, now: jiff::Timestamp) -> Bytes {
        let object = match (&self.output, &self.table) {
            (Output::Table, Some((t, include))) => {
                let rv = crate::meta::meta_str(&obj, "resourceVersion").to_owned();
                let table = t.table(
                    &[obj],
                    json!({"resourceVersion": rv}),
                    *include,
                    !self.headers_sent,
                    now,
                );
                self.headers_sent = true;
                table
            }
            (Output::PartialMetadata, _) => partial_object_metadata(&obj),
            _ => obj,
        };
        self.frame(type_, object)
    }

    /// One event in this watch's encoding. An object that has no protobuf form (which the kind
    /// check at the start rules out) or does not fit its message ends the stream with an error
    /// frame rather than a line the client cannot read.
    fn frame(&self, type_: &str, object: Value) -> Bytes {
        if !self.protobuf {
            return line(type_, object);
        }
        match crate::protobuf::watch_frame(type_, &object) {
            Some(Ok(frame)) => Bytes::from(frame),
            Some(Err(e)) => self.error(&ApiError::internal(e.to_string())),
            None => self.error(&ApiError::internal(format!(
                "{} has no protobuf encoding",
                self.def.kind
            ))),
        }
    }

    /// An ERROR event carrying `e`'s Status.
    fn error(&self, e: &ApiError) -> Bytes {
        let status = e.to_status();
        if self.protobuf
            && let Some(Ok(frame)) = crate::protobuf::watch_frame("ERROR", &status)
        {
            return Bytes::from(frame);
        }
        line("ERROR", status)
    }

    fn bookmark(&self, rv: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        self.frame(
            "BOOKMARK",
            json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta}),
        )
    }
}

fn line(type_: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

impl Server {
    /// Serves a watch request as a streaming response.
    pub(crate) async fn watch(self: std::sync::Arc<Self>, call: Call) -> Response {
        match self.start_watch(call).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }

    async fn start_watch(self: std::sync::Arc<Self>, call: Call) -> Result<Response, ApiError> {
        if call.name.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let def = call.def().clone();
        let sel = Selectors::parse(&def, &call.query)?;
        let start = parse_start(&call.query)?;
        let bookmarks = call.query.flag("allowWatchBookmarks")?;
        let timeout = call
            .query
            .int("timeoutSeconds")?
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t as u64));
        let table = match call.output {
            Output::Table => Some((
                TableConvertor::for_kind(&call.kind),
                crate::handlers::include_object(&call)?,
            )),
            _ => None,
        };
        let mut encoder = Encoder {
            output: call.output,
            table,
            headers_sent: false,
            def: def.clone(),
            protobuf: call.protobuf_watch && call.output == Output::Json,
        };
        let encoder_protobuf = encoder.protobuf;
        let namespace = call.namespace.clone();
        let prefix = sel.prefix(&def, namespace.as_deref());
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        // Initial state is read before responding so that errors (e.g. a bad revision) become HTTP errors.
        let mut initial = Vec::new();
        let after = match start {
            Start::WithInitialState { bookmark_end } => {
                let mut q = Query::default();
                q.remove("limit");
                let listed = self.list_objects(&def, namespace.as_deref(), &sel, &q).await?;
                let now = self.clock.now();
                for obj in listed.items {
                    initial.push(encoder.event("ADDED", obj, now));
                }
                if bookmark_end {
                    initial.push(encoder.bookmark(listed.revision, true));
                }
                listed.revision
            }
            Start::After(rv) => rv,
            Start::Now => self.store.current_revision().await?,
        };
        let server = self.clone();
        let bookmark_interval = self.config.bookmark_interval;
        tokio::spawn(async move {
            for b in initial {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            let mut stream = match server.store.watch(&prefix, after).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(encoder.error(&watch_error(e))).await;
                    return;
                }
            };
            let mut last_rv = after;
            let mut next_bookmark = tokio::time::Instant::now() + bookmark_interval;
            loop {
                let sleep_until = match deadline {
                    Some(d) if d < next_bookmark || !bookmarks => d,
                    _ => next_bookmark,
                };
                tokio::select! {
                    item = stream.next() => {
                        let Some(item) = item else { return };
                        match item {
                            Ok(resp) => {
                                let now = server.clock.now();
                                for ev in resp.events {
                                    let Some(bytes) = convert(&server.event_cache, &mut encoder, &sel, ev, now) else { continue };
                                    if tx.send(bytes).await.is_err() {
                                        return;
                                    }
                                }
                                last_rv = last_rv.max(resp.revision);
                            }
                            Err(e) => {
                                let _ = tx.send(encoder.error(&watch_error(e))).await;
                                return;
                            }
                        }
                    }
                    _ = tokio::time::sleep_until(sleep_until) => {
                        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                            return;
                        }
                        if bookmarks && tx.send(encoder.bookmark(last_rv, false)).await.is_err() {
                            return;
                        }
                        next_bookmark = tokio::time::Instant::now() + bookmark_interval;
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        let body =
            Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>));
        let mut resp = (StatusCode::OK, body).into_response();
        let ct = match call.output {
            Output::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
            _ if encoder_protobuf => crate::protobuf::WATCH_MEDIA_TYPE,
            _ => "application/json",
        };
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }
}

fn watch_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted {
            requested,
            compact_revision,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compact_revision})"
        )),
        other => ApiError::from(other),
    }
}

/// One stored object version, decoded and JSON-encoded once and shared by every watcher.
#[derive(Debug)]
pub(crate) struct SharedObject {
    value: Value,
    json: Bytes,
}

/// Identifies one event's object: store key, revision, and whether it is a deletion.
type EventId = (String, Revision, bool);

/// Cached objects plus their insertion order (oldest first) for eviction.
type CacheState = (HashMap<EventId, Arc<SharedObject>>, VecDeque<EventId>);

/// A bounded cache of [`SharedObject`]s keyed by (key, revision, deleted): the first watcher to
/// see an event decodes and encodes it, every other watcher of the same event reuses the bytes.
#[derive(Debug)]
pub(crate) struct EventCache {
    inner: parking_lot::Mutex<CacheState>,
    capacity: usize,
}

impl Default for EventCache {
    fn default() -> Self {
        EventCache {
            inner: Default::default(),
            capacity: 4096,
        }
    }
}

impl EventCache {
    /// The shared form of `kv` with `metadata.resourceVersion = rv` (`deleted`: a deletion event).
    fn get(&self, kv: &ironnet_store::KeyValue, rv: Revision, deleted: bool) -> Option<Arc<SharedObject>> {
        let id = (kv.key.clone(), rv, deleted);
        if let Some(hit) = self.inner.lock().0.get(&id) {
            return Some(hit.clone());
        }
        let mut value = decode_stored(kv).ok()?;
        crate::meta::set_resource_version(&mut value, rv);
        let json = Bytes::from(serde_json::to_vec(&value).ok()?);
        let shared = Arc::new(SharedObject { value, json });
        let mut guard = self.inner.lock();
        let (map, order) = &mut *guard;
        if map.insert(id.clone(), shared.clone()).is_none() {
            order.push_back(id);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        Some(shared)
    }
}

impl Encoder {
    /// A watch line for a shared object: JSON output splices the shared bytes (no re-encoding);
    /// Table and metadata projections are built per watcher.
    fn shared_event(&mut self, type_: &str, obj: &SharedObject, now: jiff::Timestamp) -> Bytes {
        if matches!(self.output, Output::Json | Output::Yaml) && !self.protobuf {
            let mut line = Vec::with_capacity(obj.json.len() + 32);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(type_.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            line.extend_from_slice(&obj.json);
            line.extend_from_slice(b"}\n");
            return Bytes::from(line);
        }
        self.event(type_, obj.value.clone(), now)
    }
}

/// Converts one store event to a watch event line, applying the selectors the way
/// kube-apiserver's cacher does (objects moving into or out of the selection become ADDED/DELETED).
fn convert(
    cache: &EventCache,
    encoder: &mut Encoder,
    sel: &Selectors,
    ev: ironnet_store::Event,
    now: jiff::Timestamp,
) -> Option<Bytes> {
    // Without selectors the previous version only decides ADDED vs MODIFIED, which its presence tells; most
    // watches (every controller's) have none, so they skip decoding it.
    let everything = sel.is_everything();
    let prev = if everything {
        None
    } else {
        ev.prev.as_ref().and_then(|p| cache.get(p, p.mod_revision, false))
    };
    let prev_exists = ev.prev.is_some();
    let prev_matches = if everything {
        prev_exists
    } else {
        prev.as_ref().is_some_and(|p| sel.matches(&p.value))
    };
    match ev.kind {
        EventKind::Put => {
            let obj = cache.get(&ev.kv, ev.kv.mod_revision, false)?;
            let now_matches = everything || sel.matches(&obj.value);
            let type_ = match (prev_matches, now_matches) {
                (_, true) if !prev_exists => "ADDED",
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            };
            Some(encoder.shared_event(type_, &obj, now))
        }
        EventKind::Delete => {
            if !prev_matches {
                return None;
            }
            let p = ev.prev.as_ref()?;
            let obj = cache.get(p, ev.kv.mod_revision, true)?;
            Some(encoder.shared_event("DELETED", &obj, now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_semantics() {
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(
            parse_start(&q("")).unwrap(),
            Start::WithInitialState { bookmark_end: false }
        );
        assert_eq!(
            parse_start(&q("resourceVersion=0")).unwrap(),
            Start::WithInitialState { bookmark_end: false }
        );
        assert_eq!(parse_start(&q("resourceVersion=7")).unwrap(), Start::After(7));
        assert_eq!(
            parse_start(&q(
                "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
            ))
            .unwrap(),
            Start::WithInitialState { bookmark_end: true }
        );
        assert_eq!(
            parse_start(&q("sendInitialEvents=true&allowWatchBookmarks=true"))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            parse_start(&q("sendInitialEvents=true&resourceVersionMatch=NotOlderThan"))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(parse_start(&q("resourceVersion=abc")).unwrap_err().code, 400);
    }

    #[test]
    fn events_are_encoded_once_and_shared() {
        let cache = EventCache::default();
        let kv = ironnet_store::KeyValue {
            key: "/registry/g/ws/default/a".into(),
            value: Bytes::from_static(br#"{"metadata":{"name":"a"}}"#),
            create_revision: 3,
            mod_revision: 3,
            version: 1,
        };
        let a = cache.get(&kv, 3, false).unwrap();
        let b = cache.get(&kv, 3, false).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.value["metadata"]["resourceVersion"], "3");
        let def =
            ResourceDefinition::new("g", "v1", "W", "ws", crate::definition::Scope::Namespaced).unwrap();
        let mut enc = Encoder {
            output: Output::Json,
            table: None,
            headers_sent: false,
            def,
            protobuf: false,
        };
        let line = enc.shared_event("ADDED", &a, jiff::Timestamp::now());
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["metadata"]["name"], "a");
        assert!(line.ends_with(b"\n"));
    }
}
