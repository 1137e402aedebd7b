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

/// With leader election, metalnetlet holds its partition's Lease on the metalnet server and reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leader_election_it_holds_the_partition_lease_and_reconciles() {
    let mut cfg = crate::common::config();
    cfg.leader_election = Some(
        ironnet_runtime::leader::LeaderElectionConfig::new(
            "default",
            ironnet_metalnetlet::lease_name(PARTITION),
            "metalnetlet-test",
        )
        .unwrap(),
    );
    let env = crate::common::env_with(cfg, false).await;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(env.client.clone(), "default");
    poll("lease held", || async {
        leases
            .get_opt("test-metalnetlet.bf12dae0.metalnetlet.apinet.ironcore.dev")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| h == "metalnetlet-test")
    })
    .await;
    env.metalnet_node("node-1").await;
    poll("apinet node", || async {
        env.apinet_nodes()
            .get_opt(&apinet_node_name("node-1"))
            .await
            .unwrap()
    })
    .await;
}

/// With `--metalnet-node-selector`, only selected metalnet nodes belong to the partition; a node that stops
/// matching loses its apinet Node and metalnetlet's finalizer (upstream keeps the finalizer, which then blocks
/// the node's deletion forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_selected_metalnet_nodes_belong_to_the_partition() {
    let mut cfg = crate::common::config();
    cfg.metalnet_node_selector = Some("role=hypervisor".into());
    let env = crate::common::env_with(cfg, false).await;
    let node = |name: &str, role: &str| -> k8s_openapi::api::core::v1::Node {
        obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"role": role}}}))
    };
    for (name, role) in [("other", "storage"), ("hv", "hypervisor")] {
        env.nodes()
            .create(&PostParams::default(), &node(name, role))
            .await
            .unwrap();
    }
    poll("apinet node of the selected node", || async {
        env.apinet_nodes().get_opt(&apinet_node_name("hv")).await.unwrap()
    })
    .await;
    assert!(
        env.apinet_nodes()
            .get_opt(&apinet_node_name("other"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.nodes().get("other").await.unwrap().finalizers().is_empty(),
        "an unselected node is not touched"
    );
    env.nodes()
        .patch(
            "hv",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"role": "storage"}}})),
        )
        .await
        .unwrap();
    env.gone(&env.apinet_nodes(), &apinet_node_name("hv")).await;
    poll("finalizer removed from the unselected node", || async {
        env.nodes()
            .get("hv")
            .await
            .unwrap()
            .finalizers()
            .is_empty()
            .then_some(())
    })
    .await;
    env.nodes().delete("hv", &DeleteParams::default()).await.unwrap();
    env.gone(&env.nodes(), "hv").await;
}
