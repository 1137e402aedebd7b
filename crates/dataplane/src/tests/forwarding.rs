//! Routing, encapsulation, decapsulation and connection tracking.

use super::*;
use crate::api::Route;
use crate::stats::DropReason;

#[test]
fn vm_to_vm_on_the_same_host_rewrites_only_the_ethernet_header() {
    let mut env = Env::new();
    let ip = ip4_udp(vm_ip(0), vm_ip(1), 1234, 80, b"hello");
    let (v, out) = env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip));
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(out, frame(VM_MACS[1], VF_MACS[1], &ip));
    // IPv6 too.
    let ip = ip6_udp(vm_ip6(0), vm_ip6(1), 1234, 80, b"hello6");
    let (v, out) = env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip));
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(out, frame(VM_MACS[1], VF_MACS[1], &ip));
}

#[test]
fn ethernet_padding_is_removed_before_forwarding() {
    let mut env = Env::new();
    let ip = ip4_udp(vm_ip(0), vm_ip(1), 1234, 80, b"x");
    let mut f = frame(VF_MACS[0], VM_MACS[0], &ip);
    f.resize(60, 0);
    let (v, out) = env.run(env.vf[0], &f);
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(out, frame(VM_MACS[1], VF_MACS[1], &ip));
}

#[test]
fn vm_to_remote_is_encapsulated_to_the_route_next_hop() {
    let mut env = Env::new();
    let remote: Ipv6Addr = "fc00:9::d0:0:0:7".parse().unwrap();
    env.dp
        .create_route(
            VNI,
            Route {
                prefix: "10.1.0.0/16".parse().unwrap(),
                nexthop_vni: VNI,
                nexthop: remote,
            },
        )
        .unwrap();
    env.dp
        .create_route(
            VNI,
            Route {
                prefix: "fd01::/64".parse().unwrap(),
                nexthop_vni: VNI,
                nexthop: remote,
            },
        )
        .unwrap();
    let ip = ip4_udp(vm_ip(0), Ipv4Addr::new(10, 1, 2, 3), 1234, 80, b"abc");
    let (v, out) = env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], remote, &ip));
    let ip6 = ip6_udp(vm_ip6(0), "fd01::5".parse().unwrap(), 1234, 80, b"abc");
    let (v, out) = env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip6));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], remote, &ip6));
    assert_eq!(out[14 + 6], 41);
    assert_eq!(out[14 + 7], 64);
}

#[test]
fn remote_to_vm_is_decapsulated_via_the_vnf_table() {
    let mut env = Env::new();
    let ip = ip4_udp(Ipv4Addr::new(10, 1, 2, 3), vm_ip(1), 53, 1234, b"reply");
    let f = tunnel(PF0_MAC, ROUTER_MAC, router6(), env.underlay[1], &ip);
    let (v, out) = env.run(env.pf[0], &f);
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(out, frame(VM_MACS[1], VF_MACS[1], &ip));
    let ip6 = ip6_udp("fd01::5".parse().unwrap(), vm_ip6(1), 53, 1234, b"reply6");
    let (v, out) = env.run(
        env.pf[1],
        &tunnel(PF1_MAC, ROUTER_MAC, router6(), env.underlay[1], &ip6),
    );
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(out, frame(VM_MACS[1], VF_MACS[1], &ip6));
}

#[test]
fn uplink_drops_are_counted_by_reason() {
    let mut env = Env::new();
    let ip = ip4_udp(Ipv4Addr::new(10, 1, 2, 3), vm_ip(1), 53, 1234, b"x");
    let unknown: Ipv6Addr = "fc00:1::dead".parse().unwrap();
    assert_eq!(
        env.run(env.pf[0], &tunnel(PF0_MAC, ROUTER_MAC, router6(), unknown, &ip))
            .0,
        Verdict::Drop(DropReason::UnknownUnderlay)
    );
    assert_eq!(
        env.run(env.pf[0], &frame(PF0_MAC, ROUTER_MAC, &ip)).0,
        Verdict::Drop(DropReason::UntunnelledOnUplink)
    );
    let plain6 = ip6_udp(router6(), host(), 1, 2, b"x");
    assert_eq!(
        env.run(env.pf[0], &frame(PF0_MAC, ROUTER_MAC, &plain6)).0,
        Verdict::Drop(DropReason::UntunnelledOnUplink)
    );
    assert_eq!(env.dp.stats().dropped(DropReason::UnknownUnderlay), 1);
    assert_eq!(env.dp.stats().dropped(DropReason::UntunnelledOnUplink), 2);
    assert_eq!(env.dp.stats().port(env.pf[0]).dropped, 3);
}

