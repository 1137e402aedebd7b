//! NetworkInterface: claiming the apinet interface named by the provider ID and the VirtualIP, public IP down,
//! status up, release on delete.

use serde_json::{Value, json};

use crate::common::{APINET_NS, Env, apinet, env, ironcore, s};

/// The node the apinet interfaces are placed on.
pub const NODE: &str = "node-1";

/// Registers the apinet Node (as `ironnet up`'s simulated node) and an apinet interface on it in the apinet
/// Network of `network_uid`; returns the apinet interface.
pub async fn apinet_nic(env: &Env, name: &str, network_uid: &str, ip: &str) -> Value {
    if env.get(&apinet("Node"), None, NODE).await.is_none() {
        env.create(
            &apinet("Node"),
            None,
            json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node", "metadata": {"name": NODE}, "spec": {}}),
        )
        .await;
    }
    env.namespace(APINET_NS).await;
    env.create(
        &apinet("NetworkInterface"),
        Some(APINET_NS),
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
               "metadata": {"name": name},
               "spec": {"networkRef": {"name": network_uid}, "nodeRef": {"name": NODE}, "ips": [ip]}}),
    )
    .await
}

/// The provider ID of an apinet interface.
pub fn provider_id(apinet_nic: &Value) -> String {
    format!(
        "ironcore-net://{APINET_NS}/{}/{NODE}/{}",
        s(apinet_nic, "/metadata/name"),
        s(apinet_nic, "/metadata/uid")
    )
}

