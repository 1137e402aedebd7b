//! Byte-literal tests of every view against frames captured with `tcpdump -xx` between two Linux 6.x network
//! namespaces joined by a veth pair (02:00:00:00:00:0a = 192.0.2.1 / 2001:db8::1, 02:00:00:00:00:0b =
//! 192.0.2.2 / 2001:db8::2; transmit checksum offload switched off, so the L4 checksums are the kernel's).
//! Each test parses a capture, checks its fields against what tcpdump decoded, builds the same bytes again
//! through the setters or representations, and compares byte for byte.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::arp::{self, ArpPacket, ArpRepr};
use super::checksum::{pseudo_v4, pseudo_v6};
use super::ether::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetFrame, EthernetRepr};
use super::icmp::{self, IcmpPacket};
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::l4::{self, TCP_SYN, TcpPacket, UdpPacket};
use super::{ParseError, checksum};
use crate::port::MacAddr;

/// `ARP, Request who-has 192.0.2.2 tell 192.0.2.1, length 28`.
const ARP_REQUEST: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000201000000000000c0000202";
/// `ARP, Reply 192.0.2.2 is-at 02:00:00:00:00:0b, length 28`.
const ARP_REPLY: &str =
    "02000000000a02000000000b0806000108000604000202000000000bc000020202000000000ac0000201";
/// `IP 192.0.2.1 > 192.0.2.2: ICMP echo request, id 10762, seq 1, length 64` (ttl 64, id 51117, DF).
const ICMP4_ECHO_REQUEST: &str = "02000000000b02000000000a080045000054c7ad40004001eef7c0000201c0000202080037bb2a0a0001\
e71c176b00000000cbde0d0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
/// `IP 192.0.2.2 > 192.0.2.1: ICMP echo reply, id 10762, seq 1, length 64` (ttl 64, id 10631).
const ICMP4_ECHO_REPLY: &str = "02000000000a02000000000b080045000054298700004001cd1ec0000202c000020100003fbb2a0a0001\
e71c176b00000000cbde0d0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
/// `IP6 (flowlabel 0x233fe, hlim 64) 2001:db8::1 > 2001:db8::2: ICMP6, echo request, id 10763, seq 1`.
const ICMP6_ECHO_REQUEST: &str = "02000000000b02000000000a86dd600233fe00403a4020010db8000000000000000000000001\
20010db800000000000000000000000280007e992a0b0001e71c176b00000000b00f0e0000000000101112131415161718191a1b1c1d1e1f\
202122232425262728292a2b2c2d2e2f3031323334353637";
/// `IP6 (flowlabel 0xa3f94, hlim 64) 2001:db8::2 > 2001:db8::1: ICMP6, echo reply, id 10763, seq 1`.
const ICMP6_ECHO_REPLY: &str = "02000000000a02000000000b86dd600a3f9400403a4020010db8000000000000000000000002\
20010db800000000000000000000000181007d992a0b0001e71c176b00000000b00f0e0000000000101112131415161718191a1b1c1d1e1f\
202122232425262728292a2b2c2d2e2f3031323334353637";
/// `IP6 (hlim 255) 2001:db8::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has 2001:db8::2` with a source
/// link-address option.
const ICMP6_NEIGHBOR_SOLICIT: &str = "3333ff00000202000000000a86dd6000000000203aff20010db8000000000000000000000001\
ff0200000000000000000001ff00000287001c1e0000000020010db8000000000000000000000002010102000000000a";
/// `IP 192.0.2.1.55469 > 192.0.2.2.5353: UDP, length 5` ("hello", ttl 64, id 64379, DF, udp sum ok).
const UDP4: &str =
    "02000000000b02000000000a080045000021fb7b40004011bb4cc0000201c0000202d8ad14e9000d4a6768656c6c6f";
/// `IP6 (flowlabel 0xa83e6, hlim 64) 2001:db8::1.56539 > 2001:db8::2.547: UDP, length 5` ("hello", udp sum ok).
const UDP6: &str = "02000000000b02000000000a86dd600a83e6000d114020010db8000000000000000000000001\
20010db8000000000000000000000002dcdb0223000d818e68656c6c6f";
/// `IP 192.0.2.1.53036 > 192.0.2.2.8080: Flags [S], cksum 0x0f73 (correct), seq 2800636123, win 64240, options
/// [mss 1460,sackOK,TS val 1635676560 ecr 0,nop,wscale 10]` (ttl 64, id 25388, DF).
const TCP4_SYN: &str = "02000000000b02000000000a08004500003c632c40004006538cc0000201c0000202cf2c1f90a6ee50db\
00000000a002faf00f730000020405b40402080a617e7190000000000103030a";
/// `IP6 (flowlabel 0x3691b, hlim 64) 2001:db8::1.49414 > 2001:db8::2.8080: Flags [S], cksum 0x8e80 (correct),
/// seq 1344232838, win 64800, options [mss 1440,sackOK,TS val 1091146165 ecr 0,nop,wscale 10]`.
const TCP6_SYN: &str = "02000000000b02000000000a86dd6003691b0028064020010db8000000000000000000000001\
20010db8000000000000000000000002c1061f90501f5d8600000000a002fd208e800000020405a00402080a410991b5000000000103030a";

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const IP4_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const IP4_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const IP6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const IP6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

