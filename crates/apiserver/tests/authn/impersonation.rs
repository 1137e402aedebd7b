//! Impersonation headers act as another user only when the authorizer allows `impersonate` on
//! each requested user, group and extra; otherwise kube-apiserver's 403.

use http::Method;
use ironnet_apiserver::kubeconfig::Credentials;

use crate::{Options, Secured, assert_unauthorized, call};

#[tokio::test]
async fn allowed_impersonation_acts_as_the_other_user() {
    let server = Secured::start(Options::default()).await;
    let alice = server.cert_client("alice", &[]).await;
    let headers = [
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "dev"),
        ("Impersonate-Extra-Scopes", "view"),
    ];
    // Alice may list namespaces, bob may not: the request is decided as bob.
    let (code, body) = call(&alice, Method::GET, "/api/v1/namespaces", &headers, None).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "namespaces is forbidden: User \"bob\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    let seen = server.policy.seen.lock().last().cloned().unwrap();
    assert_eq!(seen.name, "bob");
    assert_eq!(seen.groups, vec!["dev", "system:authenticated"]);
    assert_eq!(seen.extra["scopes"], vec!["view"]);

    // An admin may impersonate anyone; as alice the list is allowed.
    let admin = server.admin().await;
    let (code, body) = call(
        &admin,
        Method::GET,
        "/api/v1/namespaces",
        &[("Impersonate-User", "alice")],
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(server.policy.seen.lock().last().unwrap().name, "alice");
    server.stop().await;
}

#[tokio::test]
async fn refused_impersonation_is_forbidden() {
    let server = Secured::start(Options::default()).await;
    let alice = server.cert_client("alice", &[]).await;
    let (code, body) = call(
        &alice,
        Method::GET,
        "/api/v1/namespaces",
        &[("Impersonate-User", "carol")],
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        "users \"carol\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    let (code, body) = call(
        &alice,
        Method::GET,
        "/api/v1/namespaces",
        &[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "system:masters"),
        ],
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "groups \"system:masters\" is forbidden: User \"alice\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
    );
    let (code, body) = call(
        &alice,
        Method::GET,
        "/api/v1/namespaces",
        &[("Impersonate-User", "bob"), ("Impersonate-Uid", "u-1")],
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "uids.authentication.k8s.io \"u-1\" is forbidden: User \"alice\" cannot impersonate resource \"uids\" in API group \"authentication.k8s.io\" at the cluster scope"
    );
    // Nothing ran as anyone but alice.
    assert!(server.policy.seen.lock().iter().all(|u| u.name == "alice"));
    server.stop().await;
}

#[tokio::test]
async fn impersonation_needs_authentication_and_a_user() {
    let server = Secured::start(Options::default()).await;
    let anonymous = server.client(Credentials::None).await;
    assert_unauthorized(
        &call(
            &anonymous,
            Method::GET,
            "/api/v1/namespaces",
            &[("Impersonate-User", "kubernetes-admin")],
            None,
        )
        .await,
    );
    let admin = server.admin().await;
    let (code, body) = call(
        &admin,
        Method::GET,
        "/api/v1/namespaces",
        &[("Impersonate-Group", "dev")],
        None,
    )
    .await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("requested [group \"dev\"] without impersonating a user"),
        "{body}"
    );
    server.stop().await;
}
