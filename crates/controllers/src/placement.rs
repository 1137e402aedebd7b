//! Instance placement (upstream ironcore-net's scheduler, controller `instance-scheduler` in
//! `internal/controllers`): node affinity, instance anti-affinity, topology spread, then the least-loaded
//! node.
//!
//! Differences from upstream: ties between equally loaded nodes are broken by node name (upstream: arbitrary),
//! `matchFields` accepts `In`/`NotIn` with any number of values, and a malformed selector is reported as an
//! error instead of silently matching nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::selector::{LabelMatcher, SelectorError};

/// A label map.
pub type Labels = BTreeMap<String, String>;

/// A schedulable node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Node labels (topology lives here).
    pub labels: Labels,
}

/// Operator of a node selector requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeSelectorOperator {
    /// Label value in the set.
    In,
    /// Label missing or value not in the set.
    NotIn,
    /// Label present.
    Exists,
    /// Label missing.
    DoesNotExist,
    /// Label value, as integer, greater than the single value.
    Gt,
    /// Label value, as integer, less than the single value.
    Lt,
}

impl NodeSelectorOperator {
    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            "Gt" => Self::Gt,
            "Lt" => Self::Lt,
            _ => return None,
        })
    }
}

/// A node selector requirement (`matchExpressions` on labels, `matchFields` on `metadata.name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSelectorRequirement {
    /// Label key, or field path for `matchFields`.
    pub key: String,
    /// Operator as written; unknown operators make the requirement fail.
    pub operator: String,
    /// Values.
    pub values: Vec<String>,
}

/// One node selector term: all expressions and fields must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    /// Requirements on node labels.
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// Requirements on node fields (only `metadata.name`).
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// Required node affinity: the terms are ORed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelector {
    /// Terms; empty terms are skipped, and no effective term selects no node.
    pub terms: Vec<NodeSelectorTerm>,
}

/// A required instance anti-affinity term.
#[derive(Clone, Debug, PartialEq)]
pub struct AntiAffinityTerm {
    /// Instances this term repels (nil selects none).
    pub selector: Option<LabelSelector>,
    /// Node label defining the topology domain.
    pub topology_key: String,
}

/// A topology spread constraint (`whenUnsatisfiable` is always treated as `DoNotSchedule`).
#[derive(Clone, Debug, PartialEq)]
pub struct SpreadConstraint {
    /// Maximum allowed difference between the fullest and emptiest domain.
    pub max_skew: i64,
    /// Node label defining the domain.
    pub topology_key: String,
    /// Instances counted (nil counts none).
    pub selector: Option<LabelSelector>,
}

/// The scheduling-relevant part of an instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceView {
    /// Namespace (anti-affinity and spread are namespace-local).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Required node affinity; `None` allows every node.
    pub node_affinity: Option<NodeSelector>,
    /// Required anti-affinity terms.
    pub anti_affinity: Vec<AntiAffinityTerm>,
    /// Topology spread constraints.
    pub spread: Vec<SpreadConstraint>,
}

/// An instance already bound to a node.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedInstance {
    /// The instance.
    pub instance: InstanceView,
    /// The node it is bound to.
    pub node: String,
}

/// A selector in the instance's constraints is malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    /// A label selector of an anti-affinity term or spread constraint.
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

/// Whether the node `node` satisfies `requirement` on its labels.
fn expression_matches(req: &NodeSelectorRequirement, labels: &Labels) -> bool {
    let value = labels.get(&req.key);
    match NodeSelectorOperator::parse(&req.operator) {
        Some(NodeSelectorOperator::In) => {
            !req.values.is_empty() && value.is_some_and(|v| req.values.contains(v))
        }
        Some(NodeSelectorOperator::NotIn) => {
            !req.values.is_empty() && value.is_none_or(|v| !req.values.contains(v))
        }
        Some(NodeSelectorOperator::Exists) => req.values.is_empty() && value.is_some(),
        Some(NodeSelectorOperator::DoesNotExist) => req.values.is_empty() && value.is_none(),
        Some(op @ (NodeSelectorOperator::Gt | NodeSelectorOperator::Lt)) => {
            let [bound] = req.values.as_slice() else {
                return false;
            };
            let (Ok(bound), Some(Ok(v))) = (bound.parse::<i64>(), value.map(|v| v.parse::<i64>())) else {
                return false;
            };
            if op == NodeSelectorOperator::Gt {
                v > bound
            } else {
                v < bound
            }
        }
        None => false,
    }
}

