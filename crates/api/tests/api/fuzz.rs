//! Property tests: arbitrary bodies, built from the API's own field names and tricky values, never make the
//! descriptors panic; defaulting is idempotent; a body that defaults cleanly validates without panicking, and
//! validating an object as an update of itself never reports immutability errors.

use std::sync::LazyLock;

use ironnet_api::{KindDescriptor, kinds};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const KEYS: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "ip",
    "ips",
    "ipFamily",
    "ipFamilies",
    "networkRef",
    "prefix",
    "prefixes",
    "prefixLength",
    "port",
    "endPort",
    "protocol",
    "type",
    "value",
    "ephemeral",
    "prefixTemplate",
    "virtualIPTemplate",
    "virtualIP",
    "virtualIPRef",
    "spec",
    "metadata",
    "labels",
    "selector",
    "nodeSelector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "targetRef",
    "destinations",
    "peerings",
    "incomingPeerings",
    "id",
    "cidr",
    "except",
    "ingress",
    "egress",
    "from",
    "to",
    "objectSelector",
    "ipBlock",
    "policyTypes",
    "kind",
    "ports",
    "nodeRef",
    "publicIPs",
    "natGateways",
    "claimRef",
    "hostname",
    "portsPerNetworkInterface",
    "template",
    "affinity",
    "firewallRules",
    "sections",
    "ingressRule",
    "egressRule",
    "peeredIDs",
    "peeredPrefixes",
    "nat",
    "loadBalancerPorts",
    "parentRef",
    "parentSelector",
    "providerID",
    "machineRef",
    "minPublicIPs",
    "maxPublicIPs",
    "networkInterfaceSelector",
    "status",
];

const STRINGS: &[&str] = &[
    "",
    "10.0.0.1",
    "2001:db8::1",
    "010.0.0.1",
    "fe80::1%eth0",
    "10.0.0.0/24",
    "10.0.0.1/32",
    "::/0",
    "10.0.0.0/33",
    "IPv4",
    "IPv6",
    "Public",
    "Internal",
    "TCP",
    "UDP",
    "SCTP",
    "In",
    "Exists",
    "Ingress",
    "Egress",
    "foo",
    "foo*",
    "a.b",
    "NetworkInterface",
    "LoadBalancer",
    "0300",
    "300",
    "-1",
    "LoadBalancer",
    "Retain",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![
            Just(-1i64),
            Just(0),
            Just(1),
            Just(32),
            Just(128),
            Just(2048),
            Just(65535),
            Just(65536),
            any::<i64>()
        ]
        .prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<_, _>>()
            )),
        ]
    })
}

fn body() -> impl Strategy<Value = (usize, Value)> {
    (0..25usize, value(), value(), any::<bool>()).prop_map(|(kind, spec, extra, top_level)| {
        let mut obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        if top_level {
            if let (Value::Object(o), Value::Object(e)) = (&mut obj, extra) {
                o.extend(e);
            }
        } else {
            obj["spec"] = spec;
        }
        (kind, obj)
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000)
}

/// Building the CRDs (schema generation) is the expensive part; build them once.
static KINDS: LazyLock<Vec<KindDescriptor>> = LazyLock::new(kinds);

proptest! {
    // 1000 cases by default (under a second); `PROPTEST_CASES=<n>` runs longer campaigns.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn descriptors_never_panic((index, mut obj) in body()) {
        let d = &KINDS[index];
        let group = d.crd.spec.group.clone();
        obj["apiVersion"] = json!(format!("{group}/v1alpha1"));
        obj["kind"] = json!(d.kind());
        let original = obj.clone();
        let _ = (d.validate_create)(&obj);
        let _ = (d.validate_update)(&obj, &original);
        let _ = (d.validate_status_update)(&obj, &original);
        match (d.default)(&mut obj) {
            Ok(()) => {
                let mut again = obj.clone();
                prop_assert!((d.default)(&mut again).is_ok());
                prop_assert_eq!(&again, &obj, "defaulting is idempotent");
                let _ = (d.validate_create)(&obj);
                let same = (d.validate_update)(&obj, &obj);
                prop_assert!(same.iter().all(|e| !e.detail.starts_with("field is immutable")), "{}", same);
                prop_assert!((d.validate_status_update)(&obj, &obj).iter().all(|e| !e.detail.contains("status subresource")));
            }
            Err(errs) => {
                prop_assert!(!errs.is_empty());
                prop_assert_eq!(&obj, &original, "a failed default leaves the body untouched");
            }
        }
    }
}
