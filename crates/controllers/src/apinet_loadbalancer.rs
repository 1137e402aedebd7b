//! apinet LoadBalancer → DaemonSet `lb-<name>` (upstream ironcore-net's LoadBalancer controller,
//! `internal/controllers`).
//!
//! Unlike upstream, the DaemonSet keeps the LoadBalancer template's `affinity` and `topologySpreadConstraints`
//! and the selector's `matchExpressions`, so the zone anti-affinity that apinetlet sets takes effect.

use serde_json::{Value, json};

use crate::daemonset::APINET_API_VERSION;

/// Name of the DaemonSet of LoadBalancer `lb`.
pub fn daemonset_name(lb: &str) -> String {
    format!("lb-{lb}")
}

/// The load-balancer fields the DaemonSet is derived from.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadBalancerView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `spec.type` (`Public` / `Internal`).
    pub lb_type: String,
    /// `spec.networkRef.name`.
    pub network: String,
    /// `spec.ips[].ip` (null for unallocated entries).
    pub ips: Vec<Value>,
    /// `spec.ports`, verbatim.
    pub ports: Vec<Value>,
    /// `spec.selector`, verbatim.
    pub selector: Value,
    /// `spec.template`, verbatim.
    pub template: Value,
}

/// The server-side-apply body of the DaemonSet for `lb`.
pub fn desired_daemonset(lb: &LoadBalancerView) -> Value {
    let mut template_spec = lb.template.get("spec").cloned().unwrap_or_else(|| json!({}));
    if !template_spec.is_object() {
        template_spec = json!({});
    }
    let spec = template_spec.as_object_mut().expect("object ensured above");
    spec.insert("type".into(), json!("LoadBalancer"));
    spec.insert("loadBalancerType".into(), json!(lb.lb_type));
    spec.insert("networkRef".into(), json!({ "name": lb.network }));
    spec.insert("ips".into(), json!(lb.ips));
    if lb.ports.is_empty() {
        spec.remove("loadBalancerPorts");
    } else {
        spec.insert("loadBalancerPorts".into(), json!(lb.ports));
    }
    spec.remove("nodeRef");
    let mut selector = json!({});
    for key in ["matchLabels", "matchExpressions"] {
        if let Some(v) = lb.selector.get(key).filter(|v| !v.is_null()) {
            selector[key] = v.clone();
        }
    }
    let mut template_meta = json!({});
    if let Some(labels) = lb.template.pointer("/metadata/labels").filter(|v| !v.is_null()) {
        template_meta["labels"] = labels.clone();
    }
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "DaemonSet",
        "metadata": {
            "namespace": lb.namespace,
            "name": daemonset_name(&lb.name),
            "ownerReferences": [{
                "apiVersion": APINET_API_VERSION,
                "kind": "LoadBalancer",
                "name": lb.name,
                "uid": lb.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "nodeSelector": selector,
            "template": { "metadata": template_meta, "spec": template_spec },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb() -> LoadBalancerView {
        LoadBalancerView {
            namespace: "ns".into(),
            name: "lb".into(),
            uid: "lb-uid".into(),
            lb_type: "Public".into(),
            network: "net".into(),
            ips: vec![json!("10.0.0.1")],
            ports: vec![],
            selector: json!({"matchLabels": {"foo": "bar"}}),
            template: json!({"metadata": {"labels": {"foo": "bar"}}, "spec": {}}),
        }
    }

    #[test]
    fn conformance_daemonset_shape() {
        let ds = desired_daemonset(&lb());
        assert_eq!(ds["metadata"]["name"], "lb-lb");
        assert_eq!(
            ds["spec"],
            json!({
                "nodeSelector": {"matchLabels": {"foo": "bar"}},
                "template": {
                    "metadata": {"labels": {"foo": "bar"}},
                    "spec": {"type": "LoadBalancer", "loadBalancerType": "Public", "networkRef": {"name": "net"}, "ips": ["10.0.0.1"]},
                },
            })
        );
        assert_eq!(ds["metadata"]["ownerReferences"][0]["controller"], true);
    }

    #[test]
    fn template_constraints_and_ports_are_kept() {
        let mut l = lb();
        l.ports = vec![json!({"protocol": "TCP", "port": 80})];
        l.selector =
            json!({"matchLabels": {"foo": "bar"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]});
        l.template["spec"] = json!({
            "affinity": {"instanceAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"foo": "bar"}}, "topologyKey": "topology.core.apinet.ironcore.dev/zone"}]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
        });
        let ds = desired_daemonset(&l);
        let spec = &ds["spec"]["template"]["spec"];
        assert_eq!(
            spec["loadBalancerPorts"],
            json!([{"protocol": "TCP", "port": 80}])
        );
        assert!(spec["affinity"]["instanceAntiAffinity"].is_object());
        assert_eq!(spec["topologySpreadConstraints"][0]["maxSkew"], 1);
        assert_eq!(ds["spec"]["nodeSelector"]["matchExpressions"][0]["key"], "x");
    }
}
