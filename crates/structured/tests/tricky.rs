//! Tricky cases without kube-rs: ObjectMeta merge semantics, status-subresource appliers,
//! embedded resources, untyped objects and schemars-style schemas.

use ironnet_structured::{
    ApplyError, ApplyRequest, ApplyResult, BodyFormat, ManagedFieldsEntry, Schema, apply, decode_body,
    prune_unknown_fields, reset_fields, validate_against_schema,
};
use jiff::Timestamp;
use serde_json::{Value, json};

const V1: &str = "test.ironnet.dev/v1";

fn managed(object: &Value) -> Vec<ManagedFieldsEntry> {
    object
        .pointer("/metadata/managedFields")
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .unwrap_or_default()
}

fn fields_of(object: &Value, manager: &str) -> String {
    let e = managed(object)
        .into_iter()
        .find(|e| e.manager.as_deref() == Some(manager))
        .expect("manager present");
    serde_json::to_string(&e.fields_v1.unwrap().0).unwrap()
}

fn run(
    s: &Schema,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
) -> Result<ApplyResult, ApplyError> {
    let mf = live.map(managed).unwrap_or_default();
    let reset = reset_fields(subresource, true);
    apply(ApplyRequest {
        live,
        applied,
        manager,
        subresource,
        force: false,
        schema: s,
        managed_fields: &mf,
        api_version: V1,
        now: Timestamp::from_second(1_700_000_000).unwrap(),
        reset_fields: reset.as_ref(),
    })
}

fn base(meta: Value) -> Value {
    let mut m = json!({"name": "t"});
    m.as_object_mut()
        .unwrap()
        .extend(meta.as_object().unwrap().clone());
    json!({"apiVersion": V1, "kind": "Thing", "metadata": m})
}

#[test]
fn object_meta_labels_finalizers_and_owner_references_merge_granularly() {
    let s = Schema::untyped();
    let owner = |uid: &str| json!({"apiVersion": "v1", "kind": "X", "name": uid, "uid": uid});
    let a = run(
        &s,
        None,
        &base(json!({"labels": {"a": "1"}, "finalizers": ["x"], "ownerReferences": [owner("u1")]})),
        "a",
        None,
    )
    .unwrap();
    assert_eq!(
        fields_of(&a.object, "a"),
        r#"{"f:metadata":{"f:finalizers":{"v:\"x\"":{}},"f:labels":{"f:a":{}},"f:ownerReferences":{"k:{\"uid\":\"u1\"}":{".":{},"f:apiVersion":{},"f:kind":{},"f:name":{},"f:uid":{}}}}}"#
    );
    let b = run(
        &s,
        Some(&a.object),
        &base(json!({"labels": {"b": "2"}, "finalizers": ["y"], "ownerReferences": [owner("u2")]})),
        "b",
        None,
    )
    .unwrap();
    assert_eq!(b.object["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(b.object["metadata"]["finalizers"], json!(["x", "y"]));
    assert_eq!(
        b.object["metadata"]["ownerReferences"],
        json!([owner("u1"), owner("u2")])
    );
    let a2 = run(
        &s,
        Some(&b.object),
        &base(json!({"finalizers": ["x"]})),
        "a",
        None,
    )
    .unwrap();
    assert_eq!(a2.object["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(a2.object["metadata"]["ownerReferences"], json!([owner("u2")]));
    assert_eq!(
        a2.object["metadata"]["name"],
        json!("t"),
        "identifying metadata is never pruned"
    );
}

#[test]
fn status_appliers_are_separate_managers_and_cannot_touch_spec() {
    let s = Schema::untyped();
    let mut cfg = base(json!({}));
    cfg["spec"] = json!({"size": 1});
    let created = run(&s, None, &cfg, "kubectl", None).unwrap();
    let mut status = base(json!({}));
    status["status"] = json!({"phase": "Ready"});
    status["spec"] = json!({"size": 99});
    let st = run(&s, Some(&created.object), &status, "controller", Some("status")).unwrap();
    assert_eq!(st.object["spec"], json!({"size": 1}), "spec is reset on /status");
    assert_eq!(st.object["status"], json!({"phase": "Ready"}));
    let e = managed(&st.object)
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("controller"))
        .unwrap();
    assert_eq!(e.subresource.as_deref(), Some("status"));
    // Untyped, `status` is a map entry rather than a struct field, so it is a member itself.
    assert_eq!(
        fields_of(&st.object, "controller"),
        r#"{"f:status":{".":{},"f:phase":{}}}"#
    );
    // The same manager name on the main resource is a different manager: it conflicts.
    let mut other = base(json!({}));
    other["status"] = json!({"phase": "Failed"});
    other["spec"] = json!({"size": 1});
    let via_main = run(&s, Some(&st.object), &other, "kubectl", None).unwrap();
    assert_eq!(
        via_main.object["status"],
        json!({"phase": "Ready"}),
        "status is reset on the main resource"
    );
    let mut status2 = base(json!({}));
    status2["status"] = json!({"phase": "Gone"});
    let err = run(&s, Some(&st.object), &status2, "other", Some("status")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "controller" with subresource "status": .status.phase"#
    );
}

#[test]
fn embedded_resources_get_object_meta_semantics() {
    let s = Schema::from_openapi(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"template": {
            "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true
        }}}}
    }))
    .unwrap();
    let mut cfg = base(json!({}));
    cfg["spec"] = json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "1"}, "bogus": 1}, "spec": {"x": [1]}}});
    let a = run(&s, None, &cfg, "a", None).unwrap();
    assert_eq!(
        fields_of(&a.object, "a"),
        r#"{"f:spec":{"f:template":{"f:apiVersion":{},"f:kind":{},"f:metadata":{"f:bogus":{},"f:labels":{"f:a":{}}},"f:spec":{".":{},"f:x":{}}}}}"#
    );
}

