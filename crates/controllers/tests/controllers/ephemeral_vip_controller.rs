//! Ephemeral VirtualIP reconciler against the real in-process API server (cases of upstream ironcore
//! `internal/controllers/networking/networkinterface_ephemeralvirtualip_controller_test.go`).

use crate::common;

use common::{eventually, server};
use ironnet_api::networking::{NetworkInterface, VirtualIP};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn nic(name: &str, reclaim: Option<&str>) -> NetworkInterface {
    let mut spec = json!({"type": "Public", "ipFamily": "IPv4"});
    if let Some(r) = reclaim {
        spec["reclaimPolicy"] = json!(r);
    }
    serde_json::from_value(json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface", "metadata": {"name": name},
        "spec": {"networkRef": {"name": "net"}, "ips": [{"value": "10.0.0.1"}],
                 "virtualIP": {"ephemeral": {"virtualIPTemplate": {"spec": spec}}}},
    }))
    .unwrap()
}

#[tokio::test]
async fn ephemeral_vips_follow_their_interface() {
    let (client, _server, _dir) = server().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ironnet_controllers::reconcilers::ephemeral_vip::run(
        ironnet_runtime::informer::Informers::new(client.clone()),
        2,
        async move {
            let _ = rx.await;
        },
    ));
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let vips: Api<VirtualIP> = Api::namespaced(client.clone(), "default");

    let a = nics
        .create(&PostParams::default(), &nic("a", None))
        .await
        .unwrap();
    eventually("vip a", || async { vips.get_opt("a").await.unwrap().is_some() }).await;
    let vip = serde_json::to_value(vips.get("a").await.unwrap()).unwrap();
    assert_eq!(
        vip["spec"],
        json!({"type": "Public", "ipFamily": "IPv4", "targetRef": {"name": "a", "uid": a.metadata.uid}})
    );
    let refs = vip["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(
        (refs[0]["kind"].as_str(), refs[0]["name"].as_str()),
        (Some("NetworkInterface"), Some("a"))
    );

    // Retain: no owner; switching to Delete adds the NIC as controller.
    nics.create(&PostParams::default(), &nic("b", Some("Retain")))
        .await
        .unwrap();
    eventually("vip b", || async { vips.get_opt("b").await.unwrap().is_some() }).await;
    assert!(
        vips.get("b")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    // Both spellings of the template key: upstream's and the API crate's current one.
    let delete = json!({"spec": {"reclaimPolicy": "Delete"}});
    let patch = json!({"spec": {"virtualIP": {"ephemeral": {"virtualIPTemplate": delete}}}});
    nics.patch("b", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("vip b adopted", || async {
        vips.get("b")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default()
            .len()
            == 1
    })
    .await;

    // Dropping the ephemeral source deletes the managed VIP.
    nics.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"virtualIP": null}})),
    )
    .await
    .unwrap();
    eventually("vip a deleted", || async {
        vips.get_opt("a")
            .await
            .unwrap()
            .is_none_or(|v| v.metadata.deletion_timestamp.is_some())
    })
    .await;
    tx.send(()).unwrap();
}

#[tokio::test]
async fn retained_vip_survives_its_interface_and_other_interfaces_leave_it_alone() {
    let (client, _server, _dir) = server().await;
    let _stop = crate::common::start(&client, |c, s| {
        ironnet_controllers::reconcilers::ephemeral_vip::run(
            ironnet_runtime::informer::Informers::new(c),
            2,
            s,
        )
    });
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let vips: Api<VirtualIP> = Api::namespaced(client.clone(), "default");
    nics.create(&PostParams::default(), &nic("a", Some("Retain")))
        .await
        .unwrap();
    eventually("retained vip", || async {
        vips.get_opt("a").await.unwrap().is_some()
    })
    .await;

    // M5: an interface without a virtual IP never touches A's retained VIP.
    let mut plain = nic("b", None);
    plain.spec.virtual_ip = None;
    nics.create(&PostParams::default(), &plain).await.unwrap();
    crate::common::consistently("retained vip not deleting", || async {
        vips.get("a").await.unwrap().metadata.deletion_timestamp.is_none()
    })
    .await;
    assert!(vips.get_opt("b").await.unwrap().is_none());

    // M3: deleting the interface is immediate (no finalizer) and the VIP stays.
    nics.delete("a", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    assert!(nics.get_opt("a").await.unwrap().is_none());
    crate::common::consistently("retained vip survives", || async {
        vips.get_opt("a")
            .await
            .unwrap()
            .is_some_and(|v| v.metadata.deletion_timestamp.is_none())
    })
    .await;
}

#[tokio::test]
async fn controlled_vip_goes_with_its_interface() {
    let (client, _server, _dir) = server().await;
    let _vip = crate::common::start(&client, |c, s| {
        ironnet_controllers::reconcilers::ephemeral_vip::run(
            ironnet_runtime::informer::Informers::new(c),
            2,
            s,
        )
    });
    let _release = crate::common::start(&client, |c, s| {
        ironnet_controllers::reconcilers::release::run(ironnet_runtime::informer::Informers::new(c), 2, s)
    });
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), "default");
    let vips: Api<VirtualIP> = Api::namespaced(client.clone(), "default");
    nics.create(&PostParams::default(), &nic("a", None))
        .await
        .unwrap();
    eventually("vip", || async { vips.get_opt("a").await.unwrap().is_some() }).await;
    // While bound, the API refuses to delete the VIP (so the garbage collector cannot either).
    assert!(
        vips.delete("a", &kube::api::DeleteParams::default())
            .await
            .is_err()
    );
    nics.delete("a", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    // The release controller unbinds it once the interface is gone and, as it is ephemeral and was controlled
    // by that interface, deletes it.
    eventually("vip gone", || async {
        vips.get_opt("a").await.unwrap().is_none()
    })
    .await;
}