#[test]
fn no_route_no_transit_and_malformed_are_dropped() {
    let mut env = Env::new();
    let ip = ip4_udp(vm_ip(0), Ipv4Addr::new(192, 168, 0, 1), 1, 2, b"x");
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip)).0,
        Verdict::Drop(DropReason::NoRoute)
    );
    // Uplink → VIP-less interface address in the VNI but routed externally: no transit.
    env.default_route();
    env.dp
        .create_vip("vm0", "1.2.3.4".parse().unwrap(), None)
        .unwrap();
    let vip_underlay = env.dp.get_vip("vm0").unwrap().underlay;
    let transit = ip4_udp(Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(9, 9, 9, 9), 1, 2, b"x");
    let (v, _) = env.run(
        env.pf[0],
        &tunnel(PF0_MAC, ROUTER_MAC, router6(), vip_underlay, &transit),
    );
    assert_eq!(v, Verdict::Drop(DropReason::NatNoMatch));
    // Truncated IPv4 header, bad IHL, bad total length.
    let mut bad = frame(VF_MACS[0], VM_MACS[0], &ip);
    bad.truncate(14 + 10);
    assert_eq!(env.run(env.vf[0], &bad).0, Verdict::Drop(DropReason::Malformed));
    let mut bad = frame(VF_MACS[0], VM_MACS[0], &ip);
    bad[14] = 0x44;
    assert_eq!(env.run(env.vf[0], &bad).0, Verdict::Drop(DropReason::Malformed));
    let mut bad = frame(VF_MACS[0], VM_MACS[0], &ip);
    bad[16] = 0xff;
    assert_eq!(env.run(env.vf[0], &bad).0, Verdict::Drop(DropReason::Malformed));
    // SCTP is not forwarded.
    let mut sctp = ip.clone();
    sctp[9] = 132;
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &sctp)).0,
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
    // Unbound VF.
    assert_eq!(
        env.run(env.vf[2], &frame(VF_MACS[2], VM_MACS[2], &ip)).0,
        Verdict::Drop(DropReason::NoInterface)
    );
    assert_eq!(
        env.run(PortId(99), &frame(VF_MACS[2], VM_MACS[2], &ip)).0,
        Verdict::Drop(DropReason::UnknownPort)
    );
}

#[test]
fn wcmp_spreads_ipv4_flows_over_both_uplinks() {
    let mut c = config();
    c.wcmp_percent = 50;
    let mut env = Env::with_config(c);
    env.default_route();
    let mut on = [0u32; 2];
    for sp in 0..200u16 {
        let ip = ip4_udp(vm_ip(0), Ipv4Addr::new(8, 8, 8, 8), 10_000 + sp, 53, b"q");
        match env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip)) {
            (Verdict::Tx(p), out) if p == env.pf[0] => {
                on[0] += 1;
                assert_eq!(out[6..12], PF0_MAC.0);
            }
            (Verdict::Tx(p), out) if p == env.pf[1] => {
                on[1] += 1;
                assert_eq!(out[6..12], PF1_MAC.0);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(on[0] > 50 && on[1] > 50, "{on:?}");
}

#[test]
fn tcp_flows_age_by_state() {
    let mut env = Env::new();
    env.default_route();
    let remote = Ipv4Addr::new(8, 8, 8, 8);
    let send = |env: &mut Env, ip: &[u8], from_vm: bool| {
        if from_vm {
            env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], ip)).0
        } else {
            let u = env.underlay[0];
            env.run(env.pf[0], &tunnel(PF0_MAC, ROUTER_MAC, router6(), u, ip))
                .0
        }
    };
    // Established connection.
    assert!(matches!(
        send(
            &mut env,
            &ip4_tcp(vm_ip(0), remote, 5000, 443, true, false, b""),
            true
        ),
        Verdict::Tx(_)
    ));
    assert!(matches!(
        send(
            &mut env,
            &ip4_tcp(remote, vm_ip(0), 443, 5000, true, true, b""),
            false
        ),
        Verdict::Tx(_)
    ));
    assert!(matches!(
        send(
            &mut env,
            &ip4_tcp(vm_ip(0), remote, 5000, 443, false, true, b""),
            true
        ),
        Verdict::Tx(_)
    ));
    // Half-open connection and a UDP flow.
    send(
        &mut env,
        &ip4_tcp(vm_ip(0), remote, 5001, 443, true, false, b""),
        true,
    );
    send(&mut env, &ip4_udp(vm_ip(0), remote, 5002, 53, b"q"), true);
    assert_eq!(env.dp.flow_count(), 3);
    env.dp.tick(env.now);
    assert_eq!(env.dp.flow_count(), 3);
    env.now += 31 * SEC;
    env.dp.tick(env.now);
    assert_eq!(
        env.dp.flow_count(),
        1,
        "only the established TCP flow survives 31 s idle"
    );
    env.now += 86_401 * SEC;
    env.dp.tick(env.now);
    assert_eq!(env.dp.flow_count(), 0);
    assert_eq!(env.dp.stats().flows_aged, 3);
}

