//! Collection deletes need the collection path exactly, namespaces have no deletecollection, and
//! the system namespaces cannot be deleted.

use serde_json::json;

use crate::common::raw;
use crate::support::{WIDGETS, start, widget};

async fn widget_count(api: &ironnet_apiserver::ApiServer) -> usize {
    let (code, _, list) = raw(api, "GET", WIDGETS, &[], "").await;
    assert_eq!(code, 200);
    list["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_empty_name_is_not_a_collection() {
    let s = start(|_| {}).await;
    for name in ["a", "b"] {
        assert_eq!(raw(&s.api, "POST", WIDGETS, &[], widget(name)).await.0, 201);
    }
    let not_found = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404
    });
    for (method, path) in [
        ("DELETE", format!("{WIDGETS}/")),
        ("DELETE", format!("{WIDGETS}//")),
        ("GET", format!("{WIDGETS}/")),
        ("DELETE", "/api/v1/namespaces/".to_owned()),
    ] {
        let (code, _, status) = raw(&s.api, method, &path, &[], "").await;
        assert_eq!((code, &status), (404, &not_found), "{method} {path}");
    }
    assert_eq!(widget_count(&s.api).await, 2);
    // The collection path itself still deletes the collection.
    let (code, _, list) = raw(&s.api, "DELETE", WIDGETS, &[], "").await;
    assert_eq!((code, list["items"].as_array().unwrap().len()), (200, 2));
    assert_eq!(widget_count(&s.api).await, 0);
}

#[tokio::test]
async fn namespaces_cannot_be_deleted_as_a_collection() {
    let s = start(|_| {}).await;
    let (code, _, status) = raw(&s.api, "DELETE", "/api/v1/namespaces", &[], "").await;
    assert_eq!(
        (code, status),
        (
            405,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server does not allow this method on the requested resource",
                "reason": "MethodNotAllowed", "code": 405
            })
        )
    );
    let (_, _, list) = raw(&s.api, "GET", "/api/v1/namespaces", &[], "").await;
    let phases: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| (ns["metadata"]["name"].clone(), ns["status"]["phase"].clone()))
        .collect();
    assert_eq!(
        phases,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
            .map(|n| (json!(n), json!("Active")))
            .to_vec()
    );
}

#[tokio::test]
async fn system_namespaces_cannot_be_deleted() {
    let s = start(|_| {}).await;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        for query in ["", "?dryRun=All"] {
            let (code, _, status) = raw(
                &s.api,
                "DELETE",
                &format!("/api/v1/namespaces/{ns}{query}"),
                &[],
                "",
            )
            .await;
            assert_eq!(
                (code, status),
                (
                    403,
                    json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted"),
                        "reason": "Forbidden", "details": {"name": ns, "kind": "namespaces"}, "code": 403
                    })
                ),
                "{ns}{query}"
            );
        }
        let (_, _, obj) = raw(&s.api, "GET", &format!("/api/v1/namespaces/{ns}"), &[], "").await;
        assert_eq!(obj["status"]["phase"], "Active", "{ns}");
        assert!(obj["metadata"].get("deletionTimestamp").is_none(), "{ns}");
    }
    // Other namespaces still can.
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch"}}).to_string();
    assert_eq!(raw(&s.api, "POST", "/api/v1/namespaces", &[], ns).await.0, 201);
    let (code, _, obj) = raw(&s.api, "DELETE", "/api/v1/namespaces/scratch", &[], "").await;
    assert_eq!((code, &obj["status"]["phase"]), (202, &json!("Terminating")));
}
