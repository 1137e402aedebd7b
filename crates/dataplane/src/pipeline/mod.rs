//! Packet processing: classification (dpservice's `cls` graph node, `src/nodes`) and dispatch to host
//! services, the routed path and the uplink (decapsulation) path.

mod forward;
mod nat64;
mod parse;
mod rewrite;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ironnet_vni::Vni;

use crate::batch::{Batch, Packet, Verdict};
use crate::dataplane::Dataplane;
use crate::flow::{Flow, FlowKey, NatTag, TcpState};
use crate::nat::{Binding, SocketKey};
use crate::packet::ether::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetFrame};
use crate::packet::ipv6::{self, Ipv6Packet};
use crate::port::{PortId, PortKind};
use crate::stats::DropReason;
use crate::underlay::Vnf;

pub(crate) use parse::Service;

/// Where a packet came from, as far as forwarding cares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ingress {
    /// The port it arrived on.
    pub(crate) port: PortId,
    /// Offset of the (inner) IP header in the frame.
    pub(crate) l3: usize,
    /// For uplink packets: outer source and destination and the destination's VNF.
    pub(crate) tunnel: Option<(Ipv6Addr, Ipv6Addr, Vnf)>,
    /// VNI of the packet.
    pub(crate) vni: Option<Vni>,
}

pub(crate) type Outcome = Result<PortId, DropReason>;

impl Dataplane {
    /// Processes every frame of `batch` at time `now` (nanoseconds on any monotonic clock; only differences
    /// matter). Afterwards every packet has a verdict: [`Verdict::Tx`] with the (possibly rewritten) frame to send
    /// on that port, or [`Verdict::Drop`] (counted in [`Dataplane::stats`]). Never panics on any frame content.
    pub fn process(&mut self, now: u64, batch: &mut Batch) {
        for pkt in batch.packets_mut() {
            self.stats.count_rx(pkt.port(), pkt.len());
            match self.process_one(now, pkt) {
                Ok(out) => {
                    self.stats.count_tx(out, pkt.len());
                    pkt.set_verdict(Verdict::Tx(out));
                }
                Err(reason) => {
                    // Read again rather than kept from above: a value live across `process_one` costs the
                    // pipeline inlined there a register (and spills on every packet).
                    self.stats.count_drop(pkt.port(), reason);
                    pkt.set_verdict(Verdict::Drop(reason));
                }
            }
        }
    }

    fn process_one(&mut self, now: u64, pkt: &mut Packet) -> Outcome {
        let in_port = pkt.port();
        let kind = self
            .ports
            .get(in_port.index())
            .ok_or(DropReason::UnknownPort)?
            .config
            .kind;
        let ethertype = EthernetFrame::new_checked(pkt.data())
            .map_err(|_| DropReason::NotEthernet)?
            .ethertype();
        match (kind, ethertype) {
            (PortKind::Vf, ETHERTYPE_ARP) => self.handle_arp(pkt),
            (PortKind::Vf, ETHERTYPE_IPV4) | (PortKind::Vf, ETHERTYPE_IPV6) => {
                let v6 = ethertype == ETHERTYPE_IPV6;
                let vni = self.ports[in_port.index()].iface.as_ref().map(|i| i.vni);
                let parsed = parse::parse(pkt, ether::HEADER_LEN, v6, vni.flatten(), true)?;
                if let Some(service) = parsed.service {
                    return self.handle_service(pkt, service);
                }
                let vni = vni.ok_or(DropReason::NoInterface)?;
                let ingress = Ingress {
                    port: in_port,
                    l3: ether::HEADER_LEN,
                    tunnel: None,
                    vni,
                };
                self.forward(now, pkt, ingress, parsed)
            }
            (PortKind::Pf, ETHERTYPE_IPV6) => self.uplink_ingress(now, pkt),
            (PortKind::Pf, ETHERTYPE_IPV4) => Err(DropReason::UntunnelledOnUplink),
            _ => Err(DropReason::NotEthernet),
        }
    }

