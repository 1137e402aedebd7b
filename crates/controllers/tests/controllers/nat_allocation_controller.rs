//! NATGateway → NATTable reconciler against the real in-process API server (the cases of upstream
//! ironcore-net `internal/controllers/natgateway_controller_test.go` and its neighbours).

use crate::common;

use common::{eventually, server};
use ironnet_api::apinet::{NATGateway, NATTable, NetworkInterface};
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test]
async fn eligible_interface_gets_first_slot_and_claim() {
    let (client, _server, _dir) = server().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::reconcilers::nat_allocation::run(
        ironnet_runtime::informer::Informers::new(client.clone()),
        2,
        async move {
            let _ = rx.await;
        },
    ));
    let gws: Api<NATGateway> = Api::namespaced(client.clone(), "default");
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let tables: Api<NATTable> = Api::namespaced(client.clone(), "default");
    let gw: NATGateway = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NATGateway", "metadata": {"name": "gw"},
        "spec": {"ipFamily": "IPv4", "networkRef": {"name": "net"}, "portsPerNetworkInterface": 64,
                 "ips": [{"name": "ip-1", "ip": "10.0.0.17"}]},
    }))
    .unwrap();
    let gw = gws.create(&PostParams::default(), &gw).await.unwrap();
    let nic = |name: &str, net: &str, ip: &str| -> NetworkInterface {
        serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface", "metadata": {"name": name},
            "spec": {"nodeRef": {"name": "my-node"}, "networkRef": {"name": net}, "ips": [ip]},
        }))
        .unwrap()
    };
    let a = nics
        .create(&PostParams::default(), &nic("nic", "net", "10.0.0.1"))
        .await
        .unwrap();
    nics.create(&PostParams::default(), &nic("other", "other-net", "10.0.0.2"))
        .await
        .unwrap();

    let expected = json!([{"ip": "10.0.0.17", "sections": [{"ip": "10.0.0.1", "port": 1024, "endPort": 1087,
        "targetRef": {"uid": a.metadata.uid, "name": "nic", "nodeRef": {"name": "my-node"}}}]}]);
    eventually("NATTable", || async {
        tables
            .get_opt("gw")
            .await
            .unwrap()
            .is_some_and(|t| serde_json::to_value(t).unwrap()["ips"] == expected)
    })
    .await;
    let claimed = serde_json::to_value(nics.get("nic").await.unwrap()).unwrap();
    assert_eq!(
        claimed["spec"]["natGateways"],
        json!([{"ipFamily": "IPv4", "claimRef": {"name": "gw", "uid": gw.metadata.uid}}])
    );
    let other = serde_json::to_value(nics.get("other").await.unwrap()).unwrap();
    assert!(
        other["spec"]
            .get("natGateways")
            .is_none_or(|v| v.as_array().is_none_or(|a| a.is_empty()))
    );
    eventually("status", || async {
        let g = serde_json::to_value(gws.get("gw").await.unwrap()).unwrap();
        g["status"]["usedNATIPs"] == 1 && g["status"]["requestedNATIPs"] == 1
    })
    .await;
    tx.send(()).unwrap();
}

