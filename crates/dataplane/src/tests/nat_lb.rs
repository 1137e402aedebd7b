//! VIP, NAT gateway (ports, reuse, relay, echo, ICMP errors) and load balancing.

use super::*;
use crate::api::{CreateLoadBalancer, L4Proto, LbPort, NeighborNat};
use crate::stats::DropReason;

fn from_vm(env: &mut Env, i: usize, ip: &[u8]) -> (Verdict, Vec<u8>) {
    let p = env.vf[i];
    env.run(p, &frame(VF_MACS[i], VM_MACS[i], ip))
}

fn from_router(env: &mut Env, outer_dst: Ipv6Addr, ip: &[u8]) -> (Verdict, Vec<u8>) {
    let p = env.pf[0];
    env.run(p, &tunnel(PF0_MAC, ROUTER_MAC, router6(), outer_dst, ip))
}

#[test]
fn vip_translates_both_directions() {
    let mut env = Env::new();
    env.default_route();
    let vip = Ipv4Addr::new(45, 86, 6, 6);
    let vip_ul = env.dp.create_vip("vm0", vip.into(), None).unwrap();
    let remote = Ipv4Addr::new(8, 8, 8, 8);
    let (v, out) = from_vm(&mut env, 0, &ip4_udp(vm_ip(0), remote, 4000, 53, b"query"));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    let expect_inner = ip4_udp(vip, remote, 4000, 53, b"query");
    assert_eq!(
        out,
        tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], router6(), &expect_inner)
    );
    // Reply to the VIP underlay.
    let (v, out) = from_router(&mut env, vip_ul, &ip4_udp(remote, vip, 53, 4000, b"answer"));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(
        out,
        frame(
            VM_MACS[0],
            VF_MACS[0],
            &ip4_udp(remote, vm_ip(0), 53, 4000, b"answer")
        )
    );
    // A new inbound connection to the VIP (TCP) is DNATed.
    let (v, out) = from_router(
        &mut env,
        vip_ul,
        &ip4_tcp(remote, vip, 3333, 22, true, false, b""),
    );
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(
        out,
        frame(
            VM_MACS[0],
            VF_MACS[0],
            &ip4_tcp(remote, vm_ip(0), 3333, 22, true, false, b"")
        )
    );
    // The VM's answer leaves with the VIP as source.
    let (v, out) = from_vm(&mut env, 0, &ip4_tcp(vm_ip(0), remote, 22, 3333, true, true, b""));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(out[54..], ip4_tcp(vip, remote, 22, 3333, true, true, b"")[..]);
    // Deleting the VIP flushes its flows.
    let before = env.dp.flow_count();
    env.dp.delete_vip("vm0").unwrap();
    assert!(env.dp.flow_count() < before);
    assert_eq!(
        from_router(&mut env, vip_ul, &ip4_udp(remote, vip, 53, 4000, b"late")).0,
        Verdict::Drop(DropReason::UnknownUnderlay)
    );
}

#[test]
fn vm_to_local_vip_is_dnated() {
    let mut env = Env::new();
    let vip = Ipv4Addr::new(45, 86, 6, 7);
    env.dp.create_vip("vm1", vip.into(), None).unwrap();
    let (v, out) = from_vm(&mut env, 0, &ip4_udp(vm_ip(0), vip, 1000, 80, b"hi"));
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(
        out,
        frame(
            VM_MACS[1],
            VF_MACS[1],
            &ip4_udp(vm_ip(0), vm_ip(1), 1000, 80, b"hi")
        )
    );
    let (v, out) = from_vm(&mut env, 1, &ip4_udp(vm_ip(1), vm_ip(0), 80, 1000, b"ho"));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(
        out,
        frame(VM_MACS[0], VF_MACS[0], &ip4_udp(vip, vm_ip(0), 80, 1000, b"ho"))
    );
}

