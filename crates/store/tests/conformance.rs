//! The backend conformance suite: every case runs unchanged against the embedded store and
//! against a real etcd (Debian's `/usr/bin/etcd`, started per test by
//! `ironnet_store::testing::EtcdProcess`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use ironnet_store::{
    Compare, Conditional, EventKind, KeyValue, ListOptions, Op, Revision, Store, StoreError, StoreExt, Txn,
    TxnOutcome, WatchResponse, WatchStream,
};

/// A store under test plus whatever keeps it alive.
struct Harness {
    store: Arc<dyn Store>,
    _guard: Box<dyn Send + Sync>,
}

fn embedded() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = ironnet_store::embedded::EmbeddedStore::open(
        dir.path().join("store.redb"),
        ironnet_store::embedded::EmbeddedOptions {
            wal_bytes: 8 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    Harness {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

async fn etcd() -> Harness {
    let etcd = ironnet_store::testing::EtcdProcess::start().unwrap();
    let store = ironnet_store::etcd::EtcdStore::connect(
        vec![etcd.endpoint().to_owned()],
        ironnet_store::etcd::EtcdOptions {
            key_prefix: "/conformance".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Harness {
        store: Arc::new(store),
        _guard: Box::new(etcd),
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::embedded();
                    tokio::time::timeout(std::time::Duration::from_secs(120), super::$case(h.store.clone()))
                        .await
                        .expect("case timed out");
                }
            )*
        }
        mod etcd_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::etcd().await;
                    tokio::time::timeout(std::time::Duration::from_secs(120), super::$case(h.store.clone()))
                        .await
                        .expect("case timed out");
                }
            )*
        }
    };
}

