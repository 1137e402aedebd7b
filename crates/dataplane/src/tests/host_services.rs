//! ARP, DHCPv4, DHCPv6, ND/RA and the periodic GARP answered on VM ports.

use super::*;
use crate::stats::DropReason;

fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha.0);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha.0);
    a.extend_from_slice(&tpa.octets());
    a
}

#[test]
fn arp_request_for_the_gateway_is_answered_in_place() {
    let mut env = Env::new();
    let gw = Ipv4Addr::new(169, 254, 0, 1);
    let mut req = eth_hdr(MacAddr::BROADCAST, VM_MACS[0], 0x0806);
    req.extend_from_slice(&arp(1, VM_MACS[0], vm_ip(0), MacAddr::default(), gw));
    req.resize(60, 0);
    let (v, out) = env.run(env.vf[0], &req);
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    let mut expect = eth_hdr(VM_MACS[0], VF_MACS[0], 0x0806);
    expect.extend_from_slice(&arp(2, VF_MACS[0], gw, VM_MACS[0], vm_ip(0)));
    assert_eq!(out, expect);
    // Requests for other addresses are dropped and counted.
    let mut other = eth_hdr(MacAddr::BROADCAST, VM_MACS[0], 0x0806);
    other.extend_from_slice(&arp(1, VM_MACS[0], vm_ip(0), MacAddr::default(), vm_ip(1)));
    assert_eq!(
        env.run(env.vf[0], &other).0,
        Verdict::Drop(DropReason::ArpIgnored)
    );
}

fn bootp(msg_type: u8, mac: MacAddr, extra: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    b[28..34].copy_from_slice(&mac.0);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, msg_type]);
    b.extend_from_slice(extra);
    b.push(255);
    b
}

#[test]
fn dhcp_discover_gets_an_offer_with_options_in_upstream_order() {
    let mut c = config();
    c.dhcp_mtu = 1450;
    c.dhcp_dns = vec![Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(1, 1, 1, 1)];
    let mut env = Env::with_config(c);
    let new_mac = MacAddr([0x52, 0x54, 0, 0, 0, 0x99]);
    let req = ip4_udp(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &bootp(1, new_mac, &[]),
    );
    let (v, out) = env.run(env.vf[0], &frame(MacAddr::BROADCAST, new_mac, &req));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    let mut payload = vec![0u8; 240];
    payload[0] = 2;
    payload[1] = 1;
    payload[2] = 6;
    payload[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    payload[16..20].copy_from_slice(&vm_ip(0).octets());
    payload[20..24].copy_from_slice(&[169, 254, 0, 1]);
    payload[24..28].copy_from_slice(&[169, 254, 0, 1]);
    payload[28..34].copy_from_slice(&new_mac.0);
    payload[236..240].copy_from_slice(&[99, 130, 83, 99]);
    payload.extend_from_slice(&[53, 1, 2]);
    payload.extend_from_slice(&[51, 4, 255, 255, 255, 255]);
    payload.extend_from_slice(&[54, 4, 169, 254, 0, 1]);
    payload.extend_from_slice(&[121, 12, 16, 169, 254, 0, 0, 0, 0, 0, 169, 254, 0, 1]);
    payload.extend_from_slice(&[1, 4, 255, 255, 255, 255]);
    payload.extend_from_slice(&[26, 2, 0x05, 0xaa]);
    payload.extend_from_slice(&[6, 8, 8, 8, 8, 8, 1, 1, 1, 1]);
    payload.push(255);
    // etherparse sets DF; dpservice's reply does not: build the expected IP header by hand.
    let udp_len = 8 + payload.len();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 169, 254, 0, 1];
    ip.extend_from_slice(&vm_ip(0).octets());
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    let c = ref_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = vec![0, 67, 0, 68];
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let pseudo = [&ip[12..20], &[0, 17], &(udp_len as u16).to_be_bytes()].concat();
    let c = ref_checksum(&[&pseudo, &udp]);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&udp);
    assert_eq!(out, frame(new_mac, VF_MACS[0], &ip));
    assert_ipv4_valid(&out[14..]);
    // OFFER does not teach the MAC; the ACK does.
    assert_eq!(env.dp.port(env.vf[0]).unwrap().vm_mac, VM_MACS[0]);
    let req = ip4_udp(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &bootp(3, new_mac, &[]),
    );
    let (v, out) = env.run(env.vf[0], &frame(MacAddr::BROADCAST, new_mac, &req));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(out[14 + 28 + 240 + 2], 5, "ACK");
    assert_eq!(env.dp.port(env.vf[0]).unwrap().vm_mac, new_mac);
    // RELEASE is not answered; garbage is dropped.
    let rel = ip4_udp(
        vm_ip(0),
        Ipv4Addr::new(169, 254, 0, 1),
        68,
        67,
        &bootp(7, new_mac, &[]),
    );
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], new_mac, &rel)).0,
        Verdict::Drop(DropReason::DhcpIgnored)
    );
    let junk = ip4_udp(vm_ip(0), Ipv4Addr::BROADCAST, 68, 67, b"short");
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], new_mac, &junk)).0,
        Verdict::Drop(DropReason::DhcpIgnored)
    );
}

