//! Firewall rules: the mapping of a NetworkInterface's rules onto dpservice's, and the diff of desired against
//! programmed rules by content.
//!
//! Upstream metalnet (`controllers/networkinterface_controller.go`) compares rules by ID only, so a changed rule
//! keeps its old content in dpservice; here a rule whose content differs is deleted and created again. Contents
//! are compared in a canonical form, so that equivalent spellings (`-1/-1` vs. an absent port range, a single
//! port with an unset upper bound, host bits in a prefix) do not cause churn.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_api::common::IPFamily;
use ironnet_api::metalnet::networkinterface::{
    FirewallRule, FirewallRuleAction, FirewallRuleDirection, ProtocolType,
};
use ironnet_dpservice::proto::{self, protocol_filter::Filter};

use crate::dp::prefix_msg;

/// Priority upstream metalnet uses when a rule has none.
pub const DEFAULT_PRIORITY: u32 = 100;

fn any_of(family: IPFamily) -> IpNet {
    match family {
        IPFamily::IPv4 => IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IPFamily::IPv6 => IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
    .unwrap_or_default()
}

/// The dpservice rule for a NetworkInterface rule. Unset prefixes match everything of the rule's family (its
/// `ipFamily`, else the other prefix's family, else IPv4: upstream always uses `0.0.0.0/0`, which made IPv6 rules
/// without a prefix match nothing).
pub fn desired_rule(rule: &FirewallRule) -> proto::FirewallRule {
    let family = rule
        .ip_family
        .or_else(|| rule.source_prefix.as_ref().map(|p| p.family()))
        .or_else(|| rule.destination_prefix.as_ref().map(|p| p.family()))
        .unwrap_or(IPFamily::IPv4);
    let net = |p: &Option<ironnet_api::common::IPPrefix>| {
        p.as_ref()
            .and_then(|p| IpNet::new(p.addr(), p.len()).ok())
            .unwrap_or_else(|| any_of(family))
    };
    let filter = rule.protocol_match.as_ref().and_then(|m| {
        let ports = || {
            let r = m.port_range.clone().unwrap_or_default();
            let v = |p: Option<i32>| p.unwrap_or(-1);
            (v(r.src_port), v(r.end_src_port), v(r.dst_port), v(r.end_dst_port))
        };
        match m.protocol_type? {
            ProtocolType::Icmp => {
                let icmp = m.icmp.clone();
                Some(Filter::Icmp(proto::IcmpFilter {
                    icmp_type: icmp.as_ref().map_or(-1, |i| i.icmp_type),
                    icmp_code: icmp.as_ref().map_or(-1, |i| i.icmp_code),
                }))
            }
            ProtocolType::Tcp => {
                let (a, b, c, d) = ports();
                Some(Filter::Tcp(proto::TcpFilter {
                    src_port_lower: a,
                    src_port_upper: b,
                    dst_port_lower: c,
                    dst_port_upper: d,
                }))
            }
            ProtocolType::Udp => {
                let (a, b, c, d) = ports();
                Some(Filter::Udp(proto::UdpFilter {
                    src_port_lower: a,
                    src_port_upper: b,
                    dst_port_lower: c,
                    dst_port_upper: d,
                }))
            }
        }
    });
    proto::FirewallRule {
        id: rule.firewall_rule_id.clone().into_bytes(),
        direction: match rule.direction {
            Some(FirewallRuleDirection::Egress) => proto::TrafficDirection::Egress,
            _ => proto::TrafficDirection::Ingress,
        } as i32,
        action: match rule.action {
            Some(FirewallRuleAction::Deny) => proto::FirewallAction::Drop,
            _ => proto::FirewallAction::Accept,
        } as i32,
        priority: rule
            .priority
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(DEFAULT_PRIORITY),
        source_prefix: Some(prefix_msg(net(&rule.source_prefix))),
        destination_prefix: Some(prefix_msg(net(&rule.destination_prefix))),
        protocol_filter: filter.map(|f| proto::ProtocolFilter { filter: Some(f) }),
    }
}

/// A port range in canonical form: `None` = any, else `(lower, upper)` with an unset upper = lower.
type CanonPorts = Option<(i32, i32)>;

fn canon_ports(lower: i32, upper: i32) -> CanonPorts {
    match (lower, upper) {
        (l, _) if l < 0 => None,
        (l, u) if u < 0 => Some((l, l)),
        (l, u) => Some((l, u)),
    }
}

/// The layer-4 match in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CanonProtocol {
    Any,
    Tcp(CanonPorts, CanonPorts),
    Udp(CanonPorts, CanonPorts),
    Icmp(Option<i32>, Option<i32>),
}

