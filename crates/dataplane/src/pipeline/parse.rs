//! Extraction of the flow key and L4 facts from an IP packet at a given offset (what dpservice's
//! `conntrack` graph node extracts: IPv4 header of any length, IPv6 without extension headers).

use std::net::Ipv4Addr;

use ironnet_vni::Vni;

use crate::batch::Packet;
use crate::flow::FlowKey;
use crate::packet::icmp::{self, IcmpPacket};
use crate::packet::ipv4::{self, Ipv4Packet};
use crate::packet::ipv6::NH_ICMPV6;
use crate::packet::ipv6::{self, Ipv6Packet};
use crate::packet::l4::{TcpPacket, UdpPacket};
use crate::stats::DropReason;

/// How many bytes of the L4 header an ICMP error must carry after the embedded IP header (RFC 792: "the first 64
/// bits of the original datagram's data"): enough for the ports or the echo identifier.
const EMBEDDED_L4_LEN: usize = 8;

/// A packet the host answers itself instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// DHCPv4 (UDP to port 67).
    Dhcp,
    /// DHCPv6 (UDP to port 547).
    Dhcpv6,
    /// ICMPv6 neighbour solicitation.
    NeighborSolicit,
    /// ICMPv6 router solicitation.
    RouterSolicit,
}

/// What kind of ICMP message a packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IcmpKind {
    /// Not ICMP.
    None,
    /// Echo request.
    EchoRequest,
    /// Echo reply.
    EchoReply,
    /// Destination unreachable; the embedded IP header starts at this frame offset.
    Error { inner: usize },
}

/// Facts about an IP packet needed for forwarding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    /// The flow key (for ICMP errors: the key of the flow the embedded packet belongs to, in the error's direction).
    pub(crate) key: FlowKey,
    /// Frame offset of the L4 header.
    pub(crate) l4: usize,
    /// ICMP classification.
    pub(crate) icmp: IcmpKind,
    /// TCP flags (0 for other protocols).
    pub(crate) tcp_flags: u8,
    /// ICMP type and code (for firewall matching).
    pub(crate) icmp_type_code: (u8, u8),
    /// Set if a host service should answer the packet.
    pub(crate) service: Option<Service>,
}

