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
//!
//! Multi-queue: a port offers `queues=N` queue pairs. Frames from every enabled transmit queue
//! enter the pipeline; a frame for the guest goes to one of the enabled receive queues chosen
//! by a hash of its flow (addresses, protocol, ports), so a connection's frames stay on one
//! queue and in order while the set of enabled queues does not change.

pub mod device;
pub mod rings;

use std::cell::Cell;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ironnet_dataplane::{Batch, PortId};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use vhost::vhost_user::{BackendReqHandler, Listener};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_queue::QueueT;

use crate::offload::{self, VnetHdr};
use device::{NET_HDR_LEN, NetDevice, rx_queue, tx_queue};
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
    /// A transmit queue's kick eventfd: the guest posted frames.
    Kick,
}

/// Frames and drops of one vhost-user port since it was created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames read from the guest's transmit queues into the pipeline (before segmentation).
    pub rx_frames: u64,
    /// Frames written into the guest's receive queues.
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
    queue_pairs: usize,
    scratch: RxScratch,
    /// Per queue pair: frames were delivered to its receive queue since the last flush.
    rx_used: Vec<bool>,
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
    /// Listens on `path` (a stale socket file there is replaced), offering `queue_pairs` queue
    /// pairs (at least one). `name` is the port's name as reported to gRPC clients.
    pub fn create(path: &Path, name: &str, queue_pairs: usize) -> Result<Self, VhostUserError> {
        let queue_pairs = queue_pairs.max(1);
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
            device: Arc::new(Mutex::new(NetDevice::new(queue_pairs))),
            conn: None,
            carrier: Cell::new(false),
            queue_pairs,
            scratch: RxScratch::default(),
            rx_used: vec![false; queue_pairs],
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
                for pair in 0..self.queue_pairs {
                    let tx = &dev.vrings[tx_queue(pair)];
                    if let (true, Some(kick)) = (tx.active(), &tx.kick) {
                        out.push((kick.as_raw_fd(), PollRole::Kick));
                    }
                }
            }
        }
    }

    /// Consumes the kicks pending on the transmit queues (the worker reads all rings next).
    pub fn drain_kick(&self) {
        let dev = self.lock();
        let kicks: Vec<&std::fs::File> = (0..self.queue_pairs)
            .filter_map(|pair| dev.vrings[tx_queue(pair)].kick.as_ref())
            .collect();
        let mut fds: Vec<PollFd<'_>> = kicks
            .iter()
            .map(|k| PollFd::new(k.as_fd(), PollFlags::POLLIN))
            .collect();
        // Only the kicks that are pending are read: a frontend may hand over a blocking
        // eventfd, and reading one with nothing pending would stall the worker.
        if nix::poll::poll(&mut fds, PollTimeout::ZERO).is_err() {
            return;
        }
        for (fd, mut kick) in fds.iter().zip(kicks.iter().copied()) {
            if fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
                let mut v = [0u8; 8];
                // EAGAIN (drained meanwhile) is fine.
                let _ = kick.read(&mut v);
            }
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
                    *self.lock() = NetDevice::new(self.queue_pairs);
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
                *self.lock() = NetDevice::new(self.queue_pairs);
            }
        }
    }

    /// Reads up to [`TX_BURST`] frames per enabled transmit queue the guest transmitted into
    /// `batch` (cutting TCP super-frames into segments). Returns whether more may be queued:
    /// `false` only after every ring was found empty with guest kicks re-enabled, so the next
    /// frame kicks.
    pub fn receive(&mut self, port: PortId, buf: &mut [u8], batch: &mut Batch) -> bool {
        let mut more = false;
        for pair in 0..self.queue_pairs {
            more |= self.receive_queue(tx_queue(pair), port, buf, batch);
        }
        more
    }

    /// [`Self::receive`] for the transmit queue at `index`.
    fn receive_queue(&mut self, index: usize, port: PortId, buf: &mut [u8], batch: &mut Batch) -> bool {
        let carrier = self.carrier.get();
        let mut counters = self.counters;
        let mut guard = lock(&self.device);
        let dev = &mut *guard;
        let Some(mem) = dev.mem.as_ref() else {
            return false;
        };
        let vring = &mut dev.vrings[index];
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

    /// Writes one frame with vnet header `hdr` into one of the guest's enabled receive queues,
    /// the one [`flow_hash`] picks. Returns whether it was delivered; without carrier,
    /// connection, an enabled receive queue or buffers it is dropped.
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
        let Some(pair) = pick_rx_pair(&dev.vrings, self.queue_pairs, frame) else {
            return false;
        };
        let vring = &mut dev.vrings[rx_queue(pair)];
        let r = rings::push_rx(&mut vring.queue, mem, &mut self.scratch, mergeable, hdr, frame);
        match r {
            Ok(()) => {
                self.counters.tx_frames += 1;
                self.rx_used[pair] = true;
                true
            }
            Err(rings::RxError::NoBuffers) => {
                self.counters.tx_no_buffers += 1;
                false
            }
            Err(rings::RxError::BadChain) => {
                self.counters.malformed += 1;
                self.rx_used[pair] = true;
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

    /// Interrupts the guest on each receive queue that got frames since the last call, if
    /// the guest asked for an interrupt there (event index / flags): at most one call per
    /// queue and batch.
    pub fn flush(&mut self) {
        if !self.rx_used.contains(&true) {
            return;
        }
        let mut dev = lock(&self.device);
        let dev = &mut *dev;
        for (pair, used) in self.rx_used.iter_mut().enumerate() {
            if !std::mem::take(used) {
                continue;
            }
            let Some(mem) = dev.mem.as_ref() else {
                continue;
            };
            let vring = &mut dev.vrings[rx_queue(pair)];
            if vring.queue.needs_notification(mem).unwrap_or(true) {
                vring.signal();
            }
        }
    }
}

/// The queue pair whose receive queue gets `frame`: among the pairs whose receive queue is
/// active (started and enabled), the one [`flow_hash`] selects; `None` when none is.
fn pick_rx_pair(vrings: &[device::Vring], queue_pairs: usize, frame: &[u8]) -> Option<usize> {
    let active = |pair: &usize| vrings[rx_queue(*pair)].active();
    let count = (0..queue_pairs).filter(active).count();
    if count == 0 {
        return None;
    }
    let nth = if count == 1 {
        0
    } else {
        usize::try_from(flow_hash(frame) % count as u64).unwrap_or(0)
    };
    (0..queue_pairs).filter(active).nth(nth)
}

/// A hash of `frame`'s flow: IPv4/IPv6 source and destination address, protocol, and for TCP,
/// UDP and SCTP (unfragmented) the ports; other frames hash their Ethernet type alone. Equal
/// for every frame of one flow in one direction, so they all land on one receive queue.
pub fn flow_hash(frame: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    let mix = |h: u64, bytes: &[u8]| {
        bytes
            .iter()
            .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
    };
    let Some(ethertype) = frame.get(12..14) else {
        return 0;
    };
    let h = mix(FNV_OFFSET, ethertype);
    let l3 = &frame[14..];
    let (h, proto, l4) = match ethertype {
        [0x08, 0x00] => {
            let Some(&vihl) = l3.first() else { return h };
            let ihl = usize::from(vihl & 0x0f) * 4;
            let (Some(addrs), Some(&proto), Some(frag)) = (l3.get(12..20), l3.get(9), l3.get(6..8)) else {
                return h;
            };
            // A fragment other than the first has no ports; the first one's ports would move it
            // to another queue than its fragments, so no fragment hashes ports.
            let fragmented = u16::from_be_bytes([frag[0], frag[1]]) & 0x3fff != 0;
            let l4 = if fragmented { None } else { l3.get(ihl..) };
            (mix(h, addrs), proto, l4)
        }
        [0x86, 0xdd] => {
            let (Some(addrs), Some(&next)) = (l3.get(8..40), l3.get(6)) else {
                return h;
            };
            (mix(h, addrs), next, l3.get(40..))
        }
        _ => return h,
    };
    let h = mix(h, &[proto]);
    match (proto, l4.and_then(|l4| l4.get(0..4))) {
        // TCP, UDP, SCTP: source and destination port.
        (6 | 17 | 132, Some(ports)) => mix(h, ports),
        _ => h,
    }
}

#[cfg(test)]
mod flow_hash_tests {
    use super::flow_hash;

    /// An Ethernet + IPv4 + TCP/UDP frame from 10.0.0.`src` port `sport` with `payload`.
    fn ipv4(src: u8, proto: u8, sport: u16, dport: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, src, 10, 0, 0, 99]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn one_flow_hashes_alike_and_flows_spread() {
        let a = ipv4(1, 6, 40000, 80, 0, b"first segment");
        let b = ipv4(
            1,
            6,
            40000,
            80,
            0,
            b"second, longer segment of the same connection",
        );
        assert_eq!(flow_hash(&a), flow_hash(&b));
        assert_ne!(
            flow_hash(&a),
            flow_hash(&ipv4(1, 17, 40000, 80, 0, b"")),
            "protocol counts"
        );
        assert_ne!(
            flow_hash(&a),
            flow_hash(&ipv4(2, 6, 40000, 80, 0, b"")),
            "address counts"
        );
        // Over many source ports both of two queues get flows.
        let on_queue_1 = (0..64u16)
            .filter(|p| flow_hash(&ipv4(1, 6, 40000 + p, 80, 0, b"")) % 2 == 1)
            .count();
        assert!(
            (8..=56).contains(&on_queue_1),
            "{on_queue_1} of 64 flows on queue 1"
        );
        // Fragments hash without ports, so a datagram's fragments stay together.
        assert_eq!(
            flow_hash(&ipv4(1, 17, 1, 2, 0x2000, b"")),
            flow_hash(&ipv4(1, 17, 3, 4, 0x0010, b""))
        );
    }

    #[test]
    fn short_and_odd_frames_hash_without_panicking() {
        let full = ipv4(1, 6, 1, 2, 0, b"");
        for len in 0..full.len() {
            let _ = flow_hash(&full[..len]);
        }
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd]);
        v6.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        v6.extend_from_slice(&[0xfd; 32]);
        v6.extend_from_slice(&[0x1f, 0x90, 0x00, 0x35]);
        let mut other_port = v6.clone();
        other_port[55] = 0x36;
        assert_ne!(flow_hash(&v6), flow_hash(&other_port));
        assert_eq!(
            flow_hash(&v6[..20]),
            flow_hash(&v6[..30]),
            "truncated: ethertype only"
        );
    }
}
