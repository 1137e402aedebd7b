//! NAT64 (dpservice's NAT gateway for IPv6 VMs): a VM with a NAT IP reaches IPv4 destinations through
//! `64:ff9b::a.b.c.d`. Original packets are translated IPv6 → IPv4 (source = NAT IP and an allocated NAT
//! port) and tunnelled like any IPv4 egress; replies to the NAT IP are translated back. TCP, UDP and ICMP(v6)
//! echo are translated (RFC 7915 subset: no options, no fragments, no ICMP errors).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::parse::{IcmpKind, Parsed};
use super::{Ingress, Outcome};
use crate::api::NatInfo;
use crate::batch::Packet;
use crate::dataplane::{Dataplane, RouteTarget};
use crate::firewall::Direction;
use crate::flow::{Flow, FlowDir, FlowKey, FlowKind, NatTag};
use crate::nat::SocketKey;
use crate::packet::checksum::{pseudo_v4, pseudo_v6};
use crate::packet::ether;
use crate::packet::icmp::{self, IcmpPacket};
use crate::packet::ipv4::{self, Ipv4Packet, Ipv4Repr, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::packet::ipv6::{self, Ipv6Packet, Ipv6Repr, NH_ICMPV6};
use crate::packet::l4::{TcpPacket, UdpPacket};
use crate::stats::DropReason;

/// The well-known NAT64 prefix 64:ff9b::/96.
const PREFIX: [u8; 12] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];

/// Whether `dst` lies in 64:ff9b::/96.
pub(super) fn is_nat64(dst: &[u8; 16]) -> bool {
    dst[..12] == PREFIX
}

impl Dataplane {
    /// First packet of a NAT64 flow from a VM.
    pub(super) fn new_nat64_flow(
        &mut self,
        now: u64,
        pkt: &mut Packet,
        ing: Ingress,
        p: &Parsed,
        n: NatInfo,
    ) -> Outcome {
        let key = p.key;
        let vm = Ipv6Addr::from(key.src);
        let own = self.ports[ing.port.index()].iface.as_ref().and_then(|i| i.ipv6);
        if own != Some(vm) {
            return Err(DropReason::NatNoMatch);
        }
        let proto4 = match key.proto {
            PROTO_TCP | PROTO_UDP => key.proto,
            NH_ICMPV6 if p.icmp == IcmpKind::EchoRequest => PROTO_ICMP,
            _ => return Err(DropReason::UnsupportedIcmp),
        };
        let dst4 = Ipv4Addr::new(key.dst[12], key.dst[13], key.dst[14], key.dst[15]);
        let dport = if proto4 == PROTO_ICMP { 0 } else { key.dst_port };
        let socket = SocketKey {
            vni: key.vni,
            vm_ip: vm.into(),
            vm_port: key.src_port,
            proto: proto4,
        };
        let b = self
            .nat_ports
            .allocate(socket, n.ip, n.min_port, n.max_port, dst4, dport)
            .ok_or(DropReason::NatExhausted)?;
        let mut reply = if proto4 == PROTO_ICMP {
            FlowKey::v4(dst4, n.ip, PROTO_ICMP, b.nat_port, b.nat_port, key.vni)
        } else {
            FlowKey::v4(dst4, n.ip, proto4, key.dst_port, b.nat_port, key.vni)
        };
        // Replies arrive at the NAT underlay only (see `FlowKey::zone`).
        reply.zone = FlowKey::ZONE_NAT;
        let allowed = self.fw_accepts(ing.port, Direction::Egress, p);
        let mut f = Flow::new(key, reply, now);
        f.kind = FlowKind::Nat64 {
            vm,
            vm_port: key.src_port,
            nat_ip: n.ip,
            nat_port: b.nat_port,
        };
        f.nat = NatTag::Nat;
        f.port = Some(ing.port);
        f.allowed = allowed;
        f.uplink = self.pick_uplink(&reply);
        let uplink = f.uplink;
        if let Err(e) = self.insert_flow(f, p) {
            self.nat_ports.release(&b);
            return Err(e);
        }
        self.check_verdict(allowed)?;
        self.nat64_forward(
            pkt,
            ing,
            p,
            FlowDir::Original,
            (vm, key.src_port, n.ip, b.nat_port),
            uplink,
        )
    }

    /// Translates and sends a packet of a NAT64 flow: original ⇒ IPv4 through the tunnel to the IPv6 default
    /// route's next hop; reply ⇒ IPv6 to the VM.
    pub(super) fn nat64_forward(
        &mut self,
        pkt: &mut Packet,
        ing: Ingress,
        p: &Parsed,
        dir: FlowDir,
        (vm, vm_port, nat_ip, nat_port): (Ipv6Addr, u16, Ipv4Addr, u16),
        uplink: u8,
    ) -> Outcome {
        if let IcmpKind::Error { .. } = p.icmp {
            return Err(DropReason::UnsupportedIcmp);
        }
        match dir {
            FlowDir::Original => {
                let (target, _) = self
                    .lookup_route(ing.vni, true, p.key.dst)
                    .ok_or(DropReason::NoRoute)?;
                let RouteTarget::External { nexthop, .. } = target else {
                    return Err(DropReason::NoRoute);
                };
                let src = self.ports[ing.port.index()]
                    .iface
                    .as_ref()
                    .ok_or(DropReason::NoInterface)?
                    .underlay;
                let l3 = to_ipv4(pkt, ing.l3, p, nat_ip, nat_port)?;
                self.encap(pkt, l3, false, src, nexthop, uplink)
            }
            FlowDir::Reply => {
                let (target, _) = self
                    .lookup_route(ing.vni, true, vm.octets())
                    .ok_or(DropReason::NoRoute)?;
                let RouteTarget::Vf { port, .. } = target else {
                    return Err(DropReason::NoRoute);
                };
                let l3 = to_ipv6(pkt, ing.l3, p, vm, vm_port)?;
                self.deliver_vf(pkt, l3, port, true)
            }
        }
    }
}

