//! Raw HTTP behaviour: discovery, OpenAPI, errors, Tables, field validation and object semantics.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, raw};

const WIDGETS: &str = "/apis/test.ironnet.dev/v1/namespaces/default/widgets";
const JSON: (&str, &str) = ("content-type", "application/json");
const MERGE: (&str, &str) = ("content-type", "application/merge-patch+json");

fn body(v: Value) -> String {
    v.to_string()
}

fn w(name: &str, size: i64) -> String {
    body(
        json!({"apiVersion": "test.ironnet.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}}),
    )
}

async fn count_widgets(t: &TestServer) -> usize {
    let (_, _, list) = raw(&t.server, "GET", WIDGETS, &[], "").await;
    list["items"].as_array().unwrap().len()
}

async fn discovery_and_openapi(t: TestServer) {
    let agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (code, h, v) = raw(&t.server, "GET", "/apis", &[("accept", agg)], "").await;
    assert_eq!(code, 200);
    assert_eq!(
        h["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let group = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "test.ironnet.dev")
        .unwrap();
    let r = &group["versions"][0]["resources"][0];
    assert_eq!(r["resource"], "widgets");
    assert_eq!(r["scope"], "Namespaced");
    assert_eq!(r["shortNames"], json!(["wd"]));
    assert_eq!(r["subresources"][0]["subresource"], "status");
    let (_, _, legacy) = raw(&t.server, "GET", "/apis", &[], "").await;
    assert_eq!(legacy["kind"], "APIGroupList");
    let (_, _, core) = raw(&t.server, "GET", "/api", &[], "").await;
    assert_eq!(core["versions"], json!(["v1"]));
    let (_, _, core_res) = raw(&t.server, "GET", "/api/v1", &[], "").await;
    let names: Vec<&str> = core_res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"namespaces") && names.contains(&"events"),
        "{names:?}"
    );
    let (_, _, gv) = raw(&t.server, "GET", "/apis/test.ironnet.dev/v1", &[], "").await;
    assert_eq!(gv["kind"], "APIResourceList");
    assert_eq!(gv["resources"][1]["name"], "widgets/status");
    let (code, _, _) = raw(&t.server, "GET", "/version", &[], "").await;
    assert_eq!(code, 200);
    for p in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(raw(&t.server, "GET", p, &[], "").await.0, 200);
    }
    let (_, _, root) = raw(&t.server, "GET", "/openapi/v3", &[], "").await;
    let url = root["paths"]["apis/test.ironnet.dev/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains("?hash="));
    let (code, _, doc) = raw(&t.server, "GET", &url, &[], "").await;
    assert_eq!(code, 200);
    let patch = &doc["paths"]["/apis/test.ironnet.dev/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Widget");
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
    assert_eq!(
        doc["components"]["schemas"]["dev.ironnet.test.v1.Widget"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Widget"
    );
}

async fn crud_semantics_and_errors(t: TestServer) {
    let s = &t.server;
    let (code, _, created) = raw(s, "POST", WIDGETS, &[JSON], w("a", 1)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let rv1 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();

    // AlreadyExists.
    let (code, _, e) = raw(s, "POST", WIDGETS, &[JSON], w("a", 1)).await;
    assert_eq!((code, e["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(e["message"], "widgets.test.ironnet.dev \"a\" already exists");
    // NotFound with details.
    let (code, _, e) = raw(s, "GET", &format!("{WIDGETS}/nope"), &[], "").await;
    assert_eq!(code, 404);
    assert_eq!(
        e["details"],
        json!({"name": "nope", "group": "test.ironnet.dev", "kind": "widgets"})
    );

    // A no-op merge patch does not bump resourceVersion.
    let (code, _, same) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a"),
        &[MERGE],
        body(json!({"spec": {"size": 1}})),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(same["metadata"]["resourceVersion"], rv1.as_str());
    // A label change bumps resourceVersion but not generation; a spec change bumps both.
    let (_, _, labelled) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a"),
        &[MERGE],
        body(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await;
    assert_ne!(labelled["metadata"]["resourceVersion"], rv1.as_str());
    assert_eq!(labelled["metadata"]["generation"], 1);
    let (_, _, resized) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a"),
        &[MERGE],
        body(json!({"spec": {"size": 2}})),
    )
    .await;
    assert_eq!(resized["metadata"]["generation"], 2);
    // Status written through the main resource is ignored; through /status only status changes.
    let (_, _, ignored) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a"),
        &[MERGE],
        body(json!({"status": {"observed": 5}})),
    )
    .await;
    assert!(ignored.get("status").is_none(), "{ignored}");
    let (code, _, st) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a/status"),
        &[MERGE],
        body(json!({"spec": {"size": 9}, "status": {"observed": 5}})),
    )
    .await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["status"]["observed"], 5);
    assert_eq!(st["spec"]["size"], 2);
    assert_eq!(st["metadata"]["generation"], 2);
    // Server-owned fields cannot be set.
    let (_, _, owned) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a"),
        &[MERGE],
        body(
            json!({"metadata": {"uid": null, "generation": 40, "creationTimestamp": "2000-01-01T00:00:00Z"}}),
        ),
    )
    .await;
    assert_eq!(owned["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(owned["metadata"]["generation"], 2);
    assert_eq!(
        owned["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );

    // Stale resourceVersion on PUT: 409 with kube's message.
    let mut stale: Value = serde_json::from_str(&w("a", 3)).unwrap();
    stale["metadata"]["resourceVersion"] = json!(rv1);
    let (code, _, e) = raw(s, "PUT", &format!("{WIDGETS}/a"), &[JSON], body(stale)).await;
    assert_eq!(code, 409);
    assert_eq!(
        e["message"],
        "Operation cannot be fulfilled on widgets.test.ironnet.dev \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Validation: strategy errors are 422 with causes.
    let (code, _, e) = raw(s, "POST", WIDGETS, &[JSON], w("big", 101)).await;
    assert_eq!(code, 422);
    assert_eq!(e["details"]["causes"][0]["field"], "spec.size");
    // Schema type errors are 422 too.
    let (code, _, e) = raw(
        s,
        "POST",
        WIDGETS,
        &[JSON],
        body(json!({"metadata": {"name": "t"}, "spec": {"size": "x"}})),
    )
    .await;
    assert_eq!(code, 422, "{e}");
    // Invalid name.
    let (code, _, e) = raw(s, "POST", WIDGETS, &[JSON], w("Bad_Name", 1)).await;
    assert_eq!(code, 422);
    assert_eq!(e["details"]["causes"][0]["field"], "metadata.name");
    // Malformed JSON and YAML.
    let (code, _, e) = raw(s, "POST", WIDGETS, &[JSON], "{\"metadata\": ").await;
    assert_eq!((code, e["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _, _) = raw(
        s,
        "POST",
        WIDGETS,
        &[("content-type", "application/yaml")],
        "metadata: [",
    )
    .await;
    assert_eq!(code, 400);
    // YAML bodies work.
    let (code, _, e) = raw(
        s,
        "POST",
        WIDGETS,
        &[("content-type", "application/yaml")],
        "apiVersion: test.ironnet.dev/v1\nkind: Widget\nmetadata:\n  name: yml\nspec:\n  size: 4\n",
    )
    .await;
    assert_eq!(code, 201, "{e}");
    // Wrong apiVersion / kind.
    let (code, _, e) = raw(s, "POST", WIDGETS, &[JSON], body(json!({"apiVersion": "other/v1", "kind": "Widget", "metadata": {"name": "z"}, "spec": {"size": 1}}))).await;
    assert_eq!(code, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("does not match the expected API version")
    );
    let (code, _, _) = raw(
        s,
        "POST",
        WIDGETS,
        &[JSON],
        body(json!({"kind": "Gadget", "metadata": {"name": "z"}, "spec": {"size": 1}})),
    )
    .await;
    assert_eq!(code, 400);
    // Unknown and duplicate fields under Strict (what kubectl sends) → 400 naming them.
    let (code, _, e) = raw(
        s,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        &[JSON],
        r#"{"metadata":{"name":"u"},"spec":{"size":1,"bogus":2}}"#,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.bogus\""),
        "{e}"
    );
    let (code, _, e) = raw(
        s,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        &[JSON],
        r#"{"metadata":{"name":"u"},"spec":{"size":1,"size":2}}"#,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field \"spec.size\""),
        "{e}"
    );
    // Without fieldValidation kube-apiserver's default is Warn: created, pruned, with a Warning header.
    let (code, h, _) = raw(
        s,
        "POST",
        WIDGETS,
        &[JSON],
        r#"{"metadata":{"name":"dflt"},"spec":{"size":1,"size":2}}"#,
    )
    .await;
    assert_eq!(code, 201);
    assert!(
        h["warning"].to_str().unwrap().contains("duplicate field"),
        "{h:?}"
    );
    // Warn: created, pruned, with a Warning header.
    let (code, h, v) = raw(
        s,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Warn"),
        &[JSON],
        r#"{"metadata":{"name":"u"},"spec":{"size":1,"bogus":2}}"#,
    )
    .await;
    assert_eq!(code, 201);
    assert!(v["spec"].get("bogus").is_none());
    assert!(
        h["warning"]
            .to_str()
            .unwrap()
            .contains("unknown field \\\"spec.bogus\\\""),
        "{h:?}"
    );
    // Body over 3 MiB.
    let big = format!(
        "{{\"metadata\":{{\"name\":\"huge\"}},\"spec\":{{\"size\":1}},\"pad\":\"{}\"}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let (code, _, e) = raw(s, "POST", WIDGETS, &[JSON], big).await;
    assert_eq!((code, e["reason"].as_str()), (413, Some("RequestEntityTooLarge")));
    // Invalid selectors.
    let (code, _, _) = raw(s, "GET", &format!("{WIDGETS}?labelSelector=a%20b%20c"), &[], "").await;
    assert_eq!(code, 400);
    let (code, _, e) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?fieldSelector=spec.size%3D1"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not a known field selector")
    );
    // Method not allowed, not acceptable, unsupported patch type.
    assert_eq!(
        raw(s, "POST", &format!("{WIDGETS}/a"), &[JSON], w("a", 1))
            .await
            .0,
        405
    );
    assert_eq!(
        raw(
            s,
            "GET",
            WIDGETS,
            &[("accept", "application/vnd.kubernetes.protobuf")],
            ""
        )
        .await
        .0,
        406
    );
    let (code, _, e) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a"),
        &[("content-type", "application/strategic-merge-patch+json")],
        "{}",
    )
    .await;
    assert_eq!(code, 415);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("application/merge-patch+json")
    );
    // Nothing above wrote anything besides a, yml, dflt and u.
    assert_eq!(count_widgets(&t).await, 4);
}

async fn dry_run_never_writes(t: TestServer) {
    let s = &t.server;
    let rev = t.store.current_revision().await.unwrap();
    let (code, _, v) = raw(s, "POST", &format!("{WIDGETS}?dryRun=All"), &[JSON], w("d", 1)).await;
    assert_eq!(code, 201);
    assert_eq!(v["metadata"]["name"], "d");
    assert_eq!(t.store.current_revision().await.unwrap(), rev);
    raw(s, "POST", WIDGETS, &[JSON], w("d", 1)).await;
    let rev = t.store.current_revision().await.unwrap();
    let (_, _, v) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/d?dryRun=All"),
        &[MERGE],
        body(json!({"spec": {"size": 7}})),
    )
    .await;
    assert_eq!(v["spec"]["size"], 7);
    let (_, _, v) = raw(s, "DELETE", &format!("{WIDGETS}/d?dryRun=All"), &[], "").await;
    assert_eq!(v["metadata"]["name"], "d");
    assert_eq!(t.store.current_revision().await.unwrap(), rev);
    let (_, _, v) = raw(s, "GET", &format!("{WIDGETS}/d"), &[], "").await;
    assert_eq!(v["spec"]["size"], 1);
}

async fn tables_and_metadata_projections(t: TestServer) {
    let s = &t.server;
    raw(s, "POST", WIDGETS, &[JSON], w("a", 5)).await;
    raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/a/status"),
        &[MERGE],
        body(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
    )
    .await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (code, h, table) = raw(s, "GET", WIDGETS, &[("accept", accept)], "").await;
    assert_eq!(code, 200);
    assert_eq!(table["kind"], "Table");
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Size", "Color", "Ready", "Age"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "a");
    assert_eq!(cells[1], 5);
    assert_eq!(cells[3], "True");
    assert!(cells[4].as_str().unwrap().ends_with('s'), "{cells}");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let (_, _, full) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?includeObject=Object"),
        &[("accept", accept)],
        "",
    )
    .await;
    assert_eq!(full["rows"][0]["object"]["spec"]["size"], 5);
    let (_, _, none) = raw(
        s,
        "GET",
        &format!("{WIDGETS}/a?includeObject=None"),
        &[("accept", accept)],
        "",
    )
    .await;
    assert!(none["rows"][0].get("object").is_none());
    let (_, _, pom) = raw(
        s,
        "GET",
        WIDGETS,
        &[(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )],
        "",
    )
    .await;
    assert_eq!(pom["kind"], "PartialObjectMetadataList");
    assert!(pom["items"][0].get("spec").is_none());
    let (_, h, _) = raw(
        s,
        "GET",
        &format!("{WIDGETS}/a"),
        &[("accept", "application/yaml")],
        "",
    )
    .await;
    assert_eq!(h["content-type"], "application/yaml");
}

async fn list_pagination_selectors_and_expired_continue(t: TestServer) {
    let s = &t.server;
    for i in 0..7 {
        let color = if i % 2 == 0 { "red" } else { "blue" };
        let b = json!({"metadata": {"name": format!("w{i}"), "labels": {"i": i.to_string(), "tier": if i < 3 { "a" } else { "b" }}}, "spec": {"size": i, "color": color}});
        assert_eq!(raw(s, "POST", WIDGETS, &[JSON], body(b)).await.0, 201);
    }
    let names = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, _, v) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?labelSelector=tier%20in%20(a),i!%3D1"),
        &[],
        "",
    )
    .await;
    assert_eq!(names(&v), vec!["w0", "w2"]);
    let (_, _, v) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?fieldSelector=spec.color%3Dblue,metadata.name!%3Dw1"),
        &[],
        "",
    )
    .await;
    assert_eq!(names(&v), vec!["w3", "w5"]);
    let (_, _, v) = raw(s, "GET", &format!("{WIDGETS}?labelSelector=!tier"), &[], "").await;
    assert!(names(&v).is_empty());
    // Pages of 3 pinned to the first page's revision.
    let (_, _, p1) = raw(s, "GET", &format!("{WIDGETS}?limit=3"), &[], "").await;
    assert_eq!(names(&p1), vec!["w0", "w1", "w2"]);
    let token = p1["metadata"]["continue"].as_str().unwrap().to_owned();
    raw(s, "POST", WIDGETS, &[JSON], w("w9", 9)).await;
    let (_, _, p2) = raw(s, "GET", &format!("{WIDGETS}?limit=3&continue={token}"), &[], "").await;
    assert_eq!(names(&p2), vec!["w3", "w4", "w5"]);
    assert_eq!(
        p2["metadata"]["resourceVersion"],
        p1["metadata"]["resourceVersion"]
    );
    let t2 = p2["metadata"]["continue"].as_str().unwrap().to_owned();
    let (_, _, p3) = raw(s, "GET", &format!("{WIDGETS}?limit=3&continue={t2}"), &[], "").await;
    assert_eq!(names(&p3), vec!["w6"], "w9 was created after the snapshot");
    // Exact reads of old revisions, then compaction → 410 Expired.
    let old = p1["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let (code, _, v) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?resourceVersion={old}&resourceVersionMatch=Exact"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(names(&v).len(), 7);
    let current = t.store.current_revision().await.unwrap();
    t.store.compact(current).await.unwrap();
    let (code, _, e) = raw(s, "GET", &format!("{WIDGETS}?limit=3&continue={t2}"), &[], "").await;
    assert_eq!((code, e["reason"].as_str()), (410, Some("Expired")));
    let (code, _, _) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?resourceVersion={old}&resourceVersionMatch=Exact"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 410);
    let (code, _, _) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?resourceVersion={}", current + 100),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 504);
    // Cluster-wide list of a namespaced kind.
    let (_, _, all) = raw(s, "GET", "/apis/test.ironnet.dev/v1/widgets", &[], "").await;
    assert_eq!(names(&all).len(), 8);
    // deletecollection with a selector (dry run first: nothing goes).
    let (code, _, v) = raw(
        s,
        "DELETE",
        &format!("{WIDGETS}?labelSelector=tier%3Da&dryRun=All"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(names(&v), vec!["w0", "w1", "w2"]);
    assert_eq!(count_widgets(&t).await, 8);
    let (code, _, v) = raw(s, "DELETE", &format!("{WIDGETS}?labelSelector=tier%3Da"), &[], "").await;
    assert_eq!(code, 200);
    assert_eq!(names(&v), vec!["w0", "w1", "w2"]);
    assert_eq!(count_widgets(&t).await, 5);
}

async fn wait_gone(t: &TestServer, path: &str) {
    for _ in 0..100 {
        if raw(&t.server, "GET", path, &[], "").await.0 == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} still exists");
}

async fn finalizers_gc_and_namespaces(t: TestServer) {
    let s = &t.server;
    // Finalizer: delete is 202 and sets deletionTimestamp; removing the finalizer removes the object.
    let b = json!({"metadata": {"name": "f", "finalizers": ["test.ironnet.dev/hold"]}, "spec": {"size": 1}});
    raw(s, "POST", WIDGETS, &[JSON], body(b)).await;
    let (code, _, v) = raw(s, "DELETE", &format!("{WIDGETS}/f"), &[], "").await;
    assert_eq!(code, 202);
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    let (code, _, e) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/f"),
        &[MERGE],
        body(json!({"metadata": {"finalizers": ["test.ironnet.dev/hold", "new"]}})),
    )
    .await;
    assert_eq!(code, 422, "{e}");
    let (code, _, _) = raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/f"),
        &[MERGE],
        body(json!({"metadata": {"finalizers": null}})),
    )
    .await;
    assert_eq!(code, 200);
    wait_gone(&t, &format!("{WIDGETS}/f")).await;

    // Delete preconditions.
    let (_, _, o) = raw(s, "POST", WIDGETS, &[JSON], w("owner", 1)).await;
    let (code, _, _) = raw(
        s,
        "DELETE",
        &format!("{WIDGETS}/owner"),
        &[JSON],
        body(json!({"preconditions": {"uid": "nope"}})),
    )
    .await;
    assert_eq!(code, 409);
    let (code, _, _) = raw(
        s,
        "DELETE",
        &format!("{WIDGETS}/owner"),
        &[JSON],
        body(json!({"preconditions": {"resourceVersion": "1"}})),
    )
    .await;
    assert_eq!(code, 409);

    // Background GC.
    let owner_ref = |o: &Value, block: bool| json!([{"apiVersion": "test.ironnet.dev/v1", "kind": "Widget", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"], "blockOwnerDeletion": block}]);
    let dep =
        json!({"metadata": {"name": "dep", "ownerReferences": owner_ref(&o, false)}, "spec": {"size": 1}});
    raw(s, "POST", WIDGETS, &[JSON], body(dep)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, _, _) = raw(
        s,
        "DELETE",
        &format!("{WIDGETS}/owner"),
        &[JSON],
        body(json!({"propagationPolicy": "Background"})),
    )
    .await;
    assert_eq!(code, 200);
    wait_gone(&t, &format!("{WIDGETS}/dep")).await;

    // Orphan: the dependent survives without the owner reference.
    let (_, _, o) = raw(s, "POST", WIDGETS, &[JSON], w("owner2", 1)).await;
    raw(s, "POST", WIDGETS, &[JSON], body(json!({"metadata": {"name": "dep2", "ownerReferences": owner_ref(&o, false)}, "spec": {"size": 1}}))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    raw(
        s,
        "DELETE",
        &format!("{WIDGETS}/owner2"),
        &[JSON],
        body(json!({"propagationPolicy": "Orphan"})),
    )
    .await;
    wait_gone(&t, &format!("{WIDGETS}/owner2")).await;
    let (code, _, d) = raw(s, "GET", &format!("{WIDGETS}/dep2"), &[], "").await;
    assert_eq!(code, 200);
    assert!(
        d["metadata"]
            .get("ownerReferences")
            .is_none_or(|r| r.as_array().unwrap().is_empty()),
        "{d}"
    );

    // Foreground: the owner waits for a blocking dependent held by a finalizer.
    let (_, _, o) = raw(s, "POST", WIDGETS, &[JSON], w("owner3", 1)).await;
    raw(s, "POST", WIDGETS, &[JSON], body(json!({"metadata": {"name": "dep3", "finalizers": ["x.dev/hold"], "ownerReferences": owner_ref(&o, true)}, "spec": {"size": 1}}))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, _, v) = raw(
        s,
        "DELETE",
        &format!("{WIDGETS}/owner3"),
        &[JSON],
        body(json!({"propagationPolicy": "Foreground"})),
    )
    .await;
    assert_eq!(code, 202);
    assert!(
        v["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .contains(&json!("foregroundDeletion"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, _, d) = raw(s, "GET", &format!("{WIDGETS}/dep3"), &[], "").await;
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    assert_eq!(raw(s, "GET", &format!("{WIDGETS}/owner3"), &[], "").await.0, 200);
    raw(
        s,
        "PATCH",
        &format!("{WIDGETS}/dep3"),
        &[MERGE],
        body(json!({"metadata": {"finalizers": null}})),
    )
    .await;
    wait_gone(&t, &format!("{WIDGETS}/owner3")).await;

    // Namespaces: creation needs the namespace; deleting it deletes its contents first.
    let ns = body(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}));
    assert_eq!(raw(s, "POST", "/api/v1/namespaces", &[JSON], ns).await.0, 201);
    let team = "/apis/test.ironnet.dev/v1/namespaces/team/widgets";
    assert_eq!(raw(s, "POST", team, &[JSON], w("x", 1)).await.0, 201);
    let (code, _, e) = raw(
        s,
        "POST",
        "/apis/test.ironnet.dev/v1/namespaces/nowhere/widgets",
        &[JSON],
        w("x", 1),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(e["message"], "namespaces \"nowhere\" not found");
    let (code, _, v) = raw(s, "DELETE", "/api/v1/namespaces/team", &[], "").await;
    assert_eq!(code, 202);
    assert_eq!(v["status"]["phase"], "Terminating");
    let (code, _, _) = raw(s, "POST", team, &[JSON], w("late", 1)).await;
    assert_eq!(code, 403);
    wait_gone(&t, "/api/v1/namespaces/team").await;
    assert_eq!(raw(s, "GET", &format!("{team}/x"), &[], "").await.0, 404);
}

async fn watch_streams_in_stream_gone(t: TestServer) {
    let s = &t.server;
    raw(s, "POST", WIDGETS, &[JSON], w("a", 1)).await;
    t.store
        .compact(t.store.current_revision().await.unwrap())
        .await
        .unwrap();
    let (code, _, v) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?watch=true&resourceVersion=1&timeoutSeconds=2"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200, "never an HTTP 410 on the watch request");
    let text = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ERROR");
    assert_eq!(first["object"]["code"], 410);
    assert_eq!(first["object"]["reason"], "Expired");
    // Initial events, then the KEP-3157 bookmark.
    let (code, _, v) = raw(s, "GET", &format!("{WIDGETS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"), &[], "").await;
    assert_eq!(code, 200);
    let lines: Vec<Value> = v
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[1]["type"], "BOOKMARK");
    assert_eq!(
        lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, _, _) = raw(
        s,
        "GET",
        &format!("{WIDGETS}?watch=true&sendInitialEvents=true"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 400);
}

crate::on_both_stores!(tokio::test; discovery_and_openapi, crud_semantics_and_errors, dry_run_never_writes, tables_and_metadata_projections, list_pagination_selectors_and_expired_continue, finalizers_gc_and_namespaces, watch_streams_in_stream_gone);
