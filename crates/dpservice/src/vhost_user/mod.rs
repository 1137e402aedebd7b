//! vhost-user VM ports: the dataplane is the vhost-user backend of a guest's virtio-net device.
//!
//! The service listens on a Unix socket; QEMU connects (`-chardev socket,path=…` with
//! `-netdev vhost-user,chardev=…`), shares the guest's memory (memfd) and hands over the rings'
//! addresses and eventfds. From then on frames move through the rings in shared memory: the
//! worker copies a guest's transmit chains into its batch and writes frames for the guest
//! into its receive buffers directly, with no system call per frame; only interrupts (the call
//! eventfd, at most once per batch and only when the guest asked for one) and kicks (when the
//! worker went idle and re-enabled them) cost a system call.
//!
//! The protocol messages are parsed and answered by rust-vmm's `vhost` crate; the device state
//! is [`device::NetDevice`]; the ring operations are in [`rings`]. The worker thread owns the
//! port and handles protocol messages between batches, like gRPC control commands, so the rings
//! never change under a batch. When the frontend disconnects (QEMU exits or restarts), the
//! device is reset and the listener accepts the next connection.

pub mod device;
pub mod rings;

use std::cell::Cell;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ironnet_dataplane::{Batch, PortId};
use vhost::vhost_user::{BackendReqHandler, Listener};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_queue::QueueT;

use crate::offload::{self, VnetHdr};
use device::{NET_HDR_LEN, NetDevice, RX_QUEUE, TX_QUEUE};
use rings::{RxScratch, TxChain};

/// How long the worker waits for the rest of a protocol message once its first byte arrived;
/// a frontend that stalls longer is disconnected instead of stalling the dataplane.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(1);
/// Transmit chains read per call before the worker moves on to the next port.
const TX_BURST: usize = 32;

/// Why a vhost-user port could not be created.
#[derive(Debug, thiserror::Error)]
#[error("vhost-user socket {path}: {source}")]
pub struct VhostUserError {
    /// The socket path.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: vhost::vhost_user::Error,
}

/// Which of a port's fds became readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollRole {
    /// The listening socket (no frontend connected) or the frontend's connection.
    Control,
    /// The transmit queue's kick eventfd: the guest posted frames.
    Kick,
}

/// Frames and drops of one vhost-user port since it was created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames read from the guest's transmit queue into the pipeline (before segmentation).
    pub rx_frames: u64,
    /// Frames written into the guest's receive queue.
    pub tx_frames: u64,
    /// Frames for the guest dropped because it had posted no (large enough) buffers.
    pub tx_no_buffers: u64,
    /// Chains dropped as malformed (either direction) or frames refused by the offload checks.
    pub malformed: u64,
    /// Frontend connections accepted.
    pub connections: u64,
}

/// A VM port served over vhost-user. Owned by the worker thread.
pub struct VhostUserPort {
    path: PathBuf,
    name: String,
    listener: Listener,
    device: Arc<Mutex<NetDevice>>,
    conn: Option<BackendReqHandler<Mutex<NetDevice>>>,
    carrier: Cell<bool>,
    scratch: RxScratch,
    rx_used: bool,
    counters: PortCounters,
}

impl std::fmt::Debug for VhostUserPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserPort")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("connected", &self.conn.is_some())
            .field("carrier", &self.carrier.get())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Locks the device. Only the worker thread uses it (the protocol handler runs there too), so
/// the lock is never contended; a poisoned lock means a panic on that thread, after which the
/// device state is still consistent (if stale).
fn lock(device: &Mutex<NetDevice>) -> MutexGuard<'_, NetDevice> {
    device.lock().unwrap_or_else(|p| p.into_inner())
}

