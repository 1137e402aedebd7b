//! The audit log records every request of a session — allowed, forbidden and unauthenticated —
//! as audit.k8s.io/v1 events, and rotates by size keeping the configured number of backups.

use std::time::Duration;

use http::Method;
use ironnet_apiserver::kubeconfig::Credentials;
use serde_json::{Value, json};

use crate::{Options, Secured, call, eventually};

fn read_events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn a_scripted_session_is_recorded() {
    let server = Secured::start(Options { audit: Some((0, 0)) }).await;
    let admin = server.admin().await;
    let alice = server.cert_client("alice", &["dev"]).await;
    let anonymous = server.client(Credentials::None).await;
    let forged = server.client(Credentials::Token("nope".into())).await;

    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "audited"}});
    let script: Vec<(u16, Value)> = vec![
        call(
            &admin,
            Method::POST,
            "/api/v1/namespaces",
            &[("user-agent", "script/1")],
            Some(ns),
        )
        .await,
        call(&alice, Method::GET, "/api/v1/namespaces?limit=5", &[], None).await,
        call(&alice, Method::GET, "/api/v1/namespaces/audited", &[], None).await,
        call(
            &anonymous,
            Method::DELETE,
            "/api/v1/namespaces/audited",
            &[],
            None,
        )
        .await,
        call(&forged, Method::GET, "/api/v1/namespaces", &[], None).await,
        call(
            &alice,
            Method::GET,
            "/api/v1/namespaces",
            &[("Impersonate-User", "bob")],
            None,
        )
        .await,
        call(&anonymous, Method::GET, "/healthz", &[], None).await,
    ];
    let codes: Vec<u16> = script.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![201, 200, 403, 401, 401, 403, 200]);

    let events = eventually(Duration::from_secs(10), || {
        let events = read_events(&server.audit_path);
        (events.len() >= script.len()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), script.len(), "{events:#?}");
    for (event, (code, _)) in events.iter().zip(&script) {
        assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(event["kind"], "Event");
        assert_eq!(event["level"], "Metadata");
        assert_eq!(event["stage"], "ResponseComplete");
        assert_eq!(event["responseStatus"]["code"], *code, "{event}");
        assert_eq!(event["sourceIPs"], json!(["127.0.0.1"]));
        assert!(
            event["auditID"].as_str().is_some_and(|id| id.len() == 36),
            "{event}"
        );
        let received = event["requestReceivedTimestamp"].as_str().unwrap();
        let stage = event["stageTimestamp"].as_str().unwrap();
        assert!(received.ends_with('Z') && received <= stage, "{event}");
    }
    let create = &events[0];
    assert_eq!(create["verb"], "create");
    assert_eq!(create["requestURI"], "/api/v1/namespaces");
    assert_eq!(create["userAgent"], "script/1");
    assert_eq!(create["user"]["username"], "kubernetes-admin");
    assert_eq!(
        create["user"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(
        create["objectRef"],
        json!({"resource": "namespaces", "apiVersion": "v1"})
    );
    assert_eq!(create["annotations"]["authorization.k8s.io/decision"], "allow");

    let list = &events[1];
    assert_eq!(list["verb"], "list");
    assert_eq!(list["requestURI"], "/api/v1/namespaces?limit=5");
    assert_eq!(list["user"]["username"], "alice");

    let denied = &events[2];
    assert_eq!(denied["verb"], "get");
    assert_eq!(
        denied["objectRef"],
        json!({"resource": "namespaces", "name": "audited", "apiVersion": "v1"})
    );
    assert_eq!(denied["annotations"]["authorization.k8s.io/decision"], "forbid");

    // Unauthenticated requests: no user, but what they asked for.
    let anonymous_delete = &events[3];
    assert_eq!(anonymous_delete["verb"], "delete");
    assert_eq!(anonymous_delete["user"], json!({}));
    assert_eq!(anonymous_delete["objectRef"]["name"], "audited");
    assert_eq!(events[4]["verb"], "list");
    assert_eq!(events[4]["user"], json!({}));

    let impersonated = &events[5];
    assert_eq!(impersonated["user"]["username"], "alice");
    assert_eq!(impersonated["impersonatedUser"]["username"], "bob");

    let health = &events[6];
    assert_eq!(health["verb"], "get");
    assert_eq!(health["user"]["username"], "system:anonymous");
    assert!(health.get("objectRef").is_none());

    // The log is the admin's to read only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.audit_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    server.stop().await;
}

#[tokio::test]
async fn responses_carry_their_audit_id() {
    let server = Secured::start(Options { audit: Some((0, 0)) }).await;
    let admin = server.admin().await;
    let resp = admin
        .send(
            http::Request::get("/api/v1/namespaces/default")
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    let id = resp.headers()["audit-id"].to_str().unwrap().to_owned();
    let events = eventually(Duration::from_secs(10), || {
        let events = read_events(&server.audit_path);
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events[0]["auditID"], id);
    server.stop().await;
}

#[tokio::test]
async fn the_log_rotates_by_size() {
    const MAX: u64 = 2_000;
    let server = Secured::start(Options {
        audit: Some((MAX, 2)),
    })
    .await;
    let admin = server.admin().await;
    let requests = 40;
    for i in 0..requests {
        let (code, _) = call(
            &admin,
            Method::GET,
            &format!("/api/v1/namespaces/default?n={i}"),
            &[],
            None,
        )
        .await;
        assert_eq!(code, 200);
    }
    // The last request's event is in the current file once the writer caught up.
    let last = format!("/api/v1/namespaces/default?n={}", requests - 1);
    eventually(Duration::from_secs(10), || {
        read_events(&server.audit_path)
            .iter()
            .any(|e| e["requestURI"] == last.as_str())
            .then_some(())
    })
    .await;
    let backups = ironnet_apiserver::audit::backups(&server.audit_path).unwrap();
    assert_eq!(backups.len(), 2, "{backups:?}");
    let mut kept = read_events(&server.audit_path).len();
    for file in backups.iter().chain(std::iter::once(&server.audit_path)) {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= MAX, "{} is {size} bytes", file.display());
        if file != &server.audit_path {
            kept += read_events(file).len();
        }
    }
    // Older events went with the backups beyond the limit; the newest are all kept, in order.
    assert!(kept < requests, "{kept}");
    let mut files = backups.clone();
    files.sort();
    files.push(server.audit_path.clone());
    let uris: Vec<String> = files
        .iter()
        .flat_map(|f| read_events(f))
        .map(|e| e["requestURI"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (requests - uris.len()..requests)
        .map(|i| format!("/api/v1/namespaces/default?n={i}"))
        .collect();
    assert_eq!(uris, expected);
    server.stop().await;
}
