//! kube-apiserver's request metrics on the server's own `/metrics`, over real HTTP after a scripted workload.

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::serve_tcp;
use crate::support::{WIDGETS, request, start, widget};

fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn requests(verb: &str, scope: &str, code: u16) -> String {
    format!(
        "apiserver_request_total{{verb=\"{verb}\",dry_run=\"\",group=\"test.ironnet.dev\",version=\"v1\",\
         resource=\"widgets\",subresource=\"\",scope=\"{scope}\",component=\"apiserver\",code=\"{code}\"}}"
    )
}

const WATCHES: &str = "apiserver_longrunning_requests{verb=\"WATCH\",dry_run=\"\",group=\"test.ironnet.dev\",\
                       version=\"v1\",resource=\"widgets\",subresource=\"\",scope=\"namespace\",component=\"apiserver\"}";

async fn scrape(addr: std::net::SocketAddr) -> String {
    let page = request(addr, "GET", "/metrics", "").await;
    assert_eq!(page.status, 200);
    page.body.as_str().expect("a text page").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_workload_is_counted_by_verb_resource_and_code() {
    let s = start(|_| {}).await;
    let (addr, _serving) = serve_tcp(&s.api, 0).await;
    for name in ["a", "b"] {
        assert_eq!(request(addr, "POST", WIDGETS, &widget(name)).await.status, 201);
    }
    let too_big = widget("c").replace("\"size\":1", "\"size\":101");
    assert_eq!(request(addr, "POST", WIDGETS, &too_big).await.status, 422);
    assert_eq!(
        request(addr, "GET", &format!("{WIDGETS}/missing"), "")
            .await
            .status,
        404
    );
    assert_eq!(
        request(addr, "GET", &format!("{WIDGETS}/a"), "").await.status,
        200
    );
    assert_eq!(request(addr, "GET", WIDGETS, "").await.status, 200);

    let mut watch = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {WIDGETS}?watch=true HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    watch.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = watch.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let page = scrape(addr).await;
    assert_eq!(
        value(&page, &requests("POST", "namespace", 201)),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        value(&page, &requests("POST", "namespace", 422)),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(&page, &requests("GET", "resource", 404)),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(&page, &requests("GET", "resource", 200)),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(&page, &requests("LIST", "namespace", 200)),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(&page, &requests("WATCH", "namespace", 200)),
        Some(1.0),
        "{page}"
    );
    assert_eq!(value(&page, WATCHES), Some(1.0), "{page}");
    let posted = "apiserver_request_duration_seconds_count{verb=\"POST\",dry_run=\"\",group=\"test.ironnet.dev\",\
                  version=\"v1\",resource=\"widgets\",subresource=\"\",scope=\"namespace\",component=\"apiserver\"}";
    assert_eq!(value(&page, posted), Some(3.0), "{page}");
    // The scrape itself is the one read-only request in flight.
    assert_eq!(
        value(
            &page,
            "apiserver_current_inflight_requests{request_kind=\"readOnly\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "apiserver_current_inflight_requests{request_kind=\"mutating\"}"
        ),
        Some(0.0),
        "{page}"
    );

    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus) is installed");
    promtool.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The watch leaves the long-running gauge when its client has gone away; as in kube-apiserver the server
    // notices that when it next writes to the connection, so each round creates a widget the watch must carry.
    drop(watch);
    let deadline = Instant::now() + Duration::from_secs(30);
    for round in 0.. {
        let name = format!("after-watch-{round}");
        assert_eq!(request(addr, "POST", WIDGETS, &widget(&name)).await.status, 201);
        let page = scrape(addr).await;
        if value(&page, WATCHES) == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the watch is still counted:\n{page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
