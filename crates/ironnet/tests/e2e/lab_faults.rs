//! Faults in the hypervisor lab: `kill -9` of a node agent during a TCP transfer, of a dataplane, and of one of
//! the two route reflectors; then deleting every tenant object empties every dataplane and metalbond.
//!
//! The lab restarts a process that exits (as a node's init system would); these tests check what survives and
//! how the system recovers, through the dataplanes' List RPCs and a metalbond client of their own.

use std::process::Command;
use std::time::{Duration, Instant};

use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use ironnet_dpservice::proto::{self};
use ironnet_metalbond::MetalBond;

use crate::common::ServingProcess;

/// Runs a bash snippet with kubectl and `ironnet` on the PATH against the lab; panics with its output on failure.
fn sh(up: &ServingProcess, script: &str) -> String {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_ironnet"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["300", "bash", "-c"])
        .arg(format!("set -euo pipefail\n{script}"))
        .env("KUBECONFIG", up.kubeconfig())
        .env("HOME", up.dir())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n--- stdout\n{}\n--- stderr\n{}\n--- lab\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        up.log(),
        up.lab_logs()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (up to `secs`) until `ping` from `from` to `to` is answered; returns how long it took.
fn ping_within(from: &str, to: &str, secs: u64) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let ok = Command::new("ip")
            .args(["netns", "exec", from, "ping", "-c", "1", "-W", "1", to])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return start.elapsed();
        }
    }
    panic!("{from} never reached {to} within {secs} s");
}

/// The pid of the lab process whose command line contains every one of `parts`.
fn pid_of(parts: &[&str]) -> String {
    let out = Command::new("ps").args(["-eo", "pid,args"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no process with {parts:?}"))
        .to_owned()
}

/// The metalbond server addresses `ironnet up` printed.
fn metalbond_servers(up: &ServingProcess) -> Vec<String> {
    let log = up.log();
    let line = log
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("metalbond servers: "))
        .unwrap_or_else(|| panic!("metalbond servers in the lab summary:\n{log}"));
    line.split(", ").map(str::to_owned).collect()
}

/// The dpservice gRPC address of hypervisor `name` as `ironnet up` printed it.
fn dataplane_of(up: &ServingProcess, name: &str) -> String {
    let log = up.log();
    let line = log
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}: dpservice gRPC")))
        .unwrap_or_else(|| panic!("{name} in the lab summary:\n{log}"));
    format!("http://{}", line.rsplit(' ').next().unwrap())
}

