//! Request validation shared by every backend, so both reject bad input identically and before
//! anything is written.

use std::collections::HashSet;

use crate::{Op, StoreError, Txn};

/// The largest transaction (sum of key and value bytes) a store accepts: etcd's default
/// `--max-request-bytes` of 1.5 MiB, less headroom for the request's own framing.
pub const MAX_TXN_BYTES: usize = 1536 * 1024 - 4096;

/// Validates a key: non-empty, at most 64 KiB, no NUL byte.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidRequest("empty key".into()));
    }
    if key.len() > 64 * 1024 {
        return Err(StoreError::InvalidRequest(format!(
            "key of {} bytes is too long",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(StoreError::InvalidRequest("key contains a NUL byte".into()));
    }
    Ok(())
}

/// Validates a transaction against the store's rules and `limit`; returns its size in bytes.
pub fn validate_txn(txn: &Txn, limit: usize) -> Result<usize, StoreError> {
    let mut keys = HashSet::with_capacity(txn.ops.len());
    let mut size = 0usize;
    for compare in &txn.compares {
        validate_key(&compare.key)?;
        size += compare.key.len();
    }
    for op in &txn.ops {
        let key = match op {
            Op::Put { key, value } => {
                size += value.len();
                key
            }
            Op::Delete { key } => key,
        };
        validate_key(key)?;
        size += key.len();
        if !keys.insert(key.as_str()) {
            return Err(StoreError::InvalidRequest(format!(
                "more than one op on key {key:?}"
            )));
        }
    }
    if size > limit {
        return Err(StoreError::ValueTooLarge { size, limit });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compare;

    fn put(key: &str, len: usize) -> Op {
        Op::Put {
            key: key.into(),
            value: vec![0u8; len].into(),
        }
    }

    #[test]
    fn rejects_bad_transactions() {
        let dup = Txn {
            compares: vec![],
            ops: vec![put("/a", 1), Op::Delete { key: "/a".into() }],
        };
        assert!(matches!(
            validate_txn(&dup, MAX_TXN_BYTES),
            Err(StoreError::InvalidRequest(_))
        ));
        let empty = Txn {
            compares: vec![Compare {
                key: String::new(),
                mod_revision: 0,
            }],
            ops: vec![],
        };
        assert!(matches!(
            validate_txn(&empty, MAX_TXN_BYTES),
            Err(StoreError::InvalidRequest(_))
        ));
        let big = Txn {
            compares: vec![],
            ops: vec![put("/a", MAX_TXN_BYTES)],
        };
        assert!(matches!(
            validate_txn(&big, MAX_TXN_BYTES),
            Err(StoreError::ValueTooLarge { .. })
        ));
        let ok = Txn {
            compares: vec![],
            ops: vec![put("/a", 1 << 20), put("/b", 3)],
        };
        assert_eq!(validate_txn(&ok, MAX_TXN_BYTES).unwrap(), (1 << 20) + 3 + 4);
    }
}
