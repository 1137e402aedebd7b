//! NetworkPolicyRules → metalnet firewall rules (upstream ironcore-net
//! `metalnetlet/controllers/networkinterface_controller.go`, `extractFirewallRulesFromRule`), with upstream's
//! bugs fixed:
//!
//! - every rule's `firewallRuleID` is a digest of its content, so an unchanged policy yields an unchanged
//!   metalnet spec (upstream draws a fresh random UUID per rule and reconcile, rewriting every interface on
//!   every event and making metalnet reprogram its firewall);
//! - ingress ports match the **destination** port (upstream puts them into `srcPort`/`endSrcPort`, which matches
//!   the client's ephemeral port instead of the served one);
//! - a port without protocol means TCP, as the API documents (upstream dereferences the nil protocol and
//!   panics);
//! - SCTP, which metalnet cannot match, is reported and produces no rule (upstream emits a rule with an unset
//!   protocol).

use ironnet_api::apinet::NetworkPolicyRule;
use ironnet_api::apinet::networkpolicyrule::Rule;
use ironnet_api::common::{IPPrefix, Protocol};
use ironnet_api::metalnet::networkinterface::{
    DEFAULT_FIREWALL_RULE_PRIORITY, FirewallRule, FirewallRuleAction, FirewallRuleDirection, PortMatch,
    ProtocolMatch, ProtocolType,
};

/// The firewall rules of `rules` (in the given order, identical rules once) and the problems found.
pub fn firewall_rules<'a>(
    rules: impl IntoIterator<Item = &'a NetworkPolicyRule>,
) -> (Vec<FirewallRule>, Vec<String>) {
    let mut out: Vec<FirewallRule> = Vec::new();
    let mut problems = Vec::new();
    for np_rule in rules {
        let name = np_rule.metadata.name.as_deref().unwrap_or_default();
        let directed = np_rule
            .spec
            .ingress_rules
            .iter()
            .map(|r| (FirewallRuleDirection::Ingress, r))
            .chain(
                np_rule
                    .spec
                    .egress_rules
                    .iter()
                    .map(|r| (FirewallRuleDirection::Egress, r)),
            );
        for (direction, rule) in directed {
            // metalnet defaults an unset priority to this; writing it keeps the applied spec equal to the stored
            // one, so an unchanged interface is recognised as such and not applied again.
            let priority = np_rule.spec.priority.unwrap_or(DEFAULT_FIREWALL_RULE_PRIORITY);
            for fw in rule_firewall_rules(rule, direction, priority, name, &mut problems) {
                // Identical rules get identical IDs; metalnet rejects duplicate IDs and a repeated rule adds
                // nothing, so it is kept once.
                if !out.iter().any(|r| r.firewall_rule_id == fw.firewall_rule_id) {
                    out.push(fw);
                }
            }
        }
    }
    (out, problems)
}

