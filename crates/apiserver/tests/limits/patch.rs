//! JSON patches are bounded while they are applied: the document may not grow past the object
//! size limit at any operation, copies may not add up past 3 MiB, and a patch has at most 10,000
//! operations — so a small patch cannot make the server allocate gigabytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::raw;
use crate::support::{WIDGETS, peak_rss_kib, start, widget};

const JSON_PATCH: (&str, &str) = ("content-type", "application/json-patch+json");

/// `add` a 1 KiB list, then `copies` operations that each append the list to itself (doubling it).
fn copy_bomb(copies: usize) -> String {
    let mut ops = vec![json!({"op": "add", "path": "/spec/blob", "value": ["x".repeat(1024)]})];
    ops.extend((0..copies).map(|_| json!({"op": "copy", "from": "/spec/blob", "path": "/spec/blob/-"})));
    Value::Array(ops).to_string()
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_bomb_is_refused_fast_in_bounded_memory_while_others_are_served() {
    let s = start(|_| {}).await;
    let (code, _, _) = raw(&s.api, "POST", WIDGETS, &[], widget("w")).await;
    assert_eq!(code, 201);
    let url = format!("{WIDGETS}/w");
    // Unbounded, 18 doublings of 1 KiB are a 256 MiB document (and as much again for the copy).
    let bomb = copy_bomb(18);
    assert!(bomb.len() < 2500, "a small request: {} bytes", bomb.len());
    let baseline = peak_rss_kib();

    // Another client reads all the time and records its slowest answer (until the test ends,
    // also when it fails).
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_reader = StopOnDrop(stop.clone());
    let slowest_us = Arc::new(AtomicU64::new(0));
    let reader = {
        let (api, stop, slowest_us) = (s.api.clone(), stop.clone(), slowest_us.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (code, _, _) = raw(&api, "GET", "/api/v1/namespaces/default", &[], "").await;
                assert_eq!(code, 200);
                slowest_us.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                reads += 1;
            }
            reads
        })
    };

    for _ in 0..20 {
        let started = Instant::now();
        let (code, _, status) = raw(&s.api, "PATCH", &url, &[JSON_PATCH], bomb.clone()).await;
        let took = started.elapsed();
        assert_eq!(
            (code, status),
            (
                413,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Request entity too large: operation 11 of the JSON patch grows the object past \
                                the limit of 1568768 bytes",
                    "reason": "RequestEntityTooLarge", "code": 413
                })
            )
        );
        assert!(took < Duration::from_secs(2), "refused in {took:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
    let slowest = Duration::from_micros(slowest_us.load(Ordering::Relaxed));
    assert!(
        slowest < Duration::from_secs(2),
        "the other client waited {slowest:?}"
    );
    let grown_mib = (peak_rss_kib().saturating_sub(baseline)) / 1024;
    assert!(grown_mib < 64, "peak memory grew by {grown_mib} MiB");
    // The object is unchanged.
    let (code, _, obj) = raw(&s.api, "GET", &url, &[], "").await;
    assert_eq!((code, &obj["spec"]), (200, &json!({"size": 1})));
}

#[tokio::test]
async fn copies_that_add_up_past_the_limit_are_refused() {
    let s = start(|_| {}).await;
    assert_eq!(raw(&s.api, "POST", WIDGETS, &[], widget("w")).await.0, 201);
    // Each copy is removed again, so the document stays small; the copying still costs.
    let mut ops = vec![json!({"op": "add", "path": "/spec/blob", "value": "y".repeat(600 * 1024)})];
    for _ in 0..6 {
        ops.push(json!({"op": "copy", "from": "/spec/blob", "path": "/spec/copy"}));
        ops.push(json!({"op": "remove", "path": "/spec/copy"}));
    }
    let (code, _, status) = raw(
        &s.api,
        "PATCH",
        &format!("{WIDGETS}/w"),
        &[JSON_PATCH],
        Value::Array(ops).to_string(),
    )
    .await;
    assert_eq!(
        (code, status),
        (
            422,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unable to complete the copy, the accumulated size increase of copy is 3686412, \
                            exceeding the limit 3145728",
                "reason": "Invalid", "code": 422
            })
        )
    );
}

#[tokio::test]
async fn a_patch_has_at_most_10000_operations() {
    let s = start(|_| {}).await;
    assert_eq!(raw(&s.api, "POST", WIDGETS, &[], widget("w")).await.0, 201);
    let url = format!("{WIDGETS}/w");
    let ops =
        |n: usize| Value::Array(vec![json!({"op": "test", "path": "/spec/size", "value": 1}); n]).to_string();
    let (code, _, status) = raw(&s.api, "PATCH", &url, &[JSON_PATCH], ops(10_001)).await;
    assert_eq!(
        (code, status),
        (
            413,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "The allowed maximum operations in a JSON patch is 10000, got 10001",
                "reason": "RequestEntityTooLarge", "code": 413
            })
        )
    );
    let (code, _, obj) = raw(&s.api, "PATCH", &url, &[JSON_PATCH], ops(10_000)).await;
    assert_eq!((code, &obj["spec"]["size"]), (200, &json!(1)));
}