#[test]
fn nat_allocates_ports_in_range_reuses_them_and_translates_replies() {
    let mut env = Env::new();
    env.default_route();
    let nat = Ipv4Addr::new(45, 86, 7, 1);
    let nat_ul = env.dp.create_nat("vm0", nat.into(), 1000, 1002, None).unwrap();
    let (d1, d2) = (Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(1, 1, 1, 1));
    let (v, out) = from_vm(&mut env, 0, &ip4_udp(vm_ip(0), d1, 4000, 53, b"q1"));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    let inner = &out[54..];
    assert_eq!(inner[12..16], nat.octets());
    let port = u16::from_be_bytes([inner[20], inner[21]]);
    assert!((1000..1002).contains(&port), "max is exclusive: {port}");
    assert_eq!(inner, &ip4_udp(nat, d1, port, 53, b"q1")[..]);
    // Same socket, other destination: same NAT port.
    let (_, out2) = from_vm(&mut env, 0, &ip4_udp(vm_ip(0), d2, 4000, 53, b"q2"));
    assert_eq!(u16::from_be_bytes([out2[54 + 20], out2[54 + 21]]), port);
    // Reply is translated back.
    let (v, out) = from_router(&mut env, nat_ul, &ip4_udp(d1, nat, 53, port, b"a1"));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(
        out,
        frame(VM_MACS[0], VF_MACS[0], &ip4_udp(d1, vm_ip(0), 53, 4000, b"a1"))
    );
    // Two more sockets to d1: one gets the other port, the next finds the range exhausted.
    assert!(matches!(
        from_vm(&mut env, 0, &ip4_udp(vm_ip(0), d1, 4001, 53, b"q")).0,
        Verdict::Tx(_)
    ));
    assert_eq!(
        from_vm(&mut env, 0, &ip4_udp(vm_ip(0), d1, 4002, 53, b"q")).0,
        Verdict::Drop(DropReason::NatExhausted)
    );
    // Unsolicited inbound to the NAT IP is dropped.
    assert_eq!(
        from_router(&mut env, nat_ul, &ip4_udp(d1, nat, 53, 7777, b"x")).0,
        Verdict::Drop(DropReason::NatNoMatch)
    );
    // Aging releases the ports.
    env.now += 40 * SEC;
    env.dp.tick(env.now);
    assert!(matches!(
        from_vm(&mut env, 0, &ip4_udp(vm_ip(0), d1, 4002, 53, b"q")).0,
        Verdict::Tx(_)
    ));
    let list = env.dp.list_local_nats(None).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].vm_ip, list[0].nat_ip, list[0].min_port, list[0].max_port),
        (vm_ip(0), nat, 1000, 1002)
    );
}

#[test]
fn nat_translates_echo_identifiers_and_icmp_errors() {
    let mut env = Env::new();
    env.default_route();
    let nat = Ipv4Addr::new(45, 86, 7, 2);
    let nat_ul = env.dp.create_nat("vm0", nat.into(), 2000, 2001, None).unwrap();
    let d = Ipv4Addr::new(8, 8, 4, 4);
    let (v, out) = from_vm(&mut env, 0, &ip4_echo(vm_ip(0), d, 0x1234, false));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(out[54..], ip4_echo(nat, d, 2000, false)[..]);
    let (v, out) = from_router(&mut env, nat_ul, &ip4_echo(d, nat, 2000, true));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(
        out,
        frame(VM_MACS[0], VF_MACS[0], &ip4_echo(d, vm_ip(0), 0x1234, true))
    );

    // UDP flow, then a port-unreachable error from the destination about the translated packet.
    let (_, out) = from_vm(&mut env, 0, &ip4_udp(vm_ip(0), d, 5555, 9999, b"data"));
    let sent = out[54..].to_vec();
    let nat_port = u16::from_be_bytes([sent[20], sent[21]]);
    let icmp_err = |inner: &[u8], dst: Ipv4Addr| {
        let mut msg = vec![3, 3, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&inner[..28]);
        let c = ref_checksum(&[&msg]);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let mut v = Vec::new();
        PacketBuilder::ipv4(d.octets(), dst.octets(), 64)
            .write(&mut v, IpNumber(1), &msg)
            .unwrap();
        v
    };
    let (v, out) = from_router(&mut env, nat_ul, &icmp_err(&sent, nat));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    let original = ip4_udp(vm_ip(0), d, 5555, 9999, b"data");
    assert_eq!(out, frame(VM_MACS[0], VF_MACS[0], &icmp_err(&original, vm_ip(0))));
    assert_ipv4_valid(&out[14..]);
    assert_ne!(nat_port, 5555);
}

