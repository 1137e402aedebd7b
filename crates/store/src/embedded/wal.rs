//! The write-ahead log that makes group commits durable with one sequential `fdatasync`.
//!
//! redb's own durable commit rewrites and fsyncs every copy-on-write page a batch touched,
//! which on a virtio disk costs several milliseconds per batch. Instead, each batch's events
//! are appended to this log and `fdatasync`ed first; only then is the redb transaction committed
//! with `Durability::None`, so readers only ever see durable data. A periodic *checkpoint* (a redb
//! `Durability::Immediate` commit) makes the database itself durable, after which the log
//! starts again at offset 0. On open, records newer than the database are replayed.
//!
//! The file is pre-filled with zeros so that overwriting it never changes file metadata and
//! `fdatasync` is a single device flush. Record layout (little endian):
//! `magic u32 | payload_len u32 | crc32(payload) u32 | payload`, where the payload is
//! `first_revision u64 | count u32 | count × (len u32 | codec log record)`. Replay stops at the
//! first record that is zero, torn (bad checksum) or not strictly newer than the one before,
//! which is how stale records from before the last checkpoint are recognised.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Revision;

const MAGIC: u32 = 0x4952_4e57; // "IRNW"
const HEADER: usize = 12;

/// A write-ahead log failure.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Reading, writing or syncing the log file failed.
    #[error("write-ahead log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// One revision's encoded events, as stored in the `log` table.
pub type RevisionRecord = (Revision, Vec<u8>);

/// The open log file and the write position since the last checkpoint.
#[derive(Debug)]
pub struct Wal {
    file: File,
    path: PathBuf,
    size: u64,
    offset: u64,
}

impl Wal {
    /// Opens or creates the log at `path`, zero-filled to `size` bytes.
    pub fn open(path: &Path, size: u64) -> Result<Self, WalError> {
        let io_err = |source| WalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = crate::private::open_private_file(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len < size {
            let zeros = vec![0u8; 1 << 20];
            let mut at = len;
            while at < size {
                let n = (size - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at).map_err(io_err)?;
                at += n as u64;
            }
            file.sync_all().map_err(io_err)?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            size: size.max(len),
            offset: 0,
        })
    }

    fn io(&self, source: io::Error) -> WalError {
        WalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads every valid record in order (see the module documentation for when it stops).
    pub fn read_all(&self) -> Result<Vec<RevisionRecord>, WalError> {
        let mut out: Vec<RevisionRecord> = Vec::new();
        let mut offset = 0u64;
        let mut header = [0u8; HEADER];
        while offset + HEADER as u64 <= self.size {
            self.file
                .read_exact_at(&mut header, offset)
                .map_err(|e| self.io(e))?;
            let word =
                |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
            let (magic, len, crc) = (word(0), word(4) as u64, word(8));
            if magic != MAGIC || offset + HEADER as u64 + len > self.size {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            self.file
                .read_exact_at(&mut payload, offset + HEADER as u64)
                .map_err(|e| self.io(e))?;
            if crc32(&payload) != crc {
                break;
            }
            let Some(records) = decode_payload(&payload) else {
                break;
            };
            let newer = match (out.last(), records.first()) {
                (Some((last, _)), Some((first, _))) => first == &(last + 1),
                _ => true,
            };
            if !newer {
                break;
            }
            out.extend(records);
            offset += HEADER as u64 + len;
        }
        Ok(out)
    }

    /// Whether a batch of `records` fits before the end of the file.
    pub fn fits(&self, records: &[RevisionRecord]) -> bool {
        self.offset + encoded_len(records) as u64 <= self.size
    }

    /// Appends the revisions of one batch and makes them durable (`fdatasync`).
    pub fn append(&mut self, records: &[RevisionRecord]) -> Result<(), WalError> {
        let mut payload = Vec::with_capacity(encoded_len(records));
        payload.extend_from_slice(&records.first().map_or(0, |r| r.0).to_le_bytes());
        payload.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for (_, raw) in records {
            payload.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            payload.extend_from_slice(raw);
        }
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        if self.offset + record.len() as u64 > self.size {
            // Grow (rare: only a single batch larger than the log). Growing changes metadata,
            // so this sync is a full one.
            self.size = self.offset + record.len() as u64;
            self.file
                .write_all_at(&record, self.offset)
                .map_err(|e| self.io(e))?;
            self.file.sync_all().map_err(|e| self.io(e))?;
        } else {
            self.file
                .write_all_at(&record, self.offset)
                .map_err(|e| self.io(e))?;
            self.file.sync_data().map_err(|e| self.io(e))?;
        }
        self.offset += record.len() as u64;
        Ok(())
    }

    /// Bytes written since the last checkpoint.
    pub fn used(&self) -> u64 {
        self.offset
    }

    /// Called after a checkpoint made the database durable: the log starts over. The first
    /// record is invalidated on disk so that a crash before the next append cannot replay
    /// records older than the checkpoint (they would be skipped anyway, being not newer than
    /// the database, but this keeps replay cheap).
    pub fn reset(&mut self) -> Result<(), WalError> {
        self.file
            .write_all_at(&[0u8; HEADER], 0)
            .map_err(|e| self.io(e))?;
        self.offset = 0;
        Ok(())
    }
}

fn encoded_len(records: &[RevisionRecord]) -> usize {
    HEADER + 12 + records.iter().map(|(_, raw)| 4 + raw.len()).sum::<usize>()
}

fn decode_payload(payload: &[u8]) -> Option<Vec<RevisionRecord>> {
    let first = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let count = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?) as usize;
    let mut rest = &payload[12..];
    let mut out = Vec::with_capacity(count.min(payload.len() / 4));
    for i in 0..count {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let raw = rest.get(4..4 + len)?.to_vec();
        rest = &rest[4 + len..];
        out.push((first + i as u64, raw));
    }
    rest.is_empty().then_some(out)
}

/// CRC-32 (IEEE 802.3), bitwise-table-free but byte-at-a-time via a small table built once.
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn records_round_trip_and_stale_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let mut wal = Wal::open(&path, 4096).unwrap();
        wal.append(&[(5, b"five".to_vec()), (6, b"six".to_vec())])
            .unwrap();
        wal.append(&[(7, b"seven".to_vec())]).unwrap();
        assert_eq!(
            wal.read_all().unwrap().iter().map(|r| r.0).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        // After a checkpoint, new records overwrite the start; the stale ones after them stop replay.
        wal.reset().unwrap();
        assert!(wal.read_all().unwrap().is_empty());
        wal.append(&[(8, b"eight-eight-eight-eight".to_vec())]).unwrap();
        let again = Wal::open(&path, 4096).unwrap();
        assert_eq!(
            again.read_all().unwrap(),
            vec![(8, b"eight-eight-eight-eight".to_vec())]
        );
    }

    #[test]
    fn torn_record_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let mut wal = Wal::open(&path, 4096).unwrap();
        wal.append(&[(1, b"one".to_vec())]).unwrap();
        wal.append(&[(2, b"two".to_vec())]).unwrap();
        let second = (HEADER + 12 + 4 + 3) as u64;
        wal.file.write_all_at(b"X", second + HEADER as u64 + 14).unwrap();
        assert_eq!(wal.read_all().unwrap(), vec![(1, b"one".to_vec())]);
    }
}
