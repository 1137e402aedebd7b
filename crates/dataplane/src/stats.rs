//! Counters: why frames were dropped, and per-port traffic; and [`MetricsSnapshot`], everything an exporter
//! reports, read from the dataplane's state in one call.
//!
//! The pipeline counts with plain additions on state only its own thread touches (no atomics, no locks, no lookups
//! by label): a frame costs one 128-bit add to its ingress port's receive slot and one to its egress port's
//! transmit slot (packets and bytes packed in one `u128`), about 14 instructions per forwarded frame in all. The
//! `uncounted` feature compiles the per-packet and per-flow counting out; it exists only as the baseline of the
//! metrics-cost benchmark (`crates/dataplane/benches/metrics_cost.sh`).

use std::net::Ipv4Addr;

use crate::dataplane::{Dataplane, MAX_LBS, MAX_VNI_TABLES};
use crate::flow::FlowClass;
use crate::port::{PortId, PortKind};

macro_rules! drop_reasons {
    ($($(#[$m:meta])* $v:ident = $name:literal,)*) => {
        /// Why the pipeline dropped a frame. Every drop increments exactly one counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $($(#[$m])* $v,)* }

        impl DropReason {
            /// All reasons, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$v,)*];

            /// A stable snake_case name for metrics.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$v => $name,)* }
            }
        }
    };
}

drop_reasons! {
    /// The ingress port id is not registered.
    UnknownPort = "unknown_port",
    /// Too short for an Ethernet header, or an EtherType the pipeline does not handle.
    NotEthernet = "not_ethernet",
    /// A header is truncated or inconsistent.
    Malformed = "malformed",
    /// ARP that is not a request for the gateway nor a reply from the VM.
    ArpIgnored = "arp_ignored",
    /// Handled by the host with nothing to send (e.g. an ARP reply used to learn the VM's MAC).
    Consumed = "consumed",
    /// The VF has no interface bound.
    NoInterface = "no_interface",
    /// Plain IPv4 (or non-tunnel IPv6) on an uplink.
    UntunnelledOnUplink = "untunnelled_on_uplink",
    /// Outer destination is not in the VNF table.
    UnknownUnderlay = "unknown_underlay",
    /// IP protocol other than TCP/UDP/ICMP/ICMPv6.
    UnsupportedProtocol = "unsupported_protocol",
    /// ICMP type the pipeline does not forward.
    UnsupportedIcmp = "unsupported_icmp",
    /// DHCP/DHCPv6 message the server does not answer.
    DhcpIgnored = "dhcp_ignored",
    /// Neighbour discovery not answered (IPv6 overlay disabled or not for the gateway).
    NdIgnored = "nd_ignored",
    /// No route in the VNI.
    NoRoute = "no_route",
    /// Uplink-to-uplink forwarding is not allowed.
    NoTransit = "no_transit",
    /// The firewall rejected the flow.
    Firewall = "firewall",
    /// The NAT port range of the interface is exhausted.
    NatExhausted = "nat_exhausted",
    /// Inbound to a NAT IP without a flow, echo or neighbour range.
    NatNoMatch = "nat_no_match",
    /// Inbound to a load balancer on a port it does not serve, or without targets.
    LbNoMatch = "lb_no_match",
    /// The flow table is full.
    FlowTableFull = "flow_table_full",
    /// A new flow's reply key is already tracked by another flow.
    FlowConflict = "flow_conflict",
    /// The frame would exceed the maximum size after encapsulation.
    TooBig = "too_big",
    /// The VNF has no usable target (e.g. its interface port went away).
    NoTarget = "no_target",
    /// No uplink port is registered.
    NoUplink = "no_uplink",
}

/// Counters of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames received on this port that were dropped.
    pub dropped: u64,
}

/// Number of possible port ids. The traffic tables have a slot for every [`PortId`], so indexing one by a port id
/// needs no bounds check: the compiler sees that a `u16` is below the array's length.
const PORT_IDS: usize = 1 << 16;