    /// Uplink ingress: an IPv4/IPv6-in-IPv6 tunnel packet to one of our underlay addresses.
    fn uplink_ingress(&mut self, now: u64, pkt: &mut Packet) -> Outcome {
        let outer =
            Ipv6Packet::new_checked(&pkt.data()[ether::HEADER_LEN..]).map_err(|_| DropReason::Malformed)?;
        let v6 = match outer.next_header() {
            ipv6::NH_IPV4 => false,
            ipv6::NH_IPV6 => true,
            _ => return Err(DropReason::UntunnelledOnUplink),
        };
        let (src, dst) = (outer.src(), outer.dst());
        let total = ether::HEADER_LEN + ipv6::HEADER_LEN + outer.payload_len();
        pkt.truncate(total);
        let vnf = *self.vnf.get(&dst).ok_or(DropReason::UnknownUnderlay)?;
        let l3 = ether::HEADER_LEN + ipv6::HEADER_LEN;
        let ingress = Ingress {
            port: pkt.port(),
            l3,
            tunnel: Some((src, dst, vnf)),
            vni: vnf.vni,
        };
        // Host services answer VMs only: a tunnelled DHCP or ND packet is ordinary traffic.
        let mut parsed = parse::parse(pkt, l3, v6, vnf.vni, false)?;
        parsed.key.zone = match vnf.kind {
            crate::underlay::VnfKind::Lb => FlowKey::ZONE_LB,
            crate::underlay::VnfKind::Nat => FlowKey::ZONE_NAT,
            _ => 0,
        };
        self.forward(now, pkt, ingress, parsed)
    }

    /// Removes flows idle longer than their timeout (established TCP: `tcp_established_timeout`, others:
    /// `flow_timeout`), releasing NAT ports.
    pub(crate) fn age_flows(&mut self, now: u64) {
        let short = saturating_nanos(self.config.flow_timeout);
        let long = saturating_nanos(self.config.tcp_established_timeout);
        let removed = self.flows.drain_where(|f| {
            let timeout = if f.tcp == TcpState::Established {
                long
            } else {
                short
            };
            now.saturating_sub(f.last_seen) > timeout
        });
        self.stats.flows_aged += removed.len() as u64;
        for f in &removed {
            self.release_flow_resources(f);
        }
    }
}

/// The NAT port binding a NAT flow holds, reconstructed from its original key and rewrite.
pub(crate) fn nat_binding_of(f: &Flow) -> Option<Binding> {
    if f.nat != NatTag::Nat {
        return None;
    }
    let k = f.keys[0];
    if let crate::flow::FlowKind::Nat64 {
        vm_port,
        nat_ip,
        nat_port,
        ..
    } = f.kind
    {
        let r = f.keys[1];
        let icmp = r.proto == crate::packet::ipv4::PROTO_ICMP;
        return Some(Binding {
            socket: SocketKey {
                vni: k.vni,
                vm_ip: Ipv6Addr::from(k.src).into(),
                vm_port,
                proto: r.proto,
            },
            nat_ip,
            nat_port,
            dst_ip: Ipv4Addr::new(r.src[12], r.src[13], r.src[14], r.src[15]),
            dst_port: if icmp { 0 } else { r.src_port },
        });
    }
    let (nat_ip, nat_port) = f.rewrite[0].src?;
    let (vm_ip, dst_ip) = v4_pair(&k)?;
    let icmp = k.proto == crate::packet::ipv4::PROTO_ICMP;
    Some(Binding {
        socket: SocketKey {
            vni: k.vni,
            vm_ip: vm_ip.into(),
            vm_port: k.src_port,
            proto: k.proto,
        },
        nat_ip,
        nat_port,
        dst_ip,
        dst_port: if icmp { 0 } else { k.dst_port },
    })
}

/// Source and destination of an IPv4 key.
pub(crate) fn v4_pair(k: &FlowKey) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if k.v6 {
        return None;
    }
    let s = Ipv4Addr::new(k.src[12], k.src[13], k.src[14], k.src[15]);
    let d = Ipv4Addr::new(k.dst[12], k.dst[13], k.dst[14], k.dst[15]);
    Some((s, d))
}

/// `d` in nanoseconds, or `u64::MAX` for durations beyond it (about 584 years), so that an unbounded timeout never
/// wraps to a short one.
pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