#[test]
fn ethernet_header_parses_and_emits_byte_equal() {
    let f = hex(ARP_REQUEST);
    let e = EthernetFrame::new_checked(&f[..]).unwrap();
    let repr = EthernetRepr::parse(&e);
    assert_eq!(
        repr,
        EthernetRepr {
            dst: MacAddr::BROADCAST,
            src: MAC_A,
            ethertype: ETHERTYPE_ARP,
        }
    );
    assert_eq!(e.payload(), &f[ether::HEADER_LEN..]);
    assert_eq!(e.network_layer(), Some((ether::HEADER_LEN, ETHERTYPE_ARP)));
    let mut out = [0u8; ether::HEADER_LEN];
    repr.emit(&mut out);
    assert_eq!(&out[..], &f[..ether::HEADER_LEN]);

    // The same frame through the setters, and with an 802.1Q tag (VLAN 100) inserted after the MACs.
    let mut set = [0u8; ether::HEADER_LEN];
    let mut v = EthernetFrame::new_unchecked(&mut set[..]);
    v.set_dst(MacAddr::BROADCAST);
    v.set_src(MAC_A);
    v.set_ethertype(ETHERTYPE_ARP);
    assert_eq!(&set[..], &f[..ether::HEADER_LEN]);
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&f[12..]);
    let t = EthernetFrame::new_checked(&tagged[..]).unwrap();
    assert_eq!(t.ethertype(), ether::ETHERTYPE_VLAN);
    assert_eq!(t.network_layer(), Some((18, ETHERTYPE_ARP)));
    assert_eq!(
        EthernetFrame::new_checked(&tagged[..17]).unwrap().network_layer(),
        None
    );
    assert_eq!(
        EthernetFrame::new_checked(&f[..13]).unwrap_err(),
        ParseError::Truncated
    );
}

#[test]
fn arp_request_and_reply_parse_and_emit_byte_equal() {
    for (capture, op, sha, spa, tha, tpa) in [
        (ARP_REQUEST, arp::OP_REQUEST, MAC_A, IP4_A, MacAddr([0; 6]), IP4_B),
        (ARP_REPLY, arp::OP_REPLY, MAC_B, IP4_B, MAC_A, IP4_A),
    ] {
        let f = hex(capture);
        let body = &f[ether::HEADER_LEN..];
        let repr = ArpRepr::parse(body).unwrap();
        assert_eq!(
            repr,
            ArpRepr {
                op,
                sha,
                spa,
                tha,
                tpa
            }
        );
        let view = ArpPacket::new_checked(body).unwrap();
        assert_eq!(view.operation(), op);
        assert_eq!(view.target_protocol_addr(), tpa);
        let mut out = [0u8; arp::PACKET_LEN];
        repr.emit(&mut out);
        assert_eq!(&out[..], body);
    }
    let mut bad = hex(ARP_REQUEST)[ether::HEADER_LEN..].to_vec();
    assert_eq!(ArpRepr::parse(&bad[..27]).unwrap_err(), ParseError::Truncated);
    bad[arp::field::HLEN] = 8;
    assert_eq!(ArpRepr::parse(&bad).unwrap_err(), ParseError::Malformed);
}

