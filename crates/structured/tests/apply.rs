//! Server-side apply and managedFields rules, one test per rule, with FieldsV1 compared as the
//! exact JSON kube-apiserver stores.

use ironnet_structured::{
    ApplyError, ApplyRequest, ApplyResult, FieldsV1, ManagedFieldsEntry, Operation, Schema, Time,
    UpdateRequest, apply, reset_fields, update_managed_fields,
};
use jiff::Timestamp;
use serde_json::{Value, json};

const V1: &str = "test.ironnet.dev/v1";

fn schema() -> Schema {
    Schema::from_openapi(&json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "replicas": {"type": "integer"},
                    "mode": {"type": "string"},
                    "ports": {
                        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "port": {"type": "integer"}, "protocol": {"type": "string"}
                        }}
                    },
                    "containers": {
                        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"},
                            "image": {"type": "string"},
                            "ports": {
                                "type": "array", "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                                "items": {"type": "object", "properties": {
                                    "containerPort": {"type": "integer"}, "protocol": {"type": "string"},
                                    "name": {"type": "string"}
                                }}
                            }
                        }}
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                                 "additionalProperties": {"type": "string"}},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }
    }))
    .expect("valid schema")
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": V1, "kind": "Thing", "metadata": {"name": "t", "namespace": "default"}, "spec": spec})
}

fn managed(object: &Value) -> Vec<ManagedFieldsEntry> {
    object
        .pointer("/metadata/managedFields")
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .unwrap_or_default()
}

fn do_apply(
    s: &Schema,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    t: i64,
) -> Result<ApplyResult, ApplyError> {
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
        now: at(t),
        reset_fields: None,
    })
}

fn do_update(
    s: &Schema,
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    t: i64,
) -> Value {
    let mf = old.map(managed).unwrap_or_default();
    let entries = update_managed_fields(UpdateRequest {
        old,
        new,
        manager,
        operation: Operation::Update,
        subresource,
        managed_fields: &mf,
        schema: s,
        api_version: V1,
        now: at(t),
        reset_fields: None,
    });
    let mut out = new.clone();
    ironnet_structured::set_managed_fields(&mut out, &entries);
    out
}

/// `(manager, operation, fieldsV1 as compact JSON)` of every entry, in order.
fn summary(object: &Value) -> Vec<(String, String, String)> {
    managed(object)
        .into_iter()
        .map(|e| {
            (
                e.manager.unwrap(),
                e.operation.unwrap(),
                serde_json::to_string(&e.fields_v1.map(|f| f.0).unwrap_or(Value::Null)).unwrap(),
            )
        })
        .collect()
}

fn entry(manager: &str, op: &str, fields: &str) -> (String, String, String) {
    (manager.to_owned(), op.to_owned(), fields.to_owned())
}

#[test]
fn apply_creates_and_records_the_applied_set() {
    let s = schema();
    let mut cfg = obj(json!({"size": 3, "ports": [{"name": "http", "port": 80}], "tags": ["a"]}));
    cfg["metadata"]["labels"] = json!({"app": "x"});
    let r = do_apply(&s, None, &cfg, "kubectl", false, 0).unwrap();
    assert!(r.object_changed);
    assert_eq!(r.object["spec"], cfg["spec"]);
    assert_eq!(
        summary(&r.object),
        vec![entry(
            "kubectl",
            "Apply",
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:ports":{"k:{\"name\":\"http\"}":{".":{},"f:name":{},"f:port":{}}},"f:size":{},"f:tags":{"v:\"a\"":{}}}}"#
        )]
    );
    let e = &r.managed_fields[0];
    assert_eq!(e.api_version.as_deref(), Some(V1));
    assert_eq!(e.fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(e.time, Some(Time(at(0))));
    assert_eq!(e.subresource, None);
    // The wire form of the entry, as kube-apiserver serves it (Go field order).
    assert_eq!(
        serde_json::to_string(&r.object["metadata"]["managedFields"][0]).unwrap(),
        concat!(
            r#"{"manager":"kubectl","operation":"Apply","apiVersion":"test.ironnet.dev/v1","time":"2023-11-14T22:13:20Z","#,
            r#""fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:ports":{"k:{\"name\":\"http\"}":"#,
            r#"{".":{},"f:name":{},"f:port":{}}},"f:size":{},"f:tags":{"v:\"a\"":{}}}}}"#
        )
    );
}

