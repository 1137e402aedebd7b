//! Per-interface firewall rules and the per-flow verdict (dpservice's `firewall` graph node, `src/nodes`).
//!
//! Rules are evaluated in insertion order; the first rule of the packet's direction that matches decides. A
//! direction without any rule accepts; once an interface has a rule of a direction, unmatched traffic of that
//! direction is denied (dpservice denies ingress even without rules, but never enforces; see
//! `docs/compatibility.md`).

use std::net::IpAddr;

use ipnet::IpNet;

/// Traffic direction relative to the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the VM.
    Ingress,
    /// From the VM.
    Egress,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Drop the flow.
    Drop,
    /// Accept the flow.
    Accept,
}

/// An inclusive port range; `None` bounds mean "any" (dpservice's -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PortRange {
    /// Lower bound, inclusive.
    pub lower: Option<u16>,
    /// Upper bound, inclusive.
    pub upper: Option<u16>,
}

impl PortRange {
    /// Any port.
    pub const ANY: PortRange = PortRange {
        lower: None,
        upper: None,
    };

    fn contains(&self, p: u16) -> bool {
        self.lower.is_none_or(|l| p >= l) && self.upper.is_none_or(|u| p <= u)
    }
}

/// The L4 part of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolFilter {
    /// Any protocol.
    Any,
    /// TCP with port ranges.
    Tcp {
        /// Source ports.
        src: PortRange,
        /// Destination ports.
        dst: PortRange,
    },
    /// UDP with port ranges.
    Udp {
        /// Source ports.
        src: PortRange,
        /// Destination ports.
        dst: PortRange,
    },
    /// ICMP or ICMPv6 with optional type and code.
    Icmp {
        /// Message type, `None` = any.
        icmp_type: Option<u8>,
        /// Message code, `None` = any.
        icmp_code: Option<u8>,
    },
}

/// A firewall rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    /// Rule id, unique per interface.
    pub id: String,
    /// Direction.
    pub direction: Direction,
    /// Action.
    pub action: Action,
    /// Priority (stored and listed; evaluation order is insertion order, like dpservice).
    pub priority: u32,
    /// Source prefix.
    pub source: IpNet,
    /// Destination prefix.
    pub destination: IpNet,
    /// Protocol filter.
    pub protocol: ProtocolFilter,
}

/// The fields of a packet the firewall looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMatch {
    /// Source IP.
    pub src: IpAddr,
    /// Destination IP.
    pub dst: IpAddr,
    /// IP protocol (1, 6, 17, 58).
    pub proto: u8,
    /// Source port (TCP/UDP) or ICMP type.
    pub src_port: u16,
    /// Destination port (TCP/UDP) or ICMP code.
    pub dst_port: u16,
}

impl FirewallRule {
    /// Whether the rule matches the flow (direction not considered).
    pub fn matches(&self, f: &FlowMatch) -> bool {
        if !self.source.contains(&f.src) || !self.destination.contains(&f.dst) {
            return false;
        }
        match self.protocol {
            ProtocolFilter::Any => true,
            ProtocolFilter::Tcp { src, dst } => {
                f.proto == 6 && src.contains(f.src_port) && dst.contains(f.dst_port)
            }
            ProtocolFilter::Udp { src, dst } => {
                f.proto == 17 && src.contains(f.src_port) && dst.contains(f.dst_port)
            }
            ProtocolFilter::Icmp { icmp_type, icmp_code } => {
                (f.proto == 1 || f.proto == 58)
                    && icmp_type.is_none_or(|t| u16::from(t) == f.src_port)
                    && icmp_code.is_none_or(|c| u16::from(c) == f.dst_port)
            }
        }
    }
}

/// The decision of one interface's rules for one direction: the first matching rule's action; with no rule of
/// that direction, `Accept`; with rules but none matching, `Drop` (default deny).
pub fn evaluate(rules: &[FirewallRule], direction: Direction, f: &FlowMatch) -> Action {
    let mut any = false;
    for r in rules.iter().filter(|r| r.direction == direction) {
        any = true;
        if r.matches(f) {
            return r.action;
        }
    }
    if any { Action::Drop } else { Action::Accept }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        id: &str,
        direction: Direction,
        action: Action,
        dst: &str,
        protocol: ProtocolFilter,
    ) -> FirewallRule {
        FirewallRule {
            id: id.into(),
            direction,
            action,
            priority: 1000,
            source: "0.0.0.0/0".parse().unwrap(),
            destination: dst.parse().unwrap(),
            protocol,
        }
    }

    fn tcp(dst: &str, dport: u16) -> FlowMatch {
        FlowMatch {
            src: "10.0.0.1".parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            src_port: 1000,
            dst_port: dport,
        }
    }

    #[test]
    fn first_match_wins_and_default_denies_once_rules_exist() {
        let web = ProtocolFilter::Tcp {
            src: PortRange::ANY,
            dst: PortRange {
                lower: Some(80),
                upper: Some(80),
            },
        };
        let rules = vec![
            rule(
                "deny-host",
                Direction::Egress,
                Action::Drop,
                "8.8.8.8/32",
                ProtocolFilter::Any,
            ),
            rule("web", Direction::Egress, Action::Accept, "0.0.0.0/0", web),
        ];
        assert_eq!(
            evaluate(&rules, Direction::Egress, &tcp("8.8.8.8", 80)),
            Action::Drop
        );
        assert_eq!(
            evaluate(&rules, Direction::Egress, &tcp("1.1.1.1", 80)),
            Action::Accept
        );
        assert_eq!(
            evaluate(&rules, Direction::Egress, &tcp("1.1.1.1", 443)),
            Action::Drop
        );
        assert_eq!(
            evaluate(&rules, Direction::Ingress, &tcp("1.1.1.1", 443)),
            Action::Accept
        );
        assert_eq!(
            evaluate(&[], Direction::Egress, &tcp("1.1.1.1", 443)),
            Action::Accept
        );
    }

    #[test]
    fn icmp_rules_match_type_and_code_and_icmpv6() {
        let r = rule(
            "ping",
            Direction::Ingress,
            Action::Accept,
            "0.0.0.0/0",
            ProtocolFilter::Icmp {
                icmp_type: Some(8),
                icmp_code: None,
            },
        );
        let echo = FlowMatch {
            src: "1.1.1.1".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            proto: 1,
            src_port: 8,
            dst_port: 0,
        };
        assert!(r.matches(&echo));
        assert!(!r.matches(&FlowMatch { src_port: 0, ..echo }));
        assert!(!r.matches(&FlowMatch { proto: 6, ..echo }));
    }
}