/// A rule's content in canonical form (what decides whether two rules are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonRule {
    direction: i32,
    action: i32,
    priority: u32,
    source: Option<IpNet>,
    destination: Option<IpNet>,
    protocol: CanonProtocol,
}

fn canon_prefix(p: Option<&proto::Prefix>) -> Option<IpNet> {
    let p = p?;
    let addr: IpAddr = std::str::from_utf8(&p.ip.as_ref()?.address).ok()?.parse().ok()?;
    let net = IpNet::new(addr, u8::try_from(p.length).ok()?).ok()?.trunc();
    // A /0 matches everything; which family's zero address spells it does not matter.
    (net.prefix_len() > 0).then_some(net)
}

/// The canonical content of a dpservice rule.
pub fn canonical(r: &proto::FirewallRule) -> CanonRule {
    let icmp = |v: i32| (v >= 0).then_some(v);
    let protocol = match r.protocol_filter.as_ref().and_then(|f| f.filter.as_ref()) {
        None => CanonProtocol::Any,
        Some(Filter::Tcp(t)) => CanonProtocol::Tcp(
            canon_ports(t.src_port_lower, t.src_port_upper),
            canon_ports(t.dst_port_lower, t.dst_port_upper),
        ),
        Some(Filter::Udp(u)) => CanonProtocol::Udp(
            canon_ports(u.src_port_lower, u.src_port_upper),
            canon_ports(u.dst_port_lower, u.dst_port_upper),
        ),
        Some(Filter::Icmp(i)) => CanonProtocol::Icmp(icmp(i.icmp_type), icmp(i.icmp_code)),
    };
    CanonRule {
        direction: r.direction,
        action: r.action,
        priority: r.priority,
        source: canon_prefix(r.source_prefix.as_ref()),
        destination: canon_prefix(r.destination_prefix.as_ref()),
        protocol,
    }
}

/// What to do to bring dpservice's rules of one interface to the desired ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FirewallPlan {
    /// IDs to delete (gone from the spec, or changed: deleted first, then created again).
    pub delete: Vec<Vec<u8>>,
    /// Rules to create, in spec order.
    pub create: Vec<proto::FirewallRule>,
}

impl FirewallPlan {
    /// Whether nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.create.is_empty()
    }
}

