//! The packet worker: one thread that owns the [`Dataplane`] and the ports (TAPs and vhost-user
//! sockets).
//!
//! It polls the TAP fds, the vhost-user sockets and kick eventfds and a wake-up eventfd, drains
//! the readable ports into a [`Batch`]
//! (cutting a VM's TCP super-frames into segments, see [`crate::offload`]), runs
//! [`Dataplane::process`] once per batch, writes the frames the pipeline emits (merging TCP
//! segments for a VM port into super-frames again), calls [`Dataplane::tick`]
//! periodically, and runs control commands sent by the gRPC tasks and vhost-user protocol
//! messages. Both run between batches,
//! so a control change is atomic with respect to packet processing, and the per-packet path takes
//! no lock. Dropping the worker (after [`WorkerHandle::shutdown`]) closes the TAP fds, which
//! removes the TAP netdevs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironnet_dataplane::{Batch, Dataplane, PortId};

use crate::offload::{self, Coalescer, VNET_HDR_LEN, VnetHdr};
use crate::port::Port;
use crate::vhost_user::PollRole;

/// Frames per batch (a VM's TCP super-frame counts as its segments): large enough to amortise
/// the per-batch work and to hold several ~45-segment bursts, so that the coalescer in front of
/// a VM port sees whole bursts; small enough that control commands wait at most one batch
/// (well under a millisecond).
pub const BATCH_SIZE: usize = 256;
/// How often [`Dataplane::tick`] runs (flow aging, ARP probes, RAs).
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Largest read from a TAP: a vnet header and a 64 KiB TCP super-frame from a VM port (with an
/// Ethernet header and a VLAN tag), or a jumbo frame from an uplink.
const RX_BUF: usize = VNET_HDR_LEN + 65536 + 64;

/// Why the worker could not be started or a command could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The eventfd could not be created or the thread could not be spawned.
    #[error("starting the worker: {0}")]
    Start(#[source] io::Error),
    /// The worker has stopped; the command was not executed.
    #[error("the worker has stopped")]
    Stopped,
    /// The worker did not run the command within the time allowed.
    #[error("the worker did not answer within {0:?}")]
    Timeout(Duration),
}

/// What a control command gets: the dataplane and the ports, indexed by [`PortId`].
#[derive(Debug)]
pub struct WorkerState {
    /// The dataplane.
    pub dataplane: Dataplane,
    /// Each port, at index `PortId.0`.
    pub ports: Vec<Port>,
}

type Command = Box<dyn FnOnce(&mut WorkerState) + Send>;

/// A wake-up counter the worker polls next to the TAP fds.
#[derive(Debug)]
struct EventFd(OwnedFd);

impl EventFd {
    fn new() -> io::Result<Self> {
        // SAFETY: eventfd() has no memory-safety preconditions; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created, valid descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local u64, as eventfd requires. A failure (counter
        // saturated) still leaves the fd readable, which is all the worker needs.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live local u64; EAGAIN when not signalled is fine.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut v).cast(), 8) };
    }
}

/// Sends commands to the worker and stops it. Cloneable through [`WorkerHandle::sender`].
#[derive(Debug)]
pub struct WorkerHandle {
    sender: CommandSender,
    thread: Option<JoinHandle<()>>,
}

/// The sending half of the command channel; cheap to clone, usable from async tasks.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: mpsc::Sender<Command>,
    wake: std::sync::Arc<EventFd>,
    running: std::sync::Arc<AtomicBool>,
}

