//! The routed path: flow lookup and creation, DNAT/SNAT, load balancing, neighbour-NAT relay, firewall, and
//! output to a VM port or the uplink (dpservice's graph nodes from `conntrack` to `ipip_encap`, `src/nodes`).

use std::net::{Ipv4Addr, Ipv6Addr};

use ironnet_vni::Vni;

use super::parse::{IcmpKind, Parsed};
use super::rewrite::apply_v4;
use super::{Ingress, Outcome};
use crate::batch::Packet;
use crate::dataplane::{Dataplane, Dnat, RouteTarget};
use crate::firewall::{Action, Direction, FlowMatch, evaluate};
use crate::flow::{
    Flow, FlowDir, FlowError, FlowId, FlowKey, FlowKind, FlowTable, FwdCache, NatTag, Rewrite,
};
use crate::nat::SocketKey;
use crate::packet::ether::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::packet::icmp::{self, IcmpPacket};
use crate::packet::ipv4::{Ipv4Packet, PROTO_ICMP};
use crate::packet::ipv6::{self, Ipv6Packet, Ipv6Repr, NH_IPV4, NH_IPV6};
use crate::port::PortId;
use crate::stats::DropReason;
use crate::underlay::VnfKind;

/// Hop limit of encapsulated packets.
const ENCAP_HOP_LIMIT: u8 = 64;
/// Offset of the inner IP header in an encapsulated frame.
const ENCAP_L3: usize = ether::HEADER_LEN + ipv6::HEADER_LEN;

fn v4_of(a: &[u8; 16]) -> Ipv4Addr {
    Ipv4Addr::new(a[12], a[13], a[14], a[15])
}

fn apply_key_rewrite(k: &FlowKey, rw: &Rewrite) -> FlowKey {
    let mut t = *k;
    let icmp = k.proto == PROTO_ICMP;
    if let Some((ip, port)) = rw.src {
        t.src = u128::from(u32::from(ip)).to_be_bytes();
        t.src_port = port;
        if icmp {
            t.dst_port = port;
        }
    }
    if let Some((ip, port)) = rw.dst {
        t.dst = u128::from(u32::from(ip)).to_be_bytes();
        t.dst_port = port;
        if icmp {
            t.src_port = port;
        }
    }
    t
}

/// For an uplink packet to an interface-type VNF (own address, alias or LB prefix): `Some(its port)`, because
/// such packets go straight to the VF without a route lookup. `None` for everything else.
#[inline]
fn direct_vnf_port(ing: &Ingress) -> Option<Option<PortId>> {
    match ing.tunnel {
        Some((_, _, vnf))
            if matches!(
                vnf.kind,
                VnfKind::InterfaceIp | VnfKind::AliasPrefix | VnfKind::LbAliasPrefix
            ) =>
        {
            Some(vnf.port)
        }
        _ => None,
    }
}

impl Dataplane {
    /// Forwards an IP packet whose flow key is `p.key`.
    pub(crate) fn forward(&mut self, now: u64, pkt: &mut Packet, ing: Ingress, p: Parsed) -> Outcome {
        if let Some((id, dir)) = self.flows.lookup(&p.key) {
            return self.forward_existing(now, pkt, ing, &p, id, dir);
        }
        if let IcmpKind::Error { .. } = p.icmp {
            return match ing.tunnel {
                // A load balancer keeps no flow for what its backends send by direct server return, so an error
                // about such a packet is matched by the embedded packet (reversed, i.e. `p.key`).
                Some((_, _, vnf)) if vnf.kind == VnfKind::Lb => self.lb_icmp_error(pkt, ing, &p),
                // An error for a connection we do not track.
                _ => Err(DropReason::UnsupportedIcmp),
            };
        }
        match ing.tunnel {
            None => self.new_flow_from_vm(now, pkt, ing, &p),
            Some((outer_src, _, vnf)) => match vnf.kind {
                VnfKind::Lb => self.new_lb_flow(now, pkt, ing, &p, outer_src),
                VnfKind::Vip | VnfKind::Nat => self.new_inbound_nat_flow(now, pkt, ing, &p, outer_src),
                VnfKind::InterfaceIp | VnfKind::AliasPrefix | VnfKind::LbAliasPrefix => {
                    let port = vnf.port.ok_or(DropReason::NoTarget)?;
                    let allowed = self.fw_accepts(port, Direction::Ingress, &p);
                    let mut f = Flow::new(p.key, p.key.reversed(), now);
                    f.port = Some(port);
                    f.allowed = allowed;
                    self.insert_flow(f, &p)?;
                    self.check_verdict(allowed)?;
                    self.deliver_vf(pkt, ing.l3, port, p.key.v6)
                }
            },
        }
    }

