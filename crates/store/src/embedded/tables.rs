//! The embedded backend's on-disk schema: tables, meta keys, the format version, and the
//! error type of database access.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::codec::CorruptRecord;
use crate::{Revision, StoreError};

/// Live keys: key → `codec::encode_kv` (create revision, mod revision, version, value).
pub const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
/// Retained history: revision → `codec::encode_log` (the revision's events with previous values).
pub const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
/// Store metadata, see the `META_*` keys.
pub const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// Meta key: on-disk format version of this file.
pub const META_FORMAT: &str = "format_version";
/// Meta key: the latest committed revision.
pub const META_CURRENT: &str = "current_revision";
/// Meta key: the compaction revision (history at or after it is retained).
pub const META_COMPACT: &str = "compact_revision";

/// The format version this build writes and understands.
pub const FORMAT_VERSION: u64 = 1;

/// A failure while accessing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// redb reported an error (I/O, corruption, …).
    #[error(transparent)]
    Redb(#[from] redb::Error),
    /// A record did not decode.
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    /// A store-level error detected while reading (e.g. a compacted revision).
    #[error(transparent)]
    Store(#[from] StoreError),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Redb(e.into())
            }
        }
    )*};
}
redb_from!(
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError
);

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(s) => s,
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// The revisions recorded in `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaRevisions {
    /// Latest committed revision.
    pub current: Revision,
    /// Compaction revision.
    pub compact: Revision,
}

/// Reads the revisions from a read snapshot.
pub fn read_meta(txn: &redb::ReadTransaction) -> Result<MetaRevisions, DbError> {
    let meta = txn.open_table(META)?;
    let get = |k: &str| -> Result<u64, DbError> { Ok(meta.get(k)?.map(|g| g.value()).unwrap_or(0)) };
    Ok(MetaRevisions {
        current: get(META_CURRENT)?,
        compact: get(META_COMPACT)?,
    })
}

/// Creates the schema in a new file or validates an existing one, returning its revisions.
///
/// Fails with a clear [`StoreError::Backend`] when the file is of a newer format version or is a
/// redb database that is not an ironnet store.
pub fn initialize(db: &redb::Database, path: &std::path::Path) -> Result<MetaRevisions, StoreError> {
    let fail = |e: DbError| StoreError::Backend(format!("cannot open store {}: {e}", path.display()));
    let wtxn = db.begin_write().map_err(|e| fail(e.into()))?;
    let existing: Vec<String> = wtxn
        .list_tables()
        .map_err(|e| fail(e.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    let revisions = {
        let mut meta = wtxn.open_table(META).map_err(|e| fail(e.into()))?;
        let format = meta
            .get(META_FORMAT)
            .map_err(|e| fail(e.into()))?
            .map(|g| g.value());
        match format {
            None => {
                if let Some(foreign) = existing.iter().find(|n| *n != META.name()) {
                    return Err(StoreError::Backend(format!(
                        "cannot open store {}: not an ironnet store (contains table {foreign:?} but no format version)",
                        path.display()
                    )));
                }
                meta.insert(META_FORMAT, FORMAT_VERSION)
                    .map_err(|e| fail(e.into()))?;
                meta.insert(META_CURRENT, 0).map_err(|e| fail(e.into()))?;
                meta.insert(META_COMPACT, 0).map_err(|e| fail(e.into()))?;
            }
            Some(v) if v > FORMAT_VERSION => {
                return Err(StoreError::Backend(format!(
                    "cannot open store {}: format version {v} is newer than the supported version {FORMAT_VERSION}; \
                     upgrade ironnet",
                    path.display()
                )));
            }
            Some(v) if v < FORMAT_VERSION => {
                return Err(StoreError::Backend(format!(
                    "cannot open store {}: unknown old format version {v}",
                    path.display()
                )));
            }
            Some(_) => {}
        }
        let get = |k: &str| -> Result<u64, StoreError> {
            Ok(meta
                .get(k)
                .map_err(|e| fail(e.into()))?
                .map(|g| g.value())
                .unwrap_or(0))
        };
        MetaRevisions {
            current: get(META_CURRENT)?,
            compact: get(META_COMPACT)?,
        }
    };
    wtxn.open_table(KV).map_err(|e| fail(e.into()))?;
    wtxn.open_table(LOG).map_err(|e| fail(e.into()))?;
    wtxn.commit().map_err(|e| fail(e.into()))?;
    // A quick consistency check: the newest log entry must be the current revision.
    let rtxn = db.begin_read().map_err(|e| fail(e.into()))?;
    let log = rtxn.open_table(LOG).map_err(|e| fail(e.into()))?;
    let last = log.last().map_err(|e| fail(e.into()))?.map(|(k, _)| k.value());
    if let Some(last) = last
        && last != revisions.current
    {
        return Err(StoreError::Backend(format!(
            "cannot open store {}: corrupt (newest history revision {last} but current revision {})",
            path.display(),
            revisions.current
        )));
    }
    Ok(revisions)
}