fn field_matches(req: &NodeSelectorRequirement, node: &NodeView) -> bool {
    if req.key != "metadata.name" || req.values.is_empty() {
        return false;
    }
    match NodeSelectorOperator::parse(&req.operator) {
        Some(NodeSelectorOperator::In) => req.values.contains(&node.name),
        Some(NodeSelectorOperator::NotIn) => !req.values.contains(&node.name),
        _ => false,
    }
}

/// Whether `node` satisfies the required node affinity `selector`.
pub fn node_affinity_matches(selector: &NodeSelector, node: &NodeView) -> bool {
    selector
        .terms
        .iter()
        .filter(|t| !t.match_expressions.is_empty() || !t.match_fields.is_empty())
        .any(|t| {
            t.match_expressions
                .iter()
                .all(|r| expression_matches(r, &node.labels))
                && t.match_fields.iter().all(|r| field_matches(r, node))
        })
}

/// The outcome of scheduling one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Bind to this node.
    Node(String),
    /// No node satisfies the constraints (`No nodes available to schedule <ns>/<name> on`).
    NoFit,
}

/// Chooses a node for `instance` given every node and every already-placed instance.
///
/// Filters: required node affinity, anti-affinity in both directions (existing instances repelling the new one
/// and the new one repelling existing ones; nodes without the topology key pass), topology spread (nodes must
/// carry every constraint key; skew after placement must stay ≤ maxSkew). Among the survivors the node with the
/// fewest non-deleting instances (all namespaces) wins; ties go to the lexicographically smallest name.
pub fn place(
    instance: &InstanceView,
    nodes: &[NodeView],
    placed: &[PlacedInstance],
) -> Result<Placement, PlacementError> {
    let node_labels: BTreeMap<&str, &Labels> = nodes.iter().map(|n| (n.name.as_str(), &n.labels)).collect();
    let mut candidates: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| {
            instance
                .node_affinity
                .as_ref()
                .is_none_or(|a| node_affinity_matches(a, n))
        })
        .collect();
    let affinity_ok: Vec<&NodeView> = candidates.clone();

    let same_ns: Vec<&PlacedInstance> = placed
        .iter()
        .filter(|p| p.instance.namespace == instance.namespace && node_labels.contains_key(p.node.as_str()))
        .collect();

    // Anti-affinity: forbidden (key, value) topology domains.
    let mut forbidden: BTreeSet<(String, String)> = BTreeSet::new();
    for p in &same_ns {
        for term in &p.instance.anti_affinity {
            if LabelMatcher::new(term.selector.as_ref())?.matches(&instance.labels)
                && let Some(v) = node_labels[p.node.as_str()].get(&term.topology_key)
            {
                forbidden.insert((term.topology_key.clone(), v.clone()));
            }
        }
    }
    for term in &instance.anti_affinity {
        let m = LabelMatcher::new(term.selector.as_ref())?;
        for p in same_ns.iter().filter(|p| m.matches(&p.instance.labels)) {
            if let Some(v) = node_labels[p.node.as_str()].get(&term.topology_key) {
                forbidden.insert((term.topology_key.clone(), v.clone()));
            }
        }
    }
    candidates.retain(|n| {
        !n.labels
            .iter()
            .any(|(k, v)| forbidden.contains(&(k.clone(), v.clone())))
    });

    // Topology spread.
    for c in &instance.spread {
        let m = LabelMatcher::new(c.selector.as_ref())?;
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for n in &affinity_ok {
            if let Some(v) = n.labels.get(&c.topology_key) {
                counts.entry(v.as_str()).or_insert(0);
            }
        }
        for p in same_ns.iter().filter(|p| m.matches(&p.instance.labels)) {
            if let Some(v) = node_labels[p.node.as_str()].get(&c.topology_key)
                && let Some(count) = counts.get_mut(v.as_str())
            {
                *count += 1;
            }
        }
        let min = counts.values().copied().min().unwrap_or(0);
        let own = i64::from(m.matches(&instance.labels));
        candidates.retain(|n| match n.labels.get(&c.topology_key) {
            Some(v) => counts.get(v.as_str()).copied().unwrap_or(0) + own - min <= c.max_skew,
            None => false,
        });
    }

    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    for p in placed {
        *load.entry(p.node.as_str()).or_default() += 1;
    }
    Ok(candidates
        .into_iter()
        .min_by(|a, b| {
            let la = load.get(a.name.as_str()).copied().unwrap_or(0);
            let lb = load.get(b.name.as_str()).copied().unwrap_or(0);
            la.cmp(&lb).then_with(|| a.name.cmp(&b.name))
        })
        .map_or(Placement::NoFit, |n| Placement::Node(n.name.clone())))
}

