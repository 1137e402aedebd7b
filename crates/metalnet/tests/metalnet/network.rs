//! Network: create, peering update and status, delete.

use ironnet_api::metalnet::ObjectState;
use ironnet_vni::{Vni, vni};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn network_create_peering_status_and_delete() {
    let env = Env::start().await;
    env.announce_router();
    env.network("net", 10, &[20]).await;
    // An unused Network is left alone (upstream would put this node's finalizer on every Network).
    env.interface("nic", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"]}))
        .await;
    env.ready_interface("nic", |_| true).await;

    let finalizer = format!("networking.metalnet.ironcore.dev/network-{NODE}");
    let api = env.networks();
    poll("network finalizer and peering status", || async {
        let n = api.get("net").await.unwrap();
        let peerings = n.status.map(|s| s.peerings).unwrap_or_default();
        (n.metadata.finalizers.unwrap_or_default().contains(&finalizer)
            && peerings.len() == 1
            && peerings[0].id == 20
            && peerings[0].state == Some(ObjectState::Ready))
        .then_some(())
    })
    .await;
    poll("subscribed to own VNI, peer and public VNI", || async {
        (env.args.public_vni == PUBLIC_VNI && env.mb_server.peers().len() == 2).then_some(())?;
        let subs: Vec<Vec<Vni>> = env
            .mb_server
            .peers()
            .iter()
            .filter_map(|(a, _)| env.mb_server.peer_subscriptions(a))
            .collect();
        subs.contains(&[10, 20, 100].map(|v| Vni::new(v).unwrap()).to_vec())
            .then_some(())
    })
    .await;
    poll("default route to the router in the VNI", || async {
        let routes = env.dp.list_routes(vni!(10)).await.ok()?;
        routes
            .iter()
            .any(|r| {
                r.prefix.to_string() == "0.0.0.0/0"
                    && r.nexthop == ip(ROUTER)
                    && r.nexthop_vni == Some(vni!(10))
            })
            .then_some(())
    })
    .await;

    // Peering update: status and subscriptions follow.
    env.networks()
        .patch(
            "net",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"peeredIDs": [20, 30]}})),
        )
        .await
        .unwrap();
    poll("peering 30 in status", || async {
        let n = api.get("net").await.unwrap();
        let ids: Vec<i32> = n.status?.peerings.iter().map(|p| p.id).collect();
        (ids == [20, 30]).then_some(())
    })
    .await;
    poll("subscribed to 30", || async {
        env.mb_server
            .peers()
            .iter()
            .filter_map(|(a, _)| env.mb_server.peer_subscriptions(a))
            .any(|s| s.contains(&vni!(30)))
            .then_some(())
    })
    .await;

    // The last user gone: finalizer dropped, subscriptions ended.
    env.delete(&env.interfaces(), "nic").await;
    poll("network released", || async {
        let n = api.get("net").await.unwrap();
        (!n.metadata.finalizers.unwrap_or_default().contains(&finalizer)).then_some(())
    })
    .await;
    poll("unsubscribed from 10, 20, 30", || async {
        env.mb_server
            .peers()
            .iter()
            .filter_map(|(a, _)| env.mb_server.peer_subscriptions(a))
            .any(|s| s == [vni!(100)])
            .then_some(())
    })
    .await;
    env.delete(&env.networks(), "net").await;
}
