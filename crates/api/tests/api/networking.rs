//! `networking.ironcore.dev`: the cases of upstream ironcore `internal/apis/networking/validation/*_test.go`
//! and `internal/apis/networking/v1alpha1/defaults_test.go` (and of
//! `internal/apis/compute/validation/machine_test.go`, mapped onto NetworkInterface) plus at least five
//! rejected objects per kind, each with its exact field error.

use crate::common;

use common::{
    Case, assert_contains, assert_no_error_at, descriptor, label_msg, subdomain_msg, update_errors,
};
use serde_json::{Value, json};

const G: &str = "networking.ironcore.dev";

fn obj(kind: &str, name: Option<&str>, ns: Option<&str>, spec: Value) -> Value {
    let mut meta = serde_json::Map::new();
    if let Some(n) = name {
        meta.insert("name".into(), json!(n));
    }
    if let Some(n) = ns {
        meta.insert("namespace".into(), json!(n));
    }
    json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec})
}

/// The `meta3` trio: missing name, missing namespace, invalid name.
fn meta3(kind: &str, spec: Value, label_name: bool) -> Vec<Case> {
    let bad = if label_name {
        label_msg("metadata.name", "foo*")
    } else {
        subdomain_msg("metadata.name", "foo*")
    };
    vec![
        Case {
            name: "missing name",
            object: obj(kind, None, Some("ns"), spec.clone()),
            expected: vec!["metadata.name: Required value: name or generateName is required".into()],
        },
        Case {
            name: "missing namespace",
            object: obj(kind, Some("foo"), None, spec.clone()),
            expected: vec!["metadata.namespace: Required value".into()],
        },
        Case {
            name: "invalid name",
            object: obj(kind, Some("foo*"), Some("ns"), spec),
            expected: vec![bad],
        },
    ]
}

