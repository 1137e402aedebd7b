//! Ephemeral Prefix reconcilers against the real in-process API server serving ipam Prefixes (the cases of
//! upstream ironcore `internal/controllers/networking/loadbalancer_ephemeralprefix_controller_test.go` and
//! `networkinterface_ephemeralprefix_controller_test.go`).

use crate::common;

use common::{consistently, eventually, server, server_with_prefixes, start};
use ironnet_api::networking::{LoadBalancer, NetworkInterface};
use ironnet_controllers::ephemeral::{EPHEMERAL_MANAGED_BY, EPHEMERAL_MANAGER};
use ironnet_controllers::reconcilers::ephemeral_prefix::{self, prefix_resource};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

fn template() -> Value {
    json!({"ephemeral": {"prefixTemplate": {"spec": {"ipFamily": "IPv4", "prefix": "10.0.0.1/32"}}}})
}

fn prefixes(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &prefix_resource())
}

/// A Prefix named `name`, controller-owned by `owner` (kind, name, uid), optionally carrying the annotation.
async fn stray_prefix(client: &kube::Client, name: &str, owner: (&str, &str, &str), annotated: bool) {
    let mut meta = json!({"name": name, "ownerReferences": [{"apiVersion": "networking.ironcore.dev/v1alpha1",
        "kind": owner.0, "name": owner.1, "uid": owner.2, "controller": true}]});
    if annotated {
        meta["annotations"] = json!({EPHEMERAL_MANAGED_BY: EPHEMERAL_MANAGER});
    }
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ipam.ironcore.dev/v1alpha1", "kind": "Prefix", "metadata": meta,
        "spec": {"ipFamily": "IPv4", "prefix": "10.0.0.9/32"},
    }))
    .unwrap();
    prefixes(client)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

async fn assert_controlled_prefix(client: &kube::Client, name: &str, kind: &str, owner_uid: &str) {
    let api = prefixes(client);
    eventually("ephemeral prefix", || async {
        api.get_opt(name).await.unwrap().is_some()
    })
    .await;
    let p = api.get(name).await.unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["spec"], json!({"ipFamily": "IPv4", "prefix": "10.0.0.1/32"}));
    let c = p
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .unwrap();
    assert_eq!((c.kind.as_str(), c.uid.as_str()), (kind, owner_uid));
    assert_eq!(
        p.annotations().get(EPHEMERAL_MANAGED_BY).map(String::as_str),
        Some(EPHEMERAL_MANAGER)
    );
}

async fn check_undesired(client: &kube::Client, kind: &str, owner: &str, uid: &str) {
    let api = prefixes(client);
    for round in 0..10 {
        let managed = format!("{owner}-managed-{round}");
        let foreign = format!("{owner}-unannotated-{round}");
        stray_prefix(client, &managed, (kind, owner, uid), true).await;
        stray_prefix(client, &foreign, (kind, owner, uid), false).await;
        eventually("undesired managed prefix deleted", || async {
            api.get_opt(&managed)
                .await
                .unwrap()
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await;
        assert!(
            api.get_opt(&foreign)
                .await
                .unwrap()
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
        );
    }
    consistently("unannotated prefixes kept", || async {
        api.get_opt(&format!("{owner}-unannotated-9"))
            .await
            .unwrap()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
    })
    .await;
}

#[tokio::test]
async fn load_balancer_ephemeral_prefixes_are_created_and_undesired_managed_ones_deleted() {
    let (client, _server, _dir) = server_with_prefixes().await;
    let _stop = start(&client, |c, s| {
        ephemeral_prefix::run(ironnet_runtime::informer::Informers::new(c), 2, s)
    });
    let lb: LoadBalancer = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancer", "metadata": {"name": "lb"},
        "spec": {"type": "Internal", "networkRef": {"name": "net"}, "ips": [template()]},
    }))
    .unwrap();
    let lb = Api::<LoadBalancer>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &lb)
        .await
        .unwrap();
    let uid = lb.uid().unwrap();
    assert_controlled_prefix(&client, "lb-0", "LoadBalancer", &uid).await;
    check_undesired(&client, "LoadBalancer", "lb", &uid).await;
}

#[tokio::test]
async fn network_interface_ephemeral_prefixes_are_created_and_undesired_managed_ones_deleted() {
    let (client, _server, _dir) = server_with_prefixes().await;
    let _stop = start(&client, |c, s| {
        ephemeral_prefix::run(ironnet_runtime::informer::Informers::new(c), 2, s)
    });
    let nic: NetworkInterface = serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface", "metadata": {"name": "nic"},
        "spec": {"networkRef": {"name": "net"}, "ips": [template()],
                 "prefixes": [{"ephemeral": {"prefixTemplate": {"spec": {"ipFamily": "IPv4", "prefix": "10.1.0.0/24"}}}}]},
    }))
    .unwrap();
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let nic = nics.create(&PostParams::default(), &nic).await.unwrap();
    let uid = nic.uid().unwrap();
    assert_controlled_prefix(&client, "nic-0", "NetworkInterface", &uid).await;
    check_undesired(&client, "NetworkInterface", "nic", &uid).await;

    // The `spec.prefixes` Prefix is managed as well (upstream leaves it unannotated) and goes when dropped.
    let api = prefixes(&client);
    eventually("prefix for spec.prefixes[0]", || async {
        api.get_opt("nic-pf-0").await.unwrap().is_some()
    })
    .await;
    let patch = json!({"spec": {"prefixes": null}});
    nics.patch(
        "nic",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    eventually("nic-pf-0 deleted", || async {
        api.get_opt("nic-pf-0")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(api.get_opt("nic-0").await.unwrap().is_some());
}

#[tokio::test]
async fn prefix_controllers_stay_idle_while_prefixes_are_not_served() {
    let (client, _server, _dir) = server().await;
    assert!(!ephemeral_prefix::prefixes_served(&client).await);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ephemeral_prefix::run(
        ironnet_runtime::informer::Informers::new(client.clone()),
        1,
        async move {
            let _ = rx.await;
        },
    ));
    tx.send(()).unwrap();
    // It returns on shutdown even though it never started its controllers.
    task.await.unwrap();
}
