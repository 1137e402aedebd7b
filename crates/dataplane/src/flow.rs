//! Connection tracking (dpservice's `conntrack` graph node, `src/nodes`): a flow table keyed by both
//! directions' 5-tuples, TCP state and idle aging.
//!
//! Flows live in a slab (`Vec<Flow>` plus a free list) and a hash index ([`crate::flow_index`]) maps each
//! direction's [`FlowKey`] to `slot << 1 | direction`; the key itself is stored once, in the slab. A flow is
//! created once and then only read and touched on the fast path, so the established-flow path does one hash
//! probe and no allocation.

use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ironnet_vni::Vni;

use crate::dataplane::RouteTarget;
use crate::flow_index::FlowIndex;
use crate::port::PortId;

/// Largest number of flows a table can hold (index values are `slot << 1 | direction` in a `u32` that must stay
/// below `u32::MAX`); configurations are limited to far fewer (`max_flows` ≤ 2^24).
const MAX_CAPACITY: usize = 1 << 30;

/// The slot number of slab index `i`.
#[allow(clippy::cast_possible_truncation)]
fn slab_slot(i: usize) -> u32 {
    // Truncation impossible: the slab grows only while fewer than `capacity` ≤ MAX_CAPACITY (2^30) flows live.
    i as u32
}

/// A direction of a flow: the one that created it, or the opposite one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowDir {
    /// Same direction as the first packet.
    Original,
    /// Opposite direction.
    Reply,
}

/// One direction's identity. Addresses are big-endian bytes; IPv4 addresses occupy the last 4 bytes with
/// `v6 = false`. Byte arrays (not `u128`) keep the key 4-byte aligned: 44 bytes, which matters at a million flows.
#[derive(Debug, Clone, Copy, Eq, Default)]
pub struct FlowKey {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// VNI.
    pub vni: Option<Vni>,
    /// Source port, or the ICMP echo identifier.
    pub src_port: u16,
    /// Destination port, or the ICMP echo identifier.
    pub dst_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// IPv6 addresses.
    pub v6: bool,
    /// Separates flows that share a 5-tuple but are different connections to the dataplane: 0 for ordinary
    /// traffic, [`FlowKey::ZONE_LB`] for packets arriving at a load balancer (whose direct-server-return answers
    /// from a local backend carry the reversed 5-tuple but are a new flow), [`FlowKey::ZONE_NAT`] for packets
    /// arriving at a NAT gateway underlay and for the reply key of a NAT flow (so only those packets are
    /// de-NATed; a local VM sending the reverse 5-tuple starts its own flow). dpservice uses its `vnf_type` key
    /// field for the same purpose.
    pub zone: u8,
}

impl PartialEq for FlowKey {
    /// Field by field as the derived impl, but the VNI compared as its wire number: with `Option<Vni>`'s own `==`
    /// (a match on both options; the standard library specialises it only for its own non-zero integer types) the
    /// flow-table probe `FlowIndex::find` was no longer inlined, and a first packet cost 4.5 % more instructions.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
            && self.dst == other.dst
            && Vni::to_wire(self.vni) == Vni::to_wire(other.vni)
            && self.src_port == other.src_port
            && self.dst_port == other.dst_port
            && self.proto == other.proto
            && self.v6 == other.v6
            && self.zone == other.zone
    }
}

impl Hash for FlowKey {
    /// Hashes the key as three machine words (the derived impl hashes each array as a length-prefixed slice, which
    /// costs several hasher rounds per lookup on the first-packet path).
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.src));
        state.write_u128(u128::from_ne_bytes(self.dst));
        state.write_u64(
            u64::from(Vni::to_wire(self.vni))
                | u64::from(self.src_port) << 32
                | u64::from(self.dst_port) << 48,
        );
        state.write_u32(u32::from(self.proto) | u32::from(self.v6) << 8 | u32::from(self.zone) << 16);
    }
}

impl FlowKey {
    /// Zone of flows arriving at a load-balancer underlay.
    pub const ZONE_LB: u8 = 1;
    /// Zone of packets arriving at a NAT gateway underlay, and of NAT flows' reply keys.
    pub const ZONE_NAT: u8 = 2;

