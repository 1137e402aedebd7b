//! DaemonSet → Instances: one Instance pinned to every suitable Node (upstream ironcore-net's DaemonSet
//! controller, `internal/controllers`). The DaemonSet itself comes from an apinet LoadBalancer
//! ([`crate::apinet_loadbalancer`]).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::placement::{NodeSelector, NodeView, node_affinity_matches};

/// The API version of core.apinet.ironcore.dev objects.
pub const APINET_API_VERSION: &str = "core.apinet.ironcore.dev/v1alpha1";
/// Label carrying the template hash on instances created by a DaemonSet.
pub const CONTROLLER_REVISION_HASH: &str = "apinet.ironcore.dev/controller-revision-hash";

/// A node-affinity that pins an instance to `node`.
pub fn pin_to_node(node: &str) -> Value {
    json!({
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{
                "matchFields": [{ "key": "metadata.name", "operator": "In", "values": [node] }],
            }],
        },
    })
}

/// The node an instance spec is pinned to: `nodeRef.name`, else a single `metadata.name In [node]` field term.
pub fn pinned_node(instance_spec: &Value) -> Option<String> {
    if let Some(n) = instance_spec.pointer("/nodeRef/name").and_then(Value::as_str) {
        return Some(n.to_owned());
    }
    let terms = instance_spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    let [term] = terms.as_slice() else { return None };
    let fields = term.get("matchFields")?.as_array()?;
    let [field] = fields.as_slice() else { return None };
    let values = field.get("values")?.as_array()?;
    match (
        field.get("key")?.as_str()?,
        field.get("operator")?.as_str()?,
        values.as_slice(),
    ) {
        ("metadata.name", "In", [v]) => v.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The spec of an instance on `node`: the template spec with its required node affinity replaced by a pin.
pub fn instance_spec_for_node(template_spec: &Value, node: &str) -> Value {
    let mut spec = if template_spec.is_object() {
        template_spec.clone()
    } else {
        json!({})
    };
    let affinity = spec
        .as_object_mut()
        .expect("object")
        .entry("affinity")
        .or_insert_with(|| json!({}));
    if !affinity.is_object() {
        *affinity = json!({});
    }
    affinity["nodeAffinity"] = pin_to_node(node);
    spec
}

/// An instance owned by (or matching) the DaemonSet.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceState {
    /// Name.
    pub name: String,
    /// The node it runs on or is pinned to.
    pub node: Option<String>,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Creation ordering key (RFC 3339 creation timestamp); older instances are kept.
    pub created: String,
    /// `spec.ips`.
    pub ips: Value,
    /// `spec.loadBalancerPorts`.
    pub ports: Value,
}

/// What the DaemonSet reconciler has to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstancePlan {
    /// Nodes that need a new instance.
    pub create: Vec<String>,
    /// Instances to delete (duplicates, instances on unsuitable or vanished nodes).
    pub delete: Vec<String>,
    /// Instances whose `ips` / `loadBalancerPorts` differ from the template.
    pub update: Vec<String>,
}

/// Plans instances so that exactly one non-deleting instance runs on every node that satisfies the template's
/// required node affinity.
pub fn plan_instances(
    template_affinity: Option<&NodeSelector>,
    template_ips: &Value,
    template_ports: &Value,
    nodes: &[NodeView],
    instances: &[InstanceState],
) -> InstancePlan {
    let mut plan = InstancePlan::default();
    let mut by_node: BTreeMap<&str, Vec<&InstanceState>> = BTreeMap::new();
    for inst in instances {
        match inst.node.as_deref() {
            Some(n) => by_node.entry(n).or_default().push(inst),
            None if !inst.deleting => plan.delete.push(inst.name.clone()),
            None => {}
        }
    }
    for node in nodes {
        let should_run = template_affinity.is_none_or(|a| node_affinity_matches(a, node));
        let mut on_node: Vec<&InstanceState> = by_node
            .remove(node.name.as_str())
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !i.deleting)
            .collect();
        if !should_run {
            plan.delete.extend(on_node.iter().map(|i| i.name.clone()));
            continue;
        }
        on_node.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        let mut rest = on_node.into_iter();
        match rest.next() {
            None => plan.create.push(node.name.clone()),
            Some(keep) => {
                if &keep.ips != template_ips || &keep.ports != template_ports {
                    plan.update.push(keep.name.clone());
                }
            }
        }
        plan.delete.extend(rest.map(|i| i.name.clone()));
    }
    // Instances on nodes that no longer exist.
    for insts in by_node.into_values() {
        plan.delete
            .extend(insts.into_iter().filter(|i| !i.deleting).map(|i| i.name.clone()));
    }
    plan.delete.sort();
    plan
}

