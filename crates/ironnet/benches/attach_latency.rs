//! Attach latency on real hypervisors: the time from `kubectl apply` of a tenant NetworkInterface, through the
//! machine provider stand-in (`ironnet vm create`: the ironcore-net interface on a node, the provider ID, the
//! TAP device reported by metalnet, DHCP in the VM), to the first ping answered from a VM on the *other*
//! hypervisor. Runs against `ironnet up --hypervisors 2` (needs root), interfaces alternating between the two.
//!
//! ```text
//! sudo cargo bench -p ironnet --bench attach_latency                     # 100 interfaces
//! ATTACH_INTERFACES=20 sudo cargo bench -p ironnet --bench attach_latency
//! ```
//!
//! Prints p50, p90, p99 and the maximum, and the same for the provider stand-in's share (apply → DHCP lease).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

mod lab;

use lab::Lab;

fn kubectl_apply(lab: &Lab, yaml: &str) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", lab.kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "kubectl apply {yaml}");
}

fn vm_create(lab: &Lab, name: &str, node: &str, nic: &str) {
    run(Command::new(env!("CARGO_BIN_EXE_ironnet"))
        .args(["vm", "create", name, "--node", node, "--nic", nic, "--kubeconfig"])
        .arg(lab.kubeconfig()));
}

fn nic_yaml(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata: {{name: {name}}}\n\
         spec: {{networkRef: {{name: tenant}}, ipFamilies: [IPv4], ips: [{{value: {ip}}}]}}\n"
    )
}

fn pings(from: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", from, "ping", "-c", "1", "-W", "0.2", to])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: n={} p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        v.len(),
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.9)),
        ms(percentile(&v, 0.99)),
        ms(*v.last().unwrap())
    );
}

fn main() {
    if !Path::new("/proc/self").exists()
        || std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) != 0
    {
        eprintln!("attach_latency needs root (network namespaces, TAP devices); skipped");
        return;
    }
    let n: usize = std::env::var("ATTACH_INTERFACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let lab = Lab::start(2, n / 2 + 2, "bat");
    kubectl_apply(
        &lab,
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Network\nmetadata: {name: tenant}\nspec: {}\n",
    );
    run(Command::new("kubectl")
        .args([
            "wait",
            "network/tenant",
            "--for=jsonpath={.status.state}=Available",
        ])
        .env("KUBECONFIG", lab.kubeconfig()));
    for (i, node) in [(1, "hv-1"), (2, "hv-2")] {
        kubectl_apply(&lab, &nic_yaml(&format!("probe-{i}"), &format!("10.255.0.{i}")));
        vm_create(&lab, &format!("bat-probe{i}"), node, &format!("probe-{i}"));
    }
    let (mut total, mut attach) = (Vec::new(), Vec::new());
    for i in 0..n {
        let node = if i % 2 == 0 { "hv-1" } else { "hv-2" };
        let probe = if i % 2 == 0 { "bat-probe2" } else { "bat-probe1" };
        let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
        let name = format!("nic-{i}");
        let start = Instant::now();
        kubectl_apply(&lab, &nic_yaml(&name, &ip));
        vm_create(&lab, &format!("bat-vm{i}"), node, &name);
        attach.push(start.elapsed());
        let deadline = start + Duration::from_secs(30);
        while !pings(probe, &ip) {
            assert!(Instant::now() < deadline, "{ip} never answered {probe}");
        }
        total.push(start.elapsed());
    }
    report("apply → first ping from the other hypervisor", total);
    report("apply → DHCP lease in the VM (provider stand-in)", attach);
}
