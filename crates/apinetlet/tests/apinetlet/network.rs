//! Network → apinet Network (VNI), provider ID, `Available`, peerings, cleanup.

use serde_json::json;

use crate::common::{APINET_NS, Env, apinet, env, env_with, ironcore, s};

#[tokio::test]
async fn network_becomes_available_with_provider_id_and_cleans_up() {
    let env = env().await;
    let net = env.available_network("default", "net", json!({})).await;
    let uid = s(&net, "/metadata/uid").to_owned();
    let apinet_net = env.get(&apinet("Network"), Some(APINET_NS), &uid).await.unwrap();
    let id = s(&apinet_net, "/spec/id").to_owned();
    assert!(
        id.parse::<u32>().unwrap() >= 200,
        "VNI {id} from the configured range"
    );
    assert_eq!(
        s(&net, "/spec/providerID"),
        format!(
            "ironcore-net://{APINET_NS}/{uid}/{id}/{}",
            s(&apinet_net, "/metadata/uid")
        )
    );
    assert_eq!(
        apinet_net.pointer("/metadata/labels/apinetlet.ironcore.dev~1network-uid"),
        Some(&json!(uid))
    );
    assert_eq!(
        apinet_net.pointer("/metadata/annotations/apinetlet.ironcore.dev~1network-name"),
        Some(&json!("net"))
    );
    assert!(
        net.pointer("/metadata/finalizers")
            .and_then(|f| f.as_array())
            .is_some_and(|f| f.contains(&json!("apinet.ironcore.dev/network")))
    );

    env.delete(&ironcore("Network"), Some("default"), "net").await;
    env.wait_gone(&ironcore("Network"), Some("default"), "net").await;
    env.wait_gone(&apinet("Network"), Some(APINET_NS), &uid).await;
    env.wait_gone(&apinet("NetworkID"), None, &id).await;
}

#[tokio::test]
async fn apinet_network_of_a_vanished_source_is_deleted() {
    let env = env().await;
    let origin = json!({
        "apinetlet.ironcore.dev/network-uid": "0000-gone",
        "apinetlet.ironcore.dev/network-namespace": "default",
    });
    env.namespace(APINET_NS).await;
    env.create(
        &apinet("Network"),
        Some(APINET_NS),
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Network",
               "metadata": {"name": "orphan", "labels": origin,
                            "annotations": {"apinetlet.ironcore.dev/network-name": "some-nonexistent-name"}},
               "spec": {}}),
    )
    .await;
    env.wait_gone(&apinet("Network"), Some(APINET_NS), "orphan").await;
}

/// The source check compares UIDs, not only names: an apinet Network whose origin names an existing ironcore
/// Network of another incarnation (deleted and recreated under the same name) is an orphan, while the live
/// source's own apinet Network stays.
#[tokio::test]
async fn apinet_network_of_a_recreated_source_is_deleted() {
    let env = env().await;
    let net = env.available_network("default", "reborn", json!({})).await;
    let uid = s(&net, "/metadata/uid").to_owned();
    let origin = json!({
        "apinetlet.ironcore.dev/network-uid": "0000-former-incarnation",
        "apinetlet.ironcore.dev/network-namespace": "default",
    });
    env.create(
        &apinet("Network"),
        Some(APINET_NS),
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Network",
               "metadata": {"name": "stale", "labels": origin,
                            "annotations": {"apinetlet.ironcore.dev/network-name": "reborn"}},
               "spec": {}}),
    )
    .await;
    env.wait_gone(&apinet("Network"), Some(APINET_NS), "stale").await;
    assert!(
        env.get(&apinet("Network"), Some(APINET_NS), &uid).await.is_some(),
        "the live source's apinet Network is kept"
    );
}

fn peering(name: &str, ns: &str, network: &str) -> serde_json::Value {
    json!({"name": name, "networkRef": {"namespace": ns, "name": network}})
}

async fn status_peerings(env: &Env, ns: &str, name: &str) -> serde_json::Value {
    env.get(&ironcore("Network"), Some(ns), name)
        .await
        .and_then(|n| n.pointer("/status/peerings").cloned())
        .unwrap_or(json!(null))
}

