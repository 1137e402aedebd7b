//! TCP throughput VM→VM across two hypervisors through the TAP ports and the dataplane, next
//! to the Linux kernel forwarding between the same two VM namespaces through the same router
//! namespace (plain IPv4 routing over veth pairs, no encapsulation), measured in the same run.
//!
//! Run as root: `cargo bench -p ironnet-dpservice --bench tcp_throughput [-- SECONDS ROUNDS]`
//! (defaults 5 s, 3 rounds, alternating the two paths; medians are printed).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Topology, in_ns, iperf_mbps, join_underlay, ok, start_host};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tag = format!("{:x}", std::process::id() % 0xfffff);
        let mut topo = Topology::new();
        let mut a = start_host(&tag, 'a', "fc00:a::1").await;
        let mut b = start_host(&tag, 'b', "fc00:b::1").await;
        let router = format!("ib{tag}r");
        join_underlay(&mut topo, &router, &[(&a, "fc00:a::/64"), (&b, "fc00:b::/64")]);
        let ul_a = a.vm("a0", 100, "10.0.0.1", 0).await;
        let ul_b = b.vm("b0", 100, "10.0.0.3", 0).await;
        a.route(100, "10.0.0.3", 32, &ul_b).await;
        b.route(100, "10.0.0.1", 32, &ul_a).await;
        let (vm_a, vm_b) = (format!("ib{tag}a"), format!("ib{tag}b"));
        for (ns, vf, ip) in [(&vm_a, &a.vfs[0], "10.0.0.1"), (&vm_b, &b.vfs[0], "10.0.0.3")] {
            topo.add_ns(ns);
            topo.move_link(&vf.tap, ns);
            assert_eq!(topo.dhcp(ns, &vf.tap), ip);
        }

        // Kernel reference: veth pairs from each VM namespace to the router namespace.
        in_ns(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for (ns, side, net) in [(&vm_a, 'a', "10.1.1"), (&vm_b, 'b', "10.1.2")] {
            let (vm_end, r_end) = (format!("k{tag}{side}v"), format!("k{tag}{side}r"));
            ok(&[
                "ip", "link", "add", &vm_end, "netns", ns, "type", "veth", "peer", "name", &r_end, "netns",
                &router,
            ]);
            in_ns(ns, &["ip", "addr", "add", &format!("{net}.1/24"), "dev", &vm_end]);
            in_ns(ns, &["ip", "link", "set", &vm_end, "up"]);
            in_ns(
                &router,
                &["ip", "addr", "add", &format!("{net}.254/24"), "dev", &r_end],
            );
            in_ns(&router, &["ip", "link", "set", &r_end, "up"]);
            let other = if side == 'a' { "10.1.2.0/24" } else { "10.1.1.0/24" };
            in_ns(ns, &["ip", "route", "add", other, "via", &format!("{net}.254")]);
        }

        let (mut dataplane, mut kernel) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            dataplane.push(iperf_mbps(&vm_b, "10.0.0.3", &vm_a, secs));
            kernel.push(iperf_mbps(&vm_b, "10.1.2.1", &vm_a, secs));
        }
        let (d, k) = (median(dataplane.clone()), median(kernel.clone()));
        println!("dataplane (TAP, IPv4-in-IPv6 across a router): {dataplane:?} Mbit/s, median {d:.0}");
        println!("kernel (veth, IPv4 forwarding, same namespaces): {kernel:?} Mbit/s, median {k:.0}");
        println!("ratio dataplane/kernel: {:.3}", d / k);
        drop(topo);
        a.service.shutdown().await;
        b.service.shutdown().await;
    });
}