impl VhostUserPort {
    /// Listens on `path` (a stale socket file there is replaced). `name` is the port's name as
    /// reported to gRPC clients.
    pub fn create(path: &Path, name: &str) -> Result<Self, VhostUserError> {
        let err = |source| VhostUserError {
            path: path.to_owned(),
            source,
        };
        let listener = Listener::new(path, true).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(VhostUserPort {
            path: path.to_owned(),
            name: name.to_owned(),
            listener,
            device: Arc::new(Mutex::new(NetDevice::new())),
            conn: None,
            carrier: Cell::new(false),
            scratch: RxScratch::default(),
            rx_used: false,
            counters: PortCounters::default(),
        })
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a frontend is connected.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Frame and drop counters.
    pub fn counters(&self) -> PortCounters {
        self.counters
    }

    /// "Link up": while off (no interface bound to the port), frames from the guest are
    /// consumed and dropped and nothing is delivered to it, like a TAP without carrier.
    pub fn set_carrier(&self, on: bool) {
        self.carrier.set(on);
    }

    fn lock(&self) -> MutexGuard<'_, NetDevice> {
        lock(&self.device)
    }

    /// The fds the worker polls for this port.
    pub fn poll_fds(&self, out: &mut Vec<(RawFd, PollRole)>) {
        match &self.conn {
            None => out.push((self.listener.as_raw_fd(), PollRole::Control)),
            Some(conn) => {
                out.push((conn.as_raw_fd(), PollRole::Control));
                let dev = self.lock();
                let tx = &dev.vrings[TX_QUEUE];
                if let (true, Some(kick)) = (tx.active(), &tx.kick) {
                    out.push((kick.as_raw_fd(), PollRole::Kick));
                }
            }
        }
    }

    /// Consumes a kick (the worker reads the ring next).
    pub fn drain_kick(&self) {
        let dev = self.lock();
        if let Some(mut kick) = dev.vrings[TX_QUEUE].kick.as_ref() {
            let mut v = [0u8; 8];
            // EAGAIN (already drained) is fine.
            let _ = kick.read(&mut v);
        }
    }