#[test]
fn nat_ip_answers_echo_and_relays_neighbor_ranges() {
    let mut env = Env::new();
    env.default_route();
    let nat = Ipv4Addr::new(45, 86, 7, 3);
    let nat_ul = env.dp.create_nat("vm0", nat.into(), 100, 200, None).unwrap();
    let neighbor: Ipv6Addr = "fc00:5::d000:0:1:1".parse().unwrap();
    env.dp
        .create_neighbor_nat(NeighborNat {
            nat_ip: nat,
            vni: VNI,
            min_port: 200,
            max_port: 300,
            underlay: neighbor,
        })
        .unwrap();
    let d = Ipv4Addr::new(9, 9, 9, 9);
    // Echo request to the NAT IP is answered back through the tunnel from the host underlay.
    let (v, out) = from_router(&mut env, nat_ul, &ip4_echo(d, nat, 77, false));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(
        out,
        tunnel(
            ROUTER_MAC,
            PF0_MAC,
            host(),
            router6(),
            &ip4_echo(nat, d, 77, true)
        )
    );
    // A reply for a port of the neighbour's range is relayed to the neighbour unchanged.
    let ip = ip4_udp(d, nat, 53, 250, b"for-neighbor");
    let (v, out) = from_router(&mut env, nat_ul, &ip);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, host(), neighbor, &ip));
    assert_eq!(
        env.dp.create_neighbor_nat(NeighborNat {
            nat_ip: nat,
            vni: Some(ironnet_vni::vni!(7)),
            min_port: 250,
            max_port: 260,
            underlay: neighbor
        }),
        Err(crate::DpError::AlreadyExists)
    );
    env.dp.delete_neighbor_nat(nat.into(), VNI, 200, 300).unwrap();
    assert_eq!(
        from_router(&mut env, nat_ul, &ip4_udp(d, nat, 53, 251, b"x")).0,
        Verdict::Drop(DropReason::NatNoMatch)
    );
}

fn lb_env() -> (Env, Ipv4Addr, Ipv6Addr) {
    let mut env = Env::new();
    let lb_ip = Ipv4Addr::new(45, 86, 8, 8);
    let ul = env
        .dp
        .create_loadbalancer(CreateLoadBalancer {
            id: "lb1".into(),
            vni: VNI,
            ip: lb_ip.into(),
            ports: vec![LbPort {
                protocol: L4Proto::Tcp,
                port: 80,
            }],
            preferred_underlay: None,
        })
        .unwrap();
    (env, lb_ip, ul)
}

