//! LoadBalancer: Internal and Public, create, port update (re-created; upstream ignores it), targets, delete.

use ironnet_metalbond::{NextHop, NextHopType, Route};
use serde_json::json;

use crate::common::*;
use ironnet_vni::vni;

#[tokio::test]
async fn internal_load_balancer_lifecycle_with_local_target() {
    let env = Env::start().await;
    env.other.subscribe(vni!(10)).unwrap();
    env.network("net", 10, &[]).await;
    let lb = env
        .load_balancer(
            "lb",
            "net",
            "Internal",
            "10.0.0.100",
            json!([{"protocol": "TCP", "port": 80}]),
        )
        .await;
    let uid = Env::uid(&lb);
    let api = env.load_balancers();
    let ready = || async {
        let l = api.get("lb").await.unwrap();
        (l.status?.state == Some(ironnet_api::metalnet::ObjectState::Ready)).then_some(())
    };
    poll("lb ready", ready).await;
    let l = env.dp.get_load_balancer(&uid).await.unwrap().unwrap();
    assert_eq!(
        (l.vni, l.ip, l.ports.clone()),
        (Some(vni!(10)), ip("10.0.0.100"), vec![(6, 80)])
    );
    poll("announced in the network VNI", || async {
        env.other
            .routes_in(vni!(10))
            .iter()
            .any(|r| {
                r.destination.to_string() == "10.0.0.100/32"
                    && r.next_hop.target() == std::net::IpAddr::V6(l.underlay)
            })
            .then_some(())
    })
    .await;

    // Ports changed: applied by re-creating the load balancer.
    api.patch(
        "lb",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            &json!({"spec": {"ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 53}]}}),
        ),
    )
    .await
    .unwrap();
    poll("ports updated", || async {
        let l = env.dp.get_load_balancer(&uid).await.ok()??;
        (l.ports == [(6, 80), (17, 53)]).then_some(())
    })
    .await;

    // A local interface serving the VIP becomes a target (our own announcements never come back from metalbond).
    let nic = env
        .interface("nic", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"], "loadBalancerTargets": ["10.0.0.100/32"]}))
        .await;
    env.ready_interface("nic", |n| {
        !n.status.as_ref().unwrap().load_balancer_targets.is_empty()
    })
    .await;
    let lb_prefix = env.dp.list_prefixes(&Env::uid(&nic), true).await.unwrap()[0].1;
    poll("local target programmed", || async {
        let t = env.dp.list_load_balancer_targets(&uid).await.ok()?;
        (t == [std::net::IpAddr::V6(lb_prefix)]).then_some(())
    })
    .await;
    // Another host's interface serves the VIP too: both targets (metalbond no longer drops targets of a
    // destination this node announces itself).
    let remote = Route::new(
        vni!(10),
        "10.0.0.100/32".parse().unwrap(),
        NextHop::load_balancer_target("fc00:2::100".parse().unwrap()),
    );
    env.other.announce(remote).unwrap();
    poll("local and remote targets", || async {
        let mut t = env.dp.list_load_balancer_targets(&uid).await.ok()?;
        t.sort();
        let mut want = vec![std::net::IpAddr::V6(lb_prefix), ip("fc00:2::100")];
        want.sort();
        (t == want).then_some(())
    })
    .await;
    env.other.withdraw(remote).unwrap();
    env.patch_interface("nic", json!({"loadBalancerTargets": null}))
        .await;
    poll("target removed", || async {
        env.dp
            .list_load_balancer_targets(&uid)
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await;

    env.delete(&api, "lb").await;
    assert_eq!(env.dp.get_load_balancer(&uid).await.unwrap(), None);
    poll("withdrawn", || async {
        (!env
            .other
            .routes_in(vni!(10))
            .iter()
            .any(|r| r.destination.to_string() == "10.0.0.100/32"))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn public_load_balancer_gets_remote_targets() {
    let env = Env::start().await;
    env.other.subscribe(PUBLIC_VNI).unwrap();
    env.network("net", 10, &[]).await;
    let lb = env
        .load_balancer(
            "pub",
            "net",
            "Public",
            "203.0.113.10",
            json!([{"protocol": "TCP", "port": 443}]),
        )
        .await;
    let uid = Env::uid(&lb);
    poll("announced in the public VNI", || async {
        env.other
            .routes_in(PUBLIC_VNI)
            .iter()
            .any(|r| {
                r.destination.to_string() == "203.0.113.10/32" && r.next_hop.kind() == NextHopType::Standard
            })
            .then_some(())
    })
    .await;
    // Another hypervisor's interface serves the VIP.
    let target = Route::new(
        vni!(10),
        "203.0.113.10/32".parse().unwrap(),
        NextHop::load_balancer_target("fc00:2::10".parse().unwrap()),
    );
    env.other.announce(target).unwrap();
    poll("remote target programmed", || async {
        let t = env.dp.list_load_balancer_targets(&uid).await.ok()?;
        (t == [ip("fc00:2::10")]).then_some(())
    })
    .await;
    // Ports changed: re-created, and the targets come back on the new load balancer.
    env.load_balancers()
        .patch(
            "pub",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"ports": [{"protocol": "TCP", "port": 8443}]}})),
        )
        .await
        .unwrap();
    poll("ports updated, target kept", || async {
        let l = env.dp.get_load_balancer(&uid).await.ok()??;
        let t = env.dp.list_load_balancer_targets(&uid).await.ok()?;
        (l.ports == [(6, 8443)] && t == [ip("fc00:2::10")]).then_some(())
    })
    .await;
    env.other.withdraw(target).unwrap();
    poll("remote target removed", || async {
        env.dp
            .list_load_balancer_targets(&uid)
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await;
    env.delete(&env.load_balancers(), "pub").await;
    assert_eq!(env.dp.get_load_balancer(&uid).await.unwrap(), None);

    // IPv6 (the node runs with --enable-ipv6): announced as a /128.
    let lb6 = env
        .load_balancer(
            "pub6",
            "net",
            "Public",
            "2001:db8::10",
            json!([{"protocol": "UDP", "port": 53}]),
        )
        .await;
    poll("IPv6 load balancer announced", || async {
        env.other
            .routes_in(PUBLIC_VNI)
            .iter()
            .any(|r| r.destination.to_string() == "2001:db8::10/128")
            .then_some(())
    })
    .await;
    let l = env.dp.get_load_balancer(&Env::uid(&lb6)).await.unwrap().unwrap();
    assert_eq!((l.ip, l.ports), (ip("2001:db8::10"), vec![(17, 53)]));
}
