//! Restarts: a restarted dpservice is re-programmed by the running metalnet; a restarted metalnet adopts what
//! dpservice has without re-creating it; metalnet started before dpservice and metalbond waits for them; a stale
//! claim does not stop it.

use std::time::Duration;

use ironnet_metalbond::{MetalBond, NextHop, Route};
use ironnet_vni::{Vni, vni};
use serde_json::json;

use crate::common::*;

async fn has_route(env: &Env, vni: Vni, prefix: &str, nh: &str) -> bool {
    env.dp
        .list_routes(vni)
        .await
        .map(|rs| {
            rs.iter()
                .any(|r| r.prefix.to_string() == prefix && r.nexthop == ip(nh))
        })
        .unwrap_or(false)
}

/// Network 10 with an interface (VIP, prefix), a public load balancer, the router and a remote route.
async fn populated() -> (Env, String, String) {
    let env = Env::start().await;
    env.announce_router();
    env.network("net", 10, &[]).await;
    let nic = env
        .interface(
            "nic",
            json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"], "virtualIP": "203.0.113.1", "prefixes": ["10.1.0.0/24"]}),
        )
        .await;
    let lb = env
        .load_balancer(
            "lb",
            "net",
            "Public",
            "203.0.113.50",
            json!([{"protocol": "TCP", "port": 80}]),
        )
        .await;
    env.other
        .announce(Route::new(
            vni!(10),
            "10.0.5.0/24".parse().unwrap(),
            NextHop::standard(ip("fc00:2::5")),
        ))
        .unwrap();
    env.ready_interface("nic", |n| n.status.as_ref().unwrap().virtual_ip.is_some())
        .await;
    poll("routes programmed", || async {
        (has_route(&env, vni!(10), "10.0.5.0/24", "fc00:2::5").await
            && has_route(&env, vni!(10), "0.0.0.0/0", ROUTER).await)
            .then_some(())
    })
    .await;
    (env, Env::uid(&nic), Env::uid(&lb))
}

