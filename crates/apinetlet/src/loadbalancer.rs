//! ironcore LoadBalancer (+ LoadBalancerRouting) → apinet LoadBalancer + LoadBalancerRouting, `status.ips`
//! back (upstream ironcore-net's apinetlet LoadBalancer controller, `apinetlet/controllers`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::meta::{APINET_API_VERSION, Source, controller_ref, derived_metadata};
use crate::origin;
use crate::provider_id::NetworkInterfaceId;

/// Topology key of the instance anti-affinity every LoadBalancer template carries.
pub const ZONE_TOPOLOGY_KEY: &str = "topology.core.apinet.ironcore.dev/zone";

/// A LoadBalancer could not be mapped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadBalancerError {
    /// `spec.type` is neither Public nor Internal.
    #[error("unsupported load balancer type {0:?}")]
    UnsupportedType(String),
}

/// One IP source of an Internal LoadBalancer, already resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InternalIp {
    /// `value`, with its family.
    Value {
        /// The address.
        ip: String,
        /// Its family.
        family: String,
    },
    /// `ephemeral`, resolved through the Allocated ipam Prefix `<lb>-<i>` controlled by the LB.
    Allocated {
        /// The prefix's address.
        ip: String,
        /// The prefix's family.
        family: String,
    },
    /// `ephemeral` whose Prefix is missing, foreign or not yet Allocated (skipped).
    Pending,
}

/// The ironcore LoadBalancer being mapped.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadBalancerView {
    /// The source object.
    pub source: Source,
    /// `spec.type`.
    pub lb_type: String,
    /// `spec.ipFamilies`.
    pub ip_families: Vec<String>,
    /// `spec.ips`, resolved (Internal only).
    pub internal_ips: Vec<InternalIp>,
    /// `spec.ports`, verbatim.
    pub ports: Vec<Value>,
}

/// A routing destination translated for apinet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The destination IP.
    pub ip: String,
    /// The apinet NetworkInterface behind it, when its providerID parses.
    pub target: Option<NetworkInterfaceId>,
}

/// Translates an ironcore routing destination: the target comes from the NIC's apinet provider ID.
pub fn destination(ip: &str, provider_id: Option<&str>) -> Destination {
    Destination {
        ip: ip.to_owned(),
        target: provider_id.and_then(|p| p.parse().ok()),
    }
}

/// The apply body of the apinet LoadBalancer.
///
/// Public LBs get one `{name: ipv4|ipv6, ipFamily}` entry per family (the API server allocates); Internal ones
/// the resolved `spec.ips` as `ip-<i>`. The template repels instances of the same LB across zones; with
/// `node_affinity_aware`, it is also restricted to the nodes of the routing destinations (destinations without
/// a parsable target are ignored; upstream panics on them).
pub fn desired_load_balancer(
    apinet_namespace: &str,
    lb: &LoadBalancerView,
    apinet_network: &str,
    destinations: &[Destination],
    node_affinity_aware: bool,
) -> Result<Value, LoadBalancerError> {
    let ips: Vec<Value> = match lb.lb_type.as_str() {
        "Public" => lb
            .ip_families
            .iter()
            .map(|f| json!({ "name": f.to_lowercase(), "ipFamily": f }))
            .collect(),
        "Internal" => lb
            .internal_ips
            .iter()
            .enumerate()
            .filter_map(|(i, src)| match src {
                InternalIp::Value { ip, family } | InternalIp::Allocated { ip, family } => {
                    Some(json!({ "name": format!("ip-{i}"), "ipFamily": family, "ip": ip }))
                }
                InternalIp::Pending => None,
            })
            .collect(),
        other => return Err(LoadBalancerError::UnsupportedType(other.to_owned())),
    };
    let data = lb.source.origin_data();
    let labels = origin::LOAD_BALANCER.labels(&data);
    let annotations = origin::LOAD_BALANCER.annotations(&data);
    let mut affinity = json!({
        "instanceAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": { "matchLabels": labels },
                "topologyKey": ZONE_TOPOLOGY_KEY,
            }],
        },
    });
    if node_affinity_aware {
        let nodes: BTreeSet<&str> = destinations
            .iter()
            .filter_map(|d| d.target.as_ref().map(|t| t.node.as_str()))
            .collect();
        if !nodes.is_empty() {
            let terms: Vec<Value> = nodes
                .into_iter()
                .map(|n| json!({ "matchFields": [{ "key": "metadata.name", "operator": "In", "values": [n] }] }))
                .collect();
            affinity["nodeAffinity"] =
                json!({ "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": terms } });
        }
    }
    let mut spec = json!({
        "type": lb.lb_type,
        "networkRef": { "name": apinet_network },
        "ips": ips,
        "selector": { "matchLabels": labels },
        "template": {
            "metadata": { "labels": labels, "annotations": annotations },
            "spec": { "affinity": affinity },
        },
    });
    if !lb.ports.is_empty() {
        spec["ports"] = json!(lb.ports);
    }
    Ok(json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "LoadBalancer",
        "metadata": derived_metadata(apinet_namespace, origin::LOAD_BALANCER, &lb.source),
        "spec": spec,
    }))
}

