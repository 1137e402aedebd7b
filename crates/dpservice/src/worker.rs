//! The packet worker: one thread that owns the [`Dataplane`] and the TAP ports.
//!
//! It polls the TAP fds and a wake-up eventfd, reads frames into a [`Batch`], runs
//! [`Dataplane::process`], writes the frames the pipeline emits, calls [`Dataplane::tick`]
//! periodically, and runs control commands sent by the gRPC tasks. Commands run between batches,
//! so a control change is atomic with respect to packet processing, and the per-packet path takes
//! no lock. Dropping the worker (after [`WorkerHandle::shutdown`]) closes the TAP fds, which
//! removes the TAP netdevs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironnet_dataplane::{Batch, Dataplane, PortId};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::tap::TapDevice;

/// Frames per batch: large enough to amortise the per-batch work, small enough that control
/// commands wait at most one batch.
pub const BATCH_SIZE: usize = 64;
/// How often [`Dataplane::tick`] runs (flow aging, ARP probes, RAs).
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Largest frame read from a TAP.
const MAX_FRAME: usize = 9216 + 64;

/// Why the worker could not be started or a command could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The eventfd could not be created or the thread could not be spawned.
    #[error("starting the worker: {0}")]
    Start(#[source] io::Error),
    /// The worker has stopped; the command was not executed.
    #[error("the worker has stopped")]
    Stopped,
}

/// What a control command gets: the dataplane and the ports, indexed by [`PortId`].
#[derive(Debug)]
pub struct WorkerState {
    /// The dataplane.
    pub dataplane: Dataplane,
    /// TAP device of each port, at index `PortId.0`.
    pub ports: Vec<TapDevice>,
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
}

impl WorkerHandle {
    /// Starts the worker thread with the given dataplane and ports (`ports[i]` is the TAP of
    /// `PortId(i)`, as registered with [`Dataplane::add_port`]).
    pub fn spawn(dataplane: Dataplane, ports: Vec<TapDevice>) -> Result<Self, WorkerError> {
        let wake = std::sync::Arc::new(EventFd::new().map_err(WorkerError::Start)?);
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            state: WorkerState { dataplane, ports },
            commands: rx,
            wake: wake.clone(),
            start: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("dp-worker".into())
            .spawn(move || worker.run())
            .map_err(WorkerError::Start)?;
        Ok(WorkerHandle {
            sender: CommandSender { tx, wake },
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

    fn transmit(ports: &[TapDevice], port: PortId, frame: &[u8]) {
        let Some(tap) = ports.get(port.index()) else {
            return;
        };
        if let Err(e) = tap.send(frame) {
            // EIO while the netdev is down: nothing is listening, the frame is lost like on a wire.
            tracing::trace!(port = tap.name(), error = %e, "transmit failed");
        }
    }

    fn run(mut self) {
        let mut batch = Batch::with_capacity(BATCH_SIZE);
        let mut buf = vec![0u8; MAX_FRAME];
        let mut next_tick = 0u64;
        let tick_ns = u64::try_from(TICK_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        let mut busy = false;
        loop {
            if !busy {
                let timeout_ms = next_tick.saturating_sub(self.now()).div_ceil(1_000_000);
                let timeout = PollTimeout::try_from(timeout_ms.min(1000)).unwrap_or(PollTimeout::MAX);
                let wake = self.wake.clone();
                let mut fds: Vec<PollFd<'_>> = std::iter::once(wake.0.as_fd())
                    .chain(self.state.ports.iter().map(|p| p.as_fd()))
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                    .collect();
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "poll failed; stopping the dataplane worker");
                        return;
                    }
                }
                drop(fds);
            }
            self.wake.drain();
            if !self.run_commands() {
                return;
            }

            // Fill one batch round-robin over the ports so that no port starves the others.
            batch.clear();
            let mut progress = true;
            while progress && batch.len() < BATCH_SIZE {
                progress = false;
                for (i, tap) in self.state.ports.iter().enumerate() {
                    if batch.len() >= BATCH_SIZE {
                        break;
                    }
                    match tap.recv(&mut buf) {
                        Ok(Some(n)) => {
                            batch.push(PortId(i as u16), &buf[..n]);
                            progress = true;
                        }
                        Ok(None) => {}
                        Err(e) => tracing::trace!(port = tap.name(), error = %e, "receive failed"),
                    }
                }
            }
            busy = batch.len() == BATCH_SIZE;
            let now = self.now();
            if !batch.is_empty() {
                self.state.dataplane.process(now, &mut batch);
                for (port, frame) in batch.transmits() {
                    Self::transmit(&self.state.ports, port, frame);
                }
            }
            if now >= next_tick {
                for (port, frame) in self.state.dataplane.tick(now) {
                    Self::transmit(&self.state.ports, port, &frame);
                }
                next_tick = now + tick_ns;
            }
        }
    }
}