    /// The key of an IPv4 packet.
    #[inline]
    pub fn v4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
        vni: Option<Vni>,
    ) -> Self {
        FlowKey {
            src: u128::from(u32::from(src)).to_be_bytes(),
            dst: u128::from(u32::from(dst)).to_be_bytes(),
            vni,
            src_port,
            dst_port,
            proto,
            v6: false,
            zone: 0,
        }
    }

    /// The key of an IPv6 packet.
    #[inline]
    pub fn v6(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
        vni: Option<Vni>,
    ) -> Self {
        FlowKey {
            src: src.octets(),
            dst: dst.octets(),
            vni,
            src_port,
            dst_port,
            proto,
            v6: true,
            zone: 0,
        }
    }

    /// The key of the opposite direction (addresses and ports swapped).
    #[inline]
    pub fn reversed(&self) -> Self {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..*self
        }
    }

    /// Source address as an `IpAddr`.
    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.src, self.v6)
    }

    /// Destination address as an `IpAddr`.
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.dst, self.v6)
    }
}

fn to_ip(a: [u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    }
}

/// TCP connection state as dpservice tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// Nothing seen (or not TCP).
    None,
    /// SYN seen.
    NewSyn,
    /// SYN+ACK seen from the opposite direction.
    NewSynAck,
    /// Handshake completed: long timeout.
    Established,
    /// FIN seen in ESTABLISHED.
    FinWait,
    /// RST or FIN outside ESTABLISHED.
    RstFin,
}

impl TcpState {
    /// The state after a segment with `flags` travelling in `dir`.
    pub fn next(self, dir: FlowDir, flags: u8) -> TcpState {
        use crate::packet::l4::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
        if flags & TCP_RST != 0 {
            return TcpState::RstFin;
        }
        if flags & TCP_FIN != 0 {
            return if self == TcpState::Established {
                TcpState::FinWait
            } else {
                TcpState::RstFin
            };
        }
        let syn = flags & TCP_SYN != 0;
        let ack = flags & TCP_ACK != 0;
        match self {
            TcpState::None | TcpState::RstFin if syn && !ack => TcpState::NewSyn,
            TcpState::NewSyn if syn && ack && dir == FlowDir::Reply => TcpState::NewSynAck,
            TcpState::NewSynAck if ack && !syn && dir == FlowDir::Original => TcpState::Established,
            s => s,
        }
    }
}

/// A NAT rewrite applied to packets of one direction (IPv4 only: VIP and NAT are IPv4 features).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewrite {
    /// New source address and port (port = ICMP identifier for echo).
    pub src: Option<(Ipv4Addr, u16)>,
    /// New destination address and port.
    pub dst: Option<(Ipv4Addr, u16)>,
}

/// What the pipeline does with a flow's packets beyond routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// Routed in its VNI (with optional NAT rewrites).
    Routed,
    /// Forwarded by a load balancer to a backend underlay (one-way).
    LbForward {
        /// The selected backend.
        backend: Ipv6Addr,
    },
    /// Relayed to a neighbour NAT's underlay (one-way).
    NeighborRelay {
        /// The neighbour's underlay.
        underlay: Ipv6Addr,
    },
    /// NAT64: original packets are IPv6 from the VM to `64:ff9b::/96`, translated to IPv4 from the NAT IP; replies
    /// are IPv4 to the NAT IP, translated back.
    Nat64 {
        /// The VM's IPv6 address.
        vm: Ipv6Addr,
        /// The VM's port (or ICMPv6 echo identifier).
        vm_port: u16,
        /// NAT IP.
        nat_ip: Ipv4Addr,
        /// NAT port (or ICMP echo identifier).
        nat_port: u16,
    },
}

/// What created a flow's NAT state, so deleting the configuration flushes exactly its flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatTag {
    /// No NAT.
    None,
    /// Source NAT by the interface's VIP.
    Vip,
    /// Destination NAT to a VIP (inbound).
    VipInbound,
    /// Source NAT by the interface's NAT IP (a port was allocated).
    Nat,
}

/// A route lookup result cached in a flow for one direction: valid while the dataplane's forwarding epoch (bumped
/// by every change of a routing table or of the VNF table) equals `epoch`. Epoch 0 is never current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FwdCache {
    pub(crate) epoch: u64,
    pub(crate) target: Option<RouteTarget>,
}

