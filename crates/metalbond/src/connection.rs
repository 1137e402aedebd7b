//! Connection drivers: the socket side of a session (reading, timers, batched writing, redialling).
//!
//! Each connection has a reader task (this module's [`run_session`]) that decodes frames, drives the
//! [`Session`] state machine and hands route messages to the engine, and a writer task that drains the peer's
//! outgoing queue. The writer batches queued frames into one write of at most `max_write_bytes` (never splitting a
//! frame), so a burst of updates costs few syscalls while a lone message still goes out immediately.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::codec::{CodecError, Message, MessageCodec};
use crate::engine::PeerId;
use crate::instance::Core;
use crate::outbox::{Outbox, OutboxReceiver, outbox};
use crate::session::{ConnectionState, Direction, Session, SessionError};

/// Most messages handled per engine lock acquisition.
const MAX_BATCH: usize = 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The protocol state machine reset the session (timeout, unexpected message).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A frame could not be decoded, or the socket failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The peer did not read fast enough: its outgoing queue exceeded this many bytes.
    #[error("outgoing queue exceeded {0} bytes: peer does not keep up")]
    QueueOverflow(usize),
    /// The TLS handshake failed or timed out (wrong CA, no client certificate, a plain-TCP peer).
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// Closed locally (reset, peer removal or shutdown).
    #[error("connection closed locally")]
    Cancelled,
}

async fn write_loop(mut wr: impl AsyncWrite + Unpin, mut rx: OutboxReceiver, max_write: usize) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(256);
    let mut buf: Vec<u8> = Vec::with_capacity(max_write);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for frame in batch.drain(..) {
            if buf.len() + frame.len() > max_write && !buf.is_empty() {
                if wr.write_all(&buf).await.is_err() {
                    return;
                }
                buf.clear();
            }
            buf.extend_from_slice(&frame);
        }
        // The queue is drained (or the batch limit reached): flush what we have.
        if !buf.is_empty() {
            if wr.write_all(&buf).await.is_err() {
                return;
            }
            buf.clear();
        }
    }
    let _ = wr.shutdown().await;
}

/// Runs one session on a just-opened TCP connection with `peer` (its address, for logs and the TLS server name)
/// until it ends: first the TLS handshake when the instance has a [`TlsConfig`](crate::TlsConfig), then the
/// protocol. `cancel` closes the connection from our side (reset or removal).
pub(crate) async fn run_connection(
    core: Arc<Core>,
    id: PeerId,
    stream: TcpStream,
    peer: &str,
    direction: Direction,
    cancel: CancellationToken,
) -> ConnectionError {
    // Like Go's default: every write goes out at once instead of waiting for an ACK (Nagle).
    let _ = stream.set_nodelay(true);
    let Some(tls) = core.config.tls.clone() else {
        let (rd, wr) = stream.into_split();
        return run_session(core, id, rd, wr, direction, cancel).await;
    };
    let handshake = async {
        match direction {
            Direction::Incoming => tls
                .acceptor()
                .accept(stream)
                .await
                .map(tokio_rustls::TlsStream::Server),
            Direction::Outgoing => {
                let name = crate::tls::server_name(peer)?;
                tls.connector()
                    .connect(name, stream)
                    .await
                    .map(tokio_rustls::TlsStream::Client)
            }
        }
    };
    let timed = tokio::time::timeout(core.config.connect_timeout, handshake);
    let result = tokio::select! {
        _ = cancel.cancelled() => return ConnectionError::Cancelled,
        r = timed => r.unwrap_or_else(|_| Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no TLS handshake within the connect timeout",
        ))),
    };
    match result {
        Ok(stream) => {
            let (rd, wr) = tokio::io::split(stream);
            run_session(core, id, rd, wr, direction, cancel).await
        }
        Err(e) => {
            // An unauthenticated peer is worth a warning: a misconfiguration or someone without credentials.
            tracing::warn!(%peer, error = %e, "TLS handshake failed; closing the connection");
            ConnectionError::Tls(e)
        }
    }
}