/// One traffic slot: the packets and bytes that crossed one port in one direction, packed in one `u128` with the
/// bytes in the low 64 bits and the packets in the high 64 bits. Counting a frame is then one 128-bit add of
/// `1 << 64 | len` (an `add` and an `adc` on x86-64) to one 16-byte-aligned slot, i.e. to one cache line; two
/// separate `u64` adds are no fewer instructions, and the compiler fuses those into a six-instruction vector
/// sequence. The bytes cannot carry into the packets: that takes 2^64 bytes (at 100 Gbit/s, 46 years).
type TrafficSlot = u128;

/// Adds a frame of `bytes` bytes to `slot`.
#[inline(always)]
fn count_frame(slot: &mut TrafficSlot, bytes: usize) {
    *slot += 1 << 64 | bytes as u128;
}

/// The (packets, bytes) in `slot`.
#[allow(clippy::cast_possible_truncation)]
const fn unpack(slot: TrafficSlot) -> (u64, u64) {
    // Truncation intended: the two halves of the packed slot.
    ((slot >> 64) as u64, slot as u64)
}

/// A traffic table: one slot per possible port id, allocated zeroed (the pages of ids never used are never
/// touched, so the table costs memory only for the few pages the registered ports' slots are on).
fn traffic_table() -> Box<[TrafficSlot; PORT_IDS]> {
    vec![0; PORT_IDS]
        .into_boxed_slice()
        .try_into()
        .expect("a slice of PORT_IDS slots converts to an array of PORT_IDS")
}

/// All counters of a dataplane.
#[derive(Clone)]
pub struct Stats {
    /// Indexed by `DropReason as usize`: the enum's discriminants are `0..ALL.len()`, so the index is always in
    /// bounds and the compiler drops the check.
    drops: [u64; DropReason::ALL.len()],
    /// Frames received and dropped, per registered port (its length is the number of registered ports).
    dropped: Vec<u64>,
    /// Frames received and sent per port id. Slots of ids not registered may count frames that arrived with such
    /// an id (they are dropped as `UnknownPort`); they are never reported and are cleared when the id is registered.
    rx: Box<[TrafficSlot; PORT_IDS]>,
    tx: Box<[TrafficSlot; PORT_IDS]>,
    /// Flows created.
    pub flows_created: u64,
    /// Flows removed by aging.
    pub flows_aged: u64,
    /// Flows removed because their configuration went away.
    pub flows_flushed: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            drops: [0; DropReason::ALL.len()],
            dropped: Vec::new(),
            rx: traffic_table(),
            tx: traffic_table(),
            flows_created: 0,
            flows_aged: 0,
            flows_flushed: 0,
        }
    }
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The registered ports only, not the 65,536 slots of the traffic tables.
        let ports: Vec<PortStats> = (0..self.dropped.len())
            .map(|i| self.port(PortId::of_registered(i)))
            .collect();
        f.debug_struct("Stats")
            .field("drops", &self.drops)
            .field("ports", &ports)
            .field("flows_created", &self.flows_created)
            .field("flows_aged", &self.flows_aged)
            .field("flows_flushed", &self.flows_flushed)
            .finish()
    }
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats::default()
    }

    pub(crate) fn add_port(&mut self) {
        let id = PortId::of_registered(self.dropped.len());
        self.dropped.push(0);
        self.rx[id.index()] = 0;
        self.tx[id.index()] = 0;
    }

    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Total frames dropped.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Counters of `port` (zeros for unknown ports).
    pub fn port(&self, port: PortId) -> PortStats {
        let Some(&dropped) = self.dropped.get(port.index()) else {
            return PortStats::default();
        };
        let (rx_packets, rx_bytes) = unpack(self.rx[port.index()]);
        let (tx_packets, tx_bytes) = unpack(self.tx[port.index()]);
        PortStats {
            rx_packets,
            rx_bytes,
            tx_packets,
            tx_bytes,
            dropped,
        }
    }

    /// Counts a frame of `bytes` received on `port`.
    #[inline(always)]
    pub(crate) fn count_rx(&mut self, port: PortId, bytes: usize) {
        if cfg!(feature = "uncounted") {
            return;
        }
        count_frame(&mut self.rx[port.index()], bytes);
    }

    /// Counts a frame of `bytes` sent on `port`.
    #[inline(always)]
    pub(crate) fn count_tx(&mut self, port: PortId, bytes: usize) {
        if cfg!(feature = "uncounted") {
            return;
        }
        count_frame(&mut self.tx[port.index()], bytes);
    }

    /// Counts a frame received on `port` and dropped for `reason`.
    #[inline]
    pub(crate) fn count_drop(&mut self, port: PortId, reason: DropReason) {
        if cfg!(feature = "uncounted") {
            return;
        }
        self.drops[reason as usize] += 1;
        if let Some(d) = self.dropped.get_mut(port.index()) {
            *d += 1;
        }
    }
}

