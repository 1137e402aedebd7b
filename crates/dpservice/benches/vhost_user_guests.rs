//! QEMU guests on vhost-user ports of two dataplanes ("hypervisors", IPv4-in-IPv6 through a
//! router namespace) next to the same kind of guests joined by the kernel (a Linux bridge and
//! plain TAPs, vhost-net where the host kernel has it), measured in the same run: TCP
//! throughput guest→guest and guest→namespace (a namespace on a TAP port of the other
//! dataplane, behind the router; on the kernel side a namespace on a veth in the bridge),
//! 64-byte UDP packets per second guest→guest, and the CPU the dataplanes' process used per Gbit/s of
//! TCP (both dataplanes run in this process; the kernel path's CPU is in QEMU/vhost threads and
//! not counted).
//!
//! Run as root: `cargo bench -p ironnet-dpservice --bench vhost_user_guests [-- SECONDS ROUNDS]`
//! (defaults 5 s, 3 rounds, alternating the paths; medians are printed). The guests run under
//! KVM where it runs Debian's kernel, otherwise under TCG (`common::guest::accel`), both paths
//! alike.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::guest::{Guest, GuestImage, Nic};
use common::{Topology, in_ns, join_underlay, start_host_with, start_vhost_user_host, wait_for_listener};
use ironnet_dpservice::config::PortSpec;
use ironnet_dpservice::tap::format_mac;

/// The median, NaN for no values.
fn median_or_nan(v: Vec<f64>) -> f64 {
    if v.is_empty() { f64::NAN } else { median(v) }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU seconds (user + system) this process has used so far.
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses): utime is the 14th, stime the 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
}

