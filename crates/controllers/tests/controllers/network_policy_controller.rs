//! apinet NetworkPolicy → NetworkPolicyRule reconciler against the real in-process API server (the rule
//! resolution of upstream ironcore-net's apinetlet NetworkPolicy controller and its conformance case in
//! `apinetlet/controllers`).

use crate::common;

use common::{eventually, server, start};
use ironnet_api::apinet::{LoadBalancer, Network, NetworkInterface, NetworkPolicy, NetworkPolicyRule};
use ironnet_controllers::reconcilers::network_policy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn apinet<T: serde::de::DeserializeOwned>(kind: &str, name: &str, labels: Value, rest: Value) -> T {
    let mut v = json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": kind,
                       "metadata": {"name": name, "labels": labels}});
    if let (Some(o), Some(r)) = (v.as_object_mut(), rest.as_object()) {
        o.extend(r.clone());
    }
    serde_json::from_value(v).unwrap()
}

async fn ready_nic(api: &Api<NetworkInterface>, name: &str, labels: Value, ip: &str) -> NetworkInterface {
    let nic: NetworkInterface = apinet(
        "NetworkInterface",
        name,
        labels,
        json!({"spec": {"nodeRef": {"name": "node"}, "networkRef": {"name": "net"}, "ips": [ip]}}),
    );
    api.create(&PostParams::default(), &nic).await.unwrap();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Ready"}})),
    )
    .await
    .unwrap()
}

async fn rule(api: &Api<NetworkPolicyRule>) -> Value {
    api.get_opt("np")
        .await
        .unwrap()
        .map(|r| serde_json::to_value(r).unwrap())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn policy_rule_resolves_targets_and_peers_and_follows_interface_changes() {
    let (client, _server, _dir) = server().await;
    let _stop = start(&client, |c, s| {
        network_policy::run(ironnet_runtime::informer::Informers::new(c), 2, s)
    });
    let ns = "default";
    let networks: Api<Network> = Api::namespaced(client.clone(), ns);
    let nics: Api<NetworkInterface> = Api::namespaced(client.clone(), ns);
    let lbs: Api<LoadBalancer> = Api::namespaced(client.clone(), ns);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let rules: Api<NetworkPolicyRule> = Api::namespaced(client.clone(), ns);

    let policy: NetworkPolicy = apinet(
        "NetworkPolicy",
        "np",
        json!({}),
        json!({"spec": {
            "networkRef": {"name": "net"},
            "networkInterfaceSelector": {"matchLabels": {"app": "target"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": 80}],
                         "from": [{"objectSelector": {"kind": "NetworkInterface", "matchLabels": {"rule": "ingress"}}},
                                  {"ipBlock": {"cidr": "192.168.1.0/24", "except": ["192.168.1.1/32"]}}]}],
            "egress": [{"ports": [{"protocol": "TCP", "port": 443}],
                        "to": [{"objectSelector": {"kind": "LoadBalancer", "matchLabels": {"app": "web"}}}]}],
        }}),
    );
    let policy = policies.create(&PostParams::default(), &policy).await.unwrap();
    // No Network yet: no rule.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(rule(&rules).await, Value::Null);

    let net: Network = apinet("Network", "net", json!({}), json!({"spec": {"id": "300"}}));
    let net = networks.create(&PostParams::default(), &net).await.unwrap();
    eventually("rule without targets", || async {
        let r = rule(&rules).await;
        r["networkRef"] == json!({"name": "net", "uid": net.metadata.uid}) && r["priority"] == 1000
    })
    .await;
    let r = rule(&rules).await;
    assert!(r.get("targets").is_none_or(|t| t == &json!([])), "{r}");
    assert_eq!(
        r["ingressRule"][0]["networkPolicyPorts"],
        json!([{"protocol": "TCP", "port": 80}])
    );
    assert_eq!(
        r["ingressRule"][0]["ipBlock"],
        json!([{"cidr": "192.168.1.0/24", "except": ["192.168.1.1/32"]}])
    );
    let owner = &r["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), &owner["uid"]),
        (Some("NetworkPolicy"), &json!(policy.metadata.uid))
    );

    let target = ready_nic(&nics, "target", json!({"app": "target"}), "10.0.0.1").await;
    ready_nic(&nics, "peer", json!({"rule": "ingress"}), "10.0.0.2").await;
    let lb: LoadBalancer = apinet(
        "LoadBalancer",
        "web",
        json!({"app": "web"}),
        json!({"spec": {
        "type": "Internal", "networkRef": {"name": "net"}, "ips": [{"name": "ip", "ipFamily": "IPv6", "ip": "2001:db8::5"}],
        "selector": {}, "template": {}}}),
    );
    lbs.create(&PostParams::default(), &lb).await.unwrap();
    eventually("targets and peers resolved", || async {
        let r = rule(&rules).await;
        r["targets"]
            == json!([{"ip": "10.0.0.1", "targetRef": {"name": "target", "uid": target.metadata.uid}}])
            && r["ingressRule"][0]["ips"] == json!([{"ipFamily": "IPv4", "prefix": "10.0.0.2/32"}])
            && r["egressRule"][0]["ips"] == json!([{"ipFamily": "IPv6", "prefix": "2001:db8::5/128"}])
    })
    .await;

    // Labels stop matching: the target and the peer drop out.
    for name in ["target", "peer"] {
        nics.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": null}})),
        )
        .await
        .unwrap();
    }
    eventually("target and peer gone", || async {
        let r = rule(&rules).await;
        r["targets"].as_array().is_none_or(Vec::is_empty)
            && r["ingressRule"][0]["ips"].as_array().is_none_or(Vec::is_empty)
    })
    .await;

    // Readiness counts: a matching interface that is not Ready is no target.
    nics.patch(
        "target",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "target"}}})),
    )
    .await
    .unwrap();
    nics.patch_status(
        "target",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Pending"}})),
    )
    .await
    .unwrap();
    eventually("pending interface is no target", || async {
        rule(&rules).await["targets"].as_array().is_none_or(Vec::is_empty)
    })
    .await;
    nics.patch_status(
        "target",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Ready"}})),
    )
    .await
    .unwrap();
    eventually("target back", || async {
        rule(&rules).await["targets"]
            .as_array()
            .is_some_and(|t| t.len() == 1)
    })
    .await;

    // The priority follows the policy.
    policies
        .patch(
            "np",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"priority": 7}})),
        )
        .await
        .unwrap();
    eventually("priority", || async { rule(&rules).await["priority"] == 7 }).await;
}
