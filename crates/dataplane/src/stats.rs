//! Counters: why frames were dropped, and per-port traffic.

use crate::port::PortId;

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
        if let Some(p) = self.ports.get_mut(port.index()) {
            p.rx_packets += 1;
            p.rx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub(crate) fn count_tx(&mut self, port: PortId, bytes: usize) {
        if let Some(p) = self.ports.get_mut(port.index()) {
            p.tx_packets += 1;
            p.tx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub(crate) fn count_drop(&mut self, port: PortId, reason: DropReason) {
        self.drops[reason as usize] += 1;
        if let Some(p) = self.ports.get_mut(port.index()) {
            p.dropped += 1;
        }
    }
}
