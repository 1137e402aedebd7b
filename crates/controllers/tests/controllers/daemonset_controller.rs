//! apinet LoadBalancer → DaemonSet → Instances reconcilers against the real in-process API server
//! (the cases of upstream ironcore-net `internal/controllers/loadbalancer_controller_test.go` and
//! `internal/controllers/daemonset_controller_test.go`).

use crate::common;

use common::{eventually, server, start};
use ironnet_api::apinet::{DaemonSet, Instance, LoadBalancer, Node};
use ironnet_controllers::reconcilers::{apinet_loadbalancer, daemonset};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

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

fn lb(name: &str, lb_type: &str, ip: &str) -> LoadBalancer {
    serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "LoadBalancer", "metadata": {"name": name},
        "spec": {"type": lb_type, "networkRef": {"name": "net"}, "ips": [{"name": "ip-1", "ipFamily": "IPv4", "ip": ip}],
                 "selector": {"matchLabels": {"foo": "bar"}},
                 "template": {"metadata": {"labels": {"foo": "bar"}}, "spec": {}}},
    }))
    .unwrap()
}

async fn daemonset_spec(api: &Api<DaemonSet>, name: &str) -> Value {
    eventually("daemon set", || async {
        api.get_opt(name).await.unwrap().is_some()
    })
    .await;
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()["spec"].clone()
}

#[tokio::test]
async fn load_balancer_daemon_set_has_exactly_the_upstream_shape_public_and_internal() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client, |c, s| {
        apinet_loadbalancer::run(ironnet_runtime::informer::Informers::new(c), 2, s)
    });
    let lbs: Api<LoadBalancer> = Api::namespaced(client.clone(), "default");
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    for (name, t, ip) in [
        ("public", "Public", "10.0.0.1"),
        ("internal", "Internal", "10.0.0.2"),
    ] {
        let created = lbs
            .create(&PostParams::default(), &lb(name, t, ip))
            .await
            .unwrap();
        let spec = daemonset_spec(&dss, &format!("lb-{name}")).await;
        assert_eq!(
            spec,
            json!({
                "nodeSelector": {"matchLabels": {"foo": "bar"}},
                "template": {"metadata": {"labels": {"foo": "bar"}},
                             "spec": {"type": "LoadBalancer", "loadBalancerType": t, "networkRef": {"name": "net"}, "ips": [ip]}},
            })
        );
        let ds = dss.get(&format!("lb-{name}")).await.unwrap();
        let owner = &ds.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            (
                "LoadBalancer",
                created.metadata.uid.as_deref().unwrap(),
                Some(true)
            )
        );
    }
    // The DaemonSet goes with its LoadBalancer (owner reference, the server's garbage collector).
    lbs.delete("public", &DeleteParams::default()).await.unwrap();
    eventually("daemon set collected", || async {
        dss.get_opt("lb-public").await.unwrap().is_none()
    })
    .await;
    assert!(dss.get_opt("lb-internal").await.unwrap().is_some());
}

fn instance_node(i: &Instance) -> Option<String> {
    ironnet_controllers::daemonset::pinned_node(&serde_json::to_value(&i.spec).unwrap())
}

