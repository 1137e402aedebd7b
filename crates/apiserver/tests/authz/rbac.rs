//! RBAC: Roles and ClusterRoles bound by RoleBindings and ClusterRoleBindings grant exactly their
//! rules (verbs, groups, resources, subresources, names); everything else is 403 with
//! kube-apiserver's message; nobody grants what they do not hold.

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::{Cluster, api, create, eventually, status_of};

const RBAC: &str = "rbac.authorization.k8s.io";

fn leases(client: &kube::Client, ns: Option<&str>) -> kube::Api<kube::api::DynamicObject> {
    api(client, "coordination.k8s.io", "v1", "Lease", "leases", ns)
}

fn lease(name: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": {}})
}

async fn namespace(admin: &kube::Client, name: &str) {
    create(
        &api(admin, "", "v1", "Namespace", "namespaces", None),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await
    .unwrap();
}

async fn role(admin: &kube::Client, ns: Option<&str>, name: &str, rules: Value) {
    let (kind, plural) = if ns.is_some() {
        ("Role", "roles")
    } else {
        ("ClusterRole", "clusterroles")
    };
    create(
        &api(admin, RBAC, "v1", kind, plural, ns),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name}, "rules": rules}),
    )
    .await
    .unwrap();
}

fn binding(ns: Option<&str>, name: &str, role_kind: &str, role: &str, subject: Value) -> Value {
    let kind = if ns.is_some() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role}, "subjects": [subject]})
}

async fn bind(
    admin: &kube::Client,
    ns: Option<&str>,
    name: &str,
    role_kind: &str,
    role: &str,
    subject: Value,
) {
    let plural = if ns.is_some() {
        "rolebindings"
    } else {
        "clusterrolebindings"
    };
    let kind = if ns.is_some() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    create(
        &api(admin, RBAC, "v1", kind, plural, ns),
        binding(ns, name, role_kind, role, subject),
    )
    .await
    .unwrap();
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": RBAC, "name": name})
}

#[tokio::test]
async fn a_namespaced_role_grants_exactly_its_rules() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let alice = c.client("alice").await;
    namespace(&admin, "team").await;
    namespace(&admin, "other").await;
    let forbidden = "leases.coordination.k8s.io is forbidden: User \"alice\" cannot list resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"team\"";
    assert_eq!(
        status_of(leases(&alice, Some("team")).list(&ListParams::default()).await),
        (403, forbidden.to_owned())
    );
    role(
        &admin,
        Some("team"),
        "lease-reader",
        json!([{"verbs": ["get", "list", "watch"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}]),
    )
    .await;
    bind(
        &admin,
        Some("team"),
        "alice-reads",
        "Role",
        "lease-reader",
        user("alice"),
    )
    .await;
    leases(&admin, Some("team"))
        .create(&Default::default(), &serde_json::from_value(lease("l1")).unwrap())
        .await
        .unwrap();
    let team = leases(&alice, Some("team"));
    eventually("alice's binding", || async {
        team.list(&ListParams::default()).await.is_ok()
    })
    .await;
    assert_eq!(team.get("l1").await.unwrap().metadata.name.as_deref(), Some("l1"));
    assert_eq!(
        status_of(create(&team, lease("l2")).await),
        (
            403,
            "leases.coordination.k8s.io is forbidden: User \"alice\" cannot create resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"team\"".to_owned()
        )
    );
    assert_eq!(
        status_of(team.delete("l1", &DeleteParams::default()).await),
        (
            403,
            "leases.coordination.k8s.io \"l1\" is forbidden: User \"alice\" cannot delete resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"team\"".to_owned()
        )
    );
    assert_eq!(
        status_of(leases(&alice, Some("other")).list(&ListParams::default()).await).0,
        403
    );
    assert_eq!(
        status_of(leases(&alice, None).list(&ListParams::default()).await),
        (
            403,
            "leases.coordination.k8s.io is forbidden: User \"alice\" cannot list resource \"leases\" in API group \"coordination.k8s.io\" at the cluster scope".to_owned()
        )
    );
    // Removing the binding takes the permission away again.
    api(&admin, RBAC, "v1", "RoleBinding", "rolebindings", Some("team"))
        .delete("alice-reads", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the binding's removal", || async {
        matches!(team.list(&ListParams::default()).await, Err(kube::Error::Api(s)) if s.code == 403)
    })
    .await;
}

