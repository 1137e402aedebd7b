//! Real `ironnet` processes in temporary directories, for end-to-end tests with the real kubectl.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (README, examples).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts `ironnet ARGS…`, appending its output to `log`.
fn spawn(args: &[&str], log: &Path) -> Child {
    let out = OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ironnet"))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("ironnet binary starts")
}

/// SIGTERM (clean shutdown), then SIGKILL if the process is still there after 10 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A process serving an API (`ironnet up` or `ironnet apiserver`) with its data in a temporary directory.
pub struct ServingProcess {
    child: Child,
    dir: tempfile::TempDir,
}

impl ServingProcess {
    /// Starts `ironnet up --port 0 --data-dir DIR/data EXTRA…` with a lab (`--hypervisors`) and waits until the
    /// lab is up (the process says "Press Ctrl-C to stop.").
    pub fn start_lab(extra: &[&str]) -> ServingProcess {
        let up = ServingProcess::start("up", extra);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !up.log().contains("Press Ctrl-C to stop.") {
            assert!(
                Instant::now() < deadline,
                "the lab did not come up:\n{}\n{}",
                up.log(),
                up.lab_logs()
            );
            if up.log().contains("Error:") {
                panic!("the lab did not start:\n{}\n{}", up.log(), up.lab_logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        up
    }

    /// The logs of the lab's processes (`DIR/data/logs/*.log`), each under a heading.
    pub fn lab_logs(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("data/logs")) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // A process that failed prints its error and then (RUST_BACKTRACE is set) a backtrace longer than
            // the tail: its first error lines come first.
            let lines: Vec<&str> = text.lines().collect();
            if let Some(first) = lines
                .iter()
                .position(|l| l.starts_with("Error:") || l.contains("panicked at"))
            {
                out.push_str(&format!("--- {} (first error)\n", path.display()));
                for line in lines.iter().skip(first).take(12) {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            // The tail is what explains a failure; whole logs of every process would drown it.
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            out.push_str(&format!("--- {}\n", path.display()));
            for line in tail.iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Starts `ironnet SUBCOMMAND --port 0 --data-dir DIR/data EXTRA…` and waits until `/readyz` answers.
    pub fn start(subcommand: &str, extra: &[&str]) -> ServingProcess {
        let dir = tempfile::tempdir().unwrap();
        let args = Self::args(&dir, subcommand, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = spawn(&args, &dir.path().join("server.log"));
        let up = ServingProcess { child, dir };
        up.wait_ready(subcommand);
        up
    }

    fn args(dir: &tempfile::TempDir, subcommand: &str, extra: &[&str]) -> Vec<String> {
        let data = dir.path().join("data");
        let mut args: Vec<String> = [subcommand, "--port", "0", "--data-dir", data.to_str().unwrap()]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Stops the process (SIGTERM) and starts `ironnet SUBCOMMAND` again on the same data
    /// directory, waiting until it is ready.
    pub fn restart(&mut self, subcommand: &str, extra: &[&str]) {
        stop(&mut self.child);
        // The old kubeconfig names the old port; readiness is judged on the one the new process writes.
        let _ = std::fs::remove_file(self.kubeconfig());
        let args = Self::args(&self.dir, subcommand, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.child = spawn(&args, &self.dir.path().join("server.log"));
        self.wait_ready(subcommand);
    }

    fn wait_ready(&self, subcommand: &str) {
        let up = self;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if up.kubeconfig().exists() {
                let ready = Command::new("kubectl")
                    .args(["get", "--raw", "/readyz"])
                    .env("KUBECONFIG", up.kubeconfig())
                    .env("HOME", up.dir())
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "ironnet {subcommand} did not become ready:\n{}",
                up.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The temporary directory (data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin kubeconfig the process wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/kubeconfig")
    }

    /// What the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A kube-rs client for the served API.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for ServingProcess {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// `ironnet up` (API server, controllers, apinetlet and the simulated node in one process) on a free port.
pub fn ironnet_up() -> ServingProcess {
    ServingProcess::start("up", &[])
}

/// `ironnet apiserver` alone on a free port, allocating from the documentation prefixes; for tests that run the
/// controllers as separate processes.
pub fn ironnet_apiserver() -> ServingProcess {
    ServingProcess::start("apiserver", &["--public-prefix", "192.0.2.0/24,2001:db8::/64"])
}

/// `ironnet controller-manager` and `ironnet apinetlet` as processes that a test kills and restarts.
pub struct ControllerProcesses {
    kubeconfig: PathBuf,
    logs: PathBuf,
    controller_manager: Child,
    apinetlet: Child,
}

impl ControllerProcesses {
    /// Starts both against the API server of `kubeconfig`, logging into `dir`.
    pub fn start(kubeconfig: &Path, dir: &Path) -> ControllerProcesses {
        let logs = dir.to_owned();
        let kc = kubeconfig.to_str().unwrap().to_owned();
        ControllerProcesses {
            controller_manager: spawn(&["controller-manager", "--kubeconfig", &kc], &logs.join("cm.log")),
            apinetlet: spawn(&["apinetlet", "--kubeconfig", &kc], &logs.join("apinetlet.log")),
            kubeconfig: kubeconfig.to_owned(),
            logs,
        }
    }

    /// SIGKILLs the controller-manager (0), apinetlet (1) or both (2), and starts them again.
    pub fn kill_and_restart(&mut self, which: u32) {
        let kc = self.kubeconfig.to_str().unwrap().to_owned();
        if which != 1 {
            let _ = self.controller_manager.kill();
            let _ = self.controller_manager.wait();
            self.controller_manager = spawn(
                &["controller-manager", "--kubeconfig", &kc],
                &self.logs.join("cm.log"),
            );
        }
        if which != 0 {
            let _ = self.apinetlet.kill();
            let _ = self.apinetlet.wait();
            self.apinetlet = spawn(
                &["apinetlet", "--kubeconfig", &kc],
                &self.logs.join("apinetlet.log"),
            );
        }
    }

    /// The last lines both processes printed, for failure messages.
    pub fn logs(&self) -> String {
        let tail = |f: &str| {
            let text = std::fs::read_to_string(self.logs.join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- controller-manager\n{}\n--- apinetlet\n{}",
            tail("cm.log"),
            tail("apinetlet.log")
        )
    }
}

impl Drop for ControllerProcesses {
    fn drop(&mut self) {
        stop(&mut self.controller_manager);
        stop(&mut self.apinetlet);
    }
}
