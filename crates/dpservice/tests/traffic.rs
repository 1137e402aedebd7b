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

use common::{
    Topology, in_ns, join_underlay, ok_status, ping, run, start_host, tcp, tcp_to, v4, wait_for_listener,
};
use ironnet_dpservice::proto::{self, IpVersion};

/// Gives interface `id` the LB prefix 10.20.0.1/32; returns its underlay (the LB target).
async fn lb_prefix(host: &mut common::Host, id: &str) -> String {
    let r = host
        .client
        .create_load_balancer_prefix(proto::CreateLoadBalancerPrefixRequest {
            interface_id: id.into(),
            prefix: Some(proto::Prefix {
                ip: Some(v4("10.20.0.1")),
                length: 32,
                underlay_route: vec![],
            }),
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(r.status);
    String::from_utf8(r.underlay_route).unwrap()
}

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
    let (a0_tx, b0_rx) = (
        link_stats(&ns('a', 0), &a.vfs[0].tap, "tx"),
        link_stats(&ns('b', 0), &b.vfs[0].tap, "rx"),
    );
    tcp(&ns('b', 0), "10.0.0.3", &ns('a', 0));
    // TSO offload towards the VM: a0's stack hands its TAP frames far above the 1500-byte MTU,
    // which the dataplane segments; GRO on the way out: b0 receives merged frames, too.
    let per_frame = |now: (u64, u64), before: (u64, u64)| (now.0 - before.0) / (now.1 - before.1);
    let a0_avg = per_frame(link_stats(&ns('a', 0), &a.vfs[0].tap, "tx"), a0_tx);
    let b0_avg = per_frame(link_stats(&ns('b', 0), &b.vfs[0].tap, "rx"), b0_rx);
    assert!(
        a0_avg > 3000,
        "a0 sends TSO super-frames: {a0_avg} bytes per frame"
    );
    assert!(
        b0_avg > 3000,
        "b0 receives coalesced frames: {b0_avg} bytes per frame"
    );

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
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on <dev>" once it captures; on a loaded machine that can take seconds.
    let stderr = capture.stderr.take().unwrap();
    let (listening_tx, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = listening_tx.send(());
            }
        }
    });
    listening
        .recv_timeout(Duration::from_secs(20))
        .expect("tcpdump did not start capturing within 20 s");
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
    // -U writes each packet as it is captured: read the file until a0's ping is in it (or give up).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let read = run(Command::new("tcpdump").args(["-n", "-r"]).arg(&pcap));
        let seen = String::from_utf8_lossy(&read.stdout).into_owned();
        if seen.contains("10.0.0.1 > 10.0.0.2") || std::time::Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = capture.kill();
    let _ = capture.wait();
    assert!(
        seen.contains("10.0.0.1 > 10.0.0.2"),
        "capture saw a0's own pings:\n{seen}"
    );
    assert!(
        !seen.contains("10.0.0.9"),
        "packets crossed from VNI 200 into VNI 100:\n{seen}"
    );

    // Load balancer on host a for 10.20.0.1:8080, served by a1 (host a) and b0 (host b): both
    // own the LB IP as an LB prefix and on their loopback (direct server return). a0's
    // connections spread over both targets, and each connection stays on one target.
    let lb = a
        .client
        .create_load_balancer(proto::CreateLoadBalancerRequest {
            loadbalancer_id: "lb1".into(),
            loadbalanced_ip: Some(v4("10.20.0.1")),
            vni: 100,
            loadbalanced_ports: vec![proto::LbPort {
                port: 8080,
                protocol: proto::Protocol::Tcp as i32,
            }],
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(lb.status);
    let lb_ul = String::from_utf8(lb.underlay_route).unwrap();
    let targets = [lb_prefix(&mut a, "a1").await, lb_prefix(&mut b, "b0").await];
    for target in targets {
        let t = a
            .client
            .create_load_balancer_target(proto::CreateLoadBalancerTargetRequest {
                loadbalancer_id: "lb1".into(),
                target_ip: Some(proto::IpAddress {
                    ipver: IpVersion::Ipv6 as i32,
                    address: target.into(),
                }),
            })
            .await
            .unwrap()
            .into_inner();
        ok_status(t.status);
    }
    a.route(100, "10.20.0.1", 32, &lb_ul).await;
    let server = |name: &str| {
        format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('10.20.0.1',8080))\ns.listen(32)\nwhile True:\n    c,_=s.accept()\n    \
             d=b''\n    while len(d)<65536:\n        x=c.recv(65536)\n        if not x: break\n        d+=x\n    \
             c.sendall(b'{name}'*(len(d)//len(b'{name}')))\n    c.close()\n"
        )
    };
    let mut servers = Vec::new();
    for (n, name) in [(ns('a', 1), "a1"), (ns('b', 0), "b0")] {
        in_ns(&n, &["ip", "addr", "add", "10.20.0.1/32", "dev", "lo"]);
        servers.push(
            Command::new("ip")
                .args(["netns", "exec", &n, "python3", "-c", &server(name)])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for n in [ns('a', 1), ns('b', 0)] {
        wait_for_listener(&n, 8080);
    }
    // Each connection sends 64 KiB and reads back as much; the reply names one target only.
    let client = "import socket\nfor i in range(16):\n    c=socket.create_connection(('10.20.0.1',8080),timeout=5)\n    \
                  c.sendall(b'x'*65536)\n    d=b''\n    while True:\n        x=c.recv(65536)\n        \
                  if not x: break\n        d+=x\n    c.close()\n    print(len(d), sorted(set(d[j:j+2].decode() for j in range(0,len(d),2))))\n";
    let out = in_ns(&ns('a', 0), &["timeout", "60", "python3", "-c", client]);
    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    let (mut to_a1, mut to_b0) = (0, 0);
    for line in out.lines() {
        assert!(line.starts_with("65536 "), "a full reply per connection: {line}");
        if line.ends_with("['a1']") {
            to_a1 += 1;
        } else if line.ends_with("['b0']") {
            to_b0 += 1;
        } else {
            panic!("a connection was served by more than one target: {line}");
        }
    }
    assert_eq!(to_a1 + to_b0, 16, "{out}");
    assert!(
        to_a1 > 0 && to_b0 > 0,
        "connections spread over both targets: a1 {to_a1}, b0 {to_b0}"
    );

    // Firewall: once b0 has an ingress rule accepting only TCP port 5201, ping to it is dropped
    // and TCP to 5201 still works; deleting the rule restores ping.
    let rule = common::accept_only_tcp_to("tcp5201", 5201);
    let r = b
        .client
        .create_firewall_rule(proto::CreateFirewallRuleRequest {
            interface_id: "b0".into(),
            rule: Some(rule),
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(r.status);
    // Existing flows keep their cached verdict until they age out; use a fresh ICMP identifier.
    assert!(
        !ping(&ns('a', 0), "10.0.0.3"),
        "ICMP to b0 is not accepted by its ingress rules"
    );
    tcp(&ns('b', 0), "10.0.0.3", &ns('a', 0));
    let r = b
        .client
        .delete_firewall_rule(proto::DeleteFirewallRuleRequest {
            interface_id: "b0".into(),
            rule_id: "tcp5201".into(),
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(r.status);
    assert!(
        ping(&ns('a', 0), "10.0.0.3"),
        "without ingress rules b0 accepts ICMP again"
    );

    drop(topo);
    a.service.shutdown().await;
    b.service.shutdown().await;
}

/// An "internet" namespace behind a third dataplane instance acting as the internet gateway
/// (this kernel has no IPv6 tunnel driver, so a namespace cannot decapsulate the underlay
/// itself): it reaches a VM through its VIP, and sees a NATed VM's connections from the NAT IP
/// with source ports inside the configured range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vip_reachable_from_internet_and_nat_uses_the_port_range() {
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let mut topo = Topology::new();
    let mut a = start_host(&tag, 'n', "fc00:a::1").await;
    let mut gw = start_host(&tag, 'g', "fc00:c::1").await;
    let router = format!("in{tag}r");
    join_underlay(&mut topo, &router, &[(&a, "fc00:a::/64"), (&gw, "fc00:c::/64")]);

    let _ = a.vm("v0", 100, "10.0.0.1", 0).await;
    let _ = a.vm("v1", 100, "10.0.0.2", 1).await;
    let ul_inet = gw.vm("inet", 100, "198.51.100.1", 0).await;
    a.route(100, "0.0.0.0", 0, &ul_inet).await;
    let vip = a
        .client
        .create_vip(proto::CreateVipRequest {
            interface_id: "v0".into(),
            vip_ip: Some(proto::IpAddress {
                ipver: IpVersion::Ipv4 as i32,
                address: "172.16.0.1".into(),
            }),
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(vip.status);
    let nat = a
        .client
        .create_nat(proto::CreateNatRequest {
            interface_id: "v1".into(),
            nat_ip: Some(proto::IpAddress {
                ipver: IpVersion::Ipv4 as i32,
                address: "172.16.1.1".into(),
            }),
            min_port: 1000,
            max_port: 1100,
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(nat.status);
    // The gateway routes the public addresses to their underlays.
    gw.route(
        100,
        "172.16.0.1",
        32,
        std::str::from_utf8(&vip.underlay_route).unwrap(),
    )
    .await;
    gw.route(
        100,
        "172.16.1.1",
        32,
        std::str::from_utf8(&nat.underlay_route).unwrap(),
    )
    .await;

    let inet = format!("iv{tag}gi");
    topo.add_ns(&inet);
    topo.move_link(&gw.vfs[0].tap, &inet);
    assert_eq!(topo.dhcp(&inet, &gw.vfs[0].tap), "198.51.100.1");

    let ns = |i: usize| format!("iv{tag}n{i}");
    for (i, ip) in [(0, "10.0.0.1"), (1, "10.0.0.2")] {
        topo.add_ns(&ns(i));
        topo.move_link(&a.vfs[i].tap, &ns(i));
        assert_eq!(topo.dhcp(&ns(i), &a.vfs[i].tap), ip);
    }

    // VIP: the internet reaches v0 through 172.16.0.1, and v0 reaches the internet from it.
    assert!(ping(&inet, "172.16.0.1"), "internet -> VIP");
    tcp_to(&ns(0), "10.0.0.1", &inet, "172.16.0.1");
    // NAT: v1's connections leave from 172.16.1.1 with a source port in [1000, 1100).
    let server = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                  s.bind(('198.51.100.1',8080))\ns.listen(8)\ns.settimeout(15)\n\
                  for _ in range(3):\n    c,a=s.accept()\n    print(a[0],a[1],flush=True)\n    c.close()\n";
    let srv = Command::new("ip")
        .args(["netns", "exec", &inet, "python3", "-c", server])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_listener(&inet, 8080);
    let client = "import socket\nfor _ in range(3):\n    c=socket.create_connection(('198.51.100.1',8080),timeout=5)\n    c.recv(1)\n    c.close()\n";
    in_ns(&ns(1), &["timeout", "20", "python3", "-c", client]);
    let out = srv.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    let peers: Vec<(String, u16)> = seen
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().to_owned(), w.next().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(peers.len(), 3, "three NATed connections: {seen}");
    for (ip, port) in &peers {
        assert_eq!(ip, "172.16.1.1");
        assert!(
            (1000..1100).contains(port),
            "NAT port {port} outside [1000, 1100)"
        );
    }

    drop(topo);
    a.service.shutdown().await;
    gw.service.shutdown().await;
}

/// (bytes, packets) the netdev `link` in `ns` has sent (`dir` "tx") or received ("rx").
fn link_stats(ns: &str, link: &str, dir: &str) -> (u64, u64) {
    let read = |what: &str| -> u64 {
        common::in_ns(
            ns,
            &["cat", &format!("/sys/class/net/{link}/statistics/{dir}_{what}")],
        )
        .trim()
        .parse()
        .unwrap()
    };
    (read("bytes"), read("packets"))
}
