//! Bearer tokens: the static token file and signed tokens; unknown, forged and expired tokens
//! are answered 401.

use std::time::Duration;

use http::Method;
use ironnet_apiserver::auth::signed::{TokenClaims, TokenSigner};
use ironnet_apiserver::kubeconfig::Credentials;

use crate::{Options, Secured, assert_unauthorized, call};

#[tokio::test]
async fn token_file_users() {
    let server = Secured::start(Options::default()).await;
    let carol = server.client(Credentials::Token("token-carol".into())).await;
    // Carol authenticates (the authorizer sees her) but the policy grants her nothing.
    let (code, body) = call(&carol, Method::GET, "/api/v1/namespaces", &[], None).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "namespaces is forbidden: User \"carol\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    let seen = server.policy.seen.lock().last().cloned().unwrap();
    assert_eq!(seen.name, "carol");
    assert_eq!(seen.uid, "uid-carol");
    assert_eq!(seen.groups, vec!["dev", "ops", "system:authenticated"]);

    let unknown = server.client(Credentials::Token("token-mallory".into())).await;
    assert_unauthorized(&call(&unknown, Method::GET, "/api/v1/namespaces", &[], None).await);
    // A scheme other than Bearer is no credential at all.
    let anonymous = server.client(Credentials::None).await;
    assert_unauthorized(
        &call(
            &anonymous,
            Method::GET,
            "/api/v1/namespaces",
            &[("authorization", "Basic Y2Fyb2w6eA==")],
            None,
        )
        .await,
    );
    server.stop().await;
}

#[tokio::test]
async fn signed_node_tokens() {
    let server = Secured::start(Options::default()).await;
    let node = TokenClaims::new(
        "system:node:hv-1",
        &["system:nodes".into()],
        Duration::from_secs(600),
    );
    let client = server.client(Credentials::Token(server.signer.sign(&node))).await;
    let (code, _) = call(&client, Method::GET, "/api/v1/namespaces", &[], None).await;
    assert_eq!(code, 403);
    let seen = server.policy.seen.lock().last().cloned().unwrap();
    assert_eq!(seen.name, "system:node:hv-1");
    assert_eq!(seen.groups, vec!["system:nodes", "system:authenticated"]);

    // A signed token for an admin works like the admin's certificate.
    let admin = TokenClaims::new("root", &["system:masters".into()], Duration::from_secs(600));
    let admin = server
        .client(Credentials::Token(server.signer.sign(&admin)))
        .await;
    assert_eq!(
        call(&admin, Method::GET, "/api/v1/namespaces", &[], None).await.0,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_and_forged_signed_tokens_are_unauthorized() {
    let server = Secured::start(Options::default()).await;
    let before = server.policy.seen.lock().len();
    let mut expired = TokenClaims::new("root", &["system:masters".into()], Duration::from_secs(600));
    expired.exp = expired.iat - 1;
    let client = server
        .client(Credentials::Token(server.signer.sign(&expired)))
        .await;
    assert_unauthorized(&call(&client, Method::GET, "/api/v1/namespaces", &[], None).await);

    let other_key = TokenSigner::from_key(&[42; 32]);
    let valid = TokenClaims::new("root", &["system:masters".into()], Duration::from_secs(600));
    let forged = server.client(Credentials::Token(other_key.sign(&valid))).await;
    assert_unauthorized(&call(&forged, Method::GET, "/api/v1/namespaces", &[], None).await);

    // A truncated signature.
    let mut token = server.signer.sign(&valid);
    token.truncate(token.len() - 4);
    let truncated = server.client(Credentials::Token(token)).await;
    assert_unauthorized(&call(&truncated, Method::GET, "/api/v1/namespaces", &[], None).await);
    assert_eq!(server.policy.seen.lock().len(), before);
    server.stop().await;
}