/// Diffs desired against programmed rules by ID and content. Pure.
pub fn plan_firewall(desired: &[proto::FirewallRule], actual: &[proto::FirewallRule]) -> FirewallPlan {
    let actual_by_id: BTreeMap<&[u8], &proto::FirewallRule> =
        actual.iter().map(|r| (r.id.as_slice(), r)).collect();
    let desired_by_id: BTreeMap<&[u8], &proto::FirewallRule> =
        desired.iter().map(|r| (r.id.as_slice(), r)).collect();
    let mut plan = FirewallPlan::default();
    for (id, a) in &actual_by_id {
        match desired_by_id.get(id) {
            Some(d) if canonical(d) == canonical(a) => {}
            _ => plan.delete.push(id.to_vec()),
        }
    }
    for d in desired {
        let unchanged = actual_by_id
            .get(d.id.as_slice())
            .is_some_and(|a| canonical(a) == canonical(d));
        if !unchanged && !plan.create.iter().any(|c| c.id == d.id) {
            plan.create.push(d.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::metalnet::networkinterface::{ICMPMatch, PortMatch, ProtocolMatch};

    fn rule(id: &str) -> FirewallRule {
        FirewallRule {
            firewall_rule_id: id.into(),
            direction: Some(FirewallRuleDirection::Ingress),
            action: Some(FirewallRuleAction::Accept),
            priority: Some(1000),
            ip_family: Some(IPFamily::IPv4),
            source_prefix: Some("10.0.0.0/8".parse().unwrap()),
            destination_prefix: None,
            protocol_match: Some(ProtocolMatch {
                protocol_type: Some(ProtocolType::Tcp),
                icmp: None,
                port_range: Some(PortMatch {
                    src_port: None,
                    end_src_port: None,
                    dst_port: Some(80),
                    end_dst_port: None,
                }),
            }),
        }
    }

    #[test]
    fn upstream_mapping() {
        let r = desired_rule(&rule("r1"));
        assert_eq!(r.id, b"r1");
        assert_eq!(r.direction, proto::TrafficDirection::Ingress as i32);
        assert_eq!(r.action, proto::FirewallAction::Accept as i32);
        assert_eq!(r.priority, 1000);
        assert_eq!(
            r.destination_prefix
                .as_ref()
                .unwrap()
                .ip
                .as_ref()
                .unwrap()
                .address,
            b"0.0.0.0"
        );
        match r.protocol_filter.unwrap().filter.unwrap() {
            Filter::Tcp(t) => assert_eq!(
                (
                    t.src_port_lower,
                    t.src_port_upper,
                    t.dst_port_lower,
                    t.dst_port_upper
                ),
                (-1, -1, 80, -1)
            ),
            other => panic!("{other:?}"),
        }
        let mut deny = rule("r2");
        deny.action = Some(FirewallRuleAction::Deny);
        deny.direction = Some(FirewallRuleDirection::Egress);
        deny.priority = None;
        deny.protocol_match = Some(ProtocolMatch {
            protocol_type: Some(ProtocolType::Icmp),
            icmp: Some(ICMPMatch {
                icmp_type: 8,
                icmp_code: -1,
            }),
            port_range: None,
        });
        let d = desired_rule(&deny);
        assert_eq!(
            d.action,
            proto::FirewallAction::Drop as i32,
            "Deny is sent, not dropped"
        );
        assert_eq!(d.direction, proto::TrafficDirection::Egress as i32);
        assert_eq!(d.priority, DEFAULT_PRIORITY);
        assert!(matches!(
            d.protocol_filter.unwrap().filter,
            Some(Filter::Icmp(proto::IcmpFilter {
                icmp_type: 8,
                icmp_code: -1
            }))
        ));
        let mut v6 = rule("r3");
        v6.ip_family = Some(IPFamily::IPv6);
        v6.source_prefix = None;
        v6.protocol_match = None;
        let r = desired_rule(&v6);
        assert_eq!(
            r.source_prefix.unwrap().ip.unwrap().address,
            b"::",
            "IPv6 any, not 0.0.0.0/0"
        );
        assert!(r.protocol_filter.is_none());
    }

    #[test]
    fn canonical_form_ignores_spelling() {
        let a = desired_rule(&rule("r"));
        let mut b = a.clone();
        // dpservice lists a single port with its upper bound filled in and the prefix without host bits.
        if let Some(proto::ProtocolFilter {
            filter: Some(Filter::Tcp(t)),
        }) = b.protocol_filter.as_mut()
        {
            t.dst_port_upper = 80;
        }
        assert_eq!(canonical(&a), canonical(&b));
        b.source_prefix = Some(prefix_msg("10.1.2.3/8".parse().unwrap()));
        assert_eq!(canonical(&a), canonical(&b));
        // Any-prefix of either family is the same.
        let mut c = a.clone();
        c.destination_prefix = Some(prefix_msg("::/0".parse().unwrap()));
        assert_eq!(canonical(&a), canonical(&c));
        let mut d = a.clone();
        d.priority = 7;
        assert_ne!(canonical(&a), canonical(&d));
    }

    #[test]
    fn plan_by_id_and_content() {
        let r1 = desired_rule(&rule("r1"));
        let r2 = desired_rule(&rule("r2"));
        let mut r2_changed = r2.clone();
        r2_changed.priority = 5;
        let r3 = desired_rule(&rule("r3"));

        // Nothing to do.
        assert!(plan_firewall(&[r1.clone(), r2.clone()], &[r2.clone(), r1.clone()]).is_empty());
        // Added, removed, changed at once.
        let plan = plan_firewall(
            &[r1.clone(), r2_changed.clone(), r3.clone()],
            &[r1.clone(), r2.clone(), desired_rule(&rule("old"))],
        );
        assert_eq!(plan.delete, vec![b"old".to_vec(), b"r2".to_vec()]);
        assert_eq!(plan.create, vec![r2_changed.clone(), r3.clone()]);
        // Upstream compared by ID only and would have done nothing here.
        let plan = plan_firewall(std::slice::from_ref(&r2_changed), std::slice::from_ref(&r2));
        assert_eq!(plan.delete, vec![b"r2".to_vec()]);
        assert_eq!(plan.create, vec![r2_changed]);
        // Everything removed.
        let plan = plan_firewall(&[], &[r1.clone(), r3.clone()]);
        assert_eq!(plan.delete.len(), 2);
        assert!(plan.create.is_empty());
        // Everything new.
        let plan = plan_firewall(&[r1.clone(), r3.clone()], &[]);
        assert_eq!(plan.create, vec![r1, r3]);
        assert!(plan.delete.is_empty());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn rule() -> impl Strategy<Value = proto::FirewallRule> {
            (0u8..6, 0u32..3, prop_oneof![Just(-1i32), 80..82], any::<bool>()).prop_map(
                |(id, prio, port, egress)| {
                    let mut r = desired_rule(&FirewallRule {
                        firewall_rule_id: format!("r{id}"),
                        direction: Some(if egress {
                            FirewallRuleDirection::Egress
                        } else {
                            FirewallRuleDirection::Ingress
                        }),
                        action: Some(FirewallRuleAction::Accept),
                        priority: None,
                        ip_family: None,
                        source_prefix: None,
                        destination_prefix: None,
                        protocol_match: Some(ProtocolMatch {
                            protocol_type: Some(ProtocolType::Udp),
                            icmp: None,
                            port_range: Some(PortMatch {
                                dst_port: Some(port),
                                ..Default::default()
                            }),
                        }),
                    });
                    r.priority = prio;
                    r
                },
            )
        }

        fn unique(rules: Vec<proto::FirewallRule>) -> Vec<proto::FirewallRule> {
            let mut seen = std::collections::BTreeSet::new();
            rules.into_iter().filter(|r| seen.insert(r.id.clone())).collect()
        }

        proptest! {
            /// Deleting then creating what the plan says leaves exactly the desired rules (by ID and content), and
            /// an unchanged rule is never touched.
            #[test]
            fn applying_the_plan_reaches_the_desired_rules(
                desired in proptest::collection::vec(rule(), 0..6),
                actual in proptest::collection::vec(rule(), 0..6),
            ) {
                let (desired, actual) = (unique(desired), unique(actual));
                let plan = plan_firewall(&desired, &actual);
                let mut table: BTreeMap<Vec<u8>, proto::FirewallRule> =
                    actual.iter().map(|r| (r.id.clone(), r.clone())).collect();
                for id in &plan.delete {
                    prop_assert!(table.remove(id).is_some());
                }
                for r in &plan.create {
                    prop_assert!(table.insert(r.id.clone(), r.clone()).is_none());
                }
                prop_assert_eq!(table.len(), desired.len());
                for d in &desired {
                    prop_assert_eq!(canonical(&table[&d.id]), canonical(d));
                }
                for a in &actual {
                    if desired.iter().any(|d| d.id == a.id && canonical(d) == canonical(a)) {
                        prop_assert!(!plan.delete.contains(&a.id), "unchanged rule kept");
                    }
                }
            }
        }
    }
}
