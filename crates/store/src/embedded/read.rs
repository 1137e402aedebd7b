//! Reads from a redb MVCC snapshot: gets, lists (at the current or an older revision) and
//! history for watches.
//!
//! Older revisions are reconstructed from the `log` table instead of keeping an MVCC index: the
//! state of a key at revision `r` is its current value unless an event after `r` touched it, in
//! which case it is the *previous value* recorded with the first such event. This keeps writes
//! to one `kv` row plus one `log` row per revision, and makes a read at an old revision cost
//! O(changes since then) on top of the current-state scan.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::ReadTransaction;

use super::tables::{DbError, KV, LOG, MetaRevisions, read_meta};
use crate::codec::{decode_kv, decode_log};
use crate::{Event, KeyValue, ListOptions, ListPage, Revision, StoreError};

/// The snapshot's revisions with the current revision capped at `durable`: batches the writer
/// committed but the syncer has not made durable yet are invisible to readers.
pub fn durable_meta(txn: &ReadTransaction, durable: Revision) -> Result<MetaRevisions, DbError> {
    let snapshot = read_meta(txn)?;
    Ok(MetaRevisions {
        current: durable.min(snapshot.current),
        compact: snapshot.compact,
    })
}

/// Checks that `requested` is readable given the snapshot's revisions.
pub fn check_revision(requested: Revision, meta: MetaRevisions) -> Result<(), StoreError> {
    if requested < meta.compact {
        return Err(StoreError::Compacted {
            requested,
            compact_revision: meta.compact,
        });
    }
    if requested > meta.current {
        return Err(StoreError::FutureRevision {
            requested,
            current: meta.current,
        });
    }
    Ok(())
}

/// For every key under `prefix` (and after `start_after`) changed after `revision`, its state at
/// `revision` (`None`: absent then).
fn overlay(
    txn: &ReadTransaction,
    prefix: &str,
    start_after: Option<&str>,
    revision: Revision,
) -> Result<BTreeMap<String, Option<KeyValue>>, DbError> {
    let log = txn.open_table(LOG)?;
    let mut states = BTreeMap::new();
    for entry in log.range(revision + 1..)? {
        let (rev, raw) = entry?;
        for event in decode_log(rev.value(), raw.value())? {
            let key = &event.kv.key;
            if !key.starts_with(prefix) || start_after.is_some_and(|s| key.as_str() <= s) {
                continue;
            }
            if !states.contains_key(key) {
                states.insert(event.kv.key.clone(), event.prev);
            }
        }
    }
    Ok(states)
}

/// Reads one key at the durable revision or at `revision`.
pub fn get(
    txn: &ReadTransaction,
    durable: Revision,
    key: &str,
    revision: Option<Revision>,
) -> Result<Option<KeyValue>, DbError> {
    let snapshot = read_meta(txn)?;
    let meta = durable_meta(txn, durable)?;
    let r = revision.unwrap_or(meta.current);
    check_revision(r, meta)?;
    let kv = txn.open_table(KV)?;
    let current = kv.get(key)?.map(|g| decode_kv(key, g.value())).transpose()?;
    if r == snapshot.current {
        return Ok(current);
    }
    let log = txn.open_table(LOG)?;
    for entry in log.range(r + 1..)? {
        let (rev, raw) = entry?;
        if let Some(event) = decode_log(rev.value(), raw.value())?
            .into_iter()
            .find(|e| e.kv.key == key)
        {
            return Ok(event.prev);
        }
    }
    Ok(current)
}

/// Lists keys under `prefix` consistently at one revision; see [`crate::Store::list`].
pub fn list(
    txn: &ReadTransaction,
    durable: Revision,
    prefix: &str,
    options: &ListOptions,
) -> Result<ListPage, DbError> {
    let snapshot = read_meta(txn)?;
    let meta = durable_meta(txn, durable)?;
    let revision = options.revision.unwrap_or(meta.current);
    check_revision(revision, meta)?;
    let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let start_after = options.start_after.as_deref();
    let mut changed = if revision < snapshot.current {
        overlay(txn, prefix, start_after, revision)?
    } else {
        BTreeMap::new()
    }
    .into_iter()
    .peekable();

    let kv = txn.open_table(KV)?;
    let lower = match start_after {
        Some(s) if s >= prefix => Bound::Excluded(s),
        _ => Bound::Included(prefix),
    };
    let mut range = kv.range::<&str>((lower, Bound::Unbounded))?;
    // The next live key under the prefix, decoded; `None` once the prefix is exhausted.
    let mut next_live = || -> Result<Option<KeyValue>, DbError> {
        match range.next() {
            None => Ok(None),
            Some(entry) => {
                let (k, v) = entry?;
                let key = k.value();
                if !key.starts_with(prefix) {
                    return Ok(None);
                }
                Ok(Some(decode_kv(key, v.value())?))
            }
        }
    };
    let mut live = next_live()?;
    let mut items = Vec::new();
    let mut more = false;
    loop {
        // The next key in order from either source; for a key in both, the overlay (its state
        // at `revision`) wins over the live value.
        let item = match (&live, changed.peek()) {
            (None, None) => break,
            (Some(l), Some((c, _))) if l.key == *c => {
                live = next_live()?;
                changed.next().and_then(|(_, state)| state)
            }
            (Some(l), Some((c, _))) if *c < l.key => changed.next().and_then(|(_, state)| state),
            (Some(_), _) => std::mem::replace(&mut live, next_live()?),
            (None, Some(_)) => changed.next().and_then(|(_, state)| state),
        };
        if let Some(item) = item {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(item);
        }
    }
    Ok(ListPage {
        items,
        revision,
        more,
    })
}

/// Reads the events of revisions in `(after, until]` under `prefix`, at most `max_revisions`
/// revisions; returns them and the revision through which they are complete.
pub fn history(
    txn: &ReadTransaction,
    prefix: &str,
    after: Revision,
    until: Revision,
    max_revisions: usize,
) -> Result<(Vec<Event>, Revision), DbError> {
    let meta = read_meta(txn)?;
    if after < meta.compact {
        return Err(StoreError::Compacted {
            requested: after,
            compact_revision: meta.compact,
        }
        .into());
    }
    let until = until.min(meta.current);
    let log = txn.open_table(LOG)?;
    let mut events = Vec::new();
    let mut through = until;
    for (n, entry) in log.range(after + 1..=until)?.enumerate() {
        let (rev, raw) = entry?;
        if n == max_revisions {
            through = rev.value() - 1;
            break;
        }
        events.extend(
            decode_log(rev.value(), raw.value())?
                .into_iter()
                .filter(|e| e.kv.key.starts_with(prefix)),
        );
    }
    Ok((events, through.max(after)))
}
