//! A small Chrome DevTools Protocol client over the browser's WebSocket: one headless Chromium
//! process, one page (a flattened target session), and the few commands a DOM test needs
//! (navigate, evaluate, screenshot).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A headless Chromium driven over the DevTools protocol; killed when dropped.
pub struct Browser {
    child: Child,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts `chromium --headless` with a fresh profile and opens one blank page.
    ///
    /// `--no-sandbox`: Chromium refuses to run its sandbox as root, and the tests run as root.
    /// `--ignore-certificate-errors`: the API server's certificate is signed by the CA that
    /// `ironnet up` created, which this throwaway profile does not trust.
    pub async fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--ignore-certificate-errors",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts (Debian package `chromium`)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
                said.push_str(&line);
                said.push('\n');
            }
            panic!("chromium exited before listening:\n{said}");
        })
        .await
        .expect("chromium prints its DevTools address within 60 s");
        // Chromium keeps logging to stderr; a full pipe would stall it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await
            .unwrap();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await
            .unwrap();
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.call("Page.enable", json!({})).await.unwrap();
        browser
    }

    /// Sends one command (to the page once attached) and returns its result, or the protocol
    /// error's message.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.socket.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let frame = match tokio::time::timeout(Duration::from_secs(30), self.socket.next()).await {
                Err(_) => panic!("no answer to {method} within 30 s"),
                Ok(None) => return Err(format!("{method}: the DevTools socket closed")),
                Ok(Some(Err(e))) => return Err(format!("{method}: {e}")),
                Ok(Some(Ok(frame))) => frame,
            };
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).unwrap();
            // Events (no id) and answers to other sessions are not ours.
            if reply["id"] != json!(id) {
                continue;
            }
            if let Some(err) = reply.get("error") {
                return Err(format!("{method}: {err}"));
            }
            return Ok(reply["result"].clone());
        }
    }

    /// Opens `url` in the page and waits until its document has loaded.
    pub async fn navigate(&mut self, url: &str) {
        let nav = self.call("Page.navigate", json!({"url": url})).await.unwrap();
        assert!(nav.get("errorText").is_none(), "navigating to {url}: {nav}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.eval("document.readyState").await != json!("complete") {
            assert!(Instant::now() < deadline, "{url} did not load within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of the JavaScript expression `expr` in the page (promises awaited), or the
    /// exception it threw.
    pub async fn try_eval(&mut self, expr: &str) -> Result<Value, String> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("{expr}: {exception}"));
        }
        Ok(result["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// As [`Browser::try_eval`], failing the test on an exception.
    pub async fn eval(&mut self, expr: &str) -> Value {
        self.try_eval(expr).await.unwrap()
    }

    /// Saves a PNG of the whole page to `path` and returns its size in bytes.
    pub async fn screenshot(&mut self, path: &Path) -> usize {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, &png).unwrap();
        png.len()
    }
}

impl Browser {
    /// Asks Chromium to close (so its helper processes leave with it) and waits up to 10 s for
    /// it to exit; killed otherwise.
    pub async fn close(mut self) {
        self.session.clear();
        let _ = self.call("Browser.close", json!({})).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