    #[inline]
    fn forward_existing(
        &mut self,
        now: u64,
        pkt: &mut Packet,
        ing: Ingress,
        p: &Parsed,
        id: FlowId,
        dir: FlowDir,
    ) -> Outcome {
        let epoch = self.fwd_epoch();
        let f = self.flows.get_mut(id);
        f.last_seen = now;
        if p.key.proto == crate::packet::ipv4::PROTO_TCP {
            f.tcp = f.tcp.next(dir, p.tcp_flags);
        }
        let (allowed, kind, uplink) = (f.allowed, f.kind, f.uplink);
        let rw = f.rewrite[dir as usize];
        let cached = f.fwd[dir as usize];
        self.check_verdict(allowed)?;
        match kind {
            FlowKind::LbForward { backend } => {
                if cached.epoch == epoch
                    && let Some(target) = cached.target
                {
                    return match target {
                        RouteTarget::Vf { port, .. } => self.deliver_vf(pkt, ing.l3, port, p.key.v6),
                        RouteTarget::External { nexthop, .. } => {
                            self.encap(pkt, ing.l3, p.key.v6, self.lb_underlay(&ing), nexthop, uplink)
                        }
                    };
                }
                let target = self.lb_target(backend);
                if let Some(target) = target {
                    self.flows.get_mut(id).fwd[dir as usize] = FwdCache {
                        epoch,
                        target: Some(target),
                    };
                }
                self.lb_send(pkt, &ing, p.key.v6, backend, uplink)
            }
            FlowKind::NeighborRelay { underlay } => {
                self.encap(pkt, ing.l3, p.key.v6, self.config.host_underlay, underlay, uplink)
            }
            FlowKind::Nat64 {
                vm,
                vm_port,
                nat_ip,
                nat_port,
            } => self.nat64_forward(pkt, ing, p, dir, (vm, vm_port, nat_ip, nat_port), uplink),
            FlowKind::Routed => {
                if !p.key.v6 {
                    apply_v4(pkt, ing.l3, p, &rw);
                }
                if let Some(port) = direct_vnf_port(&ing) {
                    return self.deliver_vf(pkt, ing.l3, port.ok_or(DropReason::NoTarget)?, p.key.v6);
                }
                let target = if cached.epoch == epoch {
                    cached.target
                } else {
                    let dst = match rw.dst {
                        Some((ip, _)) => u128::from(u32::from(ip)).to_be_bytes(),
                        None => p.key.dst,
                    };
                    let target = self.lookup_route(ing.vni, p.key.v6, dst).map(|(t, _)| t);
                    self.flows.get_mut(id).fwd[dir as usize] = FwdCache { epoch, target };
                    target
                };
                let target = target.ok_or(DropReason::NoRoute)?;
                self.send_to_target(pkt, ing, p.key.v6, target, uplink)
            }
        }
    }

    /// What [`Dataplane::lb_send`] does with `backend`'s packets, as a cacheable target: a local LB prefix's port,
    /// or the backend's underlay via the uplink. `None` for a local backend without a port (dropped, not cached).
    fn lb_target(&self, backend: Ipv6Addr) -> Option<RouteTarget> {
        match self.vnf.get(&backend) {
            Some(v) if v.kind == VnfKind::LbAliasPrefix => {
                v.port.map(|port| RouteTarget::Vf { port, alias: true })
            }
            _ => Some(RouteTarget::External {
                nexthop_vni: None,
                nexthop: backend,
            }),
        }
    }

    #[inline]
    pub(super) fn check_verdict(&self, allowed: bool) -> Result<(), DropReason> {
        if !allowed && self.config.enforce_firewall {
            Err(DropReason::Firewall)
        } else {
            Ok(())
        }
    }

