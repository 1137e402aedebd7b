//! Conversions between etcd's wire types and the store model, and error mapping.

use super::proto::mvccpb;
use crate::{Event, EventKind, KeyValue, Revision, StoreError};

/// The smallest key greater than every key starting with `prefix` (etcd's "prefix range end").
/// An empty or all-`0xff` prefix ranges to the end of the keyspace (`"\0"`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The start key of a range or watch: etcd rejects an empty key ("key is not provided"), so
/// an empty start becomes `"\0"`, the smallest key — with [`prefix_end`] of `""` (also `"\0"`)
/// that means "every key", exactly as etcd's own client spells a prefix range over everything.
pub fn range_start(key: Vec<u8>) -> Vec<u8> {
    if key.is_empty() { vec![0] } else { key }
}

/// Converts etcd's signed revisions (never negative in practice) to [`Revision`].
pub fn revision(r: i64) -> Revision {
    r.max(0) as Revision
}

/// Converts a store revision to etcd's signed representation, rejecting values it cannot hold.
pub fn etcd_revision(r: Revision) -> Result<i64, StoreError> {
    i64::try_from(r).map_err(|_| StoreError::InvalidRequest(format!("revision {r} is out of range")))
}

/// Converts an etcd key-value, stripping `key_prefix` from the key.
pub fn key_value(key_prefix: &str, kv: mvccpb::KeyValue) -> Result<KeyValue, StoreError> {
    let full = String::from_utf8(kv.key.to_vec())
        .map_err(|_| StoreError::Backend("etcd returned a non-UTF-8 key".into()))?;
    let key = full
        .strip_prefix(key_prefix)
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "etcd returned key {full:?} outside the prefix {key_prefix:?}"
            ))
        })?
        .to_owned();
    Ok(KeyValue {
        key,
        value: kv.value,
        create_revision: revision(kv.create_revision),
        mod_revision: revision(kv.mod_revision),
        version: revision(kv.version),
    })
}

/// Converts an etcd watch event.
pub fn event(key_prefix: &str, e: mvccpb::Event) -> Result<Event, StoreError> {
    let kind = match mvccpb::event::EventType::try_from(e.r#type) {
        Ok(mvccpb::event::EventType::Put) => EventKind::Put,
        Ok(mvccpb::event::EventType::Delete) => EventKind::Delete,
        Err(_) => {
            return Err(StoreError::Backend(format!(
                "unknown etcd event type {}",
                e.r#type
            )));
        }
    };
    let kv = key_value(
        key_prefix,
        e.kv.ok_or_else(|| StoreError::Backend("etcd event without kv".into()))?,
    )?;
    let prev = e.prev_kv.map(|p| key_value(key_prefix, p)).transpose()?;
    Ok(Event { kind, kv, prev })
}

/// What an etcd error status means for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusKind {
    /// "required revision has been compacted".
    Compacted,
    /// "required revision is a future revision".
    FutureRevision,
    /// Any other error, already mapped.
    Other(StoreError),
}

/// Classifies a gRPC status returned by etcd.
pub fn classify(status: &tonic::Status) -> StatusKind {
    let message = status.message();
    if message.contains("required revision has been compacted") {
        return StatusKind::Compacted;
    }
    if message.contains("required revision is a future revision") {
        return StatusKind::FutureRevision;
    }
    let error = match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Aborted => StoreError::Unavailable(format!("etcd: {message}")),
        _ if message.contains("request is too large") => StoreError::ValueTooLarge { size: 0, limit: 0 },
        tonic::Code::InvalidArgument => StoreError::InvalidRequest(format!("etcd: {message}")),
        code => StoreError::Backend(format!("etcd: {code:?}: {message}")),
    };
    StatusKind::Other(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
        assert_eq!(range_start(Vec::new()), b"\0");
        assert_eq!(range_start(b"/a".to_vec()), b"/a");
    }

    #[test]
    fn keys_outside_the_prefix_are_errors() {
        let kv = mvccpb::KeyValue {
            key: "/x/a".into(),
            ..Default::default()
        };
        assert!(key_value("/y", kv.clone()).is_err());
        assert_eq!(key_value("/x", kv).unwrap().key, "/a");
    }

    #[test]
    fn statuses() {
        let s = tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
        assert_eq!(classify(&s), StatusKind::Compacted);
        let s = tonic::Status::unavailable("connection refused");
        assert!(matches!(
            classify(&s),
            StatusKind::Other(StoreError::Unavailable(_))
        ));
    }
}