/// The apply body of the apinet LoadBalancerRouting, controlled by the apinet LB with `apinet_uid`.
pub fn desired_routing(
    apinet_namespace: &str,
    lb: &Source,
    apinet_uid: &str,
    destinations: &[Destination],
) -> Value {
    let mut metadata = derived_metadata(apinet_namespace, origin::LOAD_BALANCER, lb);
    metadata["ownerReferences"] = json!([controller_ref("LoadBalancer", &lb.uid, apinet_uid)]);
    let destinations: Vec<Value> = destinations
        .iter()
        .map(|d| {
            let mut v = json!({ "ip": d.ip });
            if let Some(t) = &d.target {
                v["targetRef"] = json!({ "uid": t.uid, "name": t.name, "nodeRef": { "name": t.node } });
            }
            v
        })
        .collect();
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "LoadBalancerRouting",
        "metadata": metadata,
        "destinations": destinations,
    })
}

/// Carries the addresses the API server already allocated for `body`'s public IP entries (matched by name)
/// from the `current` apinet LoadBalancer into the apply body.
///
/// An entry applied without `ip` asks the API server for a fresh address; re-applying the body as computed
/// would therefore hand the LoadBalancer a new address on every reconcile (and release the old one).
pub fn keep_allocated_ips(body: &mut Value, current: Option<&Value>) {
    let Some(current) = current
        .and_then(|c| c.pointer("/spec/ips"))
        .and_then(Value::as_array)
    else {
        return;
    };
    let Some(ips) = body.pointer_mut("/spec/ips").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in ips.iter_mut().filter(|e| e.get("ip").is_none_or(Value::is_null)) {
        let allocated = current
            .iter()
            .find(|c| c.get("name") == entry.get("name") && c.get("ipFamily") == entry.get("ipFamily"))
            .and_then(|c| c.get("ip"))
            .filter(|ip| ip.is_string());
        if let Some(ip) = allocated {
            entry["ip"] = ip.clone();
        }
    }
}