    fn send_to_target(
        &mut self,
        pkt: &mut Packet,
        ing: Ingress,
        v6: bool,
        target: RouteTarget,
        uplink: u8,
    ) -> Outcome {
        match target {
            RouteTarget::Vf { port, .. } => self.deliver_vf(pkt, ing.l3, port, v6),
            RouteTarget::External { nexthop, .. } => {
                if ing.tunnel.is_some() {
                    return Err(DropReason::NoTransit);
                }
                let src = self.ports[ing.port.index()]
                    .iface
                    .as_ref()
                    .ok_or(DropReason::NoInterface)?
                    .underlay;
                self.encap(pkt, ing.l3, v6, src, nexthop, uplink)
            }
        }
    }

    /// Longest-prefix match of `dst` in `vni`: the target and the matched prefix length.
    #[inline]
    pub(crate) fn lookup_route(
        &self,
        vni: Option<Vni>,
        v6: bool,
        dst: [u8; 16],
    ) -> Option<(RouteTarget, u8)> {
        let t = self.vnis.get(&vni)?;
        if v6 {
            t.v6.lookup(u128::from_be_bytes(dst)).map(|(r, l)| (*r, l))
        } else {
            t.v4.lookup(u32::from(v4_of(&dst))).map(|(r, l)| (*r, l))
        }
    }

    /// Whether `port`'s interface rules accept the flow in `direction`.
    pub(super) fn fw_accepts(&self, port: PortId, direction: Direction, p: &Parsed) -> bool {
        self.fw_accepts_key(port, direction, &p.key, p)
    }

    fn fw_accepts_key(&self, port: PortId, direction: Direction, key: &FlowKey, p: &Parsed) -> bool {
        let Some(iface) = self.ports.get(port.index()).and_then(|x| x.iface.as_ref()) else {
            return false;
        };
        if iface.rules.is_empty() {
            return true;
        }
        let icmp = matches!(key.proto, 1 | 58);
        let (sp, dp) = if icmp {
            (u16::from(p.icmp_type_code.0), u16::from(p.icmp_type_code.1))
        } else {
            (key.src_port, key.dst_port)
        };
        let m = FlowMatch {
            src: key.src_ip(),
            dst: key.dst_ip(),
            proto: key.proto,
            src_port: sp,
            dst_port: dp,
        };
        evaluate(&iface.rules, direction, &m) == Action::Accept
    }

    pub(super) fn insert_flow(&mut self, mut f: Flow, p: &Parsed) -> Result<FlowId, DropReason> {
        if p.key.proto == crate::packet::ipv4::PROTO_TCP && f.kind == FlowKind::Routed {
            f.tcp = f.tcp.next(FlowDir::Original, p.tcp_flags);
        }
        match self.flows.insert(f) {
            Ok(id) => {
                self.stats.flows_created += 1;
                Ok(id)
            }
            Err(FlowError::Full) => Err(DropReason::FlowTableFull),
            Err(FlowError::Collision) => Err(DropReason::FlowConflict),
        }
    }

    pub(super) fn pick_uplink(&self, key: &FlowKey) -> u8 {
        if key.v6 || self.pfs.len() < 2 {
            return 0;
        }
        self.wcmp[(FlowTable::stable_hash(key) % 10) as usize]
    }

