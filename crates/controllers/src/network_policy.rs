//! NetworkPolicy → NetworkPolicyRule resolution (done upstream by ironcore-net's apinetlet NetworkPolicy
//! controller, `apinetlet/controllers`): selectors become targets, peers become prefixes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::net::{Family, host_prefix};
use crate::selector::{LabelMatcher, SelectorError};

/// An apinet NetworkInterface as policy resolution sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInterfaceView {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.networkRef.name`.
    pub network: String,
    /// `status.state == Ready`.
    pub ready: bool,
    /// `spec.ips`.
    pub ips: Vec<IpAddr>,
}

/// An apinet LoadBalancer as policy resolution sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLoadBalancerView {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.networkRef.name`.
    pub network: String,
    /// `spec.ips[].ip` that are set.
    pub ips: Vec<IpAddr>,
}

/// A policy peer (`from[]` / `to[]` entry).
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyPeer {
    /// `objectSelector` of the given kind.
    Objects {
        /// `NetworkInterface` or `LoadBalancer`.
        kind: String,
        /// The inlined label selector.
        selector: LabelSelector,
    },
    /// `ipBlock`, passed through verbatim.
    IpBlock(serde_json::Value),
    /// A peer with neither set (selects nothing).
    Empty,
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRuleView {
    /// `ports`, passed through verbatim.
    pub ports: Vec<serde_json::Value>,
    /// `from` / `to`.
    pub peers: Vec<PolicyPeer>,
}

/// The policy being resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyView {
    /// `spec.networkRef.name`.
    pub network: String,
    /// `spec.networkInterfaceSelector`.
    pub selector: LabelSelector,
    /// `spec.ingress`.
    pub ingress: Vec<PolicyRuleView>,
    /// `spec.egress`.
    pub egress: Vec<PolicyRuleView>,
}

/// A NetworkPolicyRule target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyTarget {
    /// The interface IP.
    pub ip: IpAddr,
    /// Name of the interface.
    pub name: String,
    /// UID of the interface.
    pub uid: String,
}

/// A resolved object peer (`ObjectIP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectIp {
    /// Family of the prefix.
    pub family: Family,
    /// Single-address prefix (`/32` or `/128`).
    pub prefix: String,
}

/// A resolved rule.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedRule {
    /// Ports, verbatim.
    pub ports: Vec<serde_json::Value>,
    /// IP blocks, verbatim.
    pub ip_blocks: Vec<serde_json::Value>,
    /// Object peers resolved to prefixes.
    pub ips: Vec<ObjectIp>,
}

/// The resolved NetworkPolicyRule content.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedPolicy {
    /// Selected Ready interfaces' IPs.
    pub targets: Vec<PolicyTarget>,
    /// Ingress rules.
    pub ingress: Vec<ResolvedRule>,
    /// Egress rules.
    pub egress: Vec<ResolvedRule>,
}

/// A policy could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A selector is malformed.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// An object selector names a kind apinet cannot resolve.
    #[error("unsupported object selector kind {0:?}")]
    UnsupportedKind(String),
}

