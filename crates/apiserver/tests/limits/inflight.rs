//! `--max-requests-inflight`: requests beyond the limit get 429 with `Retry-After: 1`, as from
//! kube-apiserver; watches are not counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{raw, serve_tcp};
use crate::support::{WIDGETS, parse_response, request, start, widget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_beyond_max_requests_inflight_is_answered_429() {
    let s = start(|c| c.max_requests_inflight = 100).await;
    for name in ["a", "b", "c"] {
        assert_eq!(raw(&s.api, "POST", WIDGETS, &[], widget(name)).await.0, 201);
    }
    let (addr, serving) = serve_tcp(&s.api, 0).await;
    // 2,000 concurrent lists. Each announces a one-byte body and sends it only on `release`, so a
    // request that got a slot stays in flight until then: exactly 100 can be, the others must
    // be answered at once.
    let (release, _) = tokio::sync::broadcast::channel::<()>(1);
    let answered_early = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2000)
        .map(|_| {
            let mut released = release.subscribe();
            let answered_early = answered_early.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "GET {WIDGETS} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                tokio::select! {
                    n = stream.read(&mut buf) => {
                        raw.extend_from_slice(&buf[..n.unwrap()]);
                        answered_early.fetch_add(1, Ordering::SeqCst);
                    }
                    _ = released.recv() => {
                        // Answered or not, the server reads no further than the request.
                        let _ = stream.write_all(b" ").await;
                    }
                }
                tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
                    .await
                    .expect("answered within 60 s")
                    .unwrap();
                parse_response(&raw)
            })
        })
        .collect();
    // Wait until everything beyond the limit has been refused (bounded: if the limit does not
    // work, nobody is answered early and the counts below tell).
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered_early.load(Ordering::SeqCst) < 1900 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    release.send(()).unwrap();
    let mut by_status = BTreeMap::new();
    let mut rejected = None;
    for c in clients {
        let answer = c.await.unwrap();
        *by_status.entry(answer.status).or_insert(0u32) += 1;
        if answer.status == 200 {
            assert_eq!(answer.body["items"].as_array().unwrap().len(), 3);
        } else {
            rejected = Some(answer);
        }
    }
    assert_eq!(by_status, BTreeMap::from([(200, 100), (429, 1900)]));
    let rejected = rejected.unwrap();
    assert_eq!(rejected.headers["retry-after"], "1");
    assert_eq!(
        rejected.body,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
            "details": {"retryAfterSeconds": 1}, "code": 429
        })
    );
    // The slots are free again.
    assert_eq!(request(addr, "GET", WIDGETS, "").await.status, 200);
    serving.stop().await;
}

#[tokio::test]
async fn watches_are_not_counted() {
    let s = start(|c| {
        c.max_requests_inflight = 2;
        c.max_mutating_requests_inflight = 1;
    })
    .await;
    // Ten open watches (their response bodies stay open) ...
    let mut watches = Vec::new();
    for _ in 0..10 {
        use tower::ServiceExt;
        let req = http::Request::get(format!("{WIDGETS}?watch=true"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = s.api.router().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        watches.push(resp);
    }
    // ... leave room for reads and writes.
    assert_eq!(raw(&s.api, "GET", WIDGETS, &[], "").await.0, 200);
    assert_eq!(raw(&s.api, "POST", WIDGETS, &[], widget("w")).await.0, 201);
    drop(watches);
}