#[test]
fn dhcp_pxe_clients_get_boot_server_file_router_and_broadcast() {
    let mut env = Env::new();
    env.dp.delete_interface("vm0").unwrap();
    env.dp
        .create_interface(CreateInterface {
            id: "pxe".into(),
            vni: VNI,
            ipv4: Some(vm_ip(0)),
            ipv6: None,
            port: env.vf[0],
            pxe: Some(crate::api::PxeConfig {
                next_server: "192.168.1.10".parse().unwrap(),
                boot_filename: "/boot.ipxe".into(),
            }),
            hostname: Some("node-1".into()),
            preferred_underlay: None,
        })
        .unwrap();
    let req = ip4_udp(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &bootp(1, VM_MACS[0], &[77, 4, b'i', b'P', b'X', b'E']),
    );
    let (v, out) = env.run(env.vf[0], &frame(MacAddr::BROADCAST, VM_MACS[0], &req));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(out[..6], MacAddr::BROADCAST.0);
    assert_eq!(out[14 + 16..14 + 20], [255, 255, 255, 255]);
    let bootp = &out[14 + 28..];
    assert_eq!(bootp[20..24], [192, 168, 1, 10], "siaddr = PXE server");
    assert!(bootp[108..].starts_with(b"http://192.168.1.10/boot.ipxe\0"));
    let opts = &bootp[240..];
    let router = [3u8, 4, 169, 254, 0, 1];
    assert!(opts.windows(6).any(|w| w == router));
    assert!(opts.windows(8).any(|w| w == b"\x0c\x06node-1"));
    assert_ipv4_valid(&out[14..]);
}

#[test]
fn dhcpv6_solicit_gets_an_advertise_with_the_vm_address() {
    let mut c = config();
    c.dhcpv6_dns = vec!["2001:4860:4860::8888".parse().unwrap()];
    let mut env = Env::with_config(c);
    let client_ll: Ipv6Addr = "fe80::5054:ff:fe00:1".parse().unwrap();
    let mut msg = vec![1, 0xaa, 0xbb, 0xcc];
    msg.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1]);
    msg.extend_from_slice(&VM_MACS[0].0);
    msg.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&[0, 14, 0, 0]);
    let req = ip6_udp(client_ll, "ff02::1:2".parse().unwrap(), 546, 547, &msg);
    let (v, out) = env.run(
        env.vf[0],
        &frame(MacAddr([0x33, 0x33, 0, 1, 0, 2]), VM_MACS[0], &req),
    );
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(out[..12], [VM_MACS[0].0, VF_MACS[0].0].concat()[..]);
    let ip = &out[14..];
    assert_ipv6_valid(ip);
    assert_eq!(ip[8..24], "fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    assert_eq!(ip[24..40], client_ll.octets());
    let udp = &ip[40..];
    assert_eq!(udp[..4], [2, 35, 2, 34]);
    let mut expect = vec![2, 0xaa, 0xbb, 0xcc];
    expect.extend_from_slice(&[0, 2, 0, 10, 0, 3, 0, 1]);
    expect.extend_from_slice(&VF_MACS[0].0);
    expect.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1]);
    expect.extend_from_slice(&VM_MACS[0].0);
    expect.extend_from_slice(&[0, 3, 0, 46, 0, 0, 0, 9, 255, 255, 255, 255, 255, 255, 255, 255]);
    expect.extend_from_slice(&[0, 5, 0, 24]);
    expect.extend_from_slice(&vm_ip6(0).octets());
    expect.extend_from_slice(&[255; 8]);
    expect.extend_from_slice(&[0, 13, 0, 2, 0, 0]);
    expect.extend_from_slice(&[0, 14, 0, 0]);
    expect.extend_from_slice(&[0, 23, 0, 16]);
    expect.extend_from_slice(&"2001:4860:4860::8888".parse::<Ipv6Addr>().unwrap().octets());
    assert_eq!(udp[8..], expect[..]);
}