fn selected_interfaces<'a>(
    network: &str,
    matcher: &LabelMatcher,
    interfaces: &'a [PolicyInterfaceView],
) -> Vec<&'a PolicyInterfaceView> {
    let mut v: Vec<_> = interfaces
        .iter()
        .filter(|n| n.ready && n.network == network && matcher.matches(&n.labels))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn resolve_rule(
    network: &str,
    rule: &PolicyRuleView,
    interfaces: &[PolicyInterfaceView],
    load_balancers: &[PolicyLoadBalancerView],
) -> Result<ResolvedRule, PolicyError> {
    let mut out = ResolvedRule {
        ports: rule.ports.clone(),
        ip_blocks: Vec::new(),
        ips: Vec::new(),
    };
    for peer in &rule.peers {
        match peer {
            PolicyPeer::IpBlock(block) => out.ip_blocks.push(block.clone()),
            PolicyPeer::Empty => {}
            PolicyPeer::Objects { kind, selector } => {
                let m = LabelMatcher::new(Some(selector))?;
                let addrs: Vec<IpAddr> = match kind.as_str() {
                    "NetworkInterface" => selected_interfaces(network, &m, interfaces)
                        .into_iter()
                        .flat_map(|n| n.ips.iter().copied())
                        .collect(),
                    "LoadBalancer" => {
                        let mut lbs: Vec<_> = load_balancers
                            .iter()
                            .filter(|lb| lb.network == network && m.matches(&lb.labels))
                            .collect();
                        lbs.sort_by(|a, b| a.name.cmp(&b.name));
                        lbs.into_iter().flat_map(|lb| lb.ips.iter().copied()).collect()
                    }
                    other => return Err(PolicyError::UnsupportedKind(other.to_owned())),
                };
                out.ips.extend(addrs.iter().map(|a| ObjectIp {
                    family: Family::of(a),
                    prefix: host_prefix(a),
                }));
            }
        }
    }
    Ok(out)
}

