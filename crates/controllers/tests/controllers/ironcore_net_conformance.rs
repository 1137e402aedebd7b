//! The remaining ironcore-net controller conformance cases against the real in-process API server (upstream
//! `internal/controllers/ipaddress_controller_test.go`, `networkinterfacenatrelease_controller_test.go` (a)).

use crate::common;

use common::{consistently, eventually, server, start};
use ironnet_api::apinet::{IPAddress, NATGateway, NetworkInterface};
use ironnet_controllers::reconcilers::{allocation_gc, nat_allocation, nat_release};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const PROTECTION: &str = "apinet.ironcore.dev/ipaddress-protection";

fn gateway() -> NATGateway {
    serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NATGateway", "metadata": {"name": "gw"},
        "spec": {"ipFamily": "IPv4", "networkRef": {"name": "net"}, "portsPerNetworkInterface": 64,
                 "ips": [{"name": "ip-1", "ip": "10.0.0.17"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn ipaddress_protection_holds_while_its_claimer_exists() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client, |c, s| allocation_gc::run(c, 2, s));
    let gws: Api<NATGateway> = Api::namespaced(client.clone(), "default");
    let addrs: Api<IPAddress> = Api::all(client.clone());
    let gw = gws.create(&PostParams::default(), &gateway()).await.unwrap();
    // The protection finalizer is what the registry's admission puts on every IPAddress.
    let addr: IPAddress = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "IPAddress",
        "metadata": {"name": "10.0.0.17", "finalizers": [PROTECTION]},
        "spec": {"ip": "10.0.0.17", "claimRef": {"group": "core.apinet.ironcore.dev", "resource": "natgateways",
                 "namespace": "default", "name": "gw", "uid": gw.metadata.uid}},
    }))
    .unwrap();
    addrs.create(&PostParams::default(), &addr).await.unwrap();
    addrs.delete("10.0.0.17", &DeleteParams::default()).await.unwrap();
    consistently("address kept while the gateway exists", || async {
        addrs.get_opt("10.0.0.17").await.unwrap().is_some_and(|a| {
            a.metadata.deletion_timestamp.is_some()
                && a.metadata.finalizers.unwrap_or_default() == [PROTECTION]
        })
    })
    .await;
    gws.delete("gw", &DeleteParams::default()).await.unwrap();
    eventually("gateway gone", || async {
        gws.get_opt("gw").await.unwrap().is_none()
    })
    .await;
    eventually("address gone", || async {
        addrs.get_opt("10.0.0.17").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn interface_created_before_its_gateway_is_claimed_and_stays_claimed() {
    let (client, _server, _dir) = server().await;
    let _nat = start(&client, |c, s| {
        nat_allocation::run(ironnet_runtime::informer::Informers::new(c), 2, s)
    });
    let _release = start(&client, |c, s| {
        nat_release::run(ironnet_runtime::informer::Informers::new(c), 2, s)
    });
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let gws: Api<NATGateway> = Api::namespaced(client.clone(), "default");
    let nic: NetworkInterface = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface", "metadata": {"name": "nic"},
        "spec": {"nodeRef": {"name": "my-node"}, "networkRef": {"name": "net"}, "ips": ["10.0.0.1"]},
    }))
    .unwrap();
    nics.create(&PostParams::default(), &nic).await.unwrap();
    let gw = gws.create(&PostParams::default(), &gateway()).await.unwrap();
    let want = json!([{"ipFamily": "IPv4", "claimRef": {"name": "gw", "uid": gw.metadata.uid}}]);
    let claims = || async {
        serde_json::to_value(nics.get("nic").await.unwrap()).unwrap()["spec"]["natGateways"].clone()
    };
    eventually("claimed", || async { claims().await == want }).await;
    consistently("stays claimed", || async { claims().await == want }).await;
}