#[test]
fn neighbor_discovery_needs_the_ipv6_overlay() {
    let ns = |src: Ipv6Addr| {
        let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        let mut v = Vec::new();
        PacketBuilder::ipv6(
            src.octets(),
            "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap().octets(),
            255,
        )
        .write(&mut v, IpNumber(58), &m)
        .unwrap();
        v
    };
    let src: Ipv6Addr = "fe80::5054:ff:fe00:1".parse().unwrap();
    let mut env = Env::new();
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ns(src))).0,
        Verdict::Drop(DropReason::NdIgnored)
    );
    let mut c = config();
    c.enable_ipv6_overlay = true;
    let mut env = Env::with_config(c);
    let (v, out) = env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ns(src)));
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    let ip = &out[14..];
    assert_ipv6_valid(ip);
    assert_eq!((ip[6], ip[7]), (58, 255));
    let mut na = vec![136, 0];
    na.extend_from_slice(&ip[42..44]);
    na.extend_from_slice(&[0xe0, 0, 0, 0]);
    na.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    na.extend_from_slice(&[2, 1]);
    na.extend_from_slice(&VF_MACS[0].0);
    assert_eq!(ip[40..], na[..]);
    // RS from the unspecified address ⇒ RA to all nodes.
    let mut rs = Vec::new();
    PacketBuilder::ipv6([0; 16], "ff02::2".parse::<Ipv6Addr>().unwrap().octets(), 255)
        .write(&mut rs, IpNumber(58), &[133, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    let (v, out) = env.run(
        env.vf[0],
        &frame(MacAddr([0x33, 0x33, 0, 0, 0, 2]), VM_MACS[0], &rs),
    );
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(out[..6], [0x33, 0x33, 0, 0, 0, 1]);
    let ip = &out[14..];
    assert_ipv6_valid(ip);
    assert_eq!(ip[24..40], "ff02::1".parse::<Ipv6Addr>().unwrap().octets());
    assert_eq!(ip[40], 134);
    assert_eq!(ip[44..48], [255, 0xc0, 0xff, 0xff]);
}

#[test]
fn tick_sends_garp_then_backs_off() {
    let mut env = Env::new();
    let out = env.dp.tick(0);
    assert_eq!(out.len(), 2, "one per interface");
    let (port, f) = &out[0];
    assert_eq!(*port, env.vf[0]);
    let mut expect = eth_hdr(MacAddr::BROADCAST, VF_MACS[0], 0x0806);
    expect.extend_from_slice(&arp(
        1,
        VF_MACS[0],
        Ipv4Addr::new(169, 254, 0, 1),
        MacAddr::default(),
        Ipv4Addr::new(169, 254, 0, 1),
    ));
    assert_eq!(*f, expect);
    assert!(env.dp.tick(SEC).is_empty(), "not yet due");
    for i in 1..5 {
        assert_eq!(env.dp.tick(i * 5 * SEC).len(), 2);
    }
    assert!(
        env.dp.tick(30 * SEC).is_empty(),
        "after five rounds the period is 30 s"
    );
    assert_eq!(env.dp.tick(50 * SEC).len(), 2);
}

#[test]
fn dhcpv6_for_an_ipv4_only_vm_answers_no_addrs_avail() {
    let mut env = Env::new();
    env.dp
        .create_interface(CreateInterface {
            id: "v4only".into(),
            vni: VNI,
            ipv4: Some(vm_ip(2)),
            ipv6: None,
            port: env.vf[2],
            pxe: None,
            hostname: None,
            preferred_underlay: None,
        })
        .unwrap();
    let client_ll: Ipv6Addr = "fe80::5054:ff:fe00:3".parse().unwrap();
    let mut msg = vec![3, 1, 2, 3];
    msg.extend_from_slice(&[0, 1, 0, 4, 9, 9, 9, 9]);
    let req = ip6_udp(client_ll, "ff02::1:2".parse().unwrap(), 546, 547, &msg);
    let (v, out) = env.run(
        env.vf[2],
        &frame(MacAddr([0x33, 0x33, 0, 1, 0, 2]), VM_MACS[2], &req),
    );
    assert_eq!(v, Verdict::Tx(env.vf[2]));
    assert_ipv6_valid(&out[14..]);
    let mut expect = vec![7, 1, 2, 3, 0, 1, 0, 4, 9, 9, 9, 9, 0, 2, 0, 10, 0, 3, 0, 1];
    expect.extend_from_slice(&VF_MACS[2].0);
    expect.extend_from_slice(&[0, 13, 0, 2, 0, 2]);
    assert_eq!(out[14 + 40 + 8..], expect[..]);
    // Other message types are not answered without an address.
    let mut info = vec![11, 1, 2, 3];
    info.extend_from_slice(&[0, 1, 0, 4, 9, 9, 9, 9]);
    let req = ip6_udp(client_ll, "ff02::1:2".parse().unwrap(), 546, 547, &info);
    assert_eq!(
        env.run(
            env.vf[2],
            &frame(MacAddr([0x33, 0x33, 0, 1, 0, 2]), VM_MACS[2], &req)
        )
        .0,
        Verdict::Drop(DropReason::DhcpIgnored)
    );
}

/// The byte-exact DHCP reply frame ironnet sends for the default configuration (no DNS, no hostname, MTU 1500):
/// `msg_type` to `dst_mac`/`yiaddr` with `chaddr` as the client hardware address and transaction id 0xdeadbeef.
fn expected_dhcp_reply(
    dst_mac: MacAddr,
    port_mac: MacAddr,
    msg_type: u8,
    chaddr: MacAddr,
    yiaddr: Ipv4Addr,
) -> Vec<u8> {
    let mut payload = vec![0u8; 240];
    payload[0] = 2;
    payload[1] = 1;
    payload[2] = 6;
    payload[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    payload[16..20].copy_from_slice(&yiaddr.octets());
    payload[20..24].copy_from_slice(&[169, 254, 0, 1]);
    payload[24..28].copy_from_slice(&[169, 254, 0, 1]);
    payload[28..34].copy_from_slice(&chaddr.0);
    payload[236..240].copy_from_slice(&[99, 130, 83, 99]);
    payload.extend_from_slice(&[53, 1, msg_type]);
    payload.extend_from_slice(&[51, 4, 255, 255, 255, 255]);
    payload.extend_from_slice(&[54, 4, 169, 254, 0, 1]);
    payload.extend_from_slice(&[121, 12, 16, 169, 254, 0, 0, 0, 0, 0, 169, 254, 0, 1]);
    payload.extend_from_slice(&[1, 4, 255, 255, 255, 255]);
    payload.extend_from_slice(&[26, 2, 0x05, 0xdc]);
    payload.push(255);
    let udp_len = 8 + payload.len();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 169, 254, 0, 1];
    ip.extend_from_slice(&yiaddr.octets());
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    let c = ref_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = vec![0, 67, 0, 68];
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let pseudo = [&ip[12..20], &[0, 17], &(udp_len as u16).to_be_bytes()].concat();
    let c = ref_checksum(&[&pseudo, &udp]);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&udp);
    frame(dst_mac, port_mac, &ip)
}

