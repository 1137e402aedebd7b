//! LoadBalancer routing reconciler against the real in-process API server (the cases of upstream ironcore
//! `internal/controllers/networking/loadbalancer_controller_test.go`).

use crate::common;

use common::{eventually, server};
use ironnet_api::networking::{LoadBalancer, LoadBalancerRouting, Network, NetworkInterface};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn routing_follows_selected_available_interfaces() {
    let (client, _server, _dir) = server().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::run(
        ironnet_controllers::ControllerConfig::default(),
        client.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    let lbs: Api<LoadBalancer> = Api::namespaced(client.clone(), "default");
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let routings: Api<LoadBalancerRouting> = Api::namespaced(client.clone(), "default");

    let net: Network = serde_json::from_value(json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network", "metadata": {"name": "net"}, "spec": {}})).unwrap();
    let net = nets.create(&PostParams::default(), &net).await.unwrap();
    nets.patch_status(
        "net",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Available"}})),
    )
    .await
    .unwrap();
    let lb: LoadBalancer = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancer", "metadata": {"name": "lb"},
        "spec": {"type": "Public", "ipFamilies": ["IPv4"], "networkRef": {"name": "net"},
                 "networkInterfaceSelector": {"matchLabels": {"foo": "bar"}}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    let lb = lbs.create(&PostParams::default(), &lb).await.unwrap();

    let routing = || async {
        routings
            .get_opt("lb")
            .await
            .unwrap()
            .map(|r| serde_json::to_value(r).unwrap())
    };
    eventually("empty routing", || async {
        routing().await.is_some_and(|r| r["destinations"] == json!([]))
    })
    .await;
    let r = routing().await.unwrap();
    assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], json!(lb.metadata.uid));
    assert_eq!(r["metadata"]["ownerReferences"][0]["controller"], true);

    let nic: NetworkInterface = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
        "metadata": {"name": "nic", "labels": {"foo": "bar"}},
        "spec": {"networkRef": {"name": "net"}, "ips": [{"value": "10.0.0.1"}]},
    }))
    .unwrap();
    let nic = nics.create(&PostParams::default(), &nic).await.unwrap();
    nics.patch(
        "nic",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"providerID": "my://provider-id"}})),
    )
    .await
    .unwrap();
    nics.patch_status(
        "nic",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Available", "ips": ["10.0.0.1"]}})),
    )
    .await
    .unwrap();
    let expected = json!([{"ip": "10.0.0.1", "targetRef": {"uid": nic.metadata.uid, "name": "nic", "providerID": "my://provider-id"}}]);
    eventually("destination", || async {
        routing().await.is_some_and(|r| r["destinations"] == expected)
    })
    .await;
    let r = routing().await.unwrap();
    assert_eq!(r["networkRef"], json!({"name": "net", "uid": net.metadata.uid}));

    nics.patch(
        "nic",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": null}})),
    )
    .await
    .unwrap();
    eventually("destination removed", || async {
        routing().await.is_some_and(|r| r["destinations"] == json!([]))
    })
    .await;
    assert_eq!(routing().await.unwrap()["networkRef"]["name"], "net");

    // Reconciles that change nothing write nothing: the routing's resourceVersion stays put.
    let rv = routings.get("lb").await.unwrap().metadata.resource_version;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(routings.get("lb").await.unwrap().metadata.resource_version, rv);
    tx.send(()).unwrap();
}
