//! kube's protobuf encoding end to end: the real kubectl's typed commands on built-in kinds,
//! a captured kubectl request body, protobuf responses, errors and watch streams over TCP, and
//! custom kinds staying JSON.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use ironnet_apiserver::protobuf::{self, MEDIA_TYPE};
use serde_json::{Value, json};

#[path = "../support/gadget_server.rs"]
mod support;
use support::GadgetServer;

const KUBECTL_NAMESPACE: &[u8] = include_bytes!("../fixtures/kubectl-create-namespace.pb");

struct Reply {
    status: u16,
    content_type: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        assert_eq!(
            self.content_type,
            "application/json",
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).unwrap()
    }
    fn protobuf(&self) -> Value {
        assert_eq!(self.content_type, MEDIA_TYPE);
        protobuf::decode(&self.body).unwrap()
    }
}

async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::copy_from_slice(body))).unwrap()
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let resp = connect(addr)
        .await
        .send_request(request(method, path, headers, body))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body,
    }
}

const PB_FIRST: &str = "application/vnd.kubernetes.protobuf,application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_typed_commands_on_builtin_kinds() {
    let s = GadgetServer::start().await;
    assert_eq!(
        s.kubectl_ok(&["create", "namespace", "team-a"]).await.trim(),
        "namespace/team-a created"
    );
    let ns: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "namespace", "team-a", "-o", "json"]).await).unwrap();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    // A second create is refused with kube's AlreadyExists message, read from a protobuf Status.
    let (ok, _, stderr) = s.kubectl(&["create", "namespace", "team-a"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("Error from server (AlreadyExists): namespaces \"team-a\" already exists"),
        "{stderr}"
    );
    let described = s.kubectl_ok(&["describe", "namespace", "team-a"]).await;
    assert!(
        described.contains("Name:") && described.contains("team-a"),
        "{described}"
    );
    assert!(
        described.contains("Status:") && described.contains("Active"),
        "{described}"
    );

    // RBAC kinds: kubectl's typed create commands send protobuf and read protobuf back.
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=events",
            "-n",
            "team-a"
        ])
        .await
        .trim(),
        "role.rbac.authorization.k8s.io/reader created"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "rolebinding",
            "alice-reads",
            "--role=reader",
            "--user=alice",
            "-n",
            "team-a"
        ])
        .await
        .trim(),
        "rolebinding.rbac.authorization.k8s.io/alice-reads created"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get",
            "--resource=nodes"
        ])
        .await
        .trim(),
        "clusterrole.rbac.authorization.k8s.io/node-reader created"
    );
    let role: Value = serde_json::from_str(
        &s.kubectl_ok(&["get", "role", "reader", "-n", "team-a", "-o", "json"])
            .await,
    )
    .unwrap();
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]}])
    );
    let binding: Value = serde_json::from_str(
        &s.kubectl_ok(&["get", "rolebinding", "alice-reads", "-n", "team-a", "-o", "json"])
            .await,
    )
    .unwrap();
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}])
    );
    let described = s
        .kubectl_ok(&["describe", "role", "reader", "-n", "team-a"])
        .await;
    assert!(
        described.contains("events") && described.contains("[get list]"),
        "{described}"
    );
    // A SelfSubjectAccessReview in protobuf (without an authorizer, everything is allowed).
    assert_eq!(
        s.kubectl_ok(&["auth", "can-i", "create", "namespaces"])
            .await
            .trim(),
        "yes"
    );
    s.kubectl_ok(&["delete", "namespace", "team-a", "--wait=false"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_kubectl_request_body_creates_the_namespace() {
    // The exact bytes kubectl 1.32 sent for `kubectl create namespace captured-ns`.
    assert_eq!(
        protobuf::decode(KUBECTL_NAMESPACE).unwrap(),
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "captured-ns"}, "spec": {}, "status": {}})
    );
    let s = GadgetServer::start().await;
    let created = send(
        s.addr,
        "POST",
        "/api/v1/namespaces?fieldManager=kubectl-create&fieldValidation=Strict",
        &[("content-type", MEDIA_TYPE), ("accept", PB_FIRST)],
        KUBECTL_NAMESPACE,
    )
    .await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let ns = created.protobuf();
    assert_eq!(ns["metadata"]["name"], "captured-ns");
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["metadata"]["managedFields"][0]["manager"], "kubectl-create");
    // The same object read as JSON is the JSON view of what protobuf returned.
    let read = send(s.addr, "GET", "/api/v1/namespaces/captured-ns", &[], b"")
        .await
        .json();
    assert_eq!(read, ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_a_400_that_says_why() {
    let s = GadgetServer::start().await;
    let cases: [(&[u8], &str); 4] = [
        (
            b"{\"kind\":\"Namespace\"}",
            "does not appear to be a protobuf message, expected prefix [107 56 115 0]",
        ),
        (b"k8s\0\x0a\xff", "invalid protobuf envelope"),
        (
            &KUBECTL_NAMESPACE[..KUBECTL_NAMESPACE.len() - 9],
            "invalid protobuf envelope",
        ),
        (
            b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x03\x0a\x05\x01",
            "decoding Namespace: invalid protobuf",
        ),
    ];
    for (body, why) in cases {
        let r = send(
            s.addr,
            "POST",
            "/api/v1/namespaces",
            &[("content-type", MEDIA_TYPE)],
            body,
        )
        .await;
        let status = r.json();
        assert_eq!(
            (r.status, status["reason"].as_str()),
            (400, Some("BadRequest")),
            "{status}"
        );
        let message = status["message"].as_str().unwrap();
        assert!(
            message.starts_with("error decoding request body as Namespace from protobuf: "),
            "{message}"
        );
        assert!(message.contains(why), "{message}");
    }
    let listed = send(s.addr, "GET", "/api/v1/namespaces", &[], b"").await.json();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        4,
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_errors_and_custom_kinds() {
    let s = GadgetServer::start().await;
    let list = send(s.addr, "GET", "/api/v1/namespaces", &[("accept", PB_FIRST)], b"").await;
    let list = list.protobuf();
    assert_eq!(list["kind"], "NamespaceList");
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );

    let missing = send(
        s.addr,
        "GET",
        "/api/v1/namespaces/nope",
        &[("accept", PB_FIRST)],
        b"",
    )
    .await;
    assert_eq!(missing.status, 404);
    let status = missing.protobuf();
    assert_eq!(
        (
            status["kind"].as_str(),
            status["reason"].as_str(),
            status["code"].as_i64()
        ),
        (Some("Status"), Some("NotFound"), Some(404))
    );
    assert_eq!(status["message"], "namespaces \"nope\" not found");

    // Custom kinds stay JSON: JSON when it is acceptable, 406 when only protobuf is, 415 for a protobuf body.
    let gadgets = "/apis/test.ironnet.dev/v1/namespaces/default/gadgets";
    let r = send(s.addr, "GET", gadgets, &[("accept", PB_FIRST)], b"").await;
    assert_eq!((r.status, r.json()["kind"].as_str()), (200, Some("GadgetList")));
    let r = send(s.addr, "GET", gadgets, &[("accept", MEDIA_TYPE)], b"").await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (406, Some("NotAcceptable"))
    );
    let gadget = br#"{"apiVersion":"test.ironnet.dev/v1","kind":"Gadget","metadata":{"name":"g"}}"#;
    let r = send(
        s.addr,
        "POST",
        gadgets,
        &[("accept", MEDIA_TYPE), ("content-type", "application/json")],
        gadget,
    )
    .await;
    assert_eq!(r.status, 406, "refused before anything is written");
    let r = send(s.addr, "GET", &format!("{gadgets}/g"), &[], b"").await;
    assert_eq!(r.status, 404);
    let r = send(
        s.addr,
        "POST",
        gadgets,
        &[("content-type", MEDIA_TYPE)],
        KUBECTL_NAMESPACE,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_length_prefixed_frames() {
    let s = GadgetServer::start().await;
    let resp = connect(s.addr)
        .await
        .send_request(request(
            "GET",
            "/api/v1/namespaces?watch=true&fieldSelector=metadata.name%3Dwatched",
            &[("accept", PB_FIRST)],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], protobuf::WATCH_MEDIA_TYPE);
    let mut body = resp.into_body();
    let ns = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"watched"}}"#;
    let created = send(
        s.addr,
        "POST",
        "/api/v1/namespaces",
        &[("content-type", "application/json")],
        ns,
    )
    .await;
    assert_eq!(created.status, 201);
    let mut buf = Vec::new();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some((type_, obj, _)) = protobuf::read_watch_frame(&buf).unwrap() {
                return (type_, obj);
            }
            let frame = body.frame().await.expect("stream open").unwrap();
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
        }
    })
    .await
    .expect("an event within 10 s");
    assert_eq!(event.0, "ADDED");
    assert_eq!(event.1, created.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_options_in_protobuf() {
    // client-go's typed clients send DeleteOptions as protobuf.
    let s = GadgetServer::start().await;
    let ns = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"}}"#;
    assert_eq!(
        send(
            s.addr,
            "POST",
            "/api/v1/namespaces",
            &[("content-type", "application/json")],
            ns
        )
        .await
        .status,
        201
    );
    let uid = send(s.addr, "GET", "/api/v1/namespaces/doomed", &[], b"")
        .await
        .json()["metadata"]["uid"]
        .clone();
    let options = |uid: &str| {
        protobuf::encode(
            &json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                                 "preconditions": {"uid": uid}}),
        )
        .unwrap()
        .unwrap()
    };
    // A precondition read from the protobuf body is enforced.
    let wrong = send(
        s.addr,
        "DELETE",
        "/api/v1/namespaces/doomed",
        &[("content-type", MEDIA_TYPE), ("accept", PB_FIRST)],
        &options("other-uid"),
    )
    .await;
    assert_eq!(wrong.status, 409);
    assert!(
        wrong.protobuf()["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition: other-uid")
    );
    let deleted = send(
        s.addr,
        "DELETE",
        "/api/v1/namespaces/doomed",
        &[("content-type", MEDIA_TYPE), ("accept", PB_FIRST)],
        &options(uid.as_str().unwrap()),
    )
    .await;
    assert!(matches!(deleted.status, 200 | 202), "{}", deleted.status);
    assert_eq!(deleted.protobuf()["metadata"]["name"], "doomed");
    let garbage = send(
        s.addr,
        "DELETE",
        "/api/v1/namespaces/default",
        &[("content-type", MEDIA_TYPE)],
        b"k8s\0\x0a",
    )
    .await;
    assert_eq!(garbage.status, 400);
    assert!(
        garbage.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("error decoding request body as DeleteOptions from protobuf")
    );
}