#[test]
fn a1_nic_ephemeral_prefix_length_defaults() {
    let d = descriptor(G, "NetworkInterface");
    let mut o = obj(
        "NetworkInterface",
        Some("nic"),
        Some("ns"),
        json!({
        "networkRef": {"name": "net"}, "ipFamilies": ["IPv4", "IPv6"],
        "ips": [
            {"ephemeral": {"prefixTemplate": {"spec": {"ipFamily": "IPv4", "parentRef": {"name": "parent-v4"}}}}},
            {"ephemeral": {"prefixTemplate": {"spec": {"ipFamily": "IPv6", "parentRef": {"name": "parent-v6"}}}}}
        ]}),
    );
    (d.default)(&mut o).unwrap();
    assert_eq!(
        o["spec"]["ips"][0]["ephemeral"]["prefixTemplate"]["spec"]["prefixLength"],
        json!(32)
    );
    assert_eq!(
        o["spec"]["ips"][1]["ephemeral"]["prefixTemplate"]["spec"]["prefixLength"],
        json!(128)
    );
    assert_eq!(o["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert!((d.validate_create)(&o).is_empty());
}

#[test]
fn nic_families_inferred_from_values_and_template_prefixes() {
    let d = descriptor(G, "NetworkInterface");
    let mut o = obj(
        "NetworkInterface",
        Some("nic"),
        Some("ns"),
        json!({
        "networkRef": {"name": "net"},
        "ips": [{"value": "10.0.0.1"}, {"ephemeral": {"prefixTemplate": {"spec": {"prefix": "2001:db8::1/128"}}}}]}),
    );
    (d.default)(&mut o).unwrap();
    // Upstream appended "" for the template (its family was inferred only afterwards); here it is IPv6.
    assert_eq!(o["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert_eq!(o["status"], Value::Null);
    assert!(
        (d.validate_create)(&o).is_empty(),
        "{:?}",
        common::rendered(&(d.validate_create)(&o))
    );
}

#[test]
fn b_network() {
    let mut cases = meta3("Network", json!({}), false);
    let s = |spec: Value| obj("Network", Some("foo"), Some("ns"), spec);
    cases.extend([
        Case { name: "B4 self peering", object: s(json!({"peerings": [{"name": "p", "networkRef": {"name": "foo"}}]})),
            expected: vec!["spec.peerings[0].networkRef: Forbidden: cannot peer a network with itself".into()] },
        Case { name: "B5 duplicate peering name", object: s(json!({"peerings": [
                {"name": "peering", "networkRef": {"name": "a"}}, {"name": "peering", "networkRef": {"name": "b"}}]})),
            expected: vec![r#"spec.peerings[1].name: Duplicate value: "peering""#.into()] },
        Case { name: "B6 duplicate target", object: s(json!({"peerings": [
                {"name": "a", "networkRef": {"name": "bar"}}, {"name": "b", "networkRef": {"name": "bar"}}]})),
            expected: vec![r#"spec.peerings[1].networkRef: Duplicate value: {"name":"bar"}"#.into()] },
        Case { name: "B7 claims itself", object: s(json!({"incomingPeerings": [{"name": "foo", "namespace": "ns"}]})),
            expected: vec!["spec.incomingPeerings[0]: Forbidden: cannot claim itself".into()] },
        Case { name: "B8 duplicate claim", object: s(json!({"incomingPeerings": [{"name": "bar"}, {"name": "bar"}]})),
            expected: vec![r#"spec.incomingPeerings[1]: Duplicate value: {"name":"bar"}"#.into()] },
        Case { name: "B9 invalid claim name", object: s(json!({"incomingPeerings": [{"name": "bar*"}]})),
            expected: vec![subdomain_msg("spec.incomingPeerings[0].name", "bar*")] },
        Case { name: "B10 invalid claim namespace, no name", object: s(json!({"incomingPeerings": [{"namespace": "ns*"}]})),
            expected: vec![
                label_msg("spec.incomingPeerings[0].namespace", "ns*"),
                "spec.incomingPeerings[0].name: Required value: must specify name".into(),
            ] },
        Case { name: "B11 duplicate prefix name", object: s(json!({"peerings": [{"name": "p", "networkRef": {"name": "bar"},
                "prefixes": [{"name": "peering", "prefix": "10.0.0.0/24"}, {"name": "peering", "prefix": "10.0.1.0/24"}]}]})),
            expected: vec![r#"spec.peerings[0].prefixes[1].name: Duplicate value: "peering""#.into()] },
        Case { name: "B12 prefix without a range", object: s(json!({"peerings": [{"name": "p", "networkRef": {"name": "bar"},
                "prefixes": [{"name": "a", "prefix": null}]}]})),
            expected: vec!["spec.peerings[0].prefixes[0].prefix: Forbidden: must be a valid IP range".into()] },
        Case { name: "B13 duplicate prefixRef", object: s(json!({"peerings": [{"name": "p", "networkRef": {"name": "bar"},
                "prefixes": [{"name": "a", "prefixRef": {"name": "foo"}}, {"name": "b", "prefixRef": {"name": "foo"}}]}]})),
            expected: vec![r#"spec.peerings[0].prefixes[1].prefixRef: Duplicate value: {"name":"foo"}"#.into()] },
        Case { name: "malformed prefix", object: s(json!({"peerings": [{"name": "p", "networkRef": {"name": "bar"},
                "prefixes": [{"name": "a", "prefix": "10.0.0.0"}]}]})),
            expected: vec![r#"spec.peerings[0].prefixes[0].prefix: Invalid value: "10.0.0.0": netip.ParsePrefix("10.0.0.0"): no '/'"#.into()] },
    ]);
    common::run_create_cases(G, "Network", cases);
    // Two literal prefixes are fine (upstream flagged them as duplicate empty prefixRefs).
    common::assert_valid(
        G,
        "Network",
        s(json!({"peerings": [{"name": "p", "networkRef": {"name": "bar"},
        "prefixes": [{"name": "a", "prefix": "10.0.0.0/24"}, {"name": "b", "prefix": "10.0.1.0/24"}]}]})),
    );
}

#[test]
fn b14_b15_network_provider_id_set_once() {
    let d = descriptor(G, "Network");
    let with = |id: &str| obj("Network", Some("foo"), Some("ns"), json!({"providerID": id}));
    let errs = update_errors(&d, with("foo"), with("bar"));
    assert_contains(&errs, "spec.providerID: Forbidden: field is immutable", "B14");
    let errs = update_errors(
        &d,
        with("foo"),
        obj("Network", Some("foo"), Some("ns"), json!({})),
    );
    assert_no_error_at(&errs, "spec.providerID", "B15");
    assert!(errs.is_empty());
}

fn nic(spec: Value) -> Value {
    obj("NetworkInterface", Some("foo"), Some("ns"), spec)
}

fn nic_template(template: Value) -> Value {
    nic(
        json!({"networkRef": {"name": "net"}, "ipFamilies": ["IPv4"], "ips": [{"ephemeral": {"prefixTemplate": template}}]}),
    )
}

#[test]
fn c_network_interface() {
    let mut cases = meta3("NetworkInterface", json!({}), false);
    cases.extend([
        Case { name: "C4/C7 empty spec", object: nic(json!({})), expected: vec![
            "spec.networkRef: Required value: must specify network ref".into(),
            "spec.ipFamilies: Required value: must specify ipFamilies".into(),
        ] },
        Case { name: "C5 invalid networkRef", object: nic(json!({"networkRef": {"name": "foo*"}})),
            expected: vec![subdomain_msg("spec.networkRef.name", "foo*")] },
        Case { name: "C6 invalid machineRef", object: nic(json!({"machineRef": {"name": "foo*"}})),
            expected: vec![label_msg("spec.machineRef.name", "foo*")] },
        Case { name: "C8 unknown family", object: nic(json!({"ipFamilies": ["foo"]})),
            expected: vec![r#"spec.ipFamilies[0]: Unsupported value: "foo": supported values: "IPv4", "IPv6""#.into()] },
        Case { name: "C9 duplicate family", object: nic(json!({"networkRef": {"name": "n"}, "ipFamilies": ["IPv4", "IPv4"]})),
            expected: vec![r#"spec.ipFamilies[1]: Duplicate value: "IPv4""#.into()] },
        Case { name: "C10 template name", object: nic_template(json!({"metadata": {"name": "x"}, "spec": {"ipFamily": "IPv4", "prefix": "10.0.0.1/32"}})),
            expected: vec!["spec.ips[0].ephemeral.prefixTemplate.metadata.name: Forbidden: cannot be set for an ephemeral prefix".into()] },
        Case { name: "C11 template namespace", object: nic_template(json!({"metadata": {"namespace": "x"}, "spec": {"ipFamily": "IPv4", "prefix": "10.0.0.1/32"}})),
            expected: vec!["spec.ips[0].ephemeral.prefixTemplate.metadata.namespace: Forbidden: cannot be set for an ephemeral prefix".into()] },
        Case { name: "C12 template family mismatch", object: nic_template(json!({"spec": {"ipFamily": "IPv6", "parentRef": {"name": "p"}, "prefixLength": 128}})),
            expected: vec!["spec.ips[0].ephemeral.prefixTemplate.spec.ipFamily: Forbidden: has to match network interface ip family".into()] },
        Case { name: "C13 template prefixLength 24", object: nic_template(json!({"spec": {"ipFamily": "IPv4", "parentRef": {"name": "p"}, "prefixLength": 24}})),
            expected: vec!["spec.ips[0].ephemeral.prefixTemplate.spec.prefixLength: Forbidden: must be a single IP".into()] },
        Case { name: "C14 invalid virtualIPRef", object: nic(json!({"virtualIP": {"virtualIPRef": {"name": "foo*"}}})),
            expected: vec![label_msg("spec.virtualIP.virtualIPRef.name", "foo*")] },
        Case { name: "C15 ephemeral VIP without template", object: nic(json!({"virtualIP": {"ephemeral": {}}})),
            expected: vec!["spec.virtualIP.ephemeral.virtualIPTemplate: Required value: must specify virtual ip template".into()] },
        Case { name: "C16 both VIP sources", object: nic(json!({"virtualIP": {"virtualIPRef": {"name": "v"},
                "ephemeral": {"virtualIPTemplate": {"spec": {"type": "Public", "ipFamily": "IPv4"}}}}})),
            expected: vec!["spec.virtualIP.ephemeral: Invalid value: {}: cannot specify multiple sources".into()] },
        Case { name: "IP of the wrong family", object: nic(json!({"networkRef": {"name": "n"}, "ipFamilies": ["IPv6"], "ips": [{"value": "10.0.0.1"}]})),
            expected: vec![r#"spec.ips[0].value: Invalid value: "10.0.0.1": expected ip family IPv6 but got IPv4"#.into()] },
        Case { name: "malformed IP", object: nic(json!({"networkRef": {"name": "n"}, "ips": [{"value": "010.0.0.1"}]})),
            expected: vec![r#"spec.ips[0].value: Invalid value: "010.0.0.1": ParseAddr("010.0.0.1"): invalid IP address"#.into()] },
        Case { name: "families do not match ips", object: nic(json!({"networkRef": {"name": "n"}, "ipFamilies": ["IPv4"], "ips": []})),
            expected: vec!["spec.ips: Invalid value: []: ip families must match ips".into()] },
    ]);
    common::run_create_cases(G, "NetworkInterface", cases);
}

#[test]
fn c17_c21_nic_update_immutability() {
    let d = descriptor(G, "NetworkInterface");
    let base = json!({"networkRef": {"name": "bar"}, "ipFamilies": ["IPv4"], "ips": [{"value": "10.0.0.2"}]});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut s = base.clone();
        f(&mut s);
        nic(s)
    };
    let errs = update_errors(
        &d,
        with(&|s| s["networkRef"]["name"] = json!("foo")),
        nic(base.clone()),
    );
    assert!(
        errs.iter()
            .any(|e| e.field == "spec" && e.detail.starts_with("field is immutable")),
        "C17"
    );
    let v6 =
        |ip: &str| json!({"networkRef": {"name": "bar"}, "ipFamilies": ["IPv6"], "ips": [{"value": ip}]});
    let errs = update_errors(&d, nic(base.clone()), nic(v6("2001:db8::1")));
    assert!(
        errs.iter()
            .any(|e| e.field == "spec" && e.detail.starts_with("field is immutable")),
        "C18"
    );
    let errs = update_errors(
        &d,
        with(&|s| s["machineRef"] = json!({"name": "bar", "uid": "u"})),
        with(&|s| s["machineRef"] = json!({"name": "foo", "uid": "u"})),
    );
    assert!(errs.is_empty(), "C19 {:?}", common::rendered(&errs));
    let errs = update_errors(
        &d,
        with(&|s| s["ips"] = json!([{"value": "10.0.0.1"}])),
        nic(base.clone()),
    );
    assert!(errs.is_empty(), "C20 {:?}", common::rendered(&errs));
    let errs = update_errors(
        &d,
        with(&|s| s["virtualIP"] = json!({"virtualIPRef": {"name": "vip"}})),
        nic(base.clone()),
    );
    assert!(errs.is_empty(), "C21 {:?}", common::rendered(&errs));
    let errs = update_errors(
        &d,
        with(&|s| s["attributes"] = json!({"a": "b"})),
        nic(base.clone()),
    );
    assert!(errs.iter().any(|e| e.field == "spec"), "attributes are immutable");
}

#[test]
fn i_ephemeral_ip_templates() {
    let d = descriptor(G, "NetworkInterface");
    let v = |fam: &str, spec: Value| {
        let mut o = nic(json!({"networkRef": {"name": "net"}, "ipFamilies": [fam],
            "ips": [{"ephemeral": {"prefixTemplate": {"spec": spec}}}]}));
        (d.default)(&mut o).unwrap();
        (d.validate_create)(&o)
    };
    let prefix = "spec.ips[0].ephemeral.prefixTemplate.spec.prefix: Forbidden: must be a single IP";
    let length = "spec.ips[0].ephemeral.prefixTemplate.spec.prefixLength: Forbidden: must be a single IP";
    assert_contains(
        &v("IPv4", json!({"ipFamily": "IPv4", "prefix": "10.0.0.0/24"})),
        prefix,
        "I4",
    );
    assert_contains(
        &v("IPv6", json!({"ipFamily": "IPv6", "prefix": "2001:db8::/64"})),
        prefix,
        "I5",
    );
    assert_contains(
        &v(
            "IPv4",
            json!({"ipFamily": "IPv4", "parentSelector": {}, "prefixLength": 40}),
        ),
        length,
        "I6",
    );
    assert_contains(
        &v(
            "IPv6",
            json!({"ipFamily": "IPv6", "parentSelector": {}, "prefixLength": 132}),
        ),
        length,
        "I7",
    );
    assert_no_error_at(
        &v(
            "IPv4",
            json!({"ipFamily": "IPv4", "parentRef": {"name": "root"}, "prefixLength": 32}),
        ),
        "spec.ips[0].ephemeral.prefixTemplate.spec.prefixLength",
        "I8",
    );
    assert_no_error_at(
        &v(
            "IPv6",
            json!({"ipFamily": "IPv6", "parentRef": {"name": "root"}, "prefixLength": 128}),
        ),
        "spec.ips[0].ephemeral.prefixTemplate.spec.prefixLength",
        "I9",
    );
}

fn lb(spec: Value) -> Value {
    obj("LoadBalancer", Some("foo"), Some("ns"), spec)
}

#[test]
fn d_load_balancer() {
    let mut cases = meta3("LoadBalancer", json!({}), true);
    let ok = |ports: Value| {
        lb(json!({"type": "Public", "ipFamilies": ["IPv4"], "networkRef": {"name": "n"}, "ports": ports}))
    };
    cases.extend([
        Case {
            name: "D4/D6 empty spec",
            object: lb(json!({})),
            expected: vec![
                subdomain_msg("spec.networkRef.name", ""),
                "spec.type: Required value: must specify type".into(),
            ],
        },
        Case {
            name: "D5 invalid networkRef",
            object: lb(json!({"networkRef": {"name": "foo*"}})),
            expected: vec![subdomain_msg("spec.networkRef.name", "foo*")],
        },
        Case {
            name: "D9 duplicate family",
            object: lb(json!({"ipFamilies": ["IPv4", "IPv4"]})),
            expected: vec![r#"spec.ipFamilies[1]: Duplicate value: "IPv4""#.into()],
        },
        Case {
            name: "D10 overlapping TCP ranges",
            object: ok(json!([{"port": 1, "endPort": 3}, {"port": 2, "endPort": 4}])),
            expected: vec![
                "spec.ports[1]: Forbidden: port range [2 4] overlaps with port range [1 3]".into(),
            ],
        },
        Case {
            name: "first port out of range",
            object: ok(json!([{"port": 70000}])),
            expected: vec![
                "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
            ],
        },
        Case {
            name: "first port zero",
            object: ok(json!([{"port": 0}])),
            expected: vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive".into(),
            ],
        },
        Case {
            name: "unknown protocol",
            object: ok(json!([{"protocol": "FOO", "port": 80}])),
            expected: vec![
                r#"spec.ports[0].protocol: Unsupported value: "FOO": supported values: "TCP", "UDP", "SCTP""#
                    .into(),
            ],
        },
        Case {
            name: "endPort below port",
            object: ok(json!([{"port": 80, "endPort": 79}])),
            expected: vec!["spec.ports[0].endPort: Forbidden: must be greater than or equal to port".into()],
        },
        Case {
            name: "unknown type",
            object: lb(json!({"type": "External"})),
            expected: vec![
                r#"spec.type: Unsupported value: "External": supported values: "Public", "Internal""#.into(),
            ],
        },
        Case {
            name: "public with ips",
            object: lb(
                json!({"type": "Public", "networkRef": {"name": "n"}, "ips": [{"value": "10.0.0.1"}]}),
            ),
            expected: vec!["spec.ips: Forbidden: may only be specified for Internal load balancers".into()],
        },
    ]);
    common::run_create_cases(G, "LoadBalancer", cases);
    let d = descriptor(G, "LoadBalancer");
    let errs = common::create_errors(
        &d,
        ok(
            json!([{"protocol": "TCP", "port": 1, "endPort": 3}, {"protocol": "UDP", "port": 2, "endPort": 4}]),
        ),
    );
    assert_no_error_at(&errs, "spec.ports[1]", "D11");
    assert!(errs.is_empty());
    for (name, t) in [("D7", "Public"), ("D8", "Internal")] {
        let errs = common::create_errors(&d, lb(json!({"type": t})));
        assert_no_error_at(&errs, "spec.type", name);
    }
    // Internal LB: ipFamilies inferred from the ips.
    let mut o = lb(json!({"type": "Internal", "networkRef": {"name": "n"}, "ips": [{"value": "10.0.0.1"}]}));
    (d.default)(&mut o).unwrap();
    assert_eq!(o["spec"]["ipFamilies"], json!(["IPv4"]));
    assert!((d.validate_create)(&o).is_empty());
}

#[test]
fn d12_d13_load_balancer_update() {
    let d = descriptor(G, "LoadBalancer");
    let with = |net: &str, sel: Value| {
        lb(
            json!({"type": "Public", "ipFamilies": ["IPv4"], "networkRef": {"name": net}, "networkInterfaceSelector": sel}),
        )
    };
    let errs = update_errors(&d, with("foo", json!({})), with("foo*", json!({})));
    assert_contains(&errs, "spec.networkRef: Forbidden: field is immutable", "D12");
    let errs = update_errors(
        &d,
        with("foo", json!({"matchLabels": {"foo": "bar"}})),
        with("foo", json!({"matchLabels": {"bar": "baz"}})),
    );
    assert!(errs.is_empty(), "D13 {:?}", common::rendered(&errs));
}

fn lbr(fields: Value) -> Value {
    let mut o = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancerRouting",
        "metadata": {"name": "foo", "namespace": "ns"}});
    for (k, v) in fields.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

#[test]
fn e_load_balancer_routing() {
    let meta = |name: Option<&str>, ns: Option<&str>| {
        let mut o = lbr(json!({}));
        o["metadata"] = json!({});
        if let Some(n) = name {
            o["metadata"]["name"] = json!(n);
        }
        if let Some(n) = ns {
            o["metadata"]["namespace"] = json!(n);
        }
        o
    };
    common::run_create_cases(G, "LoadBalancerRouting", vec![
        Case { name: "E1", object: meta(None, Some("ns")), expected: vec!["metadata.name: Required value: name or generateName is required".into()] },
        Case { name: "E2", object: meta(Some("foo"), None), expected: vec!["metadata.namespace: Required value".into()] },
        Case { name: "E3", object: meta(Some("foo*"), Some("ns")), expected: vec![subdomain_msg("metadata.name", "foo*")] },
        Case { name: "E4 destination without ip", object: lbr(json!({"destinations": [{}]})),
            expected: vec!["destinations[0].ip: Invalid value: null: must specify a valid ip".into()] },
        Case { name: "E4b target without ip is resolved later, but needs a valid name",
            object: lbr(json!({"destinations": [{"targetRef": {"name": "foo*", "uid": "u", "providerID": ""}}]})),
            expected: vec![subdomain_msg("destinations[0].targetRef.name", "foo*")] },
        Case { name: "E5 invalid target name", object: lbr(json!({"destinations": [{"ip": "10.0.0.1", "targetRef": {"name": "foo*", "uid": "u", "providerID": "p"}}]})),
            expected: vec![subdomain_msg("destinations[0].targetRef.name", "foo*")] },
        Case { name: "malformed destination ip", object: lbr(json!({"destinations": [{"ip": "10.0.0.300"}]})),
            expected: vec![r#"destinations[0].ip: Invalid value: "10.0.0.300": ParseAddr("10.0.0.300"): invalid IP address"#.into()] },
    ]);
}

#[test]
fn legacy_load_balancer_routing_destinations_become_target_refs() {
    let d = descriptor(G, "LoadBalancerRouting");
    let mut o = lbr(json!({"destinations": [
        {"name": "nic-1", "uid": "u1"},
        {"ip": "10.0.0.2", "targetRef": {"name": "nic-2", "uid": "u2", "providerID": "p"}, "name": "ignored"},
        {"ip": "10.0.0.3"}]}));
    (d.default)(&mut o).unwrap();
    assert_eq!(
        o["destinations"],
        json!([
            {"targetRef": {"name": "nic-1", "uid": "u1", "providerID": ""}},
            {"ip": "10.0.0.2", "targetRef": {"name": "nic-2", "uid": "u2", "providerID": "p"}},
            {"ip": "10.0.0.3"}])
    );
    assert!(
        (d.validate_create)(&o).is_empty(),
        "{:?}",
        common::rendered(&(d.validate_create)(&o))
    );
    let again = o.clone();
    (d.default)(&mut o).unwrap();
    assert_eq!(o, again, "conversion is idempotent");
}

fn ngw(spec: Value) -> Value {
    obj("NATGateway", Some("foo"), Some("ns"), spec)
}

#[test]
fn f_nat_gateway() {
    let mut cases = meta3("NATGateway", json!({}), true);
    let ppn = |n: i64| {
        ngw(
            json!({"type": "Public", "ipFamily": "IPv4", "networkRef": {"name": "n"}, "portsPerNetworkInterface": n}),
        )
    };
    cases.extend([
        Case { name: "F4/F6 empty spec", object: ngw(json!({})), expected: vec![
            subdomain_msg("spec.networkRef.name", ""), "spec.type: Required value: must specify type".into(),
            "spec.ipFamily: Required value: must specify ip family".into(),
        ] },
        Case { name: "F5 invalid networkRef", object: ngw(json!({"networkRef": {"name": "foo*"}})),
            expected: vec![subdomain_msg("spec.networkRef.name", "foo*")] },
        Case { name: "F7 not a power of two", object: ppn(3),
            expected: vec!["spec.portsPerNetworkInterface: Invalid value: 3: 3 is not a power of 2".into()] },
        Case { name: "negative ports", object: ppn(-2),
            expected: vec!["spec.portsPerNetworkInterface: Invalid value: -2: -2 is not a power of 2".into()] },
        Case { name: "larger than the NAT range", object: ppn(65536),
            expected: vec!["spec.portsPerNetworkInterface: Invalid value: 65536: must be at most 32768 (the largest power of 2 within the 64512-port NAT range)".into()] },
        Case { name: "unknown type", object: ngw(json!({"type": "Private"})),
            expected: vec![r#"spec.type: Unsupported value: "Private": supported values: "Public""#.into()] },
    ]);
    common::run_create_cases(G, "NATGateway", cases);
    let d = descriptor(G, "NATGateway");
    let mut o = ngw(json!({"type": "Public", "ipFamily": "IPv4", "networkRef": {"name": "n"}}));
    (d.default)(&mut o).unwrap();
    assert_eq!(o["spec"]["portsPerNetworkInterface"], json!(2048));
    assert!((d.validate_create)(&o).is_empty());
    let errs = update_errors(
        &d,
        ngw(json!({"type": "Public", "ipFamily": "IPv4", "networkRef": {"name": "foo"}})),
        ngw(json!({"type": "Public", "ipFamily": "IPv4", "networkRef": {"name": "foo*"}})),
    );
    assert_contains(&errs, "spec.networkRef: Forbidden: field is immutable", "F8");
}

fn np(spec: Value) -> Value {
    obj("NetworkPolicy", Some("foo"), Some("ns"), spec)
}

fn np_ingress(peer: Value, ports: Value) -> Value {
    np(json!({"networkRef": {"name": "n"}, "ingress": [{"from": [peer], "ports": ports}]}))
}

#[test]
fn g_network_policy() {
    let mut cases = meta3("NetworkPolicy", json!({}), false);
    let any = json!({"ipBlock": {"cidr": "10.0.0.0/8"}});
    cases.extend([
        Case { name: "G4 empty spec", object: np(json!({})), expected: vec![
            "spec.networkRef: Required value: must specify network ref".into(),
            "spec.policyTypes: Required value: must specify policy types".into(),
        ] },
        Case { name: "G5 invalid networkRef", object: np(json!({"networkRef": {"name": "foo*"}})),
            expected: vec![subdomain_msg("spec.networkRef.name", "foo*")] },
        Case { name: "G6 negative port", object: np_ingress(any.clone(), json!([{"port": -10}])),
            expected: vec!["spec.ingress[0].ports[0].port: Invalid value: -10: must be between 1 and 65535, inclusive".into()] },
        Case { name: "G7 unknown selector kind", object: np_ingress(json!({"objectSelector": {"kind": "Invalid"}}), json!([])),
            expected: vec![r#"spec.ingress[0].from[0].objectSelector.kind: Unsupported value: "Invalid": supported values: "LoadBalancer", "NetworkInterface", "VirtualIP""#.into()] },
        Case { name: "G8 two peers", object: np_ingress(json!({"objectSelector": {"kind": "LoadBalancer"}, "ipBlock": {"cidr": "10.0.0.0/16"}}), json!([])),
            expected: vec!["spec.ingress[0].from[0].ipBlock: Forbidden: cannot specify multiple peers".into()] },
        Case { name: "G9 except outside cidr", object: np_ingress(json!({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/16"]}}), json!([])),
            expected: vec!["spec.ingress[0].from[0].ipBlock.except[0]: Forbidden: cidr 10.0.0.0/16 does not contain except 10.1.0.0/16".into()] },
        Case { name: "endPort without port", object: np_ingress(any.clone(), json!([{"endPort": 10}])),
            expected: vec!["spec.ingress[0].ports[0].endPort: Forbidden: cannot specify endPort without port".into()] },
        Case { name: "invalid selector operator", object: np(json!({"networkRef": {"name": "n"}, "policyTypes": ["Ingress"],
                "networkInterfaceSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}})),
            expected: vec![r#"spec.networkInterfaceSelector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator"#.into()] },
    ]);
    common::run_create_cases(G, "NetworkPolicy", cases);
    let d = descriptor(G, "NetworkPolicy");
    // Defaulting makes policyTypes a set; validation alone (without defaulting) still reports repeats.
    let errs = (d.validate_create)(&np(
        json!({"networkRef": {"name": "n"}, "policyTypes": ["Ingress", "Ingress"]}),
    ));
    assert_contains(
        &errs,
        r#"spec.policyTypes[1]: Duplicate value: "Ingress""#,
        "duplicate policy type",
    );
    let with = |n: &str| np(json!({"networkRef": {"name": n}, "policyTypes": ["Ingress"]}));
    let errs = update_errors(&d, with("foo"), with("bar"));
    assert_contains(&errs, "spec.networkRef: Forbidden: field is immutable", "G10");
}

fn vip(spec: Value) -> Value {
    obj("VirtualIP", Some("bar"), Some("foo"), spec)
}

#[test]
fn h_virtual_ip() {
    let mut cases = meta3("VirtualIP", json!({}), true);
    cases.extend([
        Case {
            name: "H4/H6 empty spec",
            object: vip(json!({})),
            expected: vec![
                "spec.type: Required value: must specify type".into(),
                "spec.ipFamily: Required value: must specify ip family".into(),
            ],
        },
        Case {
            name: "H5 invalid type",
            object: vip(json!({"type": "invalid"})),
            expected: vec![r#"spec.type: Unsupported value: "invalid": supported values: "Public""#.into()],
        },
        Case {
            name: "H7 invalid family",
            object: vip(json!({"type": "Public", "ipFamily": "invalid"})),
            expected: vec![
                r#"spec.ipFamily: Unsupported value: "invalid": supported values: "IPv4", "IPv6""#.into(),
            ],
        },
        Case {
            name: "H8 invalid target",
            object: vip(json!({"type": "Public", "ipFamily": "IPv4", "targetRef": {"name": "foo*"}})),
            expected: vec![subdomain_msg("spec.targetRef.name", "foo*")],
        },
        Case {
            name: "dotted name",
            object: obj(
                "VirtualIP",
                Some("a.b"),
                Some("ns"),
                json!({"type": "Public", "ipFamily": "IPv4"}),
            ),
            expected: vec![label_msg("metadata.name", "a.b")],
        },
    ]);
    common::run_create_cases(G, "VirtualIP", cases);
    common::assert_valid(
        G,
        "VirtualIP",
        vip(json!({"type": "Public", "ipFamily": "IPv4", "targetRef": {"name": "foo"}})),
    );
    let d = descriptor(G, "VirtualIP");
    let v = |fam: &str, target: &str| {
        vip(json!({"type": "Public", "ipFamily": fam, "targetRef": {"name": target, "uid": "u"}}))
    };
    let errs = update_errors(&d, v("IPv6", "foo"), v("IPv4", "foo"));
    assert!(
        errs.iter()
            .any(|e| e.field == "spec" && e.detail.starts_with("field is immutable")),
        "H11"
    );
    let errs = update_errors(&d, v("IPv4", "bar"), v("IPv4", "foo"));
    assert!(errs.is_empty(), "H12 {:?}", common::rendered(&errs));
    // H10: an old object with another type cannot be represented (only Public exists); the type is covered by
    // the same whole-spec immutability as ipFamily.
    let vip_typed: ironnet_api::networking::VirtualIP = serde_json::from_value(v("IPv4", "foo")).unwrap();
    assert_contains(
        &ironnet_api::ApiKind::validate_delete(&vip_typed),
        "spec.targetRef: Forbidden: virtual ip is still bound to foo",
        "delete while bound",
    );
    // The descriptor the API server calls on DELETE: bound refuses, unbound allows.
    assert_contains(
        &(d.validate_delete)(&v("IPv4", "foo")),
        "spec.targetRef: Forbidden: virtual ip is still bound to foo",
        "descriptor delete while bound",
    );
    let unbound = vip(json!({"type": "Public", "ipFamily": "IPv4"}));
    assert!((d.validate_delete)(&unbound).is_empty(), "delete unbound");
    // Kinds without a delete rule allow every delete.
    assert!((descriptor(G, "Network").validate_delete)(&v("IPv4", "foo")).is_empty());
}

#[test]
fn status_updates_cannot_change_spec_and_main_updates_keep_status() {
    let d = descriptor(G, "NATGateway");
    let old = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NATGateway",
        "metadata": {"name": "a", "namespace": "ns"},
        "spec": {"type": "Public", "ipFamily": "IPv4", "networkRef": {"name": "n"}, "portsPerNetworkInterface": 64},
        "status": {"ips": ["1.2.3.4"]}});
    let mut new = old.clone();
    new["spec"]["portsPerNetworkInterface"] = json!(128);
    new["status"]["ips"] = json!(["1.2.3.5"]);
    assert_contains(
        &(d.validate_status_update)(&new, &old),
        "spec: Forbidden: may not be changed through the status subresource",
        "status changes spec",
    );
    let mut reset = new.clone();
    ironnet_api::kind::prepare_for_status_update(&mut reset, &old);
    assert_eq!(reset["spec"], old["spec"]);
    assert_eq!(reset["status"], new["status"]);
    assert!((d.validate_status_update)(&reset, &old).is_empty());
    let mut main = new.clone();
    ironnet_api::kind::prepare_for_update(&mut main, &old);
    assert_eq!(main["status"], old["status"]);
    assert_eq!(main["spec"], new["spec"]);
}