conformance!(
    ordering_and_metadata,
    conflicts_and_atomicity,
    concurrent_updates_have_one_winner,
    watch_resume_has_no_gap_or_duplicate,
    compaction_makes_old_revisions_too_old,
    paginated_list_is_pinned_to_one_revision,
    large_values,
    hundred_thousand_keys,
    watch_events_carry_prev_values,
    deletes,
    idle_watch_gets_progress,
    future_revisions_are_rejected,
    reads_at_older_revisions,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn applied(c: Conditional) -> KeyValue {
    match c {
        Conditional::Applied(kv) => kv,
        Conditional::Conflict(cur) => panic!("unexpected conflict, current {cur:?}"),
    }
}

/// Reads watch responses until one reaches `until`; returns all events.
async fn collect_until(stream: &mut WatchStream, until: Revision) -> Vec<ironnet_store::Event> {
    let mut events = Vec::new();
    loop {
        let resp: WatchResponse = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .expect("watch failed");
        let mut last = 0;
        for e in &resp.events {
            assert!(e.kv.mod_revision >= last, "events out of order");
            last = e.kv.mod_revision;
            assert!(
                e.kv.mod_revision <= resp.revision,
                "event beyond response revision"
            );
        }
        events.extend(resp.events);
        if resp.revision >= until {
            return events;
        }
    }
}

async fn ordering_and_metadata(s: Arc<dyn Store>) {
    let base = s.current_revision().await.unwrap();
    let mut revs = Vec::new();
    for i in 0..20 {
        let kv = s
            .put(&format!("/o/k{}", i % 5), b(&format!("v{i}")))
            .await
            .unwrap();
        revs.push(kv.mod_revision);
    }
    let expected: Vec<Revision> = (base + 1..=base + 20).collect();
    assert_eq!(revs, expected, "each write gets the next revision");
    assert_eq!(s.current_revision().await.unwrap(), base + 20);
    let k0 = s.get("/o/k0", None).await.unwrap().unwrap();
    assert_eq!(k0.value, b("v15"));
    assert_eq!(k0.create_revision, base + 1);
    assert_eq!(k0.mod_revision, base + 16);
    assert_eq!(k0.version, 4);
    let page = s.list("/o/", ListOptions::default()).await.unwrap();
    let keys: Vec<&str> = page.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/o/k0", "/o/k1", "/o/k2", "/o/k3", "/o/k4"]);
    assert_eq!(page.revision, base + 20);
    assert!(!page.more);
    // A prefix matches by bytes, not by path segment.
    s.put("/o2", b("x")).await.unwrap();
    assert_eq!(
        s.list("/o/", ListOptions::default()).await.unwrap().items.len(),
        5
    );
    assert_eq!(s.list("/o", ListOptions::default()).await.unwrap().items.len(), 6);
}

async fn conflicts_and_atomicity(s: Arc<dyn Store>) {
    let a = applied(s.create("/c/a", b("1")).await.unwrap());
    match s.create("/c/a", b("2")).await.unwrap() {
        Conditional::Conflict(Some(cur)) => assert_eq!(cur, a),
        other => panic!("create over existing key: {other:?}"),
    }
    let a2 = applied(s.update("/c/a", b("2"), a.mod_revision).await.unwrap());
    assert_eq!(a2.version, 2);
    match s.update("/c/a", b("3"), a.mod_revision).await.unwrap() {
        Conditional::Conflict(Some(cur)) => assert_eq!(cur, a2),
        other => panic!("stale update: {other:?}"),
    }
    assert_eq!(
        s.update("/c/absent", b("x"), 5).await.unwrap(),
        Conditional::Conflict(None)
    );
    assert_eq!(
        s.delete("/c/absent", 5).await.unwrap(),
        Conditional::Conflict(None)
    );
    assert!(matches!(
        s.delete("/c/a", 0).await,
        Err(StoreError::InvalidRequest(_))
    ));
    // A multi-key transaction is all-or-nothing.
    let rev = s.current_revision().await.unwrap();
    let txn = Txn {
        compares: vec![
            Compare {
                key: "/c/a".into(),
                mod_revision: a2.mod_revision,
            },
            Compare {
                key: "/c/b".into(),
                mod_revision: 7,
            },
        ],
        ops: vec![
            Op::Put {
                key: "/c/a".into(),
                value: b("no"),
            },
            Op::Put {
                key: "/c/b".into(),
                value: b("no"),
            },
        ],
    };
    match s.txn(txn).await.unwrap() {
        TxnOutcome::Failed { current } => assert_eq!(current, vec![Some(a2.clone()), None]),
        other => panic!("txn should fail: {other:?}"),
    }
    assert_eq!(
        s.current_revision().await.unwrap(),
        rev,
        "a failed txn writes nothing"
    );
    let txn = Txn {
        compares: vec![
            Compare {
                key: "/c/a".into(),
                mod_revision: a2.mod_revision,
            },
            Compare {
                key: "/c/b".into(),
                mod_revision: 0,
            },
        ],
        ops: vec![
            Op::Put {
                key: "/c/b".into(),
                value: b("b"),
            },
            Op::Delete { key: "/c/a".into() },
        ],
    };
    match s.txn(txn).await.unwrap() {
        TxnOutcome::Succeeded { revision, results } => {
            assert_eq!(revision, rev + 1, "one revision per transaction");
            assert_eq!(results[0].as_ref().unwrap().mod_revision, rev + 1);
            assert_eq!(results[1], Some(a2));
        }
        other => panic!("txn should succeed: {other:?}"),
    }
    // Malformed transactions are rejected before anything is written.
    let dup = Txn {
        compares: vec![],
        ops: vec![
            Op::Delete { key: "/c/b".into() },
            Op::Delete { key: "/c/b".into() },
        ],
    };
    assert!(matches!(s.txn(dup).await, Err(StoreError::InvalidRequest(_))));
    assert!(matches!(
        s.put("", b("x")).await,
        Err(StoreError::InvalidRequest(_))
    ));
    assert_eq!(s.current_revision().await.unwrap(), rev + 1);
}

async fn concurrent_updates_have_one_winner(s: Arc<dyn Store>) {
    let mut cur = applied(s.create("/race/k", b("0")).await.unwrap());
    for round in 0..10 {
        let mut tasks = Vec::new();
        for w in 0..16 {
            let s = s.clone();
            let expected = cur.mod_revision;
            tasks.push(tokio::spawn(async move {
                s.update("/race/k", b(&format!("r{round}w{w}")), expected)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Conditional::Applied(kv) = t.await.unwrap() {
                winners.push(kv);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        cur = winners.pop().unwrap();
        assert_eq!(s.get("/race/k", None).await.unwrap().unwrap(), cur);
    }
    assert_eq!(cur.version, 11);
}

async fn watch_resume_has_no_gap_or_duplicate(s: Arc<dyn Store>) {
    let base = s.current_revision().await.unwrap();
    for i in 0..120u32 {
        let key = format!("/w/k{}", i % 7);
        if i % 5 == 4 {
            let cur = s.get(&key, None).await.unwrap();
            if let Some(cur) = cur {
                applied(s.delete(&key, cur.mod_revision).await.unwrap());
                continue;
            }
        }
        s.put(&key, b(&format!("{i}"))).await.unwrap();
        s.put(&format!("/other/{i}"), b("noise")).await.unwrap();
    }
    let mid = s.current_revision().await.unwrap();
    // More writes arrive while watchers catch up.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..60u32 {
                s.put(&format!("/w/late{}", i % 3), b(&format!("{i}")))
                    .await
                    .unwrap();
            }
        })
    };
    let mut starts = vec![base, base + 1, base + 37, mid - 1, mid];
    starts.dedup();
    let mut streams = Vec::new();
    for &after in &starts {
        streams.push((after, s.watch("/w/", after).await.unwrap()));
    }
    writer.await.unwrap();
    let end = s.current_revision().await.unwrap();
    let full = s.watch("/w/", base).await.unwrap();
    let mut full = full;
    let all = collect_until(&mut full, end).await;
    let all_revs: Vec<Revision> = all.iter().map(|e| e.kv.mod_revision).collect();
    assert!(
        all_revs.windows(2).all(|w| w[0] < w[1]),
        "single-key txns: strictly increasing"
    );
    assert_eq!(all_revs.len(), 120 + 60, "every /w/ write delivered");
    for (after, mut stream) in streams {
        let events = collect_until(&mut stream, end).await;
        let revs: Vec<Revision> = events.iter().map(|e| e.kv.mod_revision).collect();
        let expected: Vec<Revision> = all_revs.iter().copied().filter(|r| *r > after).collect();
        assert_eq!(revs, expected, "resume after {after}: no gap, no duplicate");
    }
}

async fn compaction_makes_old_revisions_too_old(s: Arc<dyn Store>) {
    let first = s.put("/cp/a", b("1")).await.unwrap();
    s.put("/cp/a", b("2")).await.unwrap();
    let at = s.put("/cp/b", b("3")).await.unwrap().mod_revision;
    s.put("/cp/a", b("4")).await.unwrap();
    s.compact(at).await.unwrap();
    assert_eq!(s.compact_revision().await.unwrap(), at);
    let too_old = |r: Result<(), StoreError>| match r {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => {
            assert_eq!(compact_revision, at);
            assert!(requested < at);
        }
        other => panic!("expected Compacted, got {other:?}"),
    };
    too_old(s.get("/cp/a", Some(first.mod_revision)).await.map(|_| ()));
    too_old(
        s.list(
            "/cp/",
            ListOptions {
                revision: Some(at - 1),
                ..Default::default()
            },
        )
        .await
        .map(|_| ()),
    );
    too_old(s.watch("/cp/", at - 1).await.map(|_| ()));
    // At the compaction revision everything still works.
    assert_eq!(s.get("/cp/a", Some(at)).await.unwrap().unwrap().value, b("2"));
    let page = s
        .list(
            "/cp/",
            ListOptions {
                revision: Some(at),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let mut w = s.watch("/cp/", at).await.unwrap();
    let events = collect_until(&mut w, at + 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kv.value, b("4"));
    assert_eq!(events[0].prev.as_ref().unwrap().value, b("2"));
    // Compacting again at or below the compaction revision is "too old".
    assert!(matches!(s.compact(at).await, Err(StoreError::Compacted { .. })));
    let cur = s.current_revision().await.unwrap();
    assert!(matches!(
        s.compact(cur + 5).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

async fn paginated_list_is_pinned_to_one_revision(s: Arc<dyn Store>) {
    for i in 0..250 {
        s.put(&format!("/p/{i:04}"), b(&format!("v{i}"))).await.unwrap();
    }
    let snapshot: BTreeMap<String, KeyValue> = s
        .list("/p/", ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| (kv.key.clone(), kv))
        .collect();
    let first = s
        .list(
            "/p/",
            ListOptions {
                limit: Some(40),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let revision = first.revision;
    let mut seen: Vec<KeyValue> = first.items;
    let mut more = first.more;
    let mut churn = 0;
    while more {
        // Writes continue between pages: updates, deletes and creations on both sides of the cursor.
        for _ in 0..7 {
            churn += 1;
            let key = format!("/p/{:04}", (churn * 37) % 260);
            match s.get(&key, None).await.unwrap() {
                Some(cur) if churn % 3 == 0 => {
                    applied(s.delete(&key, cur.mod_revision).await.unwrap());
                }
                _ => {
                    s.put(&key, b("changed")).await.unwrap();
                }
            }
        }
        let last = seen.last().unwrap().key.clone();
        let page = s
            .list(
                "/p/",
                ListOptions {
                    revision: Some(revision),
                    limit: Some(40),
                    start_after: Some(last),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, revision);
        seen.extend(page.items);
        more = page.more;
    }
    let seen: BTreeMap<String, KeyValue> = seen.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    assert_eq!(seen.len(), 250);
    assert_eq!(
        seen, snapshot,
        "every page shows the state at the first page's revision"
    );
}

async fn large_values(s: Arc<dyn Store>) {
    let big: Bytes = (0..(1 << 20))
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let rev = s.current_revision().await.unwrap();
    let mut w = s.watch("/big/", rev).await.unwrap();
    let kv = s.put("/big/one", big.clone()).await.unwrap();
    assert_eq!(s.get("/big/one", None).await.unwrap().unwrap().value, big);
    let events = collect_until(&mut w, kv.mod_revision).await;
    assert_eq!(events[0].kv.value, big);
    let too_big = Bytes::from(vec![7u8; 2 << 20]);
    match s.put("/big/two", too_big).await {
        Err(StoreError::ValueTooLarge { size, limit }) => assert!(size > limit),
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(s.get("/big/two", None).await.unwrap(), None);
}

async fn hundred_thousand_keys(s: Arc<dyn Store>) {
    const KEYS: usize = 100_000;
    const PER_TXN: usize = 100;
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for chunk in 0..KEYS / PER_TXN {
        let s = s.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let ops = (0..PER_TXN)
                .map(|i| Op::Put {
                    key: format!("/many/{:06}", chunk * PER_TXN + i),
                    value: Bytes::from_static(b"{\"kind\":\"Thing\"}"),
                })
                .collect();
            let outcome = s
                .txn(Txn {
                    compares: vec![],
                    ops,
                })
                .await
                .unwrap();
            drop(permit);
            assert!(matches!(outcome, TxnOutcome::Succeeded { .. }));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = s.list("/many/", ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), KEYS);
    assert!(all.items.windows(2).all(|w| w[0].key < w[1].key));
    let mut total = 0;
    let mut start_after = None;
    loop {
        let page = s
            .list(
                "/many/",
                ListOptions {
                    revision: Some(all.revision),
                    limit: Some(10_000),
                    start_after,
                },
            )
            .await
            .unwrap();
        total += page.items.len();
        start_after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(total, KEYS);
}

async fn watch_events_carry_prev_values(s: Arc<dyn Store>) {
    let rev = s.current_revision().await.unwrap();
    let mut w = s.watch("/pv/", rev).await.unwrap();
    let v1 = applied(s.create("/pv/x", b("one")).await.unwrap());
    let v2 = applied(s.update("/pv/x", b("two"), v1.mod_revision).await.unwrap());
    let gone = applied(s.delete("/pv/x", v2.mod_revision).await.unwrap());
    assert_eq!(gone, v2);
    let end = s.current_revision().await.unwrap();
    let events = collect_until(&mut w, end).await;
    assert_eq!(events.len(), 3);
    assert_eq!(
        (events[0].kind, &events[0].kv, &events[0].prev),
        (EventKind::Put, &v1, &None)
    );
    assert_eq!(
        (events[1].kind, &events[1].kv, events[1].prev.as_ref()),
        (EventKind::Put, &v2, Some(&v1))
    );
    assert_eq!(events[2].kind, EventKind::Delete);
    assert_eq!(events[2].kv.key, "/pv/x");
    assert_eq!(events[2].kv.mod_revision, end);
    assert!(events[2].kv.value.is_empty());
    assert_eq!(events[2].prev.as_ref(), Some(&v2));
}

async fn deletes(s: Arc<dyn Store>) {
    let a = s.put("/d/a", b("a")).await.unwrap();
    s.put("/d/b", b("b")).await.unwrap();
    let before = s.current_revision().await.unwrap();
    // Deleting an absent key is a successful no-op without a new revision.
    match s
        .txn(Txn {
            compares: vec![],
            ops: vec![Op::Delete { key: "/d/zz".into() }],
        })
        .await
        .unwrap()
    {
        TxnOutcome::Succeeded { results, .. } => assert_eq!(results, vec![None]),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.current_revision().await.unwrap(), before);
    let removed = applied(s.delete("/d/a", a.mod_revision).await.unwrap());
    assert_eq!(removed, a);
    assert_eq!(s.get("/d/a", None).await.unwrap(), None);
    let keys: Vec<String> = s
        .list("/d/", ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["/d/b"]);
    // Recreating starts a new incarnation.
    let again = applied(s.create("/d/a", b("again")).await.unwrap());
    assert_eq!(again.version, 1);
    assert_eq!(again.create_revision, again.mod_revision);
    assert!(again.create_revision > a.create_revision);
}

async fn idle_watch_gets_progress(s: Arc<dyn Store>) {
    s.put("/idle/other", b("x")).await.unwrap();
    let rev = s.current_revision().await.unwrap();
    let mut w = s.watch("/idle/mine/", rev).await.unwrap();
    let started = tokio::time::Instant::now();
    let resp = tokio::time::timeout(Duration::from_millis(2500), w.next())
        .await
        .expect("no progress")
        .unwrap()
        .unwrap();
    assert!(resp.events.is_empty());
    assert!(resp.revision >= rev);
    assert!(started.elapsed() <= Duration::from_millis(1500));
    // Writes outside the prefix advance the progress revision of the next notification.
    s.put("/idle/other", b("y")).await.unwrap();
    let target = s.current_revision().await.unwrap();
    let mut seen = resp.revision;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen < target && tokio::time::Instant::now() < deadline {
        let resp = tokio::time::timeout(Duration::from_millis(2500), w.next())
            .await
            .expect("no progress")
            .unwrap()
            .unwrap();
        assert!(resp.events.is_empty());
        seen = resp.revision;
    }
    assert!(seen >= target, "progress revision reaches the current revision");
}

async fn future_revisions_are_rejected(s: Arc<dyn Store>) {
    s.put("/f/a", b("1")).await.unwrap();
    let cur = s.current_revision().await.unwrap();
    assert!(matches!(
        s.get("/f/a", Some(cur + 10)).await,
        Err(StoreError::FutureRevision { .. })
    ));
    assert!(matches!(
        s.list(
            "/f/",
            ListOptions {
                revision: Some(cur + 10),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::FutureRevision { .. })
    ));
    assert!(matches!(
        s.watch("/f/", cur + 10).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

async fn reads_at_older_revisions(s: Arc<dyn Store>) {
    let a1 = s.put("/r/a", b("a1")).await.unwrap();
    let b1 = s.put("/r/b", b("b1")).await.unwrap();
    let r1 = b1.mod_revision;
    s.put("/r/a", b("a2")).await.unwrap();
    applied(s.delete("/r/b", b1.mod_revision).await.unwrap());
    s.put("/r/c", b("c1")).await.unwrap();
    assert_eq!(s.get("/r/a", Some(r1)).await.unwrap(), Some(a1.clone()));
    assert_eq!(s.get("/r/b", Some(r1)).await.unwrap(), Some(b1.clone()));
    assert_eq!(s.get("/r/c", Some(r1)).await.unwrap(), None);
    let old = s
        .list(
            "/r/",
            ListOptions {
                revision: Some(r1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(old.items, vec![a1, b1]);
    let now: HashSet<String> = s
        .list("/r/", ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(now, HashSet::from(["/r/a".to_owned(), "/r/c".to_owned()]));
}
