//! The built-in core/v1 Node (read by metalnetlet, registered by node agents) through kube-rs and kubectl.

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::common::{TestServer, tcp_client};

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"podCIDR": "10.244.0.0/24", "providerID": format!("metal://{name}")},
    }))
    .unwrap()
}

/// Waits (at most 10 s) for the next watch event that satisfies `f`.
async fn next_matching<S>(events: &mut S, what: &str, f: impl Fn(&watcher::Event<Node>) -> bool)
where
    S: futures::Stream<Item = Result<watcher::Event<Node>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.next().await {
            if f(&e.unwrap()) {
                return;
            }
        }
        panic!("watch ended before: {what}");
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

async fn node_lifecycle(client: Client) {
    let api: Api<Node> = Api::all(client);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    next_matching(&mut events, "initial list", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;

    let created = api.create(&PostParams::default(), &node("n1")).await.unwrap();
    assert!(created.namespace().is_none(), "nodes are cluster-scoped");
    assert!(created.uid().is_some());
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.0.0/24"));
    assert_eq!(spec.provider_id.as_deref(), Some("metal://n1"));
    next_matching(
        &mut events,
        "n1 created",
        |e| matches!(e, watcher::Event::Apply(n) if n.name_any() == "n1"),
    )
    .await;

    let got = api.get("n1").await.unwrap();
    assert_eq!(got.labels()["kubernetes.io/hostname"], "n1");
    let list = api
        .list(&ListParams::default().labels("kubernetes.io/hostname=n1"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);

    // The status subresource keeps arbitrary Node status and leaves the spec alone.
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "addresses": [{"type": "InternalIP", "address": "2001:db8::1"}],
    }});
    let patched = api
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let st = patched.status.unwrap();
    assert_eq!(st.conditions.unwrap()[0].status, "True");
    assert_eq!(st.addresses.unwrap()[0].address, "2001:db8::1");
    assert_eq!(patched.spec.unwrap().pod_cidr.as_deref(), Some("10.244.0.0/24"));
    // A status write through the main resource is ignored, as for every kind with a status subresource.
    let main = api
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": null}})),
        )
        .await
        .unwrap();
    assert_eq!(main.status.unwrap().conditions.unwrap().len(), 1);

    // Deleting a node with a finalizer only marks it; removing the finalizer removes it.
    api.patch(
        "n1",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": ["apinet.ironcore.dev/node"]}})),
    )
    .await
    .unwrap();
    api.delete("n1", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("n1").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.finalizers(), ["apinet.ironcore.dev/node"]);
    api.patch(
        "n1",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    next_matching(
        &mut events,
        "n1 deleted",
        |e| matches!(e, watcher::Event::Delete(n) if n.name_any() == "n1"),
    )
    .await;
    assert!(api.get_opt("n1").await.unwrap().is_none());

    // Server-side apply works on nodes too (metalnet agents register themselves that way).
    let applied = api
        .patch(
            "n2",
            &PatchParams::apply("agent").force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2", "labels": {"a": "b"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(applied.labels()["a"], "b");
}

async fn node_lifecycle_in_process(t: TestServer) {
    node_lifecycle(t.client()).await;
}

async fn node_lifecycle_over_tcp(t: TestServer) {
    let (addr, task) = t.serve_tcp().await;
    node_lifecycle(tcp_client(addr)).await;
    task.stop().await;
}

/// `kubectl get no` resolves the short name to core/v1 nodes (not the ironcore-net kind of the same name,
/// which this server does not serve) and prints the table columns.
async fn kubectl_gets_nodes(t: TestServer) {
    let api: Api<Node> = Api::all(t.client());
    api.create(&PostParams::default(), &node("kn1")).await.unwrap();
    let (addr, task) = t.serve_tcp().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    ironnet_apiserver::kubeconfig::write(&kubeconfig, &format!("http://{addr}")).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["get", "no"])
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kubectl in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl get no: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert!(
        lines[0].contains("STATUS") && lines[0].contains("AGE"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("kn1 "), "{stdout}");
    task.stop().await;
}

crate::on_both_stores!(tokio::test; node_lifecycle_in_process, node_lifecycle_over_tcp);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_nodes_embedded() {
    kubectl_gets_nodes(TestServer::start().await).await;
}
