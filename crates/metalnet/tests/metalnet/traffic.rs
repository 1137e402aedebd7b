//! End to end: two nodes, each with its own dpservice and metalnet, one metalbond server. Interfaces created
//! through the API on different nodes reach each other: metalnet b's announcement becomes a route in dpservice
//! a and vice versa, and a ping between VMs (network namespaces on the TAP ports) crosses the IPv6 underlay
//! through a router namespace. Namespaces are created and removed by this test only.

use std::process::Command;

use ironnet_dpservice::config::PortSpec;
use ironnet_dpservice::tap::format_mac;
use ironnet_metalnet::dp::Dp;
use ironnet_vni::{Vni, vni};
use serde_json::json;
use tokio::sync::watch;

use crate::common::*;

/// Namespaces created by this test; Drop kills what runs in them and deletes them.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: &str) {
        sh(&["ip", "netns", "add", name]);
        self.0.push(name.to_owned());
        in_ns(name, &["ip", "link", "set", "lo", "up"]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_ns(ns: &str, args: &[&str]) {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full);
}

/// Puts TAP `tap` into a fresh namespace as a VM with address `ip` (what dpservice's DHCP would hand out: a /32
/// and everything via the gateway 169.254.0.1).
fn vm(namespaces: &mut Namespaces, ns: &str, tap: &str, ip: &str) {
    namespaces.add(ns);
    sh(&["ip", "link", "set", tap, "netns", ns]);
    in_ns(ns, &["ip", "link", "set", tap, "up"]);
    in_ns(ns, &["ip", "addr", "add", &format!("{ip}/32"), "dev", tap]);
    in_ns(ns, &["ip", "route", "add", "169.254.0.0/16", "dev", tap]);
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
            tap,
            "onlink",
        ],
    );
}

async fn ping(ns: &str, dst: &str) -> bool {
    let (ns, dst) = (ns.to_owned(), dst.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-c", "1", "-W", "1", &dst])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

async fn has_route(dp: &Dp, vni: Vni, prefix: &str) -> bool {
    dp.list_routes(vni)
        .await
        .map(|rs| rs.iter().any(|r| r.prefix.to_string() == prefix))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_on_two_nodes_reach_each_other_over_the_underlay() {
    let env = Env::start().await;
    // Node b: its own dpservice (other TAP names, underlay fc00:2::1/64) and metalnet, the same metalbond.
    let tag = env.dp_args.pf0.tap.trim_end_matches('p').to_owned();
    let mut b_args = env.dp_args.clone();
    b_args.pf0 = PortSpec::parse(&format!("{tag}q")).unwrap();
    b_args.vfs = (0..2)
        .map(|i| PortSpec::parse(&format!("{tag}w{i},device=net_tap{}", i + 2)).unwrap())
        .collect();
    b_args.ipv6 = "fc00:2::1".parse().unwrap();
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = free.local_addr().unwrap();
    drop(free);
    let b_service = start_dpservice(&b_args, b_addr).await;
    let b_dp = Dp::lazy(&format!("http://{b_addr}")).unwrap();
    let mut mn_b = env.args.clone();
    mn_b.node_name = Some("node-b".into());
    mn_b.dp_service_address = b_addr.to_string();
    mn_b.metalnet_dir = env.dir.path().join("metalnet-b");
    mn_b.tap_devices = b_args
        .vfs
        .iter()
        .map(|v| ironnet_metalnet::claims::Device::parse(&format!("{}={}", v.tap, v.device)).unwrap())
        .collect();
    let (stop_b, mut stop_rx) = watch::channel(false);
    let client = env.client.clone();
    let metalnet_b = tokio::spawn(async move {
        ironnet_metalnet::run_with(mn_b, client, mb_config(), async move {
            let _ = stop_rx.wait_for(|v| *v).await;
        })
        .await
        .expect("metalnet b runs");
    });

    env.network("net", 10, &[]).await;
    env.interface("vma", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"]}))
        .await;
    env.interface_on(
        "vmb",
        "node-b",
        json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.2"]}),
    )
    .await;
    env.ready_interface("vma", |_| true).await;
    env.ready_interface("vmb", |_| true).await;
    poll("each node has a route to the other's interface", || async {
        (has_route(&env.dp, vni!(10), "10.0.0.2/32").await && has_route(&b_dp, vni!(10), "10.0.0.1/32").await)
            .then_some(())
    })
    .await;

    // Underlay: both uplinks in a router namespace routing each host's /64 to it.
    let mut namespaces = Namespaces(Vec::new());
    let router = format!("{tag}r");
    namespaces.add(&router);
    in_ns(&router, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (i, (pf, prefix)) in [(&env.dp_args.pf0, "fc00:1::/64"), (&b_args.pf0, "fc00:2::/64")]
        .into_iter()
        .enumerate()
    {
        let gw = format!("fe80::{}", i + 1);
        sh(&["ip", "link", "set", &pf.tap, "netns", &router]);
        in_ns(&router, &["ip", "link", "set", &pf.tap, "mtu", "9000", "up"]);
        in_ns(
            &router,
            &[
                "ip",
                "-6",
                "neigh",
                "add",
                &gw,
                "lladdr",
                &format_mac(pf.mac),
                "nud",
                "permanent",
                "dev",
                &pf.tap,
            ],
        );
        in_ns(
            &router,
            &["ip", "-6", "route", "add", prefix, "via", &gw, "dev", &pf.tap],
        );
    }
    vm(
        &mut namespaces,
        &format!("{tag}a"),
        &env.dp_args.vfs[0].tap,
        "10.0.0.1",
    );
    vm(
        &mut namespaces,
        &format!("{tag}b"),
        &b_args.vfs[0].tap,
        "10.0.0.2",
    );

    let a_ns = format!("{tag}a");
    poll("ping from node a's VM to node b's VM", || async {
        ping(&a_ns, "10.0.0.2").await.then_some(())
    })
    .await;
    let b_ns = format!("{tag}b");
    assert!(ping(&b_ns, "10.0.0.1").await, "and back");

    // Deleting b's interface withdraws its route from node a: the ping stops working.
    env.delete(&env.interfaces(), "vmb").await;
    poll("route to the deleted interface removed on node a", || async {
        (!has_route(&env.dp, vni!(10), "10.0.0.2/32").await).then_some(())
    })
    .await;
    assert!(!ping(&a_ns, "10.0.0.2").await);

    let _ = stop_b.send(true);
    let _ = metalnet_b.await;
    drop(namespaces);
    b_service.shutdown().await;
}
