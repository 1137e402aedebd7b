//! Forced applies over fields other managers own leave an object of the schema's types.

use ironnet_structured::{
    ApplyRequest, ManagedFieldsEntry, Operation, Schema, UpdateRequest, apply, set_managed_fields,
    update_managed_fields, validate_against_schema,
};
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

const V: &str = "networking.ironcore.dev/v1alpha1";

fn network_schema() -> Schema {
    Schema::from_openapi(&network_openapi()).unwrap()
}

fn network_openapi() -> Value {
    let name = json!({"default": "", "type": "string"});
    json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {
            "incomingPeerings": {"type": "array", "items": {"type": "object", "properties": {
                "name": name, "namespace": {"type": "string"}, "uid": {"type": "string"}}}},
            "peerings": {"type": "array", "items": {"type": "object", "properties": {
                "name": name,
                "networkRef": {"default": {"name": ""}, "type": "object", "properties": {
                    "name": name, "namespace": {"type": "string"}}},
                "prefixes": {"type": "array", "items": {"type": "object", "properties": {
                    "name": name, "prefix": {"type": "string", "nullable": true},
                    "prefixRef": {"type": "object", "nullable": true, "properties": {"name": name}}}}}
            }}},
            "providerID": {"type": "string"}
        }},
        "status": {"type": "object", "properties": {"state": {"type": "string"}}}
    }})
}

fn managed(obj: &Value) -> Vec<ManagedFieldsEntry> {
    obj.pointer("/metadata/managedFields")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default()
}

fn do_apply(
    s: &Schema,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, String> {
    let mf = live.map(managed).unwrap_or_default();
    apply(ApplyRequest {
        live,
        applied,
        manager,
        subresource: None,
        force,
        schema: s,
        managed_fields: &mf,
        api_version: V,
        now: Timestamp::from_second(1_700_000_000).unwrap(),
        reset_fields: None,
    })
    .map(|r| r.object)
    .map_err(|e| e.to_string())
}

fn peering() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["p1", "p2"]),
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        prop::option::of(prop::sample::select(vec!["ns1", "ns2"])),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, ref_name, ns, list_form, prefixes)| {
            let mut r = json!({});
            if let Some(n) = ref_name {
                r["name"] = json!(n);
            }
            if let Some(ns) = ns {
                r["namespace"] = json!(ns);
            }
            let mut p = json!({"name": name, "networkRef": if list_form { json!([r]) } else { r }});
            if prefixes {
                p["prefixes"] = json!([{"name": "x", "prefix": "10.0.0.0/8"}]);
            }
            p
        })
}

fn config() -> impl Strategy<Value = Value> {
    (prop::collection::vec(peering(), 0..3), any::<bool>()).prop_map(|(peerings, incoming)| {
        let mut spec = json!({"peerings": peerings});
        if incoming {
            spec["incomingPeerings"] = json!([{"name": "c"}]);
        }
        json!({"apiVersion": V, "kind": "Network", "metadata": {"name": "n", "namespace": "default"}, "spec": spec})
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn forced_apply_keeps_types(first in config(), second in config(), third in config(), by_update in any::<bool>()) {
        let s = network_schema();
        let openapi = network_openapi();
        let mut live = do_apply(&s, None, &first, "alice", false).unwrap();
        if by_update {
            let mut new = third.clone();
            new["metadata"] = live["metadata"].clone();
            let entries = update_managed_fields(UpdateRequest {
                old: Some(&live), new: &new, manager: "ctl", operation: Operation::Update, subresource: None,
                managed_fields: &managed(&live), schema: &s, api_version: V,
                now: Timestamp::from_second(1_700_000_001).unwrap(), reset_fields: None,
            });
            set_managed_fields(&mut new, &entries);
            live = new;
        }
        let forced = do_apply(&s, Some(&live), &second, "bob", true).unwrap();
        // The inputs may hold type errors of their own (a one-element list as networkRef); the
        // merge must not add any.
        let messages = |v: &Value| -> Vec<String> {
            validate_against_schema(&openapi, v).iter().map(|e| e.to_string()).collect()
        };
        let known: Vec<String> = messages(&live).into_iter().chain(messages(&second)).collect();
        let new: Vec<String> = messages(&forced).into_iter().filter(|m| !known.contains(m)).collect();
        prop_assert!(new.is_empty(), "{:?}\nlive: {}\napplied: {}\nresult: {}", new, live, second, forced);
    }
}