#[test]
fn load_balancer_forwards_flows_consistently_and_answers_echo() {
    let (mut env, lb_ip, lb_ul) = lb_env();
    let client = Ipv4Addr::new(100, 64, 0, 1);
    let syn = ip4_tcp(client, lb_ip, 40000, 80, true, false, b"");
    assert_eq!(
        from_router(&mut env, lb_ul, &syn).0,
        Verdict::Drop(DropReason::LbNoMatch),
        "no targets"
    );
    let targets: Vec<Ipv6Addr> = vec![
        "fc00:7::d000:0:0:1".parse().unwrap(),
        "fc00:8::d000:0:0:1".parse().unwrap(),
    ];
    for t in &targets {
        env.dp.create_lb_target("lb1", (*t).into()).unwrap();
    }
    let (v, out) = from_router(&mut env, lb_ul, &syn);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    let chosen = Ipv6Addr::from(<[u8; 16]>::try_from(&out[38..54]).unwrap());
    assert!(targets.contains(&chosen));
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, lb_ul, chosen, &syn));
    let ack = ip4_tcp(client, lb_ip, 40000, 80, false, true, b"data");
    let (_, out) = from_router(&mut env, lb_ul, &ack);
    assert_eq!(
        out,
        tunnel(ROUTER_MAC, PF0_MAC, lb_ul, chosen, &ack),
        "same backend for the flow"
    );
    // Many flows use both backends.
    let mut seen = std::collections::HashSet::new();
    for sp in 0..64u16 {
        let (_, out) = from_router(
            &mut env,
            lb_ul,
            &ip4_tcp(client, lb_ip, 1000 + sp, 80, true, false, b""),
        );
        seen.insert(out[38..54].to_vec());
    }
    assert_eq!(seen.len(), 2);
    // Unserved port, echo.
    assert_eq!(
        from_router(&mut env, lb_ul, &ip4_tcp(client, lb_ip, 1, 81, true, false, b"")).0,
        Verdict::Drop(DropReason::LbNoMatch)
    );
    let (v, out) = from_router(&mut env, lb_ul, &ip4_echo(client, lb_ip, 5, false));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(
        out,
        tunnel(
            ROUTER_MAC,
            PF0_MAC,
            host(),
            router6(),
            &ip4_echo(lb_ip, client, 5, true)
        )
    );
    // Removing the chosen target flushes its flows.
    env.dp.delete_lb_target("lb1", chosen.into()).unwrap();
    let (_, out) = from_router(&mut env, lb_ul, &ack);
    assert_ne!(out[38..54], chosen.octets());
}

#[test]
fn load_balancer_recirculates_to_a_local_lb_prefix() {
    let (mut env, lb_ip, lb_ul) = lb_env();
    let pfx_ul = env
        .dp
        .create_lb_prefix("vm1", format!("{lb_ip}/32").parse().unwrap(), None)
        .unwrap();
    env.dp.create_lb_target("lb1", pfx_ul.into()).unwrap();
    let client = Ipv4Addr::new(100, 64, 0, 2);
    let syn = ip4_tcp(client, lb_ip, 40001, 80, true, false, b"");
    let (v, out) = from_router(&mut env, lb_ul, &syn);
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(
        out,
        frame(VM_MACS[1], VF_MACS[1], &syn),
        "direct server return: inner destination stays the LB IP"
    );
    // The backend's reply leaves from its LB IP via the default route (direct server return), not NATed.
    env.default_route();
    let reply = ip4_tcp(lb_ip, client, 80, 40001, true, true, b"");
    let (v, out) = from_vm(&mut env, 1, &reply);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(
        out,
        tunnel(ROUTER_MAC, PF0_MAC, env.underlay[1], router6(), &reply)
    );
}

