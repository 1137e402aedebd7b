//! Property tests of the views: arbitrary bytes never make a checked view panic, and the NAT setters keep every
//! checksum valid for arbitrary packets and rewrites.

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::arp::ArpPacket;
use super::checksum::pseudo_v4;
use super::ether::EthernetFrame;
use super::icmp::IcmpPacket;
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};
use super::ipv6::Ipv6Packet;
use super::l4::{self, TcpPacket, UdpPacket};

/// Reads every field a checked view offers; a panic fails the property.
fn read_everything(b: &[u8]) {
    if let Ok(e) = EthernetFrame::new_checked(b) {
        let _ = (
            e.dst(),
            e.src(),
            e.ethertype(),
            e.payload().len(),
            e.network_layer(),
        );
    }
    if let Ok(a) = ArpPacket::new_checked(b) {
        let _ = (a.operation(), a.sender_hardware_addr(), a.sender_protocol_addr());
        let _ = (a.target_hardware_addr(), a.target_protocol_addr());
    }
    if let Ok(p) = Ipv4Packet::new_checked(b) {
        let _ = (
            p.src(),
            p.dst(),
            p.ttl(),
            p.ident(),
            p.checksum(),
            p.is_fragment(),
        );
        let _ = (
            p.verify_checksum(),
            p.payload().len(),
            super::ipv4::Ipv4Repr::parse(&p),
        );
        read_l4(p.payload());
    }
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        let _ = (
            p.src(),
            p.dst(),
            p.traffic_class(),
            p.flow_label(),
            p.hop_limit(),
            p.next_header(),
        );
        read_l4(p.payload());
    }
    read_l4(b);
}

fn read_l4(b: &[u8]) {
    if let Ok(i) = IcmpPacket::new_checked(b) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.checksum(),
            i.echo_id(),
            i.echo_seq(),
            i.body().len(),
        );
        let _ = i.verify_checksum(0);
    }
    if let Ok(u) = UdpPacket::new_checked(b) {
        let _ = (u.src_port(), u.dst_port(), u.checksum(), u.payload().len());
    }
    if let Ok(t) = TcpPacket::new_checked(b) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.seq_number(),
            t.ack_number(),
            t.flags(),
            t.window(),
        );
        let _ = (t.header_len(), t.verify_checksum(0));
    }
}

/// An IPv4 packet with a TCP (20-byte header) or UDP segment carrying `payload`, all checksums correct.
fn ipv4_packet(tcp: bool, src: Ipv4Addr, dst: Ipv4Addr, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let hl = if tcp {
        l4::TCP_MIN_HEADER_LEN
    } else {
        l4::UDP_HEADER_LEN
    };
    let proto = if tcp { ipv4::PROTO_TCP } else { ipv4::PROTO_UDP };
    let len = hl + payload.len();
    let mut b = vec![0u8; ipv4::MIN_HEADER_LEN + len];
    Ipv4Repr {
        src,
        dst,
        protocol: proto,
        payload_len: len,
        ttl: 64,
    }
    .emit(&mut b);
    let seg = &mut b[ipv4::MIN_HEADER_LEN..];
    seg[hl..].copy_from_slice(payload);
    if tcp {
        seg[l4::tcp_field::DATA_OFFSET] = 0x50;
        let mut t = TcpPacket::new_unchecked(seg);
        t.set_src_port(ports.0);
        t.set_dst_port(ports.1);
        t.fill_checksum(pseudo_v4(src.octets(), dst.octets(), proto, len as u16));
    } else {
        l4::emit_udp(
            seg,
            ports.0,
            ports.1,
            pseudo_v4(src.octets(), dst.octets(), proto, 0),
        );
    }
    b
}

fn arb_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

proptest! {
    #[test]
    fn checked_views_never_panic_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..160)) {
        read_everything(&data);
    }

    #[test]
    fn checked_views_never_panic_on_mutated_packets(tcp in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..40),
                                                   flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut b = ipv4_packet(tcp, [10, 0, 0, 1].into(), [10, 0, 0, 2].into(), (1000, 2000), &payload);
        for (at, v) in flips {
            let n = b.len();
            b[at % n] = v;
        }
        read_everything(&b);
    }

    #[test]
    fn nat_setters_keep_ip_and_l4_checksums_valid(tcp in any::<bool>(), src in arb_addr(), dst in arb_addr(),
                                                  ports in any::<(u16, u16)>(), payload in proptest::collection::vec(any::<u8>(), 0..64),
                                                  new_src in arb_addr(), new_dst in arb_addr(), new_ports in any::<(u16, u16)>()) {
        let mut b = ipv4_packet(tcp, src, dst, ports, &payload);
        let (h, seg) = b.split_at_mut(ipv4::MIN_HEADER_LEN);
        let mut ip = Ipv4Packet::new_unchecked(h);
        if tcp {
            let mut t = TcpPacket::new_unchecked(&mut *seg);
            t.update_checksum_for_addr(ip.set_src_update(new_src), new_src.octets());
            t.set_src_port_update(new_ports.0);
            t.update_checksum_for_addr(ip.set_dst_update(new_dst), new_dst.octets());
            t.set_dst_port_update(new_ports.1);
        } else {
            let mut u = UdpPacket::new_unchecked(&mut *seg);
            u.update_checksum_for_addr(ip.set_src_update(new_src), new_src.octets());
            u.set_src_port_update(new_ports.0);
            u.update_checksum_for_addr(ip.set_dst_update(new_dst), new_dst.octets());
            u.set_dst_port_update(new_ports.1);
            prop_assert_ne!(u.checksum(), 0, "a present UDP checksum never becomes 'none'");
        }
        prop_assert!(ip.verify_checksum());
        let len = seg.len() as u16;
        let proto = ip.protocol();
        let pseudo = pseudo_v4(new_src.octets(), new_dst.octets(), proto, len);
        let expected = ipv4_packet(tcp, new_src, new_dst, new_ports, &payload);
        if tcp {
            prop_assert!(TcpPacket::new_unchecked(&*seg).verify_checksum(pseudo));
        } else {
            prop_assert!(super::checksum::finish(super::checksum::sum(seg, pseudo)) == 0);
        }
        // Apart from the checksum fields (which may hold 0x0000 or 0xffff for the same value), the rewritten packet
        // equals one built afresh with the new addresses and ports.
        let l4_check = if tcp { l4::tcp_field::CHECKSUM } else { l4::udp_field::CHECKSUM };
        let (ip_check, base) = (ipv4::field::CHECKSUM, ipv4::MIN_HEADER_LEN);
        prop_assert_eq!(&b[..ip_check.start], &expected[..ip_check.start]);
        prop_assert_eq!(&b[ip_check.end..base + l4_check.start], &expected[ip_check.end..base + l4_check.start]);
        prop_assert_eq!(&b[base + l4_check.end..], &expected[base + l4_check.end..]);
    }
}