#[test]
fn batches_keep_order_and_count_per_port() {
    let mut env = Env::new();
    let mut b = Batch::with_capacity(4);
    let good = frame(VF_MACS[0], VM_MACS[0], &ip4_udp(vm_ip(0), vm_ip(1), 1, 2, b"a"));
    b.push(env.vf[0], &good);
    b.push(env.vf[0], &[1, 2, 3]);
    b.push(
        env.vf[1],
        &frame(VF_MACS[1], VM_MACS[1], &ip4_udp(vm_ip(1), vm_ip(0), 2, 1, b"b")),
    );
    env.dp.process(env.now, &mut b);
    let v: Vec<Verdict> = b.packets().iter().map(|p| p.verdict()).collect();
    assert_eq!(
        v,
        vec![
            Verdict::Tx(env.vf[1]),
            Verdict::Drop(DropReason::NotEthernet),
            Verdict::Tx(env.vf[0])
        ]
    );
    assert_eq!(b.transmits().count(), 2);
    let s = env.dp.stats();
    assert_eq!(
        s.port(env.vf[0]).rx_packets,
        2 + 1,
        "two here plus the ARP reply of the setup"
    );
    assert_eq!(s.port(env.vf[1]).tx_packets, 1);
    b.clear();
    assert!(b.is_empty());
}

/// Established flows cache their route lookup; a route change must still take effect on the next packet of every
/// established flow (the cache is revalidated by the forwarding epoch), including a route's removal.
#[test]
fn route_changes_apply_to_established_flows() {
    let mut env = Env::new();
    let (a, b): (Ipv6Addr, Ipv6Addr) = ("fc00:9::a".parse().unwrap(), "fc00:9::b".parse().unwrap());
    let route = |nexthop| Route {
        prefix: "10.1.0.0/16".parse().unwrap(),
        nexthop_vni: VNI,
        nexthop,
    };
    env.dp.create_route(VNI, route(a)).unwrap();
    let ip = ip4_udp(vm_ip(0), Ipv4Addr::new(10, 1, 2, 3), 1234, 80, b"abc");
    let f = frame(VF_MACS[0], VM_MACS[0], &ip);
    for _ in 0..2 {
        let (v, out) = env.run(env.vf[0], &f);
        assert_eq!(v, Verdict::Tx(env.pf[0]));
        assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], a, &ip));
    }
    // A more specific route to another next hop wins for the established flow.
    env.dp
        .create_route(
            VNI,
            Route {
                prefix: "10.1.2.0/24".parse().unwrap(),
                nexthop_vni: VNI,
                nexthop: b,
            },
        )
        .unwrap();
    let (_, out) = env.run(env.vf[0], &f);
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], b, &ip));
    env.dp.delete_route(VNI, "10.1.2.0/24".parse().unwrap()).unwrap();
    let (_, out) = env.run(env.vf[0], &f);
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], a, &ip));
    env.dp.delete_route(VNI, "10.1.0.0/16".parse().unwrap()).unwrap();
    let (v, _) = env.run(env.vf[0], &f);
    assert_eq!(v, Verdict::Drop(DropReason::NoRoute));
    assert_eq!(
        env.dp.flow_count(),
        1,
        "the flow itself survives the route change"
    );
}
