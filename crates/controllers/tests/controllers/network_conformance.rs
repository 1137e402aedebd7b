//! The remaining Network peering and protection conformance cases against the real in-process API server
//! (upstream ironcore `internal/controllers/networking/network_peering_controller_test.go` and
//! `network_protection_controller_test.go`).

use crate::common;

use common::{consistently, eventually, server};
use ironnet_api::networking::{Network, NetworkInterface};
use k8s_openapi::api::core::v1::Namespace;
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

async fn create_available(api: &Api<Network>, name: &str, peers: &[(&str, &str)]) {
    api.create(&PostParams::default(), &network(name, peers))
        .await
        .unwrap();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Available"}})),
    )
    .await
    .unwrap();
}

fn start(client: &kube::Client) -> tokio::sync::oneshot::Sender<()> {
    common::start(client, |c, stop| async move {
        let informers = ironnet_runtime::informer::Informers::new(c);
        let stop = futures::FutureExt::shared(stop);
        futures::join!(
            ironnet_controllers::reconcilers::protection::run(informers.clone(), 4, stop.clone()),
            ironnet_controllers::reconcilers::peering::run(informers, 4, stop),
        );
    })
}

async fn incoming(api: &Api<Network>, name: &str) -> Vec<(String, String)> {
    let n = api.get(name).await.unwrap();
    let mut v: Vec<(String, String)> = n
        .spec
        .incoming_peerings
        .iter()
        .map(|c| (c.namespace.clone(), c.name.clone()))
        .collect();
    v.sort();
    v
}

fn claim(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

#[tokio::test]
async fn cross_namespace_mutual_peering_is_listed_on_both_sides() {
    let (client, _server, _dir) = server().await;
    let ns: Namespace =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}))
            .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let _stop = start(&client);
    let a: Api<Network> = Api::namespaced(client.clone(), "default");
    let b: Api<Network> = Api::namespaced(client.clone(), "ns1");
    create_available(&a, "n1", &[("ns1", "n2")]).await;
    create_available(&b, "n2", &[("default", "n1")]).await;
    eventually("n1 lists ns1/n2", || async {
        incoming(&a, "n1").await == [claim("ns1", "n2")]
    })
    .await;
    eventually("n2 lists default/n1", || async {
        incoming(&b, "n2").await == [claim("default", "n1")]
    })
    .await;
}

#[tokio::test]
async fn one_sided_or_mismatched_peerings_yield_no_incoming_peerings() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client);
    let api: Api<Network> = Api::namespaced(client.clone(), "default");
    // N3: n1 → network-2, but network-2 peers network-other.
    create_available(&api, "n1", &[("", "network-2")]).await;
    create_available(&api, "network-2", &[("", "network-other")]).await;
    // N5: n3 peers a missing network and n4; n4 peers n3 back.
    create_available(&api, "n3", &[("", "does-not-exist"), ("", "n4")]).await;
    create_available(&api, "n4", &[("", "n3")]).await;
    eventually("n3 lists only n4", || async {
        incoming(&api, "n3").await == [claim("default", "n4")]
    })
    .await;
    eventually("n4 lists n3", || async {
        incoming(&api, "n4").await == [claim("default", "n3")]
    })
    .await;
    consistently("mismatched pair stays empty", || async {
        incoming(&api, "n1").await.is_empty() && incoming(&api, "network-2").await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn full_mesh_lists_the_other_two_on_each_network() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client);
    let api: Api<Network> = Api::namespaced(client.clone(), "default");
    create_available(&api, "a", &[("", "b"), ("", "c")]).await;
    create_available(&api, "b", &[("", "a"), ("", "c")]).await;
    create_available(&api, "c", &[("", "a"), ("", "b")]).await;
    for (n, others) in [("a", ["b", "c"]), ("b", ["a", "c"]), ("c", ["a", "b"])] {
        let want: Vec<_> = others.iter().map(|o| claim("default", o)).collect();
        eventually("mesh", || async { incoming(&api, n).await == want }).await;
    }
    // N1's end: deleting every network of the mesh succeeds.
    for n in ["a", "b", "c"] {
        api.delete(n, &DeleteParams::default()).await.unwrap();
    }
    for n in ["a", "b", "c"] {
        eventually("deleted", || async { api.get_opt(n).await.unwrap().is_none() }).await;
    }
}

fn nic(name: &str) -> NetworkInterface {
    serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
        "metadata": {"name": name}, "spec": {"networkRef": {"name": "net"}, "ips": [{"value": "10.0.0.1"}]},
    }))
    .unwrap()
}

async fn terminating_with_finalizer(api: &Api<Network>, name: &str) -> bool {
    api.get_opt(name).await.unwrap().is_some_and(|n| {
        n.metadata.deletion_timestamp.is_some()
            && n.metadata.finalizers.unwrap_or_default() == ["networking.ironcore.dev/network"]
    })
}

#[tokio::test]
async fn network_stays_protected_while_any_interface_remains() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client);
    let nets: Api<Network> = Api::namespaced(client.clone(), "default");
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    nets.create(&PostParams::default(), &network("net", &[]))
        .await
        .unwrap();
    for n in ["nic-1", "nic-2"] {
        nics.create(&PostParams::default(), &nic(n)).await.unwrap();
    }
    eventually("finalizer", || async {
        nets.get("net")
            .await
            .unwrap()
            .metadata
            .finalizers
            .is_some_and(|f| !f.is_empty())
    })
    .await;
    nics.delete("nic-1", &DeleteParams::default()).await.unwrap();
    nets.delete("net", &DeleteParams::default()).await.unwrap();
    consistently("still protected by nic-2", || {
        terminating_with_finalizer(&nets, "net")
    })
    .await;
    nics.delete("nic-2", &DeleteParams::default()).await.unwrap();
    eventually("gone", || async { nets.get_opt("net").await.unwrap().is_none() }).await;
}

#[tokio::test]
async fn mutually_peered_networks_protect_each_other_until_both_are_deleted() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client);
    let api: Api<Network> = Api::namespaced(client.clone(), "default");
    create_available(&api, "n1", &[("", "n2")]).await;
    create_available(&api, "n2", &[("", "n1")]).await;
    eventually("claims", || async {
        incoming(&api, "n1").await == [claim("default", "n2")]
            && incoming(&api, "n2").await == [claim("default", "n1")]
    })
    .await;
    api.delete("n1", &DeleteParams::default()).await.unwrap();
    consistently("n1 held by n2's claim", || terminating_with_finalizer(&api, "n1")).await;
    api.delete("n2", &DeleteParams::default()).await.unwrap();
    for n in ["n1", "n2"] {
        eventually("both gone", || async { api.get_opt(n).await.unwrap().is_none() }).await;
    }
}
