//! VirtualIP → apinet IP from the public pool, `status.ip`, cleanup frees the address.

use ipnet::IpNet;
use serde_json::json;

use crate::common::{APINET_NS, PUBLIC_PREFIX, apinet, env, ironcore, s};

#[tokio::test]
async fn virtual_ip_gets_a_public_address_and_frees_it() {
    let env = env().await;
    let vip = env
        .create(
            &ironcore("VirtualIP"),
            Some("default"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP",
                   "metadata": {"name": "vip"}, "spec": {"type": "Public", "ipFamily": "IPv4"}}),
        )
        .await;
    let uid = s(&vip, "/metadata/uid").to_owned();
    let ip = env
        .wait_for("vip status.ip", || async {
            let v = env.get(&ironcore("VirtualIP"), Some("default"), "vip").await?;
            v.pointer("/status/ip")
                .and_then(|i| i.as_str())
                .map(str::to_owned)
        })
        .await;
    let pool: IpNet = PUBLIC_PREFIX.parse().unwrap();
    assert!(
        pool.contains(&ip.parse::<std::net::IpAddr>().unwrap()),
        "{ip} from {pool}"
    );
    let apinet_ip = env.get(&apinet("IP"), Some(APINET_NS), &uid).await.unwrap();
    assert_eq!(s(&apinet_ip, "/spec/ip"), ip);
    assert_eq!(s(&apinet_ip, "/spec/type"), "Public");
    assert_eq!(s(&apinet_ip, "/spec/ipFamily"), "IPv4");
    assert_eq!(
        apinet_ip.pointer("/metadata/labels/apinetlet.ironcore.dev~1virtualip-uid"),
        Some(&json!(uid))
    );
    env.wait_for("IPAddress claimed", || async {
        env.get(&apinet("IPAddress"), None, &ip).await
    })
    .await;

    env.delete(&ironcore("VirtualIP"), Some("default"), "vip").await;
    env.wait_gone(&ironcore("VirtualIP"), Some("default"), "vip")
        .await;
    env.wait_gone(&apinet("IP"), Some(APINET_NS), &uid).await;
    env.wait_gone(&apinet("IPAddress"), None, &ip).await;
}