fn requirements(v: Option<&Value>) -> Vec<NodeSelectorRequirement> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| NodeSelectorRequirement {
            key: r
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            operator: r
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            values: r
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
        })
        .collect()
}

/// Reads a required node selector (`{nodeSelectorTerms: [...]}`) from its wire form; `None` for null/absent.
pub fn node_selector_from_json(v: &Value) -> Option<NodeSelector> {
    if !v.is_object() {
        return None;
    }
    Some(NodeSelector {
        terms: v
            .get("nodeSelectorTerms")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| NodeSelectorTerm {
                match_expressions: requirements(t.get("matchExpressions")),
                match_fields: requirements(t.get("matchFields")),
            })
            .collect(),
    })
}

fn selector_at(v: &Value, key: &str) -> Option<LabelSelector> {
    v.get(key)
        .filter(|s| !s.is_null())
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}

/// The scheduling view of an Instance from its namespace, name, labels and wire-form `spec`: the required node
/// affinity, the required instance anti-affinity terms and the topology spread constraints.
pub fn instance_view_from_json(namespace: &str, name: &str, labels: Labels, spec: &Value) -> InstanceView {
    let affinity = spec.get("affinity").cloned().unwrap_or(Value::Null);
    InstanceView {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        labels,
        node_affinity: affinity
            .pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(node_selector_from_json),
        anti_affinity: affinity
            .pointer("/instanceAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| AntiAffinityTerm {
                selector: selector_at(t, "labelSelector"),
                topology_key: t
                    .get("topologyKey")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect(),
        spread: spec
            .get("topologySpreadConstraints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| SpreadConstraint {
                max_skew: c.get("maxSkew").and_then(Value::as_i64).unwrap_or(0),
                topology_key: c
                    .get("topologyKey")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                selector: selector_at(c, "labelSelector"),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::labels;

    fn node(name: &str, l: &[(&str, &str)]) -> NodeView {
        NodeView {
            name: name.into(),
            labels: l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn inst(name: &str) -> InstanceView {
        InstanceView {
            namespace: "ns".into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn zone_anti(mut i: InstanceView) -> InstanceView {
        i.labels = labels([("topology-test", "")]);
        i.anti_affinity = vec![AntiAffinityTerm {
            selector: Some(LabelSelector {
                match_labels: Some(labels([("topology-test", "")])),
                ..Default::default()
            }),
            topology_key: "apinet.ironcore.dev/zone".into(),
        }];
        i
    }

    fn pin(name: &str) -> NodeSelector {
        NodeSelector {
            terms: vec![NodeSelectorTerm {
                match_fields: vec![NodeSelectorRequirement {
                    key: "metadata.name".into(),
                    operator: "In".into(),
                    values: vec![name.into()],
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn single_node_gets_the_instance_and_no_nodes_means_no_fit() {
        let nodes = [node("n1", &[])];
        assert_eq!(
            place(&inst("a"), &nodes, &[]).unwrap(),
            Placement::Node("n1".into())
        );
        assert_eq!(place(&inst("a"), &[], &[]).unwrap(), Placement::NoFit);
    }

    #[test]
    fn anti_affinity_spreads_over_zones_and_leaves_the_third_unscheduled() {
        let nodes = [
            node("a", &[("apinet.ironcore.dev/zone", "zone-a")]),
            node("b", &[("apinet.ironcore.dev/zone", "zone-b")]),
        ];
        let mut placed = vec![];
        let mut results = vec![];
        for name in ["i1", "i2", "i3"] {
            let i = zone_anti(inst(name));
            let r = place(&i, &nodes, &placed).unwrap();
            if let Placement::Node(n) = &r {
                placed.push(PlacedInstance {
                    instance: i,
                    node: n.clone(),
                });
            }
            results.push(r);
        }
        assert_eq!(
            results[..2],
            [Placement::Node("a".into()), Placement::Node("b".into())]
        );
        assert_eq!(results[2], Placement::NoFit);
    }

    #[test]
    fn pinned_instances_in_the_same_zone_repel_each_other() {
        let z = [("apinet.ironcore.dev/zone", "zone-a")];
        let nodes = [node("a", &z), node("b", &z)];
        let mut i1 = zone_anti(inst("i1"));
        i1.node_affinity = Some(pin("a"));
        let mut i2 = zone_anti(inst("i2"));
        i2.node_affinity = Some(pin("b"));
        assert_eq!(place(&i1, &nodes, &[]).unwrap(), Placement::Node("a".into()));
        let placed = [PlacedInstance {
            instance: i1,
            node: "a".into(),
        }];
        assert_eq!(place(&i2, &nodes, &placed).unwrap(), Placement::NoFit);
    }

    #[test]
    fn anti_affinity_is_namespace_local_and_ignores_nodes_without_the_key() {
        let nodes = [
            node("a", &[("apinet.ironcore.dev/zone", "zone-a")]),
            node("b", &[]),
        ];
        let mut other = zone_anti(inst("x"));
        other.namespace = "other".into();
        let placed = [PlacedInstance {
            instance: other,
            node: "a".into(),
        }];
        // Node "a" holds one instance (another namespace), so the empty node "b" wins on load; with "b" gone,
        // "a" is still allowed.
        assert_eq!(
            place(&zone_anti(inst("i")), &nodes, &placed).unwrap(),
            Placement::Node("b".into())
        );
        assert_eq!(
            place(&zone_anti(inst("i")), &nodes[..1], &placed).unwrap(),
            Placement::Node("a".into())
        );
    }

    #[test]
    fn node_affinity_operators() {
        let n = node("n", &[("cpu", "8"), ("zone", "a")]);
        let req = |k: &str, op: &str, v: &[&str]| NodeSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: v.iter().map(|s| s.to_string()).collect(),
        };
        let one = |r: NodeSelectorRequirement| NodeSelector {
            terms: vec![NodeSelectorTerm {
                match_expressions: vec![r],
                ..Default::default()
            }],
        };
        assert!(node_affinity_matches(&one(req("cpu", "Gt", &["4"])), &n));
        assert!(!node_affinity_matches(&one(req("cpu", "Lt", &["4"])), &n));
        assert!(!node_affinity_matches(&one(req("zone", "Gt", &["4"])), &n));
        assert!(node_affinity_matches(&one(req("zone", "In", &["a", "b"])), &n));
        assert!(node_affinity_matches(&one(req("gpu", "NotIn", &["x"])), &n));
        assert!(node_affinity_matches(&one(req("gpu", "DoesNotExist", &[])), &n));
        assert!(!node_affinity_matches(&one(req("zone", "Exists", &["a"])), &n));
        assert!(!node_affinity_matches(&one(req("zone", "Bogus", &["a"])), &n));
        // No effective term selects nothing; terms are ORed.
        assert!(!node_affinity_matches(
            &NodeSelector {
                terms: vec![NodeSelectorTerm::default()]
            },
            &n
        ));
        let either = NodeSelector {
            terms: vec![
                NodeSelectorTerm {
                    match_expressions: vec![req("zone", "In", &["b"])],
                    ..Default::default()
                },
                NodeSelectorTerm {
                    match_fields: vec![req("metadata.name", "In", &["n"])],
                    ..Default::default()
                },
            ],
        };
        assert!(node_affinity_matches(&either, &n));
    }

    #[test]
    fn topology_spread_keeps_skew_within_bounds() {
        let nodes = [
            node("a", &[("zone", "1")]),
            node("b", &[("zone", "2")]),
            node("c", &[]),
        ];
        let sel = LabelSelector {
            match_labels: Some(labels([("app", "lb")])),
            ..Default::default()
        };
        let mut i = inst("x");
        i.labels = labels([("app", "lb")]);
        i.spread = vec![SpreadConstraint {
            max_skew: 1,
            topology_key: "zone".into(),
            selector: Some(sel),
        }];
        let mut placed: Vec<PlacedInstance> = vec![];
        let mut counts = BTreeMap::new();
        for k in 0..10 {
            let mut next = i.clone();
            next.name = format!("x{k}");
            let Placement::Node(n) = place(&next, &nodes, &placed).unwrap() else {
                panic!("no fit")
            };
            assert_ne!(n, "c", "nodes without the key are excluded");
            *counts.entry(n.clone()).or_insert(0i64) += 1;
            placed.push(PlacedInstance {
                instance: next,
                node: n,
            });
            let (mx, mn) = (counts.values().max().unwrap(), counts.values().min().unwrap());
            assert!(counts.len() < 2 || mx - mn <= 1);
        }
        // A heavily loaded foreign node does not break the constraint: the skew filter runs before load.
        let foreign: Vec<_> = (0..5)
            .map(|k| PlacedInstance {
                instance: inst(&format!("f{k}")),
                node: "a".into(),
            })
            .collect();
        assert_eq!(place(&i, &nodes, &foreign).unwrap(), Placement::Node("b".into()));
    }

    #[test]
    fn least_loaded_then_name() {
        let nodes = [node("b", &[]), node("a", &[]), node("c", &[])];
        let placed = [PlacedInstance {
            instance: inst("p"),
            node: "a".into(),
        }];
        assert_eq!(
            place(&inst("x"), &nodes, &placed).unwrap(),
            Placement::Node("b".into())
        );
    }

    #[test]
    fn malformed_selectors_are_errors() {
        let mut i = inst("x");
        i.anti_affinity = vec![AntiAffinityTerm {
            selector: Some(LabelSelector {
                match_expressions: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                        key: "k".into(),
                        operator: "In".into(),
                        values: None,
                    },
                ]),
                ..Default::default()
            }),
            topology_key: "zone".into(),
        }];
        let placed = [PlacedInstance {
            instance: inst("p"),
            node: "a".into(),
        }];
        assert!(place(&i, &[node("a", &[])], &placed).is_err());
    }
    #[test]
    fn views_are_read_from_the_wire_form() {
        let spec = serde_json::json!({
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}},
                "instanceAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"a": "b"}}, "topologyKey": "zone"}]},
            },
            "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
        });
        let v = instance_view_from_json("ns", "i", Labels::new(), &spec);
        assert_eq!(v.node_affinity, Some(pin("n1")));
        assert_eq!(v.anti_affinity.len(), 1);
        assert_eq!(v.anti_affinity[0].topology_key, "zone");
        assert!(v.anti_affinity[0].selector.is_some());
        assert_eq!((v.spread[0].max_skew, v.spread[0].selector.is_none()), (2, true));
        let bare = instance_view_from_json("ns", "i", Labels::new(), &serde_json::json!({}));
        assert_eq!(bare.node_affinity, None);
        assert!(bare.anti_affinity.is_empty() && bare.spread.is_empty());
    }
}
