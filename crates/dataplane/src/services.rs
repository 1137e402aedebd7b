//! Host services answered on VM ports (dpservice's `arp`, `dhcp`, `dhcpv6` and `ipv6_nd` graph nodes,
//! `src/nodes`): ARP for the gateway and MAC learning, DHCPv4, DHCPv6, neighbour discovery, and the periodic
//! work of [`Dataplane::tick`] (flow aging, GARP/probes, RA/NA).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::batch::Packet;
use crate::dataplane::Dataplane;
use crate::dhcp::{self, DhcpReply, DhcpRequest, GATEWAY};
use crate::dhcpv6::{self, Dhcpv6Request};
use crate::packet::arp::{self, ArpRepr};
use crate::packet::checksum::{pseudo_v4, pseudo_v6};
use crate::packet::ether::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetFrame};
use crate::packet::icmp;
use crate::packet::ipv4::{Ipv4Packet, Ipv4Repr, PROTO_UDP};
use crate::packet::ipv6::{self as ip6, Ipv6Packet, Ipv6Repr, NH_ICMPV6};
use crate::packet::l4::{self, UdpPacket};
use crate::packet::put16;
use crate::pipeline::{Outcome, Service};
use crate::port::{MacAddr, PortId, PortKind};
use crate::stats::DropReason;

/// The IPv6 gateway address (fe80::1).
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

/// Builds Ether/IPv4/UDP around `payload`.
fn udp4_frame(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = l4::UDP_HEADER_LEN + payload.len();
    let mut f = vec![0u8; ether::HEADER_LEN + 20 + udp_len];
    ether::write_header(&mut f, dst_mac, src_mac, ETHERTYPE_IPV4);
    Ipv4Repr {
        src,
        dst,
        protocol: PROTO_UDP,
        payload_len: udp_len,
        ttl: 64,
    }
    .emit(&mut f[ether::HEADER_LEN..]);
    let seg = &mut f[ether::HEADER_LEN + 20..];
    seg[l4::UDP_HEADER_LEN..].copy_from_slice(payload);
    l4::emit_udp(
        seg,
        sport,
        dport,
        pseudo_v4(src.octets(), dst.octets(), PROTO_UDP, 0),
    );
    f
}

/// Builds Ether/IPv6/`nh` around an upper-layer message whose checksum sits at `csum_at` (if any); `msg` must be
/// at most 65535 bytes (the IPv6 payload length).
fn ip6_frame(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    nh: u8,
    hop: u8,
    msg: &[u8],
    csum_at: usize,
    udp: bool,
) -> Vec<u8> {
    let mut f = vec![0u8; ether::HEADER_LEN + ip6::HEADER_LEN + msg.len()];
    ether::write_header(&mut f, dst_mac, src_mac, ETHERTYPE_IPV6);
    Ipv6Repr {
        src,
        dst,
        next_header: nh,
        payload_len: msg.len(),
        hop_limit: hop,
    }
    .emit(&mut f[ether::HEADER_LEN..]);
    let seg = &mut f[ether::HEADER_LEN + ip6::HEADER_LEN..];
    seg.copy_from_slice(msg);
    // Truncation impossible: `msg` is at most 65535 bytes (this function's contract).
    #[allow(clippy::cast_possible_truncation)]
    let msg_len = msg.len() as u32;
    l4::fill_checksum(
        seg,
        csum_at,
        pseudo_v6(src.octets(), dst.octets(), nh, msg_len),
        udp,
    );
    f
}

/// A router advertisement from fe80::1 (M and O set, lifetime 0xffff, hop limit 255, source-LL option).
fn router_advert(dst_mac: MacAddr, port_mac: MacAddr, dst: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![
        icmp::V6_ROUTER_ADVERT,
        0,
        0,
        0,
        255,
        0xc0,
        0xff,
        0xff,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        1,
    ];
    m.extend_from_slice(&port_mac.0);
    ip6_frame(dst_mac, port_mac, GATEWAY6, dst, NH_ICMPV6, 255, &m, 2, false)
}

/// A neighbour advertisement for fe80::1 with `flags` (R 0x80, S 0x40, O 0x20) and the target-LL option.
fn neighbor_advert(dst_mac: MacAddr, port_mac: MacAddr, dst: Ipv6Addr, flags: u8) -> Vec<u8> {
    let mut m = vec![icmp::V6_NEIGHBOR_ADVERT, 0, 0, 0, flags, 0, 0, 0];
    m.extend_from_slice(&GATEWAY6.octets());
    m.extend_from_slice(&[2, 1]);
    m.extend_from_slice(&port_mac.0);
    ip6_frame(dst_mac, port_mac, GATEWAY6, dst, NH_ICMPV6, 255, &m, 2, false)
}