#[test]
fn schemars_style_schemas_with_refs_and_nullable_variants() {
    // The shape schemars 1 emits for `struct Spec { ports: Vec<Port>, parent: Option<Box<Spec>>, mode: Mode }`
    // before kube-derive inlines it.
    let s = Schema::from_openapi(&json!({
        "type": "object",
        "properties": {"spec": {"$ref": "#/$defs/Spec"}},
        "$defs": {
            "Spec": {
                "type": "object",
                "properties": {
                    "ports": {"type": "array", "items": {"$ref": "#/$defs/Port"},
                              "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Spec"}, {"type": "null"}]},
                    "mode": {"oneOf": [{"type": "string", "enum": ["A"]}, {"type": "object", "properties": {"B": {"type": "integer"}}, "required": ["B"]}]}
                }
            },
            "Port": {"allOf": [{"$ref": "#/$defs/Named"}], "properties": {"port": {"type": "integer"}}},
            "Named": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        }
    }))
    .unwrap();
    let mut cfg = base(json!({}));
    cfg["spec"] = json!({"ports": [{"name": "a", "port": 1}], "parent": {"ports": [{"name": "b"}], "parent": null}, "mode": "A"});
    let a = run(&s, None, &cfg, "a", None).unwrap();
    assert_eq!(
        fields_of(&a.object, "a"),
        r#"{"f:spec":{"f:mode":{},"f:parent":{"f:parent":{},"f:ports":{"k:{\"name\":\"b\"}":{".":{},"f:name":{}}}},"f:ports":{"k:{\"name\":\"a\"}":{".":{},"f:name":{},"f:port":{}}}}}"#
    );
}

#[test]
fn deeply_nested_values_do_not_exhaust_the_stack() {
    // serde_json refuses more than 128 levels, so that is the deepest body a request can carry.
    let mut deep = json!(1);
    for _ in 0..120 {
        deep = json!({"x": deep});
    }
    let s = Schema::untyped();
    let mut cfg = base(json!({}));
    cfg["spec"] = deep;
    let body = serde_json::to_vec(&cfg).unwrap();
    let parsed = decode_body(&body, BodyFormat::Yaml).unwrap().value;
    let a = run(&s, None, &parsed, "a", None).unwrap();
    let b = run(&s, Some(&a.object), &parsed, "a", None).unwrap();
    assert!(!b.object_changed);
    let untyped = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    assert!(prune_unknown_fields(&untyped, &mut a.object.clone()).is_empty());
    assert!(validate_against_schema(&untyped, &a.object).is_empty());
}

#[test]
fn update_starts_from_the_managed_fields_kube_would_pick() {
    use ironnet_structured::managed_fields_for_update;
    let s = Schema::untyped();
    let mut cfg = base(json!({}));
    cfg["spec"] = json!({"a": 1});
    let live = run(&s, None, &cfg, "a", None).unwrap().object;
    let live_entries = managed(&live);
    // A client echoing the object from GET keeps them; one that drops them keeps them too.
    assert_eq!(managed_fields_for_update(Some(&live), &live, None), live_entries);
    assert_eq!(managed_fields_for_update(Some(&live), &cfg, None), live_entries);
    // Explicit resets.
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    assert!(managed_fields_for_update(Some(&live), &reset, None).is_empty());
    reset["metadata"]["managedFields"] = json!([{}]);
    assert!(managed_fields_for_update(Some(&live), &reset, None).is_empty());
    // Client-written entries win on the main resource, never on a subresource.
    let mut rewritten = live.clone();
    rewritten["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Update", "apiVersion": V1, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:a": {}}}}]);
    assert_eq!(
        managed_fields_for_update(Some(&live), &rewritten, None)[0]
            .manager
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        managed_fields_for_update(Some(&live), &rewritten, Some("status")),
        live_entries
    );
    // Garbage from the client falls back to the live entries; garbage in the live object to none.
    rewritten["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Nope"}]);
    assert_eq!(
        managed_fields_for_update(Some(&live), &rewritten, None),
        live_entries
    );
    assert!(managed_fields_for_update(Some(&rewritten), &cfg, None).is_empty());
}