/// The rules one ingress/egress `Rule` yields: per port, one Accept rule per ipBlock CIDR, one Deny rule per
/// `except` of it, and one Accept rule per object IP. A rule without ports yields nothing (as upstream).
fn rule_firewall_rules(
    rule: &Rule,
    direction: FirewallRuleDirection,
    priority: i32,
    source: &str,
    problems: &mut Vec<String>,
) -> Vec<FirewallRule> {
    let mut out = Vec::new();
    for port in &rule.network_policy_ports {
        let protocol_type = match port.protocol.unwrap_or(Protocol::Tcp) {
            Protocol::Tcp => ProtocolType::Tcp,
            Protocol::Udp => ProtocolType::Udp,
            Protocol::Sctp => {
                problems.push(format!(
                    "NetworkPolicyRule {source}: SCTP port {} cannot be enforced by metalnet; no rule is derived from it",
                    port.port
                ));
                continue;
            }
        };
        // Both directions match the destination port: ingress the port served here, egress the port served
        // by the peer. A single port is the range [port, port]; metalnet reads an explicit end unambiguously.
        let port_range = (port.port != 0).then(|| PortMatch {
            dst_port: Some(port.port),
            end_dst_port: Some(port.end_port.unwrap_or(port.port)),
            ..PortMatch::default()
        });
        let base = FirewallRule {
            firewall_rule_id: String::new(),
            direction: Some(direction),
            action: Some(FirewallRuleAction::Accept),
            priority: Some(priority),
            ip_family: None,
            source_prefix: None,
            destination_prefix: None,
            protocol_match: Some(ProtocolMatch {
                protocol_type: Some(protocol_type),
                icmp: None,
                port_range,
            }),
        };
        let peer = |action: FirewallRuleAction, prefix: &IPPrefix| {
            let mut r = base.clone();
            r.action = Some(action);
            r.ip_family = Some(prefix.family());
            match direction {
                FirewallRuleDirection::Ingress => r.source_prefix = Some(prefix.clone()),
                FirewallRuleDirection::Egress => r.destination_prefix = Some(prefix.clone()),
            }
            r.firewall_rule_id = rule_id(&r);
            r
        };
        for block in &rule.ip_block {
            let Some(cidr) = &block.cidr else { continue };
            out.push(peer(FirewallRuleAction::Accept, cidr));
            for except in &block.except {
                out.push(peer(FirewallRuleAction::Deny, except));
            }
        }
        for ip in &rule.ips {
            if let Some(prefix) = &ip.prefix {
                out.push(peer(FirewallRuleAction::Accept, prefix));
            }
        }
    }
    out
}