impl Dataplane {
    /// ARP on a VM port: requests for 169.254.0.1 are answered in place; a reply from the VM's own address teaches
    /// the VM's MAC until one is learned.
    pub(crate) fn handle_arp(&mut self, pkt: &mut Packet) -> Outcome {
        let port = pkt.port();
        let a = ArpRepr::parse(&pkt.data()[ether::HEADER_LEN..]).map_err(|_| DropReason::Malformed)?;
        let p = &mut self.ports[port.index()];
        match a.op {
            arp::OP_REQUEST if a.tpa == GATEWAY => {
                let reply = ArpRepr {
                    op: arp::OP_REPLY,
                    sha: p.config.mac,
                    spa: GATEWAY,
                    tha: a.sha,
                    tpa: a.spa,
                };
                let mac = p.config.mac;
                pkt.rewrite(ether::HEADER_LEN + arp::PACKET_LEN, |out| {
                    ether::write_header(out, a.sha, mac, ETHERTYPE_ARP);
                    reply.emit(&mut out[ether::HEADER_LEN..]);
                });
                Ok(port)
            }
            arp::OP_REPLY if !p.mac_learned && p.iface.as_ref().and_then(|i| i.ipv4) == Some(a.spa) => {
                p.vm_mac = a.sha;
                p.mac_learned = true;
                Err(DropReason::Consumed)
            }
            _ => Err(DropReason::ArpIgnored),
        }
    }

    /// DHCP, DHCPv6, NS and RS from a VM.
    pub(crate) fn handle_service(&mut self, pkt: &mut Packet, service: Service) -> Outcome {
        let port = pkt.port();
        if self.ports[port.index()].iface.is_none() {
            return Err(DropReason::NoInterface);
        }
        let src_mac = EthernetFrame::new_checked(pkt.data())
            .map_err(|_| DropReason::Malformed)?
            .src();
        let frame = match service {
            Service::Dhcp => self.dhcp_reply(port, pkt, src_mac)?,
            Service::Dhcpv6 => self.dhcpv6_reply(port, pkt, src_mac)?,
            Service::NeighborSolicit | Service::RouterSolicit => {
                self.nd_reply(port, pkt, src_mac, service)?
            }
        };
        pkt.rewrite(frame.len(), |out| out.copy_from_slice(&frame));
        Ok(port)
    }

