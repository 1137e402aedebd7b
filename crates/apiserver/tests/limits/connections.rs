//! Connections: idle and header-trickling clients are closed after the timeouts, a bounded number
//! of connections is served at once, and a client that half-closes its side still gets its answer.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{raw, serve_tcp};
use crate::support::{WIDGETS, closed_by_server, parse_response, request, start, widget};

/// Generous against a loaded machine, still far from "never".
const CLOSE_DEADLINE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_are_closed_while_others_are_served() {
    let s = start(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let (addr, serving) = serve_tcp(&s.api, 0).await;

    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Sends a request head one byte every 100 ms, never finishing it, until the server hangs up.
    let trickler = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = b"GET /version HTTP/1.1\r\nHost: trickle\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let started = Instant::now();
        for byte in head {
            if stream.write_all(&[*byte]).await.is_err() {
                return Some(started.elapsed());
            }
            let mut buf = [0u8; 64];
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
                // EOF, a reset or an error answer: the server gave up on this client.
                let _ = r;
                return Some(started.elapsed());
            }
        }
        None
    });

    // A normal client is served meanwhile, on a new connection and on a kept-alive one.
    let answer = request(addr, "GET", "/version", "").await;
    assert_eq!(answer.status, 200);
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(format!("GET /version HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"platform\"") {
        let n = tokio::time::timeout(CLOSE_DEADLINE, kept.read(&mut buf))
            .await
            .expect("an answer on the kept-alive connection")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(parse_response(&got).status, 200);

    // Every idle connection, the kept-alive one and the trickler are closed by the server.
    for (i, stream) in idle.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, CLOSE_DEADLINE).await,
            "idle connection {i} is still open"
        );
    }
    assert!(
        closed_by_server(&mut kept, CLOSE_DEADLINE).await,
        "kept-alive connection is still open"
    );
    let trickled = tokio::time::timeout(CLOSE_DEADLINE * 2, trickler)
        .await
        .unwrap()
        .unwrap();
    assert!(trickled.is_some(), "the server read a trickled head for 20 s");
    // And the server still serves.
    assert_eq!(request(addr, "GET", "/version", "").await.status, 200);
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_for_a_free_slot() {
    let s = start(|c| {
        c.max_connections = 20;
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let (addr, serving) = serve_tcp(&s.api, 0).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // The 21st connection is queued by the kernel; it is served once an idle one has been closed.
    let answer = request(addr, "GET", "/version", "").await;
    assert_eq!(answer.status, 200);
    // Its slot came from a closed idle connection; the server's close reached us before the answer.
    let mut closed = 0;
    for stream in &mut idle {
        let mut probe = [0u8; 16];
        if matches!(
            tokio::time::timeout(Duration::from_millis(5), stream.read(&mut probe)).await,
            Ok(Ok(0) | Err(_))
        ) {
            closed += 1;
        }
    }
    assert!(
        closed > 0,
        "the 21st connection was served while 20 others were open"
    );
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_times_out() {
    let s = start(|c| c.request_body_timeout = Duration::from_secs(1)).await;
    let (addr, serving) = serve_tcp(&s.api, 0).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Announces 100 bytes, sends 10 and stalls.
    stream
        .write_all(
            format!("POST {WIDGETS} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n{{\"kind\":\"W")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(CLOSE_DEADLINE, stream.read_to_end(&mut got))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let answer = parse_response(&got);
    assert_eq!(
        (answer.status, answer.body),
        (
            504,
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "request did not complete within requested timeout - the request body was not received \
                            within 1s",
                "reason": "Timeout", "code": 504
            })
        )
    );
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_gets_its_answer() {
    let s = start(|_| {}).await;
    let (addr, serving) = serve_tcp(&s.api, 0).await;
    let body = widget("half");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST {WIDGETS} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let answer = parse_response(&got);
    assert_eq!(
        (answer.status, &answer.body["metadata"]["name"]),
        (201, &serde_json::json!("half"))
    );
    assert_eq!(
        raw(&s.api, "GET", &format!("{WIDGETS}/half"), &[], "").await.0,
        200
    );
    serving.stop().await;
}
