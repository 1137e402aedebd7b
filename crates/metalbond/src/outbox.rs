//! The outgoing frame queue of one connection, bounded in bytes.
//!
//! The engine queues frames without waiting (it runs under a lock); the connection's writer drains the queue. A peer
//! that stops reading would otherwise make the queue grow without limit while its session is still alive (its
//! KEEPALIVEs keep arriving), so the queue is bounded: going over the limit ends that session (the overflow token
//! is cancelled), and the peer gets a full replay when it reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The sending side, held by the engine and the session driver.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    overflow: CancellationToken,
}

/// The receiving side, drained by the writer.
#[derive(Debug)]
pub(crate) struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue that holds at most `limit` bytes; `overflow` is cancelled when a frame would exceed it.
pub(crate) fn outbox(limit: usize, overflow: CancellationToken) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
            limit,
            overflow,
        },
        OutboxReceiver { rx, queued },
    )
}

impl Outbox {
    /// Queues one chunk of whole frames. Returns false (dropping it) when the connection is closing or the queue
    /// would exceed its limit; the latter also cancels the overflow token, which ends the session.
    pub fn send(&self, frames: Bytes) -> bool {
        if self.overflow.is_cancelled() {
            return false;
        }
        let len = frames.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > self.limit {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.overflow.cancel();
            return false;
        }
        self.tx.send(frames).is_ok()
    }
}

impl OutboxReceiver {
    /// Waits for at least one chunk and moves up to `max` queued chunks into `buf` (which must be empty); returns
    /// how many were moved, 0 when every sender is gone.
    pub async fn recv_many(&mut self, buf: &mut Vec<Bytes>, max: usize) -> usize {
        let n = self.rx.recv_many(buf, max).await;
        let bytes: usize = buf.iter().map(Bytes::len).sum();
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overflow_cancels_and_drops() {
        let token = CancellationToken::new();
        let (tx, mut rx) = outbox(10, token.clone());
        assert!(tx.send(Bytes::from_static(b"123456")));
        assert!(tx.send(Bytes::from_static(b"1234")));
        assert!(!token.is_cancelled());
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 8).await, 2);
        buf.clear();
        // Drained: room again.
        assert!(tx.send(Bytes::from_static(b"1234567890")));
        assert!(!tx.send(Bytes::from_static(b"x")));
        assert!(token.is_cancelled());
        // Once overflowed, nothing more is queued.
        assert_eq!(rx.recv_many(&mut buf, 8).await, 1);
        buf.clear();
        assert!(!tx.send(Bytes::from_static(b"y")));
    }
}