async fn live(api: &Api<Instance>) -> Vec<Instance> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test]
async fn daemon_set_runs_one_pinned_instance_per_node_and_follows_its_template() {
    let (client, _server, _dir) = server().await;
    create_node(&client, "node-a", json!({})).await;
    create_node(&client, "node-b", json!({})).await;
    let _stop = start(&client, |c, s| daemonset::run(c, 2, s));
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let insts: Api<Instance> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "DaemonSet", "metadata": {"name": "ds"},
        "spec": {"nodeSelector": {"matchLabels": {"foo": "bar"}},
                 "template": {"metadata": {"labels": {"foo": "bar"}},
                              "spec": {"type": "LoadBalancer", "loadBalancerType": "Public",
                                       "networkRef": {"name": "net"}, "ips": ["10.0.0.1"]}}},
    }))
    .unwrap();
    dss.create(&PostParams::default(), &ds).await.unwrap();

    let check = |want_ips: Value, want_ports: Value| {
        let insts = insts.clone();
        async move {
            let items = live(&insts).await;
            let mut nodes: Vec<String> = items.iter().filter_map(instance_node).collect();
            nodes.sort();
            nodes == ["node-a", "node-b"]
                && items.iter().all(|i| {
                    let spec = serde_json::to_value(&i.spec).unwrap();
                    let node = instance_node(i).unwrap();
                    spec["ips"] == want_ips
                        && spec.get("loadBalancerPorts").cloned().unwrap_or(Value::Null) == want_ports
                        && spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                            == json!({"nodeSelectorTerms": [{"matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [node]}]}]})
                        && i.metadata.labels.as_ref().is_some_and(|l| {
                            l.get("foo").map(String::as_str) == Some("bar")
                                && l.contains_key("apinet.ironcore.dev/controller-revision-hash")
                        })
                })
        }
    };
    eventually("two pinned instances", || check(json!(["10.0.0.1"]), Value::Null)).await;

    let patch = json!({"spec": {"template": {"spec": {"ips": ["192.168.178.1"]}}}});
    dss.patch("ds", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("ips propagated", || check(json!(["192.168.178.1"]), Value::Null)).await;

    let patch =
        json!({"spec": {"template": {"spec": {"loadBalancerPorts": [{"protocol": "TCP", "port": 80}]}}}});
    dss.patch("ds", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("ports propagated", || {
        check(json!(["192.168.178.1"]), json!([{"protocol": "TCP", "port": 80}]))
    })
    .await;

    let before: Vec<String> = live(&insts)
        .await
        .iter()
        .map(|i| i.metadata.name.clone().unwrap())
        .collect();
    insts
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    eventually("instances re-created", || async {
        let items = live(&insts).await;
        items.len() == 2
            && items
                .iter()
                .all(|i| !before.contains(i.metadata.name.as_ref().unwrap()))
    })
    .await;

    // A new node gets an instance; a vanished node's instance goes.
    create_node(&client, "node-c", json!({})).await;
    eventually("third node", || async { live(&insts).await.len() == 3 }).await;
    Api::<Node>::all(client.clone())
        .delete("node-a", &DeleteParams::default())
        .await
        .unwrap();
    eventually("node-a instance removed", || async {
        let items = live(&insts).await;
        items.len() == 2
            && items
                .iter()
                .all(|i| instance_node(i).as_deref() != Some("node-a"))
    })
    .await;
}

#[tokio::test]
async fn daemon_set_honours_template_node_affinity_and_releases_unselected_instances() {
    let (client, _server, _dir) = server().await;
    create_node(&client, "node-a", json!({"zone": "a"})).await;
    create_node(&client, "node-b", json!({"zone": "b"})).await;
    let _stop = start(&client, |c, s| daemonset::run(c, 2, s));
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let insts: Api<Instance> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "DaemonSet", "metadata": {"name": "ds"},
        "spec": {"nodeSelector": {"matchLabels": {"foo": "bar"}},
                 "template": {"metadata": {"labels": {"foo": "bar"}},
                              "spec": {"type": "LoadBalancer", "loadBalancerType": "Public",
                                       "networkRef": {"name": "net"}, "ips": ["10.0.0.1"],
                                       "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                           "nodeSelectorTerms": [{"matchExpressions": [
                                               {"key": "zone", "operator": "In", "values": ["b"]}]}]}}}}}},
    }))
    .unwrap();
    dss.create(&PostParams::default(), &ds).await.unwrap();
    eventually("one instance on node-b", || async {
        let items = live(&insts).await;
        items.len() == 1 && instance_node(&items[0]).as_deref() == Some("node-b")
    })
    .await;
    // Relabelling the instance out of the selector releases it (it stays, unowned) and a new one replaces it.
    let name = live(&insts).await[0].metadata.name.clone().unwrap();
    let patch = json!({"metadata": {"labels": {"foo": "other"}}});
    insts
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("released and replaced", || async {
        let items = live(&insts).await;
        let released = items
            .iter()
            .find(|i| i.metadata.name.as_deref() == Some(name.as_str()));
        items.len() == 2
            && released.is_some_and(|i| i.metadata.owner_references.as_ref().is_none_or(Vec::is_empty))
    })
    .await;
}

#[tokio::test]
async fn load_balancer_instances_are_created_and_bound_by_the_whole_controller_manager() {
    let (client, _server, _dir) = server().await;
    create_node(
        &client,
        "node-a",
        json!({"topology.core.apinet.ironcore.dev/zone": "a"}),
    )
    .await;
    create_node(
        &client,
        "node-b",
        json!({"topology.core.apinet.ironcore.dev/zone": "b"}),
    )
    .await;
    let _stop = start(&client, |c, s| {
        ironnet_controllers::run(ironnet_controllers::ControllerConfig::default(), c, s)
    });
    let mut l = lb("web", "Public", "10.0.0.1");
    // apinetlet's zone anti-affinity: one instance per zone, which two zones allow.
    l.spec.template = serde_json::from_value(json!({
        "metadata": {"labels": {"foo": "bar"}},
        "spec": {"affinity": {"instanceAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"foo": "bar"}}, "topologyKey": "topology.core.apinet.ironcore.dev/zone"}]}}},
    }))
    .unwrap();
    Api::<LoadBalancer>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &l)
        .await
        .unwrap();
    let insts: Api<Instance> = Api::namespaced(client.clone(), "default");
    eventually("two instances bound to their pinned nodes", || async {
        let items = live(&insts).await;
        let mut bound: Vec<String> = items
            .iter()
            .filter(|i| {
                // The scheduler's binding agrees with the DaemonSet's affinity pin.
                let mut spec = serde_json::to_value(&i.spec).unwrap();
                spec.as_object_mut().unwrap().remove("nodeRef");
                let pin = ironnet_controllers::daemonset::pinned_node(&spec);
                pin.is_some() && i.spec.node_ref.as_ref().map(|n| n.name.clone()) == pin
            })
            .filter_map(|i| i.spec.node_ref.as_ref().map(|n| n.name.clone()))
            .collect();
        bound.sort();
        items.len() == 2 && bound == ["node-a", "node-b"]
    })
    .await;
}
