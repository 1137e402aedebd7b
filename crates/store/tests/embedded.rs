//! Embedded-backend-specific behaviour: persistence, file validation, disk-backed watch
//! history, automatic compaction, and a SIGKILL crash test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore, RetentionPolicy};
use ironnet_store::{Compare, ListOptions, Op, Revision, Store, StoreError, StoreExt, Txn, TxnOutcome};

/// Default options with a small write-ahead log, so tests do not zero-fill 64 MiB each.
fn small() -> EmbeddedOptions {
    EmbeddedOptions {
        wal_bytes: 4 << 20,
        ..EmbeddedOptions::default()
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let s = EmbeddedStore::open(&path, small()).unwrap();
        s.put("/a", b("1")).await.unwrap();
        s.put("/a", b("2")).await.unwrap();
        s.put("/b", b("3")).await.unwrap();
        s.compact(1).await.unwrap();
    }
    let s = EmbeddedStore::open(&path, small()).unwrap();
    assert_eq!(s.current_revision().await.unwrap(), 3);
    assert_eq!(s.compact_revision().await.unwrap(), 1);
    assert_eq!(s.get("/a", Some(1)).await.unwrap().unwrap().value, b("1"));
    let kv = s.put("/c", b("4")).await.unwrap();
    assert_eq!(kv.mod_revision, 4, "revisions continue after reopen");
    // History survives too: a watch from the compaction revision replays it from disk.
    let mut w = s.watch("/", 1).await.unwrap();
    let mut revs: Vec<Revision> = Vec::new();
    while revs.len() < 3 {
        let resp = w.next().await.unwrap().unwrap();
        revs.extend(resp.events.iter().map(|e| e.kv.mod_revision));
    }
    assert_eq!(revs, [2, 3, 4]);
}

#[test]
fn second_open_of_the_same_file_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let _first = EmbeddedStore::open(&path, small()).unwrap();
    let err = EmbeddedStore::open(&path, small()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("s.redb")),
        "{err}"
    );
}

#[test]
fn corrupt_file_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5au8; 64 * 1024]).unwrap();
    let err = EmbeddedStore::open(&path, small()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("garbage.redb")),
        "{err}"
    );
}

#[test]
fn newer_format_version_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.redb");
    drop(EmbeddedStore::open(&path, small()).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut meta = w
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format_version", ironnet_store::embedded::FORMAT_VERSION + 1)
                .unwrap();
        }
        w.commit().unwrap();
    }
    let err = EmbeddedStore::open(&path, small()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("newer")),
        "{err}"
    );
}

#[test]
fn foreign_redb_file_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(redb::TableDefinition::<u64, u64>::new("something"))
            .unwrap();
        w.commit().unwrap();
    }
    let err = EmbeddedStore::open(&path, small()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("not an ironnet store")),
        "{err}"
    );
}

#[test]
fn invalid_options_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        watch_window_revisions: 0,
        ..small()
    };
    assert!(matches!(
        EmbeddedStore::open(dir.path().join("x"), options),
        Err(StoreError::InvalidRequest(_))
    ));
}

/// A watcher that falls out of a tiny in-memory window keeps going from the on-disk log,
/// without a gap, while the writer is never blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_reads_history_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        watch_window_revisions: 8,
        ..small()
    };
    let s = Arc::new(EmbeddedStore::open(dir.path().join("s.redb"), options).unwrap());
    let mut w = s.watch("/k/", 0).await.unwrap();
    for i in 0..3000 {
        s.put(&format!("/k/{}", i % 10), b(&i.to_string())).await.unwrap();
    }
    let mut next = 1;
    while next <= 3000 {
        let resp = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for e in resp.events {
            assert_eq!(e.kv.mod_revision, next);
            next += 1;
        }
    }
}

/// Once history a slow watcher needs is compacted away, its stream ends with `Compacted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_past_retention_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        watch_window_revisions: 4,
        ..small()
    };
    let s = EmbeddedStore::open(dir.path().join("s.redb"), options).unwrap();
    let mut w = s.watch("/k/", 0).await.unwrap();
    for i in 0..50 {
        s.put("/k/a", b(&i.to_string())).await.unwrap();
    }
    s.compact(40).await.unwrap();
    let mut last = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
    {
        last = Some(item);
        if matches!(last, Some(Err(_))) {
            break;
        }
    }
    assert!(
        matches!(
            last,
            Some(Err(StoreError::Compacted {
                compact_revision: 40,
                ..
            }))
        ),
        "{last:?}"
    );
    assert!(w.next().await.is_none(), "the error is the last item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_keeps_the_configured_history() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        retention: RetentionPolicy {
            max_revisions: Some(100),
            max_age: None,
            check_interval: Duration::from_millis(50),
        },
        ..small()
    };
    let s = EmbeddedStore::open(dir.path().join("s.redb"), options).unwrap();
    for i in 0..300 {
        s.put("/k", b(&i.to_string())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.compact_revision().await.unwrap(), 200);
    assert!(matches!(
        s.get("/k", Some(150)).await,
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(s.get("/k", Some(250)).await.unwrap().unwrap().value, b("249"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_ends_watches() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path().join("s.redb"), small()).unwrap();
    let mut w = s.watch("/", 0).await.unwrap();
    drop(s);
    let end = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert!(end.is_none());
    // The file is closed: it can be reopened.
    EmbeddedStore::open(dir.path().join("s.redb"), small()).unwrap();
}

const CRASH_ENV: &str = "IRONNET_STORE_CRASH_CHILD";
const WRITERS: usize = 16;
const KEYS_PER_TXN: usize = 3;

/// The child side of [`acknowledged_writes_survive_sigkill`]: writes forever with 16
/// concurrent conditional transactions and prints `ACK <writer> <seq> <revision>` after each
/// acknowledged one. Does nothing when run as a normal test.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = Arc::new(EmbeddedStore::open(path, small()).unwrap());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let first = format!("/crash/{w}/0");
                let (mut seq, mut mod_rev) = match s.get(&first, None).await.unwrap() {
                    Some(kv) => (
                        std::str::from_utf8(&kv.value).unwrap().parse::<u64>().unwrap(),
                        kv.mod_revision,
                    ),
                    None => (0, 0),
                };
                loop {
                    seq += 1;
                    let ops = (0..KEYS_PER_TXN)
                        .map(|k| Op::Put {
                            key: format!("/crash/{w}/{k}"),
                            value: b(&seq.to_string()),
                        })
                        .collect();
                    let txn = Txn {
                        compares: vec![Compare {
                            key: first.clone(),
                            mod_revision: mod_rev,
                        }],
                        ops,
                    };
                    match s.txn(txn).await.unwrap() {
                        TxnOutcome::Succeeded { revision, .. } => {
                            mod_rev = revision;
                            println!("ACK {w} {seq} {revision}");
                        }
                        TxnOutcome::Failed { .. } => panic!("writer {w} lost its own key"),
                    }
                }
            }));
        }
        // The writers run until the parent kills this process.
        futures::future::join_all(tasks).await;
    });
}

