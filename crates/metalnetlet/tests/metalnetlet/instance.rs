//! Instance: LoadBalancer instances → one metalnet LoadBalancer per IP on the instance's node.

use ironnet_api::{apinet, metalnet};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::common::{Env, apinet_node_name, env, poll, to_json};

/// The metalnet LoadBalancers of instance `uid`, sorted by IP.
async fn lbs_of(env: &Env, uid: &str) -> Vec<metalnet::LoadBalancer> {
    let mut lbs = env
        .metalnet::<metalnet::LoadBalancer>()
        .list(&ListParams::default().labels(&format!("metalnetlet.ironcore.dev/instance-uid={uid}")))
        .await
        .unwrap()
        .items;
    lbs.sort_by_key(|l| l.spec.ip.clone());
    lbs
}

async fn instance(env: &Env) -> (apinet::Network, apinet::Instance) {
    env.metalnet_node("node-1").await;
    let network = env.network("my-network", json!([])).await;
    let inst: apinet::Instance = env
        .create(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Instance",
            "metadata": {"name": "my-lb"},
            "spec": {
                "type": "LoadBalancer", "loadBalancerType": "Public",
                "networkRef": {"name": "my-network"},
                "ips": ["10.0.0.1", "10.0.0.2"],
                "loadBalancerPorts": [{"protocol": "TCP", "port": 1000}],
                "nodeRef": {"name": apinet_node_name("node-1")},
            },
        }))
        .await;
    (network, inst)
}

/// Upstream: one metalnet LoadBalancer per IP with the instance's ports; a new port reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_ips_become_metalnet_load_balancers_that_follow_the_ports() {
    let env = env().await;
    let (network, inst) = instance(&env).await;
    let uid = inst.uid().unwrap();
    let lbs = poll("two metalnet load balancers", || async {
        let lbs = lbs_of(&env, &uid).await;
        (lbs.len() == 2).then_some(lbs)
    })
    .await;
    for (lb, ip) in lbs.iter().zip(["10.0.0.1", "10.0.0.2"]) {
        assert_eq!(
            to_json(&lb.spec),
            json!({
                "networkRef": {"name": network.uid().unwrap()}, "type": "Public", "ipFamily": "IPv4",
                "ip": ip, "ports": [{"protocol": "TCP", "port": 1000}], "nodeName": "node-1",
            })
        );
        assert!(lb.name_any().starts_with(&format!("{uid}-")));
    }
    env.apinet::<apinet::Instance>()
        .patch(
            "my-lb",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"loadBalancerPorts": [{"protocol": "TCP", "port": 1000}, {"protocol": "TCP", "port": 1001}]}})),
        )
        .await
        .unwrap();
    poll("both load balancers with both ports", || async {
        let lbs = lbs_of(&env, &uid).await;
        let ports = json!([{"protocol": "TCP", "port": 1000}, {"protocol": "TCP", "port": 1001}]);
        (lbs.len() == 2 && lbs.iter().all(|l| to_json(&l.spec.ports) == ports)).then_some(())
    })
    .await;
}

/// Upstream: a deleted metalnet LoadBalancer is recreated (a new object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_metalnet_load_balancer_is_recreated() {
    let env = env().await;
    let (_, inst) = instance(&env).await;
    let uid = inst.uid().unwrap();
    let lbs = poll("two metalnet load balancers", || async {
        let lbs = lbs_of(&env, &uid).await;
        (lbs.len() == 2).then_some(lbs)
    })
    .await;
    let victim = &lbs[0];
    env.metalnet::<metalnet::LoadBalancer>()
        .delete(&victim.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    poll("a new metalnet load balancer for the IP", || async {
        lbs_of(&env, &uid)
            .await
            .into_iter()
            .find(|l| l.spec.ip == victim.spec.ip && l.uid() != victim.uid())
    })
    .await;
}

/// Upstream: the instance gets exactly the partition finalizer; deleting it deletes its metalnet
/// LoadBalancers, then the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_instance_deletes_its_metalnet_load_balancers() {
    let env = env().await;
    let (_, inst) = instance(&env).await;
    let uid = inst.uid().unwrap();
    let api = env.apinet::<apinet::Instance>();
    let with_finalizer = poll("finalizer", || async {
        api.get("my-lb").await.ok().filter(|i| !i.finalizers().is_empty())
    })
    .await;
    assert_eq!(
        with_finalizer.finalizers(),
        ["partition.metalnetlet.apinet.ironcore.dev/test-metalnetlet"]
    );
    poll("metalnet load balancers", || async {
        (lbs_of(&env, &uid).await.len() == 2).then_some(())
    })
    .await;
    api.delete("my-lb", &DeleteParams::default()).await.unwrap();
    env.gone(&api, "my-lb").await;
    assert!(lbs_of(&env, &uid).await.is_empty());
}

/// SCTP ports, which metalnet LoadBalancers cannot forward, are left out (upstream passes them on and metalnet
/// rejects the whole LoadBalancer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sctp_ports_are_left_out() {
    let env = env().await;
    env.metalnet_node("node-1").await;
    env.network("my-network", json!([])).await;
    let inst: apinet::Instance = env
        .create(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Instance",
            "metadata": {"name": "my-lb"},
            "spec": {
                "type": "LoadBalancer", "loadBalancerType": "Internal",
                "networkRef": {"name": "my-network"},
                "ips": ["10.0.0.1"],
                "loadBalancerPorts": [{"protocol": "SCTP", "port": 9}, {"port": 80}],
                "nodeRef": {"name": apinet_node_name("node-1")},
            },
        }))
        .await;
    let lbs = poll("metalnet load balancer", || async {
        let lbs = lbs_of(&env, &inst.uid().unwrap()).await;
        (!lbs.is_empty()).then_some(lbs)
    })
    .await;
    assert_eq!(lbs.len(), 1);
    assert_eq!(
        to_json(&lbs[0].spec.ports),
        json!([{"protocol": "TCP", "port": 80}])
    );
    assert_eq!(to_json(&lbs[0].spec.type_), json!("Internal"));
}