    /// Handles what the control fd reported: accepts a frontend, or handles one protocol
    /// message from it. On disconnect or a protocol error the connection is dropped and the
    /// device reset, ready for the next frontend.
    pub fn on_control(&mut self) {
        let Some(conn) = &mut self.conn else {
            match self.listener.accept() {
                Ok(Some(stream)) => {
                    if let Err(e) = stream.set_read_timeout(Some(MESSAGE_TIMEOUT)) {
                        tracing::warn!(port = %self.name, error = %e, "vhost-user: cannot set a read timeout");
                    }
                    *self.lock() = NetDevice::new();
                    self.conn = Some(BackendReqHandler::from_stream(stream, self.device.clone()));
                    self.counters.connections += 1;
                    tracing::info!(port = %self.name, path = %self.path.display(), "vhost-user frontend connected");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(port = %self.name, error = %e, "vhost-user accept failed"),
            }
            return;
        };
        use vhost::vhost_user::Error as E;
        match conn.handle_request() {
            Ok(()) => {}
            // A request refused (an operation this device does not offer, a feature not
            // negotiated, bad parameters): the vhost crate has answered it if an answer was
            // due, and the device state is unchanged, so the connection stays usable.
            Err(
                e @ (E::InactiveFeature(_)
                | E::InactiveOperation(_)
                | E::InvalidParam
                | E::InvalidOperation(_)
                | E::ReqHandlerError(_)),
            ) => tracing::debug!(port = %self.name, error = %e, "vhost-user request refused"),
            Err(e) => {
                match e {
                    E::Disconnected | E::PartialMessage => {
                        tracing::info!(port = %self.name, "vhost-user frontend disconnected")
                    }
                    e => {
                        tracing::warn!(port = %self.name, error = %e, "vhost-user protocol error; disconnecting")
                    }
                }
                self.conn = None;
                *self.lock() = NetDevice::new();
            }
        }
    }

    /// Reads up to [`TX_BURST`] frames the guest transmitted into `batch` (cutting TCP
    /// super-frames into segments). Returns whether more may be queued: `false` only after the
    /// ring was found empty with guest kicks re-enabled, so the next frame kicks.
    pub fn receive(&mut self, port: PortId, buf: &mut [u8], batch: &mut Batch) -> bool {
        let carrier = self.carrier.get();
        let mut counters = self.counters;
        let mut guard = lock(&self.device);
        let dev = &mut *guard;
        let Some(mem) = dev.mem.as_ref() else {
            return false;
        };
        let vring = &mut dev.vrings[TX_QUEUE];
        if !vring.active() {
            return false;
        }
        let q = &mut vring.queue;
        // Without EVENT_IDX this sets VRING_USED_F_NO_NOTIFY; with it, not publishing a new
        // avail_event until the ring is empty has the same effect: no kicks while we read.
        let _ = q.disable_notification(mem);
        let mut more = true;
        let mut used = false;
        for _ in 0..TX_BURST {
            let Some(chain) = rings::pop_tx(q, mem, buf) else {
                // Empty: re-enable kicks; a frame posted meanwhile is read now, not lost.
                more = q.enable_notification(mem).unwrap_or(false);
                break;
            };
            used = true;
            let TxChain::Frame(len) = chain else {
                counters.malformed += 1;
                continue;
            };
            if !carrier {
                continue;
            }
            counters.rx_frames += 1;
            let Some(hdr) = VnetHdr::parse(&buf[..len]) else {
                continue;
            };
            if let Err(e) = offload::segment(hdr, &mut buf[NET_HDR_LEN..len], |seg| batch.push(port, seg)) {
                counters.malformed += 1;
                tracing::trace!(port = %self.name, error = ?e, ?hdr, "offloaded frame dropped");
            }
        }
        if used && q.needs_notification(mem).unwrap_or(true) {
            vring.signal();
        }
        drop(guard);
        self.counters = counters;
        more
    }

    /// Whether the guest takes TCP super-frames with a partial checksum (GUEST_TSO4/6 and
    /// GUEST_CSUM accepted), i.e. whether the coalescer may be used towards it.
    pub fn takes_large_frames(&self) -> bool {
        let dev = self.lock();
        dev.has_feature(VIRTIO_NET_F_GUEST_CSUM)
            && dev.has_feature(VIRTIO_NET_F_GUEST_TSO4)
            && dev.has_feature(VIRTIO_NET_F_GUEST_TSO6)
    }

    /// Writes one frame with vnet header `hdr` into the guest's receive queue. Returns whether
    /// it was delivered; without carrier, connection or buffers it is dropped.
    pub fn send(&mut self, hdr: &[u8; 10], frame: &[u8]) -> bool {
        if !self.carrier.get() {
            return false;
        }
        let mut dev = lock(&self.device);
        let dev = &mut *dev;
        let mergeable = dev.has_feature(VIRTIO_NET_F_MRG_RXBUF);
        let Some(mem) = dev.mem.as_ref() else {
            return false;
        };
        let vring = &mut dev.vrings[RX_QUEUE];
        if !vring.active() {
            return false;
        }
        let r = rings::push_rx(&mut vring.queue, mem, &mut self.scratch, mergeable, hdr, frame);
        match r {
            Ok(()) => {
                self.counters.tx_frames += 1;
                self.rx_used = true;
                true
            }
            Err(rings::RxError::NoBuffers) => {
                self.counters.tx_no_buffers += 1;
                false
            }
            Err(rings::RxError::BadChain) => {
                self.counters.malformed += 1;
                self.rx_used = true;
                false
            }
        }
    }

    /// Sends a plain frame (empty vnet header: the guest checks the checksums itself).
    pub fn send_plain(&mut self, frame: &[u8]) -> bool {
        self.send(&[0; 10], frame)
    }

    /// Sends a buffer the coalescer produced: a 10-byte vnet header followed by the frame.
    pub fn send_with_header(&mut self, buf: &[u8]) -> bool {
        let Some((hdr, frame)) = buf.split_first_chunk::<10>() else {
            return false;
        };
        self.send(hdr, frame)
    }

    /// Interrupts the guest if frames were delivered since the last call and the guest asked
    /// for an interrupt (event index / flags): at most one call per batch.
    pub fn flush(&mut self) {
        if !std::mem::take(&mut self.rx_used) {
            return;
        }
        let mut dev = lock(&self.device);
        let dev = &mut *dev;
        let Some(mem) = dev.mem.as_ref() else {
            return;
        };
        let vring = &mut dev.vrings[RX_QUEUE];
        if vring.queue.needs_notification(mem).unwrap_or(true) {
            vring.signal();
        }
    }
}