    /// A new flow from a VM: DNAT to a local VIP, route, SNAT (VIP or NAT) for south-north traffic, firewall.
    fn new_flow_from_vm(&mut self, now: u64, pkt: &mut Packet, ing: Ingress, p: &Parsed) -> Outcome {
        let key = p.key;
        let (vm_ip4, vip, nat) = {
            let i = self.ports[ing.port.index()]
                .iface
                .as_ref()
                .ok_or(DropReason::NoInterface)?;
            (i.ipv4, i.vip, i.nat)
        };
        let mut rw = [Rewrite::default(); 2];
        let mut tag = NatTag::None;
        if !key.v6
            && let Some(Dnat::Vip { vm_ip }) = self.dnat.get(&(v4_of(&key.dst), key.vni))
        {
            rw[0].dst = Some((*vm_ip, key.dst_port));
            rw[1].src = Some((v4_of(&key.dst), key.dst_port));
        }
        let routed_dst = rw[0]
            .dst
            .map(|(ip, _)| u128::from(u32::from(ip)).to_be_bytes())
            .unwrap_or(key.dst);
        let (target, len) = self
            .lookup_route(key.vni, key.v6, routed_dst)
            .ok_or(DropReason::NoRoute)?;
        let south_north = len == 0 && matches!(target, RouteTarget::External { .. });
        if south_north
            && key.v6
            && let Some(n) = nat
            && super::nat64::is_nat64(&key.dst)
        {
            return self.new_nat64_flow(now, pkt, ing, p, n);
        }
        let mut binding = None;
        if south_north && !key.v6 && Some(v4_of(&key.src)) == vm_ip4 {
            let src = v4_of(&key.src);
            if let Some(n) = nat {
                let socket = SocketKey {
                    vni: key.vni,
                    vm_ip: src.into(),
                    vm_port: key.src_port,
                    proto: key.proto,
                };
                let dport = if key.proto == PROTO_ICMP { 0 } else { key.dst_port };
                let b = self
                    .nat_ports
                    .allocate(socket, n.ip, n.min_port, n.max_port, v4_of(&key.dst), dport)
                    .ok_or(DropReason::NatExhausted)?;
                rw[0].src = Some((n.ip, b.nat_port));
                rw[1].dst = Some((src, key.src_port));
                tag = NatTag::Nat;
                binding = Some(b);
            } else if let Some(v) = vip {
                rw[0].src = Some((v.ip, key.src_port));
                rw[1].dst = Some((src, key.src_port));
                tag = NatTag::Vip;
            }
        }
        let translated = apply_key_rewrite(&key, &rw[0]);
        let mut allowed = self.fw_accepts(ing.port, Direction::Egress, p);
        if let RouteTarget::Vf { port, .. } = target {
            allowed &= self.fw_accepts_key(port, Direction::Ingress, &translated, p);
        }
        let mut reply = translated.reversed();
        if tag == NatTag::Nat {
            // Replies to a NAT IP arrive from the underlay at the NAT's underlay address (see `FlowKey::zone`).
            reply.zone = FlowKey::ZONE_NAT;
        }
        let mut f = Flow::new(key, reply, now);
        f.rewrite = rw;
        f.nat = tag;
        f.port = Some(ing.port);
        f.allowed = allowed;
        f.uplink = self.pick_uplink(&key);
        let uplink = f.uplink;
        if let Err(e) = self.insert_flow(f, p) {
            if let Some(b) = binding {
                self.nat_ports.release(&b);
            }
            return Err(e);
        }
        self.check_verdict(allowed)?;
        if !key.v6 {
            apply_v4(pkt, ing.l3, p, &rw[0]);
        }
        self.send_to_target(pkt, ing, key.v6, target, uplink)
    }

    /// A new flow arriving at a VIP or NAT underlay: VIP ⇒ DNAT to the VM; NAT IP ⇒ echo reply or neighbour
    /// relay, anything else dropped.
    fn new_inbound_nat_flow(
        &mut self,
        now: u64,
        pkt: &mut Packet,
        ing: Ingress,
        p: &Parsed,
        outer_src: Ipv6Addr,
    ) -> Outcome {
        let key = p.key;
        if key.v6 {
            return Err(DropReason::NatNoMatch);
        }
        let dst = v4_of(&key.dst);
        match self.dnat.get(&(dst, key.vni)).copied() {
            Some(Dnat::Vip { vm_ip }) => {
                let mut rw = [Rewrite::default(); 2];
                rw[0].dst = Some((vm_ip, key.dst_port));
                rw[1].src = Some((dst, key.dst_port));
                let routed = u128::from(u32::from(vm_ip)).to_be_bytes();
                let (target, _) = self
                    .lookup_route(key.vni, false, routed)
                    .ok_or(DropReason::NoRoute)?;
                let RouteTarget::Vf { port, .. } = target else {
                    return Err(DropReason::NoTransit);
                };
                let translated = apply_key_rewrite(&key, &rw[0]);
                let allowed = self.fw_accepts_key(port, Direction::Ingress, &translated, p);
                let mut f = Flow::new(key, translated.reversed(), now);
                f.rewrite = rw;
                f.nat = NatTag::VipInbound;
                f.port = Some(port);
                f.allowed = allowed;
                self.insert_flow(f, p)?;
                self.check_verdict(allowed)?;
                apply_v4(pkt, ing.l3, p, &rw[0]);
                self.deliver_vf(pkt, ing.l3, port, false)
            }
            Some(Dnat::NatMarker) => {
                if p.icmp == IcmpKind::EchoRequest {
                    return self.echo_reply(pkt, ing.l3, false, outer_src);
                }
                let neighbor = if key.proto == PROTO_ICMP {
                    None
                } else {
                    self.neighbor_nats
                        .iter()
                        .find(|n| {
                            n.nat_ip == dst
                                && n.vni == key.vni
                                && (n.min_port..n.max_port).contains(&key.dst_port)
                        })
                        .map(|n| n.underlay)
                };
                let underlay = neighbor.ok_or(DropReason::NatNoMatch)?;
                // One-way flow: only the original key is indexed (see `new_lb_flow`).
                let mut f = Flow::new(key, key, now);
                f.kind = FlowKind::NeighborRelay { underlay };
                f.uplink = self.pick_uplink(&key);
                let uplink = f.uplink;
                self.insert_flow(f, p)?;
                self.encap(pkt, ing.l3, false, self.config.host_underlay, underlay, uplink)
            }
            None => Err(DropReason::NatNoMatch),
        }
    }

