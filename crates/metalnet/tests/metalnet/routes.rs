//! Routes received through metalbond are programmed into dpservice (checked with its List RPCs): standard
//! routes, the default router, neighbour NATs and peering.

use ironnet_metalbond::{NextHop, Route};
use ironnet_vni::{Vni, vni};
use serde_json::json;

use crate::common::*;

async fn has_route(env: &Env, vni: Vni, prefix: &str, nh_vni: Vni, nh: &str) -> bool {
    env.dp
        .list_routes(vni)
        .await
        .map(|rs| {
            rs.iter().any(|r| {
                r.prefix.to_string() == prefix && r.nexthop_vni == Some(nh_vni) && r.nexthop == ip(nh)
            })
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn received_routes_default_router_and_neighbor_nats_are_programmed() {
    let env = Env::start().await;
    env.network("net", 10, &[]).await;
    env.interface("nic", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"]}))
        .await;
    env.ready_interface("nic", |_| true).await;

    let remote = Route::new(
        vni!(10),
        "10.0.5.0/24".parse().unwrap(),
        NextHop::standard(ip("fc00:2::5")),
    );
    env.other.announce(remote).unwrap();
    poll("remote route programmed", || async {
        has_route(&env, vni!(10), "10.0.5.0/24", vni!(10), "fc00:2::5")
            .await
            .then_some(())
    })
    .await;

    env.announce_router();
    poll("default routes via the router", || async {
        (has_route(&env, vni!(10), "0.0.0.0/0", vni!(10), ROUTER).await
            && has_route(&env, vni!(10), "::/0", vni!(10), ROUTER).await)
            .then_some(())
    })
    .await;

    let nat = Route::new(
        vni!(10),
        "198.51.100.7/32".parse().unwrap(),
        NextHop::nat(ip("fc00:2::7"), 2000, 3000).unwrap(),
    );
    env.other.announce(nat).unwrap();
    poll("neighbour NAT programmed", || async {
        let n = env.dp.list_neighbor_nats().await.ok()?;
        n.iter()
            .any(|n| {
                n.ip == ip("198.51.100.7")
                    && (n.min_port, n.max_port) == (2000, 3000)
                    && n.vni == Some(vni!(10))
            })
            .then_some(())
    })
    .await;

    env.other.withdraw(remote).unwrap();
    env.other.withdraw(nat).unwrap();
    poll("withdrawn routes removed", || async {
        let gone = !has_route(&env, vni!(10), "10.0.5.0/24", vni!(10), "fc00:2::5").await;
        let nats = env.dp.list_neighbor_nats().await.ok()?;
        (gone && nats.is_empty()).then_some(())
    })
    .await;
    assert!(
        has_route(&env, vni!(10), "0.0.0.0/0", vni!(10), ROUTER).await,
        "the default route stays"
    );
}

/// A public IP announced in the public VNI leaves every Network's default route alone, while a change of the
/// default router reaches every Network: metalnet re-reconciles all Networks on a public-VNI change only when it
/// moves the default router.
#[tokio::test]
async fn default_routes_follow_the_router_and_ignore_other_public_routes() {
    let env = Env::start().await;
    env.network("net-a", 10, &[]).await;
    env.network("net-b", 20, &[]).await;
    for (nic, net) in [("nic-a", "net-a"), ("nic-b", "net-b")] {
        env.interface(nic, json!({"networkRef": {"name": net}, "ips": ["10.0.0.1"]}))
            .await;
        env.ready_interface(nic, |_| true).await;
    }
    env.announce_router();
    let defaults_via = |router: &'static str| {
        let env = &env;
        move || async move {
            let mut all = true;
            for vni in [vni!(10), vni!(20)] {
                all &= has_route(env, vni, "0.0.0.0/0", vni, router).await;
            }
            all.then_some(())
        }
    };
    poll("default routes via the router", defaults_via(ROUTER)).await;

    // Another node's VirtualIP: a public route that is not a default route.
    let vip = Route::new(
        PUBLIC_VNI,
        "192.0.2.10/32".parse().unwrap(),
        NextHop::standard(ip("fc00:2::10")),
    );
    env.other.announce(vip).unwrap();
    // A second router with a smaller address wins (every node picks the smallest next hop).
    const SECOND_ROUTER: &str = "fc00:fe::1";
    let second = Route::new(
        PUBLIC_VNI,
        "0.0.0.0/0".parse().unwrap(),
        NextHop::standard(ip(SECOND_ROUTER)),
    );
    env.other.announce(second).unwrap();
    poll(
        "default routes moved to the second router",
        defaults_via(SECOND_ROUTER),
    )
    .await;

    env.other.withdraw(second).unwrap();
    poll("default routes back on the first router", defaults_via(ROUTER)).await;
    env.other.withdraw(vip).unwrap();
    assert!(
        has_route(&env, vni!(10), "0.0.0.0/0", vni!(10), ROUTER).await
            && has_route(&env, vni!(20), "0.0.0.0/0", vni!(20), ROUTER).await,
        "withdrawing a public IP keeps the default routes"
    );
}

#[tokio::test]
async fn peered_network_routes_are_installed_with_the_peer_vni() {
    let env = Env::start().await;
    env.network("a", 10, &[20]).await;
    // The peer is not used on this node; its Network says what it exports into 10.
    let peer: ironnet_api::metalnet::Network = serde_json::from_value(json!({
        "apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": "Network",
        "metadata": {"name": "b"},
        "spec": {"id": 20, "peeredIDs": [10], "peeredPrefixes": [{"id": 10, "prefixes": ["10.20.0.0/24"]}]},
    }))
    .unwrap();
    env.networks().create(&Default::default(), &peer).await.unwrap();
    env.interface("nic", json!({"networkRef": {"name": "a"}, "ips": ["10.0.0.1"]}))
        .await;
    env.ready_interface("nic", |_| true).await;

    let exported = Route::new(
        vni!(20),
        "10.20.0.5/32".parse().unwrap(),
        NextHop::standard(ip("fc00:3::5")),
    );
    let filtered = Route::new(
        vni!(20),
        "10.21.0.5/32".parse().unwrap(),
        NextHop::standard(ip("fc00:3::6")),
    );
    env.other.announce(exported).unwrap();
    env.other.announce(filtered).unwrap();
    poll("peered route in VNI 10 via VNI 20", || async {
        has_route(&env, vni!(10), "10.20.0.5/32", vni!(20), "fc00:3::5")
            .await
            .then_some(())
    })
    .await;
    assert!(
        !has_route(&env, vni!(10), "10.21.0.5/32", vni!(20), "fc00:3::6").await,
        "outside the exported prefixes"
    );

    // Peering removed on our side: the subscription to 20 ends and its routes go.
    env.networks()
        .patch(
            "a",
            &Default::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"peeredIDs": null}})),
        )
        .await
        .unwrap();
    env.networks()
        .patch(
            "b",
            &Default::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"peeredIDs": null, "peeredPrefixes": null}})),
        )
        .await
        .unwrap();
    poll("peered route removed", || async {
        (!has_route(&env, vni!(10), "10.20.0.5/32", vni!(20), "fc00:3::5").await).then_some(())
    })
    .await;
}

