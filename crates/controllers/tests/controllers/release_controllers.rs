//! Claim release reconcilers against the real in-process API server (upstream ironcore
//! `internal/controllers/networking/network_release_controller_test.go`,
//! `virtualip_release_controller_test.go`), plus the UID check upstream lacks.

use crate::common;

use common::{eventually, server};
use ironnet_api::networking::{Network, NetworkInterface, VirtualIP};
use kube::api::{Api, PostParams};
use serde_json::json;

fn start(client: kube::Client) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::reconcilers::release::run(
        ironnet_runtime::informer::Informers::new(client),
        2,
        async move {
            let _ = rx.await;
        },
    ));
    tx
}

#[tokio::test]
async fn stale_target_refs_and_peering_claims_are_released() {
    let (client, _server, _dir) = server().await;
    let _stop = start(client.clone());
    let vips: Api<VirtualIP> = Api::namespaced(client.clone(), "default");
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");

    let vip: VirtualIP = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "vip"},
        "spec": {"type": "Public", "ipFamily": "IPv4", "targetRef": {"name": "should-not-exist", "uid": "4a4e1d5f"}},
    }))
    .unwrap();
    vips.create(&PostParams::default(), &vip).await.unwrap();
    eventually("targetRef released", || async {
        vips.get("vip").await.unwrap().spec.target_ref.is_none()
    })
    .await;

    // A NIC with the claimed name but another UID does not keep the claim.
    let nic: NetworkInterface = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface", "metadata": {"name": "nic"},
        "spec": {"networkRef": {"name": "net"}, "ips": [{"value": "10.0.0.1"}]},
    }))
    .unwrap();
    let nic = nics.create(&PostParams::default(), &nic).await.unwrap();
    let held: VirtualIP = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "held"},
        "spec": {"type": "Public", "ipFamily": "IPv4", "targetRef": {"name": "nic", "uid": nic.metadata.uid}},
    }))
    .unwrap();
    vips.create(&PostParams::default(), &held).await.unwrap();
    let recreated: VirtualIP = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "stale"},
        "spec": {"type": "Public", "ipFamily": "IPv4", "targetRef": {"name": "nic", "uid": "old-uid"}},
    }))
    .unwrap();
    vips.create(&PostParams::default(), &recreated).await.unwrap();
    eventually("stale uid released", || async {
        vips.get("stale").await.unwrap().spec.target_ref.is_none()
    })
    .await;
    assert!(
        vips.get("held").await.unwrap().spec.target_ref.is_some(),
        "a live claim is kept"
    );

    let net: Network = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network", "metadata": {"name": "net"},
        "spec": {"incomingPeerings": [{"name": "should-not-exist", "uid": "a3bd0c50"}]},
    }))
    .unwrap();
    nets.create(&PostParams::default(), &net).await.unwrap();
    eventually("peering claim released", || async {
        nets.get("net").await.unwrap().spec.incoming_peerings.is_empty()
    })
    .await;
}