#[test]
fn duplicate_entries_in_the_live_object_are_tolerated() {
    // Objects written before validation existed may repeat set elements; SMD reads live objects
    // with AllowDuplicates, and so do we (applied configs must not repeat them).
    let s = Schema::untyped();
    let live = base(json!({"finalizers": ["x", "x"]}));
    let r = run(&s, Some(&live), &base(json!({"labels": {"a": "1"}})), "a", None).unwrap();
    assert_eq!(r.object["metadata"]["finalizers"], json!(["x", "x"]));
    assert_eq!(r.object["metadata"]["labels"], json!({"a": "1"}));
    let err = run(
        &s,
        Some(&live),
        &base(json!({"finalizers": ["y", "y"]})),
        "a",
        None,
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::InvalidConfig(_)), "{err}");
}

#[test]
fn kubectl_server_side_apply_takes_over_from_client_side_apply() {
    use ironnet_structured::{LAST_APPLIED_ANNOTATION, Operation, UpdateRequest, update_managed_fields};
    let s = Schema::untyped();
    let update = |old: Option<&Value>, new: &Value, manager: &str| {
        let mf = old.map(managed).unwrap_or_default();
        let entries = update_managed_fields(UpdateRequest {
            old,
            new,
            manager,
            operation: Operation::Update,
            subresource: None,
            managed_fields: &mf,
            schema: &s,
            api_version: V1,
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            reset_fields: None,
        });
        let mut out = new.clone();
        ironnet_structured::set_managed_fields(&mut out, &entries);
        out
    };
    // `kubectl apply` (client-side) created the object and recorded what it applied.
    let mut csa = base(json!({}));
    csa["spec"] = json!({"size": 1, "mode": "m"});
    let mut created = csa.clone();
    created["metadata"]["annotations"] =
        json!({LAST_APPLIED_ANNOTATION: serde_json::to_string(&csa).unwrap() + "\n"});
    let created = update(None, &created, "kubectl-client-side-apply");
    // Someone else edited mode since.
    let mut edited = created.clone();
    edited["spec"]["mode"] = json!("x");
    let edited = update(Some(&created), &edited, "editor");

    let mut ssa = base(json!({}));
    ssa["spec"] = json!({"size": 2, "mode": "y"});
    let err = run(&s, Some(&edited), &ssa, "kubectl", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "editor" using test.ironnet.dev/v1: .spec.mode"#,
        "size still matches last-applied, so only the edited field conflicts"
    );
    // Another manager name gets no such allowance.
    assert!(
        matches!(run(&s, Some(&edited), &ssa, "other", None), Err(ApplyError::Conflicts(c)) if c.len() == 2)
    );

    ssa["spec"]["mode"] = json!("x");
    let done = run(&s, Some(&edited), &ssa, "kubectl", None).unwrap();
    assert_eq!(done.object["spec"], json!({"size": 2, "mode": "x"}));
    assert_eq!(
        done.object["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
        json!(r#"{"apiVersion":"test.ironnet.dev/v1","kind":"Thing","metadata":{"name":"t"},"spec":{"mode":"x","size":2}}"#.to_owned() + "\n")
    );
    assert_eq!(
        fields_of(&done.object, "kubectl"),
        r#"{"f:spec":{".":{},"f:mode":{},"f:size":{}}}"#
    );
    let csa_entry = fields_of(&done.object, "kubectl-client-side-apply");
    assert!(!csa_entry.contains("f:size"), "{csa_entry}");
}

#[test]
fn map_list_keys_fall_back_to_schema_defaults() {
    // Like a Pod's container ports: keyed by (containerPort, protocol), protocol defaulting to TCP.
    let s = Schema::from_openapi(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
            "items": {"type": "object", "required": ["containerPort"], "properties": {
                "containerPort": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"},
                "name": {"type": "string"}
            }}
        }}}}
    }))
    .unwrap();
    let mut a_cfg = base(json!({}));
    a_cfg["spec"] = json!({"ports": [{"containerPort": 80, "name": "http"}]});
    let a = run(&s, None, &a_cfg, "a", None).unwrap();
    assert_eq!(
        fields_of(&a.object, "a"),
        r#"{"f:spec":{"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{}}}}}"#
    );
    // Spelling the default out addresses the same element.
    let mut b_cfg = base(json!({}));
    b_cfg["spec"] = json!({"ports": [{"containerPort": 80, "protocol": "TCP", "name": "web"}]});
    let err = run(&s, Some(&a.object), &b_cfg, "b", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.ports[containerPort=80,protocol="TCP"].name"#
    );
    let mut no_key = base(json!({}));
    no_key["spec"] = json!({"ports": [{"name": "x"}]});
    let err = run(&s, None, &no_key, "c", None).unwrap_err();
    assert!(
        err.to_string().contains(r#"omits key field "containerPort""#),
        "{err}"
    );
}