#[test]
fn ipv4_header_parses_and_rebuilds_byte_equal() {
    let f = hex(ICMP4_ECHO_REQUEST);
    let ip = Ipv4Packet::new_checked(&f[ether::HEADER_LEN..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.version(), ip.header_len(), ip.total_len()), (4, 20, 84));
    assert_eq!(
        (ip.ident(), ip.ttl(), ip.protocol()),
        (51117, 64, ipv4::PROTO_ICMP)
    );
    assert_eq!((ip.src(), ip.dst()), (IP4_A, IP4_B));
    assert!(!ip.is_fragment(), "DF alone is not a fragment");
    assert_eq!(ip.checksum(), 0xeef7);
    let mut out = f[ether::HEADER_LEN..].to_vec();
    out[..ipv4::MIN_HEADER_LEN].fill(0);
    let mut v = Ipv4Packet::new_unchecked(&mut out[..]);
    v.set_version_and_header_len(20);
    v.set_total_len(84);
    v.set_ident(51117);
    v.set_flags_and_fragment_offset(0x4000);
    v.set_ttl(64);
    v.set_protocol(ipv4::PROTO_ICMP);
    v.set_src(IP4_A);
    v.set_dst(IP4_B);
    v.fill_checksum();
    assert_eq!(&out[..], &f[ether::HEADER_LEN..]);

    // The representation writes id 0 and no flags; the reply's header differs from that only in its id.
    let r = hex(ICMP4_ECHO_REPLY);
    let reply = Ipv4Packet::new_checked(&r[ether::HEADER_LEN..]).unwrap();
    let repr = Ipv4Repr::parse(&reply);
    assert_eq!(
        repr,
        Ipv4Repr {
            src: IP4_B,
            dst: IP4_A,
            protocol: ipv4::PROTO_ICMP,
            payload_len: 64,
            ttl: 64,
        }
    );
    let mut hdr = [0u8; ipv4::MIN_HEADER_LEN];
    repr.emit(&mut hdr);
    let mut v = Ipv4Packet::new_unchecked(&mut hdr[..]);
    v.set_ident(reply.ident());
    v.fill_checksum();
    assert_eq!(
        &hdr[..],
        &r[ether::HEADER_LEN..ether::HEADER_LEN + ipv4::MIN_HEADER_LEN]
    );
}

#[test]
fn ipv4_address_rewrite_updates_both_checksums_like_a_recomputation() {
    let f = hex(TCP4_SYN);
    let mut b = f[ether::HEADER_LEN..].to_vec();
    let (h, seg) = b.split_at_mut(ipv4::MIN_HEADER_LEN);
    let mut ip = Ipv4Packet::new_unchecked(h);
    let mut tcp = TcpPacket::new_unchecked(seg);
    let nat = Ipv4Addr::new(203, 0, 113, 7);
    assert_eq!(ip.set_src_update(nat), IP4_A.octets());
    tcp.update_checksum_for_addr(IP4_A.octets(), nat.octets());
    tcp.set_src_port_update(1024);
    let pseudo = pseudo_v4(nat.octets(), IP4_B.octets(), ipv4::PROTO_TCP, 40);
    assert!(ip.verify_checksum());
    assert!(tcp.verify_checksum(pseudo));
    // And back: the original bytes again.
    assert_eq!(ip.set_src_update(IP4_A), nat.octets());
    tcp.update_checksum_for_addr(nat.octets(), IP4_A.octets());
    tcp.set_src_port_update(53036);
    assert_eq!(&b[..], &f[ether::HEADER_LEN..]);
}

#[test]
fn icmpv4_echo_parses_emits_and_turns_into_the_captured_reply() {
    let f = hex(ICMP4_ECHO_REQUEST);
    let msg = &f[ether::HEADER_LEN + ipv4::MIN_HEADER_LEN..];
    let m = IcmpPacket::new_checked(msg).unwrap();
    assert_eq!((m.msg_type(), m.code()), (icmp::V4_ECHO_REQUEST, 0));
    assert_eq!((m.echo_id(), m.echo_seq(), m.checksum()), (10762, 1, 0x37bb));
    assert!(m.verify_checksum(0));
    assert_eq!(m.body().len(), 56);

    let mut out = vec![0u8; msg.len()];
    let mut e = IcmpPacket::new_unchecked(&mut out[..]);
    e.set_msg_type(icmp::V4_ECHO_REQUEST);
    e.set_code(0);
    e.set_echo_id(10762);
    e.set_echo_seq(1);
    e.body_mut().copy_from_slice(m.body());
    e.fill_checksum(0);
    assert_eq!(&out[..], msg);

    // What the pipeline's echo responder does to the message gives exactly the kernel's reply.
    IcmpPacket::new_unchecked(&mut out[..]).set_msg_type_update(icmp::V4_ECHO_REPLY);
    let r = hex(ICMP4_ECHO_REPLY);
    assert_eq!(&out[..], &r[ether::HEADER_LEN + ipv4::MIN_HEADER_LEN..]);
    assert_eq!(
        IcmpPacket::new_checked(&out[..7]).unwrap_err(),
        ParseError::Truncated
    );
}

