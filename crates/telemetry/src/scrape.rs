//! Reading the endpoints the way a monitoring system does, for tests and tooling: a plain HTTP/1.1 GET over TCP
//! and `promtool check metrics`.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP response: status code, `Content-Type` and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scraped {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header (empty if absent).
    pub content_type: String,
    /// The body as text.
    pub body: String,
}

/// GETs `path` from `addr` with an optional `Accept` header; errors on I/O failure or a malformed response.
pub async fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> std::io::Result<Scraped> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("malformed response: {text:?}"),
        )
    };
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body).ok_or_else(bad)?
    } else {
        body.to_owned()
    };
    Ok(Scraped {
        status,
        content_type,
        body,
    })
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// Runs `promtool check metrics` (Debian package `prometheus`) on a Prometheus text page; `Err` carries
/// promtool's findings, or why it could not run.
pub async fn promtool_check(page: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("promtool has no stdin")?;
    stdin
        .write_all(page.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
