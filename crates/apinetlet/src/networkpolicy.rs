//! ironcore NetworkPolicy → apinet NetworkPolicy + NetworkPolicyRule (upstream ironcore-net's
//! apinetlet NetworkPolicy controller, `apinetlet/controllers`).

use serde_json::{Value, json};

use ironnet_controllers::network_policy::{
    PolicyPeer, PolicyRuleView, PolicyView, ResolvedPolicy, ResolvedRule,
};

use crate::meta::{APINET_API_VERSION, Source, controller_ref, derived_metadata};
use crate::origin;

/// Priority of every policy apinetlet creates.
pub const DEFAULT_PRIORITY: i32 = 1000;

/// A NetworkPolicy could not be translated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetworkPolicyError {
    /// A policy type other than Ingress/Egress.
    #[error("unsupported policy type {0:?}")]
    UnsupportedPolicyType(String),
    /// A field has the wrong JSON shape.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

fn selector_of(v: &Value) -> Value {
    let mut s = json!({});
    for key in ["matchLabels", "matchExpressions"] {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            s[key] = x.clone();
        }
    }
    s
}

fn translate_peer(peer: &Value) -> Value {
    let mut out = json!({});
    if let Some(os) = peer.get("objectSelector").filter(|x| !x.is_null()) {
        let mut sel = selector_of(os);
        sel["kind"] = os.get("kind").cloned().unwrap_or(Value::Null);
        out["objectSelector"] = sel;
    }
    if let Some(block) = peer.get("ipBlock").filter(|x| !x.is_null()) {
        let mut b = json!({ "cidr": block.get("cidr").cloned().unwrap_or(Value::Null) });
        if let Some(e) = block.get("except").filter(|x| !x.is_null()) {
            b["except"] = e.clone();
        }
        out["ipBlock"] = b;
    }
    out
}

fn translate_port(port: &Value) -> Value {
    let mut out = json!({ "port": port.get("port").and_then(Value::as_i64).unwrap_or(0) });
    if let Some(p) = port.get("protocol").filter(|x| !x.is_null()) {
        out["protocol"] = p.clone();
    }
    if let Some(e) = port.get("endPort").filter(|x| !x.is_null()) {
        out["endPort"] = e.clone();
    }
    out
}

fn translate_rules(rules: Option<&Value>, peers_key: &str) -> Result<Vec<Value>, NetworkPolicyError> {
    let Some(rules) = rules.filter(|r| !r.is_null()) else {
        return Ok(Vec::new());
    };
    let rules = rules.as_array().ok_or(NetworkPolicyError::Malformed("rules"))?;
    Ok(rules
        .iter()
        .map(|r| {
            let peers: Vec<Value> = r
                .get(peers_key)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(translate_peer).collect())
                .unwrap_or_default();
            let ports: Vec<Value> = r
                .get("ports")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(translate_port).collect())
                .unwrap_or_default();
            json!({ peers_key: peers, "ports": ports })
        })
        .collect())
}

/// The apply body of the apinet NetworkPolicy for an ironcore policy with `spec` on `apinet_network`.
pub fn desired_network_policy(
    apinet_namespace: &str,
    policy: &Source,
    spec: &Value,
    apinet_network: &str,
) -> Result<Value, NetworkPolicyError> {
    let mut types = Vec::new();
    for t in spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match t.as_str() {
            Some(s @ ("Ingress" | "Egress")) => types.push(s.to_owned()),
            other => {
                return Err(NetworkPolicyError::UnsupportedPolicyType(
                    other.unwrap_or("").to_owned(),
                ));
            }
        }
    }
    Ok(json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": derived_metadata(apinet_namespace, origin::NETWORK_POLICY, policy),
        "spec": {
            "networkRef": { "name": apinet_network },
            "networkInterfaceSelector": selector_of(spec.get("networkInterfaceSelector").unwrap_or(&Value::Null)),
            "priority": DEFAULT_PRIORITY,
            "ingress": translate_rules(spec.get("ingress"), "from")?,
            "egress": translate_rules(spec.get("egress"), "to")?,
            "policyTypes": types,
        },
    }))
}

fn parse_rules(rules: Option<&Value>, peers_key: &str) -> Result<Vec<PolicyRuleView>, NetworkPolicyError> {
    let Some(rules) = rules.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    rules
        .iter()
        .map(|r| {
            let mut peers = Vec::new();
            for p in r.get(peers_key).and_then(Value::as_array).into_iter().flatten() {
                peers.push(
                    match (
                        p.get("objectSelector").filter(|x| !x.is_null()),
                        p.get("ipBlock").filter(|x| !x.is_null()),
                    ) {
                        (Some(os), _) => PolicyPeer::Objects {
                            kind: os
                                .get("kind")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            selector: serde_json::from_value(selector_of(os))
                                .map_err(|_| NetworkPolicyError::Malformed("objectSelector"))?,
                        },
                        (None, Some(b)) => PolicyPeer::IpBlock(b.clone()),
                        (None, None) => PolicyPeer::Empty,
                    },
                );
            }
            let ports = r
                .get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(PolicyRuleView { ports, peers })
        })
        .collect()
}

/// Reads an apinet NetworkPolicy spec (as applied) into the view policy resolution works on.
pub fn policy_view(apinet_spec: &Value) -> Result<PolicyView, NetworkPolicyError> {
    Ok(PolicyView {
        network: apinet_spec
            .pointer("/networkRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        selector: serde_json::from_value(selector_of(
            apinet_spec
                .get("networkInterfaceSelector")
                .unwrap_or(&Value::Null),
        ))
        .map_err(|_| NetworkPolicyError::Malformed("networkInterfaceSelector"))?,
        ingress: parse_rules(apinet_spec.get("ingress"), "from")?,
        egress: parse_rules(apinet_spec.get("egress"), "to")?,
    })
}

