//! In-place NAT rewrites of IPv4 packets through the packet views, with incremental checksum updates (RFC 1624),
//! including the embedded packet of ICMP errors.

use std::net::Ipv4Addr;

use super::parse::{IcmpKind, Parsed};
use crate::batch::Packet;
use crate::flow::Rewrite;
use crate::packet::icmp::{self, IcmpPacket};
use crate::packet::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::packet::l4::{TcpPacket, UdpPacket, tcp_field};

/// Applies `rw` to the IPv4 packet at `l3`. For ICMP errors the outer addresses and the embedded packet (whose
/// source is the outer destination and vice versa) are rewritten and the ICMP checksum recomputed.
///
/// `parsed` must come from parsing this packet: the views are unchecked because the parser has validated the
/// headers (and truncated the frame to the IP length).
pub(crate) fn apply_v4(pkt: &mut Packet, l3: usize, parsed: &Parsed, rw: &Rewrite) {
    if rw.src.is_none() && rw.dst.is_none() {
        return;
    }
    let l4 = parsed.l4 - l3;
    let (ip, seg) = pkt.data_mut()[l3..].split_at_mut(l4);
    let mut ip = Ipv4Packet::new_unchecked(ip);
    match parsed.icmp {
        IcmpKind::Error { inner } => {
            if let Some((a, _)) = rw.src {
                ip.set_src_update(a);
            }
            if let Some((a, _)) = rw.dst {
                ip.set_dst_update(a);
            }
            let mut msg = IcmpPacket::new_unchecked(seg);
            rewrite_embedded(&mut msg.body_mut()[inner - parsed.l4 - icmp::HEADER_LEN..], rw);
            // The embedded packet changed in many places: one pass over the (short) message.
            msg.fill_checksum(0);
        }
        _ => match parsed.key.proto {
            PROTO_TCP => {
                let mut tcp = TcpPacket::new_unchecked(seg);
                if let Some((a, port)) = rw.src {
                    tcp.update_checksum_for_addr(ip.set_src_update(a), a.octets());
                    tcp.set_src_port_update(port);
                }
                if let Some((a, port)) = rw.dst {
                    tcp.update_checksum_for_addr(ip.set_dst_update(a), a.octets());
                    tcp.set_dst_port_update(port);
                }
            }
            PROTO_UDP => {
                let mut udp = UdpPacket::new_unchecked(seg);
                if let Some((a, port)) = rw.src {
                    udp.update_checksum_for_addr(ip.set_src_update(a), a.octets());
                    udp.set_src_port_update(port);
                }
                if let Some((a, port)) = rw.dst {
                    udp.update_checksum_for_addr(ip.set_dst_update(a), a.octets());
                    udp.set_dst_port_update(port);
                }
            }
            proto => {
                // ICMP's checksum does not cover the addresses; its "port" is the echo identifier.
                let mut msg = (proto == PROTO_ICMP).then(|| IcmpPacket::new_unchecked(seg));
                if let Some((a, port)) = rw.src {
                    ip.set_src_update(a);
                    if let Some(m) = &mut msg {
                        m.set_echo_id_update(port);
                    }
                }
                if let Some((a, port)) = rw.dst {
                    ip.set_dst_update(a);
                    if let Some(m) = &mut msg {
                        m.set_echo_id_update(port);
                    }
                }
            }
        },
    }
}

/// Rewrites the embedded (truncated) packet of an ICMP error, `emb` starting at its IP header: its source gets
/// `rw.dst`, its destination `rw.src`. The parser guarantees the IP header and 8 bytes of L4 header; the embedded
/// TCP checksum is updated only when its bytes are present.
fn rewrite_embedded(emb: &mut [u8], rw: &Rewrite) {
    let (hl, proto) = {
        let ip = Ipv4Packet::new_unchecked(&*emb);
        (ip.header_len(), ip.protocol())
    };
    let (ip, seg) = emb.split_at_mut(hl);
    let mut ip = Ipv4Packet::new_unchecked(ip);
    let (to_src, to_dst) = (rw.dst, rw.src);
    match proto {
        PROTO_TCP => {
            let whole_header = seg.len() >= tcp_field::CHECKSUM.end;
            let mut tcp = TcpPacket::new_unchecked(seg);
            if let Some((a, port)) = to_src {
                let old = ip.set_src_update(a);
                set_embedded_tcp(&mut tcp, whole_header, old, a, port, true);
            }
            if let Some((a, port)) = to_dst {
                let old = ip.set_dst_update(a);
                set_embedded_tcp(&mut tcp, whole_header, old, a, port, false);
            }
        }
        PROTO_UDP => {
            let mut udp = UdpPacket::new_unchecked(seg);
            if let Some((a, port)) = to_src {
                udp.update_checksum_for_addr(ip.set_src_update(a), a.octets());
                udp.set_src_port_update(port);
            }
            if let Some((a, port)) = to_dst {
                udp.update_checksum_for_addr(ip.set_dst_update(a), a.octets());
                udp.set_dst_port_update(port);
            }
        }
        proto => {
            let echo = proto == PROTO_ICMP && seg.len() >= icmp::HEADER_LEN;
            let mut msg = echo.then(|| IcmpPacket::new_unchecked(seg));
            if let Some((a, port)) = to_src {
                ip.set_src_update(a);
                if let Some(m) = &mut msg {
                    m.set_echo_id_update(port);
                }
            }
            if let Some((a, port)) = to_dst {
                ip.set_dst_update(a);
                if let Some(m) = &mut msg {
                    m.set_echo_id_update(port);
                }
            }
        }
    }
}

/// Sets an embedded TCP port (source if `src`) after its IP address changed from `old` to `a`: with checksum
/// updates when the embedded bytes reach the checksum, else the port alone.
fn set_embedded_tcp(
    tcp: &mut TcpPacket<&mut [u8]>,
    whole_header: bool,
    old: [u8; 4],
    a: Ipv4Addr,
    port: u16,
    src: bool,
) {
    match (whole_header, src) {
        (true, true) => {
            tcp.update_checksum_for_addr(old, a.octets());
            tcp.set_src_port_update(port);
        }
        (true, false) => {
            tcp.update_checksum_for_addr(old, a.octets());
            tcp.set_dst_port_update(port);
        }
        (false, true) => tcp.set_src_port(port),
        (false, false) => tcp.set_dst_port(port),
    }
}
