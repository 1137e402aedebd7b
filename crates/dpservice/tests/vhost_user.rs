//! Real QEMU guests on vhost-user ports: two dataplane instances ("hypervisors") joined by an IPv6
//! underlay through a router namespace, QEMU guests (Debian's cloud kernel, a busybox initramfs
//! built by the test) whose virtio-net devices are served by the dataplanes over vhost-user.
//! Addresses come from the dataplane's DHCP server (busybox udhcpc in the guest); then ping and
//! TCP (iperf3) between guests of one VNI on different hosts, isolation of a guest in another
//! VNI, an "internet" namespace (behind a third dataplane acting as the internet gateway, as in
//! the namespace traffic tests) reaching one guest through its VirtualIP and seeing another's
//! connections from its NAT IP and port range, and a QEMU restarted under the running dataplane
//! reconnects and carries traffic again. Host b's port offers two queue pairs and its guest's
//! QEMU asks for them (`queues=2`, `mq=on`); the others are single-queue.
//!
//! Needs root, iproute2, qemu-system-x86, linux-image-cloud-amd64, busybox-static, cpio and
//! iperf3 (`scripts/test` installs them). The guests run under KVM where it runs Debian's
//! kernel and under TCG elsewhere (`common::guest::accel`). Namespaces and devices carry per-process
//! names with the prefix `vu` and are removed by the `Topology` guard, QEMU processes by the
//! `Guest` guard, also when an assertion fails.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::guest::{Guest, GuestImage, Nic};
use common::{
    Topology, in_ns, join_underlay, ok_status, ping, start_host, start_host_with, start_vhost_user_host, v4,
    wait_for_listener,
};
use ironnet_dpservice::config::PortSpec;
use ironnet_dpservice::proto;
use ironnet_dpservice::tap::format_mac;