/// Runs the protocol on an established byte stream until it ends, then cleans up the peer's routes.
async fn run_session(
    core: Arc<Core>,
    id: PeerId,
    rd: impl AsyncRead + Unpin + Send + 'static,
    wr: impl AsyncWrite + Unpin + Send + 'static,
    direction: Direction,
    cancel: CancellationToken,
) -> ConnectionError {
    let overflow = CancellationToken::new();
    let (tx, rx) = outbox(core.config.max_queue_bytes, overflow.clone());
    let writer = tokio::spawn(write_loop(wr, rx, core.config.max_write_bytes));
    let mut session = Session::new(direction, core.config.timers(), Instant::now());
    {
        let mut engine = core.lock();
        if let Some(peer) = engine.peers.get_mut(&id) {
            peer.tx = Some(tx.clone());
            peer.conn_cancel = Some(cancel.clone());
            peer.state = ConnectionState::Connecting;
        }
        if let Some(hello) = session.start() {
            send(&tx, &hello);
            engine.set_state(id, session.state());
        }
    }
    core.notify();
    let mut frames = FramedRead::with_capacity(rd, MessageCodec, 64 * 1024);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let error = loop {
        let deadline = tokio::time::Instant::from_std(session.next_deadline());
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break ConnectionError::Cancelled,
            _ = overflow.cancelled() => break ConnectionError::QueueOverflow(core.config.max_queue_bytes),
            item = frames.next() => {
                match item {
                    None => break ConnectionError::Closed,
                    Some(Err(e)) => break e.into(),
                    Some(Ok(msg)) => batch.push(msg),
                }
                // Take whatever else is already readable without waiting, to handle it under one lock.
                let mut ended = None;
                while batch.len() < MAX_BATCH {
                    match frames.next().now_or_never() {
                        Some(Some(Ok(msg))) => batch.push(msg),
                        Some(Some(Err(e))) => {
                            ended = Some(e.into());
                            break;
                        }
                        Some(None) => {
                            ended = Some(ConnectionError::Closed);
                            break;
                        }
                        None => break,
                    }
                }
                if let Err(e) = handle_messages(&core, id, &mut session, &tx, batch.drain(..)) {
                    break e;
                }
                if let Some(e) = ended {
                    break e;
                }
            }
            _ = tokio::time::sleep_until(deadline) => match session.poll(Instant::now()) {
                Ok(Some(keepalive)) => send(&tx, &keepalive),
                Ok(None) => {}
                Err(e) => break e.into(),
            },
        }
    };
    writer.abort();
    if let ConnectionError::Codec(fault) = &error
        && !matches!(fault, CodecError::Io(_))
    {
        // A peer that sends what no correct peer sends is named, with the fault, at warning level: it is a bug or
        // an attack on the peer's side, not a network hiccup.
        let peer = {
            let engine = core.lock();
            engine
                .stats
                .protocol_faults
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            engine.peers.get(&id).map(|p| p.addr.clone()).unwrap_or_default()
        };
        tracing::warn!(%peer, %fault, "closing the session: the peer sent a message that is refused");
    }
    let next_state = match direction {
        Direction::Incoming => ConnectionState::Closed,
        Direction::Outgoing => ConnectionState::Retry,
    };
    core.lock().peer_down(id, next_state);
    core.notify();
    error
}

/// Feeds received messages to the session in order, applying their effects to the engine under one lock.
fn handle_messages(
    core: &Core,
    id: PeerId,
    session: &mut Session,
    tx: &Outbox,
    msgs: impl Iterator<Item = Message>,
) -> Result<(), ConnectionError> {
    let mut engine = None;
    let mut state_changed = false;
    let mut result = Ok(());
    for msg in msgs {
        let before = session.state();
        let step = match session.on_message(msg, Instant::now()) {
            Ok(step) => step,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        if let Some(reply) = &step.reply {
            send(tx, reply);
        }
        let changed = session.state() != before;
        state_changed |= changed;
        if step.established || step.deliver.is_some() || changed {
            let engine = engine.get_or_insert_with(|| core.lock());
            if step.established {
                engine.established(id, session.peer_is_server());
            } else if changed {
                engine.set_state(id, session.state());
            }
            if let Some(msg) = step.deliver {
                engine.deliver(id, msg);
            }
        }
    }
    drop(engine);
    if state_changed {
        core.notify();
    }
    result
}

fn send(tx: &Outbox, msg: &Message) {
    match msg.to_frame() {
        Ok(frame) => {
            let _ = tx.send(frame);
        }
        Err(e) => tracing::error!(error = %e, "cannot encode protocol message"),
    }
}

/// Dials `addr` (optionally from `local`) until `stop` is cancelled, running a session on every connection and
/// waiting a random `retry_min..=retry_max` between attempts.
pub(crate) async fn run_outgoing(
    core: Arc<Core>,
    id: PeerId,
    addr: String,
    local: Option<std::net::IpAddr>,
    stop: CancellationToken,
) {
    loop {
        core.lock().set_state(id, ConnectionState::Connecting);
        core.notify();
        let dial = tokio::time::timeout(core.config.connect_timeout, dial(&addr, local));
        let result = tokio::select! {
            _ = stop.cancelled() => break,
            r = dial => r,
        };
        match result {
            Ok(Ok(stream)) => {
                tracing::info!(peer = %addr, "connected");
                let error = run_connection(
                    core.clone(),
                    id,
                    stream,
                    &addr,
                    Direction::Outgoing,
                    stop.child_token(),
                )
                .await;
                tracing::info!(peer = %addr, %error, "session ended");
            }
            Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "connect failed"),
            Err(_) => tracing::debug!(peer = %addr, "connect timed out"),
        }
        if stop.is_cancelled() {
            break;
        }
        core.lock().set_state(id, ConnectionState::Retry);
        core.notify();
        let delay = core.config.retry_delay();
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    core.lock().set_state(id, ConnectionState::Closed);
    core.notify();
}

async fn dial(addr: &str, local: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(addr).await;
    };
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{addr} resolves to no address"),
    );
    for target in tokio::net::lookup_host(addr).await? {
        if target.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(target).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}