#[test]
fn icmpv6_echo_parses_emits_and_turns_into_the_captured_reply() {
    let f = hex(ICMP6_ECHO_REQUEST);
    let l4 = ether::HEADER_LEN + ipv6::HEADER_LEN;
    let pseudo = pseudo_v6(IP6_A.octets(), IP6_B.octets(), ipv6::NH_ICMPV6, 64);
    let m = IcmpPacket::new_checked(&f[l4..]).unwrap();
    assert_eq!((m.msg_type(), m.code()), (icmp::V6_ECHO_REQUEST, 0));
    assert_eq!((m.echo_id(), m.echo_seq(), m.checksum()), (10763, 1, 0x7e99));
    assert!(m.verify_checksum(pseudo));
    assert!(!m.verify_checksum(0), "ICMPv6 covers the pseudo header");

    let mut out = f[l4..].to_vec();
    out[..icmp::HEADER_LEN].fill(0);
    let mut e = IcmpPacket::new_unchecked(&mut out[..]);
    e.set_msg_type(icmp::V6_ECHO_REQUEST);
    e.set_echo_id(10763);
    e.set_echo_seq(1);
    e.fill_checksum(pseudo);
    assert_eq!(&out[..], &f[l4..]);

    // Source and destination swap places in the reply, which leaves the pseudo-header sum as it is.
    IcmpPacket::new_unchecked(&mut out[..]).set_msg_type_update(icmp::V6_ECHO_REPLY);
    assert_eq!(&out[..], &hex(ICMP6_ECHO_REPLY)[l4..]);
}

#[test]
fn icmpv6_neighbor_solicitation_and_its_ipv6_header_round_trip() {
    let f = hex(ICMP6_NEIGHBOR_SOLICIT);
    let ip = Ipv6Packet::new_checked(&f[ether::HEADER_LEN..]).unwrap();
    let repr = Ipv6Repr::parse(&ip);
    let group: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
    assert_eq!(
        repr,
        Ipv6Repr {
            src: IP6_A,
            dst: group,
            next_header: ipv6::NH_ICMPV6,
            payload_len: 32,
            hop_limit: 255,
        }
    );
    let mut hdr = [0u8; ipv6::HEADER_LEN];
    repr.emit(&mut hdr);
    assert_eq!(
        &hdr[..],
        &f[ether::HEADER_LEN..ether::HEADER_LEN + ipv6::HEADER_LEN]
    );
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(m.msg_type(), icmp::V6_NEIGHBOR_SOLICIT);
    assert!(m.verify_checksum(pseudo_v6(IP6_A.octets(), group.octets(), ipv6::NH_ICMPV6, 32)));
    assert_eq!(&m.body()[..16], &IP6_B.octets(), "target address");
}

#[test]
fn ipv6_header_with_a_flow_label_parses_and_rebuilds_byte_equal() {
    let f = hex(ICMP6_ECHO_REQUEST);
    let b = &f[ether::HEADER_LEN..];
    let ip = Ipv6Packet::new_checked(b).unwrap();
    assert_eq!(
        (ip.version(), ip.traffic_class(), ip.flow_label()),
        (6, 0, 0x233fe)
    );
    assert_eq!(
        (ip.payload_len(), ip.next_header(), ip.hop_limit()),
        (64, ipv6::NH_ICMPV6, 64)
    );
    assert_eq!((ip.src(), ip.dst()), (IP6_A, IP6_B));
    let mut out = b.to_vec();
    out[..ipv6::HEADER_LEN].fill(0);
    let mut v = Ipv6Packet::new_unchecked(&mut out[..]);
    v.set_version_tc_flow(0, 0x233fe);
    v.set_payload_len(64);
    v.set_next_header(ipv6::NH_ICMPV6);
    v.set_hop_limit(64);
    v.set_src(IP6_A);
    v.set_dst(IP6_B);
    assert_eq!(&out[..], b);
    assert_eq!(
        Ipv6Packet::new_checked(&b[..b.len() - 1]).unwrap_err(),
        ParseError::Truncated
    );
    let mut v4 = b.to_vec();
    v4[0] = 0x45;
    assert_eq!(
        Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
        ParseError::Malformed
    );
}

