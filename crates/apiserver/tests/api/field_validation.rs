//! Duplicate fields in request bodies under `fieldValidation=Strict|Warn|Ignore`, checked against the
//! server over TCP with the real kubectl and with raw HTTP/1.1 requests.
//!
//! kube-apiserver finds duplicates in two ways (apimachinery `runtime/serializer/json/json.go`,
//! `Serializer.unmarshal`): a JSON body through sigs.k8s.io/json's strict decoder, one error per
//! repeated key with its field path (`duplicate field "spec.size"`); a YAML body through
//! `yaml.YAMLToJSONStrict`, one go-yaml error listing every repeated key by line
//! (`yaml: unmarshal errors:\n  line 7: key "a" already set in map`). Under Warn the YAML error is split
//! into one warning per line (apiserver `endpoints/handlers/rest.go`, `parseYAMLWarnings`). Server-side
//! apply checks the patch with `yaml.UnmarshalStrict` (`endpoints/handlers/patch.go`, `applyPatcher`).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::common::TestServer;
use crate::kubectl::Kubectl;

const WIDGETS: &str = "/apis/test.ironnet.dev/v1/namespaces/default/widgets";

/// A YAML Widget whose label `a` is given twice, the second time on line 7.
const DUPLICATE_LABEL_YAML: &str = "apiVersion: test.ironnet.dev/v1
kind: Widget
metadata:
  name: NAME
  labels:
    a: one
    a: two
spec:
  size: 1
";

fn duplicate_label_yaml(name: &str) -> String {
    DUPLICATE_LABEL_YAML.replace("NAME", name)
}

fn duplicate_label_json(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"test.ironnet.dev/v1","kind":"Widget","metadata":{{"name":"{name}","labels":{{"a":"one","a":"two"}}}},"spec":{{"size":1}}}}"#
    )
}

/// One HTTP/1.1 exchange over a fresh TCP connection.
struct Answer {
    status: u16,
    warnings: Vec<String>,
    body: Value,
}

async fn request(addr: SocketAddr, method: &str, uri: &str, content_type: &str, body: &str) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", addr.to_string())
        .header("content-type", content_type)
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    let _ = driver.await;
    Answer {
        status,
        warnings,
        body: serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {uri}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        }),
    }
}

/// `299 - "<text>"` as kube-apiserver writes a warning.
fn warning(text: &str) -> String {
    format!("299 - {}", Value::String(text.to_owned()))
}

