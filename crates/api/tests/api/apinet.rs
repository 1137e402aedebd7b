//! `core.apinet.ironcore.dev`: at least five rejected objects per kind with their exact field errors, the
//! immutability rules, and the cases of upstream ironcore-net
//! `internal/apis/core/validation/networkinterface_test.go`.

use crate::common;

use common::{Case, assert_contains, descriptor, label_msg, run_create_cases, subdomain_msg, update_errors};
use serde_json::{Value, json};

const G: &str = "core.apinet.ironcore.dev";

fn obj(kind: &str, name: &str, ns: Option<&str>, body: Value) -> Value {
    let mut o =
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = ns {
        o["metadata"]["namespace"] = json!(ns);
    }
    for (k, v) in body.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

fn ns(kind: &str, spec: Value) -> Value {
    obj(kind, "foo", Some("ns"), json!({"spec": spec}))
}

fn top(kind: &str, fields: Value) -> Value {
    obj(kind, "foo", Some("ns"), fields)
}

fn namespaced_meta(kind: &str, body: Value) -> Vec<Case> {
    vec![
        Case {
            name: "missing namespace",
            object: obj(kind, "foo", None, body.clone()),
            expected: vec!["metadata.namespace: Required value".into()],
        },
        Case {
            name: "dotted name",
            object: obj(kind, "a.b", Some("ns"), body),
            expected: vec![label_msg("metadata.name", "a.b")],
        },
    ]
}

#[test]
fn network() {
    let mut cases = namespaced_meta("Network", json!({"spec": {}}));
    cases.extend([
        Case { name: "non-canonical id", object: ns("Network", json!({"id": "0300"})),
            expected: vec![r#"spec.id: Invalid value: "0300": must be a canonical decimal VNI (an int32 without sign or leading zeros)"#.into()] },
        Case { name: "non-numeric id", object: ns("Network", json!({"id": "abc"})),
            expected: vec![r#"spec.id: Invalid value: "abc": must be a canonical decimal VNI (an int32 without sign or leading zeros)"#.into()] },
        Case { name: "bad peer id", object: ns("Network", json!({"peerings": [{"name": "p", "id": "-1"}]})),
            expected: vec![r#"spec.peerings[0].id: Invalid value: "-1": must be a canonical decimal VNI (an int32 without sign or leading zeros)"#.into()] },
        Case { name: "duplicate peering", object: ns("Network", json!({"peerings": [{"name": "p", "id": "300"}, {"name": "p", "id": "301"}]})),
            expected: vec![r#"spec.peerings[1].name: Duplicate value: "p""#.into()] },
        Case { name: "id of the wrong type", object: ns("Network", json!({"id": 300})),
            expected: vec![r#"spec.id: Invalid value: 300: invalid type: integer `300`, expected a string"#.into()] },
    ]);
    run_create_cases(G, "Network", cases);
    let d = descriptor(G, "Network");
    assert!(
        common::create_errors(&d, ns("Network", json!({}))).is_empty(),
        "id is allocated later"
    );
    let errs = update_errors(
        &d,
        ns("Network", json!({"id": "301"})),
        ns("Network", json!({"id": "300"})),
    );
    assert_contains(&errs, "spec.id: Forbidden: field is immutable", "id immutable");
}

#[test]
fn network_id() {
    let nid = |name: &str| {
        obj(
            "NetworkID",
            name,
            None,
            json!({"spec": {"claimRef": {"name": "n"}}}),
        )
    };
    let msg = |n: &str| {
        format!(
            "metadata.name: Invalid value: {n:?}: must be a canonical decimal VNI (an int32 without sign or leading zeros)"
        )
    };
    run_create_cases(
        G,
        "NetworkID",
        vec![
            Case {
                name: "leading zero",
                object: nid("0200"),
                expected: vec![msg("0200")],
            },
            Case {
                name: "not a number",
                object: nid("abc"),
                expected: vec![msg("abc")],
            },
            Case {
                name: "sign",
                object: nid("+200"),
                expected: vec![msg("+200")],
            },
            Case {
                name: "overflow",
                object: nid("4294967296"),
                expected: vec![msg("4294967296")],
            },
            Case {
                name: "namespaced",
                object: obj("NetworkID", "200", Some("ns"), json!({"spec": {}})),
                expected: vec!["metadata.namespace: Forbidden: not allowed on this type".into()],
            },
        ],
    );
    common::assert_valid(G, "NetworkID", nid("200"));
    let d = descriptor(G, "NetworkID");
    let errs = update_errors(
        &d,
        obj(
            "NetworkID",
            "200",
            None,
            json!({"spec": {"claimRef": {"name": "m"}}}),
        ),
        nid("200"),
    );
    assert_contains(
        &errs,
        "spec.claimRef: Forbidden: field is immutable",
        "claimRef immutable",
    );
    assert_eq!(
        ironnet_api::apinet::networkid::canonical_name("0300").as_deref(),
        Some("300")
    );
    assert_eq!(ironnet_api::apinet::networkid::DEFAULT_MIN_VNI, 200);
    assert_eq!(ironnet_api::apinet::networkid::DEFAULT_MAX_VNI, 16_777_215);
}

#[test]
fn ip() {
    let mut cases = namespaced_meta("IP", json!({"spec": {"type": "Public", "ipFamily": "IPv4"}}));
    cases.extend([
        Case {
            name: "no type",
            object: ns("IP", json!({"ipFamily": "IPv4"})),
            expected: vec!["spec.type: Required value: must specify type".into()],
        },
        Case {
            name: "no family",
            object: ns("IP", json!({"type": "Public"})),
            expected: vec!["spec.ipFamily: Required value: must specify ip family".into()],
        },
        Case {
            name: "family mismatch",
            object: ns(
                "IP",
                json!({"type": "Public", "ipFamily": "IPv6", "ip": "10.0.0.1"}),
            ),
            expected: vec![
                r#"spec.ip: Invalid value: "10.0.0.1": expected ip family IPv6 but got IPv4"#.into(),
            ],
        },
        Case {
            name: "bad type",
            object: ns("IP", json!({"type": "Private", "ipFamily": "IPv4"})),
            expected: vec![r#"spec.type: Unsupported value: "Private": supported values: "Public""#.into()],
        },
        Case {
            name: "bad claimer name",
            object: ns(
                "IP",
                json!({"type": "Public", "ipFamily": "IPv4", "claimRef": {"name": "A", "uid": "u"}}),
            ),
            expected: vec![subdomain_msg("spec.claimRef.name", "A")],
        },
    ]);
    run_create_cases(G, "IP", cases);
    let d = descriptor(G, "IP");
    let mut o = ns("IP", json!({"type": "Public", "ip": "2001:db8::1"}));
    (d.default)(&mut o).unwrap();
    assert_eq!(o["spec"]["ipFamily"], json!("IPv6"));
    let v = |ip: &str| ns("IP", json!({"type": "Public", "ipFamily": "IPv4", "ip": ip}));
    assert_contains(
        &update_errors(&d, v("10.0.0.2"), v("10.0.0.1")),
        r#"spec.ip: Invalid value: "10.0.0.2": field is immutable"#,
        "ip immutable",
    );
    let claimed = ns(
        "IP",
        json!({"type": "Public", "ipFamily": "IPv4", "ip": "10.0.0.1", "claimRef": {"name": "x", "uid": "u"}}),
    );
    assert!(
        update_errors(&d, claimed, v("10.0.0.1")).is_empty(),
        "claimRef is mutable"
    );
}

#[test]
fn ip_address() {
    let a = |name: &str, ip: Value| {
        obj(
            "IPAddress",
            name,
            None,
            json!({"spec": {"ip": ip, "claimRef": {"name": "x"}}}),
        )
    };
    run_create_cases(G, "IPAddress", vec![
        Case { name: "non-canonical name", object: a("2001:DB8::1", json!("2001:db8::1")),
            expected: vec![r#"metadata.name: Invalid value: "2001:DB8::1": must be in canonical form (2001:db8::1)"#.into()] },
        Case { name: "not an IP", object: a("foo", json!("10.0.0.1")),
            expected: vec![r#"metadata.name: Invalid value: "foo": must be a valid IP address: ParseAddr("foo"): invalid IP address"#.into()] },
        Case { name: "ip differs from name", object: a("10.0.0.1", json!("10.0.0.2")),
            expected: vec![r#"spec.ip: Invalid value: "10.0.0.2": must equal the object name"#.into()] },
        Case { name: "no ip", object: a("10.0.0.1", Value::Null), expected: vec!["spec.ip: Required value".into()] },
        Case { name: "namespaced", object: obj("IPAddress", "10.0.0.1", Some("ns"), json!({"spec": {"ip": "10.0.0.1"}})),
            expected: vec!["metadata.namespace: Forbidden: not allowed on this type".into()] },
    ]);
    let d = descriptor(G, "IPAddress");
    let errs = update_errors(
        &d,
        obj(
            "IPAddress",
            "10.0.0.1",
            None,
            json!({"spec": {"ip": "10.0.0.1", "claimRef": {"name": "y"}}}),
        ),
        a("10.0.0.1", json!("10.0.0.1")),
    );
    assert_contains(
        &errs,
        "spec.claimRef: Forbidden: field is immutable",
        "claimRef immutable (upstream path typo spec.clamRef)",
    );
}

fn lb(spec: Value) -> Value {
    ns("LoadBalancer", spec)
}

fn lb_ok() -> Value {
    json!({"type": "Public", "networkRef": {"name": "n"}, "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}}})
}

#[test]
fn load_balancer() {
    let with = |k: &str, v: Value| {
        let mut s = lb_ok();
        s[k] = v;
        lb(s)
    };
    let mut cases = namespaced_meta("LoadBalancer", json!({"spec": lb_ok()}));
    cases.extend([
        Case { name: "no type", object: with("type", Value::Null), expected: vec!["spec.type: Required value: must specify type".into()] },
        Case { name: "no selector", object: with("selector", Value::Null), expected: vec!["spec.selector: Required value".into()] },
        Case { name: "selector does not match template", object: with("selector", json!({"matchLabels": {"a": "c"}})),
            expected: vec![r#"spec.template.metadata.labels: Invalid value: {"a":"b"}: `selector` does not match template `labels`"#.into()] },
        Case { name: "ip family missing", object: with("ips", json!([{"name": "ip-1"}])),
            expected: vec!["spec.ips[0].ipFamily: Required value: must specify ip family".into()] },
        Case { name: "ip family mismatch", object: with("ips", json!([{"name": "ip-1", "ipFamily": "IPv6", "ip": "10.0.0.1"}])),
            expected: vec![r#"spec.ips[0].ip: Invalid value: "10.0.0.1": expected ip family IPv6 but got IPv4"#.into()] },
        Case { name: "port zero", object: with("ports", json!([{"port": 0}])),
            expected: vec!["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive".into()] },
    ]);
    run_create_cases(G, "LoadBalancer", cases);
    let d = descriptor(G, "LoadBalancer");
    // A Public LB with an IPv4 entry, selector {} and an empty template is valid (upstream ironcore-net
    // `internal/app/core_test.go` creates such LBs).
    common::assert_valid(
        G,
        "LoadBalancer",
        lb(
            json!({"type": "Public", "selector": {}, "template": {}, "ips": [{"name": "ip-1", "ipFamily": "IPv4"}]}),
        ),
    );
    let mut o = lb(json!({"type": "Internal", "selector": {}, "ips": [{"name": "a", "ip": "10.0.0.1"}]}));
    (d.default)(&mut o).unwrap();
    assert_eq!(o["spec"]["ips"][0]["ipFamily"], json!("IPv4"));
    let errs = update_errors(&d, with("type", json!("Internal")), lb(lb_ok()));
    assert_contains(
        &errs,
        "spec.type: Forbidden: field is immutable",
        "type immutable",
    );
    let errs = update_errors(&d, with("networkRef", json!({"name": "m"})), lb(lb_ok()));
    assert_contains(
        &errs,
        "spec.networkRef: Forbidden: field is immutable",
        "networkRef immutable",
    );
}

#[test]
fn load_balancer_routing() {
    run_create_cases(
        G,
        "LoadBalancerRouting",
        vec![
            Case {
                name: "dotted name",
                object: obj("LoadBalancerRouting", "a.b", Some("ns"), json!({})),
                expected: vec![label_msg("metadata.name", "a.b")],
            },
            Case {
                name: "missing namespace",
                object: obj("LoadBalancerRouting", "a", None, json!({})),
                expected: vec!["metadata.namespace: Required value".into()],
            },
            Case {
                name: "destination without ip",
                object: top("LoadBalancerRouting", json!({"destinations": [{}]})),
                expected: vec!["destinations[0].ip: Required value".into()],
            },
            Case {
                name: "malformed ip",
                object: top("LoadBalancerRouting", json!({"destinations": [{"ip": "x"}]})),
                expected: vec![
                    r#"destinations[0].ip: Invalid value: "x": ParseAddr("x"): invalid IP address"#.into(),
                ],
            },
            Case {
                name: "bad target",
                object: top(
                    "LoadBalancerRouting",
                    json!({"destinations": [{"ip": "10.0.0.1", "targetRef": {"name": "A", "uid": "u", "nodeRef": {"name": "n"}}}]}),
                ),
                expected: vec![subdomain_msg("destinations[0].targetRef.name", "A")],
            },
            Case {
                name: "bad node",
                object: top(
                    "LoadBalancerRouting",
                    json!({"destinations": [{"ip": "10.0.0.1", "targetRef": {"name": "a", "uid": "u", "nodeRef": {"name": "N_"}}}]}),
                ),
                expected: vec![subdomain_msg("destinations[0].targetRef.nodeRef.name", "N_")],
            },
        ],
    );
}

fn ngw(spec: Value) -> Value {
    ns("NATGateway", spec)
}

#[test]
fn nat_gateway() {
    let base = json!({"ipFamily": "IPv4", "networkRef": {"name": "n"}, "portsPerNetworkInterface": 64});
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        ngw(s)
    };
    let mut cases = namespaced_meta("NATGateway", json!({"spec": base.clone()}));
    cases.extend([
        Case {
            name: "no family",
            object: with("ipFamily", Value::Null),
            expected: vec!["spec.ipFamily: Required value: must specify ip family".into()],
        },
        Case {
            name: "ppn not a power of two",
            object: with("portsPerNetworkInterface", json!(100)),
            expected: vec![
                "spec.portsPerNetworkInterface: Invalid value: 100: 100 is not a power of 2".into(),
            ],
        },
        Case {
            name: "ppn negative",
            object: with("portsPerNetworkInterface", json!(-64)),
            expected: vec![
                "spec.portsPerNetworkInterface: Invalid value: -64: -64 is not a power of 2".into(),
            ],
        },
        Case {
            name: "ip family mismatch",
            object: with("ips", json!([{"name": "a", "ip": "2001:db8::1"}])),
            expected: vec![
                r#"spec.ips[0].ip: Invalid value: "2001:db8::1": expected ip family IPv4 but got IPv6"#
                    .into(),
            ],
        },
        Case {
            name: "duplicate ip name",
            object: with("ips", json!([{"name": "a"}, {"name": "a"}])),
            expected: vec![r#"spec.ips[1].name: Duplicate value: "a""#.into()],
        },
    ]);
    run_create_cases(G, "NATGateway", cases);
    let d = descriptor(G, "NATGateway");
    // 0 (unset) defaults to 2048 instead of dividing by zero downstream; 64512 (the whole range) is accepted.
    let mut o = with("portsPerNetworkInterface", json!(0));
    (d.default)(&mut o).unwrap();
    assert_eq!(o["spec"]["portsPerNetworkInterface"], json!(2048));
    common::assert_valid(G, "NATGateway", with("portsPerNetworkInterface", json!(64512)));
    let errs = update_errors(&d, with("ipFamily", json!("IPv6")), ngw(base.clone()));
    assert_contains(
        &errs,
        "spec.ipFamily: Forbidden: field is immutable",
        "family immutable",
    );
}

#[test]
fn nat_gateway_autoscaler() {
    let a = |spec: Value| ns("NATGatewayAutoscaler", spec);
    let mut cases = namespaced_meta(
        "NATGatewayAutoscaler",
        json!({"spec": {"natGatewayRef": {"name": "g"}}}),
    );
    cases.extend([
        Case {
            name: "no gateway",
            object: a(json!({})),
            expected: vec!["spec.natGatewayRef.name: Required value: must specify nat gateway ref".into()],
        },
        Case {
            name: "negative min",
            object: a(json!({"natGatewayRef": {"name": "g"}, "minPublicIPs": -1})),
            expected: vec!["spec.minPublicIPs: Invalid value: -1: must be greater than or equal to 0".into()],
        },
        Case {
            name: "negative max",
            object: a(json!({"natGatewayRef": {"name": "g"}, "maxPublicIPs": -1})),
            expected: vec!["spec.maxPublicIPs: Invalid value: -1: must be greater than or equal to 0".into()],
        },
        Case {
            name: "min above max",
            object: a(json!({"natGatewayRef": {"name": "g"}, "minPublicIPs": 3, "maxPublicIPs": 1})),
            expected: vec!["spec.maxPublicIPs: Invalid value: 1: must >= minPublicIPs".into()],
        },
        Case {
            name: "bad gateway name",
            object: a(json!({"natGatewayRef": {"name": "G"}})),
            expected: vec![label_msg("spec.natGatewayRef.name", "G")],
        },
    ]);
    run_create_cases(G, "NATGatewayAutoscaler", cases);
    common::assert_valid(
        G,
        "NATGatewayAutoscaler",
        a(json!({"natGatewayRef": {"name": "g"}, "minPublicIPs": 1})),
    );
    let d = descriptor(G, "NATGatewayAutoscaler");
    let errs = update_errors(
        &d,
        a(json!({"natGatewayRef": {"name": "h"}})),
        a(json!({"natGatewayRef": {"name": "g"}})),
    );
    assert_contains(
        &errs,
        "spec.natGatewayRef: Forbidden: field is immutable",
        "ref immutable on main updates",
    );
}

#[test]
fn nat_table() {
    let t = |ips: Value| top("NATTable", json!({"ips": ips}));
    let mut cases = namespaced_meta("NATTable", json!({}));
    cases.extend([
        Case {
            name: "no public ip",
            object: t(json!([{"sections": []}])),
            expected: vec!["ips[0].ip: Required value".into()],
        },
        Case {
            name: "section without ip",
            object: t(json!([{"ip": "1.2.3.4", "sections": [{"port": 1024, "endPort": 1087}]}])),
            expected: vec!["ips[0].sections[0].ip: Required value".into()],
        },
        Case {
            name: "port zero",
            object: t(json!([{"ip": "1.2.3.4", "sections": [{"ip": "10.0.0.1", "port": 0, "endPort": 10}]}])),
            expected: vec![
                "ips[0].sections[0].port: Invalid value: 0: must be between 1 and 65535, inclusive".into(),
            ],
        },
        Case {
            name: "end before start",
            object: t(
                json!([{"ip": "1.2.3.4", "sections": [{"ip": "10.0.0.1", "port": 2000, "endPort": 1999}]}]),
            ),
            expected: vec![
                "ips[0].sections[0].endPort: Invalid value: 1999: must be between port and 65535, inclusive"
                    .into(),
            ],
        },
    ]);
    run_create_cases(G, "NATTable", cases);
    common::assert_valid(
        G,
        "NATTable",
        t(
            json!([{"ip": "1.2.3.4", "sections": [{"ip": "10.0.0.1", "port": 1024, "endPort": 1087,
        "targetRef": {"uid": "u", "name": "nic", "nodeRef": {"name": "my-node"}}}]}]),
        ),
    );
}

fn nic(spec: Value) -> Value {
    ns("NetworkInterface", spec)
}

#[test]
fn network_interface() {
    let base = json!({"nodeRef": {"name": "my-node"}, "ips": ["10.0.0.1"]});
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        nic(s)
    };
    let mut cases = namespaced_meta("NetworkInterface", json!({"spec": base.clone()}));
    cases.extend([
        Case {
            name: "no node",
            object: with("nodeRef", json!({})),
            expected: vec!["spec.nodeRef.name: Required value: must specify node ref".into()],
        },
        Case {
            name: "two v4 ips",
            object: with("ips", json!(["10.0.0.1", "10.0.0.2"])),
            expected: vec!["spec.ips[1]: Forbidden: cannot have multiple ips of family IPv4".into()],
        },
        Case {
            name: "7.2.3 bad hostname",
            object: with("hostname", json!("hostname*")),
            expected: vec![label_msg("spec.hostname", "hostname*")],
        },
        Case {
            name: "two public v4",
            object: with(
                "publicIPs",
                json!([{"name": "a", "ipFamily": "IPv4"}, {"name": "b", "ipFamily": "IPv4"}]),
            ),
            expected: vec![
                "spec.publicIPs[1]: Forbidden: cannot have multiple external IPs of family IPv4".into(),
            ],
        },
        Case {
            name: "NAT and public IP of one family",
            object: {
                let mut s = base.clone();
                s["publicIPs"] = json!([{"name": "a", "ipFamily": "IPv4"}]);
                s["natGateways"] = json!([{"ipFamily": "IPv4", "claimRef": {"name": "gw", "uid": "u"}}]);
                nic(s)
            },
            expected: vec![
                "spec.natGateways[0]: Forbidden: cannot have a public IP and a NAT gateway of family IPv4"
                    .into(),
            ],
        },
    ]);
    run_create_cases(G, "NetworkInterface", cases);
    let d = descriptor(G, "NetworkInterface");
    // ips and hostname are immutable (Invalid, as upstream's `networkinterface_test.go`).
    let errs = update_errors(&d, with("ips", json!(["192.168.178.1"])), nic(base.clone()));
    assert_contains(
        &errs,
        r#"spec.ips: Invalid value: ["192.168.178.1"]: field is immutable"#,
        "7.2.1",
    );
    let errs = update_errors(&d, with("hostname", json!("bar")), with("hostname", json!("foo")));
    assert_contains(
        &errs,
        r#"spec.hostname: Invalid value: "bar": field is immutable"#,
        "7.2.2",
    );
    let errs = update_errors(&d, with("nodeRef", json!({"name": "other"})), nic(base.clone()));
    assert_contains(
        &errs,
        "spec.nodeRef: Forbidden: field is immutable",
        "node immutable",
    );
    let mut o = with("publicIPs", json!([{"name": "a", "ip": "10.1.1.1"}]));
    (d.default)(&mut o).unwrap();
    assert_eq!(o["spec"]["publicIPs"][0]["ipFamily"], json!("IPv4"));
}

#[test]
fn network_policy() {
    let p = |spec: Value| ns("NetworkPolicy", spec);
    let mut cases = namespaced_meta(
        "NetworkPolicy",
        json!({"spec": {"networkRef": {"name": "n"}, "policyTypes": ["Ingress"]}}),
    );
    cases.extend([
        Case { name: "no network", object: p(json!({"policyTypes": ["Ingress"]})), expected: vec!["spec.networkRef: Required value: must specify network ref".into()] },
        Case { name: "no policy types", object: p(json!({"networkRef": {"name": "n"}})), expected: vec!["spec.policyTypes: Required value: must specify policy types".into()] },
        Case { name: "negative priority", object: p(json!({"networkRef": {"name": "n"}, "policyTypes": ["Egress"], "priority": -1})),
            expected: vec!["spec.priority: Invalid value: -1: must be greater than or equal to 0".into()] },
        Case { name: "VirtualIP peers are not apinet kinds", object: p(json!({"networkRef": {"name": "n"}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"objectSelector": {"kind": "VirtualIP"}}]}]})),
            expected: vec![r#"spec.egress[0].to[0].objectSelector.kind: Unsupported value: "VirtualIP": supported values: "LoadBalancer", "NetworkInterface""#.into()] },
        Case { name: "unknown policy type", object: p(json!({"networkRef": {"name": "n"}, "policyTypes": ["Sideways"]})),
            expected: vec![r#"spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Ingress", "Egress""#.into()] },
    ]);
    run_create_cases(G, "NetworkPolicy", cases);
    let d = descriptor(G, "NetworkPolicy");
    let with = |n: &str| p(json!({"networkRef": {"name": n}, "policyTypes": ["Ingress"]}));
    assert_contains(
        &update_errors(&d, with("m"), with("n")),
        "spec.networkRef: Forbidden: field is immutable",
        "immutable",
    );
}

#[test]
fn network_policy_rule() {
    let r = |fields: Value| top("NetworkPolicyRule", fields);
    let mut cases = namespaced_meta("NetworkPolicyRule", json!({}));
    cases.extend([
        Case { name: "target without ip", object: r(json!({"targets": [{"targetRef": {"name": "a", "uid": "u"}}]})),
            expected: vec!["targets[0].ip: Required value".into()] },
        Case { name: "negative priority", object: r(json!({"priority": -5})), expected: vec!["priority: Invalid value: -5: must be greater than or equal to 0".into()] },
        Case { name: "object ip family mismatch", object: r(json!({"ingressRule": [{"ips": [{"ipFamily": "IPv6", "prefix": "10.0.0.1/32"}]}]})),
            expected: vec![r#"ingressRule[0].ips[0].prefix: Invalid value: "10.0.0.1/32": expected ip family IPv6 but got IPv4"#.into()] },
        Case { name: "except outside block", object: r(json!({"egressRule": [{"ipBlock": [{"cidr": "10.0.0.0/16", "except": ["11.0.0.0/24"]}]}]})),
            expected: vec!["egressRule[0].ipBlock[0].except[0]: Forbidden: cidr 10.0.0.0/16 does not contain except 11.0.0.0/24".into()] },
        Case { name: "port out of range", object: r(json!({"ingressRule": [{"networkPolicyPorts": [{"port": 70000}]}]})),
            expected: vec!["ingressRule[0].networkPolicyPorts[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive".into()] },
    ]);
    run_create_cases(G, "NetworkPolicyRule", cases);
}

#[test]
fn node() {
    let n = |name: &str| obj("Node", name, None, json!({"spec": {}}));
    run_create_cases(G, "Node", vec![
        Case { name: "uppercase", object: n("Node"), expected: vec![subdomain_msg("metadata.name", "Node")] },
        Case { name: "underscore", object: n("a_b"), expected: vec![subdomain_msg("metadata.name", "a_b")] },
        Case { name: "namespaced", object: obj("Node", "a", Some("ns"), json!({"spec": {}})), expected: vec!["metadata.namespace: Forbidden: not allowed on this type".into()] },
        Case { name: "empty name", object: n(""), expected: vec!["metadata.name: Required value: name or generateName is required".into()] },
        Case { name: "too long", object: n(&"a".repeat(254)), expected: vec![format!("metadata.name: Invalid value: {:?}: must be no more than 253 characters", "a".repeat(254))] },
        Case { name: "bad label", object: obj("Node", "a", None, json!({"metadata": {"name": "a", "labels": {"-x": "y"}}, "spec": {}})),
            expected: vec![r#"metadata.labels: Invalid value: "-x": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#.into()] },
    ]);
    common::assert_valid(G, "Node", n("test-metalnetlet.node-1"));
}

fn instance(spec: Value) -> Value {
    ns("Instance", spec)
}

#[test]
fn instance_kind() {
    let base = json!({"type": "LoadBalancer", "loadBalancerType": "Public", "networkRef": {"name": "n"}, "ips": ["10.0.0.1"]});
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        instance(s)
    };
    let mut cases = namespaced_meta("Instance", json!({"spec": base.clone()}));
    cases.extend([
        Case { name: "no type", object: with("type", Value::Null), expected: vec!["spec.type: Required value: must specify type".into()] },
        Case { name: "no LB type", object: with("loadBalancerType", Value::Null),
            expected: vec!["spec.loadBalancerType: Required value: must specify load balancer type".into()] },
        Case { name: "bad operator", object: with("affinity", json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "Near", "values": ["x"]}]}]}}})),
            expected: vec![r#"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].operator: Unsupported value: "Near": supported values: "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt""#.into()] },
        Case { name: "In without values", object: with("affinity", json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In"}]}]}}})),
            expected: vec!["spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'".into()] },
        Case { name: "anti-affinity without topology key", object: with("affinity", json!({"instanceAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": ""}]}})),
            expected: vec!["spec.affinity.instanceAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty".into()] },
        Case { name: "zero skew", object: with("topologySpreadConstraints", json!([{"maxSkew": 0, "topologyKey": "z", "whenUnsatisfiable": "DoNotSchedule"}])),
            expected: vec!["spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero".into()] },
    ]);
    run_create_cases(G, "Instance", cases);
    let d = descriptor(G, "Instance");
    let scheduled = with("nodeRef", json!({"name": "node-a"}));
    assert!(
        update_errors(&d, scheduled.clone(), instance(base.clone())).is_empty(),
        "nodeRef may be set once"
    );
    assert_contains(
        &update_errors(&d, with("nodeRef", json!({"name": "node-b"})), scheduled),
        "spec.nodeRef: Forbidden: field is immutable",
        "nodeRef immutable once set",
    );
    assert_contains(
        &update_errors(
            &d,
            with("loadBalancerType", json!("Internal")),
            instance(base.clone()),
        ),
        "spec.loadBalancerType: Forbidden: field is immutable",
        "lb type immutable",
    );
}

#[test]
fn daemon_set() {
    let ds = |spec: Value| ns("DaemonSet", spec);
    let tmpl = json!({"metadata": {"labels": {"foo": "bar"}}, "spec": {"type": "LoadBalancer", "loadBalancerType": "Public", "networkRef": {"name": "n"}}});
    let mut cases = namespaced_meta(
        "DaemonSet",
        json!({"spec": {"nodeSelector": {"matchLabels": {"foo": "bar"}}, "template": tmpl.clone()}}),
    );
    cases.extend([
        Case { name: "nil selector", object: ds(json!({"template": tmpl.clone()})), expected: vec!["spec.nodeSelector: Required value".into()] },
        Case { name: "selector mismatch", object: ds(json!({"nodeSelector": {"matchLabels": {"foo": "baz"}}, "template": tmpl.clone()})),
            expected: vec![r#"spec.template.metadata.labels: Invalid value: {"foo":"bar"}: `selector` does not match template `labels`"#.into()] },
        Case { name: "template without type", object: ds(json!({"nodeSelector": {}, "template": {}})),
            expected: vec!["spec.template.spec.type: Required value: must specify type".into()] },
        Case { name: "bad selector", object: ds(json!({"nodeSelector": {"matchExpressions": [{"key": "foo", "operator": "Exists", "values": ["x"]}]}, "template": tmpl.clone()})),
            expected: vec!["spec.nodeSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into()] },
        Case { name: "template port range", object: ds(json!({"nodeSelector": {}, "template": {"spec": {"type": "LoadBalancer", "loadBalancerType": "Public",
                "loadBalancerPorts": [{"protocol": "TCP", "port": 80, "endPort": 70}]}}})),
            expected: vec!["spec.template.spec.loadBalancerPorts[0].endPort: Forbidden: must be greater than or equal to port".into()] },
    ]);
    run_create_cases(G, "DaemonSet", cases);
    common::assert_valid(
        G,
        "DaemonSet",
        ds(json!({"nodeSelector": {"matchLabels": {"foo": "bar"}}, "template": tmpl})),
    );
}
