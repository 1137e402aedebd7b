//! `kinds()` lists all 25 kinds, and each CRD carries the names, scope, subresources, printer columns and
//! selectable fields of the specs, with a described schema (the `kubectl explain` text).

use std::collections::BTreeSet;

use ironnet_api::kinds;
use serde_json::Value;

struct Expect {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    columns: &'static [&'static str],
    selectable: &'static [&'static str],
}

const N: &str = "networking.ironcore.dev";
const A: &str = "core.apinet.ironcore.dev";
const M: &str = "networking.metalnet.ironcore.dev";

#[rustfmt::skip]
const EXPECTED: &[Expect] = &[
    Expect { group: N, kind: "Network", plural: "networks", namespaced: true, short: &["net"], status: true, columns: &["State", "ProviderID", "Age"], selectable: &[] },
    Expect { group: N, kind: "NetworkInterface", plural: "networkinterfaces", namespaced: true, short: &["nic"], status: true, columns: &["Network", "Machine", "IPs", "Prefixes", "VirtualIP", "State", "Age"], selectable: &[".spec.networkRef.name", ".spec.machineRef.name"] },
    Expect { group: N, kind: "VirtualIP", plural: "virtualips", namespaced: true, short: &["vip"], status: true, columns: &["ExternalIP", "Age"], selectable: &[".spec.targetRef.name"] },
    Expect { group: N, kind: "LoadBalancer", plural: "loadbalancers", namespaced: true, short: &["lb"], status: true, columns: &["IPs", "Age"], selectable: &[".spec.networkRef.name"] },
    Expect { group: N, kind: "LoadBalancerRouting", plural: "loadbalancerroutings", namespaced: true, short: &["lbr", "lbrt"], status: false, columns: &["Targets", "Age"], selectable: &[] },
    Expect { group: N, kind: "NATGateway", plural: "natgateways", namespaced: true, short: &["ngw"], status: true, columns: &["IPs", "Age"], selectable: &[".spec.networkRef.name"] },
    Expect { group: N, kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true, short: &["netpol"], status: true, columns: &["Network", "Nic-Selector", "Age"], selectable: &[".spec.networkRef.name"] },
    Expect { group: A, kind: "Network", plural: "networks", namespaced: true, short: &[], status: true, columns: &["ID", "Age"], selectable: &[".spec.id"] },
    Expect { group: A, kind: "NetworkID", plural: "networkids", namespaced: false, short: &[], status: false, columns: &["ClaimRef", "Age"], selectable: &[] },
    Expect { group: A, kind: "IP", plural: "ips", namespaced: true, short: &[], status: false, columns: &["Type", "IP", "ClaimRef", "Age"], selectable: &[".spec.ip"] },
    Expect { group: A, kind: "IPAddress", plural: "ipaddresses", namespaced: false, short: &[], status: false, columns: &["ClaimRef", "Age"], selectable: &[] },
    Expect { group: A, kind: "LoadBalancer", plural: "loadbalancers", namespaced: true, short: &[], status: true, columns: &["Type", "Network", "IPs", "Age"], selectable: &[".spec.networkRef.name"] },
    Expect { group: A, kind: "LoadBalancerRouting", plural: "loadbalancerroutings", namespaced: true, short: &[], status: false, columns: &["Age"], selectable: &[] },
    Expect { group: A, kind: "NATGateway", plural: "natgateways", namespaced: true, short: &[], status: true, columns: &["Network", "IPs", "Age"], selectable: &[".spec.networkRef.name"] },
    Expect { group: A, kind: "NATGatewayAutoscaler", plural: "natgatewayautoscalers", namespaced: true, short: &[], status: true, columns: &["NATGateway", "PublicIPs", "Age"], selectable: &[] },
    Expect { group: A, kind: "NATTable", plural: "nattables", namespaced: true, short: &[], status: false, columns: &["Age"], selectable: &[] },
    Expect { group: A, kind: "NetworkInterface", plural: "networkinterfaces", namespaced: true, short: &[], status: true, columns: &["Network", "IPs", "Prefixes", "PublicIPs", "State", "Age"], selectable: &[".spec.networkRef.name", ".spec.nodeRef.name"] },
    Expect { group: A, kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true, short: &[], status: false, columns: &["Network", "Nic-Selector", "Age"], selectable: &[".spec.networkRef.name"] },
    Expect { group: A, kind: "NetworkPolicyRule", plural: "networkpolicyrules", namespaced: true, short: &[], status: false, columns: &["Age"], selectable: &[] },
    Expect { group: A, kind: "Node", plural: "nodes", namespaced: false, short: &[], status: true, columns: &["Age"], selectable: &[] },
    Expect { group: A, kind: "Instance", plural: "instances", namespaced: true, short: &[], status: true, columns: &["Type", "LBType", "Network", "IPs", "Age"], selectable: &[".spec.nodeRef.name", ".spec.networkRef.name"] },
    Expect { group: A, kind: "DaemonSet", plural: "daemonsets", namespaced: true, short: &[], status: true, columns: &["Age"], selectable: &[] },
    Expect { group: M, kind: "Network", plural: "networks", namespaced: true, short: &[], status: true, columns: &["Handle", "Age"], selectable: &[] },
    Expect { group: M, kind: "NetworkInterface", plural: "networkinterfaces", namespaced: true, short: &["ni"], status: true, columns: &["Status", "NodeName", "Network", "Targets", "IPS", "VirtualIP", "Age"], selectable: &[".spec.nodeName", ".spec.networkRef.name"] },
    Expect { group: M, kind: "LoadBalancer", plural: "loadbalancers", namespaced: true, short: &[], status: true, columns: &["Status", "NodeName", "IP", "Type", "Age"], selectable: &[".spec.nodeName", ".spec.networkRef.name"] },
];