    fn dhcp_reply(&mut self, port: PortId, pkt: &Packet, src_mac: MacAddr) -> Result<Vec<u8>, DropReason> {
        let ip =
            Ipv4Packet::new_checked(&pkt.data()[ether::HEADER_LEN..]).map_err(|_| DropReason::Malformed)?;
        let udp = UdpPacket::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
        let req = DhcpRequest::parse(udp.payload()).map_err(|_| DropReason::DhcpIgnored)?;
        let p = &mut self.ports[port.index()];
        let iface = p.iface.as_ref().ok_or(DropReason::NoInterface)?;
        let vm_ip = iface.ipv4.ok_or(DropReason::DhcpIgnored)?;
        let msg_type = match req.msg_type {
            dhcp::DISCOVER => dhcp::OFFER,
            dhcp::REQUEST => dhcp::ACK,
            _ => return Err(DropReason::DhcpIgnored),
        };
        let pxe = match &iface.pxe {
            Some(cfg) if req.ipxe || req.pxe_uefi => match cfg.next_server {
                IpAddr::V4(server) if req.ipxe => {
                    Some((server, format!("http://{server}{}", cfg.boot_filename)))
                }
                IpAddr::V4(server) => Some((server, "ipxe/x86_64/ipxe.new".to_string())),
                IpAddr::V6(_) => None,
            },
            _ => None,
        };
        let reply = DhcpReply {
            msg_type,
            yiaddr: vm_ip,
            siaddr: pxe.as_ref().map(|(s, _)| *s).unwrap_or(GATEWAY),
            file: pxe.as_ref().map(|(_, f)| f.clone()),
            mtu: self.config.dhcp_mtu,
            dns: &self.config.dhcp_dns,
            hostname: iface.hostname.as_deref(),
            router: pxe.is_some(),
        };
        // The VM's MAC is the frame's source address: a client may fill the BOOTP `chaddr` with anything, and the
        // reply carries the MAC the dataplane will use (dpservice `src/nodes/dhcp_node.c` does the same).
        let payload = reply.emit(&req, src_mac);
        if msg_type == dhcp::ACK {
            p.vm_mac = src_mac;
            p.mac_learned = true;
        }
        let (dst_mac, dst_ip) = if pxe.is_some() {
            (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
        } else {
            (src_mac, vm_ip)
        };
        Ok(udp4_frame(
            dst_mac,
            p.config.mac,
            GATEWAY,
            dst_ip,
            67,
            68,
            &payload,
        ))
    }

    fn dhcpv6_reply(&mut self, port: PortId, pkt: &Packet, src_mac: MacAddr) -> Result<Vec<u8>, DropReason> {
        let ip =
            Ipv6Packet::new_checked(&pkt.data()[ether::HEADER_LEN..]).map_err(|_| DropReason::Malformed)?;
        let udp = UdpPacket::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
        let req = Dhcpv6Request::parse(udp.payload()).map_err(|_| DropReason::DhcpIgnored)?;
        let p = &self.ports[port.index()];
        let iface = p.iface.as_ref().ok_or(DropReason::NoInterface)?;
        let boot_url = match &iface.pxe {
            Some(cfg) => match cfg.next_server {
                IpAddr::V6(server) if req.ipxe => Some(format!(
                    "http://[{server}]/{}",
                    cfg.boot_filename.trim_start_matches('/')
                )),
                IpAddr::V6(server) if req.pxe_uefi => Some(format!("tftp://[{server}]/ipxe/x86_64/ipxe.new")),
                _ => None,
            },
            None => None,
        };
        let msg = dhcpv6::reply(
            &req,
            iface.ipv6,
            p.config.mac,
            &self.config.dhcpv6_dns,
            boot_url.as_deref(),
        )
        .ok_or(DropReason::DhcpIgnored)?;
        let mut seg = vec![0u8; l4::UDP_HEADER_LEN + msg.len()];
        seg[l4::UDP_HEADER_LEN..].copy_from_slice(&msg);
        put16(&mut seg, 0, 547);
        put16(&mut seg, 2, 546);
        // Too many configured DNS servers could make the reply exceed a UDP datagram.
        let seg_len = u16::try_from(seg.len()).map_err(|_| DropReason::TooBig)?;
        put16(&mut seg, 4, seg_len);
        Ok(ip6_frame(
            src_mac,
            p.config.mac,
            GATEWAY6,
            ip.src(),
            PROTO_UDP,
            64,
            &seg,
            l4::UDP_CHECKSUM_AT,
            true,
        ))
    }

    fn nd_reply(
        &mut self,
        port: PortId,
        pkt: &Packet,
        src_mac: MacAddr,
        service: Service,
    ) -> Result<Vec<u8>, DropReason> {
        if !self.config.enable_ipv6_overlay {
            return Err(DropReason::NdIgnored);
        }
        let ip =
            Ipv6Packet::new_checked(&pkt.data()[ether::HEADER_LEN..]).map_err(|_| DropReason::Malformed)?;
        let src = ip.src();
        let (dst, dst_mac) = if src.is_unspecified() {
            (ALL_NODES, ALL_NODES_MAC)
        } else {
            (src, src_mac)
        };
        let p = &mut self.ports[port.index()];
        match service {
            Service::NeighborSolicit => {
                let body = ip.payload();
                if body.len() < 24 || body[8..24] != GATEWAY6.octets() {
                    return Err(DropReason::NdIgnored);
                }
                p.vm_mac = src_mac;
                p.mac_learned = true;
                Ok(neighbor_advert(dst_mac, p.config.mac, dst, 0xe0))
            }
            _ => Ok(router_advert(dst_mac, p.config.mac, dst)),
        }
    }

    /// Periodic work at time `now` (ns, same clock as [`Dataplane::process`]): ages flows (every 5 s, or every
    /// `flow_timeout` if shorter) and, on the maintenance schedule (every 5 s for the first 5 rounds, then every
    /// 30 s), emits for every VF with an interface a gratuitous ARP (a probe for the VM's address while its MAC is
    /// unknown) and, with the IPv6 overlay, an RA and an unsolicited NA. Returns the frames to send.
    pub fn tick(&mut self, now: u64) -> Vec<(PortId, Vec<u8>)> {
        let mut out = Vec::new();
        if now >= self.next_aging {
            self.age_flows(now);
            let every = self.config.flow_timeout.min(Duration::from_secs(5));
            self.next_aging = now + crate::pipeline::saturating_nanos(every);
        }
        if now >= self.next_maintenance {
            self.maintenance_rounds += 1;
            let every = if self.maintenance_rounds < 5 { 5 } else { 30 };
            self.next_maintenance = now + crate::pipeline::saturating_nanos(Duration::from_secs(every));
            for (i, p) in self.ports.iter().enumerate() {
                let Some(iface) = p.iface.as_ref() else { continue };
                if p.config.kind != PortKind::Vf {
                    continue;
                }
                let id = PortId::of_registered(i);
                if let Some(vm_ip) = iface.ipv4 {
                    let tpa = if p.mac_learned { GATEWAY } else { vm_ip };
                    let a = ArpRepr {
                        op: arp::OP_REQUEST,
                        sha: p.config.mac,
                        spa: GATEWAY,
                        tha: MacAddr::default(),
                        tpa,
                    };
                    let mut f = vec![0u8; ether::HEADER_LEN + arp::PACKET_LEN];
                    ether::write_header(&mut f, MacAddr::BROADCAST, p.config.mac, ETHERTYPE_ARP);
                    a.emit(&mut f[ether::HEADER_LEN..]);
                    out.push((id, f));
                }
                if self.config.enable_ipv6_overlay {
                    out.push((id, router_advert(ALL_NODES_MAC, p.config.mac, ALL_NODES)));
                    out.push((id, neighbor_advert(ALL_NODES_MAC, p.config.mac, ALL_NODES, 0xa0)));
                }
            }
        }
        for (port, f) in &out {
            self.stats.count_tx(*port, f.len());
        }
        out
    }
}
