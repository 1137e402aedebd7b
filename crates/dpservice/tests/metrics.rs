//! The dataplane's `/metrics` and `/readyz` over real HTTP after known traffic: a dpservice
//! started from `ironnet dpservice` flags (`--metrics-bind-address`, `--health-probe-bind-address`)
//! with TAP ports, two VMs in their own network namespaces, exact counts of pings forwarded,
//! dropped by a firewall rule and dropped for want of a route, and `promtool check metrics` on
//! the page.
//!
//! Needs root, iproute2, ping and promtool (Debian `prometheus`). The VMs' IPv6 is disabled and
//! the gateway's MAC is a permanent neighbour entry, so the VMs send nothing but the test's pings
//! and every received-frame counter can be checked exactly; the dataplane's own periodic ARP
//! announcements (sent frames) are checked against the kernel's counters of the same TAP.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Topology, in_ns, ok, ok_status, v4};
use ironnet_dpservice::RunningService;
use ironnet_dpservice::config::{DpServiceArgs, PortSpec};
use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use ironnet_dpservice::proto::{self, IpVersion};
use ironnet_dpservice::tap::format_mac;
use ironnet_telemetry::scrape::{get, promtool_check};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: DpServiceArgs,
}

/// An Ethernet frame of a default `ping`: 14 + 20 (IPv4) + 8 (ICMP) + 56 bytes of data.
const PING_FRAME: u64 = 98;

fn v6(s: &str) -> proto::IpAddress {
    proto::IpAddress {
        ipver: IpVersion::Ipv6 as i32,
        address: s.into(),
    }
}

/// Every sample of a Prometheus text page, by its series (`name{labels}`).
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

struct Page(BTreeMap<String, f64>);