/// `(interface id, underlay)` of every interface of a dataplane.
async fn interfaces(address: &str) -> Vec<(String, String)> {
    let mut dp = DpdKironcoreClient::connect(address.to_owned()).await.unwrap();
    let list = dp
        .list_interfaces(proto::ListInterfacesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut out: Vec<(String, String)> = list
        .interfaces
        .iter()
        .map(|i| {
            (
                String::from_utf8_lossy(&i.id).into_owned(),
                String::from_utf8_lossy(&i.underlay_route).into_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits until `up`'s log says `process` was restarted `n` times.
fn wait_restarted(up: &ServingProcess, process: &str, n: u32) {
    let want = format!("{process} exited (signal: 9 (SIGKILL)); restarted (restart {n} of");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up.log().contains(&want) {
        assert!(
            Instant::now() < deadline,
            "{process} was not restarted:\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_lab_survives_killed_agents_dataplanes_and_route_reflectors() {
    let prefix = format!("f{:x}", std::process::id() % 0xf_ffff);
    let up = ServingProcess::start_lab(&["--hypervisors", "2", "--lab-prefix", &prefix]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (hv1, hv2) = (dataplane_of(&up, "hv-1"), dataplane_of(&up, "hv-2"));
    let (a, b, c) = (format!("{prefix}a"), format!("{prefix}b"), format!("{prefix}c"));
    sh(
        &up,
        &format!(
            r#"
kubectl apply -f - <<'YAML'
apiVersion: networking.ironcore.dev/v1alpha1
kind: Network
metadata: {{name: tenant}}
spec: {{}}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {{name: a}}
spec: {{networkRef: {{name: tenant}}, ipFamilies: [IPv4], ips: [{{value: 10.0.0.1}}]}}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {{name: b}}
spec: {{networkRef: {{name: tenant}}, ipFamilies: [IPv4], ips: [{{value: 10.0.0.2}}]}}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {{name: c}}
spec: {{networkRef: {{name: tenant}}, ipFamilies: [IPv4], ips: [{{value: 10.0.0.3}}]}}
YAML
kubectl wait network/tenant --for=jsonpath='{{.status.state}}'=Available
ironnet vm create {a} --node hv-1 --nic a
ironnet vm create {b} --node hv-2 --nic b
"#
        ),
    );
    ping_within(&a, "10.0.0.2", 30);

    // kill -9 of metalnet on hv-1 during a TCP transfer from hv-1 to hv-2: the transfer goes on, and the
    // restarted metalnet adopts the dataplane's state instead of re-creating it (same interface, same underlay).
    let before = rt.block_on(interfaces(&hv1));
    let mut server = Command::new("ip")
        .args(["netns", "exec", &b, "iperf3", "-s", "-1", "-B", "10.0.0.2"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ping_within(&a, "10.0.0.2", 5);
    let client = Command::new("ip")
        .args([
            "netns", "exec", &a, "iperf3", "-c", "10.0.0.2", "-t", "6", "-f", "m",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let kubeconfig = up.kubeconfig().display().to_string();
    let metalnet = pid_of(&["metalnet", &kubeconfig, "--node-name hv-1"]);
    assert!(
        Command::new("kill")
            .args(["-9", &metalnet])
            .status()
            .unwrap()
            .success()
    );
    let out = client.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("receiver"),
        "the transfer survived: {report}"
    );
    wait_restarted(&up, "metalnet-hv-1", 1);
    // The restarted metalnet works (a new interface on hv-1 becomes reachable) ...
    sh(&up, &format!("ironnet vm create {c} --node hv-1 --nic c"));
    ping_within(&b, "10.0.0.3", 30);
    // ... and left what was right alone.
    let after = rt.block_on(interfaces(&hv1));
    for i in &before {
        assert!(
            after.contains(i),
            "{i:?} kept across the metalnet restart: {before:?} → {after:?}"
        );
    }
    assert_eq!(after.len(), before.len() + 1, "{after:?}");

    // kill -9 of dpservice on hv-2: the lab restarts it, metalnet re-programs it, b is reachable again.
    let dpservice = pid_of(&["dpservice", "--ipv6 fd00:ee:2::1", &format!("{prefix}2p")]);
    let start = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-9", &dpservice])
            .status()
            .unwrap()
            .success()
    );
    wait_restarted(&up, "dpservice-2", 1);
    ping_within(&a, "10.0.0.2", 60);
    eprintln!(
        "connectivity back {:?} after kill -9 of hv-2's dpservice",
        start.elapsed()
    );
    assert_eq!(
        rt.block_on(interfaces(&hv2)).len(),
        1,
        "b re-created on the new dataplane"
    );

    // kill -9 of one metalbond server: no route is lost, and new routes still flow through the other.
    // This lab's first server (by its address: the tests run in parallel, and another lab's must live on).
    let listen = format!("metalbond server --listen {}", metalbond_servers(&up)[0]);
    let metalbond = pid_of(&[&listen, "--keepalive 3"]);
    assert!(
        Command::new("kill")
            .args(["-9", &metalbond])
            .status()
            .unwrap()
            .success()
    );
    ping_within(&a, "10.0.0.2", 5);
    ping_within(&b, "10.0.0.3", 5);

    // Deleting every tenant object leaves every dataplane empty and no route in metalbond.
    let vni: ironnet_metalbond::Vni = sh(
        &up,
        "kubectl get networks.core.apinet.ironcore.dev -n apinet-system \
         \"$(kubectl get network tenant -o jsonpath='{.metadata.uid}')\" -o jsonpath='{.spec.id}'",
    )
    .trim()
    .parse()
    .unwrap();
    sh(
        &up,
        &format!(
            "for vm in {a} {b} {c}; do ironnet vm delete $vm; done
kubectl delete networkinterface a b c
kubectl delete network tenant --wait"
        ),
    );
    let servers = metalbond_servers(&up);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (i1, i2) = (interfaces(&hv1).await, interfaces(&hv2).await);
            if i1.is_empty() && i2.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "interfaces left: {i1:?} {i2:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mb = MetalBond::new(ironnet_metalbond::Config::default()).unwrap();
        for s in &servers {
            mb.add_peer(s).unwrap();
        }
        mb.subscribe(vni).unwrap();
        // The live server answers; the killed one was restarted empty and is told again by every client.
        let deadline = Instant::now() + Duration::from_secs(10);
        while mb
            .peers()
            .iter()
            .all(|(_, s)| *s != ironnet_metalbond::ConnectionState::Established)
        {
            assert!(Instant::now() < deadline, "no metalbond server answers");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Routes of the VNI would arrive right after ESTABLISHED; give the replay a moment by waiting for a
        // keepalive round on every peer, then require none.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            mb.routes_in(vni).is_empty(),
            "routes left in VNI {vni}: {:?}",
            mb.routes_in(vni)
        );
        mb.shutdown();
    });
}

/// Changing an interface's VirtualIP, NAT, prefixes and the policy rules that target it is applied in place: an
/// established TCP connection between two hypervisors carries on throughout, and the dataplane keeps the same
/// interface (same ID and underlay).
#[test]
fn interface_updates_are_applied_in_place_under_an_established_connection() {
    let prefix = format!("u{:x}", std::process::id() % 0xf_ffff);
    let up = ServingProcess::start_lab(&["--hypervisors", "2", "--lab-prefix", &prefix]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hv1 = dataplane_of(&up, "hv-1");
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    sh(
        &up,
        &format!(
            r#"
kubectl apply -f - <<'YAML'
apiVersion: networking.ironcore.dev/v1alpha1
kind: Network
metadata: {{name: tenant}}
spec: {{}}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {{name: a, labels: {{app: client}}}}
spec: {{networkRef: {{name: tenant}}, ipFamilies: [IPv4], ips: [{{value: 10.0.0.1}}]}}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {{name: b, labels: {{app: server}}}}
spec: {{networkRef: {{name: tenant}}, ipFamilies: [IPv4], ips: [{{value: 10.0.0.2}}]}}
YAML
kubectl wait network/tenant --for=jsonpath='{{.status.state}}'=Available
ironnet vm create {a} --node hv-1 --nic a
ironnet vm create {b} --node hv-2 --nic b
"#
        ),
    );
    ping_within(&a, "10.0.0.2", 30);
    let before = rt.block_on(interfaces(&hv1));

    // An echo server in b; a client in a that sends a line every 100 ms over one connection for 15 s and fails on
    // the first line not echoed within 2 s.
    let mut server = Command::new("ip")
        .args(["netns", "exec", &b, "python3", "-c"])
        .arg(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('10.0.0.2',7000))\ns.listen(1)\nc,_=s.accept()\nwhile True:\n    d=c.recv(4096)\n    \
             if not d: break\n    c.sendall(d)\n",
        )
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = loop {
        let child = Command::new("ip")
            .args(["netns", "exec", &a, "python3", "-c"])
            .arg(
                "import socket,time\nc=socket.create_connection(('10.0.0.2',7000),timeout=2)\nend=time.time()+15\n\
                 n=0\nwhile time.time()<end:\n    c.sendall(b'x%d\\n'%n)\n    d=b''\n    \
                 while not d.endswith(b'\\n'): d+=c.recv(100)\n    n+=1\n    time.sleep(0.1)\nprint(n)\n",
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The server may not listen yet: a refused connection fails within a moment, a working one runs on.
        std::thread::sleep(Duration::from_millis(500));
        let mut child = child;
        match child.try_wait().unwrap() {
            None => break child,
            Some(_) => assert!(Instant::now() < deadline, "the client never connected"),
        }
    };

    sh(
        &up,
        r#"
kubectl apply -f - <<'YAML'
apiVersion: networking.ironcore.dev/v1alpha1
kind: VirtualIP
metadata: {name: vip}
spec: {type: Public, ipFamily: IPv4}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NATGateway
metadata: {name: outbound}
spec: {type: Public, ipFamily: IPv4, portsPerNetworkInterface: 1024, networkRef: {name: tenant}}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkPolicy
metadata: {name: server-from-client}
spec:
  networkRef: {name: tenant}
  networkInterfaceSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{objectSelector: {kind: NetworkInterface, matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 7000}]
YAML
kubectl wait virtualip/vip --for=jsonpath='{.status.ip}'
kubectl patch networkinterface a --type merge -p '{"spec":{"virtualIP":{"virtualIPRef":{"name":"vip"}},"prefixes":[{"value":"10.1.0.0/24"}]}}'
VIP=$(kubectl get virtualip vip -o jsonpath='{.status.ip}')
for _ in $(seq 120); do
  [ "$(kubectl get networkinterface a -o jsonpath='{.status.virtualIP} {.status.prefixes[0]}')" = "$VIP 10.1.0.0/24" ] && break
  sleep 0.25
done
test "$(kubectl get networkinterface a -o jsonpath='{.status.virtualIP} {.status.prefixes[0]}')" = "$VIP 10.1.0.0/24"
for _ in $(seq 120); do
  [ -n "$(kubectl get networkinterfaces.networking.metalnet.ironcore.dev -o jsonpath='{.items[*].spec.firewallRules}')" ] && break
  sleep 0.25
done
test -n "$(kubectl get networkinterfaces.networking.metalnet.ironcore.dev -o jsonpath='{.items[*].spec.firewallRules}')"
"#,
    );
    let out = client.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "the connection carried on through the updates: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The interface is the same one: same ID and underlay.
    let after = rt.block_on(interfaces(&hv1));
    assert_eq!(after, before, "interface a kept in place");
}