#[tokio::test]
async fn dpservice_restart_is_reprogrammed() {
    let (mut env, nic, lb) = populated().await;
    env.restart_dpservice().await;
    poll("everything re-created in the fresh dpservice", || async {
        let i = env.dp.get_interface(&nic).await.ok()??;
        env.dp.get_vip(&nic).await.ok()??;
        env.dp.get_load_balancer(&lb).await.ok()??;
        let prefixes = env.dp.list_prefixes(&nic, false).await.ok()?;
        let routes = has_route(&env, vni!(10), "10.0.5.0/24", "fc00:2::5").await
            && has_route(&env, vni!(10), "0.0.0.0/0", ROUTER).await;
        (i.vni == Some(vni!(10)) && prefixes.len() == 1 && routes).then_some(())
    })
    .await;
    // The announcements carry the new underlay.
    let underlay = env.dp.get_interface(&nic).await.unwrap().unwrap().underlay;
    env.other.subscribe(vni!(10)).unwrap();
    poll("announcement with the new underlay", || async {
        env.other
            .routes_in(vni!(10))
            .iter()
            .any(|r| {
                r.destination.to_string() == "10.0.0.1/32"
                    && r.next_hop.target() == std::net::IpAddr::V6(underlay)
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn metalnet_restart_adopts_without_recreating() {
    let (mut env, nic, lb) = populated().await;
    let before = env.dp.get_interface(&nic).await.unwrap().unwrap();
    let vip_before = env.dp.get_vip(&nic).await.unwrap().unwrap();
    let lb_before = env.dp.get_load_balancer(&lb).await.unwrap().unwrap();
    let prefixes_before = env.dp.list_prefixes(&nic, false).await.unwrap();
    // A route withdrawn while metalnet is down: dpservice keeps it until the restarted metalnet has its full
    // received table, then it must go. Its removal marks the end of the restart window.
    let stale = Route::new(
        vni!(10),
        "10.0.6.0/24".parse().unwrap(),
        NextHop::standard(ip("fc00:2::6")),
    );
    env.other.announce(stale).unwrap();
    poll("stale-to-be route programmed", || async {
        has_route(&env, vni!(10), "10.0.6.0/24", "fc00:2::6")
            .await
            .then_some(())
    })
    .await;
    // An interface whose object is force-deleted while metalnet is down.
    let gone = env
        .interface(
            "gone",
            json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.66"]}),
        )
        .await;
    env.ready_interface("gone", |_| true).await;
    let gone_uid = Env::uid(&gone);
    env.stop_metalnet().await;
    env.other.withdraw(stale).unwrap();
    env.interfaces()
        .patch(
            "gone",
            &Default::default(),
            &kube::api::Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    env.delete(&env.interfaces(), "gone").await;
    // Lose the claim file too: the device dpservice reports is adopted.
    std::fs::remove_file(env.args.metalnet_dir.join("netfns/claims").join(&nic)).unwrap();

    // Watch dpservice's routes during the restart: the live remote route must never disappear.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let dp = env.dp.clone();
    let watcher = tokio::spawn(async move {
        let mut lost = 0;
        while !*done_rx.borrow() {
            if let Ok(rs) = dp.list_routes(vni!(10)).await
                && !rs.iter().any(|r| r.prefix.to_string() == "10.0.5.0/24")
            {
                lost += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lost
    });
    env.start_metalnet();
    env.other.subscribe(PUBLIC_VNI).ok();
    poll("announcements made again", || async {
        env.other
            .routes_in(PUBLIC_VNI)
            .iter()
            .any(|r| r.destination.to_string() == "203.0.113.1/32")
            .then_some(())
    })
    .await;
    poll("claim re-adopted", || async {
        let c = std::fs::read_to_string(env.args.metalnet_dir.join("netfns/claims").join(&nic)).ok()?;
        (c == tap_names(&env.dp_args)[0]).then_some(())
    })
    .await;
    poll(
        "the route withdrawn meanwhile is removed once the received routes settled",
        || async { (!has_route(&env, vni!(10), "10.0.6.0/24", "fc00:2::6").await).then_some(()) },
    )
    .await;
    poll("the orphaned interface and its claim removed", || async {
        let claim = env.args.metalnet_dir.join("netfns/claims").join(&gone_uid);
        (env.dp.get_interface(&gone_uid).await.ok()?.is_none() && !claim.exists()).then_some(())
    })
    .await;
    done_tx.send(true).unwrap();
    assert_eq!(
        watcher.await.unwrap(),
        0,
        "the remote route stayed in dpservice throughout"
    );
    assert_eq!(
        env.dp.get_interface(&nic).await.unwrap().unwrap(),
        before,
        "interface not re-created"
    );
    assert_eq!(env.dp.get_vip(&nic).await.unwrap().unwrap(), vip_before);
    assert_eq!(env.dp.get_load_balancer(&lb).await.unwrap().unwrap(), lb_before);
    assert_eq!(env.dp.list_prefixes(&nic, false).await.unwrap(), prefixes_before);
    assert!(has_route(&env, vni!(10), "10.0.5.0/24", "fc00:2::5").await);
    assert!(has_route(&env, vni!(10), "0.0.0.0/0", ROUTER).await);
}

#[tokio::test]
async fn metalnet_waits_for_dpservice_and_metalbond_and_survives_a_stale_claim() {
    let mut env = Env::prepare().await;
    env.stop_dpservice().await;
    // A metalbond server that is not there yet.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let late_addr = free.local_addr().unwrap();
    drop(free);
    env.args.metalbond_peers = vec![late_addr.to_string()];
    // A claim left over from another setup.
    let claims = env.args.metalnet_dir.join("netfns/claims");
    std::fs::create_dir_all(&claims).unwrap();
    std::fs::write(claims.join("stale-uid"), "no-such-tap").unwrap();

    env.start_metalnet();
    env.network("net", 10, &[]).await;
    env.interface("nic", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"]}))
        .await;
    // metalnet is up and retrying; dpservice comes later.
    env.restart_dpservice().await;
    env.ready_interface("nic", |_| true).await;

    let late = MetalBond::new(mb_config()).unwrap();
    late.start_server(late_addr).await.unwrap();
    let observer = MetalBond::new(mb_config()).unwrap();
    observer.add_peer(&late_addr.to_string()).unwrap();
    observer.subscribe(vni!(10)).unwrap();
    poll("announced once metalbond is up", || async {
        observer
            .routes_in(vni!(10))
            .iter()
            .any(|r| r.destination.to_string() == "10.0.0.1/32")
            .then_some(())
    })
    .await;
    assert!(
        claims.join("stale-uid").exists(),
        "the stale claim is reported, not deleted"
    );
    late.shutdown();
    observer.shutdown();
}

#[tokio::test]
async fn metalbond_server_restart_is_recovered() {
    let (mut env, nic, _) = populated().await;
    env.other.subscribe(vni!(10)).unwrap();
    poll("our interface announced", || async {
        env.other
            .routes_in(vni!(10))
            .iter()
            .any(|r| r.destination.to_string() == "10.0.0.1/32")
            .then_some(())
    })
    .await;
    env.mb_server.shutdown();
    // Both clients lose the server: what they received is gone, including in dpservice.
    poll("received route removed while the server is down", || async {
        (!has_route(&env, vni!(10), "10.0.5.0/24", "fc00:2::5").await).then_some(())
    })
    .await;
    let server = MetalBond::new(mb_config()).unwrap();
    poll("server listening again on the same port", || async {
        server.start_server(env.mb_addr).await.ok()
    })
    .await;
    env.mb_server = server;
    // Both clients redial and replay subscriptions and announcements.
    poll("remote route programmed again", || async {
        has_route(&env, vni!(10), "10.0.5.0/24", "fc00:2::5")
            .await
            .then_some(())
    })
    .await;
    let underlay = env.dp.get_interface(&nic).await.unwrap().unwrap().underlay;
    poll("our announcement reaches the other client again", || async {
        env.other
            .routes_in(vni!(10))
            .iter()
            .any(|r| {
                r.destination.to_string() == "10.0.0.1/32"
                    && r.next_hop.target() == std::net::IpAddr::V6(underlay)
            })
            .then_some(())
    })
    .await;
}