/// The alphabet of Kubernetes' random names and safe encodings (no vowels, no ambiguous characters).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `controller-revision-hash` of a DaemonSet template: FNV-1a (32 bit) over the template's JSON, safe-encoded
/// like Kubernetes' `rand.SafeEncodeString` of the decimal hash. Stable for an unchanged template.
pub fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in template.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The name of a new instance of DaemonSet `ds`: at most 52 characters of the DaemonSet name, `-`, and 10
/// characters from Kubernetes' random-name alphabet.
pub fn instance_name(ds: &str, rng: &mut impl rand::Rng) -> String {
    let prefix: String = ds.chars().take(52).collect();
    let suffix: String = (0..10)
        .map(|_| char::from(SAFE_ALPHABET[rng.random_range(0..SAFE_ALPHABET.len())]))
        .collect();
    format!("{prefix}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{NodeSelectorRequirement, NodeSelectorTerm};

    #[test]
    fn pins_round_trip() {
        let spec = instance_spec_for_node(&json!({"affinity": {"instanceAntiAffinity": {}}}), "node-1");
        assert_eq!(pinned_node(&spec).as_deref(), Some("node-1"));
        assert!(spec["affinity"]["instanceAntiAffinity"].is_object());
        assert_eq!(
            pinned_node(&json!({"nodeRef": {"name": "n2"}})).as_deref(),
            Some("n2")
        );
        assert_eq!(pinned_node(&json!({})), None);
    }

    fn inst(name: &str, node: Option<&str>, created: &str) -> InstanceState {
        InstanceState {
            name: name.into(),
            node: node.map(Into::into),
            deleting: false,
            created: created.into(),
            ips: json!(["10.0.0.1"]),
            ports: Value::Null,
        }
    }

    fn node(name: &str) -> NodeView {
        NodeView {
            name: name.into(),
            labels: Default::default(),
        }
    }

    #[test]
    fn one_instance_per_node() {
        let ips = json!(["10.0.0.1"]);
        let nodes = [node("a"), node("b")];
        let plan = plan_instances(None, &ips, &Value::Null, &nodes, &[]);
        assert_eq!(plan.create, ["a", "b"]);
        let existing = [
            inst("a-new", Some("a"), "2026-01-02T00:00:00Z"),
            inst("a-old", Some("a"), "2026-01-01T00:00:00Z"),
            inst("gone", Some("c"), "2026-01-01T00:00:00Z"),
            inst("unpinned", None, "2026-01-01T00:00:00Z"),
        ];
        let plan = plan_instances(None, &ips, &Value::Null, &nodes, &existing);
        assert_eq!(plan.create, ["b"]);
        assert_eq!(plan.delete, ["a-new", "gone", "unpinned"]);
        assert!(plan.update.is_empty());
        let plan = plan_instances(
            None,
            &json!(["192.168.178.1"]),
            &Value::Null,
            &nodes,
            &existing[1..2],
        );
        assert_eq!(plan.update, ["a-old"]);
    }

    #[test]
    fn template_node_affinity_limits_nodes_and_deleting_instances_are_replaced() {
        let only_a = NodeSelector {
            terms: vec![NodeSelectorTerm {
                match_fields: vec![NodeSelectorRequirement {
                    key: "metadata.name".into(),
                    operator: "In".into(),
                    values: vec!["a".into()],
                }],
                ..Default::default()
            }],
        };
        let mut deleting = inst("a1", Some("a"), "t");
        deleting.deleting = true;
        let plan = plan_instances(
            Some(&only_a),
            &json!(["10.0.0.1"]),
            &Value::Null,
            &[node("a"), node("b")],
            &[deleting, inst("b1", Some("b"), "t")],
        );
        assert_eq!(plan.create, ["a"]);
        assert_eq!(plan.delete, ["b1"]);
    }
    #[test]
    fn hashes_are_stable_and_names_bounded() {
        let t = json!({"metadata": {"labels": {"foo": "bar"}}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(template_hash(&t), template_hash(&t.clone()));
        assert_ne!(template_hash(&t), template_hash(&json!({})));
        assert!(template_hash(&t).bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        let mut rng = rand::rng();
        let long = "x".repeat(80);
        let n = instance_name(&long, &mut rng);
        assert_eq!(n.len(), 63);
        assert!(n.starts_with(&format!("{}-", "x".repeat(52))));
        assert_ne!(instance_name("lb-a", &mut rng), instance_name("lb-a", &mut rng));
    }
}