fn boot(image: &GuestImage, spec: &PortSpec, name: &str) -> Guest {
    let socket = spec.vhost_user.as_ref().expect("a vhost-user port");
    Guest::boot_nic(
        image,
        name,
        Nic::VhostUser(socket, spec.queue_pairs),
        &format_mac(spec.peer_mac),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_on_two_hypervisors_dhcp_ping_tcp_isolation_and_qemu_restart() {
    eprintln!("guests run under {:?}", common::guest::accel());
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let mut topo = Topology::new();
    let dir = topo.dir.path().to_owned();
    let image = GuestImage::build(&dir);
    let mut a = start_vhost_user_host(&tag, 'a', "fc00:a::1", &dir, 2).await;
    let b_port = format!(
        "vhost-user:{},device=net_tap0,queues=2",
        dir.join("vub0.sock").display()
    );
    let mut b = start_host_with(&tag, 'b', "fc00:b::1", vec![PortSpec::parse(&b_port).unwrap()]).await;
    let mut gw = start_host(&tag, 'g', "fc00:c::1").await;
    let router = format!("vu{tag}r");
    join_underlay(
        &mut topo,
        &router,
        &[(&a, "fc00:a::/64"), (&b, "fc00:b::/64"), (&gw, "fc00:c::/64")],
    );

    // a0 (host a) and b0 (host b) in VNI 100; a1 (host a) in VNI 200.
    let ul_a0 = a.vm("a0", 100, "10.0.0.1", 0).await;
    let _ = a.vm("a1", 200, "10.0.0.9", 1).await;
    let ul_b0 = b.vm("b0", 100, "10.0.0.3", 0).await;
    a.route(100, "10.0.0.3", 32, &ul_b0).await;
    b.route(100, "10.0.0.1", 32, &ul_a0).await;

    // The internet: a namespace on the gateway host's TAP port, the default route of VNI 100
    // on hosts a and b; a0 gets VirtualIP 172.16.0.1, b0 NAT IP 172.16.1.1 with ports
    // [1000, 1100), and the gateway routes both public addresses to their underlays.
    let ul_inet = gw.vm("inet", 100, "198.51.100.1", 0).await;
    a.route(100, "0.0.0.0", 0, &ul_inet).await;
    b.route(100, "0.0.0.0", 0, &ul_inet).await;
    let vip = a
        .client
        .create_vip(proto::CreateVipRequest {
            interface_id: "a0".into(),
            vip_ip: Some(v4("172.16.0.1")),
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(vip.status);
    let nat = b
        .client
        .create_nat(proto::CreateNatRequest {
            interface_id: "b0".into(),
            nat_ip: Some(v4("172.16.1.1")),
            min_port: 1000,
            max_port: 1100,
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(nat.status);
    for (public, underlay) in [
        ("172.16.0.1", &vip.underlay_route),
        ("172.16.1.1", &nat.underlay_route),
    ] {
        gw.route(100, public, 32, std::str::from_utf8(underlay).unwrap())
            .await;
    }
    let inet = format!("vu{tag}i");
    topo.add_ns(&inet);
    topo.move_link(&gw.vfs[0].tap, &inet);
    assert_eq!(topo.dhcp(&inet, &gw.vfs[0].tap), "198.51.100.1");

    // The three guests boot in parallel.
    let t = Instant::now();
    let (mut a0, mut a1, mut b0) = std::thread::scope(|s| {
        let a0 = s.spawn(|| boot(&image, &a.vfs[0], "a0"));
        let a1 = s.spawn(|| boot(&image, &a.vfs[1], "a1"));
        let b0 = s.spawn(|| boot(&image, &b.vfs[0], "b0"));
        (a0.join().unwrap(), a1.join().unwrap(), b0.join().unwrap())
    });
    eprintln!("three guests booted in {:?}", t.elapsed());

    assert_eq!(a0.dhcp(), "10.0.0.1", "DHCP hands out the interface's address");
    assert_eq!(a1.dhcp(), "10.0.0.9");
    assert_eq!(b0.dhcp(), "10.0.0.3");
    // b0's driver negotiated multi-queue (VIRTIO_NET_F_MQ, bit 22 of the feature string) and,
    // with two vCPUs, runs both queue pairs: the traffic below uses both.
    let features = b0.ok("cat /sys/class/net/eth0/device/features", Duration::from_secs(10));
    let bits = features
        .lines()
        .map(str::trim)
        .find(|l| l.len() >= 64 && l.bytes().all(|b| b == b'0' || b == b'1'))
        .unwrap_or_else(|| panic!("b0 virtio features: {features}"));
    assert_eq!(&bits[22..23], "1", "b0 negotiated VIRTIO_NET_F_MQ: {bits}");
    let queues = b0.ok("ls /sys/class/net/eth0/queues", Duration::from_secs(10));
    for q in ["rx-0", "rx-1", "tx-0", "tx-1"] {
        assert!(
            queues.split_whitespace().any(|w| w == q),
            "b0 runs two queue pairs: {queues}"
        );
    }

    // Cross host, same VNI: ping and TCP (iperf3 moves data; offloaded super-frames included).
    assert!(a0.ping("10.0.0.3", 3), "a0 -> b0 across the underlay");
    b0.spawn_server("iperf3 -s -1", 5201);
    let out = a0.ok("iperf3 -c 10.0.0.3 -t 2 -f m", Duration::from_secs(30));
    let mbps: f64 = out
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter()
                .position(|x| *x == "Mbits/sec")
                .map(|i| w[i - 1].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("iperf3 summary in {out}"));
    assert!(mbps > 1.0, "TCP a0 -> b0 moved data: {mbps} Mbit/s");

    // Another VNI: a1 reaches neither guest of VNI 100.
    assert!(
        !a1.ping("10.0.0.1", 2),
        "a1 (VNI 200) must not reach a0 (VNI 100)"
    );
    assert!(
        !a1.ping("10.0.0.3", 2),
        "a1 (VNI 200) must not reach b0 (VNI 100)"
    );

    // VirtualIP: the internet reaches a0 at 172.16.0.1 (ping, and TCP to a server in the guest).
    assert!(ping(&inet, "172.16.0.1"), "internet -> a0 through its VirtualIP");
    a0.spawn_server("iperf3 -s -1", 5201);
    let out = in_ns(
        &inet,
        &[
            "timeout",
            "60",
            "iperf3",
            "-c",
            "172.16.0.1",
            "-t",
            "1",
            "-f",
            "m",
        ],
    );
    assert!(
        out.lines().any(|l| l.trim_end().ends_with("receiver")),
        "iperf3 internet -> VirtualIP finished: {out}"
    );

    // NAT: b0's connections reach the internet from 172.16.1.1, source ports in [1000, 1100).
    let server = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                  s.bind(('198.51.100.1',8080))\ns.listen(8)\ns.settimeout(60)\n\
                  for _ in range(3):\n    c,a=s.accept()\n    print(a[0],a[1],flush=True)\n    c.close()\n";
    let srv = Command::new("ip")
        .args(["netns", "exec", &inet, "python3", "-c", server])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_listener(&inet, 8080);
    for _ in 0..3 {
        b0.ok(
            "timeout 10 nc 198.51.100.1 8080 </dev/null",
            Duration::from_secs(15),
        );
    }
    let out = srv.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    let peers: Vec<(&str, u16)> = seen
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(ip, port)| (ip, port.trim().parse().unwrap()))
        .collect();
    assert_eq!(peers.len(), 3, "three NATed connections from b0: {seen}");
    for (ip, port) in &peers {
        assert_eq!(*ip, "172.16.1.1", "b0's connections come from its NAT IP");
        assert!(
            (1000..1100).contains(port),
            "NAT port {port} outside [1000, 1100)"
        );
    }

    // QEMU restarted under the running dataplane: the new QEMU connects to the same socket,
    // the device is set up from scratch, and traffic flows again.
    b0.kill();
    let mut b0 = boot(&image, &b.vfs[0], "b0-restarted");
    assert_eq!(b0.dhcp(), "10.0.0.3");
    assert!(b0.ping("10.0.0.1", 3), "b0 (restarted QEMU) -> a0");
    assert!(a0.ping("10.0.0.3", 3), "a0 -> b0 (restarted QEMU)");

    drop((a0, a1, b0));
    drop(topo);
    a.service.shutdown().await;
    b.service.shutdown().await;
    gw.service.shutdown().await;
}
