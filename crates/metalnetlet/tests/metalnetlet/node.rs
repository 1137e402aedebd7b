//! MetalnetNode: metalnet (core/v1) Nodes mirrored as apinet Nodes of the partition.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{PARTITION, apinet_node_name, env, obj, poll};

/// Upstream: the metalnet node gets exactly the node finalizer, the apinet Node exactly the partition label
/// and the node labels, and deleting the metalnet node deletes the apinet Node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metalnet_node_is_mirrored_and_its_deletion_deletes_the_apinet_node() {
    let env = env().await;
    let node = env.metalnet_node("node-1").await;
    assert_eq!(node.finalizers(), ["apinet.ironcore.dev/node"]);
    let apinet_node = poll("apinet node", || async {
        env.apinet_nodes()
            .get_opt(&apinet_node_name("node-1"))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(apinet_node.name_any(), "test-metalnetlet.node-1");
    assert_eq!(
        apinet_node.labels(),
        &BTreeMap::from([
            ("the".to_owned(), "node".to_owned()),
            (
                "topology.core.apinet.ironcore.dev/partition".to_owned(),
                PARTITION.to_owned()
            ),
        ])
    );

    env.nodes()
        .delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    env.gone(&env.apinet_nodes(), &apinet_node_name("node-1")).await;
    // With the apinet Node gone the finalizer goes, and so does the metalnet node.
    env.gone(&env.nodes(), "node-1").await;
}

/// A deleted apinet Node of a live metalnet node comes back; an apinet Node of the partition whose metalnet node
/// does not exist is deleted (upstream deletes `"<partition>."` instead and leaves it), while one of another
/// partition is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apinet_nodes_follow_the_metalnet_nodes() {
    let env = env().await;
    env.metalnet_node("node-1").await;
    let name = apinet_node_name("node-1");
    let first = poll("apinet node", || async {
        env.apinet_nodes().get_opt(&name).await.unwrap()
    })
    .await;
    env.apinet_nodes()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    poll("apinet node recreated", || async {
        env.apinet_nodes()
            .get_opt(&name)
            .await
            .unwrap()
            .filter(|n| n.uid() != first.uid())
    })
    .await;

    let ghost = |name: &str, partition: &str| -> ironnet_api::apinet::Node {
        obj(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node",
            "metadata": {"name": name, "labels": {"topology.core.apinet.ironcore.dev/partition": partition}},
            "spec": {},
        }))
    };
    env.apinet_nodes()
        .create(&PostParams::default(), &ghost("other.ghost", "other"))
        .await
        .unwrap();
    env.apinet_nodes()
        .create(
            &PostParams::default(),
            &ghost(&apinet_node_name("ghost"), PARTITION),
        )
        .await
        .unwrap();
    env.gone(&env.apinet_nodes(), &apinet_node_name("ghost")).await;
    assert!(
        env.apinet_nodes().get_opt("other.ghost").await.unwrap().is_some(),
        "another partition's node is not ours to delete"
    );

    // A metalnet node whose finalizer is removed by hand vanishes without the deletion flow; its apinet Node
    // is still collected.
    env.nodes()
        .delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    env.nodes()
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .ok();
    env.gone(&env.nodes(), "node-1").await;
    env.gone(&env.apinet_nodes(), &name).await;
}