#[tokio::test]
async fn a_cluster_role_bound_in_a_namespace_grants_only_there() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let bob = c.client("bob").await;
    namespace(&admin, "team").await;
    namespace(&admin, "other").await;
    role(
        &admin,
        None,
        "lease-editor",
        json!([{"verbs": ["*"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}]),
    )
    .await;
    bind(
        &admin,
        Some("team"),
        "devs-edit",
        "ClusterRole",
        "lease-editor",
        json!({"kind": "Group", "apiGroup": RBAC, "name": "devs"}),
    )
    .await;
    let team = leases(&bob, Some("team"));
    eventually("bob's group binding", || async {
        team.list(&ListParams::default()).await.is_ok()
    })
    .await;
    create(&team, lease("mine")).await.unwrap();
    team.delete("mine", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        status_of(create(&leases(&bob, Some("other")), lease("x")).await),
        (
            403,
            "leases.coordination.k8s.io is forbidden: User \"bob\" cannot create resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"other\"".to_owned()
        )
    );
}

#[tokio::test]
async fn resource_names_and_subresources_limit_a_rule() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let alice = c.client("alice").await;
    namespace(&admin, "names").await;
    for name in ["a", "b"] {
        create(&leases(&admin, Some("names")), lease(name)).await.unwrap();
    }
    role(
        &admin,
        Some("names"),
        "only-a",
        json!([{"verbs": ["get"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["a"]}]),
    )
    .await;
    bind(&admin, Some("names"), "alice-a", "Role", "only-a", user("alice")).await;
    let names = leases(&alice, Some("names"));
    eventually("alice's named binding", || async { names.get("a").await.is_ok() }).await;
    assert_eq!(status_of(names.get("b").await).0, 403);
    assert_eq!(status_of(names.list(&ListParams::default()).await).0, 403);

    let nodes = api(&admin, "", "v1", "Node", "nodes", None);
    create(
        &nodes,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    )
    .await
    .unwrap();
    role(
        &admin,
        None,
        "node-status",
        json!([{"verbs": ["get", "patch"], "apiGroups": [""], "resources": ["nodes/status"]}]),
    )
    .await;
    bind(
        &admin,
        None,
        "alice-node-status",
        "ClusterRole",
        "node-status",
        user("alice"),
    )
    .await;
    let alice_nodes = api(&alice, "", "v1", "Node", "nodes", None);
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    eventually("alice's status binding", || async {
        alice_nodes
            .patch_status("n1", &PatchParams::default(), &Patch::Merge(&ready))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        status_of(
            alice_nodes
                .patch("n1", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"labels": {"x": "y"}}})))
                .await
        ),
        (
            403,
            "nodes \"n1\" is forbidden: User \"alice\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope".to_owned()
        )
    );
    assert_eq!(status_of(alice_nodes.get("n1").await).0, 403);
}

