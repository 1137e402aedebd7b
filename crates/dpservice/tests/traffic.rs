//! Real traffic through the service: two dataplane instances ("hypervisors") joined by an IPv6
//! underlay through a router namespace, VMs in their own namespaces on the TAP ports, addresses
//! from the dataplane's DHCP server via a real `dhclient`, then ping and TCP between VMs on the
//! same and on different hypervisors, and VNI isolation checked with tcpdump.
//!
//! Needs root, iproute2, dhclient (isc-dhcp-client), ping, iperf3 and tcpdump. Every namespace
//! and device has a name unique to this test process; [`Topology`]'s Drop kills the processes
//! started inside the namespaces and deletes the namespaces even when an assertion fails. Traffic
//! only flows between namespaces this test created.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ironnet_dpservice::RunningService;
use ironnet_dpservice::config::{DpServiceArgs, PortSpec};
use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use ironnet_dpservice::proto::{self, IpVersion};
use ironnet_dpservice::tap::format_mac;
use tonic::transport::Channel;

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = run(Command::new(args[0]).args(&args[1..]));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_ns(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    ok(&full)
}

fn in_ns_status(ns: &str, args: &[&str]) -> bool {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
        .status
        .success()
}

/// Namespaces created by this test; Drop kills everything running in them and deletes them.
struct Topology {
    namespaces: Vec<String>,
    dir: tempfile::TempDir,
}