/// Resolves `policy` against the interfaces and load balancers of its namespace.
///
/// Targets are the Ready interfaces on the policy's network selected by `networkInterfaceSelector`, one entry
/// per IP; object peers become single-address prefixes of Ready interfaces / load balancers **on the same
/// network** (upstream ignores the network of load balancers); IP blocks and ports are copied.
pub fn resolve_policy(
    policy: &PolicyView,
    interfaces: &[PolicyInterfaceView],
    load_balancers: &[PolicyLoadBalancerView],
) -> Result<ResolvedPolicy, PolicyError> {
    let m = LabelMatcher::new(Some(&policy.selector))?;
    let targets = selected_interfaces(&policy.network, &m, interfaces)
        .into_iter()
        .flat_map(|n| {
            n.ips.iter().map(|ip| PolicyTarget {
                ip: *ip,
                name: n.name.clone(),
                uid: n.uid.clone(),
            })
        })
        .collect();
    let resolve = |rules: &[PolicyRuleView]| {
        rules
            .iter()
            .map(|r| resolve_rule(&policy.network, r, interfaces, load_balancers))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(ResolvedPolicy {
        targets,
        ingress: resolve(&policy.ingress)?,
        egress: resolve(&policy.egress)?,
    })
}

/// Whether a change of an interface from `old` to `new` labels can change the resolution of a policy with
/// `selectors` (its target selector and every object selector): any selector matching either label set.
/// Every selector is checked (upstream aborts the mapping at the first empty selector).
pub fn interface_change_affects(
    selectors: &[&LabelSelector],
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
) -> bool {
    selectors.iter().any(|s| {
        LabelMatcher::new(Some(s)).is_ok_and(|m| [old, new].into_iter().flatten().any(|l| m.matches(l)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::labels;
    use serde_json::json;

    fn nic(name: &str, l: BTreeMap<String, String>, ip: &str) -> PolicyInterfaceView {
        PolicyInterfaceView {
            name: name.into(),
            uid: format!("{name}-uid"),
            labels: l,
            network: "net".into(),
            ready: true,
            ips: vec![ip.parse().unwrap()],
        }
    }

    fn sel(k: &str, v: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels([(k, v)])),
            ..Default::default()
        }
    }

    fn conformance_policy() -> PolicyView {
        PolicyView {
            network: "net".into(),
            selector: sel("app", "target"),
            ingress: vec![PolicyRuleView {
                ports: vec![
                    json!({"protocol": "TCP", "port": 80}),
                    json!({"protocol": "UDP", "port": 8080, "endPort": 8090}),
                ],
                peers: vec![
                    PolicyPeer::Objects {
                        kind: "NetworkInterface".into(),
                        selector: sel("rule", "ingress"),
                    },
                    PolicyPeer::IpBlock(
                        json!({"cidr": "192.168.1.0/24", "except": ["192.168.1.1/32", "192.168.1.2/32"]}),
                    ),
                ],
            }],
            egress: vec![PolicyRuleView {
                ports: vec![json!({"protocol": "TCP", "port": 443})],
                peers: vec![
                    PolicyPeer::Objects {
                        kind: "NetworkInterface".into(),
                        selector: sel("rule", "egress"),
                    },
                    PolicyPeer::IpBlock(json!({"cidr": "10.0.0.0/16"})),
                ],
            }],
        }
    }

    #[test]
    fn conformance_rule_without_and_with_targets() {
        let mut nics = vec![
            nic("in", labels([("rule", "ingress")]), "192.168.178.50"),
            nic("out", labels([("rule", "egress")]), "192.168.178.60"),
        ];
        let r = resolve_policy(&conformance_policy(), &nics, &[]).unwrap();
        assert!(r.targets.is_empty());
        assert_eq!(
            r.ingress[0].ips,
            [ObjectIp {
                family: Family::V4,
                prefix: "192.168.178.50/32".into()
            }]
        );
        assert_eq!(r.ingress[0].ip_blocks.len(), 1);
        assert_eq!(r.ingress[0].ports.len(), 2);
        assert_eq!(
            r.egress[0].ips,
            [ObjectIp {
                family: Family::V4,
                prefix: "192.168.178.60/32".into()
            }]
        );

        nics.push(nic("target", labels([("app", "target")]), "192.168.178.1"));
        nics.push(nic("target2", labels([("app", "target2")]), "192.168.178.15"));
        let r = resolve_policy(&conformance_policy(), &nics, &[]).unwrap();
        assert_eq!(
            r.targets,
            [PolicyTarget {
                ip: "192.168.178.1".parse().unwrap(),
                name: "target".into(),
                uid: "target-uid".into()
            }]
        );
        let mut p = conformance_policy();
        p.selector = sel("app", "target2");
        let r = resolve_policy(&p, &nics, &[]).unwrap();
        assert_eq!(r.targets[0].ip, "192.168.178.15".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn not_ready_and_other_network_interfaces_are_ignored() {
        let mut a = nic("a", labels([("app", "target")]), "10.0.0.1");
        a.ready = false;
        let mut b = nic("b", labels([("app", "target")]), "10.0.0.2");
        b.network = "other".into();
        let r = resolve_policy(&conformance_policy(), &[a, b], &[]).unwrap();
        assert!(r.targets.is_empty());
    }

    #[test]
    fn load_balancers_resolve_on_the_same_network_only() {
        let mut p = conformance_policy();
        p.ingress[0].peers = vec![PolicyPeer::Objects {
            kind: "LoadBalancer".into(),
            selector: sel("app", "web"),
        }];
        let lb = |name: &str, network: &str, ip: &str| PolicyLoadBalancerView {
            name: name.into(),
            labels: labels([("app", "web")]),
            network: network.into(),
            ips: vec![ip.parse().unwrap()],
        };
        let r = resolve_policy(
            &p,
            &[],
            &[lb("a", "net", "2001:db8::1"), lb("b", "other", "10.0.0.9")],
        )
        .unwrap();
        assert_eq!(
            r.ingress[0].ips,
            [ObjectIp {
                family: Family::V6,
                prefix: "2001:db8::1/128".into()
            }]
        );
    }

    #[test]
    fn unsupported_kinds_are_errors() {
        let mut p = conformance_policy();
        p.egress[0].peers = vec![PolicyPeer::Objects {
            kind: "VirtualIP".into(),
            selector: sel("a", "b"),
        }];
        assert_eq!(
            resolve_policy(&p, &[], &[]),
            Err(PolicyError::UnsupportedKind("VirtualIP".into()))
        );
    }

    #[test]
    fn interface_changes_trigger_on_any_selector() {
        let s1 = sel("app", "target");
        let s2 = sel("rule", "ingress");
        let l = labels([("rule", "ingress")]);
        assert!(interface_change_affects(&[&s1, &s2], None, Some(&l)));
        assert!(!interface_change_affects(&[&s1], Some(&l), None));
    }
}