/// The peer's Network changing is enough: once `b` exports into `a` (and once it stops), `a`'s table follows,
/// though `a` itself did not change and no route arrived. Both Networks are in use on this node, so nothing is
/// subscribed anew (as on a hypervisor with VMs of both Networks, where the README walkthrough's peering failed
/// whenever `a`'s side was applied before `b`'s).
#[tokio::test]
async fn a_peer_starting_or_stopping_to_export_updates_the_importing_network() {
    let env = Env::start().await;
    env.network("a", 10, &[]).await;
    env.network("b", 20, &[]).await;
    env.interface("nic-a", json!({"networkRef": {"name": "a"}, "ips": ["10.0.0.1"]}))
        .await;
    env.interface("nic-b", json!({"networkRef": {"name": "b"}, "ips": ["10.1.0.1"]}))
        .await;
    env.ready_interface("nic-a", |_| true).await;
    env.ready_interface("nic-b", |_| true).await;
    let remote = Route::new(
        vni!(20),
        "10.1.0.5/32".parse().unwrap(),
        NextHop::standard(ip("fc00:3::5")),
    );
    env.other.announce(remote).unwrap();
    poll("b's route in VNI 20", || async {
        has_route(&env, vni!(20), "10.1.0.5/32", vni!(20), "fc00:3::5")
            .await
            .then_some(())
    })
    .await;

    // a peers first, and is reconciled while b does not export into it yet.
    let peer = |name: &'static str, ids: serde_json::Value| {
        let networks = env.networks();
        async move {
            networks
                .patch(
                    name,
                    &Default::default(),
                    &kube::api::Patch::Merge(&json!({"spec": {"peeredIDs": ids}})),
                )
                .await
                .unwrap();
        }
    };
    peer("a", json!([20])).await;
    poll("a reconciled with its peering", || async {
        let a = env.networks().get("a").await.unwrap();
        let status = serde_json::to_value(&a.status).unwrap();
        (status.pointer("/peerings/0/id") == Some(&json!(20))).then_some(())
    })
    .await;
    assert!(!has_route(&env, vni!(10), "10.1.0.5/32", vni!(20), "fc00:3::5").await);
    peer("b", json!([10])).await;
    poll("b's route in VNI 10 once b exports into a", || async {
        has_route(&env, vni!(10), "10.1.0.5/32", vni!(20), "fc00:3::5")
            .await
            .then_some(())
    })
    .await;
    peer("b", serde_json::Value::Null).await;
    poll("b's route gone from VNI 10 once b stops exporting", || async {
        (!has_route(&env, vni!(10), "10.1.0.5/32", vni!(20), "fc00:3::5").await).then_some(())
    })
    .await;
}

#[tokio::test]
async fn hosts_sharing_a_nat_ip_learn_each_others_ranges() {
    let env = Env::start().await;
    env.other.subscribe(vni!(10)).unwrap();
    env.network("net", 10, &[]).await;
    env.interface(
        "nic",
        json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"], "nat": {"ip": "198.51.100.1", "port": 1000, "endPort": 2000}}),
    )
    .await;
    env.ready_interface("nic", |n| n.status.as_ref().unwrap().nat_ip.is_some())
        .await;
    // Another host's interface has the same NAT IP with the next range.
    let neighbour = Route::new(
        vni!(10),
        "198.51.100.1/32".parse().unwrap(),
        NextHop::nat(ip("fc00:2::1"), 2000, 3000).unwrap(),
    );
    env.other.announce(neighbour).unwrap();
    let underlay: std::net::Ipv6Addr = "fc00:2::1".parse().unwrap();
    poll("the neighbour's range programmed", || async {
        let n = env.dp.list_neighbor_nats().await.ok()?;
        n.iter()
            .any(|n| {
                n.ip == ip("198.51.100.1")
                    && (n.min_port, n.max_port) == (2000, 3000)
                    && n.underlay == underlay
            })
            .then_some(())
    })
    .await;
    // And the other host learns ours.
    poll("our range reaches the other host", || async {
        env.other
            .routes_in(vni!(10))
            .iter()
            .any(|r| r.destination.to_string() == "198.51.100.1/32" && r.next_hop.nat_ports() == (1000, 2000))
            .then_some(())
    })
    .await;
}