/// One port in a [`MetricsSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMetrics {
    /// The device name clients use (dpservice's `device_name`).
    pub name: String,
    /// Uplink or VM port.
    pub kind: PortKind,
    /// The interface bound to the port, if any.
    pub interface_id: Option<String>,
    /// Its counters.
    pub stats: PortStats,
}

/// NAT ports one interface holds on its NAT IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatPortUsage {
    /// The interface.
    pub interface_id: String,
    /// Its NAT IP.
    pub nat_ip: Ipv4Addr,
    /// Ports in use: VM sockets (IPv4 or NAT64) holding a port of the interface's range.
    pub used: u64,
    /// Size of the interface's port range (`max_port - min_port`).
    pub range: u64,
}

/// Fill of one bounded table, as dpservice's `/dp_service/table/saturation` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFill {
    /// dpservice's table name: `conntrack_table` (flows, capacity `max_flows`), `interface_table` (interfaces,
    /// one per VM port), `loadbalancer_table`, `vni_table`.
    pub table: &'static str,
    /// Entries in use.
    pub entries: u64,
    /// Entries the table holds at most.
    pub capacity: u64,
}

/// Everything the dataplane reports to metrics, taken at one instant between batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Every port, in port order.
    pub ports: Vec<PortMetrics>,
    /// Dropped frames per reason, for every reason (in [`DropReason::ALL`] order).
    pub drops: Vec<(DropReason, u64)>,
    /// Live flows per class, for every class (in [`FlowClass::ALL`] order).
    pub flows: Vec<(FlowClass, u64)>,
    /// Flows created since start.
    pub flows_created: u64,
    /// Flows removed by aging since start.
    pub flows_aged: u64,
    /// Flows removed because their configuration went away.
    pub flows_flushed: u64,
    /// New flows the firewall accepted.
    pub firewall_accepted: u64,
    /// New flows the firewall denied.
    pub firewall_denied: u64,
    /// Firewall rules per interface, for every interface (by id).
    pub firewall_rules: Vec<(String, u64)>,
    /// NAT port use of every interface with a NAT (by id).
    pub nat: Vec<NatPortUsage>,
    /// Targets of every load balancer (by id).
    pub load_balancer_targets: Vec<(String, u64)>,
    /// Fill of the bounded tables.
    pub tables: Vec<TableFill>,
    /// Whether Initialize has been called.
    pub initialized: bool,
}