/// Every property below `schema` (objects and list items, recursively) has a non-empty description; returns the
/// paths that do not.
fn undescribed(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let p = format!("{path}.{name}");
            if prop
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(p.clone());
            }
            undescribed(prop, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undescribed(items, &format!("{path}[]"), out);
    }
}

#[test]
fn all_25_kinds_with_their_crds() {
    let kinds = kinds();
    assert_eq!(kinds.len(), 25);
    assert_eq!(kinds.len(), EXPECTED.len());
    let names: BTreeSet<String> = kinds
        .iter()
        .map(|k| k.crd.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names.len(), 25, "CRD names are unique");
    for (d, e) in kinds.iter().zip(EXPECTED) {
        let crd = &d.crd;
        let id = format!("{}.{}", e.kind, e.group);
        assert_eq!((d.group(), d.kind()), (e.group, e.kind), "order");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{}.{}", e.plural, e.group).as_str()),
            "{id}"
        );
        assert_eq!(
            crd.spec.scope,
            if e.namespaced { "Namespaced" } else { "Cluster" },
            "{id}"
        );
        let short: Vec<&str> = crd
            .spec
            .names
            .short_names
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        assert_eq!(short, e.short, "{id} short names");
        assert!(
            crd.spec.names.categories.as_ref().is_none_or(Vec::is_empty),
            "{id}: upstream registers no categories"
        );
        assert_eq!(crd.spec.versions.len(), 1, "{id}");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.served && v.storage, "{id}");
        let status = v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some();
        assert_eq!(status, e.status, "{id} status subresource");
        let columns: Vec<&str> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, e.columns, "{id} printer columns");
        let selectable: Vec<&str> = v
            .selectable_fields
            .iter()
            .flatten()
            .map(|f| f.json_path.as_str())
            .collect();
        assert_eq!(selectable, e.selectable, "{id} selectable fields");
        let schema =
            serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap();
        let mut missing = Vec::new();
        for (name, prop) in schema["properties"].as_object().unwrap() {
            if matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            undescribed(prop, name, &mut missing);
        }
        assert!(
            missing.is_empty(),
            "{id}: fields without description: {missing:?}"
        );
    }
}

#[test]
fn descriptors_reject_bodies_that_do_not_decode() {
    let d = kinds()
        .into_iter()
        .find(|k| k.kind() == "LoadBalancerRouting" && k.group() == N)
        .unwrap();
    let mut body = serde_json::json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancerRouting",
        "metadata": {"name": "a", "namespace": "b"}, "destinations": [{"ip": 5}]});
    let before = body.clone();
    let errs = (d.default)(&mut body).unwrap_err();
    assert_eq!(
        errs.to_string(),
        "destinations[0].ip: Invalid value: 5: invalid type: integer `5`, expected a string"
    );
    assert_eq!(body, before, "a failed default leaves the body untouched");
}