/// dpservice (`src/nodes/dhcp_node.c`) takes the VM's MAC from the Ethernet source of the DHCPREQUEST and writes it
/// into the reply's `chaddr`; the BOOTP `chaddr` a client sends may hold anything.
#[test]
fn dhcp_learns_the_mac_from_the_ethernet_source_not_from_chaddr() {
    let mut env = Env::new();
    let eth_mac = MacAddr([0x52, 0x54, 0, 0, 0, 0x77]);
    let bogus = MacAddr([0xde, 0xad, 0xbe, 0xef, 0, 1]);
    let rx_before = env.dp.stats().port(env.vf[0]);
    for (msg, answer) in [(1u8, 2u8), (3, 5)] {
        let req = ip4_udp(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            67,
            &bootp(msg, bogus, &[]),
        );
        let (v, out) = env.run(env.vf[0], &frame(MacAddr::BROADCAST, eth_mac, &req));
        assert_eq!(v, Verdict::Tx(env.vf[0]));
        assert_eq!(
            out,
            expected_dhcp_reply(eth_mac, VF_MACS[0], answer, eth_mac, vm_ip(0)),
            "reply to message type {msg}"
        );
    }
    assert_eq!(env.dp.port(env.vf[0]).unwrap().vm_mac, eth_mac);
    let after = env.dp.stats().port(env.vf[0]);
    assert_eq!(after.tx_packets - rx_before.tx_packets, 2);
    assert_eq!(after.dropped, rx_before.dropped);
    // Traffic to the VM now goes to the learned MAC.
    let (v, out) = env.run(
        env.vf[1],
        &frame(VF_MACS[1], VM_MACS[1], &ip4_udp(vm_ip(1), vm_ip(0), 1, 2, b"x")),
    );
    assert_eq!(v, Verdict::Tx(env.vf[0]));
    assert_eq!(out[..12], [eth_mac.0, VF_MACS[0].0].concat()[..]);
}

