//! Servers with a given configuration and a minimal HTTP/1.1 client over raw TCP, so tests control
//! exactly what is sent and when.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ironnet_apiserver::{ApiServer, ServerConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WidgetStrategy, open_store, test_config, widget_definition};

/// The widget collection in namespace `default`.
pub const WIDGETS: &str = "/apis/test.ironnet.dev/v1/namespaces/default/widgets";

/// A server with the widget kind over a fresh embedded store.
pub struct Server {
    pub api: ApiServer,
    _dir: tempfile::TempDir,
}

/// Starts a server; `tune` adjusts the test configuration.
pub async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    tune(&mut config);
    let api = ApiServer::builder(open_store(dir.path()))
        .config(config)
        .register(widget_definition(), Arc::new(WidgetStrategy))
        .unwrap()
        .build()
        .await
        .unwrap();
    Server { api, _dir: dir }
}

/// A widget manifest.
pub fn widget(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "test.ironnet.dev/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": {"size": 1}
    })
    .to_string()
}

/// One parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// Parses one complete HTTP/1.1 response with a Content-Length body.
pub fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    Response {
        status,
        headers,
        body,
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole answer.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers within 60 s")
        .unwrap();
    parse_response(&raw)
}

/// Waits until the server closes `stream` (EOF or reset), at most `deadline`; false if it stays open.
pub async fn closed_by_server(stream: &mut TcpStream, deadline: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(deadline, wait).await.is_ok()
}

/// The process's peak resident set size (`VmHWM`) in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