impl Dataplane {
    /// Reads every metric from the current state. Costs one pass over the ports, the load balancers and the
    /// NAT port map (not over the flows): meant for a scrape every few seconds, between batches.
    pub fn metrics(&self) -> MetricsSnapshot {
        let n = |v: usize| v as u64;
        let ports: Vec<PortMetrics> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortMetrics {
                name: p.config.name.clone(),
                kind: p.config.kind,
                interface_id: p.iface.as_ref().map(|f| f.id.clone()),
                stats: self.stats.port(PortId::of_registered(i)),
            })
            .collect();
        let mut firewall_rules = Vec::new();
        let mut nat = Vec::new();
        let usage = self.nat_ports.usage();
        for iface in self.ports.iter().filter_map(|p| p.iface.as_ref()) {
            firewall_rules.push((iface.id.clone(), n(iface.rules.len())));
            if let Some(info) = iface.nat {
                let own = [iface.ipv4.map(Into::into), iface.ipv6.map(Into::into)];
                let used = own
                    .into_iter()
                    .flatten()
                    .map(|ip| usage.get(&(iface.vni, ip, info.ip)).copied().unwrap_or(0))
                    .sum();
                nat.push(NatPortUsage {
                    interface_id: iface.id.clone(),
                    nat_ip: info.ip,
                    used,
                    range: u64::from(info.max_port.saturating_sub(info.min_port)),
                });
            }
        }
        firewall_rules.sort();
        nat.sort_by(|a, b| a.interface_id.cmp(&b.interface_id));
        let mut load_balancer_targets: Vec<(String, u64)> = self
            .lbs
            .values()
            .map(|l| (l.id.clone(), n(l.maglev.backends().len())))
            .collect();
        load_balancer_targets.sort();
        let counts = self.flows.counts();
        let vms = ports.iter().filter(|p| p.kind == PortKind::Vf).count();
        MetricsSnapshot {
            drops: DropReason::ALL
                .iter()
                .map(|r| (*r, self.stats.dropped(*r)))
                .collect(),
            flows: FlowClass::ALL
                .iter()
                .map(|c| (*c, counts.live[*c as usize]))
                .collect(),
            flows_created: self.stats.flows_created,
            flows_aged: self.stats.flows_aged,
            flows_flushed: self.stats.flows_flushed,
            firewall_accepted: counts.accepted,
            firewall_denied: counts.denied,
            firewall_rules,
            nat,
            load_balancer_targets,
            tables: vec![
                TableFill {
                    table: "conntrack_table",
                    entries: n(self.flows.len()),
                    capacity: n(self.flows.capacity()),
                },
                TableFill {
                    table: "interface_table",
                    entries: n(self.iface_ports.len()),
                    capacity: n(vms),
                },
                TableFill {
                    table: "loadbalancer_table",
                    entries: n(self.lbs.len()),
                    capacity: n(MAX_LBS),
                },
                TableFill {
                    table: "vni_table",
                    entries: n(self.vnis.len()),
                    capacity: n(MAX_VNI_TABLES),
                },
            ],
            initialized: self.initialized,
            ports,
        }
    }
}