#[test]
fn applying_the_same_config_twice_is_a_no_op() {
    let s = schema();
    let cfg = obj(json!({"size": 3, "ports": [{"name": "a", "port": 1}], "env": {"A": "1"}}));
    let first = do_apply(&s, None, &cfg, "kubectl", false, 0).unwrap();
    let second = do_apply(&s, Some(&first.object), &cfg, "kubectl", false, 60).unwrap();
    assert!(!second.object_changed);
    assert_eq!(second.object, first.object);
    assert_eq!(
        second.managed_fields, first.managed_fields,
        "not even the time moves"
    );
}

#[test]
fn fields_no_longer_applied_are_removed() {
    let s = schema();
    let first = do_apply(
        &s,
        None,
        &obj(
            json!({"size": 3, "mode": "x", "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}],
                    "tags": ["t1", "t2"], "env": {"A": "1", "B": "2"}}),
        ),
        "kubectl",
        false,
        0,
    )
    .unwrap();
    let second = do_apply(
        &s,
        Some(&first.object),
        &obj(json!({"size": 3, "ports": [{"name": "b", "port": 2}], "tags": ["t2"], "env": {"B": "2"}})),
        "kubectl",
        false,
        1,
    )
    .unwrap();
    assert_eq!(
        second.object["spec"],
        json!({"size": 3, "ports": [{"name": "b", "port": 2}], "tags": ["t2"], "env": {"B": "2"}})
    );
    assert_eq!(second.managed_fields[0].time, Some(Time(at(1))));
    // Applying `spec: null` drops everything the manager applied under spec and leaves the
    // null it asked for.
    let third = do_apply(&s, Some(&second.object), &obj(json!(null)), "kubectl", false, 2).unwrap();
    assert_eq!(third.object.get("spec"), Some(&Value::Null));
    assert_eq!(summary(&third.object)[0].2, r#"{"f:spec":{}}"#);
}

#[test]
fn shared_ownership_keeps_a_field_the_applier_drops() {
    let s = schema();
    let a = do_apply(&s, None, &obj(json!({"size": 1, "mode": "m"})), "a", false, 0).unwrap();
    // Same value: no conflict, both own spec.size.
    let b = do_apply(&s, Some(&a.object), &obj(json!({"size": 1})), "b", false, 1).unwrap();
    assert!(!b.object_changed);
    // b changed nothing, so its entry has no time and sorts first (kube sorts a missing time as 0).
    assert_eq!(managed(&b.object)[0].time, None);
    assert_eq!(
        summary(&b.object),
        vec![
            entry("b", "Apply", r#"{"f:spec":{"f:size":{}}}"#),
            entry("a", "Apply", r#"{"f:spec":{"f:mode":{},"f:size":{}}}"#),
        ]
    );
    let a2 = do_apply(&s, Some(&b.object), &obj(json!({"mode": "m"})), "a", false, 2).unwrap();
    assert_eq!(a2.object["spec"], json!({"size": 1, "mode": "m"}));
    assert_eq!(
        summary(&a2.object),
        vec![
            entry("b", "Apply", r#"{"f:spec":{"f:size":{}}}"#),
            entry("a", "Apply", r#"{"f:spec":{"f:mode":{}}}"#),
        ]
    );
}

#[test]
fn conflicts_fail_without_force_and_move_ownership_with_it() {
    let s = schema();
    let a = do_apply(&s, None, &obj(json!({"size": 1, "mode": "m"})), "a", false, 0).unwrap();
    let err = do_apply(
        &s,
        Some(&a.object),
        &obj(json!({"size": 2, "mode": "n"})),
        "b",
        false,
        1,
    )
    .unwrap_err();
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(conflicts.len(), 2);
    assert_eq!(conflicts[0].field, ".spec.mode");
    assert_eq!(conflicts[0].cause_message(), r#"conflict with "a""#);
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.mode\n- .spec.size"
    );
    let forced = do_apply(&s, Some(&a.object), &obj(json!({"size": 2})), "b", true, 1).unwrap();
    assert_eq!(forced.object["spec"], json!({"size": 2, "mode": "m"}));
    assert_eq!(
        summary(&forced.object),
        vec![
            entry("a", "Apply", r#"{"f:spec":{"f:mode":{}}}"#),
            entry("b", "Apply", r#"{"f:spec":{"f:size":{}}}"#),
        ]
    );
}

#[test]
fn conflict_with_an_update_manager_names_its_version() {
    let s = schema();
    let created = do_update(
        &s,
        None,
        &obj(json!({"size": 1})),
        "kubectl-client-side-apply",
        None,
        0,
    );
    assert_eq!(
        summary(&created),
        vec![entry(
            "kubectl-client-side-apply",
            "Update",
            r#"{"f:spec":{".":{},"f:size":{}}}"#
        )]
    );
    let err = do_apply(&s, Some(&created), &obj(json!({"size": 2})), "kubectl", false, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using test.ironnet.dev/v1: .spec.size"
    );
}

#[test]
fn objects_without_managed_fields_belong_to_before_first_apply() {
    let s = schema();
    let live = obj(json!({"size": 1}));
    let err = do_apply(&s, Some(&live), &obj(json!({"size": 2})), "kubectl", false, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using test.ironnet.dev/v1: .spec.size"
    );
    let ok = do_apply(&s, Some(&live), &obj(json!({"mode": "x"})), "kubectl", false, 1).unwrap();
    assert_eq!(
        summary(&ok.object),
        vec![
            entry("kubectl", "Apply", r#"{"f:spec":{"f:mode":{}}}"#),
            entry(
                "before-first-apply",
                "Update",
                r#"{"f:spec":{".":{},"f:size":{}}}"#
            ),
        ]
    );
}

#[test]
fn map_lists_and_sets_merge_per_element() {
    let s = schema();
    let a = do_apply(
        &s,
        None,
        &obj(json!({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}], "tags": ["x"]})),
        "a",
        false,
        0,
    )
    .unwrap();
    let b = do_apply(
        &s,
        Some(&a.object),
        &obj(json!({"ports": [{"name": "c", "port": 3}], "tags": ["y"]})),
        "b",
        false,
        1,
    )
    .unwrap();
    assert_eq!(
        b.object["spec"],
        json!({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}, {"name": "c", "port": 3}], "tags": ["x", "y"]})
    );
    assert_eq!(
        summary(&b.object)[1],
        entry(
            "b",
            "Apply",
            r#"{"f:spec":{"f:ports":{"k:{\"name\":\"c\"}":{".":{},"f:name":{},"f:port":{}}},"f:tags":{"v:\"y\"":{}}}}"#
        )
    );
    // b adds a field to a's element: no conflict (a does not own protocol), the element is shared.
    // Shared elements take the applied order, elements only in the live list keep their place.
    let b2 = do_apply(
        &s,
        Some(&b.object),
        &obj(json!({"ports": [{"name": "c", "port": 3}, {"name": "a", "protocol": "UDP"}], "tags": ["y"]})),
        "b",
        false,
        2,
    )
    .unwrap();
    assert_eq!(
        b2.object["spec"]["ports"],
        json!([{"name": "b", "port": 2}, {"name": "c", "port": 3}, {"name": "a", "port": 1, "protocol": "UDP"}])
    );
    // a drops element a: its port goes, b's protocol and the shared element stay.
    let a2 = do_apply(
        &s,
        Some(&b2.object),
        &obj(json!({"ports": [{"name": "b", "port": 2}], "tags": ["x"]})),
        "a",
        false,
        3,
    )
    .unwrap();
    assert_eq!(
        a2.object["spec"]["ports"],
        json!([{"name": "b", "port": 2}, {"name": "c", "port": 3}, {"name": "a", "protocol": "UDP"}])
    );
}

#[test]
fn atomic_lists_and_maps_are_replaced_and_conflict_as_a_whole() {
    let s = schema();
    let a = do_apply(
        &s,
        None,
        &obj(json!({"args": ["1", "2"], "selector": {"a": "1", "b": "2"}})),
        "a",
        false,
        0,
    )
    .unwrap();
    assert_eq!(
        summary(&a.object)[0].2,
        r#"{"f:spec":{"f:args":{},"f:selector":{}}}"#
    );
    let err = do_apply(
        &s,
        Some(&a.object),
        &obj(json!({"selector": {"c": "3"}})),
        "b",
        false,
        1,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = err else { panic!() };
    assert_eq!(c[0].field, ".spec.selector");
    let a2 = do_apply(
        &s,
        Some(&a.object),
        &obj(json!({"args": ["3"], "selector": {"c": "3"}})),
        "a",
        false,
        1,
    )
    .unwrap();
    assert_eq!(a2.object["spec"], json!({"args": ["3"], "selector": {"c": "3"}}));
}

#[test]
fn nested_map_lists_with_composite_keys() {
    let s = schema();
    let cfg = obj(json!({"containers": [{"name": "web", "image": "nginx", "ports": [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 53, "protocol": "UDP"}
    ]}]}));
    let a = do_apply(&s, None, &cfg, "a", false, 0).unwrap();
    assert_eq!(
        summary(&a.object)[0].2,
        r#"{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":53,\"protocol\":\"UDP\"}":{".":{},"f:containerPort":{},"f:protocol":{}},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}}}}}}}"#
    );
    let err = do_apply(&s, Some(&a.object), &obj(json!({"containers": [{"name": "web", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "web"}]}]})), "b", false, 1).unwrap_err();
    let ApplyError::Conflicts(c) = err else { panic!() };
    assert_eq!(
        c[0].field,
        r#".spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].name"#
    );
    let a2 = do_apply(
        &s,
        Some(&a.object),
        &obj(json!({"containers": [{"name": "web", "image": "nginx", "ports": [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}]}]})),
        "a",
        false,
        1,
    )
    .unwrap();
    assert_eq!(
        a2.object["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
    );
}

#[test]
fn preserve_unknown_fields_merge_as_granular_maps_with_atomic_lists() {
    let s = schema();
    let a = do_apply(
        &s,
        None,
        &obj(json!({"raw": {"x": {"deep": 1}, "list": [1, 2]}})),
        "a",
        false,
        0,
    )
    .unwrap();
    assert_eq!(
        summary(&a.object)[0].2,
        r#"{"f:spec":{"f:raw":{"f:list":{},"f:x":{".":{},"f:deep":{}}}}}"#
    );
    let b = do_apply(
        &s,
        Some(&a.object),
        &obj(json!({"raw": {"x": {"other": 2}}})),
        "b",
        false,
        1,
    )
    .unwrap();
    assert_eq!(
        b.object["spec"]["raw"],
        json!({"x": {"deep": 1, "other": 2}, "list": [1, 2]})
    );
    let err = do_apply(
        &s,
        Some(&b.object),
        &obj(json!({"raw": {"list": [3]}})),
        "b",
        false,
        2,
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::Conflicts(ref c) if c[0].field == ".spec.raw.list"));
}

#[test]
fn updates_take_ownership_from_appliers_and_no_op_updates_keep_time() {
    let s = schema();
    let a = do_apply(
        &s,
        None,
        &obj(json!({"size": 1, "mode": "m"})),
        "kubectl",
        false,
        0,
    )
    .unwrap();
    let mut edited = a.object.clone();
    edited["spec"]["size"] = json!(5);
    edited["spec"]["env"] = json!({"K": "v"});
    let u = do_update(&s, Some(&a.object), &edited, "kubectl-edit", None, 1);
    assert_eq!(
        summary(&u),
        vec![
            entry("kubectl", "Apply", r#"{"f:spec":{"f:mode":{}}}"#),
            entry(
                "kubectl-edit",
                "Update",
                r#"{"f:spec":{"f:env":{".":{},"f:K":{}},"f:size":{}}}"#
            ),
        ]
    );
    // Writing the same object again changes no entry, not even the time.
    let again = do_update(&s, Some(&u), &u, "kubectl-edit", None, 9);
    assert_eq!(managed(&again), managed(&u));
    // Removing a field removes it from every set; a manager left with nothing disappears.
    let mut removed = u.clone();
    removed["spec"].as_object_mut().unwrap().remove("mode");
    let r = do_update(&s, Some(&u), &removed, "kubectl-edit", None, 10);
    assert_eq!(
        summary(&r),
        vec![entry(
            "kubectl-edit",
            "Update",
            r#"{"f:spec":{"f:env":{".":{},"f:K":{}},"f:size":{}}}"#
        )]
    );
    assert_eq!(
        managed(&r)[0].time,
        Some(Time(at(1))),
        "a removal is not a change the manager owns"
    );
}

#[test]
fn status_writes_get_their_own_entries() {
    let s = schema();
    let created = do_update(&s, None, &obj(json!({"size": 1})), "kubectl-create", None, 0);
    let mut with_status = created.clone();
    with_status["status"] = json!({"phase": "Ready"});
    let u = do_update(&s, Some(&created), &with_status, "controller", Some("status"), 1);
    let entries = managed(&u);
    assert_eq!(entries.len(), 2);
    let status_entry = entries
        .iter()
        .find(|e| e.manager.as_deref() == Some("controller"))
        .unwrap();
    assert_eq!(status_entry.subresource.as_deref(), Some("status"));
    assert_eq!(
        status_entry.fields_v1,
        Some(FieldsV1(json!({"f:status": {".": {}, "f:phase": {}}})))
    );
}

#[test]
fn reset_fields_are_neither_applied_nor_owned() {
    let s = schema();
    let reset = reset_fields(None, true).unwrap();
    let mut cfg = obj(json!({"size": 1}));
    cfg["status"] = json!({"phase": "Hacked"});
    let r = apply(ApplyRequest {
        live: None,
        applied: &cfg,
        manager: "kubectl",
        subresource: None,
        force: false,
        schema: &s,
        managed_fields: &[],
        api_version: V1,
        now: at(0),
        reset_fields: Some(&reset),
    })
    .unwrap();
    assert_eq!(r.object.get("status"), None);
    assert_eq!(summary(&r.object)[0].2, r#"{"f:spec":{"f:size":{}}}"#);
}

#[test]
fn invalid_requests_are_rejected() {
    let s = schema();
    let mut wrong_version = obj(json!({}));
    wrong_version["apiVersion"] = json!("test.ironnet.dev/v2");
    assert_eq!(
        do_apply(&s, None, &wrong_version, "m", false, 0)
            .unwrap_err()
            .to_string(),
        "Incorrect version specified in apply patch. Specified patch version: test.ironnet.dev/v2, expected: test.ironnet.dev/v1"
    );
    let mut with_mf = obj(json!({}));
    with_mf["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        do_apply(&s, None, &with_mf, "m", false, 0).unwrap_err(),
        ApplyError::ManagedFieldsInConfig
    );
    assert!(matches!(
        do_apply(&s, None, &obj(json!({"ports": [{"port": 1}]})), "m", false, 0),
        Err(ApplyError::InvalidConfig(_))
    ));
    assert!(matches!(
        do_apply(&s, None, &obj(json!({"tags": ["a", "a"]})), "m", false, 0),
        Err(ApplyError::InvalidConfig(_))
    ));
    assert_eq!(
        do_apply(&s, None, &json!([]), "m", false, 0).unwrap_err(),
        ApplyError::NotAnObject
    );
    assert_eq!(
        do_apply(&s, None, &obj(json!({})), "", false, 0).unwrap_err(),
        ApplyError::MissingManager
    );
    let mut bad_live = obj(json!({}));
    bad_live["metadata"]["managedFields"] =
        json!([{"manager": "x", "operation": "Bogus", "fieldsType": "FieldsV1"}]);
    assert!(matches!(
        do_apply(&s, Some(&bad_live), &obj(json!({})), "m", false, 0),
        Err(ApplyError::InvalidManagedFields(_))
    ));
    // Updates never fail; undecodable managedFields are dropped, as kube's UpdateNoErrors does.
    let u = do_update(&s, Some(&bad_live), &obj(json!({"size": 1})), "m", None, 0);
    assert!(managed(&u).is_empty());
}
