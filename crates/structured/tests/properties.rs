//! Property tests: apply idempotence, FieldsV1 round-trips, set algebra, and robustness of every
//! parser against arbitrary input (the fuzzing of this crate).

use std::collections::BTreeSet;

use ironnet_structured::{
    ApplyRequest, BodyFormat, FieldPath, FieldSet, ManagedFieldsEntry, PathElement, Schema, apply,
    decode_body, prune_unknown_fields, validate_against_schema,
};
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const V1: &str = "test.ironnet.dev/v1";

fn schema() -> Schema {
    Schema::from_openapi(&openapi_schema()).unwrap()
}

fn openapi_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "mode": {"type": "string"},
                    "ports": {
                        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "port": {"type": "integer"},
                            "opts": {"type": "object", "additionalProperties": {"type": "string"}}
                        }}
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            }
        }
    })
}

fn small_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn spec() -> impl Strategy<Value = Value> {
    let port = (
        prop::option::of(0i64..3),
        prop::collection::btree_map("[xy]", "[a-b]", 0..2),
    );
    (
        prop::option::of(0i64..3),
        prop::option::of("[a-b]"),
        prop::collection::btree_map("[a-d]", port, 0..4),
        prop::collection::btree_set("[a-d]", 0..3),
        prop::option::of(prop::collection::vec("[a-b]", 0..3)),
        prop::collection::btree_map("[A-C]", "[0-1]", 0..3),
        prop::option::of(small_json()),
    )
        .prop_map(|(size, mode, ports, tags, args, env, raw)| {
            let mut m = Map::new();
            if let Some(s) = size {
                m.insert("size".into(), json!(s));
            }
            if let Some(s) = mode {
                m.insert("mode".into(), json!(s));
            }
            if !ports.is_empty() {
                let items: Vec<Value> = ports
                    .into_iter()
                    .map(|(name, (port, opts))| {
                        let mut p = Map::new();
                        p.insert("name".into(), json!(name));
                        if let Some(port) = port {
                            p.insert("port".into(), json!(port));
                        }
                        if !opts.is_empty() {
                            p.insert("opts".into(), json!(opts));
                        }
                        Value::Object(p)
                    })
                    .collect();
                m.insert("ports".into(), Value::Array(items));
            }
            if !tags.is_empty() {
                m.insert("tags".into(), json!(tags));
            }
            if let Some(a) = args {
                m.insert("args".into(), json!(a));
            }
            if !env.is_empty() {
                m.insert("env".into(), json!(env));
            }
            if let Some(Value::Object(r)) = raw {
                m.insert("raw".into(), Value::Object(r));
            }
            Value::Object(m)
        })
}

fn config(spec: &Value) -> Value {
    json!({"apiVersion": V1, "kind": "Thing", "metadata": {"name": "t"}, "spec": spec})
}

fn managed(object: &Value) -> Vec<ManagedFieldsEntry> {
    object
        .pointer("/metadata/managedFields")
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .unwrap_or_default()
}

fn run(s: &Schema, live: Option<&Value>, applied: &Value, manager: &str, force: bool, t: i64) -> Value {
    let mf = live.map(managed).unwrap_or_default();
    apply(ApplyRequest {
        live,
        applied,
        manager,
        subresource: None,
        force,
        schema: s,
        managed_fields: &mf,
        api_version: V1,
        now: Timestamp::from_second(1_700_000_000 + t).unwrap(),
        reset_fields: None,
    })
    .expect("valid apply")
    .object
}

fn path_element() -> impl Strategy<Value = PathElement> {
    prop_oneof![
        "[a-c./:\"<]{1,3}".prop_map(PathElement::Field),
        ("[a-b]", -2i64..2)
            .prop_map(|(s, n)| PathElement::key(vec![("name".into(), json!(s)), ("port".into(), json!(n))])),
        prop_oneof![
            (-3i64..3).prop_map(Value::from),
            "[a-b&]{0,2}".prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool)
        ]
        .prop_map(PathElement::Value),
        (0i64..3).prop_map(PathElement::Index),
    ]
}

fn field_set() -> impl Strategy<Value = FieldSet> {
    prop::collection::vec(prop::collection::vec(path_element(), 1..4), 0..12)
        .prop_map(|paths| FieldSet::from_paths(&paths.into_iter().map(FieldPath).collect::<Vec<_>>()))
}

