//! Test support for crates that need a real etcd: [`EtcdProcess`] runs Debian's `etcd` binary
//! on free loopback ports in a temporary directory.
//!
//! Compiled only with the `testing` cargo feature (off by default, so production binaries do not
//! carry a process spawner); test users enable it from their dev-dependencies:
//! `ironnet-store = { workspace = true, features = ["testing"] }`, then
//! `let etcd = ironnet_store::testing::EtcdProcess::start()?;`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why an etcd process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EtcdProcessError {
    /// The etcd binary is missing.
    #[error("etcd binary {0} not found (install Debian's etcd-server)")]
    BinaryMissing(PathBuf),
    /// An I/O error while preparing or spawning.
    #[error("cannot start etcd: {0}")]
    Io(#[from] std::io::Error),
    /// etcd did not become healthy in time.
    #[error("etcd did not become healthy within {timeout:?}; log tail:\n{log}")]
    NotHealthy {
        /// How long we waited.
        timeout: Duration,
        /// The end of etcd's log.
        log: String,
    },
}

/// A running single-member etcd, killed and deleted (data and log) on drop.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

/// Where Debian installs etcd.
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

impl EtcdProcess {
    /// Starts `/usr/bin/etcd` (or `$IRONNET_ETCD_BINARY`) and waits until `/health` reports
    /// healthy (at most 30 s). Retries with new ports if the picked ones were taken meanwhile.
    /// The process gets SIGKILL if the test process dies, so it never outlives the test.
    pub fn start() -> Result<Self, EtcdProcessError> {
        let binary =
            std::env::var_os("IRONNET_ETCD_BINARY").map_or_else(|| PathBuf::from(ETCD_BINARY), PathBuf::from);
        if !binary.exists() {
            return Err(EtcdProcessError::BinaryMissing(binary));
        }
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(&binary) {
                Ok(p) => return Ok(p),
                Err(e @ EtcdProcessError::NotHealthy { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EtcdProcessError::NotHealthy {
            timeout: Duration::ZERO,
            log: String::new(),
        }))
    }

    fn start_once(binary: &Path) -> Result<Self, EtcdProcessError> {
        let dir = tempfile::Builder::new().prefix("ironnet-etcd-").tempdir()?;
        let client = free_port()?;
        let peer = free_port()?;
        let client_url = format!("http://{client}");
        let peer_url = format!("http://{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let mut command = Command::new(binary);
        command
            .arg("--name")
            .arg("test")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args([
                "--initial-cluster",
                &format!("test={peer_url}"),
                "--initial-cluster-state",
                "new",
            ])
            // Idle watches get a server progress notification every second (default: 10 min).
            .args(["--experimental-watch-progress-notify-interval", "1s"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // which is async-signal-safe; it touches no memory shared with the parent.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command.spawn()?;
        let mut process = Self {
            child,
            endpoint: client_url,
            dir,
        };
        let timeout = Duration::from_secs(30);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if process.child.try_wait()?.is_some() {
                break;
            }
            if healthy(client) {
                return Ok(process);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(process.dir.path().join("etcd.log")).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        process.kill();
        Err(EtcdProcessError::NotHealthy { timeout, log: tail })
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The process id (for tests that want to stop or signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding etcd's data and `etcd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

/// Whether etcd's `/health` endpoint says healthy.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") && response.contains("\"health\":\"true\"")
}