#[cfg(all(test, not(feature = "uncounted")))]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::api::{CreateLoadBalancer, L4Proto, LbPort};
    use crate::batch::{Batch, Verdict};
    use crate::firewall::{Action, Direction, FirewallRule, PortRange, ProtocolFilter};
    use crate::port::{MacAddr, PortConfig};
    use crate::tests::*;

    /// Per-port counters over one batch that mixes ingress ports, egress ports and drops in every order (as
    /// dpservice's worker fills a batch: a frame per ready port in turn), against sums taken from the batch itself.
    #[test]
    fn interleaved_batch_is_counted_per_port_as_the_frames_went() {
        let mut env = Env::new();
        env.default_route();
        let before: Vec<PortStats> = (0..5).map(|i| env.dp.stats().port(PortId(i))).collect();
        let remote = Ipv4Addr::new(10, 1, 2, 3);
        let from_vm = |i: usize, dst: Ipv4Addr, payload: &[u8]| {
            frame(VF_MACS[i], VM_MACS[i], &ip4_udp(vm_ip(i), dst, 1000, 53, payload))
        };
        let from_remote = |vm: usize, underlay: Ipv6Addr, payload: &[u8]| {
            let ip = ip4_udp(remote, vm_ip(vm), 53, 1000, payload);
            tunnel(PF0_MAC, ROUTER_MAC, router6(), underlay, &ip)
        };
        let unregistered = PortId(5);
        let frames: Vec<(PortId, Vec<u8>)> = vec![
            (env.vf[0], from_vm(0, vm_ip(1), b"to vm1")),
            (env.pf[0], from_remote(1, env.underlay[1], b"to vm1 from afar")),
            (env.vf[1], from_vm(1, remote, b"out")),
            (unregistered, from_vm(0, remote, b"unknown port")),
            (env.vf[0], vec![0; 9]),
            (env.vf[0], from_vm(0, remote, b"out again")),
            (env.pf[1], from_remote(0, env.underlay[0], b"to vm0")),
            (env.vf[1], from_vm(1, vm_ip(0), b"to vm0")),
            (env.vf[1], from_vm(1, vm_ip(0), b"to vm0, twice")),
            (env.vf[2], from_vm(0, remote, b"no interface bound")),
            (env.pf[0], vec![0; 14]),
        ];
        let mut batch = Batch::with_capacity(4);
        for (port, f) in &frames {
            batch.push(*port, f);
        }
        env.dp.process(env.now, &mut batch);

        let mut expected = before.clone();
        let mut dropped = 0;
        for ((port, f), p) in frames.iter().zip(batch.packets()) {
            if let Some(e) = expected.get_mut(port.index()) {
                e.rx_packets += 1;
                e.rx_bytes += f.len() as u64;
            }
            match p.verdict() {
                Verdict::Tx(out) => {
                    expected[out.index()].tx_packets += 1;
                    expected[out.index()].tx_bytes += p.data().len() as u64;
                }
                Verdict::Drop(_) => {
                    dropped += 1;
                    if let Some(e) = expected.get_mut(port.index()) {
                        e.dropped += 1;
                    }
                }
                Verdict::Pending => panic!("frame left unprocessed"),
            }
        }
        // Every port sent or received something, and some frames were dropped: the batch exercises them all.
        assert_eq!(dropped, 4);
        for (i, e) in expected.iter().enumerate() {
            assert_ne!(*e, before[i], "port {i} saw no traffic");
        }
        let actual: Vec<PortStats> = (0..5).map(|i| env.dp.stats().port(PortId(i))).collect();
        assert_eq!(actual, expected);

        // The frame that came with an unregistered id left nothing on the port that later gets that id.
        assert_eq!(env.dp.stats().port(unregistered), PortStats::default());
        let added = env
            .dp
            .add_port(PortConfig {
                kind: PortKind::Vf,
                mac: MacAddr([2, 0, 0, 0, 0, 0x99]),
                name: "vf9".into(),
            })
            .unwrap();
        assert_eq!(added, unregistered);
        assert_eq!(env.dp.stats().port(added), PortStats::default());
        assert_eq!(env.dp.stats().dropped(DropReason::UnknownPort), 1);
    }

    #[test]
    fn snapshot_counts_ports_drops_flows_verdicts_nat_and_load_balancers() {
        let mut env = Env::new();
        env.default_route();
        let nat_ip = Ipv4Addr::new(45, 0, 0, 1);
        env.dp.create_nat("vm0", nat_ip.into(), 1000, 1100, None).unwrap();
        let web_only = FirewallRule {
            id: "web".into(),
            direction: Direction::Ingress,
            action: Action::Accept,
            priority: 1000,
            source: "0.0.0.0/0".parse().unwrap(),
            destination: "0.0.0.0/0".parse().unwrap(),
            protocol: ProtocolFilter::Tcp {
                src: PortRange::ANY,
                dst: PortRange {
                    lower: Some(80),
                    upper: Some(80),
                },
            },
        };
        env.dp.create_firewall_rule("vm1", web_only).unwrap();
        env.dp
            .create_loadbalancer(CreateLoadBalancer {
                id: "lb".into(),
                vni: VNI,
                ip: Ipv4Addr::new(45, 0, 0, 9).into(),
                ports: vec![LbPort {
                    protocol: L4Proto::Tcp,
                    port: 80,
                }],
                preferred_underlay: None,
            })
            .unwrap();
        for t in 1..=2 {
            let target = Ipv6Addr::new(0xfc00, 7, 0, 0, 0, 0, 0, t);
            env.dp.create_lb_target("lb", target.into()).unwrap();
        }

        let remote = Ipv4Addr::new(8, 8, 8, 8);
        let vm = |ip: &[u8]| frame(VF_MACS[0], VM_MACS[0], ip);
        let sent = [
            vm(&ip4_udp(vm_ip(0), remote, 5000, 53, b"a")),
            vm(&ip4_udp(vm_ip(0), remote, 5001, 53, b"bb")),
            vm(&ip4_echo(vm_ip(0), vm_ip(1), 9, false)),
            vm(&ip4_tcp(vm_ip(0), vm_ip(1), 6000, 80, true, false, b"")),
        ];
        let verdicts: Vec<Verdict> = sent.iter().map(|f| env.run(env.vf[0], f).0).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Tx(env.pf[0]),
                Verdict::Tx(env.pf[0]),
                Verdict::Drop(DropReason::Firewall),
                Verdict::Tx(env.vf[1]),
            ]
        );

        let m = env.dp.metrics();
        let port = |name: &str| m.ports.iter().find(|p| p.name == name).unwrap().clone();
        // Env::new taught each VM's MAC with one 42-byte ARP reply (consumed).
        let rx_bytes: u64 = sent.iter().map(|f| f.len() as u64).sum::<u64>() + 42;
        assert_eq!(
            port("vf0").stats,
            PortStats {
                rx_packets: 5,
                rx_bytes,
                tx_packets: 0,
                tx_bytes: 0,
                dropped: 2,
            }
        );
        assert_eq!(port("vf0").interface_id.as_deref(), Some("vm0"));
        assert_eq!(port("vf1").stats.tx_packets, 1);
        assert_eq!(port("pf0").stats.tx_packets, 2);
        assert_eq!(port("pf0").kind, PortKind::Pf);
        assert_eq!(port("vf2").interface_id, None);
        let dropped = |r| m.drops.iter().find(|(x, _)| *x == r).unwrap().1;
        assert_eq!(dropped(DropReason::Consumed), 2);
        assert_eq!(dropped(DropReason::Firewall), 1);
        assert_eq!(m.drops.iter().map(|d| d.1).sum::<u64>(), 3);
        assert_eq!(m.drops.len(), DropReason::ALL.len());
        let flows = |c| m.flows.iter().find(|(x, _)| *x == c).unwrap().1;
        assert_eq!((flows(FlowClass::Routed), flows(FlowClass::Nat)), (2, 2));
        assert_eq!(m.flows.iter().map(|f| f.1).sum::<u64>(), 4);
        assert_eq!(
            (m.flows_created, m.firewall_accepted, m.firewall_denied),
            (4, 3, 1)
        );
        assert_eq!(m.firewall_rules, [("vm0".to_owned(), 0), ("vm1".to_owned(), 1)]);
        assert_eq!(
            m.nat,
            [NatPortUsage {
                interface_id: "vm0".into(),
                nat_ip,
                used: 2,
                range: 100,
            }]
        );
        assert_eq!(m.load_balancer_targets, [("lb".to_owned(), 2)]);
        let table = |t| *m.tables.iter().find(|x| x.table == t).unwrap();
        assert_eq!(
            (
                table("conntrack_table").entries,
                table("conntrack_table").capacity
            ),
            (4, 1 << 20)
        );
        assert_eq!(
            (
                table("interface_table").entries,
                table("interface_table").capacity
            ),
            (2, 3)
        );
        assert_eq!(
            (table("loadbalancer_table").entries, table("vni_table").entries),
            (1, 1)
        );
        assert!(m.initialized);

        // Aging removes every flow and frees the NAT ports; the gauges follow, the counters stay.
        env.dp.tick(env.now + 120 * SEC);
        let m = env.dp.metrics();
        assert_eq!(m.flows.iter().map(|f| f.1).sum::<u64>(), 0);
        assert_eq!((m.flows_created, m.flows_aged), (4, 4));
        assert_eq!(m.nat[0].used, 0);
        assert_eq!(m.firewall_denied, 1);
    }
}
