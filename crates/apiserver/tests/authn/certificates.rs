//! Client certificates: CN is the user, O the groups; only chains issued by the client CA and
//! within their validity authenticate.

use std::time::Duration;

use http::Method;
use ironnet_apiserver::kubeconfig::Credentials;
use ironnet_apiserver::pki::Pki;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};

use crate::{Options, Secured, assert_unauthorized, call};

#[tokio::test]
async fn certificate_names_the_user_and_groups() {
    let server = Secured::start(Options::default()).await;
    let alice = server.cert_client("alice", &["dev"]).await;
    let (code, body) = call(&alice, Method::GET, "/api/v1/namespaces", &[], None).await;
    assert_eq!(code, 200, "{body}");
    let seen = server.policy.seen.lock().last().cloned().unwrap();
    assert_eq!(seen.name, "alice");
    assert_eq!(seen.groups, vec!["dev", "system:authenticated"]);
    // ironnet's PKI issues certificates with one group; more are refused, not dropped.
    let err = server
        .pki
        .issue_client_cert("alice", &["dev", "ops"], Duration::from_secs(60))
        .unwrap_err();
    assert!(err.to_string().contains("at most one group"), "{err}");
    server.stop().await;
}

/// A certificate with several organizations (as an operator's own tooling issues them, here
/// openssl with the cluster CA) gives the user every one of them as a group.
#[tokio::test]
async fn every_organization_is_a_group() {
    let server = Secured::start(Options::default()).await;
    let dir = server.dir.path().to_owned();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("ext.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "multi.key",
        "-subj",
        "/O=dev/O=ops/CN=alice",
        "-out",
        "multi.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "multi.csr",
        "-CA",
        "pki/ca.crt",
        "-CAkey",
        "pki/ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "multi.crt",
    ]);
    let alice = server
        .client(Credentials::ClientCertificate {
            cert_pem: std::fs::read_to_string(dir.join("multi.crt")).unwrap(),
            key_pem: std::fs::read_to_string(dir.join("multi.key")).unwrap(),
        })
        .await;
    let (code, body) = call(&alice, Method::GET, "/api/v1/namespaces", &[], None).await;
    assert_eq!(code, 200, "{body}");
    let seen = server.policy.seen.lock().last().cloned().unwrap();
    assert_eq!(seen.name, "alice");
    assert_eq!(seen.groups, vec!["dev", "ops", "system:authenticated"]);
    server.stop().await;
}

#[tokio::test]
async fn no_credentials_reach_only_the_public_paths() {
    let server = Secured::start(Options::default()).await;
    let anonymous = server.client(Credentials::None).await;
    assert_unauthorized(&call(&anonymous, Method::GET, "/api/v1/namespaces", &[], None).await);
    assert_unauthorized(&call(&anonymous, Method::GET, "/apis", &[], None).await);
    let create = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
    assert_unauthorized(&call(&anonymous, Method::POST, "/api/v1/namespaces", &[], Some(create)).await);
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, body) = call(&anonymous, Method::GET, path, &[], None).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    // Nothing anonymous reached the authorizer as a resource request.
    assert!(server.policy.seen.lock().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_unauthorized() {
    let server = Secured::start(Options::default()).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::load_or_create(other_dir.path()).unwrap();
    // Claims to be an admin, but no CA the server trusts issued it.
    let pair = other
        .issue_client_cert("kubernetes-admin", &["system:masters"], Duration::from_secs(3600))
        .unwrap();
    let forged = server
        .client(Credentials::ClientCertificate {
            cert_pem: pair.cert_pem,
            key_pem: pair.key_pem,
        })
        .await;
    assert_unauthorized(&call(&forged, Method::GET, "/api/v1/namespaces", &[], None).await);
    assert!(server.policy.seen.lock().is_empty());
    server.stop().await;
}

/// A certificate from the server's own CA whose validity ended an hour ago.
#[tokio::test]
async fn an_expired_certificate_is_unauthorized() {
    let server = Secured::start(Options::default()).await;
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(server.dir.path().join("pki/ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(server.pki.ca_pem(), &ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "system:masters");
    dn.push(DnType::CommonName, "kubernetes-admin");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(2);
    params.not_after = now - time::Duration::hours(1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let expired = server
        .client(Credentials::ClientCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
        .await;
    assert_unauthorized(&call(&expired, Method::GET, "/api/v1/namespaces", &[], None).await);

    // The same CA and names within their validity do authenticate.
    let admin = server.admin().await;
    assert_eq!(
        call(&admin, Method::GET, "/api/v1/namespaces", &[], None).await.0,
        200
    );
    server.stop().await;
}

/// A certificate that expires while its connection stays open stops authenticating on that
/// connection too (the server verifies a connection's chain once and remembers its expiry).
#[tokio::test]
async fn a_certificate_expiring_mid_connection_stops_authenticating() {
    let server = Secured::start(Options::default()).await;
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(server.dir.path().join("pki/ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(server.pki.ca_pem(), &ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "system:masters");
    dn.push(DnType::CommonName, "short-lived");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(3);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let client = server
        .client(Credentials::ClientCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
        .await;
    let (code, body) = call(&client, Method::GET, "/api/v1/namespaces", &[], None).await;
    assert_eq!(code, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let answer = call(&client, Method::GET, "/api/v1/namespaces", &[], None).await;
        if answer.0 == 401 {
            assert_unauthorized(&answer);
            break;
        }
        assert_eq!(answer.0, 200, "{}", answer.1);
        assert!(
            std::time::Instant::now() < deadline,
            "still authenticated after expiry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}