async fn label_of(addr: SocketAddr, name: &str) -> Value {
    let got = request(addr, "GET", &format!("{WIDGETS}/{name}"), "application/json", "").await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.body["metadata"]["labels"]["a"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_and_yaml_bodies_with_duplicate_keys() {
    let t = TestServer::start().await;
    let (addr, serving) = t.serve_tcp().await;
    let k = Kubectl::new(addr).await;

    // kubectl decodes a manifest itself (sigs.k8s.io/yaml, last key wins) and sends the object
    // re-encoded, so against kube-apiserver too `create -f` and `apply -f` succeed with the last value.
    let f = k.file("dup.yaml", &duplicate_label_yaml("k1"));
    let o = k.run(&["create", "-f", &f]).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(!o.stderr.contains("Warning"), "{}", o.stderr);
    assert_eq!(label_of(addr, "k1").await, "two");
    let f = k.file("dup2.yaml", &duplicate_label_yaml("k2"));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    assert_eq!(label_of(addr, "k2").await, "two");

    // `create --raw` sends the bytes as they are (as application/json): the server sees the duplicate.
    // Strict: kube's decoding errors come first, then the unknown fields.
    let raw = k.file(
        "dup.json",
        r#"{"apiVersion":"test.ironnet.dev/v1","kind":"Widget","metadata":{"name":"k3"},"spec":{"size":1,"bogus":1,"size":2}}"#,
    );
    let o = k
        .run(&[
            "create",
            "--raw",
            &format!("{WIDGETS}?fieldValidation=Strict"),
            "-f",
            &raw,
        ])
        .await;
    assert!(!o.ok);
    assert_eq!(
        o.stderr.trim(),
        r#"Error from server (BadRequest): Widget in version "v1" cannot be handled as a Widget: strict decoding error: duplicate field "spec.size", unknown field "spec.bogus""#
    );
    // Warn: created with the last value, one warning per problem, printed by kubectl.
    let o = k
        .run(&[
            "create",
            "--raw",
            &format!("{WIDGETS}?fieldValidation=Warn"),
            "-f",
            &raw,
        ])
        .await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(
        o.stderr.lines().collect::<Vec<_>>(),
        vec![
            r#"Warning: duplicate field "spec.size""#,
            r#"Warning: unknown field "spec.bogus""#
        ]
    );
    let created: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(created["spec"], serde_json::json!({"size": 2}));

    // A YAML body: go-yaml's message, naming the line of the repeated key.
    let yaml = duplicate_label_yaml("y1");
    let strict = request(
        addr,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        "application/yaml",
        &yaml,
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(strict.body["reason"], "BadRequest");
    assert_eq!(
        strict.body["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map"
    );
    let warn = request(
        addr,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Warn"),
        "application/yaml",
        &yaml,
    )
    .await;
    assert_eq!(warn.status, 201, "{}", warn.body);
    assert_eq!(
        warn.warnings,
        vec![warning(r#"line 7: key "a" already set in map"#)]
    );
    assert_eq!(warn.body["metadata"]["labels"]["a"], "two");
    let ignore = request(
        addr,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Ignore"),
        "application/yaml",
        &duplicate_label_yaml("y2"),
    )
    .await;
    assert_eq!(ignore.status, 201, "{}", ignore.body);
    assert!(ignore.warnings.is_empty(), "{:?}", ignore.warnings);
    assert_eq!(label_of(addr, "y2").await, "two");
    // No fieldValidation: kube-apiserver's default is Warn.
    let default = request(
        addr,
        "POST",
        WIDGETS,
        "application/yaml",
        &duplicate_label_yaml("y3"),
    )
    .await;
    assert_eq!(default.status, 201, "{}", default.body);
    assert_eq!(
        default.warnings,
        vec![warning(r#"line 7: key "a" already set in map"#)]
    );

    // Several repeated keys: one go-yaml error with a line each; under Warn a warning each.
    let many = "apiVersion: test.ironnet.dev/v1\nkind: Widget\nmetadata:\n  name: y4\nspec:\n  size: 1\n  size: 2\n  color: red\n  color: blue\n";
    let strict = request(
        addr,
        "PUT",
        &format!("{WIDGETS}/y1?fieldValidation=Strict"),
        "application/yaml",
        &many.replace("y4", "y1"),
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(
        strict.body["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: yaml: unmarshal errors:\n  line 7: key \"size\" already set in map\n  line 9: key \"color\" already set in map"
    );
    let warn = request(
        addr,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Warn"),
        "application/yaml",
        many,
    )
    .await;
    assert_eq!(warn.status, 201, "{}", warn.body);
    assert_eq!(
        warn.warnings,
        vec![
            warning(r#"line 7: key "size" already set in map"#),
            warning(r#"line 9: key "color" already set in map"#)
        ]
    );
    assert_eq!(warn.body["spec"], serde_json::json!({"size": 2, "color": "blue"}));

    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_apply_bodies_with_duplicate_keys() {
    let t = TestServer::start().await;
    let (addr, serving) = t.serve_tcp().await;

    // JSON: sigs.k8s.io/json's path-qualified message.
    let strict = request(
        addr,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        "application/json",
        &duplicate_label_json("j1"),
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(
        strict.body["message"],
        r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: duplicate field "metadata.labels.a""#
    );
    let warn = request(
        addr,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Warn"),
        "application/json",
        &duplicate_label_json("j1"),
    )
    .await;
    assert_eq!(warn.status, 201, "{}", warn.body);
    assert_eq!(
        warn.warnings,
        vec![warning(r#"duplicate field "metadata.labels.a""#)]
    );
    assert_eq!(warn.body["metadata"]["labels"]["a"], "two");
    let ignore = request(
        addr,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Ignore"),
        "application/json",
        &duplicate_label_json("j2"),
    )
    .await;
    assert_eq!(ignore.status, 201, "{}", ignore.body);
    assert!(ignore.warnings.is_empty(), "{:?}", ignore.warnings);

    // Server-side apply decodes the patch as YAML (JSON included): go-yaml's message under Strict, with
    // kube's apply prefix; nothing is written.
    let apply = |name: &str, validation: &str| {
        format!("{WIDGETS}/{name}?fieldManager=m&fieldValidation={validation}")
    };
    let strict = request(
        addr,
        "PATCH",
        &apply("a1", "Strict"),
        "application/apply-patch+yaml",
        &duplicate_label_yaml("a1"),
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(
        strict.body["message"],
        "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map"
    );
    let missing = request(addr, "GET", &format!("{WIDGETS}/a1"), "application/json", "").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let strict = request(
        addr,
        "PATCH",
        &apply("a1", "Strict"),
        "application/apply-patch+yaml",
        &duplicate_label_json("a1"),
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(
        strict.body["message"],
        "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 1: key \"a\" already set in map"
    );
    let warn = request(
        addr,
        "PATCH",
        &apply("a1", "Warn"),
        "application/apply-patch+yaml",
        &duplicate_label_yaml("a1"),
    )
    .await;
    assert_eq!(warn.status, 201, "{}", warn.body);
    assert_eq!(
        warn.warnings,
        vec![warning(r#"line 7: key "a" already set in map"#)]
    );
    assert_eq!(warn.body["metadata"]["labels"]["a"], "two");
    let ignore = request(
        addr,
        "PATCH",
        &apply("a1", "Ignore"),
        "application/apply-patch+yaml",
        &duplicate_label_json("a1"),
    )
    .await;
    assert_eq!(ignore.status, 200, "{}", ignore.body);
    assert!(ignore.warnings.is_empty(), "{:?}", ignore.warnings);

    serving.stop().await;
}