#[test]
fn udp_over_ipv4_and_ipv6_parses_and_emits_byte_equal() {
    for (capture, v6, sport, dport) in [(UDP4, false, 55469, 5353), (UDP6, true, 56539, 547)] {
        let f = hex(capture);
        let l4 = ether::HEADER_LEN
            + if v6 {
                ipv6::HEADER_LEN
            } else {
                ipv4::MIN_HEADER_LEN
            };
        let seg = &f[l4..];
        let u = UdpPacket::new_checked(seg).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (sport, dport, 13));
        assert_eq!(u.payload(), b"hello");
        let pseudo_without_len = if v6 {
            pseudo_v6(IP6_A.octets(), IP6_B.octets(), ipv4::PROTO_UDP, 0)
        } else {
            pseudo_v4(IP4_A.octets(), IP4_B.octets(), ipv4::PROTO_UDP, 0)
        };
        assert!(
            checksum::finish(checksum::sum(seg, pseudo_without_len + 13)) == 0,
            "captured checksum verifies"
        );
        let mut out = seg.to_vec();
        out[..l4::UDP_HEADER_LEN].fill(0);
        l4::emit_udp(&mut out, sport, dport, pseudo_without_len);
        assert_eq!(&out[..], seg);

        // A port rewrite updates the checksum as a recomputation would; 0 ("none") stays 0.
        let mut nat = seg.to_vec();
        let mut v = UdpPacket::new_unchecked(&mut nat[..]);
        v.set_dst_port_update(1234);
        assert_eq!(checksum::finish(checksum::sum(&nat, pseudo_without_len + 13)), 0);
        let mut none = seg.to_vec();
        let mut v = UdpPacket::new_unchecked(&mut none[..]);
        v.set_checksum(0);
        v.set_dst_port_update(1234);
        v.update_checksum_for_addr(IP4_B.octets(), [198, 51, 100, 1]);
        assert_eq!(v.checksum(), 0);
    }
}

#[test]
fn tcp_syn_over_ipv4_and_ipv6_parses_and_emits_byte_equal() {
    for (capture, v6, sport, seq, win, csum) in [
        (TCP4_SYN, false, 53036, 2800636123, 64240, 0x0f73),
        (TCP6_SYN, true, 49414, 1344232838, 64800, 0x8e80),
    ] {
        let f = hex(capture);
        let l4 = ether::HEADER_LEN
            + if v6 {
                ipv6::HEADER_LEN
            } else {
                ipv4::MIN_HEADER_LEN
            };
        let seg = &f[l4..];
        let pseudo = if v6 {
            pseudo_v6(IP6_A.octets(), IP6_B.octets(), ipv4::PROTO_TCP, 40)
        } else {
            pseudo_v4(IP4_A.octets(), IP4_B.octets(), ipv4::PROTO_TCP, 40)
        };
        let t = TcpPacket::new_checked(seg).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (sport, 8080));
        assert_eq!((t.seq_number(), t.ack_number(), t.window()), (seq, 0, win));
        assert_eq!((t.header_len(), t.flags(), t.checksum()), (40, TCP_SYN, csum));
        assert!(t.verify_checksum(pseudo));

        let mut out = seg.to_vec();
        out[..l4::TCP_MIN_HEADER_LEN].fill(0);
        out[l4::tcp_field::DATA_OFFSET] = 0xa0;
        let mut v = TcpPacket::new_unchecked(&mut out[..]);
        v.set_src_port(sport);
        v.set_dst_port(8080);
        v.set_seq_number(seq);
        v.set_flags(TCP_SYN);
        out[l4::tcp_field::WIN_SIZE].copy_from_slice(&win.to_be_bytes());
        TcpPacket::new_unchecked(&mut out[..]).fill_checksum(pseudo);
        assert_eq!(&out[..], seg);
    }
    let f = hex(TCP4_SYN);
    let seg = &f[ether::HEADER_LEN + ipv4::MIN_HEADER_LEN..];
    assert_eq!(
        TcpPacket::new_checked(&seg[..19]).unwrap_err(),
        ParseError::Truncated
    );
    assert_eq!(
        TcpPacket::new_checked(&seg[..39]).unwrap_err(),
        ParseError::Malformed,
        "options cut off"
    );
}

#[test]
fn captured_frames_carry_the_ethertypes_the_views_name() {
    for (capture, ethertype) in [
        (ARP_REPLY, ETHERTYPE_ARP),
        (ICMP4_ECHO_REQUEST, ETHERTYPE_IPV4),
        (ICMP6_ECHO_REQUEST, ETHERTYPE_IPV6),
        (UDP4, ETHERTYPE_IPV4),
        (TCP6_SYN, ETHERTYPE_IPV6),
    ] {
        let f = hex(capture);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.ethertype(), ethertype);
        assert_eq!(e.dst(), if capture == ARP_REPLY { MAC_A } else { MAC_B });
    }
}