/// SIGKILLs a writing child process 20 times at random moments. After every restart each
/// acknowledged write is present, each transaction is all-or-nothing and the revisions in
/// the log are gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    use rand::Rng;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut total_acks = 0;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parts: Vec<&str> = line.split_whitespace().collect();
                if let ["ACK", w, seq, rev] = parts.as_slice() {
                    acks.push((
                        w.parse::<usize>().unwrap(),
                        seq.parse::<u64>().unwrap(),
                        rev.parse::<u64>().unwrap(),
                    ));
                }
            }
            acks
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..900))).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        total_acks += acks.len();

        let s = EmbeddedStore::open(&path, small()).unwrap();
        let current = s.current_revision().await.unwrap();
        // Atomicity: every writer's keys hold the same sequence number.
        let mut stored = BTreeMap::new();
        for w in 0..WRITERS {
            let page = s
                .list(&format!("/crash/{w}/"), ListOptions::default())
                .await
                .unwrap();
            if page.items.is_empty() {
                continue;
            }
            assert_eq!(
                page.items.len(),
                KEYS_PER_TXN,
                "round {round}: writer {w} half-written"
            );
            let seqs: Vec<&Bytes> = page.items.iter().map(|kv| &kv.value).collect();
            assert!(
                seqs.windows(2).all(|p| p[0] == p[1]),
                "round {round}: writer {w} torn txn"
            );
            let seq: u64 = std::str::from_utf8(seqs[0]).unwrap().parse().unwrap();
            stored.insert(w, (seq, page.items[0].mod_revision));
        }
        // Durability: every acknowledged write is there, at its revision.
        for &(w, seq, rev) in &acks {
            let (stored_seq, _) = stored[&w];
            assert!(
                stored_seq >= seq,
                "round {round}: writer {w} acked {seq} but has {stored_seq}"
            );
            assert!(
                rev <= current,
                "round {round}: acked revision {rev} beyond current {current}"
            );
        }
        for &(w, seq, rev) in acks.iter().rev().take(64) {
            let kv = s.get(&format!("/crash/{w}/1"), Some(rev)).await.unwrap().unwrap();
            assert_eq!(
                kv.value,
                b(&seq.to_string()),
                "round {round}: value at acked revision {rev}"
            );
            assert_eq!(kv.mod_revision, rev);
        }
        // Gap-free: the log holds every revision 1..=current, each one transaction.
        let mut w = s.watch("/", 0).await.unwrap();
        let mut next = 1;
        while next <= current {
            let resp = tokio::time::timeout(Duration::from_secs(10), w.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            for chunk in resp.events.chunks(KEYS_PER_TXN) {
                assert!(
                    chunk.iter().all(|e| e.kv.mod_revision == next),
                    "round {round}: gap or torn revision at {next}"
                );
                next += 1;
            }
        }
    }
    assert!(
        total_acks > 100,
        "the child acknowledged only {total_acks} writes"
    );
}

/// The store holds every object in plain text: its files are the owner's alone, whatever the
/// umask, including files left readable by an older version; so is a data directory.
#[test]
fn store_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let root = tempfile::tempdir().unwrap();
    let mode =
        |p: &std::path::Path| format!("{:o}", std::fs::metadata(p).unwrap().permissions().mode() & 0o777);
    // A new data directory (with its missing parent) and an existing world-readable one.
    let dir = root.path().join("new").join("data");
    ironnet_store::create_private_dir(&dir).unwrap();
    let existing = root.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    ironnet_store::create_private_dir(&existing).unwrap();
    assert_eq!(
        [mode(&root.path().join("new")), mode(&dir), mode(&existing)],
        ["700", "700", "700"]
    );
    {
        let _s = EmbeddedStore::open(dir.join("fresh.redb"), small()).unwrap();
    }
    // An existing world-readable store is tightened when opened.
    let old_store = dir.join("old.redb");
    {
        let _s = EmbeddedStore::open(&old_store, small()).unwrap();
    }
    for f in ["old.redb", "old.redb.wal"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    {
        let _s = EmbeddedStore::open(&old_store, small()).unwrap();
    }
    nix::sys::stat::umask(old);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), mode(&e.path()))
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("fresh.redb".to_owned(), "600".to_owned()),
            ("fresh.redb.wal".to_owned(), "600".to_owned()),
            ("old.redb".to_owned(), "600".to_owned()),
            ("old.redb.wal".to_owned(), "600".to_owned()),
        ]
    );
}
