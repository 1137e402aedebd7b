//! Round trips JSON → protobuf → JSON for every built-in kind, and decoding errors.

use serde_json::{Value, json};

use super::*;

fn meta(name: &str) -> Value {
    json!({
        "name": name, "namespace": "default", "uid": "6f1b1f3e-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
        "resourceVersion": "42", "generation": 3, "creationTimestamp": "2026-12-07T17:00:00Z",
        "labels": {"app": "x", "tier": "web"}, "annotations": {"note": "a\nb"},
        "finalizers": ["example.com/f"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u1",
                             "controller": false, "blockOwnerDeletion": true}],
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                           "time": "2026-12-07T17:00:01Z", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]
    })
}

fn samples() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "deletionGracePeriodSeconds": 0},
               "spec": {"finalizers": ["kubernetes"]},
               "status": {"phase": "Terminating", "conditions": [{"type": "NamespaceDeletionContentFailure",
                   "status": "False", "lastTransitionTime": "2026-12-07T17:00:02Z", "reason": "R", "message": "m"}]}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": meta("n1"),
               "spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24", "fd00::/64"], "providerID": "metal://n1",
                        "unschedulable": true,
                        "taints": [{"key": "k", "value": "v", "effect": "NoSchedule", "timeAdded": "2026-12-07T17:00:03Z"}]},
               "status": {"capacity": {"cpu": "4", "memory": "16Gi"}, "allocatable": {"cpu": "3500m"},
                          "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-07T17:00:04Z",
                                          "lastTransitionTime": "2026-12-07T17:00:04Z", "reason": "KubeletReady", "message": "ok"}],
                          "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                          "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1",
                                       "osImage": "Debian", "containerRuntimeVersion": "none", "kubeletVersion": "v1.32.0",
                                       "operatingSystem": "linux", "architecture": "amd64"}}}),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": meta("n1.17f"),
               "involvedObject": {"kind": "Network", "namespace": "default", "name": "net", "uid": "u2",
                                  "apiVersion": "networking.ironcore.dev/v1alpha1", "resourceVersion": "7",
                                  "fieldPath": "spec.peerings[0]"},
               "reason": "Synced", "message": "done", "source": {"component": "ctl", "host": "h"},
               "firstTimestamp": "2026-12-07T17:00:00Z", "lastTimestamp": "2026-12-07T17:00:05Z", "count": 2,
               "type": "Normal", "eventTime": "2026-12-07T17:00:00.123456Z",
               "series": {"count": 2, "lastObservedTime": "2026-12-07T17:00:05.000001Z"},
               "action": "Sync", "related": {"kind": "Node", "name": "n1"},
               "reportingComponent": "ctl", "reportingInstance": "ctl-1"}),
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("e1"),
               "eventTime": "2026-12-07T17:00:00.500000Z", "series": {"count": 3, "lastObservedTime": "2026-12-07T17:00:09.000000Z"},
               "reportingController": "ironnet.dev/ctl", "reportingInstance": "ctl-1", "action": "Reconcile",
               "reason": "Synced", "regarding": {"kind": "Network", "name": "net", "namespace": "default"},
               "note": "synced", "type": "Warning", "deprecatedCount": 1}),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("l1"),
               "spec": {"holderIdentity": "", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                        "acquireTime": "2026-12-07T17:00:00.000000Z", "renewTime": "2026-12-07T17:00:10.250000Z"}}),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "LeaseList", "metadata": {"resourceVersion": "9", "continue": "abc"},
               "items": [{"metadata": {"name": "l1"}, "spec": {"holderIdentity": "me"}}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("r"),
               "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["events"], "resourceNames": ["x"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "c"},
               "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("rb"),
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                            {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBindingList", "metadata": {},
               "items": [{"metadata": {"name": "crb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "c"}}]}),
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
               "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "events"},
                        "user": "alice", "groups": ["g"], "extra": {"scopes": ["a", "b"]}, "uid": "1"},
               "status": {"allowed": false, "reason": "no rule"}}),
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
               "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
               "status": {"allowed": true}}),
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "metadata": {},
               "spec": {"namespace": "default"},
               "status": {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                          "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false}}),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {"creationTimestamp": "2026-12-07T17:00:00Z"},
               "status": {"userInfo": {"username": "admin", "groups": ["system:masters"], "extra": {"k": ["v"]}}}}),
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
               "message": "namespaces \"x\" not found", "reason": "NotFound",
               "details": {"name": "x", "kind": "namespaces", "causes": [{"reason": "FieldValueInvalid", "message": "m", "field": "spec"}]},
               "code": 404}),
    ]
}

#[test]
fn every_builtin_kind_round_trips() {
    for sample in samples() {
        let pb = encode(&sample).expect("kind has a codec").expect("encodes");
        assert!(pb.starts_with(MAGIC));
        let back = decode(&pb).expect("decodes");
        assert_eq!(back, sample, "round trip of {}", sample["kind"]);
    }
}

