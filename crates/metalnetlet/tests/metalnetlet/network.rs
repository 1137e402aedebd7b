//! Network: apinet Networks → metalnet Networks named by UID; peering states back per partition.

use ironnet_api::{apinet, metalnet};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::common::{PARTITION, config, consistently, env, env_with, poll, to_json};

fn vni(n: &apinet::Network) -> i64 {
    n.spec.id.parse().unwrap()
}

/// Upstream: two networks peering each other (network-1's peering restricted to 10.0.0.0/24) get exactly their
/// VNI, peered VNIs and peered prefixes; metalnet's peering state comes back under the partition; deleting the
/// apinet networks deletes the metalnet ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peered_networks_are_translated_and_their_peering_state_reported() {
    let env = env().await;
    // The peer's VNI is only known once it exists: create both, then add the peerings.
    let n1 = env.network("network-1", json!([])).await;
    let n2 = env.network("network-2", json!([])).await;
    let (v1, v2) = (vni(&n1), vni(&n2));
    let peer = |name: &str, id: i64, prefixes: serde_json::Value| json!({"spec": {"peerings": [{"name": name, "id": id.to_string(), "prefixes": prefixes}]}});
    let nets = env.apinet::<apinet::Network>();
    let pp = PatchParams::default();
    nets.patch(
        "network-1",
        &pp,
        &Patch::Merge(&peer(
            "peering-1",
            v2,
            json!([{"name": "p", "prefix": "10.0.0.0/24"}]),
        )),
    )
    .await
    .unwrap();
    nets.patch("network-2", &pp, &Patch::Merge(&peer("peering-2", v1, json!([]))))
        .await
        .unwrap();

    let uid1 = n1.uid().unwrap();
    let uid2 = n2.uid().unwrap();
    let spec_of = |uid: String, expected: serde_json::Value| {
        let env = &env;
        async move {
            poll(&format!("metalnet network {uid} spec {expected}"), || async {
                env.metalnet::<metalnet::Network>()
                    .get_opt(&uid)
                    .await
                    .unwrap()
                    .filter(|m| to_json(&m.spec) == expected)
            })
            .await
        }
    };
    let m1 = spec_of(
        uid1.clone(),
        json!({"id": v1, "peeredIDs": [v2], "peeredPrefixes": [{"id": v2, "prefixes": ["10.0.0.0/24"]}]}),
    )
    .await;
    spec_of(uid2.clone(), json!({"id": v2, "peeredIDs": [v1]})).await;
    assert_eq!(
        m1.labels()["metalnetlet.ironcore.dev/network-uid"],
        uid1,
        "origin labels"
    );
    assert_eq!(
        m1.annotations()["metalnetlet.ironcore.dev/network-name"],
        "network-1"
    );
    let n1 = nets.get("network-1").await.unwrap();
    assert_eq!(
        n1.finalizers(),
        ["partition.metalnetlet.apinet.ironcore.dev/test-metalnetlet"]
    );

    env.metalnet::<metalnet::Network>()
        .patch_status(
            &uid1,
            &pp,
            &Patch::Merge(&json!({"status": {"peerings": [{"id": v2, "state": "Ready"}]}})),
        )
        .await
        .unwrap();
    poll("peering state reported", || async {
        let n = nets.get("network-1").await.unwrap();
        (to_json(&n.status) == json!({"peerings": {PARTITION: [{"id": v2, "state": "Ready"}]}})).then_some(())
    })
    .await;

    for name in ["network-1", "network-2"] {
        nets.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for (name, uid) in [("network-1", &uid1), ("network-2", &uid2)] {
        env.gone(&nets, name).await;
        env.gone(&env.metalnet::<metalnet::Network>(), uid).await;
    }
}

/// Upstream: with peering disabled a peered network's metalnet Network carries only its VNI, and its apinet
/// status gets no peerings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peering_disabled_leaves_peerings_out() {
    let mut cfg = config();
    cfg.network_peering_disabled = true;
    let env = env_with(cfg, false).await;
    let n1 = env.network("network-1", json!([])).await;
    let n2 = env
        .network(
            "network-2",
            json!([{"name": "p", "id": n1.spec.id, "prefixes": [{"name": "x", "prefix": "10.0.0.0/24"}]}]),
        )
        .await;
    let uid2 = n2.uid().unwrap();
    let expected = json!({"id": vni(&n2)});
    let metalnet_spec = || async {
        env.metalnet::<metalnet::Network>()
            .get_opt(&uid2)
            .await
            .unwrap()
            .map(|m| to_json(&m.spec))
    };
    poll("metalnet network", || async {
        metalnet_spec().await.filter(|s| *s == expected)
    })
    .await;
    env.metalnet::<metalnet::Network>()
        .patch_status(
            &uid2,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"peerings": [{"id": vni(&n1), "state": "Ready"}]}})),
        )
        .await
        .unwrap();
    consistently("only the VNI, no peering status", 1000, || async {
        let status = env
            .apinet::<apinet::Network>()
            .get("network-2")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        metalnet_spec().await == Some(expected.clone()) && status.peerings.is_empty()
    })
    .await;
}