/// The status merge patch mirroring the apinet LB's IPs, or `None` if unchanged.
pub fn status_patch(current: &[String], apinet_ips: &[String]) -> Option<Value> {
    (current != apinet_ips).then(|| json!({ "status": { "ips": apinet_ips } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(lb_type: &str) -> LoadBalancerView {
        LoadBalancerView {
            source: Source {
                namespace: "ns".into(),
                name: "lb".into(),
                uid: "lb-uid".into(),
            },
            lb_type: lb_type.into(),
            ip_families: vec!["IPv4".into()],
            internal_ips: vec![],
            ports: vec![],
        }
    }

    #[test]
    fn allocated_public_ips_are_kept_on_reapply() {
        let mut body = desired_load_balancer("apinet", &lb("Public"), "n", &[], false).unwrap();
        let current = json!({"spec": {"ips": [{"name": "ipv4", "ipFamily": "IPv4", "ip": "192.0.2.7"}]}});
        keep_allocated_ips(&mut body, Some(&current));
        assert_eq!(
            body["spec"]["ips"],
            json!([{"name": "ipv4", "ipFamily": "IPv4", "ip": "192.0.2.7"}])
        );
        let mut fresh = desired_load_balancer("apinet", &lb("Public"), "n", &[], false).unwrap();
        keep_allocated_ips(&mut fresh, None);
        assert_eq!(
            fresh["spec"]["ips"],
            json!([{"name": "ipv4", "ipFamily": "IPv4"}])
        );
        let other_family =
            json!({"spec": {"ips": [{"name": "ipv4", "ipFamily": "IPv6", "ip": "2001:db8::1"}]}});
        keep_allocated_ips(&mut fresh, Some(&other_family));
        assert_eq!(
            fresh["spec"]["ips"],
            json!([{"name": "ipv4", "ipFamily": "IPv4"}])
        );
    }

    #[test]
    fn conformance_public_lb() {
        let v = desired_load_balancer("apinet", &lb("Public"), "net-uid", &[], true).unwrap();
        let labels = json!({"apinetlet.ironcore.dev/loadbalancer-uid": "lb-uid", "apinetlet.ironcore.dev/loadbalancer-namespace": "ns"});
        assert_eq!(v["spec"]["ips"], json!([{"name": "ipv4", "ipFamily": "IPv4"}]));
        assert_eq!(v["spec"]["selector"], json!({"matchLabels": labels}));
        assert_eq!(
            v["spec"]["template"],
            json!({
                "metadata": {"labels": labels, "annotations": {"apinetlet.ironcore.dev/loadbalancer-name": "lb"}},
                "spec": {"affinity": {"instanceAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": labels}, "topologyKey": ZONE_TOPOLOGY_KEY}]}}},
            })
        );
        assert!(v["spec"].get("ports").is_none());
    }

    #[test]
    fn conformance_internal_lbs() {
        let mut l = lb("Internal");
        l.internal_ips = vec![
            InternalIp::Value {
                ip: "10.0.0.1".into(),
                family: "IPv4".into(),
            },
            InternalIp::Pending,
            InternalIp::Allocated {
                ip: "10.0.0.2".into(),
                family: "IPv4".into(),
            },
        ];
        let v = desired_load_balancer("apinet", &l, "n", &[], false).unwrap();
        assert_eq!(
            v["spec"]["ips"],
            json!([{"name": "ip-0", "ipFamily": "IPv4", "ip": "10.0.0.1"}, {"name": "ip-2", "ipFamily": "IPv4", "ip": "10.0.0.2"}])
        );
        assert!(desired_load_balancer("apinet", &lb("Other"), "n", &[], false).is_err());
    }

    #[test]
    fn conformance_node_affinity_and_routing() {
        let dests = [
            destination(
                "192.168.0.2",
                Some("ironcore-net://apinet/second-apinet-nic-name/second-node-name/second-metalnet-nic-uid"),
            ),
            destination(
                "192.168.0.1",
                Some("ironcore-net://apinet/first-apinet-nic-name/first-node-name/first-metalnet-nic-uid"),
            ),
            destination("192.168.0.3", Some("garbage")),
        ];
        let v = desired_load_balancer("apinet", &lb("Public"), "n", &dests, true).unwrap();
        assert_eq!(
            v["spec"]["template"]["spec"]["affinity"]["nodeAffinity"],
            json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["first-node-name"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["second-node-name"]}]},
            ]}})
        );
        let r = desired_routing("apinet", &lb("Public").source, "apinet-lb-uid", &dests[..2]);
        assert_eq!(
            r["metadata"]["ownerReferences"],
            json!([{"apiVersion": APINET_API_VERSION, "kind": "LoadBalancer", "name": "lb-uid", "uid": "apinet-lb-uid", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(
            r["destinations"][1],
            json!({"ip": "192.168.0.1", "targetRef": {"uid": "first-metalnet-nic-uid", "name": "first-apinet-nic-name", "nodeRef": {"name": "first-node-name"}}})
        );
        assert!(desired_load_balancer("apinet", &lb("Public"), "n", &dests, false).unwrap()["spec"]["template"]["spec"]["affinity"]
            .get("nodeAffinity")
            .is_none());
    }
}