impl CommandSender {
    /// Runs `f` on the worker thread between two batches and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, WorkerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WorkerState) -> R + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let cmd: Command = Box::new(move |state| {
            // The caller may have gone away (cancelled RPC); the command has run regardless.
            let _ = reply_tx.send(f(state));
        });
        self.tx.send(cmd).map_err(|_| WorkerError::Stopped)?;
        self.wake.signal();
        reply_rx.await.map_err(|_| WorkerError::Stopped)
    }

    /// Runs `f` on the worker thread between two batches and waits for its result, blocking the calling thread
    /// for at most `timeout`. For synchronous callers such as a metrics collector: the worker wakes up for the
    /// command at once, so the wait is at most one batch (well under a millisecond) unless the worker is stuck.
    pub fn call_blocking<R, F>(&self, f: F, timeout: Duration) -> Result<R, WorkerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WorkerState) -> R + Send + 'static,
    {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let cmd: Command = Box::new(move |state| {
            let _ = reply_tx.send(f(state));
        });
        self.tx.send(cmd).map_err(|_| WorkerError::Stopped)?;
        self.wake.signal();
        reply_rx.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => WorkerError::Timeout(timeout),
            mpsc::RecvTimeoutError::Disconnected => WorkerError::Stopped,
        })
    }

    /// Whether the worker thread is still forwarding (it stops on shutdown or when polling its ports fails).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

impl WorkerHandle {
    /// Starts the worker thread with the given dataplane and ports (`ports[i]` is
    /// `PortId(i)`, as registered with [`Dataplane::add_port`]).
    pub fn spawn(dataplane: Dataplane, ports: Vec<Port>) -> Result<Self, WorkerError> {
        let wake = std::sync::Arc::new(EventFd::new().map_err(WorkerError::Start)?);
        let (tx, rx) = mpsc::channel();
        let running = std::sync::Arc::new(AtomicBool::new(true));
        let worker = Worker {
            state: WorkerState { dataplane, ports },
            commands: rx,
            wake: wake.clone(),
            start: Instant::now(),
        };
        let flag = running.clone();
        let thread = std::thread::Builder::new()
            .name("dp-worker".into())
            .spawn(move || {
                // Cleared however the loop ends (also on a panic), so readiness reflects a dead worker.
                struct Stopped(std::sync::Arc<AtomicBool>);
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        self.0.store(false, Ordering::Release);
                    }
                }
                let _stopped = Stopped(flag);
                worker.run()
            })
            .map_err(WorkerError::Start)?;
        Ok(WorkerHandle {
            sender: CommandSender { tx, wake, running },
            thread: Some(thread),
        })
    }

    /// A sender for control commands.
    pub fn sender(&self) -> CommandSender {
        self.sender.clone()
    }

    /// Stops the worker after the current batch and waits for it; the TAP devices are removed
    /// when the thread drops them. Idempotent.
    pub fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        // An empty channel message is not possible, so stop is a command that flags the loop.
        let (tx, wake) = (&self.sender.tx, &self.sender.wake);
        let _ = tx.send(Box::new(|state: &mut WorkerState| state.ports.clear()));
        wake.signal();
        if thread.join().is_err() {
            tracing::error!("dataplane worker panicked");
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    state: WorkerState,
    commands: mpsc::Receiver<Command>,
    wake: std::sync::Arc<EventFd>,
    start: Instant,
}