fn rule_json(rule: &ResolvedRule) -> Value {
    json!({
        "networkPolicyPorts": rule.ports,
        "ipBlock": rule.ip_blocks,
        "ips": rule.ips.iter().map(|i| json!({ "ipFamily": i.family.as_str(), "prefix": i.prefix })).collect::<Vec<_>>(),
    })
}

/// The apply body of the NetworkPolicyRule of apinet policy `name`/`uid`.
pub fn desired_rule(
    apinet_namespace: &str,
    policy: &Source,
    apinet_policy_uid: &str,
    network: (&str, &str),
    priority: Option<i32>,
    resolved: &ResolvedPolicy,
) -> Value {
    let mut metadata = derived_metadata(apinet_namespace, origin::NETWORK_POLICY, policy);
    metadata["ownerReferences"] = json!([controller_ref("NetworkPolicy", &policy.uid, apinet_policy_uid)]);
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "NetworkPolicyRule",
        "metadata": metadata,
        "networkRef": { "name": network.0, "uid": network.1 },
        "priority": priority.unwrap_or(DEFAULT_PRIORITY),
        "targets": resolved.targets.iter().map(|t| json!({ "ip": t.ip.to_string(), "targetRef": { "name": t.name, "uid": t.uid } })).collect::<Vec<_>>(),
        "ingressRule": resolved.ingress.iter().map(rule_json).collect::<Vec<_>>(),
        "egressRule": resolved.egress.iter().map(rule_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_controllers::network_policy::{PolicyInterfaceView, resolve_policy};
    use std::collections::BTreeMap;

    fn spec() -> Value {
        json!({
            "networkRef": {"name": "net"},
            "networkInterfaceSelector": {"matchLabels": {"app": "target"}},
            "policyTypes": ["Egress", "Ingress"],
            "ingress": [{
                "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 8080, "endPort": 8090}],
                "from": [
                    {"objectSelector": {"kind": "NetworkInterface", "matchLabels": {"rule": "ingress"}}},
                    {"ipBlock": {"cidr": "192.168.1.0/24", "except": ["192.168.1.1/32", "192.168.1.2/32"]}},
                ],
            }],
            "egress": [{
                "ports": [{"protocol": "TCP", "port": 443}],
                "to": [
                    {"objectSelector": {"kind": "NetworkInterface", "matchLabels": {"rule": "egress"}}},
                    {"ipBlock": {"cidr": "10.0.0.0/16"}},
                ],
            }],
        })
    }

    fn nic(name: &str, k: &str, v: &str, ip: &str) -> PolicyInterfaceView {
        PolicyInterfaceView {
            name: name.into(),
            uid: format!("{name}-uid"),
            labels: BTreeMap::from([(k.to_string(), v.to_string())]),
            network: "net-uid".into(),
            ready: true,
            ips: vec![ip.parse().unwrap()],
        }
    }

    #[test]
    fn conformance_policy_and_rule() {
        let src = Source {
            namespace: "ns".into(),
            name: "np".into(),
            uid: "np-uid".into(),
        };
        let np = desired_network_policy("apinet", &src, &spec(), "net-uid").unwrap();
        assert_eq!(np["spec"]["priority"], 1000);
        assert_eq!(np["spec"]["networkRef"]["name"], "net-uid");
        assert_eq!(np["spec"]["policyTypes"], json!(["Egress", "Ingress"]));
        assert_eq!(
            np["spec"]["ingress"][0]["ports"][0],
            json!({"protocol": "TCP", "port": 80})
        );
        assert_eq!(
            np["spec"]["ingress"][0]["from"][0],
            json!({"objectSelector": {"kind": "NetworkInterface", "matchLabels": {"rule": "ingress"}}})
        );
        assert_eq!(
            np["spec"]["egress"][0]["to"][1],
            json!({"ipBlock": {"cidr": "10.0.0.0/16"}})
        );

        let view = policy_view(&np["spec"]).unwrap();
        let nics = [
            nic("a", "rule", "ingress", "192.168.178.50"),
            nic("b", "rule", "egress", "192.168.178.60"),
        ];
        let resolved = resolve_policy(&view, &nics, &[]).unwrap();
        let rule = desired_rule(
            "apinet",
            &src,
            "apinet-np-uid",
            ("net-uid", "apinet-net-uid"),
            None,
            &resolved,
        );
        assert_eq!(
            rule["networkRef"],
            json!({"name": "net-uid", "uid": "apinet-net-uid"})
        );
        assert_eq!(rule["targets"], json!([]));
        assert_eq!(
            rule["ingressRule"],
            json!([{
                "networkPolicyPorts": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 8080, "endPort": 8090}],
                "ipBlock": [{"cidr": "192.168.1.0/24", "except": ["192.168.1.1/32", "192.168.1.2/32"]}],
                "ips": [{"ipFamily": "IPv4", "prefix": "192.168.178.50/32"}],
            }])
        );
        assert_eq!(
            rule["egressRule"][0]["ips"],
            json!([{"ipFamily": "IPv4", "prefix": "192.168.178.60/32"}])
        );
        assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], "apinet-np-uid");
    }

    #[test]
    fn unknown_policy_types_are_errors() {
        let mut s = spec();
        s["policyTypes"] = json!(["Sideways"]);
        let src = Source {
            namespace: "ns".into(),
            name: "np".into(),
            uid: "u".into(),
        };
        assert_eq!(
            desired_network_policy("apinet", &src, &s, "n"),
            Err(NetworkPolicyError::UnsupportedPolicyType("Sideways".into()))
        );
    }
}
