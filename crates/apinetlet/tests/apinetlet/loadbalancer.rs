//! LoadBalancer → apinet LoadBalancer with public IPs, and a LoadBalancerRouting that follows the selected
//! interfaces.

use serde_json::{Value, json};

use crate::common::{APINET_NS, apinet, env, ironcore, s};
use crate::networkinterface::{NODE, apinet_nic, ironcore_nic, mark_ready};

#[tokio::test]
async fn load_balancer_gets_ips_and_routing_follows_interface_labels() {
    let env = env().await;
    let net = env.available_network("default", "net", json!({})).await;
    let anic = apinet_nic(&env, "apinet-nic", s(&net, "/metadata/uid"), "10.0.0.7").await;
    ironcore_nic(&env, "web", json!({"app": "web"}), &anic, json!({})).await;
    mark_ready(&env, "apinet-nic").await;
    env.wait_for("interface available", || async {
        let n = env
            .get(&ironcore("NetworkInterface"), Some("default"), "web")
            .await?;
        (s(&n, "/status/state") == "Available").then_some(())
    })
    .await;

    let lb = env
        .create(
            &ironcore("LoadBalancer"),
            Some("default"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "LoadBalancer",
                   "metadata": {"name": "lb"},
                   "spec": {"type": "Public", "ipFamilies": ["IPv4"], "networkRef": {"name": "net"},
                            "networkInterfaceSelector": {"matchLabels": {"app": "web"}},
                            "ports": [{"protocol": "TCP", "port": 80}]}}),
        )
        .await;
    let uid = s(&lb, "/metadata/uid").to_owned();
    let ips = env
        .wait_for("lb status.ips", || async {
            let l = env.get(&ironcore("LoadBalancer"), Some("default"), "lb").await?;
            l.pointer("/status/ips")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .cloned()
        })
        .await;
    let alb = env
        .get(&apinet("LoadBalancer"), Some(APINET_NS), &uid)
        .await
        .unwrap();
    assert_eq!(s(&alb, "/spec/type"), "Public");
    assert_eq!(s(&alb, "/spec/networkRef/name"), s(&net, "/metadata/uid"));
    assert_eq!(alb.pointer("/spec/ips/0/ip"), ips.first());
    assert_eq!(
        alb.pointer("/spec/ports"),
        Some(&json!([{"protocol": "TCP", "port": 80}]))
    );

    // The routing names the selected interface on its node.
    let anic_uid = s(&anic, "/metadata/uid").to_owned();
    env.wait_for("routing with the web interface", || async {
        let r = env.get(&apinet("LoadBalancerRouting"), Some(APINET_NS), &uid).await?;
        (r.pointer("/destinations")
            == Some(&json!([{"ip": "10.0.0.7", "targetRef": {"uid": anic_uid, "name": "apinet-nic", "nodeRef": {"name": NODE}}}])))
        .then_some(())
    })
    .await;
    let routing = env
        .get(&apinet("LoadBalancerRouting"), Some(APINET_NS), &uid)
        .await
        .unwrap();
    assert_eq!(
        s(&routing, "/metadata/ownerReferences/0/uid"),
        s(&alb, "/metadata/uid")
    );

    // Relabelling the interface drops it from the routing.
    env.patch(
        &ironcore("NetworkInterface"),
        Some("default"),
        "web",
        json!({"metadata": {"labels": {"app": "other"}}}),
        false,
    )
    .await;
    env.wait_for("routing without destinations", || async {
        let r = env
            .get(&apinet("LoadBalancerRouting"), Some(APINET_NS), &uid)
            .await?;
        r.pointer("/destinations")
            .is_none_or(|d| d.as_array().is_none_or(Vec::is_empty))
            .then_some(())
    })
    .await;

    // Re-applying after the routing change keeps the allocated public address.
    let after = env
        .get(&apinet("LoadBalancer"), Some(APINET_NS), &uid)
        .await
        .unwrap();
    assert_eq!(after.pointer("/spec/ips/0/ip"), ips.first());
    let l = env
        .get(&ironcore("LoadBalancer"), Some("default"), "lb")
        .await
        .unwrap();
    assert_eq!(l.pointer("/status/ips"), Some(&json!(ips)));

    env.delete(&ironcore("LoadBalancer"), Some("default"), "lb").await;
    env.wait_gone(&ironcore("LoadBalancer"), Some("default"), "lb")
        .await;
    env.wait_gone(&apinet("LoadBalancer"), Some(APINET_NS), &uid)
        .await;
    env.wait_gone(&apinet("LoadBalancerRouting"), Some(APINET_NS), &uid)
        .await;
    for ip in ips.iter().filter_map(Value::as_str) {
        env.wait_gone(&apinet("IPAddress"), None, ip).await;
    }
}