/// An etherparse-built IPv4 packet with DF cleared (dpservice/ironnet emit DF = 0), header checksum redone by the
/// reference implementation.
fn without_df(mut ip: Vec<u8>) -> Vec<u8> {
    ip[6] &= !0x40;
    ip[10] = 0;
    ip[11] = 0;
    let c = ref_checksum(&[&ip[..20]]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

#[test]
fn nat64_translates_udp_and_echo_both_ways() {
    let mut env = Env::new();
    env.dp
        .create_route(
            VNI,
            crate::api::Route {
                prefix: "::/0".parse().unwrap(),
                nexthop_vni: VNI,
                nexthop: router6(),
            },
        )
        .unwrap();
    let nat = Ipv4Addr::new(45, 86, 7, 64);
    let nat_ul = env.dp.create_nat("vm0", nat.into(), 3000, 3001, None).unwrap();
    let d = Ipv4Addr::new(93, 184, 216, 34);
    let d6: Ipv6Addr = "64:ff9b::5db8:d822".parse().unwrap();
    let (v, out) = from_vm(&mut env, 0, &ip6_udp(vm_ip6(0), d6, 4000, 53, b"query64"));
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(
        out,
        tunnel(
            ROUTER_MAC,
            PF0_MAC,
            env.underlay[0],
            router6(),
            &without_df(ip4_udp(nat, d, 3000, 53, b"query64"))
        )
    );
    let (v, out) = from_router(&mut env, nat_ul, &ip4_udp(d, nat, 53, 3000, b"answer64"));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(
        out,
        frame(
            VM_MACS[0],
            VF_MACS[0],
            &ip6_udp(d6, vm_ip6(0), 53, 4000, b"answer64")
        )
    );

    // Echo: the single NAT port is shared by the UDP socket's destination and the echo (different protocol).
    let mut req = Vec::new();
    PacketBuilder::ipv6(vm_ip6(0).octets(), d6.octets(), 64)
        .icmpv6_echo_request(0x4242, 7)
        .write(&mut req, b"pingdata")
        .unwrap();
    let (v, out) = from_vm(&mut env, 0, &req);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(out[54..], without_df(ip4_echo(nat, d, 3000, false))[..]);
    let (v, out) = from_router(&mut env, nat_ul, &ip4_echo(d, nat, 3000, true));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    let mut reply = Vec::new();
    PacketBuilder::ipv6(d6.octets(), vm_ip6(0).octets(), 64)
        .icmpv6_echo_reply(0x4242, 7)
        .write(&mut reply, b"pingdata")
        .unwrap();
    assert_eq!(out, frame(VM_MACS[0], VF_MACS[0], &reply));
    assert_ipv6_valid(&out[14..]);
    // Without NAT, 64:ff9b:: is just routed (no translation).
    env.dp.delete_nat("vm0").unwrap();
    let ip = ip6_udp(vm_ip6(0), d6, 4001, 53, b"plain");
    let (_, out) = from_vm(&mut env, 0, &ip);
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], router6(), &ip));
}

#[test]
fn ipv6_load_balancer_forwards_and_answers_echo() {
    let mut env = Env::new();
    let lb_ip: Ipv6Addr = "2001:db8::80".parse().unwrap();
    let ul = env
        .dp
        .create_loadbalancer(CreateLoadBalancer {
            id: "lb6".into(),
            vni: VNI,
            ip: lb_ip.into(),
            ports: vec![LbPort {
                protocol: L4Proto::Udp,
                port: 53,
            }],
            preferred_underlay: None,
        })
        .unwrap();
    let target: Ipv6Addr = "fc00:7::d000:0:0:9".parse().unwrap();
    env.dp.create_lb_target("lb6", target.into()).unwrap();
    let client: Ipv6Addr = "2001:db8:1::5".parse().unwrap();
    let q = ip6_udp(client, lb_ip, 5353, 53, b"dns6");
    let (v, out) = from_router(&mut env, ul, &q);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, ul, target, &q));
    let mut req = Vec::new();
    PacketBuilder::ipv6(client.octets(), lb_ip.octets(), 64)
        .icmpv6_echo_request(3, 7)
        .write(&mut req, b"pingdata")
        .unwrap();
    let (v, out) = from_router(&mut env, ul, &req);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    let mut reply = Vec::new();
    PacketBuilder::ipv6(lb_ip.octets(), client.octets(), 64)
        .icmpv6_echo_reply(3, 7)
        .write(&mut reply, b"pingdata")
        .unwrap();
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, host(), router6(), &reply));
}

