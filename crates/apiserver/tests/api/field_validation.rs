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
const JSON: &str = "application/json";
const YAML: &str = "application/yaml";
/// The warning for [`DUPLICATE_LABEL_YAML`]'s repetition.
const LINE_7_A: &str = r#"line 7: key "a" already set in map"#;

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

/// One answer of the server.
struct Answer {
    warnings: Vec<String>,
    body: Value,
}

/// Raw HTTP/1.1 to the server, one fresh TCP connection per request.
struct Api(SocketAddr);

impl Api {
    /// Sends `body` as `content_type` and checks that the answer has `status`.
    async fn send(&self, method: &str, uri: &str, content_type: &str, body: &str, status: u16) -> Answer {
        let stream = tokio::net::TcpStream::connect(self.0).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", self.0.to_string())
            .header("content-type", content_type)
            .body(Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let got = resp.status().as_u16();
        let warnings = resp
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        drop(sender);
        let _ = driver.await;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {uri}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(got, status, "{method} {uri}: {body}");
        Answer { warnings, body }
    }

    /// POSTs a Widget with `?fieldValidation=<validation>` (none if empty).
    async fn create(&self, validation: &str, content_type: &str, body: &str, status: u16) -> Answer {
        self.send(
            "POST",
            &with_validation(WIDGETS, validation),
            content_type,
            body,
            status,
        )
        .await
    }

    /// Server-side applies Widget `name` as manager `m`.
    async fn apply(&self, name: &str, validation: &str, body: &str, status: u16) -> Answer {
        let uri = format!("{WIDGETS}/{name}?fieldManager=m&fieldValidation={validation}");
        self.send("PATCH", &uri, "application/apply-patch+yaml", body, status)
            .await
    }

    /// The stored value of Widget `name`'s label `a`.
    async fn label_a(&self, name: &str) -> Value {
        let got = self
            .send("GET", &format!("{WIDGETS}/{name}"), "application/json", "", 200)
            .await;
        got.body["metadata"]["labels"]["a"].clone()
    }
}

fn with_validation(uri: &str, validation: &str) -> String {
    if validation.is_empty() {
        uri.to_owned()
    } else {
        format!("{uri}?fieldValidation={validation}")
    }
}

/// `299 - "<text>"` as kube-apiserver writes a warning.
fn warning(text: &str) -> String {
    format!("299 - {}", Value::String(text.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_and_yaml_bodies_with_duplicate_keys() {
    let t = TestServer::start().await;
    let (addr, serving) = t.serve_tcp().await;
    let api = Api(addr);
    let k = Kubectl::new(addr).await;

    // kubectl decodes a manifest itself (sigs.k8s.io/yaml, last key wins) and sends the object
    // re-encoded, so against kube-apiserver too `create -f` and `apply -f` succeed with the last value.
    let f = k.file("dup.yaml", &duplicate_label_yaml("k1"));
    let o = k.run(&["create", "-f", &f]).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(!o.stderr.contains("Warning"), "{}", o.stderr);
    assert_eq!(api.label_a("k1").await, "two");
    let f = k.file("dup2.yaml", &duplicate_label_yaml("k2"));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    assert_eq!(api.label_a("k2").await, "two");

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
    let strict = api.create("Strict", YAML, &yaml, 400).await;
    assert_eq!(strict.body["reason"], "BadRequest");
    assert_eq!(
        strict.body["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map"
    );
    let warn = api.create("Warn", YAML, &yaml, 201).await;
    assert_eq!(warn.warnings, vec![warning(LINE_7_A)]);
    assert_eq!(warn.body["metadata"]["labels"]["a"], "two");
    let ignore = api.create("Ignore", YAML, &duplicate_label_yaml("y2"), 201).await;
    assert!(ignore.warnings.is_empty(), "{:?}", ignore.warnings);
    assert_eq!(api.label_a("y2").await, "two");
    // No fieldValidation: kube-apiserver's default is Warn.
    let default = api.create("", YAML, &duplicate_label_yaml("y3"), 201).await;
    assert_eq!(default.warnings, vec![warning(LINE_7_A)]);

    // Several repeated keys: one go-yaml error with a line each; under Warn a warning each.
    let many = "apiVersion: test.ironnet.dev/v1\nkind: Widget\nmetadata:\n  name: y4\nspec:\n  size: 1\n  size: 2\n  color: red\n  color: blue\n";
    let update = with_validation(&format!("{WIDGETS}/y1"), "Strict");
    let strict = api
        .send("PUT", &update, YAML, &many.replace("y4", "y1"), 400)
        .await;
    assert_eq!(
        strict.body["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: yaml: unmarshal errors:\n  line 7: key \"size\" already set in map\n  line 9: key \"color\" already set in map"
    );
    let warn = api.create("Warn", YAML, many, 201).await;
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
    let api = Api(addr);

    // JSON: sigs.k8s.io/json's path-qualified message.
    let strict = api.create("Strict", JSON, &duplicate_label_json("j1"), 400).await;
    assert_eq!(
        strict.body["message"],
        r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: duplicate field "metadata.labels.a""#
    );
    let warn = api.create("Warn", JSON, &duplicate_label_json("j1"), 201).await;
    assert_eq!(
        warn.warnings,
        vec![warning(r#"duplicate field "metadata.labels.a""#)]
    );
    assert_eq!(warn.body["metadata"]["labels"]["a"], "two");
    let ignore = api.create("Ignore", JSON, &duplicate_label_json("j2"), 201).await;
    assert!(ignore.warnings.is_empty(), "{:?}", ignore.warnings);

    // Server-side apply decodes the patch as YAML (JSON included): go-yaml's message under Strict,
    // with kube's apply prefix, and nothing is written.
    let strict = api.apply("a1", "Strict", &duplicate_label_yaml("a1"), 400).await;
    assert_eq!(
        strict.body["message"],
        "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map"
    );
    api.send("GET", &format!("{WIDGETS}/a1"), JSON, "", 404).await;
    let strict = api.apply("a1", "Strict", &duplicate_label_json("a1"), 400).await;
    assert_eq!(
        strict.body["message"],
        "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 1: key \"a\" already set in map"
    );
    let warn = api.apply("a1", "Warn", &duplicate_label_yaml("a1"), 201).await;
    assert_eq!(warn.warnings, vec![warning(LINE_7_A)]);
    assert_eq!(warn.body["metadata"]["labels"]["a"], "two");
    let ignore = api.apply("a1", "Ignore", &duplicate_label_json("a1"), 200).await;
    assert!(ignore.warnings.is_empty(), "{:?}", ignore.warnings);

    serving.stop().await;
}