#[tokio::test]
async fn mutual_peerings_become_ready_and_one_sided_stay_pending() {
    let env = env().await;
    env.namespace("other").await;
    let n1 = env
        .available_network(
            "default",
            "n1",
            json!({"peerings": [peering("to-n2", "other", "n2")]}),
        )
        .await;
    let n2 = env
        .available_network(
            "other",
            "n2",
            json!({"peerings": [peering("to-n1", "default", "n1")]}),
        )
        .await;
    // One-sided: n3 wants n1, n1 does not want n3.
    let n3 = env
        .available_network("default", "n3", json!({"peerings": [peering("to-n1", "", "n1")]}))
        .await;
    let uid = |n: &serde_json::Value| s(n, "/metadata/uid").to_owned();
    let id_of = |uid: String| {
        let env = &env;
        async move {
            let n = env.get(&apinet("Network"), Some(APINET_NS), &uid).await.unwrap();
            s(&n, "/spec/id").to_owned()
        }
    };
    let (id1, id2) = (id_of(uid(&n1)).await, id_of(uid(&n2)).await);

    // The ironcore peering controller claims both sides; apinetlet translates the claims into apinet peerings.
    env.wait_for("apinet n1 peers n2", || async {
        let n = env.get(&apinet("Network"), Some(APINET_NS), &uid(&n1)).await?;
        (n.pointer("/spec/peerings") == Some(&json!([{"name": "to-n2", "id": id2}]))).then_some(())
    })
    .await;
    env.wait_for("apinet n2 peers n1", || async {
        let n = env.get(&apinet("Network"), Some(APINET_NS), &uid(&n2)).await?;
        (n.pointer("/spec/peerings") == Some(&json!([{"name": "to-n1", "id": id1}]))).then_some(())
    })
    .await;
    env.wait_for("n1 peering pending", || async {
        (status_peerings(&env, "default", "n1").await == json!([{"name": "to-n2", "state": "Pending"}]))
            .then_some(())
    })
    .await;
    let incoming = env
        .get(&ironcore("Network"), Some("default"), "n1")
        .await
        .unwrap()
        .pointer("/spec/incomingPeerings")
        .cloned();
    assert_eq!(
        incoming,
        Some(json!([{"namespace": "other", "name": "n2", "uid": uid(&n2)}]))
    );

    // A node reports the peering in place.
    let id2_num: i64 = id2.parse().unwrap();
    env.patch(
        &apinet("Network"),
        Some(APINET_NS),
        &uid(&n1),
        json!({"status": {"peerings": {"partition1": [{"id": id2_num, "state": "Ready"}]}}}),
        true,
    )
    .await;
    env.wait_for("n1 peering ready", || async {
        (status_peerings(&env, "default", "n1").await == json!([{"name": "to-n2", "state": "Ready"}]))
            .then_some(())
    })
    .await;

    // n3's one-sided wish never becomes an apinet peering.
    let n3_apinet = env
        .get(&apinet("Network"), Some(APINET_NS), &uid(&n3))
        .await
        .unwrap();
    assert!(
        n3_apinet
            .pointer("/spec/peerings")
            .is_none_or(|p| p.as_array().is_none_or(Vec::is_empty))
    );
    // ... and shows as Pending.
    env.wait_for("n3's one-sided peering is Pending", || async {
        (status_peerings(&env, "default", "n3").await == json!([{"name": "to-n1", "state": "Pending"}]))
            .then_some(())
    })
    .await;

    for (ns, name) in [("default", "n3"), ("default", "n1"), ("other", "n2")] {
        env.delete(&ironcore("Network"), Some(ns), name).await;
    }
    for (ns, name, u) in [
        ("default", "n3", uid(&n3)),
        ("default", "n1", uid(&n1)),
        ("other", "n2", uid(&n2)),
    ] {
        env.wait_gone(&ironcore("Network"), Some(ns), name).await;
        env.wait_gone(&apinet("Network"), Some(APINET_NS), &u).await;
    }
}

#[tokio::test]
async fn disabled_network_peering_translates_spec_but_leaves_status() {
    let env = env_with(ironnet_apinetlet::ApinetletConfig {
        network_peering_disabled: true,
        ..ironnet_apinetlet::ApinetletConfig::new(APINET_NS)
    })
    .await;
    let n1 = env
        .available_network("default", "n1", json!({"peerings": [peering("to-n2", "", "n2")]}))
        .await;
    let n2 = env
        .available_network("default", "n2", json!({"peerings": [peering("to-n1", "", "n1")]}))
        .await;
    let apinet_n2 = env
        .get(&apinet("Network"), Some(APINET_NS), s(&n2, "/metadata/uid"))
        .await
        .unwrap();
    let id2 = s(&apinet_n2, "/spec/id").to_owned();
    let uid1 = s(&n1, "/metadata/uid").to_owned();
    env.wait_for("apinet n1 peers n2", || async {
        let n = env.get(&apinet("Network"), Some(APINET_NS), &uid1).await?;
        (n.pointer("/spec/peerings") == Some(&json!([{"name": "to-n2", "id": id2}]))).then_some(())
    })
    .await;
    env.patch(
        &apinet("Network"),
        Some(APINET_NS),
        &uid1,
        json!({"status": {"peerings": {"p": [{"id": id2.parse::<i64>().unwrap(), "state": "Ready"}]}}}),
        true,
    )
    .await;
    // A later spec change of n1 is translated (so apinetlet has reconciled n1 after the Ready report) and still
    // no peering status is written.
    env.patch(
        &ironcore("Network"),
        Some("default"),
        "n1",
        json!({"spec": {"peerings": [{"name": "to-n2", "networkRef": {"name": "n2"},
                                      "prefixes": [{"name": "p1", "prefix": "10.0.0.0/24"}]}]}}),
        false,
    )
    .await;
    env.wait_for("apinet n1 exposes the prefix", || async {
        let n = env.get(&apinet("Network"), Some(APINET_NS), &uid1).await?;
        n.pointer("/spec/peerings/0/prefixes/0/prefix").map(|_| ())
    })
    .await;
    let status = status_peerings(&env, "default", "n1").await;
    assert!(
        status
            .as_array()
            .is_none_or(|a| a.iter().all(|p| p["state"] != "Ready")),
        "{status}"
    );
}