/// dpservice (`src/nodes/dhcpv6_node.c`): without an IPv6 address only SOLICIT and REQUEST are answered, with a REPLY
/// carrying status NoAddrsAvail; CONFIRM, RENEW, REBIND, RELEASE, DECLINE and INFORMATION-REQUEST are dropped.
#[test]
fn dhcpv6_without_an_ipv6_address_answers_only_solicit_and_request() {
    let mut env = Env::new();
    env.dp
        .create_interface(CreateInterface {
            id: "v4only".into(),
            vni: VNI,
            ipv4: Some(vm_ip(2)),
            ipv6: None,
            port: env.vf[2],
            pxe: None,
            hostname: None,
            preferred_underlay: None,
        })
        .unwrap();
    let client_ll: Ipv6Addr = "fe80::5054:ff:fe00:3".parse().unwrap();
    let all_servers: Ipv6Addr = "ff02::1:2".parse().unwrap();
    let all_servers_mac = MacAddr([0x33, 0x33, 0, 1, 0, 2]);
    let message = |msg_type: u8| {
        let mut m = vec![msg_type, 1, 2, 3];
        m.extend_from_slice(&[0, 1, 0, 4, 9, 9, 9, 9]);
        m.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
        frame(
            all_servers_mac,
            VM_MACS[2],
            &ip6_udp(client_ll, all_servers, 546, 547, &m),
        )
    };
    for solicit_or_request in [1u8, 3] {
        let (v, out) = env.run(env.vf[2], &message(solicit_or_request));
        assert_eq!(v, Verdict::Tx(env.vf[2]));
        let mut reply = vec![7, 1, 2, 3, 0, 1, 0, 4, 9, 9, 9, 9, 0, 2, 0, 10, 0, 3, 0, 1];
        reply.extend_from_slice(&VF_MACS[2].0);
        reply.extend_from_slice(&[0, 13, 0, 2, 0, 2]);
        let mut expect = ip6_udp("fe80::1".parse().unwrap(), client_ll, 547, 546, &reply);
        // dpservice's replies use hop limit 64 like etherparse's builder; only the frame around it differs.
        assert_eq!(expect[7], 64);
        expect = frame(VM_MACS[2], VF_MACS[2], &expect);
        assert_eq!(out, expect, "message type {solicit_or_request}");
    }
    let ignored = env.dp.stats().dropped(DropReason::DhcpIgnored);
    let tx = env.dp.stats().port(env.vf[2]).tx_packets;
    let others = [4u8, 5, 6, 8, 9, 11];
    for t in others {
        assert_eq!(
            env.run(env.vf[2], &message(t)).0,
            Verdict::Drop(DropReason::DhcpIgnored),
            "message type {t}"
        );
    }
    assert_eq!(
        env.dp.stats().dropped(DropReason::DhcpIgnored) - ignored,
        others.len() as u64
    );
    assert_eq!(env.dp.stats().port(env.vf[2]).tx_packets, tx);
}