/// Parses the IP packet at `l3` (IPv6 if `v6`), drops trailing padding, and extracts the flow key in `vni`.
/// `services` enables recognition of DHCP/ND packets (VM ports only).
///
/// Always inlined (into both callers): this saves returning the ~90-byte `Parsed` through memory; measured with
/// callgrind, 6–8% fewer instructions per packet for VM→VM, encap and NAT, ~1% more for decap and LB.
#[inline(always)]
pub(crate) fn parse(
    pkt: &mut Packet,
    l3: usize,
    v6: bool,
    vni: Option<Vni>,
    services: bool,
) -> Result<Parsed, DropReason> {
    let data = pkt.data().get(l3..).ok_or(DropReason::Malformed)?;
    let (proto, l4_rel, end_rel, src, dst) = if v6 {
        let p = Ipv6Packet::new_checked(data).map_err(|_| DropReason::Malformed)?;
        let end = ipv6::HEADER_LEN + p.payload_len();
        (
            p.next_header(),
            ipv6::HEADER_LEN,
            end,
            p.src().octets(),
            p.dst().octets(),
        )
    } else {
        let p = Ipv4Packet::new_checked(data).map_err(|_| DropReason::Malformed)?;
        if p.is_later_fragment() {
            return Err(DropReason::UnsupportedProtocol);
        }
        let m = |a: Ipv4Addr| u128::from(u32::from(a)).to_be_bytes();
        (
            p.protocol(),
            p.header_len(),
            p.total_len(),
            m(p.src()),
            m(p.dst()),
        )
    };
    pkt.truncate(l3 + end_rel);
    let data = &pkt.data()[l3..];
    let l4data = &data[l4_rel..];
    let mut out = Parsed {
        key: FlowKey {
            src,
            dst,
            vni,
            src_port: 0,
            dst_port: 0,
            proto,
            v6,
            zone: 0,
        },
        l4: l3 + l4_rel,
        icmp: IcmpKind::None,
        tcp_flags: 0,
        icmp_type_code: (0, 0),
        service: None,
    };
    match proto {
        ipv4::PROTO_TCP => {
            let t = TcpPacket::new_checked(l4data).map_err(|_| DropReason::Malformed)?;
            out.key.src_port = t.src_port();
            out.key.dst_port = t.dst_port();
            out.tcp_flags = t.flags();
        }
        ipv4::PROTO_UDP => {
            let u = UdpPacket::new_checked(l4data).map_err(|_| DropReason::Malformed)?;
            out.key.src_port = u.src_port();
            out.key.dst_port = u.dst_port();
            if services && ((!v6 && u.dst_port() == 67) || (v6 && u.dst_port() == 547)) {
                out.service = Some(if v6 { Service::Dhcpv6 } else { Service::Dhcp });
            }
        }
        ipv4::PROTO_ICMP if !v6 => {
            let i = IcmpPacket::new_checked(l4data).map_err(|_| DropReason::Malformed)?;
            out.icmp_type_code = (i.msg_type(), i.code());
            match i.msg_type() {
                icmp::V4_ECHO_REQUEST | icmp::V4_ECHO_REPLY => {
                    out.key.src_port = i.echo_id();
                    out.key.dst_port = i.echo_id();
                    out.icmp = if i.msg_type() == icmp::V4_ECHO_REQUEST {
                        IcmpKind::EchoRequest
                    } else {
                        IcmpKind::EchoReply
                    };
                }
                icmp::V4_DEST_UNREACH if matches!(i.code(), 2..=4) => {
                    let inner = l4_rel + icmp::HEADER_LEN;
                    out.key = embedded_key_v4(&data[inner..], vni)?;
                    out.icmp = IcmpKind::Error { inner: l3 + inner };
                }
                _ => return Err(DropReason::UnsupportedIcmp),
            }
        }
        NH_ICMPV6 if v6 => {
            let i = IcmpPacket::new_checked(l4data).map_err(|_| DropReason::Malformed)?;
            out.icmp_type_code = (i.msg_type(), i.code());
            match i.msg_type() {
                icmp::V6_ECHO_REQUEST | icmp::V6_ECHO_REPLY => {
                    out.key.src_port = i.echo_id();
                    out.key.dst_port = i.echo_id();
                    out.icmp = if i.msg_type() == icmp::V6_ECHO_REQUEST {
                        IcmpKind::EchoRequest
                    } else {
                        IcmpKind::EchoReply
                    };
                }
                icmp::V6_NEIGHBOR_SOLICIT if services => out.service = Some(Service::NeighborSolicit),
                icmp::V6_ROUTER_SOLICIT if services => out.service = Some(Service::RouterSolicit),
                _ => return Err(DropReason::UnsupportedIcmp),
            }
        }
        _ => return Err(DropReason::UnsupportedProtocol),
    }
    Ok(out)
}

/// The key, in the ICMP error's direction, of the flow an embedded (truncated) IPv4 packet belongs to: the
/// embedded packet travelled the opposite way, so its addresses and ports are swapped.
fn embedded_key_v4(b: &[u8], vni: Option<Vni>) -> Result<FlowKey, DropReason> {
    // The embedded packet is cut after 8 bytes of L4 header, so its total length exceeds the buffer and the
    // checked view would refuse it: check what is read here instead.
    if b.len() < ipv4::MIN_HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    let ip = Ipv4Packet::new_unchecked(b);
    let hl = ip.header_len();
    if ip.version() != 4 || hl < ipv4::MIN_HEADER_LEN || b.len() < hl + EMBEDDED_L4_LEN {
        return Err(DropReason::Malformed);
    }
    let l4 = &b[hl..];
    let (sp, dp) = match ip.protocol() {
        // TCP and UDP share the port fields' positions.
        ipv4::PROTO_TCP | ipv4::PROTO_UDP => {
            let t = TcpPacket::new_unchecked(l4);
            (t.src_port(), t.dst_port())
        }
        ipv4::PROTO_ICMP => {
            let i = IcmpPacket::new_unchecked(l4);
            if !matches!(i.msg_type(), icmp::V4_ECHO_REQUEST | icmp::V4_ECHO_REPLY) {
                return Err(DropReason::UnsupportedIcmp);
            }
            (i.echo_id(), i.echo_id())
        }
        _ => return Err(DropReason::UnsupportedIcmp),
    };
    Ok(FlowKey::v4(ip.dst(), ip.src(), ip.protocol(), dp, sp, vni))
}