/// A tracked connection.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Original and reply keys.
    pub keys: [FlowKey; 2],
    /// Rewrites for original and reply packets.
    pub rewrite: [Rewrite; 2],
    /// Forwarding kind.
    pub kind: FlowKind,
    /// NAT provenance.
    pub nat: NatTag,
    /// The local VF port whose configuration the flow depends on (for flushing), if any.
    pub port: Option<PortId>,
    /// Whether the firewall accepted the flow.
    pub allowed: bool,
    /// TCP state.
    pub tcp: TcpState,
    /// Last packet time (ns).
    pub last_seen: u64,
    /// Uplink index (0 = pf0, 1 = pf1) chosen by WCMP when the flow was created.
    pub uplink: u8,
    /// Per direction: the cached output decision (the established path skips the LPM lookup while it is current).
    pub(crate) fwd: [FwdCache; 2],
    live: bool,
}

impl Flow {
    /// A new flow with the given keys, no rewrites, routed, accepted.
    pub fn new(original: FlowKey, reply: FlowKey, now: u64) -> Self {
        Flow {
            keys: [original, reply],
            rewrite: [Rewrite::default(); 2],
            kind: FlowKind::Routed,
            nat: NatTag::None,
            port: None,
            allowed: true,
            tcp: TcpState::None,
            last_seen: now,
            uplink: 0,
            fwd: [FwdCache::default(); 2],
            live: true,
        }
    }
}

/// What a flow is, for the flow gauges: its forwarding kind, and for routed flows which NAT created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowClass {
    /// Routed in its VNI without NAT.
    Routed,
    /// Outbound, source-NATed by the interface's VIP.
    Vip,
    /// Inbound to a VIP, destination-NATed to the VM.
    VipInbound,
    /// Outbound, source-NATed by the interface's NAT gateway IP and port.
    Nat,
    /// Forwarded by a load balancer to a backend.
    LoadBalancer,
    /// Relayed to a neighbour NAT's underlay.
    NeighborNat,
    /// NAT64 (IPv6 VM to an IPv4 destination).
    Nat64,
}

impl FlowClass {
    /// All classes, in counter order.
    pub const ALL: [FlowClass; 7] = [
        FlowClass::Routed,
        FlowClass::Vip,
        FlowClass::VipInbound,
        FlowClass::Nat,
        FlowClass::LoadBalancer,
        FlowClass::NeighborNat,
        FlowClass::Nat64,
    ];

    /// The class of `f`.
    #[inline]
    pub fn of(f: &Flow) -> FlowClass {
        match (f.kind, f.nat) {
            (FlowKind::LbForward { .. }, _) => FlowClass::LoadBalancer,
            (FlowKind::NeighborRelay { .. }, _) => FlowClass::NeighborNat,
            (FlowKind::Nat64 { .. }, _) => FlowClass::Nat64,
            (FlowKind::Routed, NatTag::None) => FlowClass::Routed,
            (FlowKind::Routed, NatTag::Vip) => FlowClass::Vip,
            (FlowKind::Routed, NatTag::VipInbound) => FlowClass::VipInbound,
            (FlowKind::Routed, NatTag::Nat) => FlowClass::Nat,
        }
    }

    /// A stable snake_case name for metrics.
    pub const fn name(self) -> &'static str {
        match self {
            FlowClass::Routed => "routed",
            FlowClass::Vip => "vip",
            FlowClass::VipInbound => "vip_inbound",
            FlowClass::Nat => "nat",
            FlowClass::LoadBalancer => "load_balancer",
            FlowClass::NeighborNat => "neighbor_nat",
            FlowClass::Nat64 => "nat64",
        }
    }
}

/// Counts a table keeps as flows come and go (one add per insert or removal, never per packet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounts {
    /// Live flows per [`FlowClass`], indexed by `class as usize`.
    pub live: [u64; FlowClass::ALL.len()],
    /// Flows inserted whose firewall verdict was accept.
    pub accepted: u64,
    /// Flows inserted whose firewall verdict was drop (their packets are dropped while the firewall is enforced).
    pub denied: u64,
}

impl FlowCounts {
    #[inline]
    fn insert(&mut self, f: &Flow) {
        if cfg!(feature = "uncounted") {
            return;
        }
        self.live[FlowClass::of(f) as usize] += 1;
        if f.allowed {
            self.accepted += 1;
        } else {
            self.denied += 1;
        }
    }

