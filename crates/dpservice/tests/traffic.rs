//! Real traffic through the service: two dataplane instances ("hypervisors") joined by an IPv6
//! underlay through a router namespace, VMs in their own namespaces on the TAP ports, addresses
//! from the dataplane's DHCP server via a real `dhclient`, then ping and TCP between VMs on the
//! same and on different hypervisors, and VNI isolation checked with tcpdump.
//!
//! Needs root, iproute2, dhclient (isc-dhcp-client), ping, iperf3 and tcpdump. Every namespace
//! and device has a name unique to this test process; [`Topology`]'s Drop kills the processes
//! started inside the namespaces and deletes the namespaces even when an assertion fails. Traffic
//! only flows between namespaces this test created.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Topology, join_underlay, ping, run, start_host, tcp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_ping_tcp_same_and_cross_host_with_vni_isolation() {
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let mut topo = Topology::new();
    let mut a = start_host(&tag, 'a', "fc00:a::1").await;
    let mut b = start_host(&tag, 'b', "fc00:b::1").await;

    // Underlay: both uplinks into one router namespace that routes each host's /64 to it.
    let router = format!("ir{tag}r");
    join_underlay(&mut topo, &router, &[(&a, "fc00:a::/64"), (&b, "fc00:b::/64")]);

    // VMs: a0, a1 on host a and b0 on host b in VNI 100; a2 on host a in VNI 200.
    let ul_a0 = a.vm("a0", 100, "10.0.0.1", 0).await;
    let _ul_a1 = a.vm("a1", 100, "10.0.0.2", 1).await;
    let _ul_a2 = a.vm("a2", 200, "10.0.0.9", 2).await;
    let ul_b0 = b.vm("b0", 100, "10.0.0.3", 0).await;
    a.route(100, "10.0.0.3", 32, &ul_b0).await;
    b.route(100, "10.0.0.1", 32, &ul_a0).await;

    let ns = |h: char, i: usize| format!("iv{tag}{h}{i}");
    let vms = [
        ('a', 0, &a.vfs[0], "10.0.0.1"),
        ('a', 1, &a.vfs[1], "10.0.0.2"),
        ('a', 2, &a.vfs[2], "10.0.0.9"),
        ('b', 0, &b.vfs[0], "10.0.0.3"),
    ];
    for (h, i, vf, ip) in vms {
        let name = ns(h, i);
        topo.add_ns(&name);
        topo.move_link(&vf.tap, &name);
        assert_eq!(
            topo.dhcp(&name, &vf.tap),
            ip,
            "DHCP hands out the interface's address"
        );
    }

    // Same host, same VNI.
    assert!(ping(&ns('a', 0), "10.0.0.2"), "a0 -> a1 (same host)");
    tcp(&ns('a', 1), "10.0.0.2", &ns('a', 0));
    // Cross host, same VNI: a0 (10.0.0.1) <-> b0 (10.0.0.3) over the IPv6 underlay.
    assert!(ping(&ns('a', 0), "10.0.0.3"), "a0 -> b0 (cross host)");
    tcp(&ns('b', 0), "10.0.0.3", &ns('a', 0));

    // VNI isolation: a2 (VNI 200) has no route into VNI 100; a capture on a VNI-100 VM must see
    // nothing from it.
    let pcap = topo.dir.path().join("a0.pcap");
    let mut capture = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns('a', 0),
            "tcpdump",
            "-n",
            "-U",
            "-i",
            &a.vfs[0].tap,
            "-w",
        ])
        .arg(&pcap)
        .arg("icmp")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !ping(&ns('a', 2), "10.0.0.1"),
        "a2 (VNI 200) must not reach a0 (VNI 100)"
    );
    assert!(
        !ping(&ns('a', 2), "10.0.0.2"),
        "a2 (VNI 200) must not reach a1 (VNI 100)"
    );
    // The capture works: a0's own traffic shows up in it.
    assert!(ping(&ns('a', 0), "10.0.0.2"));
    std::thread::sleep(Duration::from_millis(300));
    let _ = capture.kill();
    let _ = capture.wait();
    let read = run(Command::new("tcpdump").args(["-n", "-r"]).arg(&pcap));
    let seen = String::from_utf8_lossy(&read.stdout);
    assert!(
        seen.contains("10.0.0.1 > 10.0.0.2"),
        "capture saw a0's own pings:\n{seen}"
    );
    assert!(
        !seen.contains("10.0.0.9"),
        "packets crossed from VNI 200 into VNI 100:\n{seen}"
    );

    drop(topo);
    a.service.shutdown().await;
    b.service.shutdown().await;
}
