//! Fuzz target: arbitrary frames on arbitrary ports of a fully configured dataplane must never panic, and every
//! frame must end with a verdict that is counted.
//!
//! Input layout: a sequence of records `[port: u8][len: u8][len bytes]`; the remainder is one last frame on the
//! port named by the first byte. Ports 0–1 are PFs, 2–3 VFs with interfaces vm0 (10.0.0.1, fd00::1, underlay
//! fc00:1::d000:8000:0:1) and vm1 (10.0.0.2), 4 an unbound VF. NAT 45.0.0.1 (underlay …:11), VIP 45.0.0.2 (…:12),
//! LB 45.0.0.3 TCP/80 (…:13). `seeds.py` writes a seed corpus of valid frames for these.
#![no_main]

use std::net::Ipv4Addr;

use ironnet_dataplane::api::{CreateInterface, CreateLoadBalancer, L4Proto, LbPort, NeighborNat, Route};
use ironnet_dataplane::{Batch, Dataplane, DataplaneConfig, MacAddr, PortConfig, PortId, PortKind, Verdict};
use ironnet_vni::{Vni, vni};
use libfuzzer_sys::fuzz_target;

const VNI: Option<Vni> = Some(vni!(100));

fn dataplane() -> Dataplane {
    let mut c = DataplaneConfig::new("fc00:1::1".parse().unwrap());
    c.enable_ipv6_overlay = true;
    c.max_flows = 4096;
    let mut dp = Dataplane::new(c).unwrap();
    for (i, kind) in [PortKind::Pf, PortKind::Pf, PortKind::Vf, PortKind::Vf, PortKind::Vf].into_iter().enumerate() {
        dp.add_port(PortConfig { kind, mac: MacAddr([2, 0, 0, 0, 0, i as u8]), name: format!("p{i}") }).unwrap();
    }
    dp.initialize();
    for i in 0..2u8 {
        dp.create_interface(CreateInterface {
            id: format!("vm{i}"),
            vni: VNI,
            ipv4: Some(Ipv4Addr::new(10, 0, 0, i + 1)),
            ipv6: Some(format!("fd00::{}", i + 1).parse().unwrap()),
            port: PortId(2 + u16::from(i)),
            pxe: None,
            hostname: Some("vm".into()),
            preferred_underlay: Some(format!("fc00:1::d000:8000:0:{}", i + 1).parse().unwrap()),
        })
        .unwrap();
    }
    dp.create_route(VNI, Route { prefix: "0.0.0.0/0".parse().unwrap(), nexthop_vni: VNI, nexthop: "fc00:2::1".parse().unwrap() }).unwrap();
    dp.create_route(VNI, Route { prefix: "::/0".parse().unwrap(), nexthop_vni: VNI, nexthop: "fc00:2::1".parse().unwrap() }).unwrap();
    dp.create_nat("vm0", "45.0.0.1".parse().unwrap(), 100, 110, Some("fc00:1::d000:8000:0:11".parse().unwrap())).unwrap();
    dp.create_vip("vm1", "45.0.0.2".parse().unwrap(), Some("fc00:1::d000:8000:0:12".parse().unwrap())).unwrap();
    dp.create_neighbor_nat(NeighborNat { nat_ip: "45.0.0.1".parse().unwrap(), vni: VNI, min_port: 200, max_port: 300, underlay: "fc00:3::1".parse().unwrap() }).unwrap();
    dp.create_loadbalancer(CreateLoadBalancer {
        id: "lb".into(),
        vni: VNI,
        ip: "45.0.0.3".parse().unwrap(),
        ports: vec![LbPort { protocol: L4Proto::Tcp, port: 80 }],
        preferred_underlay: Some("fc00:1::d000:8000:0:13".parse().unwrap()),
    })
    .unwrap();
    dp.create_lb_target("lb", "fc00:4::1".parse::<std::net::Ipv6Addr>().unwrap().into()).unwrap();
    dp
}

thread_local! {
    // Built once: a fresh dataplane per input spends most of its time building the Maglev table. State (flows, NAT
    // ports, learned MACs) carries over between inputs, which also exercises aging and reuse.
    static STATE: std::cell::RefCell<(Dataplane, u64)> = std::cell::RefCell::new((dataplane(), 1));
}

fuzz_target!(|data: &[u8]| {
    STATE.with(|s| run(&mut s.borrow_mut(), data));
});

fn run((dp, now): &mut (Dataplane, u64), data: &[u8]) {
    *now += 1_000_000_000;
    let mut batch = Batch::with_capacity(16);
    let mut rest = data;
    while rest.len() >= 2 && usize::from(rest[1]) + 2 <= rest.len() {
        let (port, len) = (rest[0], usize::from(rest[1]));
        batch.push(PortId(u16::from(port % 6)), &rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    if let Some((&p, frame)) = rest.split_first() {
        batch.push(PortId(u16::from(p % 6)), frame);
    }
    let before = dp.stats().dropped_total();
    dp.process(*now, &mut batch);
    let drops = batch.packets().iter().filter(|p| matches!(p.verdict(), Verdict::Drop(_))).count() as u64;
    assert!(batch.packets().iter().all(|p| p.verdict() != Verdict::Pending));
    assert_eq!(dp.stats().dropped_total() - before, drops);
    dp.tick(*now);
}