    /// A new flow arriving at a load balancer underlay: echo ⇒ reply; served (proto, port) ⇒ Maglev backend.
    fn new_lb_flow(
        &mut self,
        now: u64,
        pkt: &mut Packet,
        ing: Ingress,
        p: &Parsed,
        outer_src: Ipv6Addr,
    ) -> Outcome {
        let key = p.key;
        if !self.lb_by_ip.contains_key(&(key.vni, key.dst_ip())) {
            return Err(DropReason::LbNoMatch);
        }
        if p.icmp == IcmpKind::EchoRequest {
            return self.echo_reply(pkt, ing.l3, key.v6, outer_src);
        }
        let backend = self.lb_select(&key)?;
        let allowed = self.lb_backend_accepts(backend, p);
        // One-way flow: only the original key is indexed, so a direct-server-return answer from a local backend
        // (source = LB IP) is not mistaken for this flow's reply and starts its own flow.
        let mut f = Flow::new(key, key, now);
        f.kind = FlowKind::LbForward { backend };
        f.allowed = allowed;
        f.uplink = self.pick_uplink(&key);
        let uplink = f.uplink;
        self.insert_flow(f, p)?;
        self.check_verdict(allowed)?;
        self.lb_send(pkt, &ing, key.v6, backend, uplink)
    }

    /// The Maglev backend of the load balancer at (`key.vni`, `key.dst`) for `key`, if the LB serves `key`'s
    /// protocol and destination port and has targets.
    fn lb_select(&self, key: &FlowKey) -> Result<Ipv6Addr, DropReason> {
        let lb = self
            .lb_by_ip
            .get(&(key.vni, key.dst_ip()))
            .and_then(|id| self.lbs.get(id))
            .ok_or(DropReason::LbNoMatch)?;
        if !lb
            .ports
            .iter()
            .any(|lp| lp.protocol.number() == key.proto && lp.port == key.dst_port)
        {
            return Err(DropReason::LbNoMatch);
        }
        lb.maglev
            .select(FlowTable::stable_hash(key))
            .ok_or(DropReason::LbNoMatch)
    }

    /// Whether `backend` accepts a load-balanced packet: a local LB prefix applies its interface's ingress rules,
    /// a remote backend applies its own.
    fn lb_backend_accepts(&self, backend: Ipv6Addr, p: &Parsed) -> bool {
        match self.vnf.get(&backend) {
            Some(v) if v.kind == VnfKind::LbAliasPrefix => v
                .port
                .is_some_and(|port| self.fw_accepts(port, Direction::Ingress, p)),
            _ => true,
        }
    }

    /// An ICMP destination-unreachable at a load balancer's underlay without a flow of its own: sent to the backend
    /// Maglev chooses for the embedded packet's connection (`p.key`, the embedded packet reversed), i.e. the
    /// backend that connection's packets go to. No flow is created for an error.
    fn lb_icmp_error(&mut self, pkt: &mut Packet, ing: Ingress, p: &Parsed) -> Outcome {
        let backend = self.lb_select(&p.key)?;
        self.check_verdict(self.lb_backend_accepts(backend, p))?;
        let uplink = self.pick_uplink(&p.key);
        self.lb_send(pkt, &ing, p.key.v6, backend, uplink)
    }

