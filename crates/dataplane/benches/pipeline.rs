//! Dataplane benchmarks (bench binary, release profile): packets per second on one core for the established-flow
//! fast paths and for new flows, flow-table memory at one million flows, and Maglev disruption.
//!
//! Run: `cargo bench -p ironnet-dataplane --bench pipeline` (optional argument: a filter substring). For
//! instruction counts under `valgrind --tool=callgrind`, shorten the run with `PIPELINE_PACKETS` (packets per timed
//! round, default 2,000,000) and `PIPELINE_NEW_FLOWS` (flows per first-packet run, default 1,000,000).
//! Every figure is the median of `ROUNDS` timed rounds. Each round refills the batch from template frames (a 64-byte
//! copy per packet, standing in for the NIC/TAP receive copy) and processes it.
//!
//! Built with the `uncounted` feature, the pipeline keeps no counters and the rounds take no metrics snapshot:
//! `benches/metrics_cost.sh` runs both builds alternately to measure what metrics cost. Otherwise every timed round
//! ends with one [`Dataplane::metrics`] snapshot, as a scrape would take (far more often than a 15 s scrape).
//!
//! Two rates are printed per scenario: packets per wall-clock second, and packets per second of CPU time the
//! benchmark thread actually got (from `/proc/thread-self/schedstat`). On a machine shared with other work the
//! second is the one that compares across runs: it does not count the time the thread waited for a core.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ironnet_dataplane::api::{CreateInterface, CreateLoadBalancer, L4Proto, LbPort, Route};
use ironnet_dataplane::maglev::Maglev;
use ironnet_dataplane::{Batch, Dataplane, DataplaneConfig, MacAddr, PortConfig, PortId, PortKind, Verdict};

const BATCH: usize = 32;
const ROUNDS: usize = 11;
const VNI: Option<ironnet_vni::Vni> = Some(ironnet_vni::vni!(100));

struct Env {
    dp: Dataplane,
    pf: PortId,
    vf: [PortId; 2],
    underlay: [Ipv6Addr; 2],
}

fn env(max_flows: usize) -> Env {
    let mut c = DataplaneConfig::new("fc00:1::1".parse().unwrap());
    c.router_mac = MacAddr([2, 0xee, 0, 0, 0, 1]);
    c.max_flows = max_flows;
    let mut dp = Dataplane::new(c).unwrap();
    let pf = dp
        .add_port(PortConfig {
            kind: PortKind::Pf,
            mac: MacAddr([2, 0, 0, 0, 0, 0xf0]),
            name: "pf0".into(),
        })
        .unwrap();
    let vf = [0u8, 1].map(|i| {
        dp.add_port(PortConfig {
            kind: PortKind::Vf,
            mac: MacAddr([2, 0, 0, 0, 0, 0x10 + i]),
            name: format!("vf{i}"),
        })
        .unwrap()
    });
    dp.initialize();
    let underlay = [0usize, 1].map(|i| {
        dp.create_interface(CreateInterface {
            id: format!("vm{i}"),
            vni: VNI,
            ipv4: Some(Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
            ipv6: None,
            port: vf[i],
            pxe: None,
            hostname: None,
            preferred_underlay: None,
        })
        .unwrap()
    });
    dp.create_route(
        VNI,
        Route {
            prefix: "0.0.0.0/0".parse().unwrap(),
            nexthop_vni: VNI,
            nexthop: "fc00:2::1".parse().unwrap(),
        },
    )
    .unwrap();
    Env { dp, pf, vf, underlay }
}

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for w in b.chunks(2) {
        s += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A 64-byte Ethernet/IPv4/UDP frame (18 bytes of payload; no FCS).
fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, sp: u16, dp: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12..14].copy_from_slice(&[8, 0]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = csum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[20..22].copy_from_slice(&sp.to_be_bytes());
    ip[22..24].copy_from_slice(&dp.to_be_bytes());
    ip[24..26].copy_from_slice(&30u16.to_be_bytes());
    f
}

fn tcp_frame(src: Ipv4Addr, dst: Ipv4Addr, sp: u16, dp: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12..14].copy_from_slice(&[8, 0]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = csum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[20..22].copy_from_slice(&sp.to_be_bytes());
    ip[22..24].copy_from_slice(&dp.to_be_bytes());
    ip[32] = 0x50;
    ip[33] = 0x10;
    f
}

/// Wraps an Ethernet/IPv4 frame's IP packet into Ethernet/IPv6 to `dst`.
fn tunnel(inner: &[u8], dst: Ipv6Addr) -> Vec<u8> {
    let ip = &inner[14..];
    let mut f = vec![0u8; 54];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&(ip.len() as u16).to_be_bytes());
    f[20] = 4;
    f[21] = 64;
    f[22..38].copy_from_slice(&"fc00:2::1".parse::<Ipv6Addr>().unwrap().octets());
    f[38..54].copy_from_slice(&dst.octets());
    f.extend_from_slice(ip);
    f
}

