//! The hypervisor lab as the lab benchmarks drive it: `ironnet up --hypervisors N` as a child process in a
//! temporary directory, stopped (and its namespaces removed) when dropped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `ironnet up --hypervisors N`.
pub struct Lab {
    child: Child,
    dir: tempfile::TempDir,
    /// Where `ironnet up`'s output goes: `LAB_LOG`, or `up.log` in the temporary directory.
    log_path: PathBuf,
}

impl Lab {
    /// Starts `hypervisors` hypervisors with `ports` VM ports each under lab prefix `prefix`, and waits until the
    /// lab is up.
    pub fn start(hypervisors: usize, ports: usize, prefix: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        // `LAB_LOG=PATH` keeps the output after the run, `LAB_RUST_LOG=FILTER` sets its levels (both to see what
        // the controllers did, at a cost the figures then include).
        let log_path = std::env::var_os("LAB_LOG").map_or_else(|| dir.path().join("up.log"), PathBuf::from);
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ironnet"))
            .args([
                "up",
                "--port",
                "0",
                "--hypervisors",
                &hypervisors.to_string(),
                "--lab-prefix",
                prefix,
            ])
            .args(["--ports-per-hypervisor", &ports.to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            // To see who sends which request (user, verb, resource, subresource), at a cost the figures then
            // include.
            .args(
                std::env::var("LAB_AUDIT_LOG")
                    .map(|path| vec!["--audit-log-path".to_owned(), path])
                    .unwrap_or_default(),
            )
            .env(
                "RUST_LOG",
                std::env::var("LAB_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let lab = Lab { child, dir, log_path };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !lab.log().contains("Press Ctrl-C to stop.") {
            assert!(
                Instant::now() < deadline && !lab.log().contains("Error:"),
                "lab: {}",
                lab.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        lab
    }

    /// What `ironnet up` printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/kubeconfig")
    }

    /// A kube-rs client for the lab's API server.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// CPU seconds used so far by `ironnet up` itself (API server, controllers, metalnetlet) and by each of its
    /// child processes, by command (`dpservice`, `metalnet`, …) summed over processes, largest first.
    pub fn cpu_seconds(&self) -> Vec<(String, u64)> {
        let pid = self.child.id().to_string();
        let mut by_command: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for args in [["-p", pid.as_str()], ["--ppid", pid.as_str()]] {
            let Ok(out) = Command::new("ps")
                .args(args)
                .args(["-o", "cputimes=,args="])
                .output()
            else {
                continue;
            };
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let mut words = line.split_whitespace();
                let (Some(secs), Some(_exe), Some(command)) = (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let name = if args[0] == "-p" {
                    "up (API server, controllers, metalnetlet)"
                } else {
                    command
                };
                *by_command.entry(name.to_owned()).or_default() += secs.parse::<u64>().unwrap_or(0);
            }
        }
        let mut out: Vec<(String, u64)> = by_command.into_iter().collect();
        out.sort_by_key(|(_, secs)| std::cmp::Reverse(*secs));
        out
    }

    /// The dpservice gRPC address (`http://…`) of hypervisor `hv-i` as `ironnet up` printed it.
    pub fn dataplane(&self, i: usize) -> String {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("hv-{i}: dpservice gRPC")))
            .expect("lab summary");
        format!("http://{}", line.rsplit(' ').next().unwrap())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}