fn path_set(s: &FieldSet) -> BTreeSet<FieldPath> {
    s.paths().into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn applying_twice_is_a_no_op(x in spec()) {
        let s = schema();
        let first = run(&s, None, &config(&x), "a", false, 0);
        let second = run(&s, Some(&first), &config(&x), "a", false, 5);
        prop_assert_eq!(&second, &first);
    }

    #[test]
    fn reapplying_after_other_managers_is_a_no_op(x in spec(), y in spec(), x2 in spec()) {
        let s = schema();
        let a = run(&s, None, &config(&x), "a", false, 0);
        let b = run(&s, Some(&a), &config(&y), "b", true, 1);
        let a2 = run(&s, Some(&b), &config(&x2), "a", true, 2);
        let a3 = run(&s, Some(&a2), &config(&x2), "a", false, 3);
        prop_assert_eq!(&a3, &a2);
        // Whatever a applied last is in the object with a's values.
        let applied_set = ironnet_structured::FieldSet::from_fields_v1(
            &managed(&a3).into_iter().find(|e| e.manager.as_deref() == Some("a")).map(|e| e.fields_v1.unwrap().0).unwrap_or(json!({}))
        ).unwrap();
        for p in applied_set.paths() {
            if let [PathElement::Field(spec), PathElement::Field(f)] = p.elements()
                && spec == "spec" && matches!(f.as_str(), "size" | "mode" | "args")
            {
                prop_assert_eq!(&a3["spec"][f.as_str()], &x2[f.as_str()]);
            }
        }
    }

    #[test]
    fn conflicts_are_exactly_the_changed_fields_others_own(x in spec(), y in spec()) {
        let s = schema();
        let a = run(&s, None, &config(&x), "a", false, 0);
        let mf = managed(&a);
        let result = apply(ApplyRequest {
            live: Some(&a),
            applied: &config(&y),
            manager: "b",
            subresource: None,
            force: false,
            schema: &s,
            managed_fields: &mf,
            api_version: V1,
            now: Timestamp::from_second(1_700_000_001).unwrap(),
            reset_fields: None,
        });
        // Scalar and atomic fields both managers set: a conflict iff the values differ.
        let mut expected = Vec::new();
        for f in ["args", "mode", "size"] {
            if let (Some(ours), Some(theirs)) = (x.get(f), y.get(f))
                && ours != theirs
            {
                expected.push(format!(".spec.{f}"));
            }
        }
        for (k, v) in y.get("env").and_then(Value::as_object).into_iter().flatten() {
            if x.get("env").and_then(|e| e.get(k)).is_some_and(|old| old != v) {
                expected.push(format!(".spec.env.{k}"));
            }
        }
        match result {
            Ok(r) => {
                prop_assert!(expected.is_empty(), "missed conflicts {:?}", expected);
                for f in ["args", "mode", "size"] {
                    if let Some(v) = y.get(f) {
                        prop_assert_eq!(&r.object["spec"][f], v);
                    }
                }
            }
            Err(ironnet_structured::ApplyError::Conflicts(conflicts)) => {
                let fields: BTreeSet<String> = conflicts.iter().map(|c| c.field.clone()).collect();
                for e in &expected {
                    prop_assert!(fields.contains(e), "missing conflict {} in {:?}", e, fields);
                }
                for c in &conflicts {
                    prop_assert_eq!(&c.manager, "a");
                }
            }
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
    }

    #[test]
    fn fields_v1_round_trips(set in field_set()) {
        let encoded = set.to_fields_v1();
        prop_assert_eq!(&FieldSet::from_fields_v1(&encoded).unwrap(), &set);
        let text = serde_json::to_string(&encoded).unwrap();
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&FieldSet::from_fields_v1(&reparsed).unwrap(), &set);
        prop_assert_eq!(serde_json::to_string(&reparsed).unwrap(), text, "key order is canonical");
    }

    #[test]
    fn set_algebra_matches_path_sets(a in field_set(), b in field_set()) {
        let (pa, pb) = (path_set(&a), path_set(&b));
        prop_assert_eq!(path_set(&a.union(&b)), pa.union(&pb).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(path_set(&a.intersection(&b)), pa.intersection(&pb).cloned().collect::<BTreeSet<_>>());
        prop_assert_eq!(path_set(&a.difference(&b)), pa.difference(&pb).cloned().collect::<BTreeSet<_>>());
        let rd = path_set(&a.recursive_difference(&b));
        for p in &rd {
            let under_b = (1..=p.elements().len()).any(|n| b.contains(&p.elements()[..n]));
            prop_assert!(!under_b);
        }
        prop_assert_eq!(a.len(), pa.len());
    }

    #[test]
    fn body_parsers_never_panic(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_body(&raw, BodyFormat::Json);
        let _ = decode_body(&raw, BodyFormat::Yaml);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-c:{}\\[\\], \"'\n-]{0,40}") {
        let _ = decode_body(text.as_bytes(), BodyFormat::Json);
        let _ = decode_body(text.as_bytes(), BodyFormat::Yaml);
    }

    #[test]
    fn decoded_bodies_equal_plain_serde_values(v in small_json(), yaml_text in "[a-c:{}\\[\\], \"'\n-]{0,40}") {
        // Without repeated keys the decoder builds exactly what serde_json's own Value would: from
        // JSON, and from YAML through serde-saphyr.
        let text = serde_json::to_string(&v).unwrap();
        let d = decode_body(text.as_bytes(), BodyFormat::Json).unwrap();
        prop_assert_eq!(&d.value, &v);
        prop_assert!(d.duplicates.is_empty());
        prop_assert_eq!(decode_body(text.as_bytes(), BodyFormat::Yaml).unwrap().value, v);
        if let Ok(plain) = serde_saphyr::from_str::<Value>(&yaml_text) {
            let d = decode_body(yaml_text.as_bytes(), BodyFormat::Yaml).unwrap();
            prop_assert_eq!(d.value, plain);
            prop_assert!(d.duplicates.is_empty());
        }
    }

    #[test]
    fn schema_and_fields_v1_decoders_never_panic(v in small_json()) {
        let _ = Schema::from_openapi(&json!({"type": "object", "properties": {"a": v.clone()}}));
        let _ = Schema::from_openapi(&v);
        let _ = FieldSet::from_fields_v1(&v);
    }

    #[test]
    fn structural_ops_never_panic(v in small_json(), sp in spec()) {
        let s = openapi_schema();
        let mut obj = config(&sp);
        obj["spec"]["raw"] = v.clone();
        obj["spec"]["size"] = v;
        let _ = validate_against_schema(&s, &obj);
        let mut pruned = obj.clone();
        prune_unknown_fields(&s, &mut pruned);
        let mut again = pruned.clone();
        prop_assert!(prune_unknown_fields(&s, &mut again).is_empty());
        prop_assert_eq!(again, pruned);
    }
}
