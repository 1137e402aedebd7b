//! Shared helpers of the real-traffic test and the throughput benchmark: namespaces with a
//! Drop guard, dataplane hosts with TAP ports, DHCP via dhclient, ping and iperf3.
#![allow(dead_code)]

pub mod guest;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ironnet_dpservice::RunningService;
use ironnet_dpservice::config::{DpServiceArgs, PortSpec};
use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use ironnet_dpservice::proto::{self, IpVersion};
use ironnet_dpservice::tap::format_mac;
use tonic::transport::Channel;

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Waits until a TCP socket listens on `port` in namespace `ns` (a server the test just started; on a loaded
/// machine its start can take seconds).
pub fn wait_for_listener(ns: &str, port: u16) {
    let filter = format!("sport = :{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(Command::new("ip").args(["netns", "exec", ns, "ss", "-Hltn", &filter]));
        if !out.stdout.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port} in {ns} after 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn ok(args: &[&str]) -> String {
    let out = run(Command::new(args[0]).args(&args[1..]));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn in_ns(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    ok(&full)
}

pub fn in_ns_status(ns: &str, args: &[&str]) -> bool {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
        .status
        .success()
}

/// Namespaces created by this test; Drop kills everything running in them and deletes them.
pub struct Topology {
    pub namespaces: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Topology {
    pub fn new() -> Self {
        Topology {
            namespaces: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn add_ns(&mut self, name: &str) {
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

    pub fn move_link(&self, link: &str, ns: &str) {
        ok(&["ip", "link", "set", link, "netns", ns]);
        in_ns(ns, &["ip", "link", "set", link, "up"]);
    }

    /// Runs dhclient once on `link` inside `ns` with a script that configures the leased
    /// address the way a VM would (/32 plus routes via the gateway 169.254.0.1); returns the
    /// leased address.
    pub fn dhcp(&self, ns: &str, link: &str) -> String {
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

pub struct Host {
    pub service: RunningService,
    pub client: DpdKironcoreClient<Channel>,
    pub pf: PortSpec,
    pub vfs: Vec<PortSpec>,
}

pub async fn start_host(tag: &str, host: char, underlay: &str) -> Host {
    let vfs: Vec<PortSpec> = (0..3)
        .map(|i| PortSpec::parse(&format!("t{tag}{host}{i},device=net_tap{i}")).unwrap())
        .collect();
    start_host_with(tag, host, underlay, vfs).await
}

/// A host whose `count` VM ports are vhost-user sockets in `dir` (devices `net_tap0`, …).
pub async fn start_vhost_user_host(tag: &str, host: char, underlay: &str, dir: &Path, count: usize) -> Host {
    let vfs: Vec<PortSpec> = (0..count)
        .map(|i| {
            let path = dir.join(format!("vu{host}{i}.sock"));
            PortSpec::parse(&format!("vhost-user:{},device=net_tap{i}", path.display())).unwrap()
        })
        .collect();
    start_host_with(tag, host, underlay, vfs).await
}

/// A host with uplink TAP `t{tag}{host}p` and the given VM ports.
pub async fn start_host_with(tag: &str, host: char, underlay: &str, vfs: Vec<PortSpec>) -> Host {
    let pf = PortSpec::parse(&format!("t{tag}{host}p")).unwrap();
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
        max_vm_ports: ironnet_dataplane::config::MAX_VFS,
        telemetry: Default::default(),
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

/// An IPv4 address as the gRPC API carries it.
pub fn v4(s: &str) -> proto::IpAddress {
    proto::IpAddress {
        ipver: IpVersion::Ipv4 as i32,
        address: s.into(),
    }
}

/// An ingress rule `id` accepting TCP to destination port `port` from anywhere: on an interface
/// with rules, everything else arriving there is dropped.
pub fn accept_only_tcp_to(id: &str, port: i32) -> proto::FirewallRule {
    let anywhere = || {
        Some(proto::Prefix {
            ip: Some(v4("0.0.0.0")),
            length: 0,
            underlay_route: vec![],
        })
    };
    proto::FirewallRule {
        id: id.into(),
        direction: proto::TrafficDirection::Ingress as i32,
        action: proto::FirewallAction::Accept as i32,
        priority: 1000,
        source_prefix: anywhere(),
        destination_prefix: anywhere(),
        protocol_filter: Some(proto::ProtocolFilter {
            filter: Some(proto::protocol_filter::Filter::Tcp(proto::TcpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: port,
                dst_port_upper: port,
            })),
        }),
    }
}

pub fn ok_status(s: Option<proto::Status>) {
    assert_eq!(s.map(|s| (s.code, s.message)), Some((0, "Success".to_owned())));
}

impl Host {
    pub async fn vm(&mut self, id: &str, vni: u32, ip: &str, device: usize) -> String {
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

    pub async fn route(&mut self, vni: u32, prefix: &str, len: u32, nexthop: &str) {
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

pub fn ping(ns: &str, dst: &str) -> bool {
    in_ns_status(ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", dst])
}

/// TCP through the dataplane: an iperf3 server in `server_ns`, a 1-second client in `client_ns`.
pub fn tcp(server_ns: &str, server_ip: &str, client_ns: &str) {
    tcp_to(server_ns, server_ip, client_ns, server_ip);
}

/// TCP through the dataplane to a translated address: an iperf3 server in `server_ns` bound
/// to `bind_ip`, a 1-second client in `client_ns` connecting to `connect_ip` (e.g. a VIP).
pub fn tcp_to(server_ns: &str, bind_ip: &str, client_ns: &str, connect_ip: &str) {
    let mbps = iperf_to_mbps(server_ns, bind_ip, client_ns, connect_ip, 1);
    assert!(
        mbps > 1.0,
        "TCP {client_ns} -> {connect_ip} moved data: {mbps} Mbit/s"
    );
}

/// Joins the hosts' uplinks in a new router namespace `router` that forwards IPv6 and routes
/// each host's underlay /64 (`prefixes[i]`) to host `i`'s uplink via a static neighbour (the
/// dataplane does not answer neighbour solicitations on its uplink, like dpservice).
pub fn join_underlay(topo: &mut Topology, router: &str, hosts: &[(&Host, &str)]) {
    topo.add_ns(router);
    in_ns(router, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (i, (h, prefix)) in hosts.iter().enumerate() {
        let gw = format!("fe80::{}", i + 1);
        topo.move_link(&h.pf.tap, router);
        // Room for the 40-byte outer IPv6 header around 1500-byte VM packets (a jumbo underlay,
        // as in dpservice deployments).
        in_ns(router, &["ip", "link", "set", &h.pf.tap, "mtu", "9000"]);
        in_ns(
            router,
            &[
                "ip",
                "-6",
                "neigh",
                "add",
                &gw,
                "lladdr",
                &format_mac(h.pf.mac),
                "nud",
                "permanent",
                "dev",
                &h.pf.tap,
            ],
        );
        in_ns(
            router,
            &["ip", "-6", "route", "add", prefix, "via", &gw, "dev", &h.pf.tap],
        );
    }
}

/// TCP throughput in Mbit/s measured by the iperf3 receiver: server in `server_ns` bound to
/// `server_ip`, client in `client_ns` sending for `secs` seconds.
pub fn iperf_mbps(server_ns: &str, server_ip: &str, client_ns: &str, secs: u32) -> f64 {
    iperf_to_mbps(server_ns, server_ip, client_ns, server_ip, secs)
}

/// Like [`iperf_mbps`], with the server bound to `bind_ip` and the client connecting to
/// `connect_ip` (a translated address such as a VIP).
pub fn iperf_to_mbps(server_ns: &str, bind_ip: &str, client_ns: &str, connect_ip: &str, secs: u32) -> f64 {
    let mut server = Command::new("ip")
        .args([
            "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", bind_ip, "-p", "5201",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(server_ns, 5201);
    let limit = (secs + 20).to_string();
    let secs = secs.to_string();
    let out = run(Command::new("timeout").args([
        limit.as_str(),
        "ip",
        "netns",
        "exec",
        client_ns,
        "iperf3",
        "-c",
        connect_ip,
        "-t",
        &secs,
        "-p",
        "5201",
        "-f",
        "m",
    ]));
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 {client_ns} -> {connect_ip}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .expect("iperf3 receiver summary");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "Mbits/sec")
        .expect("Mbits/sec in summary");
    words[at - 1].parse().unwrap()
}