/// TCP Mbit/s from `client` to `server_ip` (iperf3 server started in `server`).
fn tcp_mbps(server: &mut Guest, client: &mut Guest, server_ip: &str, secs: u32) -> f64 {
    server.spawn_server("iperf3 -s -1", 5201);
    let out = client.ok(
        &format!("iperf3 -c {server_ip} -t {secs} -f m"),
        Duration::from_secs(u64::from(secs) + 30),
    );
    let line = out
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .unwrap_or_else(|| panic!("iperf3 summary in {out}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let at = w.iter().position(|x| *x == "Mbits/sec").unwrap();
    w[at - 1].parse().unwrap()
}

/// TCP Mbit/s from guest `client` to an iperf3 server in namespace `ns` at `server_ip`.
fn tcp_mbps_to_ns(ns: &str, client: &mut Guest, server_ip: &str, secs: u32) -> f64 {
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "-s", "-1", "-B", server_ip])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(ns, 5201);
    let out = client.ok(
        &format!("iperf3 -c {server_ip} -t {secs} -f m"),
        Duration::from_secs(u64::from(secs) + 30),
    );
    server.wait().unwrap();
    let line = out
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .unwrap_or_else(|| panic!("iperf3 summary in {out}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let at = w.iter().position(|x| *x == "Mbits/sec").unwrap();
    w[at - 1].parse().unwrap()
}

/// 64-byte UDP datagrams per second received by `server_ip` from `client` sending flat out, or
/// `None` (printed with the client's output) when the run did not finish with a summary.
fn udp_pps(server: &mut Guest, client: &mut Guest, server_ip: &str, secs: u32) -> Option<f64> {
    server.spawn_server("iperf3 -s -1", 5201);
    let (status, out) = client.run(
        &format!("iperf3 -c {server_ip} -u -b 0 -l 64 -t {secs}"),
        Duration::from_secs(u64::from(secs) + 30),
    );
    // "... lost/total (pct)  receiver"
    let total = out
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .and_then(|line| {
            line.split_whitespace()
                .find(|w| w.contains('/') && w.chars().all(|c| c.is_ascii_digit() || c == '/'))
        })
        .and_then(|frac| {
            let (lost, total) = frac.split_once('/')?;
            Some(total.parse::<f64>().ok()? - lost.parse::<f64>().ok()?)
        });
    let pps = total.filter(|_| status == 0).map(|t| t / f64::from(secs));
    if pps.is_none() {
        println!(
            "UDP {} -> {server_ip} failed (status {status}):\n{out}",
            client.name
        );
        // Whether the path carries traffic again after the flood.
        println!("ping after the flood: {}", client.ping(server_ip, 3));
        server.run("kill $(pidof iperf3) 2>/dev/null", Duration::from_secs(5));
    }
    pps
}

fn main() {
    // Both paths run under the same accelerator; under TCG the guests' own CPU work dominates
    // and the ratios say little about the dataplane (docs/benchmarks.md).
    println!(
        "guests run under {:?}; kernel reference with vhost-net: {}",
        common::guest::accel(),
        common::guest::vhost_net_available()
    );
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
        let dir = topo.dir.path().to_owned();
        let image = GuestImage::build(&dir);
        let mut a = start_vhost_user_host(&tag, 'a', "fc00:a::1", &dir, 1).await;
        // Host b: a vhost-user port (guest vb) and a TAP port (namespace vu{tag}n).
        let b_ports = vec![
            PortSpec::parse(&format!(
                "vhost-user:{},device=net_tap0",
                dir.join("vub0.sock").display()
            ))
            .unwrap(),
            PortSpec::parse(&format!("t{tag}b1,device=net_tap1")).unwrap(),
        ];
        let mut b = start_host_with(&tag, 'b', "fc00:b::1", b_ports).await;
        let router = format!("vu{tag}r");
        join_underlay(&mut topo, &router, &[(&a, "fc00:a::/64"), (&b, "fc00:b::/64")]);
        let ul_a = a.vm("a0", 100, "10.0.0.1", 0).await;
        let ul_b = b.vm("b0", 100, "10.0.0.3", 0).await;
        let ul_n = b.vm("n0", 100, "10.0.0.4", 1).await;
        a.route(100, "10.0.0.3", 32, &ul_b).await;
        a.route(100, "10.0.0.4", 32, &ul_n).await;
        b.route(100, "10.0.0.1", 32, &ul_a).await;
        let dns = format!("vu{tag}n");
        topo.add_ns(&dns);
        topo.move_link(&b.vfs[1].tap, &dns);
        assert_eq!(topo.dhcp(&dns, &b.vfs[1].tap), "10.0.0.4");
        let sock = |h: &common::Host| h.vfs[0].vhost_user.clone().unwrap();
        let (sa, sb) = (sock(&a), sock(&b));
        let (ma, mb) = (format_mac(a.vfs[0].peer_mac), format_mac(b.vfs[0].peer_mac));
        let mut va = Guest::boot(&image, "va", &sa, &ma);
        let mut vb = Guest::boot(&image, "vb", &sb, &mb);
        assert_eq!(va.dhcp(), "10.0.0.1");
        assert_eq!(vb.dhcp(), "10.0.0.3");

        // Kernel reference: a bridge in namespace vu{tag}k, QEMU's TAPs (vhost-net) on it.
        let kns = format!("vu{tag}k");
        topo.add_ns(&kns);
        in_ns(&kns, &["ip", "link", "add", "br0", "type", "bridge"]);
        in_ns(&kns, &["ip", "link", "set", "br0", "up"]);
        let mut kguests = Vec::new();
        for (i, ip) in [(0, "10.9.0.1"), (1, "10.9.0.2")] {
            let ifname = format!("vuk{i}");
            let mac = format!("52:54:00:00:09:0{i}");
            let mut g = Guest::boot_nic(
                &image,
                &format!("k{i}"),
                Nic::Tap {
                    netns: &kns,
                    ifname: &ifname,
                },
                &mac,
            );
            in_ns(&kns, &["ip", "link", "set", &ifname, "master", "br0", "up"]);
            g.ok(&format!("ip addr add {ip}/24 dev eth0"), Duration::from_secs(5));
            kguests.push(g);
        }
        let (mut ka, mut kb) = {
            let kb = kguests.pop().unwrap();
            (kguests.pop().unwrap(), kb)
        };
        // The kernel side's namespace: a veth in the bridge.
        let kn = format!("vu{tag}m");
        topo.add_ns(&kn);
        in_ns(
            &kns,
            &[
                "ip", "link", "add", "vukv0", "type", "veth", "peer", "name", "vukv1",
            ],
        );
        in_ns(&kns, &["ip", "link", "set", "vukv1", "netns", &kn]);
        in_ns(&kns, &["ip", "link", "set", "vukv0", "master", "br0", "up"]);
        in_ns(&kn, &["ip", "addr", "add", "10.9.0.3/24", "dev", "vukv1"]);
        in_ns(&kn, &["ip", "link", "set", "vukv1", "up"]);
        assert!(ka.ping("10.9.0.2", 2), "kernel path works");
        assert!(ka.ping("10.9.0.3", 2), "kernel path to the namespace works");
        assert!(va.ping("10.0.0.4", 2), "dataplane path to the namespace works");

        let (mut tcp_dp, mut tcp_k, mut cpu_per_gbit, mut pps_dp, mut pps_k) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut ns_dp, mut ns_k) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let cpu0 = process_cpu_secs();
            let mbps = tcp_mbps(&mut vb, &mut va, "10.0.0.3", secs);
            let cpu = process_cpu_secs() - cpu0;
            tcp_dp.push(mbps);
            cpu_per_gbit.push(cpu / f64::from(secs) / (mbps / 1000.0));
            tcp_k.push(tcp_mbps(&mut kb, &mut ka, "10.9.0.2", secs));
            pps_dp.push(udp_pps(&mut vb, &mut va, "10.0.0.3", secs));
            pps_k.push(udp_pps(&mut kb, &mut ka, "10.9.0.2", secs));
            ns_dp.push(tcp_mbps_to_ns(&dns, &mut va, "10.0.0.4", secs));
            ns_k.push(tcp_mbps_to_ns(&kn, &mut ka, "10.9.0.3", secs));
        }
        let (d, k) = (median(tcp_dp.clone()), median(tcp_k.clone()));
        let ok = |v: &[Option<f64>]| v.iter().flatten().copied().collect::<Vec<f64>>();
        let (pd, pk) = (median_or_nan(ok(&pps_dp)), median_or_nan(ok(&pps_k)));
        println!("TCP guest->guest, vhost-user across two dataplanes: {tcp_dp:?} Mbit/s, median {d:.0}");
        println!("TCP guest->guest, kernel bridge + TAP: {tcp_k:?} Mbit/s, median {k:.0}");
        println!("ratio vhost-user/kernel: {:.3}", d / k);
        let (nd, nk) = (median(ns_dp.clone()), median(ns_k.clone()));
        println!("TCP guest->namespace, vhost-user, dataplanes and router: {ns_dp:?} Mbit/s, median {nd:.0}");
        println!("TCP guest->namespace, kernel bridge + veth: {ns_k:?} Mbit/s, median {nk:.0}");
        println!("ratio vhost-user/kernel: {:.3}", nd / nk);
        println!("64-byte UDP guest->guest, vhost-user: {pps_dp:?} pps, median {pd:.0}");
        println!("64-byte UDP guest->guest, kernel: {pps_k:?} pps, median {pk:.0}");
        println!("ratio vhost-user/kernel: {:.3}", pd / pk);
        println!(
            "dataplane CPU per Gbit/s of TCP (both dataplanes): {cpu_per_gbit:?} CPU-s/s, median {:.2}",
            median(cpu_per_gbit.clone())
        );
        drop((va, vb, ka, kb));
        drop(topo);
        a.service.shutdown().await;
        b.service.shutdown().await;
    });
}
