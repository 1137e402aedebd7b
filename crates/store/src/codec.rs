//! Binary encoding of the embedded backend's table values.
//!
//! Every record is a fixed little-endian layout so that decoding is a bounds-checked slice walk;
//! a record that does not decode exactly is reported as corruption, never as a panic.
//!
//! - `kv` value: `create_revision u64 | mod_revision u64 | version u64 | value bytes…`
//! - `log` value (all events of one revision, in op order): `count u32`, then per event
//!   `kind u8 | key_len u32 | key | create_revision u64 | version u64 | value_len u32 | value |
//!   has_prev u8 [| prev create u64 | prev mod u64 | prev version u64 | prev_len u32 | prev value]`.

use bytes::Bytes;

use crate::{Event, EventKind, KeyValue, Revision};

/// A record in a table could not be decoded: the database file is damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt {table} record: {reason}")]
pub struct CorruptRecord {
    /// The table the record was read from.
    pub table: &'static str,
    /// What was wrong with it.
    pub reason: &'static str,
}

const KV_HEADER: usize = 24;

/// Encodes the `kv` table value of a live key.
pub fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(KV_HEADER + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.version.to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a `kv` table value back into a [`KeyValue`] for `key`.
pub fn decode_kv(key: &str, raw: &[u8]) -> Result<KeyValue, CorruptRecord> {
    let mut r = Reader::new(raw, "kv");
    let create_revision = r.u64()?;
    let mod_revision = r.u64()?;
    let version = r.u64()?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(r.rest()),
        create_revision,
        mod_revision,
        version,
    })
}

/// Reads only the `mod_revision` of a `kv` table value (for compares, without copying the value).
pub fn kv_mod_revision(raw: &[u8]) -> Result<Revision, CorruptRecord> {
    let mut r = Reader::new(raw, "kv");
    r.u64()?;
    r.u64()
}

/// Encodes the events of one revision as a `log` table value.
pub fn encode_log(events: &[Event]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| 64 + e.kv.key.len() + e.kv.value.len() + e.prev.as_ref().map_or(0, |p| p.value.len()))
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for event in events {
        out.push(match event.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        put_bytes(&mut out, event.kv.key.as_bytes());
        out.extend_from_slice(&event.kv.create_revision.to_le_bytes());
        out.extend_from_slice(&event.kv.version.to_le_bytes());
        put_bytes(&mut out, &event.kv.value);
        match &event.prev {
            None => out.push(0),
            Some(prev) => {
                out.push(1);
                out.extend_from_slice(&prev.create_revision.to_le_bytes());
                out.extend_from_slice(&prev.mod_revision.to_le_bytes());
                out.extend_from_slice(&prev.version.to_le_bytes());
                put_bytes(&mut out, &prev.value);
            }
        }
    }
    out
}

/// Decodes a `log` table value written at `revision`.
pub fn decode_log(revision: Revision, raw: &[u8]) -> Result<Vec<Event>, CorruptRecord> {
    let mut r = Reader::new(raw, "log");
    let count = r.u32()? as usize;
    // Every event takes at least 30 bytes; a larger count is corruption, not a huge allocation.
    if count > raw.len() / 30 {
        return Err(r.corrupt("event count exceeds record size"));
    }
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = match r.u8()? {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            _ => return Err(r.corrupt("unknown event kind")),
        };
        let key = std::str::from_utf8(r.bytes()?)
            .map_err(|_| r.corrupt("key is not UTF-8"))?
            .to_owned();
        let create_revision = r.u64()?;
        let version = r.u64()?;
        let value = Bytes::copy_from_slice(r.bytes()?);
        let prev = match r.u8()? {
            0 => None,
            1 => {
                let create_revision = r.u64()?;
                let mod_revision = r.u64()?;
                let version = r.u64()?;
                let value = Bytes::copy_from_slice(r.bytes()?);
                Some(KeyValue {
                    key: key.clone(),
                    value,
                    create_revision,
                    mod_revision,
                    version,
                })
            }
            _ => return Err(r.corrupt("bad prev flag")),
        };
        events.push(Event {
            kind,
            kv: KeyValue {
                key,
                value,
                create_revision,
                mod_revision: revision,
                version,
            },
            prev,
        });
    }
    if !r.rest().is_empty() {
        return Err(r.corrupt("trailing bytes"));
    }
    Ok(events)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A bounds-checked cursor over a record.
struct Reader<'a> {
    raw: &'a [u8],
    table: &'static str,
}

impl<'a> Reader<'a> {
    fn new(raw: &'a [u8], table: &'static str) -> Self {
        Self { raw, table }
    }

    fn corrupt(&self, reason: &'static str) -> CorruptRecord {
        CorruptRecord {
            table: self.table,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.raw.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, tail) = self.raw.split_at(n);
        self.raw = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CorruptRecord> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, CorruptRecord> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], CorruptRecord> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn rest(&self) -> &'a [u8] {
        self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv(key: &str, value: &[u8], c: u64, m: u64, v: u64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Bytes::copy_from_slice(value),
            create_revision: c,
            mod_revision: m,
            version: v,
        }
    }

    #[test]
    fn kv_round_trip() {
        let k = kv("/a", b"hello", 3, 7, 2);
        let raw = encode_kv(&k);
        assert_eq!(decode_kv("/a", &raw).unwrap(), k);
        assert_eq!(kv_mod_revision(&raw).unwrap(), 7);
        assert!(decode_kv("/a", &raw[..10]).is_err());
    }

    #[test]
    fn log_round_trip() {
        let events = vec![
            Event {
                kind: EventKind::Put,
                kv: kv("/a", b"new", 5, 9, 2),
                prev: Some(kv("/a", b"old", 5, 5, 1)),
            },
            Event {
                kind: EventKind::Delete,
                kv: kv("/b", b"", 0, 9, 0),
                prev: Some(kv("/b", b"x", 2, 4, 3)),
            },
            Event {
                kind: EventKind::Put,
                kv: kv("/c", b"c", 9, 9, 1),
                prev: None,
            },
        ];
        let raw = encode_log(&events);
        assert_eq!(decode_log(9, &raw).unwrap(), events);
    }

    proptest! {
        // Arbitrary bytes never panic the decoders.
        #[test]
        fn decoders_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_log(1, &raw);
            let _ = decode_kv("/k", &raw);
            let _ = kv_mod_revision(&raw);
        }

        // Truncating or extending a valid record is detected.
        #[test]
        fn damaged_log_is_rejected(value in proptest::collection::vec(any::<u8>(), 0..64), cut in 1usize..16) {
            let events = vec![Event { kind: EventKind::Put, kv: kv("/k", &value, 1, 1, 1), prev: None }];
            let raw = encode_log(&events);
            let cut = cut.min(raw.len());
            prop_assert!(decode_log(1, &raw[..raw.len() - cut]).is_err());
            let mut longer = raw.clone();
            longer.push(0);
            prop_assert!(decode_log(1, &longer).is_err());
        }
    }
}
