//! Counters: why frames were dropped, and per-port traffic; and [`MetricsSnapshot`], everything an exporter
//! reports, read from the dataplane's state in one call.
//!
//! The pipeline counts with plain `u64` additions on state only its own thread touches (no atomics, no locks,
//! no lookups by label). The `uncounted` feature compiles the per-packet and per-flow counting out; it exists only
//! as the baseline of the metrics-cost benchmark (`crates/dataplane/benches/metrics_cost.sh`).

use std::net::Ipv4Addr;

use crate::dataplane::{Dataplane, MAX_LBS, MAX_VNIS};
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

/// All counters of a dataplane.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    drops: Vec<u64>,
    ports: Vec<PortStats>,
    /// Flows created.
    pub flows_created: u64,
    /// Flows removed by aging.
    pub flows_aged: u64,
    /// Flows removed because their configuration went away.
    pub flows_flushed: u64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            drops: vec![0; DropReason::ALL.len()],
            ..Default::default()
        }
    }

    pub(crate) fn add_port(&mut self) {
        self.ports.push(PortStats::default());
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
        self.ports.get(port.index()).copied().unwrap_or_default()
    }

    #[inline]
    pub(crate) fn count_rx(&mut self, port: PortId, bytes: usize) {
        if cfg!(feature = "uncounted") {
            return;
        }
        if let Some(p) = self.ports.get_mut(port.index()) {
            p.rx_packets += 1;
            p.rx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub(crate) fn count_tx(&mut self, port: PortId, bytes: usize) {
        if cfg!(feature = "uncounted") {
            return;
        }
        if let Some(p) = self.ports.get_mut(port.index()) {
            p.tx_packets += 1;
            p.tx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub(crate) fn count_drop(&mut self, port: PortId, reason: DropReason) {
        if cfg!(feature = "uncounted") {
            return;
        }
        self.drops[reason as usize] += 1;
        if let Some(p) = self.ports.get_mut(port.index()) {
            p.dropped += 1;
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
                    capacity: n(MAX_VNIS),
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
    use crate::batch::Verdict;
    use crate::firewall::{Action, Direction, FirewallRule, PortRange, ProtocolFilter};
    use crate::tests::*;

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