impl Topology {
    fn new() -> Self {
        Topology {
            namespaces: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn add_ns(&mut self, name: &str) {
        ok(&["ip", "netns", "add", name]);
        self.namespaces.push(name.to_owned());
        in_ns(name, &["ip", "link", "set", "lo", "up"]);
        in_ns(
            name,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        );
    }

    fn move_link(&self, link: &str, ns: &str) {
        ok(&["ip", "link", "set", link, "netns", ns]);
        in_ns(ns, &["ip", "link", "set", link, "up"]);
    }

    /// Runs dhclient once on `link` inside `ns` with a script that configures the leased
    /// address the way a VM would (/32 plus routes via the gateway 169.254.0.1); returns the
    /// leased address.
    fn dhcp(&self, ns: &str, link: &str) -> String {
        let dir: &Path = self.dir.path();
        let script = dir.join("dhclient-script");
        // dhclient runs its script with a scrubbed environment, so the output path is baked in.
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBIND|REBOOT)\n\
                 ip addr add \"$new_ip_address/32\" dev \"$interface\"\n\
                 ip route add 169.254.0.0/16 dev \"$interface\"\n\
                 ip route add default via 169.254.0.1 dev \"$interface\" onlink\n\
                 echo \"$new_ip_address\" > \"{}/$interface.leased\"\n;; esac\nexit 0\n",
                dir.display()
            ),
        )
        .unwrap();
        ok(&["chmod", "+x", script.to_str().unwrap()]);
        let conf = dir.join("dhclient.conf");
        std::fs::write(&conf, "").unwrap();
        let file = |s: &str| -> PathBuf { dir.join(format!("{ns}.{s}")) };
        let leased = dir.join(format!("{link}.leased"));
        let out = run(Command::new("timeout")
            .args(["30", "ip", "netns", "exec", ns, "dhclient", "-4", "-1", "-v"])
            .args(["-cf", conf.to_str().unwrap(), "-sf", script.to_str().unwrap()])
            .args([
                "-pf",
                file("pid").to_str().unwrap(),
                "-lf",
                file("lease").to_str().unwrap(),
            ])
            .arg(link));
        assert!(
            out.status.success(),
            "dhclient in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&leased).unwrap().trim().to_owned()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            // Processes this test started in its namespaces (dhclient, iperf3, tcpdump).
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

struct Host {
    service: RunningService,
    client: DpdKironcoreClient<Channel>,
    pf: PortSpec,
    vfs: Vec<PortSpec>,
}

async fn start_host(tag: &str, host: char, underlay: &str) -> Host {
    let pf = PortSpec::parse(&format!("t{tag}{host}p")).unwrap();
    let vfs: Vec<PortSpec> = (0..3)
        .map(|i| PortSpec::parse(&format!("t{tag}{host}{i},device=net_tap{i}")).unwrap())
        .collect();
    let args = DpServiceArgs {
        pf0: pf.clone(),
        pf1: None,
        vfs: vfs.clone(),
        ipv6: underlay.parse().unwrap(),
        router_mac: None,
        grpc_port: 1337,
        dhcp_mtu: 1500,
        dhcp_dns: vec![],
        dhcpv6_dns: vec![],
        flow_timeout: 30,
        wcmp: 100,
        enable_ipv6_overlay: false,
        no_firewall_enforcement: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = RunningService::start(&args, listener)
        .await
        .expect("service starts (needs root)");
    let mut client = DpdKironcoreClient::connect(format!("http://{}", service.local_addr()))
        .await
        .unwrap();
    client.initialize(proto::InitializeRequest {}).await.unwrap();
    Host {
        service,
        client,
        pf,
        vfs,
    }
}

fn ok_status(s: Option<proto::Status>) {
    assert_eq!(s.map(|s| (s.code, s.message)), Some((0, "Success".to_owned())));
}

impl Host {
    async fn vm(&mut self, id: &str, vni: u32, ip: &str, device: usize) -> String {
        let r = self
            .client
            .create_interface(proto::CreateInterfaceRequest {
                interface_id: id.into(),
                vni,
                ipv4_config: Some(proto::IpConfig {
                    primary_address: ip.into(),
                }),
                ipv6_config: Some(proto::IpConfig {
                    primary_address: "::".into(),
                }),
                device_name: format!("net_tap{device}"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ok_status(r.status);
        String::from_utf8(r.underlay_route).unwrap()
    }

    async fn route(&mut self, vni: u32, prefix: &str, len: u32, nexthop: &str) {
        let r = self
            .client
            .create_route(proto::CreateRouteRequest {
                vni,
                route: Some(proto::Route {
                    prefix: Some(proto::Prefix {
                        ip: Some(proto::IpAddress {
                            ipver: IpVersion::Ipv4 as i32,
                            address: prefix.into(),
                        }),
                        length: len,
                        underlay_route: vec![],
                    }),
                    nexthop_vni: vni,
                    nexthop_address: Some(proto::IpAddress {
                        ipver: IpVersion::Ipv6 as i32,
                        address: nexthop.into(),
                    }),
                    weight: 0,
                }),
            })
            .await
            .unwrap()
            .into_inner();
        ok_status(r.status);
    }
}

fn ping(ns: &str, dst: &str) -> bool {
    in_ns_status(ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", dst])
}

/// TCP through the dataplane: an iperf3 server in `server_ns`, a 1-second client in `client_ns`.
fn tcp(server_ns: &str, server_ip: &str, client_ns: &str) {
    let mut server = Command::new("ip")
        .args([
            "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip, "-p", "5201",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = run(Command::new("timeout").args([
        "20", "ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-t", "1", "-p", "5201",
    ]));
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "iperf3 {client_ns} -> {server_ip}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_ping_tcp_same_and_cross_host_with_vni_isolation() {
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let mut topo = Topology::new();
    let mut a = start_host(&tag, 'a', "fc00:a::1").await;
    let mut b = start_host(&tag, 'b', "fc00:b::1").await;

    // Underlay: both uplinks into one router namespace that routes each host's /64 to it.
    let router = format!("ir{tag}r");
    topo.add_ns(&router);
    in_ns(&router, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (h, prefix, gw) in [(&a, "fc00:a::/64", "fe80::a"), (&b, "fc00:b::/64", "fe80::b")] {
        topo.move_link(&h.pf.tap, &router);
        in_ns(
            &router,
            &[
                "ip",
                "-6",
                "neigh",
                "add",
                gw,
                "lladdr",
                &format_mac(h.pf.mac),
                "nud",
                "permanent",
                "dev",
                &h.pf.tap,
            ],
        );
        in_ns(
            &router,
            &["ip", "-6", "route", "add", prefix, "via", gw, "dev", &h.pf.tap],
        );
    }

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