    #[inline]
    fn remove(&mut self, f: &Flow) {
        if cfg!(feature = "uncounted") {
            return;
        }
        let n = &mut self.live[FlowClass::of(f) as usize];
        *n = n.saturating_sub(1);
    }
}

/// Index of a flow in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(u32);

/// The connection-tracking table.
#[derive(Debug)]
pub struct FlowTable {
    /// Per-table random seed: flow keys come from the network, so their hashes must not be predictable.
    hasher: foldhash::fast::RandomState,
    index: FlowIndex,
    slab: Vec<Flow>,
    free: Vec<u32>,
    capacity: usize,
    live: usize,
    counts: FlowCounts,
}

/// Why a flow could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The table holds `capacity` flows.
    #[error("flow table full")]
    Full,
    /// One of the keys is already tracked.
    #[error("flow key collision")]
    Collision,
}

impl FlowTable {
    /// An empty table for up to `capacity` flows.
    pub fn new(capacity: usize) -> Self {
        FlowTable {
            hasher: foldhash::fast::RandomState::default(),
            index: FlowIndex::default(),
            slab: Vec::new(),
            free: Vec::new(),
            capacity: capacity.min(MAX_CAPACITY),
            live: 0,
            counts: FlowCounts::default(),
        }
    }

    /// Preallocates room for `flows` flows (capped at the capacity), so that inserting them never rehashes.
    pub fn reserve(&mut self, flows: usize) {
        let n = flows.min(self.capacity).saturating_sub(self.live);
        self.index.reserve(2 * n);
        self.slab.reserve(n);
    }

    /// Number of live flows.
    pub fn len(&self) -> usize {
        self.live
    }

    /// The most flows the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Live flows per class and the firewall verdicts of all flows inserted so far.
    pub fn counts(&self) -> &FlowCounts {
        &self.counts
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// A hash of `key` that is the same for both directions' keys of a flow only if the caller passes the original
    /// key; used for load-balancer and WCMP selection, stable across runs (fixed seed).
    pub fn stable_hash(key: &FlowKey) -> u64 {
        foldhash::fast::FixedState::with_seed(0x1f2e_3d4c_5b6a_7988).hash_one(key)
    }

    /// Looks up a packet's key: the flow and the direction the packet travels in.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(FlowId, FlowDir)> {
        self.find(self.hasher.hash_one(key), key).map(|v| {
            (
                FlowId(v >> 1),
                if v & 1 == 0 {
                    FlowDir::Original
                } else {
                    FlowDir::Reply
                },
            )
        })
    }