/// The ID of `rule`: a UUID-formatted 128-bit FNV-1a digest of its content (everything but the ID), so the
/// same rule always gets the same ID, across reconciles, processes and versions.
///
/// The digest is taken over the rule's JSON serialization with an empty ID (field order is declaration order,
/// so it is deterministic), streamed into the hash: this runs for every derived rule of every interface
/// reconcile, where building the JSON and the hex text as strings was most of the cost.
pub fn rule_id(rule: &FirewallRule) -> String {
    let mut digest = Fnv1a128::default();
    let serialized = if rule.firewall_rule_id.is_empty() {
        serde_json::to_writer(&mut digest, rule)
    } else {
        let mut content = rule.clone();
        content.firewall_rule_id = String::new();
        serde_json::to_writer(&mut digest, &content)
    };
    // Writing into the digest cannot fail, and these plain structs always serialize; an error would only
    // leave the digest of a prefix, still a well-formed ID.
    debug_assert!(serialized.is_ok());
    let mut b = digest.0.to_be_bytes();
    // RFC 9562 version 8 ("custom") and variant bits, so the ID is a well-formed UUID.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

/// FNV-1a with 128-bit state (a stable, dependency-free digest; not cryptographic, which IDs need not be), fed
/// as an [`std::io::Write`] sink.
struct Fnv1a128(u128);

impl Default for Fnv1a128 {
    fn default() -> Self {
        Fnv1a128(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
}

impl std::io::Write for Fnv1a128 {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
        self.0 = data
            .iter()
            .fold(self.0, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::apinet::networkpolicyrule::{NetworkPolicyRuleFields, ObjectIP};
    use ironnet_api::common::IPFamily;
    use ironnet_api::networking::networkpolicy::{IPBlock, NetworkPolicyPort};

    fn prefix(s: &str) -> IPPrefix {
        s.parse().unwrap()
    }

    fn port(protocol: Option<Protocol>, port: i32, end: Option<i32>) -> NetworkPolicyPort {
        NetworkPolicyPort {
            protocol,
            port,
            end_port: end,
        }
    }

    fn np_rule(ingress: Vec<Rule>, egress: Vec<Rule>) -> NetworkPolicyRule {
        let mut r = NetworkPolicyRule::new(
            "np",
            NetworkPolicyRuleFields {
                priority: Some(3000),
                ingress_rules: ingress,
                egress_rules: egress,
                ..Default::default()
            },
        );
        r.metadata.namespace = Some("ns".into());
        r
    }

    fn conformance_rule() -> NetworkPolicyRule {
        np_rule(
            vec![Rule {
                ip_block: vec![
                    IPBlock {
                        cidr: Some(prefix("192.168.1.0/24")),
                        except: vec![prefix("192.168.2.100/32")],
                    },
                    IPBlock {
                        cidr: Some(prefix("2001:db8::/64")),
                        except: vec![prefix("2001:db8::1234/128")],
                    },
                ],
                ips: vec![ObjectIP {
                    ip_family: Some(IPFamily::IPv4),
                    prefix: Some(prefix("192.168.2.0/24")),
                }],
                network_policy_ports: vec![port(Some(Protocol::Tcp), 8080, Some(8090))],
            }],
            vec![Rule {
                ip_block: vec![IPBlock {
                    cidr: Some(prefix("10.0.0.0/16")),
                    except: vec![],
                }],
                ips: vec![
                    ObjectIP {
                        ip_family: Some(IPFamily::IPv4),
                        prefix: Some(prefix("192.168.178.60/32")),
                    },
                    ObjectIP {
                        ip_family: Some(IPFamily::IPv6),
                        prefix: Some(prefix("2001:db8:5678:abcd::60/128")),
                    },
                ],
                network_policy_ports: vec![
                    port(Some(Protocol::Tcp), 8095, None),
                    port(Some(Protocol::Tcp), 9000, Some(9010)),
                ],
            }],
        )
    }

    /// (direction, action, family, source, destination, dst port, end dst port) of a rule.
    type Shape = (
        FirewallRuleDirection,
        FirewallRuleAction,
        IPFamily,
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<i32>,
    );

    fn shape(r: &FirewallRule) -> Shape {
        let pr = r
            .protocol_match
            .as_ref()
            .and_then(|m| m.port_range.clone())
            .unwrap_or_default();
        assert_eq!(pr.src_port, None, "no rule matches source ports");
        assert_eq!(pr.end_src_port, None);
        (
            r.direction.unwrap(),
            r.action.unwrap(),
            r.ip_family.unwrap(),
            r.source_prefix.as_ref().map(ToString::to_string),
            r.destination_prefix.as_ref().map(ToString::to_string),
            pr.dst_port,
            pr.end_dst_port,
        )
    }

    #[test]
    fn conformance_policy_yields_exactly_the_eleven_rules_with_destination_ports() {
        use FirewallRuleAction::{Accept, Deny};
        use FirewallRuleDirection::{Egress, Ingress};
        use IPFamily::{IPv4, IPv6};
        let (rules, problems) = firewall_rules([&conformance_rule()]);
        assert!(problems.is_empty());
        let s = |v: &str| Some(v.to_owned());
        let expected: Vec<Shape> = vec![
            (
                Ingress,
                Accept,
                IPv4,
                s("192.168.1.0/24"),
                None,
                Some(8080),
                Some(8090),
            ),
            (
                Ingress,
                Deny,
                IPv4,
                s("192.168.2.100/32"),
                None,
                Some(8080),
                Some(8090),
            ),
            (
                Ingress,
                Accept,
                IPv6,
                s("2001:db8::/64"),
                None,
                Some(8080),
                Some(8090),
            ),
            (
                Ingress,
                Deny,
                IPv6,
                s("2001:db8::1234/128"),
                None,
                Some(8080),
                Some(8090),
            ),
            (
                Ingress,
                Accept,
                IPv4,
                s("192.168.2.0/24"),
                None,
                Some(8080),
                Some(8090),
            ),
            (
                Egress,
                Accept,
                IPv4,
                None,
                s("10.0.0.0/16"),
                Some(8095),
                Some(8095),
            ),
            (
                Egress,
                Accept,
                IPv4,
                None,
                s("192.168.178.60/32"),
                Some(8095),
                Some(8095),
            ),
            (
                Egress,
                Accept,
                IPv6,
                None,
                s("2001:db8:5678:abcd::60/128"),
                Some(8095),
                Some(8095),
            ),
            (
                Egress,
                Accept,
                IPv4,
                None,
                s("10.0.0.0/16"),
                Some(9000),
                Some(9010),
            ),
            (
                Egress,
                Accept,
                IPv4,
                None,
                s("192.168.178.60/32"),
                Some(9000),
                Some(9010),
            ),
            (
                Egress,
                Accept,
                IPv6,
                None,
                s("2001:db8:5678:abcd::60/128"),
                Some(9000),
                Some(9010),
            ),
        ];
        assert_eq!(rules.iter().map(shape).collect::<Vec<_>>(), expected);
        for r in &rules {
            assert_eq!(r.priority, Some(3000));
            assert_eq!(
                r.protocol_match.as_ref().unwrap().protocol_type,
                Some(ProtocolType::Tcp)
            );
            assert_eq!(r.firewall_rule_id.len(), 36);
        }
        let mut ids: Vec<&str> = rules.iter().map(|r| r.firewall_rule_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 11, "every rule has its own ID");
    }

    #[test]
    fn ids_are_a_function_of_the_content() {
        let (a, _) = firewall_rules([&conformance_rule()]);
        let (b, _) = firewall_rules([&conformance_rule()]);
        assert_eq!(a, b, "the same policy gives the same rules, IDs included");
        // Pinned, so that a change of the digest (which would rewrite every interface) is deliberate.
        assert_eq!(a[0].firewall_rule_id, rule_id(&a[0]));
        assert_eq!(a[0].firewall_rule_id, "9e8dbec5-1446-87e9-8b83-63cc44c7af75");
        let mut other = conformance_rule();
        other.spec.priority = Some(3001);
        let (c, _) = firewall_rules([&other]);
        assert!(
            a.iter()
                .zip(&c)
                .all(|(x, y)| x.firewall_rule_id != y.firewall_rule_id)
        );
        let id = &a[0].firewall_rule_id;
        assert_eq!(&id[14..15], "8", "version 8 UUID");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "RFC variant");
    }

    #[test]
    fn the_id_field_does_not_enter_the_digest() {
        let (a, _) = firewall_rules([&conformance_rule()]);
        let mut blank = a[0].clone();
        blank.firewall_rule_id = String::new();
        let mut stale = a[0].clone();
        stale.firewall_rule_id = "00000000-0000-8000-8000-000000000000".to_owned();
        assert_eq!(rule_id(&blank), "9e8dbec5-1446-87e9-8b83-63cc44c7af75");
        assert_eq!(rule_id(&stale), "9e8dbec5-1446-87e9-8b83-63cc44c7af75");
    }

    #[test]
    fn missing_protocol_is_tcp_sctp_is_reported_and_port_zero_matches_all_ports() {
        let rule = np_rule(
            vec![Rule {
                ip_block: vec![IPBlock {
                    cidr: Some(prefix("10.1.0.0/16")),
                    except: vec![],
                }],
                ips: vec![],
                network_policy_ports: vec![
                    port(None, 443, None),
                    port(Some(Protocol::Sctp), 9, None),
                    port(Some(Protocol::Udp), 0, None),
                ],
            }],
            vec![],
        );
        let mut rule = rule;
        rule.spec.priority = None;
        let (rules, problems) = firewall_rules([&rule]);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].priority, Some(1000), "metalnet's default, written out");
        let m0 = rules[0].protocol_match.clone().unwrap();
        assert_eq!(m0.protocol_type, Some(ProtocolType::Tcp));
        assert_eq!(m0.port_range.unwrap().dst_port, Some(443));
        let m1 = rules[1].protocol_match.clone().unwrap();
        assert_eq!(m1.protocol_type, Some(ProtocolType::Udp));
        assert_eq!(m1.port_range, None);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("SCTP"), "{problems:?}");
    }

    #[test]
    fn identical_rules_from_two_policies_appear_once_and_rules_without_ports_yield_nothing() {
        let mut second = conformance_rule();
        second.metadata.name = Some("np2".into());
        let (rules, _) = firewall_rules([&conformance_rule(), &second]);
        assert_eq!(rules.len(), 11);
        let no_ports = np_rule(
            vec![Rule {
                ip_block: vec![IPBlock {
                    cidr: Some(prefix("10.1.0.0/16")),
                    except: vec![],
                }],
                ..Default::default()
            }],
            vec![],
        );
        assert!(firewall_rules([&no_ports]).0.is_empty());
    }
}