    /// Sends a load-balanced packet that arrived as `ing` to `backend`: recirculated to the local VM if the backend
    /// is a local LB prefix, else re-encapsulated from the load balancer's underlay.
    fn lb_send(
        &mut self,
        pkt: &mut Packet,
        ing: &Ingress,
        v6: bool,
        backend: Ipv6Addr,
        uplink: u8,
    ) -> Outcome {
        if let Some(v) = self.vnf.get(&backend)
            && v.kind == VnfKind::LbAliasPrefix
        {
            let port = v.port.ok_or(DropReason::NoTarget)?;
            return self.deliver_vf(pkt, ing.l3, port, v6);
        }
        self.encap(pkt, ing.l3, v6, self.lb_underlay(ing), backend, uplink)
    }

    /// The outer source of packets a load balancer relays: its own underlay, which is where the packet arrived
    /// (load-balanced packets only ever come through the tunnel), so the target sees which LB sent it.
    #[inline]
    fn lb_underlay(&self, ing: &Ingress) -> Ipv6Addr {
        match ing.tunnel {
            Some((_, lb_underlay, _)) => lb_underlay,
            None => self.config.host_underlay,
        }
    }

    /// Turns the echo request at `l3` into an echo reply sent back through the tunnel to `outer_src`.
    fn echo_reply(&mut self, pkt: &mut Packet, l3: usize, v6: bool, outer_src: Ipv6Addr) -> Outcome {
        let data = &mut pkt.data_mut()[l3..];
        // Swapping source and destination keeps every checksum (the sum is commutative).
        let (l4, reply) = if v6 {
            let mut ip = Ipv6Packet::new_unchecked(&mut *data);
            let (src, dst) = (ip.src(), ip.dst());
            ip.set_src(dst);
            ip.set_dst(src);
            (ipv6::HEADER_LEN, icmp::V6_ECHO_REPLY)
        } else {
            let mut ip = Ipv4Packet::new_unchecked(&mut *data);
            let (src, dst) = (ip.src(), ip.dst());
            ip.set_src(dst);
            ip.set_dst(src);
            (ip.header_len(), icmp::V4_ECHO_REPLY)
        };
        IcmpPacket::new_unchecked(&mut data[l4..]).set_msg_type_update(reply);
        self.encap(pkt, l3, v6, self.config.host_underlay, outer_src, 0)
    }

    /// Rewrites the frame to carry the IP packet at `l3` on VF `port`: Ethernet dst = VM MAC, src = port MAC.
    #[inline]
    pub(crate) fn deliver_vf(&mut self, pkt: &mut Packet, l3: usize, port: PortId, v6: bool) -> Outcome {
        let p = self.ports.get(port.index()).ok_or(DropReason::NoTarget)?;
        if p.iface.is_none() {
            return Err(DropReason::NoTarget);
        }
        pkt.pull_front(l3 - ether::HEADER_LEN);
        let ethertype = if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
        ether::write_header(pkt.data_mut(), p.vm_mac, p.config.mac, ethertype);
        Ok(port)
    }

    /// Encapsulates the IP packet at `l3` in IPv6 from `src` to `dst` (Ethernet to the router, IPv6 with next
    /// header 4 or 41 and hop limit 64, as dpservice's `ipip_encap` node) on uplink `uplink` (falls back to
    /// pf0).
    #[inline]
    pub(crate) fn encap(
        &mut self,
        pkt: &mut Packet,
        l3: usize,
        v6: bool,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        uplink: u8,
    ) -> Outcome {
        let pf = *self
            .pfs
            .get(usize::from(uplink))
            .or(self.pfs.first())
            .ok_or(DropReason::NoUplink)?;
        let inner_len = pkt.len() - l3;
        if inner_len > usize::from(u16::MAX) {
            return Err(DropReason::TooBig);
        }
        if l3 < ENCAP_L3 {
            pkt.push_front(ENCAP_L3 - l3);
        } else {
            pkt.pull_front(l3 - ENCAP_L3);
        }
        let pf_mac = self.ports[pf.index()].config.mac;
        let data = pkt.data_mut();
        ether::write_header(data, self.config.router_mac, pf_mac, ETHERTYPE_IPV6);
        let repr = Ipv6Repr {
            src,
            dst,
            next_header: if v6 { NH_IPV6 } else { NH_IPV4 },
            payload_len: inner_len,
            hop_limit: ENCAP_HOP_LIMIT,
        };
        repr.emit(&mut data[ether::HEADER_LEN..]);
        Ok(pf)
    }
}