#[test]
fn table_covers_the_served_builtin_kinds() {
    let mut registry = crate::registry::Registry::new();
    crate::builtin::register_builtins(&mut registry);
    for kind in registry.kinds() {
        let (v, k) = (kind.def.api_version(), kind.def.kind.clone());
        assert!(supports(&v, &k), "{v} {k}");
        // The reviews are create-only: they have no lists.
        let review = matches!(
            kind.def.group.as_str(),
            "authorization.k8s.io" | "authentication.k8s.io"
        );
        assert!(review || supports(&v, &format!("{k}List")), "{v} {k}List");
    }
}

#[test]
fn times_are_go_shaped() {
    // metav1.Time keeps seconds only; MicroTime keeps microseconds; Go's zero time is omitted.
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"creationTimestamp": "2026-12-07T17:00:00.999Z"},
                    "eventTime": "2026-12-07T17:00:00.1234567Z"});
    let back = decode(&encode(&ev).unwrap().unwrap()).unwrap();
    assert_eq!(back["metadata"]["creationTimestamp"], "2026-12-07T17:00:00Z");
    assert_eq!(back["eventTime"], "2026-12-07T17:00:00.123456Z");
    let zero = meta::ObjectMeta {
        name: Some("a".into()),
        creation_timestamp: Some(meta::Time::default()),
        uid: Some(String::new()),
        generation: Some(0),
        ..Default::default()
    };
    assert_eq!(zero.to_json(), json!({"name": "a"}));
}

#[test]
fn int_or_string_and_quantity() {
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    for v in [json!(8080), json!("http")] {
        assert_eq!(IntOrString::from_json(&v, "p").unwrap().to_json(), v);
    }
    assert_eq!(Quantity::from_json(&json!(2), "q").unwrap().to_json(), json!("2"));
    assert!(
        IntOrString::from_json(&json!(1.5), "port")
            .unwrap_err()
            .contains("port")
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let err = |b: &[u8]| decode(b).unwrap_err().to_string();
    assert!(err(b"{\"kind\":\"Namespace\"}").contains("expected prefix [107 56 115 0]"));
    assert!(err(b"k8s\0\xff\xff").contains("invalid protobuf envelope"));
    let unknown = |api_version: &str, kind: &str, raw: Vec<u8>| {
        let mut out = MAGIC.to_vec();
        out.extend(
            Unknown {
                type_meta: Some(TypeMeta {
                    api_version: Some(api_version.into()),
                    kind: Some(kind.into()),
                }),
                raw: Some(raw),
                content_encoding: None,
                content_type: None,
            }
            .encode_to_vec(),
        );
        out
    };
    assert_eq!(
        decode(&unknown("networking.ironcore.dev/v1alpha1", "Network", vec![])).unwrap_err(),
        ProtobufError::UnknownKind {
            api_version: "networking.ironcore.dev/v1alpha1".into(),
            kind: "Network".into()
        }
    );
    assert!(
        err(&unknown("v1", "Namespace", vec![0x0a, 0x05, 0x01]))
            .contains("decoding Namespace: invalid protobuf")
    );
    assert!(err(&unknown("v1", "", vec![])).contains("names no kind"));
    // A JSON object that does not fit the message is refused, not half-encoded.
    let bad = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": 5}});
    assert_eq!(
        encode(&bad).unwrap().unwrap_err().to_string(),
        "encoding Namespace: metadata.name: expected a string, got number"
    );
}

#[test]
fn watch_frames_round_trip() {
    let ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "resourceVersion": "5"}});
    let mut stream = watch_frame("ADDED", &ns).unwrap().unwrap();
    stream.extend(watch_frame("DELETED", &ns).unwrap().unwrap());
    let (t, obj, rest) = read_watch_frame(&stream).unwrap().unwrap();
    assert_eq!((t.as_str(), &obj), ("ADDED", &ns));
    let (t, _, rest) = read_watch_frame(rest).unwrap().unwrap();
    assert_eq!((t.as_str(), rest.len()), ("DELETED", 0));
    assert!(read_watch_frame(&stream[..3]).unwrap().is_none());
    assert!(read_watch_frame(&stream[..10]).unwrap().is_none());
}

#[test]
fn accept_preferences() {
    use Preference::*;
    for (accept, want) in [
        (
            Some("application/vnd.kubernetes.protobuf,application/json"),
            Preferred,
        ),
        (Some("application/vnd.kubernetes.protobuf, */*"), Preferred),
        (Some("application/vnd.kubernetes.protobuf"), Only),
        (Some("application/json, application/vnd.kubernetes.protobuf"), No),
        (
            Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            No,
        ),
        (None, No),
    ] {
        assert_eq!(Preference::from_accept(accept), want, "{accept:?}");
    }
}

proptest::proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                                             kind in proptest::sample::select(vec!["Namespace", "Node", "Event", "Status"])) {
        // Arbitrary bytes as the object of a known kind, to reach the message decoders.
        let mut envelope = MAGIC.to_vec();
        envelope.extend(Unknown {
            type_meta: Some(TypeMeta { api_version: Some("v1".into()), kind: Some(kind.into()) }),
            raw: Some(body.clone()),
            content_encoding: None,
            content_type: None,
        }.encode_to_vec());
        let _ = decode(&envelope);
        let _ = decode(&body);
        let _ = read_watch_frame(&body);
    }
}