    /// The index value (`slot << 1 | direction`) of `key`, whose hash is `hash`.
    #[inline]
    fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let slab = &self.slab;
        self.index.find(hash, |v| {
            slab.get((v >> 1) as usize)
                .is_some_and(|f| f.keys[(v & 1) as usize] == *key)
        })
    }

    /// The flow.
    #[inline]
    pub fn get(&self, id: FlowId) -> &Flow {
        &self.slab[id.0 as usize]
    }

    /// The flow, mutable.
    #[inline]
    pub fn get_mut(&mut self, id: FlowId) -> &mut Flow {
        &mut self.slab[id.0 as usize]
    }

    /// Inserts `flow` under both keys. Identical keys (a flow to itself) are indexed once.
    pub fn insert(&mut self, flow: Flow) -> Result<FlowId, FlowError> {
        if self.live >= self.capacity {
            return Err(FlowError::Full);
        }
        let [k0, k1] = flow.keys;
        let h0 = self.hasher.hash_one(k0);
        let h1 = if k1 != k0 {
            Some(self.hasher.hash_one(k1))
        } else {
            None
        };
        if self.find(h0, &k0).is_some() || h1.is_some_and(|h1| self.find(h1, &k1).is_some()) {
            return Err(FlowError::Collision);
        }
        self.counts.insert(&flow);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = flow;
                s
            }
            None => {
                self.slab.push(flow);
                slab_slot(self.slab.len() - 1)
            }
        };
        self.index.insert(h0, slot << 1);
        if let Some(h1) = h1 {
            self.index.insert(h1, slot << 1 | 1);
        }
        self.live += 1;
        Ok(FlowId(slot))
    }

    /// Removes the flow, returning it.
    pub fn remove(&mut self, id: FlowId) -> Flow {
        let f = &mut self.slab[id.0 as usize];
        let out = f.clone();
        f.live = false;
        // A one-way flow (both keys equal) is indexed only as original; removing the absent reply entry is a no-op.
        for (dir, k) in [0u32, 1].into_iter().zip(out.keys.iter()) {
            self.index.remove(self.hasher.hash_one(k), id.0 << 1 | dir);
        }
        self.free.push(id.0);
        self.live -= 1;
        self.counts.remove(&out);
        out
    }

    /// Removes every live flow for which `pred` is true, returning them.
    pub fn drain_where(&mut self, mut pred: impl FnMut(&Flow) -> bool) -> Vec<Flow> {
        let ids: Vec<FlowId> = self
            .slab
            .iter()
            .enumerate()
            .filter(|(_, f)| f.live && pred(f))
            .map(|(i, _)| FlowId(slab_slot(i)))
            .collect();
        ids.into_iter().map(|id| self.remove(id)).collect()
    }

    /// Bytes of heap memory held by the table (index and slab), an estimate from capacities.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes()
            + self.slab.capacity() * std::mem::size_of::<Flow>()
            + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sp: u16) -> FlowKey {
        FlowKey::v4(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            6,
            sp,
            80,
            Some(ironnet_vni::vni!(7)),
        )
    }

    #[test]
    fn keys_are_equal_exactly_when_every_field_is() {
        let base = key(1000);
        assert_eq!(base, key(1000));
        let changed: [fn(&mut FlowKey); 9] = [
            |k| k.src[15] ^= 1,
            |k| k.dst[0] ^= 1,
            |k| k.vni = None,
            |k| k.vni = Some(ironnet_vni::vni!(8)),
            |k| k.src_port ^= 1,
            |k| k.dst_port ^= 1,
            |k| k.proto ^= 1,
            |k| k.v6 = !k.v6,
            |k| k.zone = FlowKey::ZONE_LB,
        ];
        for (i, change) in changed.iter().enumerate() {
            let mut other = base;
            change(&mut other);
            assert_ne!(base, other, "change {i}");
            assert_ne!(other, base, "change {i}");
        }
        let none = FlowKey { vni: None, ..base };
        assert_eq!(none, FlowKey { vni: None, ..base });
    }

    #[test]
    fn both_directions_find_the_flow_and_removal_frees_the_slot() {
        let mut t = FlowTable::new(2);
        let k = key(1000);
        let id = t.insert(Flow::new(k, k.reversed(), 0)).unwrap();
        assert_eq!(t.lookup(&k), Some((id, FlowDir::Original)));
        assert_eq!(t.lookup(&k.reversed()), Some((id, FlowDir::Reply)));
        assert_eq!(
            t.insert(Flow::new(k, key(5).reversed(), 0)),
            Err(FlowError::Collision)
        );
        t.insert(Flow::new(key(1), key(1).reversed(), 0)).unwrap();
        assert_eq!(
            t.insert(Flow::new(key(2), key(2).reversed(), 0)),
            Err(FlowError::Full)
        );
        t.remove(id);
        assert_eq!(t.lookup(&k), None);
        assert_eq!(t.len(), 1);
        let id2 = t.insert(Flow::new(key(2), key(2).reversed(), 0)).unwrap();
        assert_eq!(id2, id, "slot reused");
    }

    #[test]
    fn tcp_handshake_reaches_established_and_fin_rst_leave_it() {
        use crate::packet::l4::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
        let s = TcpState::None.next(FlowDir::Original, TCP_SYN);
        assert_eq!(s, TcpState::NewSyn);
        // SYN+ACK from the same direction does not advance.
        assert_eq!(s.next(FlowDir::Original, TCP_SYN | TCP_ACK), TcpState::NewSyn);
        let s = s.next(FlowDir::Reply, TCP_SYN | TCP_ACK);
        assert_eq!(s, TcpState::NewSynAck);
        let s = s.next(FlowDir::Original, TCP_ACK);
        assert_eq!(s, TcpState::Established);
        assert_eq!(s.next(FlowDir::Reply, TCP_FIN | TCP_ACK), TcpState::FinWait);
        assert_eq!(s.next(FlowDir::Reply, TCP_RST), TcpState::RstFin);
        assert_eq!(
            TcpState::NewSyn.next(FlowDir::Original, TCP_FIN),
            TcpState::RstFin
        );
    }
}