/// Rewrites the IPv6 packet at `l3` into IPv4 in place (the new 20-byte header ends where the IPv6 header ended);
/// returns the new IP header offset.
fn to_ipv4(
    pkt: &mut Packet,
    l3: usize,
    p: &Parsed,
    nat_ip: Ipv4Addr,
    nat_port: u16,
) -> Result<usize, DropReason> {
    let l4 = p.l4;
    let data = pkt.data_mut();
    let l4len = data.len() - l4;
    if ipv4::MIN_HEADER_LEN + l4len > usize::from(u16::MAX) {
        return Err(DropReason::TooBig);
    }
    let (hop, dst4) = {
        let ip6 = Ipv6Packet::new_unchecked(&data[l3..]);
        let d = ip6.dst_octets();
        (ip6.hop_limit(), Ipv4Addr::new(d[12], d[13], d[14], d[15]))
    };
    let proto = if p.key.proto == NH_ICMPV6 {
        PROTO_ICMP
    } else {
        p.key.proto
    };
    let h = l4 - ipv4::MIN_HEADER_LEN;
    let (hdr, seg) = data[h..].split_at_mut(ipv4::MIN_HEADER_LEN);
    Ipv4Repr {
        src: nat_ip,
        dst: dst4,
        protocol: proto,
        payload_len: l4len,
        ttl: hop,
    }
    .emit(hdr);
    // Truncation impossible: the translated segment's length fits 16 bits (checked above).
    #[allow(clippy::cast_possible_truncation)]
    let pseudo = pseudo_v4(nat_ip.octets(), dst4.octets(), proto, l4len as u16);
    match proto {
        PROTO_TCP => {
            let mut t = TcpPacket::new_unchecked(seg);
            t.set_src_port(nat_port);
            t.fill_checksum(pseudo);
        }
        PROTO_UDP => {
            let mut u = UdpPacket::new_unchecked(seg);
            u.set_src_port(nat_port);
            u.fill_checksum(pseudo);
        }
        _ => {
            let mut m = IcmpPacket::new_unchecked(seg);
            m.set_msg_type(if m.msg_type() == icmp::V6_ECHO_REPLY {
                icmp::V4_ECHO_REPLY
            } else {
                icmp::V4_ECHO_REQUEST
            });
            m.set_echo_id(nat_port);
            // ICMP's checksum has no pseudo header (ICMPv6's had one).
            m.fill_checksum(0);
        }
    }
    Ok(h)
}

/// Rewrites the IPv4 packet at `l3` into IPv6 in place (the new header ends where the IPv4 header ended); returns
/// the new IP header offset.
fn to_ipv6(pkt: &mut Packet, l3: usize, p: &Parsed, vm: Ipv6Addr, vm_port: u16) -> Result<usize, DropReason> {
    let l4 = p.l4;
    if l4 < ipv6::HEADER_LEN + ether::HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    let data = pkt.data_mut();
    let l4len = data.len() - l4;
    let (ttl, src4) = {
        let ip4 = Ipv4Packet::new_unchecked(&data[l3..]);
        (ip4.ttl(), ip4.src_octets())
    };
    let nh = if p.key.proto == PROTO_ICMP {
        NH_ICMPV6
    } else {
        p.key.proto
    };
    let mut src = [0u8; 16];
    src[..12].copy_from_slice(&PREFIX);
    src[12..].copy_from_slice(&src4);
    let src = Ipv6Addr::from(src);
    let h = l4 - ipv6::HEADER_LEN;
    let (hdr, seg) = data[h..].split_at_mut(ipv6::HEADER_LEN);
    Ipv6Repr {
        src,
        dst: vm,
        next_header: nh,
        payload_len: l4len,
        hop_limit: ttl,
    }
    .emit(hdr);
    // Truncation impossible: an IPv4 packet's segment is shorter than 64 KiB (the parser cut the frame to the IP
    // length).
    #[allow(clippy::cast_possible_truncation)]
    let pseudo = pseudo_v6(src.octets(), vm.octets(), nh, l4len as u32);
    match nh {
        PROTO_TCP => {
            let mut t = TcpPacket::new_unchecked(seg);
            t.set_dst_port(vm_port);
            t.fill_checksum(pseudo);
        }
        PROTO_UDP => {
            let mut u = UdpPacket::new_unchecked(seg);
            u.set_dst_port(vm_port);
            u.fill_checksum(pseudo);
        }
        _ => {
            let mut m = IcmpPacket::new_unchecked(seg);
            m.set_msg_type(if m.msg_type() == icmp::V4_ECHO_REQUEST {
                icmp::V6_ECHO_REQUEST
            } else {
                icmp::V6_ECHO_REPLY
            });
            m.set_echo_id(vm_port);
            m.fill_checksum(pseudo);
        }
    }
    Ok(h)
}
