//! NATGateway → apinet NATGateway + autoscaler, `status.ips` from the public pool, cleanup.

use serde_json::json;

use crate::common::{APINET_NS, apinet, env, ironcore, s};

#[tokio::test]
async fn nat_gateway_gets_public_ips_and_cleans_up() {
    let env = env().await;
    let net = env.available_network("default", "net", json!({})).await;
    let nat = env
        .create(
            &ironcore("NATGateway"),
            Some("default"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NATGateway",
                   "metadata": {"name": "nat"},
                   "spec": {"type": "Public", "ipFamily": "IPv4", "networkRef": {"name": "net"}}}),
        )
        .await;
    let uid = s(&nat, "/metadata/uid").to_owned();
    let ips = env
        .wait_for("nat status.ips", || async {
            let n = env.get(&ironcore("NATGateway"), Some("default"), "nat").await?;
            n.pointer("/status/ips")
                .and_then(|i| i.as_array())
                .filter(|a| !a.is_empty())
                .cloned()
        })
        .await;
    let gw = env
        .get(&apinet("NATGateway"), Some(APINET_NS), &uid)
        .await
        .unwrap();
    assert_eq!(s(&gw, "/spec/networkRef/name"), s(&net, "/metadata/uid"));
    assert_eq!(gw.pointer("/spec/portsPerNetworkInterface"), Some(&json!(2048)));
    let gw_ips: Vec<&str> = gw["spec"]["ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["ip"].as_str())
        .collect();
    let status_ips: Vec<&str> = ips.iter().filter_map(|i| i.as_str()).collect();
    assert_eq!(status_ips, gw_ips);
    let scaler = env
        .get(&apinet("NATGatewayAutoscaler"), Some(APINET_NS), &uid)
        .await
        .unwrap();
    assert_eq!(
        s(&scaler, "/metadata/ownerReferences/0/uid"),
        s(&gw, "/metadata/uid")
    );
    assert_eq!(scaler.pointer("/spec/minPublicIPs"), Some(&json!(1)));

    env.delete(&ironcore("NATGateway"), Some("default"), "nat").await;
    env.wait_gone(&ironcore("NATGateway"), Some("default"), "nat")
        .await;
    env.wait_gone(&apinet("NATGateway"), Some(APINET_NS), &uid).await;
    env.wait_gone(&apinet("NATGatewayAutoscaler"), Some(APINET_NS), &uid)
        .await;
    for ip in status_ips {
        env.wait_gone(&apinet("IPAddress"), None, ip).await;
    }
}

#[tokio::test]
async fn nat_gateway_waits_for_its_network() {
    let env = env().await;
    let nat = env
        .create(
            &ironcore("NATGateway"),
            Some("default"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NATGateway",
                   "metadata": {"name": "nat"},
                   "spec": {"type": "Public", "ipFamily": "IPv4", "networkRef": {"name": "later"}}}),
        )
        .await;
    let uid = s(&nat, "/metadata/uid").to_owned();
    // The finalizer shows apinetlet has seen the gateway; without the network it creates nothing.
    env.wait_for("nat finalizer", || async {
        let n = env.get(&ironcore("NATGateway"), Some("default"), "nat").await?;
        n.pointer("/metadata/finalizers")
            .filter(|f| f.as_array().is_some_and(|a| !a.is_empty()))
            .map(|_| ())
    })
    .await;
    assert!(
        env.get(&apinet("NATGateway"), Some(APINET_NS), &uid)
            .await
            .is_none()
    );
    env.available_network("default", "later", json!({})).await;
    env.wait_for("apinet gateway after the network", || async {
        env.get(&apinet("NATGateway"), Some(APINET_NS), &uid).await
    })
    .await;
}