#[tokio::test]
async fn autoscaler_grows_the_gateway_with_demand() {
    let (client, _server, _dir) = server().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::run(
        ironnet_controllers::ControllerConfig::default(),
        client.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    let gws: Api<NATGateway> = Api::namespaced(client.clone(), "default");
    let scalers: Api<ironnet_api::apinet::NATGatewayAutoscaler> = Api::namespaced(client.clone(), "default");
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let gw: NATGateway = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NATGateway", "metadata": {"name": "gw"},
        "spec": {"ipFamily": "IPv4", "networkRef": {"name": "net"}, "portsPerNetworkInterface": 64512},
    }))
    .unwrap();
    gws.create(&PostParams::default(), &gw).await.unwrap();
    let scaler = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NATGatewayAutoscaler", "metadata": {"name": "gw"},
        "spec": {"natGatewayRef": {"name": "gw"}, "minPublicIPs": 1, "maxPublicIPs": 3},
    }))
    .unwrap();
    scalers.create(&PostParams::default(), &scaler).await.unwrap();
    let ip_count = || async {
        serde_json::to_value(gws.get("gw").await.unwrap()).unwrap()["spec"]["ips"]
            .as_array()
            .map_or(0, Vec::len)
    };
    eventually("grown to min", || async { ip_count().await == 1 }).await;

    // The NAT controller counts interfaces that want NAT in status.requestedNATIPs even while the gateway's
    // entries have no address yet (no allocator in this test server); the autoscaler grows on that demand.
    for i in 0..2 {
        let nic: NetworkInterface = serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface", "metadata": {"name": format!("nic-{i}")},
            "spec": {"nodeRef": {"name": "n"}, "networkRef": {"name": "net"}, "ips": [format!("10.0.0.{}", i + 1)]},
        }))
        .unwrap();
        nics.create(&PostParams::default(), &nic).await.unwrap();
    }
    eventually("two requests, one slot per IP → two IPs", || async {
        ip_count().await == 2
    })
    .await;
    tx.send(()).unwrap();
}

#[tokio::test]
async fn nat_claims_of_missing_gateways_are_released() {
    let (client, _server, _dir) = server().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::reconcilers::nat_release::run(
        ironnet_runtime::informer::Informers::new(client.clone()),
        2,
        async move {
            let _ = rx.await;
        },
    ));
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let nic: NetworkInterface = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface", "metadata": {"name": "nic"},
        "spec": {"nodeRef": {"name": "n"}, "networkRef": {"name": "net"}, "ips": ["10.0.0.1"],
                 "natGateways": [{"ipFamily": "IPv4", "claimRef": {"name": "should-not-exist", "uid": "should-not-exist"}}]},
    }))
    .unwrap();
    nics.create(&PostParams::default(), &nic).await.unwrap();
    eventually("claim released", || async {
        let v = serde_json::to_value(nics.get("nic").await.unwrap()).unwrap();
        v["spec"]
            .get("natGateways")
            .is_none_or(|a| a.as_array().is_none_or(|a| a.is_empty()))
    })
    .await;
    tx.send(()).unwrap();
}

#[tokio::test]
async fn ipaddresses_of_vanished_claimers_are_collected_and_live_ones_kept() {
    let (client, _server, _dir) = server().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::reconcilers::allocation_gc::run(
        client.clone(),
        2,
        async move {
            let _ = rx.await;
        },
    ));
    let gws: Api<NATGateway> = Api::namespaced(client.clone(), "default");
    let addrs: Api<ironnet_api::apinet::IPAddress> = Api::all(client.clone());
    let gw: NATGateway = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NATGateway", "metadata": {"name": "gw"},
        "spec": {"ipFamily": "IPv4", "networkRef": {"name": "net"}, "portsPerNetworkInterface": 64},
    }))
    .unwrap();
    let gw = gws.create(&PostParams::default(), &gw).await.unwrap();
    let addr = |ip: &str, name: &str, uid: &str| -> ironnet_api::apinet::IPAddress {
        serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "IPAddress", "metadata": {"name": ip},
            "spec": {"ip": ip, "claimRef": {"group": "core.apinet.ironcore.dev", "resource": "natgateways",
                     "namespace": "default", "name": name, "uid": uid}},
        }))
        .unwrap()
    };
    addrs
        .create(
            &PostParams::default(),
            &addr("10.0.0.1", "gw", gw.metadata.uid.as_deref().unwrap()),
        )
        .await
        .unwrap();
    addrs
        .create(&PostParams::default(), &addr("10.0.0.2", "should-not-exist", "x"))
        .await
        .unwrap();
    addrs
        .create(
            &PostParams::default(),
            &addr("10.0.0.3", "gw", "previous-incarnation"),
        )
        .await
        .unwrap();
    eventually("stale addresses collected", || async {
        addrs.get_opt("10.0.0.2").await.unwrap().is_none()
            && addrs.get_opt("10.0.0.3").await.unwrap().is_none()
    })
    .await;
    assert!(addrs.get_opt("10.0.0.1").await.unwrap().is_some());
    tx.send(()).unwrap();
}