/// Reports the apinet interface realised, as a node agent does (state Ready, public IPs from the spec).
pub async fn mark_ready(env: &Env, name: &str) {
    let nic = env
        .get(&apinet("NetworkInterface"), Some(APINET_NS), name)
        .await
        .unwrap();
    let public: Vec<Value> = nic
        .pointer("/spec/publicIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("ip").cloned())
        .collect();
    env.patch(
        &apinet("NetworkInterface"),
        Some(APINET_NS),
        name,
        json!({"status": {"state": "Ready", "publicIPs": public}}),
        true,
    )
    .await;
}

/// Creates an ironcore interface in network `net` bound to `apinet_nic`.
pub async fn ironcore_nic(env: &Env, name: &str, labels: Value, apinet_nic: &Value, extra: Value) -> Value {
    let mut spec = json!({"networkRef": {"name": "net"}, "providerID": provider_id(apinet_nic), "ipFamilies": ["IPv4"], "ips": [{"value": s(apinet_nic, "/spec/ips/0")}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    env.create(
        &ironcore("NetworkInterface"),
        Some("default"),
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
               "metadata": {"name": name, "labels": labels}, "spec": spec}),
    )
    .await
}

#[tokio::test]
async fn network_interface_gets_its_virtual_ip_and_becomes_available() {
    let env = env().await;
    let net = env.available_network("default", "net", json!({})).await;
    env.create(
        &ironcore("VirtualIP"),
        Some("default"),
        json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP",
               "metadata": {"name": "vip"}, "spec": {"type": "Public", "ipFamily": "IPv4"}}),
    )
    .await;
    let vip_ip = env
        .wait_for("vip address", || async {
            let v = env.get(&ironcore("VirtualIP"), Some("default"), "vip").await?;
            v.pointer("/status/ip").and_then(Value::as_str).map(str::to_owned)
        })
        .await;
    let anic = apinet_nic(&env, "apinet-nic", s(&net, "/metadata/uid"), "10.0.0.1").await;
    let nic = ironcore_nic(
        &env,
        "nic",
        json!({}),
        &anic,
        json!({"virtualIP": {"virtualIPRef": {"name": "vip"}}}),
    )
    .await;
    let nic_uid = s(&nic, "/metadata/uid").to_owned();

    // Claimed: origin metadata and the VIP's address as public IP.
    let claimed = env
        .wait_for("apinet interface claimed with the public IP", || async {
            let n = env
                .get(&apinet("NetworkInterface"), Some(APINET_NS), "apinet-nic")
                .await?;
            (n.pointer("/spec/publicIPs/0/ip") == Some(&json!(vip_ip))).then_some(n)
        })
        .await;
    assert_eq!(
        claimed.pointer("/metadata/labels/apinetlet.ironcore.dev~1networkinterface-uid"),
        Some(&json!(nic_uid))
    );
    assert_eq!(
        claimed.pointer("/metadata/annotations/apinetlet.ironcore.dev~1networkinterface-name"),
        Some(&json!("nic"))
    );
    let vip = env
        .get(&ironcore("VirtualIP"), Some("default"), "vip")
        .await
        .unwrap();
    assert_eq!(s(&vip, "/spec/targetRef/uid"), nic_uid);
    // The API server hands the VIP's apinet IP to the interface.
    let vip_uid = s(&vip, "/metadata/uid").to_owned();
    env.wait_for("apinet IP claimed by the interface", || async {
        let ip = env.get(&apinet("IP"), Some(APINET_NS), &vip_uid).await?;
        (s(&ip, "/spec/claimRef/uid") == s(&anic, "/metadata/uid")).then_some(())
    })
    .await;

    // Pending until a node realises the interface, then Available with addresses.
    let pending = env
        .get(&ironcore("NetworkInterface"), Some("default"), "nic")
        .await
        .unwrap();
    assert_ne!(s(&pending, "/status/state"), "Available");
    mark_ready(&env, "apinet-nic").await;
    let status = env
        .wait_for("interface available", || async {
            let n = env
                .get(&ironcore("NetworkInterface"), Some("default"), "nic")
                .await?;
            (s(&n, "/status/state") == "Available").then(|| n["status"].clone())
        })
        .await;
    assert_eq!(status["ips"], json!(["10.0.0.1"]));
    assert_eq!(status["virtualIP"], json!(vip_ip));

    // Deleting releases the apinet interface (origin and public IPs gone) and the VIP.
    env.delete(&ironcore("NetworkInterface"), Some("default"), "nic")
        .await;
    env.wait_gone(&ironcore("NetworkInterface"), Some("default"), "nic")
        .await;
    let released = env
        .get(&apinet("NetworkInterface"), Some(APINET_NS), "apinet-nic")
        .await
        .unwrap();
    assert!(
        released
            .pointer("/metadata/labels/apinetlet.ironcore.dev~1networkinterface-uid")
            .is_none()
    );
    assert!(
        released
            .pointer("/spec/publicIPs")
            .is_none_or(|p| p.as_array().is_none_or(Vec::is_empty))
    );
    let vip = env
        .get(&ironcore("VirtualIP"), Some("default"), "vip")
        .await
        .unwrap();
    assert!(vip.pointer("/spec/targetRef").is_none_or(Value::is_null));
    env.wait_for("apinet IP released", || async {
        let ip = env.get(&apinet("IP"), Some(APINET_NS), &vip_uid).await?;
        ip.pointer("/spec/claimRef")
            .is_none_or(Value::is_null)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn network_interface_without_apinet_interface_is_pending() {
    let env = env().await;
    env.available_network("default", "net", json!({})).await;
    let fake = json!({"metadata": {"name": "missing", "uid": "0000"}, "spec": {"ips": ["10.0.0.9"]}});
    ironcore_nic(&env, "nic", json!({}), &fake, json!({})).await;
    env.wait_for("interface pending", || async {
        let n = env
            .get(&ironcore("NetworkInterface"), Some("default"), "nic")
            .await?;
        (s(&n, "/status/state") == "Pending").then_some(())
    })
    .await;
    env.delete(&ironcore("NetworkInterface"), Some("default"), "nic")
        .await;
    env.wait_gone(&ironcore("NetworkInterface"), Some("default"), "nic")
        .await;
}
