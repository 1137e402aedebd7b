//! The Node authorizer and NodeRestriction: a node agent (`system:node:hv-1` in `system:nodes`)
//! reads and writes the metalnet objects bound to its node and its own Node, and nothing of
//! another node or of a tenant.

use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use crate::{Cluster, api, create, eventually, status_of};

const METALNET: &str = "networking.metalnet.ironcore.dev";

fn nics(client: &kube::Client, ns: Option<&str>) -> kube::Api<kube::api::DynamicObject> {
    api(
        client,
        METALNET,
        "v1alpha1",
        "NetworkInterface",
        "networkinterfaces",
        ns,
    )
}

fn nic(name: &str, node: &str) -> Value {
    json!({"apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
        "metadata": {"name": name}, "spec": {"nodeName": node, "networkRef": {"name": "net"}}})
}

#[tokio::test]
async fn a_node_reaches_only_its_own_objects() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let hv1 = c.client("system:node:hv-1").await;
    create(&nics(&admin, Some("default")), nic("nic-1", "hv-1"))
        .await
        .unwrap();
    create(&nics(&admin, Some("default")), nic("nic-2", "hv-2"))
        .await
        .unwrap();
    let mine = nics(&hv1, Some("default"));

    // get: its own (once the authorizer's index has it), not another node's.
    eventually("the index of nic-1", || async { mine.get("nic-1").await.is_ok() }).await;
    assert_eq!(
        status_of(mine.get("nic-2").await),
        (
            403,
            "networkinterfaces.networking.metalnet.ironcore.dev \"nic-2\" is forbidden: User \"system:node:hv-1\" cannot get resource \"networkinterfaces\" in API group \"networking.metalnet.ironcore.dev\" in the namespace \"default\": no relationship found between node 'hv-1' and this object".to_owned()
        )
    );

    // list and watch: only pinned to its node by the field selector.
    let own = ListParams::default().fields("spec.nodeName=hv-1");
    let listed = mine.list(&own).await.unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    assert_eq!(names, vec!["nic-1".to_owned()]);
    let (code, message) = status_of(mine.list(&ListParams::default()).await);
    assert_eq!(code, 403);
    assert!(
        message.ends_with("can only list/watch networkinterfaces with the field selector spec.nodeName=hv-1"),
        "{message}"
    );
    assert_eq!(
        status_of(
            mine.list(&ListParams::default().fields("spec.nodeName=hv-2"))
                .await
        )
        .0,
        403
    );
    assert_eq!(
        status_of(nics(&hv1, None).list(&ListParams::default()).await).0,
        403
    );
    let mut watch = nics(&hv1, None)
        .watch(&WatchParams::default().fields("spec.nodeName=hv-1"), "0")
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), watch.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("nic-1")),
        other => panic!("unexpected first event {other:?}"),
    }
    assert!(
        nics(&hv1, None)
            .watch(&WatchParams::default(), "0")
            .await
            .is_err(),
        "an unpinned watch must be refused"
    );

    // write: status of its own; never another node's, never moving one to another node.
    mine.patch_status(
        "nic-1",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"state": "Ready"}})),
    )
    .await
    .unwrap();
    assert_eq!(
        status_of(
            mine.patch_status(
                "nic-2",
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"state": "Ready"}}))
            )
            .await
        )
        .0,
        403
    );
    let (code, message) = status_of(
        mine.patch(
            "nic-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"nodeName": "hv-2"}})),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert!(
        message.contains("node \"hv-1\" is not allowed to bind objects to node \"hv-2\""),
        "{message}"
    );
    assert_eq!(status_of(create(&mine, nic("nic-3", "hv-1")).await).0, 403);
    assert_eq!(status_of(mine.delete("nic-1", &Default::default()).await).0, 403);
}

#[tokio::test]
async fn a_node_keeps_its_own_node_and_its_finalizer_on_shared_networks() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let hv1 = c.client("system:node:hv-1").await;

    let nodes = api(&hv1, "", "v1", "Node", "nodes", None);
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    create(&nodes, node("hv-1")).await.unwrap();
    let (code, message) = status_of(create(&nodes, node("hv-2")).await);
    assert_eq!(code, 403);
    assert!(
        message.contains("node \"hv-1\" is not allowed to modify node"),
        "{message}"
    );
    create(&api(&admin, "", "v1", "Node", "nodes", None), node("hv-2"))
        .await
        .unwrap();
    nodes.get("hv-1").await.unwrap();
    assert_eq!(status_of(nodes.get("hv-2").await).0, 403);
    assert_eq!(status_of(nodes.list(&ListParams::default()).await).0, 403);
    let own = nodes
        .list(&ListParams::default().fields("metadata.name=hv-1"))
        .await
        .unwrap();
    assert_eq!(own.items.len(), 1);
    nodes
        .patch_status(
            "hv-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .unwrap();

    // Networks are shared: readable, and a node may add and remove only its own finalizer.
    let networks = |client: &kube::Client| {
        api(
            client,
            METALNET,
            "v1alpha1",
            "Network",
            "networks",
            Some("default"),
        )
    };
    create(
        &networks(&admin),
        json!({"apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": "Network",
            "metadata": {"name": "net", "finalizers": ["networking.metalnet.ironcore.dev/network-hv-2"]}, "spec": {"id": 7}}),
    )
    .await
    .unwrap();
    let shared = networks(&hv1);
    shared.list(&ListParams::default()).await.unwrap();
    shared
        .patch(
            "net",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": [
                "networking.metalnet.ironcore.dev/network-hv-2", "networking.metalnet.ironcore.dev/network-hv-1"]}})),
        )
        .await
        .unwrap();
    let (code, message) = status_of(
        shared
            .patch(
                "net",
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"metadata": {"finalizers": ["networking.metalnet.ironcore.dev/network-hv-1"]}}),
                ),
            )
            .await,
    );
    assert_eq!(code, 403);
    assert!(message.contains("may only change its own finalizer"), "{message}");
    assert_eq!(
        status_of(
            shared
                .patch(
                    "net",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"id": 8}}))
                )
                .await
        )
        .0,
        403
    );
    assert_eq!(status_of(shared.delete("net", &Default::default()).await).0, 403);
}

#[tokio::test]
async fn a_node_reads_no_tenant_object() {
    let c = Cluster::start().await;
    let admin = c.client("admin").await;
    let hv1 = c.client("system:node:hv-1").await;
    let tenant = |client: &kube::Client| {
        api(
            client,
            "networking.ironcore.dev",
            "v1alpha1",
            "Network",
            "networks",
            Some("default"),
        )
    };
    create(
        &tenant(&admin),
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network", "metadata": {"name": "t"}, "spec": {}}),
    )
    .await
    .unwrap();
    assert_eq!(
        status_of(tenant(&hv1).get("t").await),
        (
            403,
            "networks.networking.ironcore.dev \"t\" is forbidden: User \"system:node:hv-1\" cannot get resource \"networks\" in API group \"networking.ironcore.dev\" in the namespace \"default\"".to_owned()
        )
    );
    assert_eq!(status_of(tenant(&hv1).list(&ListParams::default()).await).0, 403);
    let rbac = api(
        &hv1,
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        None,
    );
    assert_eq!(status_of(rbac.list(&ListParams::default()).await).0, 403);
    // Events are what every node may write.
    create(
        &api(&hv1, "events.k8s.io", "v1", "Event", "events", Some("default")),
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "metalnet", "reportingInstance": "hv-1",
            "action": "Test", "reason": "Test", "type": "Normal", "regarding": {"kind": "Node", "name": "hv-1"}}),
    )
    .await
    .unwrap();
}