impl Worker {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs commands until none is queued. Returns false when the worker must stop: the handle
    /// is gone, or the shutdown command cleared the ports.
    fn run_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => {
                    cmd(&mut self.state);
                    if self.state.ports.is_empty() {
                        return false;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn transmit(ports: &mut [Port], port: PortId, frame: &[u8]) {
        match ports.get_mut(port.index()) {
            Some(Port::Tap(tap)) => report(tap, tap.send(frame)),
            Some(Port::VhostUser(v)) => {
                v.send_plain(frame);
                v.flush();
            }
            None => {}
        }
    }

    /// Sends the frames the pipeline emitted, in batch order per port. Frames for a VM port go
    /// through the coalescer (if the VM takes large frames): consecutive segments of one TCP
    /// flow leave as one super-frame. vhost-user guests get one interrupt per batch at most.
    fn transmit_batch(ports: &mut [Port], batch: &Batch, gro: &mut Coalescer) {
        let mut gro_port: Option<usize> = None;
        for (port, frame) in batch.transmits() {
            let i = port.index();
            let large = match ports.get(i) {
                None => continue,
                Some(Port::Tap(tap)) => tap.vnet(),
                Some(Port::VhostUser(v)) => v.takes_large_frames(),
            };
            if !large {
                match &mut ports[i] {
                    Port::Tap(tap) => report(tap, tap.send_raw(frame)),
                    Port::VhostUser(v) => {
                        v.send_plain(frame);
                    }
                }
                continue;
            }
            if gro_port == Some(i) && gro.push(frame) {
                continue;
            }
            if let Some(p) = gro_port.take() {
                send_coalesced(&mut ports[p], gro.flush());
            }
            if gro.push(frame) {
                gro_port = Some(i);
            } else {
                match &mut ports[i] {
                    Port::Tap(tap) => report(tap, tap.send(frame)),
                    Port::VhostUser(v) => {
                        v.send_plain(frame);
                    }
                }
            }
        }
        if let Some(p) = gro_port {
            send_coalesced(&mut ports[p], gro.flush());
        }
        for p in ports.iter_mut() {
            if let Port::VhostUser(v) = p {
                v.flush();
            }
        }
    }

    /// Reads one frame from port `i` into the batch: a VM port's super-frame becomes its
    /// segments. Returns false when the port had nothing queued (or failed).
    fn receive(port: &mut Port, i: usize, rx: &mut [u8], batch: &mut Batch) -> bool {
        // Truncation impossible: port `i` is the dataplane's `PortId(i)`, a `u16` given by `Dataplane::add_port`.
        #[allow(clippy::cast_possible_truncation)]
        let id = PortId(i as u16);
        let tap = match port {
            Port::Tap(tap) => tap,
            Port::VhostUser(v) => return v.receive(id, rx, batch),
        };
        let n = match tap.recv(rx) {
            Ok(Some(n)) => n,
            Ok(None) => return false,
            Err(e) => {
                tracing::trace!(port = tap.name(), error = %e, "receive failed");
                return false;
            }
        };
        let port = id;
        if !tap.vnet() {
            batch.push(port, &rx[..n]);
            return true;
        }
        let Some(hdr) = VnetHdr::parse(&rx[..n]) else {
            return true;
        };
        if let Err(e) = offload::segment(hdr, &mut rx[VNET_HDR_LEN..n], |seg| batch.push(port, seg)) {
            tracing::trace!(port = tap.name(), error = ?e, ?hdr, "offloaded frame dropped");
        }
        true
    }

    /// Waits until a port or the wake-up fd is readable or `timeout_ms` passes, and marks the
    /// readable ports in `ready`; vhost-user protocol messages are handled and kicks consumed
    /// here. Returns whether the wake-up fd was signalled, or `None` if poll failed.
    fn wait(&mut self, poll: &mut PollSet, ready: &mut [bool], timeout_ms: u64) -> Option<bool> {
        poll.fds.clear();
        poll.owners.clear();
        poll.fds.push(pollfd(self.wake.0.as_raw_fd()));
        for (i, port) in self.state.ports.iter().enumerate() {
            match port {
                Port::Tap(tap) => {
                    poll.fds.push(pollfd(tap.as_fd().as_raw_fd()));
                    poll.owners.push((i, None));
                }
                Port::VhostUser(v) => {
                    poll.scratch.clear();
                    v.poll_fds(&mut poll.scratch);
                    for &(fd, role) in &poll.scratch {
                        poll.fds.push(pollfd(fd));
                        poll.owners.push((i, Some(role)));
                    }
                }
            }
        }
        let timeout = libc::c_int::try_from(timeout_ms.min(1000)).unwrap_or(1000);
        // SAFETY: `fds` is a live, initialised array of `fds.len()` pollfd structs that poll
        // may write the `revents` of; the fds stay open for the call (owned by self).
        let rc = unsafe { libc::poll(poll.fds.as_mut_ptr(), poll.fds.len() as libc::nfds_t, timeout) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Some(false);
            }
            tracing::error!(error = %e, "poll failed; stopping the dataplane worker");
            return None;
        }
        ready.fill(false);
        for (fd, &(i, role)) in poll.fds[1..].iter().zip(&poll.owners) {
            if fd.revents == 0 {
                continue;
            }
            match (role, &mut self.state.ports[i]) {
                (Some(PollRole::Control), Port::VhostUser(v)) => {
                    v.on_control();
                    // The rings may have just started: look at them.
                    ready[i] = true;
                }
                (Some(PollRole::Kick), Port::VhostUser(v)) => {
                    v.drain_kick();
                    ready[i] = true;
                }
                _ => ready[i] = true,
            }
        }
        Some(poll.fds[0].revents != 0)
    }

    fn run(mut self) {
        let mut batch = Batch::with_capacity(BATCH_SIZE);
        let mut rx = vec![0u8; RX_BUF];
        let mut gro = Coalescer::new();
        let mut poll = PollSet::default();
        let mut ready: Vec<bool> = Vec::new();
        let mut next_tick = 0u64;
        let tick_ns = u64::try_from(TICK_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        let mut busy = false;
        loop {
            ready.resize(self.state.ports.len(), true);
            if busy {
                // The last batch filled up: read every port again without asking poll (a port
                // with nothing queued costs one EAGAIN read).
                ready.fill(true);
            } else {
                let timeout_ms = next_tick.saturating_sub(self.now()).div_ceil(1_000_000);
                match self.wait(&mut poll, &mut ready, timeout_ms) {
                    Some(true) => self.wake.drain(),
                    Some(false) => {}
                    None => return,
                }
            }
            if !self.run_commands() {
                return;
            }
            ready.resize(self.state.ports.len(), true);

            // Fill one batch, a frame per ready port in turn so that no port starves the
            // others; a port leaves the round when it has nothing more queued.
            batch.clear();
            let mut progress = true;
            while progress && batch.len() < BATCH_SIZE {
                progress = false;
                for (i, port) in self.state.ports.iter_mut().enumerate() {
                    if batch.len() >= BATCH_SIZE {
                        break;
                    }
                    if ready[i] {
                        ready[i] = Self::receive(port, i, &mut rx, &mut batch);
                        progress |= ready[i];
                    }
                }
            }
            busy = batch.len() >= BATCH_SIZE;
            let now = self.now();
            if !batch.is_empty() {
                self.state.dataplane.process(now, &mut batch);
                Self::transmit_batch(&mut self.state.ports, &batch, &mut gro);
            }
            if now >= next_tick {
                for (port, frame) in self.state.dataplane.tick(now) {
                    Self::transmit(&mut self.state.ports, port, &frame);
                }
                next_tick = now + tick_ns;
            }
        }
    }
}

/// The poll set of one wait, reused across waits: `fds[0]` is the wake-up fd, `fds[k + 1]`
/// belongs to port `owners[k].0` (with its role if it is a vhost-user port).
#[derive(Debug, Default)]
struct PollSet {
    fds: Vec<libc::pollfd>,
    owners: Vec<(usize, Option<PollRole>)>,
    scratch: Vec<(RawFd, PollRole)>,
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn send_coalesced(port: &mut Port, buf: &[u8]) {
    match port {
        Port::Tap(tap) => report(tap, tap.send_raw(buf)),
        Port::VhostUser(v) => {
            v.send_with_header(buf);
        }
    }
}

fn report(tap: &crate::tap::TapDevice, result: io::Result<bool>) {
    if let Err(e) = result {
        // EIO while the netdev is down: nothing is listening, the frame is lost like on a wire.
        tracing::trace!(port = tap.name(), error = %e, "transmit failed");
    }
}
