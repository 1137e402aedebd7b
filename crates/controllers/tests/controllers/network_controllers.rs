//! Network protection and peering reconcilers against the real in-process API server (cases of upstream
//! ironcore `internal/controllers/networking/network_{peering,protection}_controller_test.go`).

use crate::common;

use common::{eventually, server};
use ironnet_api::networking::{Network, NetworkInterface};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn network(name: &str, peers: &[(&str, &str)]) -> Network {
    let peerings: Vec<_> = peers
        .iter()
        .enumerate()
        .map(|(i, (ns, n))| json!({"name": format!("peering-{i}"), "networkRef": {"namespace": ns, "name": n}}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
        "metadata": {"name": name}, "spec": {"peerings": peerings},
    }))
    .unwrap()
}

async fn make_available(api: &Api<Network>, name: &str) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Available"}})),
    )
    .await
    .unwrap();
}

fn start(client: kube::Client) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let informers = ironnet_runtime::informer::Informers::new(client);
    let stop = futures::FutureExt::shared(async move {
        let _ = rx.await;
    });
    tokio::spawn(ironnet_controllers::reconcilers::protection::run(
        informers.clone(),
        4,
        stop.clone(),
    ));
    tokio::spawn(ironnet_controllers::reconcilers::peering::run(informers, 4, stop));
    tx
}

#[tokio::test]
async fn protection_keeps_used_networks_until_released() {
    let (client, _server, _dir) = server().await;
    let _stop = start(client.clone());
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    nets.create(&PostParams::default(), &network("net", &[]))
        .await
        .unwrap();
    let nic: NetworkInterface = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
        "metadata": {"name": "nic"}, "spec": {"networkRef": {"name": "net"}, "ips": [{"value": "10.0.0.1"}]},
    }))
    .unwrap();
    nics.create(&PostParams::default(), &nic).await.unwrap();
    eventually("finalizer added", || async {
        nets.get("net")
            .await
            .unwrap()
            .metadata
            .finalizers
            .unwrap_or_default()
            == ["networking.ironcore.dev/network"]
    })
    .await;

    nets.delete("net", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let n = nets.get("net").await.unwrap();
    assert!(n.metadata.deletion_timestamp.is_some());
    assert_eq!(
        n.metadata.finalizers.unwrap_or_default(),
        ["networking.ironcore.dev/network"]
    );

    nics.delete("nic", &DeleteParams::default()).await.unwrap();
    eventually("network gone", || async {
        nets.get_opt("net").await.unwrap().is_none()
    })
    .await;

    // An unused network is deleted right away.
    nets.create(&PostParams::default(), &network("unused", &[]))
        .await
        .unwrap();
    eventually("finalizer added", || async {
        nets.get("unused")
            .await
            .unwrap()
            .metadata
            .finalizers
            .is_some_and(|f| !f.is_empty())
    })
    .await;
    nets.delete("unused", &DeleteParams::default()).await.unwrap();
    eventually("unused gone", || async {
        nets.get_opt("unused").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn mutual_peerings_become_incoming_peerings_and_are_cleared_on_removal() {
    let (client, _server, _dir) = server().await;
    let _stop = start(client.clone());
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    nets.create(
        &PostParams::default(),
        &network("n1", &[("default", "n2"), ("", "n3")]),
    )
    .await
    .unwrap();
    nets.create(&PostParams::default(), &network("n2", &[("", "n1")]))
        .await
        .unwrap();
    nets.create(&PostParams::default(), &network("n3", &[("", "n1")]))
        .await
        .unwrap();
    for n in ["n1", "n2", "n3"] {
        make_available(&nets, n).await;
    }
    let incoming = |name: &'static str| {
        let nets = nets.clone();
        async move {
            let n = nets.get(name).await.unwrap();
            n.spec
                .incoming_peerings
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        }
    };
    eventually("n1 claims", || async { incoming("n1").await == ["n2", "n3"] }).await;
    eventually("n2 claims", || async { incoming("n2").await == ["n1"] }).await;
    eventually("n3 claims", || async { incoming("n3").await == ["n1"] }).await;
    let n1 = nets.get("n1").await.unwrap();
    assert_eq!(
        n1.spec.incoming_peerings[0].uid,
        nets.get("n2").await.unwrap().metadata.uid.unwrap()
    );

    nets.patch(
        "n1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"peerings": null}})),
    )
    .await
    .unwrap();
    eventually("n1 cleared", || async { incoming("n1").await.is_empty() }).await;
    eventually("n2 cleared", || async { incoming("n2").await.is_empty() }).await;
    eventually("n3 cleared", || async { incoming("n3").await.is_empty() }).await;
    assert!(
        !nets.get("n2").await.unwrap().spec.peerings.is_empty(),
        "the peer's own peerings are untouched"
    );
}

#[tokio::test]
async fn run_with_leader_election_starts_controllers_once_elected() {
    let (client, _server, _dir) = server().await;
    let le =
        ironnet_runtime::leader::LeaderElectionConfig::new("default", "ironnet-controller-manager", "me")
            .unwrap();
    let config = ironnet_controllers::ControllerConfig {
        leader_election: Some(le),
        concurrency: 2,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(ironnet_controllers::run(config, client.clone(), async move {
        let _ = rx.await;
    }));
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    nets.create(&PostParams::default(), &network("net", &[]))
        .await
        .unwrap();
    eventually("finalizer added by the elected manager", || async {
        nets.get("net")
            .await
            .unwrap()
            .metadata
            .finalizers
            .is_some_and(|f| !f.is_empty())
    })
    .await;
    let lease: k8s_openapi::api::coordination::v1::Lease = Api::namespaced(client, "default")
        .get("ironnet-controller-manager")
        .await
        .unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("me"));
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap();
}