#[tokio::test]
async fn nobody_grants_or_binds_what_they_do_not_hold() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let alice = c.client("alice").await;
    namespace(&admin, "esc").await;
    role(
        &admin,
        Some("esc"),
        "rbac-writer",
        json!([
            {"verbs": ["create", "update"], "apiGroups": [RBAC], "resources": ["roles", "rolebindings"]},
            {"verbs": ["get", "list"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}
        ]),
    )
    .await;
    bind(
        &admin,
        Some("esc"),
        "alice-writes",
        "Role",
        "rbac-writer",
        user("alice"),
    )
    .await;
    let roles = api(&alice, RBAC, "v1", "Role", "roles", Some("esc"));
    let bindings = api(&alice, RBAC, "v1", "RoleBinding", "rolebindings", Some("esc"));
    let reader = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
        "rules": [{"verbs": ["get"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["x"]}]});
    eventually("alice's rbac-writer binding", || {
        let reader = reader.clone();
        let roles = roles.clone();
        async move { create(&roles, reader).await.is_ok() }
    })
    .await;
    let too_much = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "too-much"},
        "rules": [{"verbs": ["get", "delete"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}]});
    assert_eq!(
        status_of(create(&roles, too_much.clone()).await),
        (
            403,
            "roles.rbac.authorization.k8s.io \"too-much\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"coordination.k8s.io\"], Resources:[\"leases\"], Verbs:[\"delete\"]}".to_owned()
        )
    );
    // Binding a role alice holds is fine; binding `edit` (which she does not hold) is not.
    create(
        &bindings,
        binding(Some("esc"), "bob-reads", "Role", "reader", user("bob")),
    )
    .await
    .unwrap();
    let (code, message) = status_of(
        create(
            &bindings,
            binding(Some("esc"), "bob-edits", "ClusterRole", "edit", user("bob")),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert!(
        message.starts_with("rolebindings.rbac.authorization.k8s.io \"bob-edits\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"),
        "{message}"
    );
    // The escalate and bind verbs lift the checks, as in kube.
    role(
        &admin,
        Some("esc"),
        "escalator",
        json!([
            {"verbs": ["escalate"], "apiGroups": [RBAC], "resources": ["roles"]},
            {"verbs": ["bind"], "apiGroups": [RBAC], "resources": ["clusterroles"], "resourceNames": ["edit"]}
        ]),
    )
    .await;
    bind(
        &admin,
        Some("esc"),
        "alice-escalates",
        "Role",
        "escalator",
        user("alice"),
    )
    .await;
    eventually("alice's escalate verb", || {
        let roles = roles.clone();
        let too_much = too_much.clone();
        async move { create(&roles, too_much).await.is_ok() }
    })
    .await;
    create(
        &bindings,
        binding(Some("esc"), "bob-edits", "ClusterRole", "edit", user("bob")),
    )
    .await
    .unwrap();
    // roleRef cannot change.
    let admin_bindings = api(&admin, RBAC, "v1", "RoleBinding", "rolebindings", Some("esc"));
    let (code, message) = status_of(
        admin_bindings
            .patch(
                "bob-reads",
                &PatchParams::default(),
                &Patch::Merge(&json!({"roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "too-much"}})),
            )
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("roleRef: Invalid value") && message.contains("cannot change roleRef"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_rbac_objects_are_refused_with_field_errors() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let roles = api(&admin, RBAC, "v1", "Role", "roles", Some("default"));
    let (code, message) = status_of(
        create(
            &roles,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "bad"},
                "rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]}),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("rules[0].verbs: Required value: verbs must contain at least one value"),
        "{message}"
    );
    assert!(
        message.contains("rules[1].nonResourceURLs: Invalid value"),
        "{message}"
    );
    let crbs = api(
        &admin,
        RBAC,
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        None,
    );
    let (code, message) = status_of(
        create(
            &crbs,
            binding(None, "bad", "Role", "x", json!({"kind": "Robot", "name": "r2"})),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("roleRef.kind: Unsupported value: \"Role\""),
        "{message}"
    );
    assert!(
        message.contains("subjects[0].kind: Unsupported value: \"Robot\""),
        "{message}"
    );
    // Role names are path segments, as kube's (`system:` names are common).
    role(
        &admin,
        None,
        "system:custom",
        json!([{"verbs": ["get"], "nonResourceURLs": ["/x"]}]),
    )
    .await;
}

#[tokio::test]
async fn unauthenticated_requests_reach_only_public_paths() {
    let c = Cluster::start().await;
    let base = format!("http://{}", c.addr);
    let get = |path: &str, token: Option<&str>| {
        let url = format!("{base}{path}");
        let token = token.map(str::to_owned);
        async move {
            let mut args = vec![
                "-s".to_owned(),
                "-o".into(),
                "/dev/null".into(),
                "-w".into(),
                "%{http_code}".into(),
            ];
            if let Some(t) = token {
                args.push("-H".into());
                args.push(format!("Authorization: Bearer {t}"));
            }
            args.push(url);
            let out = tokio::process::Command::new("curl")
                .args(&args)
                .output()
                .await
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        }
    };
    assert_eq!(get("/api/v1/namespaces", None).await, "401");
    assert_eq!(get("/api/v1/namespaces", Some("nobody")).await, "401");
    assert_eq!(get("/healthz", None).await, "200");
    assert_eq!(get("/version", None).await, "200");
    assert_eq!(get("/apis", Some("alice")).await, "200");
    assert_eq!(get("/openapi/v3", Some("alice")).await, "200");
    assert_eq!(get("/api/v1/namespaces", Some("alice")).await, "403");
    assert_eq!(get("/api/v1/namespaces", Some("admin")).await, "200");
}

async fn post(client: &kube::Client, path: &str, body: Value) -> Value {
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(request).await.unwrap()
}

#[tokio::test]
async fn access_reviews_answer_for_oneself_and_for_others() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let alice = c.client("alice").await;
    namespace(&admin, "team").await;
    role(
        &admin,
        Some("team"),
        "lease-reader",
        json!([{"verbs": ["get"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}]),
    )
    .await;
    bind(
        &admin,
        Some("team"),
        "alice-reads",
        "Role",
        "lease-reader",
        user("alice"),
    )
    .await;
    let ssar = |verb: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "group": "coordination.k8s.io", "resource": "leases", "namespace": ns}}})
    };
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    eventually("alice's binding", || {
        let alice = alice.clone();
        let body = ssar("get", "team");
        async move { post(&alice, path, body).await["status"]["allowed"] == true }
    })
    .await;
    let answer = post(&alice, path, ssar("get", "team")).await;
    assert_eq!(answer["kind"], "SelfSubjectAccessReview");
    assert_eq!(
        answer["status"]["reason"],
        "RBAC: allowed by RoleBinding \"alice-reads/team\" of Role \"lease-reader\" to User \"alice\""
    );
    assert_eq!(
        post(&alice, path, ssar("delete", "team")).await["status"]["allowed"],
        false
    );
    assert_eq!(
        post(&alice, path, ssar("get", "other")).await["status"]["allowed"],
        false
    );

    // Only who may create subjectaccessreviews asks about others.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "groups": ["system:authenticated"],
            "resourceAttributes": {"verb": "get", "group": "coordination.k8s.io", "resource": "leases", "namespace": "team"}}});
    let sar_path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    assert_eq!(
        post(&admin, sar_path, sar.clone()).await["status"]["allowed"],
        true
    );
    let request = http::Request::post(sar_path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&sar).unwrap())
        .unwrap();
    assert_eq!(status_of(alice.request::<Value>(request).await).0, 403);

    // The rules review lists what alice holds in the namespace.
    let rules = post(
        &alice,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "team"}}),
    )
    .await;
    let resource_rules = rules["status"]["resourceRules"].as_array().unwrap();
    assert!(
        resource_rules
            .iter()
            .any(|r| r["resources"] == json!(["leases"]) && r["verbs"] == json!(["get"])),
        "{rules}"
    );
    assert!(
        resource_rules
            .iter()
            .any(|r| r["resources"] == json!(["selfsubjectaccessreviews", "selfsubjectrulesreviews"])),
        "{rules}"
    );
    let me = post(
        &alice,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await;
    assert_eq!(me["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["system:authenticated"])
    );
}
