//! Helpers shared by the loopback tests: fast timers, instances on 127.0.0.1, a raw protocol peer.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use ironnet_metalbond::{Config, ConnectionState, Message, MessageCodec, MetalBond};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// One wire second in tests. Keepalive 2 ⇒ a KEEPALIVE every 400 ms and a hold time of 1 s (long enough not to
/// expire spuriously on a loaded 2-core machine, short enough for timeout tests).
pub const UNIT: Duration = Duration::from_millis(200);
/// Upper bound for anything that should happen "soon".
pub const SOON: Duration = Duration::from_secs(10);

pub fn fast_config() -> Config {
    Config {
        keepalive_interval: 2,
        time_unit: UNIT,
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(120),
        connect_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A server on an ephemeral loopback port.
pub async fn server() -> (MetalBond, String) {
    server_with_keepalive(fast_config().keepalive_interval).await
}

/// A server with a custom keepalive interval (in [`UNIT`]s), for raw peers that send KEEPALIVEs by hand.
pub async fn server_with_keepalive(keepalive_interval: u32) -> (MetalBond, String) {
    let mb = MetalBond::new(Config {
        keepalive_interval,
        ..fast_config()
    })
    .unwrap();
    let addr = mb.start_server("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (mb, addr.to_string())
}

/// A client of `servers`, waited for until ESTABLISHED.
pub async fn client(servers: &[&str]) -> MetalBond {
    let mb = MetalBond::new(fast_config()).unwrap();
    for s in servers {
        mb.add_peer(s).unwrap();
    }
    mb.wait_established(SOON).await.unwrap();
    mb
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after [`SOON`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts `cond` holds for the whole of `period`.
pub async fn consistently(what: &str, period: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < deadline {
        assert!(cond(), "condition broke: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The server-side peer addresses that are ESTABLISHED.
pub fn established_peers(mb: &MetalBond) -> Vec<String> {
    mb.peers()
        .into_iter()
        .filter(|(_, s)| *s == ConnectionState::Established)
        .map(|(a, _)| a)
        .collect()
}

/// A hand-driven protocol peer for tests that need to misbehave.
pub struct RawPeer {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawPeer {
    pub async fn connect(addr: &str) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub async fn send(&mut self, msg: &Message) {
        self.stream.write_all(&msg.to_frame().unwrap()).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next message, or `None` when the connection is closed or nothing arrives within `wait`.
    pub async fn recv(&mut self, wait: Duration) -> Option<Message> {
        loop {
            if let Some(m) = MessageCodec.decode(&mut self.buf).unwrap() {
                return Some(m);
            }
            match tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Whether the peer closed the connection within `wait` (messages before the close are skipped).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut scratch = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    /// Client handshake: HELLO, wait for the server HELLO, KEEPALIVE, wait for the echo.
    pub async fn handshake_as_client(&mut self, keepalive: u32) {
        self.send(&Message::Hello {
            keepalive_interval: keepalive,
            is_server: false,
        })
        .await;
        let hello = self.recv(SOON).await.unwrap();
        assert!(
            matches!(hello, Message::Hello { is_server: true, .. }),
            "{hello:?}"
        );
        self.send(&Message::Keepalive).await;
        assert_eq!(self.recv(SOON).await, Some(Message::Keepalive));
    }
}