/// A size from the environment, or `default`.
fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat; `None` elsewhere, then only wall time is shown).
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A stopwatch for wall time and this thread's CPU time.
struct Clock {
    wall: Instant,
    cpu: Option<u64>,
}

impl Clock {
    fn start() -> Self {
        Clock {
            cpu: cpu_ns(),
            wall: Instant::now(),
        }
    }

    /// Mpps for `packets` since `start`: (wall-clock rate, CPU-time rate).
    fn mpps(&self, packets: usize) -> (f64, f64) {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = match (self.cpu, cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => wall,
        };
        (packets as f64 / wall / 1e6, packets as f64 / cpu / 1e6)
    }
}

/// Medians of the wall-clock and CPU-time rates.
fn medians(v: &[(f64, f64)]) -> (f64, f64) {
    (
        median(v.iter().map(|r| r.0).collect()),
        median(v.iter().map(|r| r.1).collect()),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What a metrics scrape costs the packet thread: one snapshot (none in the `uncounted` baseline).
fn scrape(dp: &Dataplane) {
    if cfg!(not(feature = "uncounted")) {
        black_box(dp.metrics());
    }
}

/// Mpps of processing `frames` (cycled) on `port`, established flows (one warm-up pass first).
fn run_established(name: &str, e: &mut Env, port: PortId, frames: &[Vec<u8>], expect: Option<PortId>) {
    let mut batch = Batch::with_capacity(BATCH);
    let mut now = 1_000_000_000u64;
    let per_round = env_usize("PIPELINE_PACKETS", 2_000_000);
    let fill = |batch: &mut Batch, i: &mut usize| {
        batch.clear();
        for _ in 0..BATCH {
            batch.push(port, &frames[*i % frames.len()]);
            *i += 1;
        }
    };
    let mut i = 0;
    for _ in 0..(frames.len() / BATCH + 2) {
        fill(&mut batch, &mut i);
        e.dp.process(now, &mut batch);
    }
    if let Some(out) = expect {
        assert!(
            batch.packets().iter().all(|p| p.verdict() == Verdict::Tx(out)),
            "{name}: {:?}",
            batch.packets()[0].verdict()
        );
    }
    let mut results = Vec::new();
    for _ in 0..ROUNDS {
        let clock = Clock::start();
        for _ in 0..per_round / BATCH {
            fill(&mut batch, &mut i);
            now += 1000;
            e.dp.process(now, &mut batch);
            black_box(batch.packets()[0].data()[0]);
        }
        scrape(&e.dp);
        results.push(clock.mpps(per_round / BATCH * BATCH));
    }
    let (wall, cpu) = medians(&results);
    println!("{name:<40} {wall:>8.2} Mpps wall, {cpu:>8.2} Mpps per CPU-second (median of {ROUNDS})");
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let want = |n: &str| n.contains(filter.as_str());
    let flows = 1024u16;
    let remote = Ipv4Addr::new(8, 8, 8, 8);
    let vm0 = Ipv4Addr::new(10, 0, 0, 1);
    let vm1 = Ipv4Addr::new(10, 0, 0, 2);

    if want("vm_to_vm") {
        let mut e = env(1 << 20);
        let frames: Vec<Vec<u8>> = (0..flows).map(|i| udp_frame(vm0, vm1, 10_000 + i, 80)).collect();
        let (vf0, vf1) = (e.vf[0], e.vf[1]);
        run_established(
            "vm_to_vm (same host, 1024 flows)",
            &mut e,
            vf0,
            &frames,
            Some(vf1),
        );
    }
    if want("encap") {
        let mut e = env(1 << 20);
        let frames: Vec<Vec<u8>> = (0..flows)
            .map(|i| udp_frame(vm0, remote, 10_000 + i, 53))
            .collect();
        let (vf0, pf) = (e.vf[0], e.pf);
        run_established("vm_to_remote encap (1024 flows)", &mut e, vf0, &frames, Some(pf));
    }
    if want("decap") {
        let mut e = env(1 << 20);
        let u = e.underlay[0];
        let frames: Vec<Vec<u8>> = (0..flows)
            .map(|i| tunnel(&udp_frame(remote, vm0, 53, 10_000 + i), u))
            .collect();
        let (pf, vf0) = (e.pf, e.vf[0]);
        run_established("remote_to_vm decap (1024 flows)", &mut e, pf, &frames, Some(vf0));
    }
    if want("nat") {
        let mut e = env(1 << 20);
        e.dp.create_nat("vm0", Ipv4Addr::new(45, 0, 0, 1).into(), 1024, 65535, None)
            .unwrap();
        let frames: Vec<Vec<u8>> = (0..flows)
            .map(|i| udp_frame(vm0, remote, 10_000 + i, 53))
            .collect();
        let (vf0, pf) = (e.vf[0], e.pf);
        run_established("nat outbound (1024 flows)", &mut e, vf0, &frames, Some(pf));
    }
    if want("lb") {
        let mut e = env(1 << 20);
        let lb_ip = Ipv4Addr::new(45, 0, 0, 9);
        let ul =
            e.dp.create_loadbalancer(CreateLoadBalancer {
                id: "lb".into(),
                vni: VNI,
                ip: lb_ip.into(),
                ports: vec![LbPort {
                    protocol: L4Proto::Tcp,
                    port: 80,
                }],
                preferred_underlay: None,
            })
            .unwrap();
        for i in 0..64u16 {
            e.dp.create_lb_target("lb", Ipv6Addr::new(0xfc00, 7, 0, 0, 0xd000, 0, 0, i).into())
                .unwrap();
        }
        let frames: Vec<Vec<u8>> = (0..flows)
            .map(|i| tunnel(&tcp_frame(remote, lb_ip, 10_000 + i, 80), ul))
            .collect();
        let pf = e.pf;
        run_established(
            "lb forward (1024 flows, 64 targets)",
            &mut e,
            pf,
            &frames,
            Some(pf),
        );
    }
    if want("new_flows") {
        // First packet of a flow: every packet opens a new VM→remote flow (route, firewall, flow insert, encap).
        let n = env_usize("PIPELINE_NEW_FLOWS", 1_000_000) / BATCH * BATCH;
        let mut results = Vec::new();
        let mut reserved = Vec::new();
        for round in 0..10 {
            let mut e = env(1 << 20);
            if round % 2 == 1 {
                e.dp.reserve_flows(n);
            }
            // Frames are stamped from one template (distinct destination and source port per packet), so the
            // benchmark's own input stays in cache.
            let mut template = udp_frame(vm0, remote, 0, 53);
            let mut batch = Batch::with_capacity(BATCH);
            let clock = Clock::start();
            for chunk in 0..n / BATCH {
                batch.clear();
                for j in 0..BATCH {
                    let i = (chunk * BATCH + j) as u32;
                    template[30..34].copy_from_slice(&(0x0800_0000 + (i >> 16)).to_be_bytes());
                    template[34..36].copy_from_slice(&(i as u16).to_be_bytes());
                    batch.push(e.vf[0], &template);
                }
                e.dp.process(1, &mut batch);
            }
            scrape(&e.dp);
            let rate = clock.mpps(n);
            assert_eq!(e.dp.flow_count(), n);
            if round % 2 == 1 {
                reserved.push(rate);
                continue;
            }
            results.push(rate);
            if results.len() == 1 {
                let mem = e.dp.flow_table_memory();
                println!(
                    "{:<40} {:>8.1} MiB flow table for {} flows ({} B/flow)",
                    "memory of the flow table",
                    mem as f64 / (1 << 20) as f64,
                    n,
                    mem / n
                );
            }
        }
        let (wall, cpu) = medians(&results);
        println!(
            "{:<40} {wall:>8.2} Mpps wall, {cpu:>8.2} Mpps per CPU-second (median of 5, table filling 0 → {n})",
            "new flows (first packet)",
        );
        let (wall, cpu) = medians(&reserved);
        println!(
            "{:<40} {wall:>8.2} Mpps wall, {cpu:>8.2} Mpps per CPU-second (median of 5, reserve_flows({n}) first)",
            "new flows, preallocated table",
        );
    }
    if want("maglev") {
        let all: Vec<Ipv6Addr> = (0..64u16)
            .map(|i| Ipv6Addr::new(0xfc00, 7, 0, 0, 0xd000, 0, 0, i))
            .collect();
        let before = Maglev::new(&all);
        let mut worst: f64 = 0.0;
        let mut sum = 0.0;
        for removed in 0..64 {
            let rest: Vec<Ipv6Addr> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != removed)
                .map(|(_, a)| *a)
                .collect();
            let after = Maglev::new(&rest);
            let (mut surviving, mut moved) = (0u64, 0u64);
            let mut h = 0x1234_5678_9abc_def0u64;
            for _ in 0..1_000_000 {
                h ^= h << 13;
                h ^= h >> 7;
                h ^= h << 17;
                let b = before.select(h).unwrap();
                if b == all[removed] {
                    continue;
                }
                surviving += 1;
                moved += u64::from(after.select(h) != Some(b));
            }
            let pct = moved as f64 * 100.0 / surviving as f64;
            worst = worst.max(pct);
            sum += pct;
        }
        println!(
            "{:<40} {:>8.3} % mean, {:.3} % worst (64 → 63 backends, 1M flow hashes, each backend removed once)",
            "maglev disruption",
            sum / 64.0,
            worst
        );
        let start = Instant::now();
        black_box(Maglev::new(&all));
        println!(
            "{:<40} {:>8.2} ms",
            "maglev table build (64 backends)",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
