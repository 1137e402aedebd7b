//! `networking.metalnet.ironcore.dev`: at least five rejected objects per kind with their exact field errors.

use crate::common;

use common::{Case, assert_contains, descriptor, run_create_cases, update_errors};
use serde_json::{Value, json};

const G: &str = "networking.metalnet.ironcore.dev";

fn o(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": kind,
        "metadata": {"name": "foo", "namespace": "default"}, "spec": spec})
}

#[test]
fn network() {
    let n = |spec: Value| o("Network", spec);
    run_create_cases(G, "Network", vec![
        Case { name: "no id", object: n(json!({})), expected: vec!["spec.id: Invalid value: 0: must be between 1 and 16777215, inclusive".into()] },
        Case { name: "id too large", object: n(json!({"id": 16777216})), expected: vec!["spec.id: Invalid value: 16777216: must be between 1 and 16777215, inclusive".into()] },
        Case { name: "bad peer", object: n(json!({"id": 5, "peeredIDs": [0]})), expected: vec!["spec.peeredIDs[0]: Invalid value: 0: must be between 1 and 16777215, inclusive".into()] },
        Case { name: "duplicate peered prefix id", object: n(json!({"id": 5, "peeredPrefixes": [{"id": 6}, {"id": 6}]})),
            expected: vec!["spec.peeredPrefixes[1].id: Duplicate value: 6".into()] },
        Case { name: "bad peered prefix", object: n(json!({"id": 5, "peeredPrefixes": [{"id": 6, "prefixes": ["10.0.0.0/33"]}]})),
            expected: vec![r#"spec.peeredPrefixes[0].prefixes[0]: Invalid value: "10.0.0.0/33": netip.ParsePrefix("10.0.0.0/33"): bad bits after slash"#.into()] },
    ]);
    let d = descriptor(G, "Network");
    assert_contains(
        &update_errors(&d, n(json!({"id": 6})), n(json!({"id": 5}))),
        "spec.id: Forbidden: field is immutable",
        "id immutable",
    );
    common::assert_valid(
        G,
        "Network",
        n(json!({"id": 5, "peeredIDs": [6], "peeredPrefixes": [{"id": 6, "prefixes": ["10.0.0.0/24"]}]})),
    );
}

#[test]
fn network_interface() {
    let base = json!({"networkRef": {"name": "net"}, "ipFamilies": ["IPv4"], "ips": ["10.0.0.1"], "nodeName": "node"});
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        o("NetworkInterface", s)
    };
    run_create_cases(G, "NetworkInterface", vec![
        Case { name: "no ips", object: with("ips", json!([])), expected: vec!["spec.ips: Required value: must have at least 1 item".into()] },
        Case { name: "family mismatch", object: with("ipFamilies", json!(["IPv6"])),
            expected: vec![r#"spec.ips[0]: Invalid value: "10.0.0.1": expected ip family IPv6 but got IPv4"#.into()] },
        Case { name: "v6 virtual ip", object: with("virtualIP", json!("2001:db8::1")),
            expected: vec![r#"spec.virtualIP: Invalid value: "2001:db8::1": must be an IPv4 address"#.into()] },
        Case { name: "nat end not after start", object: with("nat", json!({"ip": "1.2.3.4", "port": 1024, "endPort": 1024})),
            expected: vec!["spec.nat.endPort: Invalid value: 1024: must be greater than port (the range end is exclusive)".into()] },
        Case { name: "firewall rule without id", object: with("firewallRules", json!([{"direction": "Ingress", "action": "Accept"}])),
            expected: vec!["spec.firewallRules[0].firewallRuleID: Required value".into()] },
        Case { name: "bad icmp type", object: with("firewallRules", json!([{"firewallRuleID": "a", "direction": "Ingress", "action": "Accept",
                "protocolMatch": {"protocolType": "icmp", "icmp": {"icmpType": 300, "icmpCode": -1}}}])),
            expected: vec!["spec.firewallRules[0].protocolMatch.icmp.icmpType: Invalid value: 300: must be between -1 and 255, inclusive".into()] },
        Case { name: "public rate above total", object: with("meteringRate", json!({"totalRate": 10, "publicRate": 20})),
            expected: vec!["spec.meteringRate.publicRate: Invalid value: 20: must not exceed totalRate".into()] },
        Case { name: "lb target not single", object: with("loadBalancerTargets", json!(["10.0.0.0/24"])),
            expected: vec![r#"spec.loadBalancerTargets[0]: Invalid value: "10.0.0.0/24": must be a single IP (/32 or /128)"#.into()] },
    ]);
    let d = descriptor(G, "NetworkInterface");
    let mut ok = with(
        "firewallRules",
        json!([{"firewallRuleID": "a", "direction": "Egress", "action": "Deny",
        "protocolMatch": {"protocolType": "TCP", "portRange": {"dstPort": 80}}}]),
    );
    (d.default)(&mut ok).unwrap();
    assert_eq!(ok["spec"]["firewallRules"][0]["priority"], json!(1000));
    assert!((d.validate_create)(&ok).is_empty());
}

#[test]
fn load_balancer() {
    let base = json!({"networkRef": {"name": "net"}, "type": "Public", "ipFamily": "IPv4", "ip": "1.2.3.4", "ports": [{"protocol": "TCP", "port": 80}]});
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        o("LoadBalancer", s)
    };
    run_create_cases(
        G,
        "LoadBalancer",
        vec![
            Case {
                name: "no ports",
                object: with("ports", json!([])),
                expected: vec!["spec.ports: Required value: must have at least 1 item".into()],
            },
            Case {
                name: "SCTP not in dpservice",
                object: with("ports", json!([{"protocol": "SCTP", "port": 80}])),
                expected: vec![
                    r#"spec.ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP""#
                        .into(),
                ],
            },
            Case {
                name: "no ip",
                object: with("ip", Value::Null),
                expected: vec!["spec.ip: Required value".into()],
            },
            Case {
                name: "no type",
                object: with("type", Value::Null),
                expected: vec!["spec.type: Required value".into()],
            },
            Case {
                name: "port too large",
                object: with("ports", json!([{"protocol": "UDP", "port": 65536}])),
                expected: vec![
                    "spec.ports[0].port: Invalid value: 65536: must be between 0 and 65535, inclusive".into(),
                ],
            },
            Case {
                name: "no network",
                object: with("networkRef", json!({})),
                expected: vec!["spec.networkRef.name: Required value".into()],
            },
        ],
    );
    common::assert_valid(G, "LoadBalancer", o("LoadBalancer", base));
}
