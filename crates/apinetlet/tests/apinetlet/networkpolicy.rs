//! NetworkPolicy → apinet NetworkPolicy (and the controller-manager's NetworkPolicyRule with origin), cleanup.

use serde_json::json;

use crate::common::{APINET_NS, apinet, env, ironcore, s};

#[tokio::test]
async fn network_policy_is_translated_and_cleaned_up() {
    let env = env().await;
    let net = env.available_network("default", "net", json!({})).await;
    let np = env
        .create(
            &ironcore("NetworkPolicy"),
            Some("default"),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "NetworkPolicy",
                   "metadata": {"name": "np"},
                   "spec": {"networkRef": {"name": "net"},
                            "networkInterfaceSelector": {"matchLabels": {"app": "target"}},
                            "policyTypes": ["Ingress"],
                            "ingress": [{"ports": [{"protocol": "TCP", "port": 80}],
                                         "from": [{"ipBlock": {"cidr": "192.168.1.0/24"}}]}]}}),
        )
        .await;
    let uid = s(&np, "/metadata/uid").to_owned();
    let anp = env
        .wait_for("apinet policy", || async {
            env.get(&apinet("NetworkPolicy"), Some(APINET_NS), &uid).await
        })
        .await;
    assert_eq!(s(&anp, "/spec/networkRef/name"), s(&net, "/metadata/uid"));
    assert_eq!(anp.pointer("/spec/priority"), Some(&json!(1000)));
    assert_eq!(anp.pointer("/spec/policyTypes"), Some(&json!(["Ingress"])));
    assert_eq!(
        anp.pointer("/spec/networkInterfaceSelector"),
        Some(&json!({"matchLabels": {"app": "target"}}))
    );
    assert_eq!(
        anp.pointer("/spec/ingress/0/from/0"),
        Some(&json!({"ipBlock": {"cidr": "192.168.1.0/24"}}))
    );
    assert_eq!(
        anp.pointer("/metadata/labels/apinetlet.ironcore.dev~1networkpolicy-uid"),
        Some(&json!(uid))
    );

    env.delete(&ironcore("NetworkPolicy"), Some("default"), "np")
        .await;
    env.wait_gone(&ironcore("NetworkPolicy"), Some("default"), "np")
        .await;
    env.wait_gone(&apinet("NetworkPolicy"), Some(APINET_NS), &uid)
        .await;
}
