//! The real kubectl and curl (HTTP/2 over TLS) with kubeconfigs and certificates from the
//! server's PKI.

use std::process::Command;
use std::time::Duration;

use ironnet_apiserver::auth::signed::TokenClaims;
use ironnet_apiserver::kubeconfig::Credentials;

use crate::{Options, Secured};

fn kubectl(kubeconfig: &std::path::Path, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("/usr/bin/kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .expect("kubectl runs")
}

#[tokio::test]
async fn kubectl_with_certificate_and_token_kubeconfigs() {
    let server = Secured::start(Options::default()).await;
    let dir = server.dir.path().to_owned();
    let admin = server
        .pki
        .ensure_client_cert("admin", "kubernetes-admin", &["system:masters"])
        .unwrap();
    let admin_path = dir.join("admin.kubeconfig");
    server
        .spec(Credentials::ClientCertificate {
            cert_pem: admin.cert_pem,
            key_pem: admin.key_pem,
        })
        .write(&admin_path)
        .unwrap();
    // From a manifest: kubectl sends it as JSON (its typed commands send protobuf).
    let manifest = dir.join("ns.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-kubectl\n",
    )
    .unwrap();
    let out = tokio::task::spawn_blocking({
        let (p, d, m) = (admin_path.clone(), dir.clone(), manifest.clone());
        move || kubectl(&p, &d, &["create", "-f", m.to_str().unwrap(), "-o", "name"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tokio::task::spawn_blocking({
        let (p, d) = (admin_path.clone(), dir.clone());
        move || kubectl(&p, &d, &["get", "namespaces", "-o", "name"])
    })
    .await
    .unwrap();
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(names.lines().any(|l| l == "namespace/from-kubectl"), "{names}");

    // A signed token for alice: she may list namespaces but not create one.
    let token = server
        .signer
        .sign(&TokenClaims::new("alice", &[], Duration::from_secs(600)));
    let alice_path = dir.join("alice.kubeconfig");
    server.spec(Credentials::Token(token)).write(&alice_path).unwrap();
    let out = tokio::task::spawn_blocking({
        let (p, d) = (alice_path.clone(), dir.clone());
        move || kubectl(&p, &d, &["get", "namespaces", "-o", "name"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tokio::task::spawn_blocking({
        let (p, d) = (alice_path.clone(), dir.clone());
        move || kubectl(&p, &d, &["delete", "namespace", "from-kubectl"])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "namespaces \"from-kubectl\" is forbidden: User \"alice\" cannot delete resource \"namespaces\""
        ),
        "{err}"
    );

    // With a token the server does not know, kubectl is told it is not logged in.
    let anonymous_path = dir.join("unknown.kubeconfig");
    server
        .spec(Credentials::Token("unknown".into()))
        .write(&anonymous_path)
        .unwrap();
    let out = tokio::task::spawn_blocking({
        let (p, d) = (anonymous_path.clone(), dir.clone());
        move || kubectl(&p, &d, &["get", "namespaces"])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("You must be logged in to the server (Unauthorized)"),
        "{err}"
    );
    server.stop().await;
}

/// HTTP/2 is negotiated by ALPN and the client certificate authenticates over it.
#[tokio::test]
async fn curl_over_http2_with_a_client_certificate() {
    let server = Secured::start(Options::default()).await;
    let dir = server.dir.path().to_owned();
    let pair = server
        .pki
        .issue_client_cert("kubernetes-admin", &["system:masters"], Duration::from_secs(600))
        .unwrap();
    std::fs::write(dir.join("client.crt"), &pair.cert_pem).unwrap();
    std::fs::write(dir.join("client.key"), &pair.key_pem).unwrap();
    let url = format!("{}/api/v1/namespaces/default", server.url());
    let curl = |extra: &'static [&'static str]| {
        let dir = dir.clone();
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_version} %{http_code}",
                    "--http2",
                ])
                .arg("--cacert")
                .arg(dir.join("pki/ca.crt"))
                .args(extra)
                .arg(&url)
                .current_dir(&dir)
                .output()
                .expect("curl runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    assert_eq!(
        curl(&["--cert", "client.crt", "--key", "client.key"])
            .await
            .unwrap(),
        "2 200"
    );
    assert_eq!(curl(&[]).await.unwrap(), "2 401");
    assert_eq!(
        curl(&["--http1.1", "--cert", "client.crt", "--key", "client.key"])
            .await
            .unwrap(),
        "1.1 200"
    );
    server.stop().await;
}