impl Page {
    fn get(&self, series: &str) -> u64 {
        let v = self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from the page: {:#?}", self.0));
        *v as u64
    }
}

async fn scrape(addr: SocketAddr) -> (Page, String) {
    let page = get(addr, "/metrics", None).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    (Page(samples(&page.body)), page.body)
}

/// A VM namespace on VM port `spec`: IPv6 off, address `ip`/32, default route via the gateway
/// 169.254.0.1 whose MAC (the port's own) is a permanent neighbour, so the VM never ARPs.
fn vm_namespace(topo: &mut Topology, ns: &str, spec: &PortSpec, ip: &str) {
    topo.add_ns(ns);
    in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    let link = spec.tap.as_str();
    ok(&["ip", "link", "set", link, "netns", ns]);
    in_ns(
        ns,
        &["sysctl", "-qw", &format!("net.ipv6.conf.{link}.disable_ipv6=1")],
    );
    in_ns(ns, &["ip", "addr", "add", &format!("{ip}/32"), "dev", link]);
    in_ns(ns, &["ip", "link", "set", link, "up"]);
    let gw_mac = format_mac(spec.mac);
    in_ns(
        ns,
        &[
            "ip",
            "neigh",
            "replace",
            "169.254.0.1",
            "lladdr",
            &gw_mac,
            "dev",
            link,
            "nud",
            "permanent",
        ],
    );
    in_ns(ns, &["ip", "route", "add", "169.254.0.1", "dev", link]);
    in_ns(
        ns,
        &[
            "ip",
            "route",
            "add",
            "default",
            "via",
            "169.254.0.1",
            "dev",
            link,
            "onlink",
        ],
    );
}

/// Runs `ping -c count` from `ns` to `dst`; returns the number of replies.
fn ping_replies(ns: &str, dst: &str, count: u32) -> u32 {
    let out = common::run(std::process::Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "ping",
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
        dst,
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|p| p.trim().strip_suffix(" received")?.parse().ok())
        .unwrap_or_else(|| panic!("ping output without a summary: {text}"))
}

/// (packets, bytes) the kernel side of TAP `link` in `ns` has received, i.e. what the dataplane
/// wrote to it.
fn kernel_rx(ns: &str, link: &str) -> (u64, u64) {
    let read = |what: &str| -> u64 {
        in_ns(
            ns,
            &["cat", &format!("/sys/class/net/{link}/statistics/rx_{what}")],
        )
        .trim()
        .parse()
        .unwrap()
    };
    (read("packets"), read("bytes"))
}

async fn readyz(addr: SocketAddr) -> (u16, String) {
    let r = get(addr, "/readyz?verbose", None).await.unwrap();
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_forwarded_and_dropped_are_counted_per_port_and_reason() {
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let (pf, vf0, vf1) = (format!("t{tag}mp"), format!("t{tag}m0"), format!("t{tag}m1"));
    let argv = [
        "ironnet-dpservice".to_owned(),
        format!("--pf0={pf}"),
        format!("--vf={vf0},device=net_tap0"),
        format!("--vf={vf1},device=net_tap1"),
        "--ipv6=fc00:e::1".into(),
        // Flows of the warm-up pings must not age out while the test counts.
        "--flow-timeout=300".into(),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
    ];
    let args = Cli::try_parse_from(&argv).unwrap().args;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = RunningService::start(&args, listener)
        .await
        .expect("service starts (needs root)");
    let endpoints = service.telemetry_endpoints();
    let (metrics, health) = (endpoints.metrics.unwrap(), endpoints.health.unwrap());
    assert_ne!(metrics, health, "two flags, two listeners");

    // Not ready until a client initialises the dataplane, as CheckInitialized says.
    let (status, body) = readyz(health).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("[+]dataplane-worker ok"), "{body}");
    assert!(
        body.contains("[-]dataplane-initialized failed: no client has called Initialize yet"),
        "{body}"
    );
    assert_eq!(get(health, "/metrics", None).await.unwrap().status, 404);
    let mut client = DpdKironcoreClient::connect(format!("http://{}", service.local_addr()))
        .await
        .unwrap();
    client.initialize(proto::InitializeRequest {}).await.unwrap();
    let (status, body) = readyz(health).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "[+]dataplane-worker ok\n[+]dataplane-initialized ok\nreadyz check passed\n"
        )
    );

    let mut topo = Topology::new();
    // The uplink leads into a namespace without IPv6, so the host's own IPv6 (router
    // solicitations, MLD) does not arrive on it while the test counts.
    let underlay = format!("im{tag}u");
    topo.add_ns(&underlay);
    in_ns(
        &underlay,
        &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
    );
    ok(&["ip", "link", "set", &pf, "netns", &underlay]);
    in_ns(
        &underlay,
        &["sysctl", "-qw", &format!("net.ipv6.conf.{pf}.disable_ipv6=1")],
    );
    in_ns(&underlay, &["ip", "link", "set", &pf, "up"]);
    let (ns0, ns1) = (format!("im{tag}0"), format!("im{tag}1"));
    vm_namespace(&mut topo, &ns0, &args.vfs[0], "10.0.0.1");
    vm_namespace(&mut topo, &ns1, &args.vfs[1], "10.0.0.2");
    for (id, ip, device) in [("vm0", "10.0.0.1", "net_tap0"), ("vm1", "10.0.0.2", "net_tap1")] {
        let r = client
            .create_interface(proto::CreateInterfaceRequest {
                interface_id: id.into(),
                vni: 100,
                ipv4_config: Some(proto::IpConfig {
                    primary_address: ip.into(),
                }),
                ipv6_config: Some(proto::IpConfig {
                    primary_address: "::".into(),
                }),
                device_name: device.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ok_status(r.status);
    }
    // vm0 has a NAT IP (used once a default route exists, below).
    let r = client
        .create_nat(proto::CreateNatRequest {
            interface_id: "vm0".into(),
            nat_ip: Some(v4("45.0.0.1")),
            min_port: 1000,
            max_port: 1100,
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(r.status);
    let r = client
        .create_load_balancer(proto::CreateLoadBalancerRequest {
            loadbalancer_id: "lb1".into(),
            loadbalanced_ip: Some(v4("45.0.0.9")),
            vni: 100,
            loadbalanced_ports: vec![proto::LbPort {
                port: 80,
                protocol: proto::Protocol::Tcp as i32,
            }],
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(r.status);
    for target in ["fc00:7::1", "fc00:7::2"] {
        let r = client
            .create_load_balancer_target(proto::CreateLoadBalancerTargetRequest {
                loadbalancer_id: "lb1".into(),
                target_ip: Some(v6(target)),
            })
            .await
            .unwrap()
            .into_inner();
        ok_status(r.status);
    }

    // The dataplane learns each VM's MAC from its answer to an ARP probe (sent every 5 s at
    // first); until then replies cannot reach the VM. Wait until one ping goes through.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ping_replies(&ns0, "10.0.0.2", 1) != 1 {
        assert!(Instant::now() < deadline, "vm0 never reached vm1");
    }

    let (before, _) = scrape(metrics).await;
    // Known traffic: 5 pings answered, 3 dropped by vm1's firewall (a new ICMP flow, denied),
    // 4 to an address no route covers, 2 through vm0's NAT to the uplink (nothing answers there).
    let (answered, denied, unrouted, natted) = (5u64, 3u64, 4u64, 2u64);
    assert_eq!(ping_replies(&ns0, "10.0.0.2", answered as u32), answered as u32);
    let rule = common::accept_only_tcp_to("web-only", 80);
    let r = client
        .create_firewall_rule(proto::CreateFirewallRuleRequest {
            interface_id: "vm1".into(),
            rule: Some(rule),
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(r.status);
    assert_eq!(ping_replies(&ns0, "10.0.0.2", denied as u32), 0);
    assert_eq!(ping_replies(&ns0, "10.0.0.99", unrouted as u32), 0);
    // Only now a default route: NAT applies to what leaves through it.
    let r = client
        .create_route(proto::CreateRouteRequest {
            vni: 100,
            route: Some(proto::Route {
                prefix: Some(proto::Prefix {
                    ip: Some(v4("0.0.0.0")),
                    length: 0,
                    underlay_route: vec![],
                }),
                nexthop_vni: 100,
                nexthop_address: Some(v6("fc00:f::1")),
                weight: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    ok_status(r.status);
    assert_eq!(ping_replies(&ns0, "192.0.2.1", natted as u32), 0);
    let (after, text) = scrape(metrics).await;
    let delta = |series: &str| after.get(series) - before.get(series);

    let from_vm0 = answered + denied + unrouted + natted;
    let rx =
        |dev: &str, what: &str| format!("dpdk_ethdev_{what}_total{{name=\"{dev}\",stat=\"rx_good_{what}\"}}");
    let tx =
        |dev: &str, what: &str| format!("dpdk_ethdev_{what}_total{{name=\"{dev}\",stat=\"tx_good_{what}\"}}");
    assert_eq!(delta(&rx("net_tap0", "packets")), from_vm0);
    assert_eq!(delta(&rx("net_tap0", "bytes")), from_vm0 * PING_FRAME);
    assert_eq!(
        delta(&rx("net_tap1", "packets")),
        answered,
        "vm1 answered the pings that reached it"
    );
    assert_eq!(delta(&rx("net_tap1", "bytes")), answered * PING_FRAME);
    assert_eq!(delta(&rx(&pf, "packets")), 0);
    assert_eq!(
        delta(&tx(&pf, "packets")),
        natted,
        "NATed pings left through the uplink"
    );
    let dropped_on = |dev: &str| format!("dps_port_dropped_packets_total{{name=\"{dev}\"}}");
    assert_eq!(delta(&dropped_on("net_tap0")), denied + unrouted);
    assert_eq!(delta(&dropped_on("net_tap1")), 0);
    let reason = |r: &str| format!("dps_dropped_packets_total{{reason=\"{r}\"}}");
    assert_eq!(delta(&reason("firewall")), denied);
    assert_eq!(delta(&reason("no_route")), unrouted);
    let all_drops: u64 = after
        .0
        .keys()
        .filter(|k| k.starts_with("dps_dropped_packets_total{"))
        .map(|k| delta(k))
        .sum();
    assert_eq!(all_drops, denied + unrouted, "no other drops:\n{text}");
    // Flows: the answered pings', the denied one's (tracked with its drop verdict) and the NAT one.
    assert_eq!(delta("dps_flows_created_total"), 3);
    assert_eq!(delta("dps_flows{kind=\"routed\"}"), 2);
    assert_eq!(delta("dps_flows{kind=\"nat\"}"), 1);
    assert_eq!(delta("dps_firewall_verdicts_total{verdict=\"accept\"}"), 2);
    assert_eq!(delta("dps_firewall_verdicts_total{verdict=\"drop\"}"), 1);
    assert_eq!(after.get("dps_firewall_rules{interface_id=\"vm1\"}"), 1);
    assert_eq!(after.get("dps_firewall_rules{interface_id=\"vm0\"}"), 0);
    let nat = "{interface_id=\"vm0\",nat_ip=\"45.0.0.1\"}";
    assert_eq!(after.get(&format!("dps_nat_used_ports{nat}")), 1);
    assert_eq!(after.get(&format!("dps_nat_port_range_size{nat}")), 100);
    assert_eq!(after.get("dps_loadbalancer_targets{loadbalancer_id=\"lb1\"}"), 2);
    let table = |t: &str, s: &str| {
        after.get(&format!(
            "dps_hash_table_saturation{{table=\"{t}\",stat=\"{s}\"}}"
        ))
    };
    assert_eq!(
        (
            table("interface_table", "entries"),
            table("interface_table", "capacity")
        ),
        (2, 2)
    );
    assert_eq!(
        (
            table("loadbalancer_table", "entries"),
            table("vni_table", "entries")
        ),
        (1, 1)
    );
    assert_eq!(
        table("conntrack_table", "entries"),
        after
            .0
            .iter()
            .filter(|(k, _)| k.starts_with("dps_flows{"))
            .map(|(_, v)| *v as u64)
            .sum::<u64>()
    );

    // What the dataplane counts as sent to a VM port is what the kernel side of the TAP received
    // (the test's pings plus the dataplane's ARP announcements). Read both until no frame
    // arrives between the two kernel readings.
    for (ns, link, dev) in [(&ns0, &vf0, "net_tap0"), (&ns1, &vf1, "net_tap1")] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let k0 = kernel_rx(ns, link);
            let (page, _) = scrape(metrics).await;
            let k1 = kernel_rx(ns, link);
            if k0 == k1 {
                assert_eq!(
                    (page.get(&tx(dev, "packets")), page.get(&tx(dev, "bytes"))),
                    k0,
                    "{dev}: sent frames and bytes as the kernel counted them"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{dev} never quiet");
        }
    }
    assert!(
        delta(&tx("net_tap1", "packets")) >= answered,
        "requests delivered to vm1"
    );

    // The page passes promtool, and an OpenMetrics scraper gets the same families.
    promtool_check(&text).await.unwrap();
    let om = get(metrics, "/metrics", Some("application/openmetrics-text"))
        .await
        .unwrap();
    assert!(
        om.content_type.starts_with("application/openmetrics-text"),
        "{}",
        om.content_type
    );
    assert!(
        om.body.contains("# TYPE dpdk_ethdev_packets counter\n"),
        "{}",
        om.body
    );
    assert!(om.body.ends_with("# EOF\n"));

    // Without its worker the dataplane is not ready, and the page loses the dataplane families.
    drop(topo);
    service.shutdown().await;
    let (status, body) = readyz(health).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("[-]dataplane-worker failed: the dataplane worker has stopped"),
        "{body}"
    );
    let (_, text) = scrape(metrics).await;
    assert!(!text.contains("dpdk_ethdev"), "{text}");
}