/// The reply direction of a NAT flow belongs to the NAT's underlay: a local VM that sends the reverse 5-tuple (here
/// a load-balancer backend answering by direct server return from the LB IP to the NAT IP of a VM on the same host)
/// starts its own flow, which is routed by LPM and tunnelled to the router; the answer is de-NATed only when it comes
/// back to the NAT underlay. dpservice keys its connection table by the kind of object owning the address as well.
#[test]
fn nat_replies_match_only_at_the_nat_underlay() {
    let (mut env, lb_ip, lb_ul) = lb_env();
    env.default_route();
    let nat = Ipv4Addr::new(45, 86, 7, 9);
    let nat_ul = env.dp.create_nat("vm0", nat.into(), 1000, 1001, None).unwrap();
    let pfx_ul = env
        .dp
        .create_lb_prefix("vm1", format!("{lb_ip}/32").parse().unwrap(), None)
        .unwrap();
    env.dp.create_lb_target("lb1", pfx_ul.into()).unwrap();

    // vm0 connects to the LB IP: SNATed (the only port of the range is 1000) and tunnelled to the router.
    let syn = ip4_tcp(vm_ip(0), lb_ip, 5000, 80, true, false, b"");
    let (v, out) = from_vm(&mut env, 0, &syn);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    let syn_nat = ip4_tcp(nat, lb_ip, 1000, 80, true, false, b"");
    assert_eq!(
        out,
        tunnel(ROUTER_MAC, PF0_MAC, env.underlay[0], router6(), &syn_nat)
    );
    // The router delivers it to the LB underlay; the LB's backend is vm1's LB prefix.
    let (v, out) = from_router(&mut env, lb_ul, &syn_nat);
    assert_eq!(v, Verdict::Tx(env.vf[1]));
    assert_eq!(out, frame(VM_MACS[1], VF_MACS[1], &syn_nat));
    // vm1 answers from the LB IP to the NAT IP: a new flow of vm1, not the NAT flow's reply.
    let created = env.dp.stats().flows_created;
    let syn_ack = ip4_tcp(lb_ip, nat, 80, 1000, true, true, b"");
    let (v, out) = from_vm(&mut env, 1, &syn_ack);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(
        out,
        tunnel(ROUTER_MAC, PF0_MAC, env.underlay[1], router6(), &syn_ack)
    );
    assert_eq!(env.dp.stats().flows_created, created + 1);
    // Back from the router at the NAT underlay, it is de-NATed to vm0.
    let (v, out) = from_router(&mut env, nat_ul, &syn_ack);
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(
        out,
        frame(
            VM_MACS[0],
            VF_MACS[0],
            &ip4_tcp(lb_ip, vm_ip(0), 80, 5000, true, true, b"")
        )
    );
    assert_ipv4_valid(&out[14..]);
    // Without an LB in between: another local VM sending the reverse 5-tuple of vm0's NAT flow is routed too.
    let d = Ipv4Addr::new(8, 8, 8, 8);
    let q = ip4_udp(vm_ip(0), d, 6000, 53, b"q");
    let (_, out) = from_vm(&mut env, 0, &q);
    let nat_port = u16::from_be_bytes([out[54 + 20], out[54 + 21]]);
    let spoof = ip4_udp(d, nat, 53, nat_port, b"not a reply");
    let (v, out) = from_vm(&mut env, 1, &spoof);
    assert_eq!(v, Verdict::Tx(env.pf[0]));
    assert_eq!(
        out,
        tunnel(ROUTER_MAC, PF0_MAC, env.underlay[1], router6(), &spoof)
    );
}

