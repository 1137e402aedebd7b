//! Batches of frames: the unit of work of [`crate::Dataplane::process`].
//!
//! A batch owns one buffer per slot and keeps them across [`Batch::clear`], so a steady-state packet loop does not
//! allocate. Every buffer has [`HEADROOM`] bytes in front of the frame so that encapsulation prepends headers
//! without moving the payload.

use crate::port::PortId;
use crate::stats::DropReason;

/// Bytes reserved in front of every frame for headers the pipeline prepends (outer IPv6 is 40 bytes).
pub const HEADROOM: usize = 128;
/// Largest frame a slot accepts (a jumbo frame plus slack).
pub const MAX_FRAME: usize = 9216 + 64;

/// What happens to a frame after processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not processed yet.
    Pending,
    /// Transmit the frame on this port.
    Tx(PortId),
    /// Dropped (and counted) for this reason.
    Drop(DropReason),
}

/// One frame with its ingress port and, after processing, its verdict.
#[derive(Debug, Clone)]
pub struct Packet {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    port: PortId,
    verdict: Verdict,
}

impl Packet {
    fn empty() -> Self {
        Packet {
            buf: vec![0; HEADROOM + 2048],
            start: HEADROOM,
            end: HEADROOM,
            port: PortId(0),
            verdict: Verdict::Pending,
        }
    }

    /// Replaces the content with `frame` received on `port` (truncated to [`MAX_FRAME`] bytes).
    pub fn fill(&mut self, port: PortId, frame: &[u8]) {
        let n = frame.len().min(MAX_FRAME);
        if self.buf.len() < HEADROOM + n {
            self.buf.resize(HEADROOM + n, 0);
        }
        self.buf[HEADROOM..HEADROOM + n].copy_from_slice(&frame[..n]);
        self.start = HEADROOM;
        self.end = HEADROOM + n;
        self.port = port;
        self.verdict = Verdict::Pending;
    }

    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The frame bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// The ingress port.
    #[inline]
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The verdict ([`Verdict::Pending`] until processed).
    #[inline]
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    #[inline]
    pub(crate) fn set_verdict(&mut self, v: Verdict) {
        self.verdict = v;
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Removes `n` bytes from the front. `n` must be ≤ `len()`.
    #[inline]
    pub(crate) fn pull_front(&mut self, n: usize) {
        self.start += n;
    }

    /// Adds `n` bytes in front (from the headroom). `n` must be ≤ the remaining headroom (callers add at most 40
    /// per pass, and a frame passes at most twice).
    #[inline]
    pub(crate) fn push_front(&mut self, n: usize) {
        self.start -= n;
    }

    /// Shortens the frame to `len` bytes (drops Ethernet padding). No-op if already shorter.
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
    }

    /// Replaces the frame by `len` bytes written by `write` (for host-service replies, whose size differs from the
    /// request). The buffer grows if needed; this is not on the forwarding fast path.
    pub(crate) fn rewrite(&mut self, len: usize, write: impl FnOnce(&mut [u8])) {
        if self.buf.len() < HEADROOM + len {
            self.buf.resize(HEADROOM + len, 0);
        }
        self.start = HEADROOM;
        self.end = HEADROOM + len;
        let out = &mut self.buf[HEADROOM..HEADROOM + len];
        out.fill(0);
        write(out);
    }
}

/// A reusable batch of frames.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    slots: Vec<Packet>,
    len: usize,
}

impl Batch {
    /// An empty batch with `capacity` preallocated slots.
    pub fn with_capacity(capacity: usize) -> Self {
        Batch {
            slots: (0..capacity).map(|_| Packet::empty()).collect(),
            len: 0,
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no frames.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes all frames, keeping the buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a copy of `frame` received on `port` (frames above [`MAX_FRAME`] bytes are truncated, and then
    /// dropped as malformed by the pipeline because their IP length no longer fits).
    pub fn push(&mut self, port: PortId, frame: &[u8]) {
        if self.len == self.slots.len() {
            self.slots.push(Packet::empty());
        }
        self.slots[self.len].fill(port, frame);
        self.len += 1;
    }

    /// The frames.
    pub fn packets(&self) -> &[Packet] {
        &self.slots[..self.len]
    }

    /// The frames, mutable.
    pub fn packets_mut(&mut self) -> &mut [Packet] {
        &mut self.slots[..self.len]
    }

    /// Frames to transmit, with their egress port, in batch order.
    pub fn transmits(&self) -> impl Iterator<Item = (PortId, &[u8])> + '_ {
        self.packets().iter().filter_map(|p| match p.verdict {
            Verdict::Tx(port) => Some((port, p.data())),
            _ => None,
        })
    }
}
