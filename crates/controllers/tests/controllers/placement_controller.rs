//! Instance placement against the real in-process API server (the cases of upstream ironcore-net
//! `internal/controllers/scheduler_controller_test.go`).

use crate::common;

use common::{consistently, eventually, server, start};
use ironnet_api::apinet::{Instance, Node};
use ironnet_controllers::reconcilers::placement;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const ZONE: &str = "apinet.ironcore.dev/zone";

async fn create_node(client: &kube::Client, name: &str, labels: Value) {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node",
        "metadata": {"name": name, "labels": labels}, "spec": {},
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
}

fn instance(name: &str, extra: Value, labels: Value) -> Instance {
    let mut spec =
        json!({"type": "LoadBalancer", "loadBalancerType": "Public", "networkRef": {"name": "net"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Instance",
        "metadata": {"name": name, "labels": labels}, "spec": spec,
    }))
    .unwrap()
}

fn zone_anti_affinity() -> Value {
    json!({"instanceAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"topology-test": ""}}, "topologyKey": ZONE}]}})
}

async fn bound(api: &Api<Instance>) -> Vec<(String, String)> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|i| Some((i.metadata.name.clone()?, i.spec.node_ref?.name)))
        .collect()
}

#[tokio::test]
async fn instance_is_bound_to_the_only_node() {
    let (client, _server, _dir) = server().await;
    create_node(&client, "node", json!({})).await;
    let _stop = start(&client, placement::run);
    let api: Api<Instance> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &instance("i", json!({}), json!({})))
        .await
        .unwrap();
    eventually("bound", || async {
        bound(&api).await == [("i".to_owned(), "node".to_owned())]
    })
    .await;
}

#[tokio::test]
async fn anti_affinity_spreads_instances_over_zones_and_leaves_the_third_unscheduled() {
    let (client, _server, _dir) = server().await;
    create_node(&client, "node-a", json!({ZONE: "zone-a"})).await;
    create_node(&client, "node-b", json!({ZONE: "zone-b"})).await;
    let _stop = start(&client, placement::run);
    let api: Api<Instance> = Api::namespaced(client.clone(), "default");
    for name in ["i1", "i2", "i3"] {
        let i = instance(
            name,
            json!({"affinity": zone_anti_affinity()}),
            json!({"topology-test": ""}),
        );
        api.create(&PostParams::default(), &i).await.unwrap();
    }
    eventually("two bound", || async { bound(&api).await.len() == 2 }).await;
    let mut nodes: Vec<String> = bound(&api).await.into_iter().map(|(_, n)| n).collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
    consistently("third stays unscheduled", || async {
        bound(&api).await.len() == 2
    })
    .await;
}

#[tokio::test]
async fn pinned_instances_in_one_zone_repel_each_other() {
    let (client, _server, _dir) = server().await;
    create_node(&client, "node-a", json!({ZONE: "zone-a"})).await;
    create_node(&client, "node-b", json!({ZONE: "zone-a"})).await;
    let _stop = start(&client, placement::run);
    let api: Api<Instance> = Api::namespaced(client.clone(), "default");
    for (name, node) in [("i1", "node-a"), ("i2", "node-b")] {
        let mut affinity = zone_anti_affinity();
        affinity["nodeAffinity"] = ironnet_controllers::daemonset::pin_to_node(node);
        let i = instance(name, json!({"affinity": affinity}), json!({"topology-test": ""}));
        api.create(&PostParams::default(), &i).await.unwrap();
    }
    eventually("one bound", || async { bound(&api).await.len() == 1 }).await;
    consistently("the other stays unscheduled", || async {
        bound(&api).await.len() == 1
    })
    .await;
}

#[tokio::test]
async fn without_nodes_instances_stay_unscheduled_until_a_node_appears() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client, placement::run);
    let api: Api<Instance> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &instance("i", json!({}), json!({})))
        .await
        .unwrap();
    consistently("unscheduled", || async { bound(&api).await.is_empty() }).await;
    create_node(&client, "late", json!({})).await;
    eventually("bound to the new node", || async {
        bound(&api).await == [("i".to_owned(), "late".to_owned())]
    })
    .await;
}

#[tokio::test]
async fn topology_spread_and_load_decide_between_nodes() {
    let (client, _server, _dir) = server().await;
    create_node(&client, "a1", json!({"zone": "1"})).await;
    create_node(&client, "a2", json!({"zone": "1"})).await;
    create_node(&client, "b1", json!({"zone": "2"})).await;
    create_node(&client, "nozone", json!({})).await;
    let _stop = start(&client, placement::run);
    let api: Api<Instance> = Api::namespaced(client.clone(), "default");
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "lb"}}}]});
    for k in 0..4 {
        let name = format!("s{k}");
        api.create(
            &PostParams::default(),
            &instance(&name, spread.clone(), json!({"app": "lb"})),
        )
        .await
        .unwrap();
        eventually("bound", || async { bound(&api).await.len() == k + 1 }).await;
    }
    let placed = bound(&api).await;
    let in_zone = |z: &str| {
        placed
            .iter()
            .filter(|(_, n)| if z == "1" { n.starts_with('a') } else { n == "b1" })
            .count()
    };
    assert_eq!((in_zone("1"), in_zone("2")), (2, 2), "{placed:?}");
    assert!(placed.iter().all(|(_, n)| n != "nozone"));
    // Zone 1's two instances sit on its two nodes: least loaded wins within the zone.
    assert!(placed.iter().any(|(_, n)| n == "a1") && placed.iter().any(|(_, n)| n == "a2"));
}