/// An ICMP destination-unreachable (codes 2, 3, 4) for a packet a backend sent from the LB IP by direct server return
/// arrives at the LB underlay without a flow of its own; it is matched by the embedded packet, reversed, and goes to
/// the Maglev backend chosen for that key — the backend the client's own packets go to.
#[test]
fn icmp_errors_at_a_load_balancer_go_to_the_backend_of_the_embedded_flow() {
    let (mut env, lb_ip, lb_ul) = lb_env();
    let targets: Vec<Ipv6Addr> = (1..=4)
        .map(|i| format!("fc00:{i}::d000:0:0:1").parse().unwrap())
        .collect();
    for t in &targets {
        env.dp.create_lb_target("lb1", (*t).into()).unwrap();
    }
    let router4 = Ipv4Addr::new(100, 64, 255, 1);
    let client = Ipv4Addr::new(100, 64, 0, 9);
    let unreachable = |code: u8, embedded: &[u8]| {
        let mut msg = vec![3, code, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&embedded[..28]);
        let c = ref_checksum(&[&msg]);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let mut v = Vec::new();
        PacketBuilder::ipv4(router4.octets(), lb_ip.octets(), 64)
            .write(&mut v, IpNumber(1), &msg)
            .unwrap();
        v
    };
    let mut seen = std::collections::HashSet::new();
    for (n, code) in (0..12u16).zip([2u8, 3, 4].into_iter().cycle()) {
        let client_port = 41000 + n;
        // What the backend sent (direct server return), and the error a router returns to the LB IP about it.
        let dsr = ip4_tcp(lb_ip, client, 80, client_port, true, true, b"");
        let err = unreachable(code, &dsr);
        let flows = env.dp.flow_count();
        let (v, out) = from_router(&mut env, lb_ul, &err);
        assert_eq!(v, Verdict::Tx(env.pf[0]), "code {code}");
        let chosen = Ipv6Addr::from(<[u8; 16]>::try_from(&out[38..54]).unwrap());
        assert!(targets.contains(&chosen));
        assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, lb_ul, chosen, &err));
        assert_eq!(env.dp.flow_count(), flows, "an error creates no flow");
        // The client's own packets of that connection go to the same backend.
        let syn = ip4_tcp(client, lb_ip, client_port, 80, true, false, b"");
        let (_, out) = from_router(&mut env, lb_ul, &syn);
        assert_eq!(out[38..54], chosen.octets(), "client port {client_port}");
        seen.insert(chosen);
    }
    assert!(seen.len() > 1, "the key decides the backend");
    // An error about a port the LB does not serve is dropped and counted.
    let before = env.dp.stats().dropped(DropReason::LbNoMatch);
    let other = unreachable(3, &ip4_tcp(lb_ip, client, 81, 42000, true, true, b""));
    assert_eq!(
        from_router(&mut env, lb_ul, &other).0,
        Verdict::Drop(DropReason::LbNoMatch)
    );
    assert_eq!(env.dp.stats().dropped(DropReason::LbNoMatch), before + 1);
}

/// Packets a load balancer relays to a remote target leave from the LB's own underlay address, on the first packet
/// of a flow, on later ones (cached forwarding decision) and after a forwarding change (decision recomputed).
#[test]
fn load_balancer_relays_from_its_own_underlay() {
    let (mut env, lb_ip, lb_ul) = lb_env();
    let target: Ipv6Addr = "fc00:7::d000:0:0:1".parse().unwrap();
    env.dp.create_lb_target("lb1", target.into()).unwrap();
    let client = Ipv4Addr::new(100, 64, 0, 3);
    let syn = ip4_tcp(client, lb_ip, 40000, 80, true, false, b"");
    let ack = ip4_tcp(client, lb_ip, 40000, 80, false, true, b"data");
    for (what, ip) in [("first packet", &syn), ("established", &ack)] {
        let (v, out) = from_router(&mut env, lb_ul, ip);
        assert_eq!(v, Verdict::Tx(env.pf[0]), "{what}");
        assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, lb_ul, target, ip), "{what}");
    }
    // A route change moves the forwarding epoch on: the flow's cached decision is recomputed.
    env.default_route();
    let (_, out) = from_router(&mut env, lb_ul, &ack);
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, lb_ul, target, &ack));
    // An IPv6 load balancer likewise.
    let lb6: Ipv6Addr = "2001:db8::81".parse().unwrap();
    let ul6 = env
        .dp
        .create_loadbalancer(CreateLoadBalancer {
            id: "lb6".into(),
            vni: VNI,
            ip: lb6.into(),
            ports: vec![LbPort {
                protocol: L4Proto::Udp,
                port: 53,
            }],
            preferred_underlay: None,
        })
        .unwrap();
    env.dp.create_lb_target("lb6", target.into()).unwrap();
    let q = ip6_udp("2001:db8:1::5".parse().unwrap(), lb6, 5353, 53, b"dns6");
    let (_, out) = from_router(&mut env, ul6, &q);
    assert_eq!(out, tunnel(ROUTER_MAC, PF0_MAC, ul6, target, &q));
}
