//! The README's walkthrough with real hypervisors, run verbatim against `ironnet up --hypervisors 2`: real
//! dataplanes, node agents and route reflectors as processes, VMs as network namespaces with DHCP from their
//! hypervisor's dataplane, and real ping and TCP between them and to the lab's internet namespace.
//!
//! Needs root (network namespaces, TAP devices), as `scripts/test` runs it. Every namespace and process the lab
//! creates is removed when `ironnet up` stops, which the test checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{ServingProcess, repo_root};
use crate::walkthrough::script_between;

const BEGIN: &str = "<!-- hypervisors:begin -->";
const END: &str = "<!-- hypervisors:end -->";

/// A lab prefix unique to this test process, so that concurrent runs do not share namespaces or devices.
fn lab_prefix() -> String {
    format!("e{:x}", std::process::id() % 0xf_ffff)
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_script(script: &str, up: &ServingProcess, inet: &str, home: &Path) -> Output {
    let bin_dir: PathBuf = Path::new(env!("CARGO_BIN_EXE_ironnet"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("timeout")
        .args(["600", "bash", "-c"])
        .arg(format!("set -euo pipefail\nset -x\n{script}"))
        .current_dir(repo_root())
        .env("KUBECONFIG", up.kubeconfig())
        .env("HOME", home)
        .env("PATH", path)
        .env("INET", inet)
        .output()
        .expect("bash runs")
}

#[test]
fn readme_hypervisor_walkthrough_runs_against_two_real_hypervisors() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let script = script_between(&readme, BEGIN, END);
    assert!(
        script.contains("ironnet vm create"),
        "the walkthrough attaches VMs"
    );
    let prefix = lab_prefix();
    let up = ServingProcess::start_lab(&["--hypervisors", "2", "--lab-prefix", &prefix]);
    let inet = format!("{prefix}-internet");
    assert!(netns_list().contains(&inet), "the lab created {inet}");
    let home = up.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = run_script(&script, &up, &inet, &home);
    let logs = up.lab_logs();
    assert!(
        out.status.success(),
        "hypervisor walkthrough failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n--- ironnet up log\n{}\n{logs}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        up.log()
    );
    drop(up);
    // `ironnet up` removes the lab when it stops: no namespace of this lab is left.
    let deadline = Instant::now() + Duration::from_secs(20);
    while netns_list().contains(&prefix) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !netns_list().contains(&prefix),
        "lab namespaces left: {}",
        netns_list()
    );
}