#[tokio::test]
async fn leader_elected_apinetlet_reconciles_and_holds_the_lease() {
    let le = ironnet_runtime::leader::LeaderElectionConfig::new(
        "default",
        ironnet_apinetlet::LEASE_NAME,
        "test-a",
    )
    .unwrap();
    let env = env_with(ironnet_apinetlet::ApinetletConfig {
        leader_election: Some(le),
        ..ironnet_apinetlet::ApinetletConfig::new(APINET_NS)
    })
    .await;
    env.available_network("default", "net", json!({})).await;
    let lease = env
        .get(
            &kube::api::ApiResource {
                group: "coordination.k8s.io".into(),
                version: "v1".into(),
                api_version: "coordination.k8s.io/v1".into(),
                kind: "Lease".into(),
                plural: "leases".into(),
            },
            Some("default"),
            ironnet_apinetlet::LEASE_NAME,
        )
        .await
        .unwrap();
    assert_eq!(s(&lease, "/spec/holderIdentity"), "test-a");
}

#[tokio::test]
async fn watch_filter_and_managed_by_objects_are_left_alone() {
    let env = env_with(ironnet_apinetlet::ApinetletConfig {
        watch_filter: Some("mine".into()),
        ..ironnet_apinetlet::ApinetletConfig::new(APINET_NS)
    })
    .await;
    let create = |name: &'static str, labels: serde_json::Value| {
        let env = &env;
        async move {
            env.create(
                &ironcore("Network"),
                Some("default"),
                json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
                       "metadata": {"name": name, "labels": labels}, "spec": {}}),
            )
            .await
        }
    };
    let other = create("other", json!({"common.ironcore.dev/watch-filter": "theirs"})).await;
    let managed = create(
        "managed",
        json!({"common.ironcore.dev/watch-filter": "mine", "common.ironcore.dev/managed-by": "someone"}),
    )
    .await;
    // Created last: once it is Available, the earlier events have been handled too.
    create("mine", json!({"common.ironcore.dev/watch-filter": "mine"})).await;
    env.wait_for("filtered network available", || async {
        let n = env.get(&ironcore("Network"), Some("default"), "mine").await?;
        (s(&n, "/status/state") == "Available").then_some(())
    })
    .await;
    for n in [other, managed] {
        assert!(
            env.get(&apinet("Network"), Some(APINET_NS), s(&n, "/metadata/uid"))
                .await
                .is_none()
        );
        let now = env
            .get(&ironcore("Network"), Some("default"), s(&n, "/metadata/name"))
            .await
            .unwrap();
        assert_ne!(s(&now, "/status/state"), "Available");
    }
}

/// The server-side applies of `resource` in `group` the server has answered so far (its own
/// `apiserver_request_total`).
async fn applies(env: &Env, group: &str, resource: &str) -> u64 {
    let page = env
        .client
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .unwrap();
    page.lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains("verb=\"APPLY\"")
                && l.contains(&format!("group=\"{group}\""))
                && l.contains(&format!("resource=\"{resource}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The reconciles of `controller` in this process so far (the process-wide controller metrics; nextest runs
/// each test in its own process).
fn reconciles(controller: &str) -> u64 {
    let mut registry = prometheus_client::registry::Registry::default();
    ironnet_runtime::metrics::register(&mut registry);
    let mut page = String::new();
    prometheus_client::encoding::text::encode(&mut page, &registry).unwrap();
    let series = format!("controller_runtime_reconcile_total{{controller=\"{controller}\"");
    page.lines()
        .filter(|l| l.starts_with(&series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Another component writing the apinet Network (metalnetlet its status, every partition its finalizer)
/// triggers apinetlet's reconcile, which finds its desired Network already there and applies nothing: at scale
/// those no-op applies were a large share of the API server's work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_others_to_the_apinet_network_bring_no_apply() {
    let env = env().await;
    let net = env.available_network("default", "net", json!({})).await;
    let uid = s(&net, "/metadata/uid").to_owned();
    let group = "core.apinet.ironcore.dev";
    let before = applies(&env, group, "networks").await;
    assert!(before >= 1, "the Network was applied");
    for partition in ["p1", "p2", "p3"] {
        let seen = reconciles("apinetlet-network");
        env.patch(
            &apinet("Network"),
            Some(APINET_NS),
            &uid,
            json!({"status": {"peerings": {partition: []}}}),
            true,
        )
        .await;
        env.patch(
            &apinet("Network"),
            Some(APINET_NS),
            &uid,
            json!({"metadata": {"finalizers": [format!("{partition}.example.com/network")]}}),
            false,
        )
        .await;
        env.wait_for("a reconcile of the written Network", || async {
            (reconciles("apinetlet-network") > seen).then_some(())
        })
        .await;
    }
    assert_eq!(applies(&env, group, "networks").await, before);
}
