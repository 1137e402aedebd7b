//! NetworkInterface: create, IP update (re-created), VIP / NAT / prefixes / load balancer targets / firewall rules
//! added, changed and removed, delete. Each "changed" case is one upstream metalnet does not apply.

use std::collections::BTreeSet;

use ironnet_api::metalnet::ObjectState;
use ironnet_dpservice::proto::{self, protocol_filter::Filter};
use ironnet_metalbond::{NextHopType, Route};
use ironnet_vni::{Vni, vni};
use serde_json::json;

use crate::common::*;

/// The routes `other` receives in `vni` as `(destination, type)`.
fn received(env: &Env, vni: Vni) -> BTreeSet<(String, NextHopType)> {
    env.other
        .routes_in(vni)
        .iter()
        .map(|r: &Route| (r.destination.to_string(), r.next_hop.kind()))
        .collect()
}

async fn wait_received(
    env: &Env,
    vni: Vni,
    what: &str,
    f: impl Fn(&BTreeSet<(String, NextHopType)>) -> bool,
) {
    poll(what, || async { f(&received(env, vni)).then_some(()) }).await;
}

fn has(set: &BTreeSet<(String, NextHopType)>, dest: &str, kind: NextHopType) -> bool {
    set.contains(&(dest.to_owned(), kind))
}

#[tokio::test]
async fn interface_create_and_delete() {
    let env = Env::start().await;
    env.other.subscribe(vni!(10)).unwrap();
    env.network("net", 10, &[]).await;
    let elsewhere = env
        .interface_on(
            "elsewhere",
            "node-b",
            json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.7"]}),
        )
        .await;
    let nic = env
        .interface(
            "nic",
            json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"], "hostname": "vm1"}),
        )
        .await;
    let uid = Env::uid(&nic);
    let nic = env.ready_interface("nic", |_| true).await;
    let taps = tap_names(&env.dp_args);
    assert_eq!(nic.status.unwrap().tap_device.unwrap().name, taps[0]);
    let i = env
        .dp
        .get_interface(&uid)
        .await
        .unwrap()
        .expect("interface in dpservice");
    assert_eq!(
        (i.vni, i.ipv4, i.device.as_str(), i.hostname.as_str()),
        (
            Some(vni!(10)),
            Some("10.0.0.1".parse().unwrap()),
            "net_tap2",
            "vm1"
        )
    );
    // Another node's interface is not this node's business (and not even watched).
    assert_eq!(env.dp.get_interface(&Env::uid(&elsewhere)).await.unwrap(), None);
    assert!(env.interfaces().get("elsewhere").await.unwrap().status.is_none());
    let claim = env.args.metalnet_dir.join("netfns/claims").join(&uid);
    assert_eq!(std::fs::read_to_string(&claim).unwrap(), taps[0]);
    wait_received(&env, vni!(10), "interface IP announced", |r| {
        has(r, "10.0.0.1/32", NextHopType::Standard)
    })
    .await;
    assert!(
        env.other
            .routes_in(vni!(10))
            .iter()
            .any(|r| r.next_hop.target() == std::net::IpAddr::V6(i.underlay))
    );

    // A second interface gets the next device.
    env.interface(
        "nic2",
        json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.2"]}),
    )
    .await;
    let nic2 = env.ready_interface("nic2", |_| true).await;
    assert_eq!(nic2.status.unwrap().tap_device.unwrap().name, taps[1]);

    env.delete(&env.interfaces(), "nic").await;
    assert_eq!(env.dp.get_interface(&uid).await.unwrap(), None);
    assert!(!claim.exists(), "claim released");
    wait_received(&env, vni!(10), "interface IP withdrawn", |r| {
        !has(r, "10.0.0.1/32", NextHopType::Standard)
    })
    .await;
    // The freed device is handed out again.
    env.interface(
        "nic3",
        json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.3"]}),
    )
    .await;
    let nic3 = env.ready_interface("nic3", |_| true).await;
    assert_eq!(nic3.status.unwrap().tap_device.unwrap().name, taps[0]);
}

#[tokio::test]
async fn interface_waits_for_its_network_and_rejects_what_it_cannot_do() {
    let env = Env::start().await;
    env.interface(
        "nic",
        json!({"networkRef": {"name": "later"}, "ips": ["10.0.0.1"]}),
    )
    .await;
    let api = env.interfaces();
    poll("pending without network", || async {
        let n = api.get("nic").await.unwrap();
        (n.status?.state == Some(ObjectState::Pending)).then_some(())
    })
    .await;
    poll("a NetworkNotFound event", || async {
        let events: kube::Api<k8s_openapi::api::events::v1::Event> =
            kube::Api::namespaced(env.client.clone(), NS);
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("NetworkNotFound")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("nic")
            })
            .then_some(())
    })
    .await;
    env.network("later", 11, &[]).await;
    env.ready_interface("nic", |_| true).await;

    // IPv6 on a node without --enable-ipv6 is an error (no interface is created).
    drop(env);
    let mut env = Env::prepare().await;
    env.args.enable_ipv6 = false;
    let env = env.with_metalnet().await;
    env.network("net", 12, &[]).await;
    let nic = env
        .interface("v6", json!({"networkRef": {"name": "net"}, "ips": ["fd00::1"]}))
        .await;
    let api = env.interfaces();
    poll("error for IPv6", || async {
        let n = api.get("v6").await.unwrap();
        (n.status?.state == Some(ObjectState::Error)).then_some(())
    })
    .await;
    assert_eq!(env.dp.get_interface(&Env::uid(&nic)).await.unwrap(), None);
}

#[tokio::test]
async fn interface_ip_update_recreates_it() {
    let env = Env::start().await;
    env.other.subscribe(vni!(10)).unwrap();
    env.network("net", 10, &[]).await;
    env.network("other-net", 11, &[]).await;
    let nic = env
        .interface("nic", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"]}))
        .await;
    let uid = Env::uid(&nic);
    env.ready_interface("nic", |_| true).await;
    wait_received(&env, vni!(10), "10.0.0.1 announced", |r| {
        has(r, "10.0.0.1/32", NextHopType::Standard)
    })
    .await;

    env.patch_interface(
        "nic",
        json!({"ips": ["10.0.0.9", "fd00::9"], "ipFamilies": ["IPv4", "IPv6"]}),
    )
    .await;
    poll("interface re-created with the new IPs", || async {
        let i = env.dp.get_interface(&uid).await.ok()??;
        (i.ipv4 == Some("10.0.0.9".parse().unwrap()) && i.ipv6 == Some("fd00::9".parse().unwrap()))
            .then_some(())
    })
    .await;
    wait_received(&env, vni!(10), "announcements follow", |r| {
        has(r, "10.0.0.9/32", NextHopType::Standard)
            && has(r, "fd00::9/128", NextHopType::Standard)
            && !has(r, "10.0.0.1/32", NextHopType::Standard)
    })
    .await;
    env.ready_interface("nic", |_| true).await;
}

#[tokio::test]
async fn vip_nat_prefixes_and_lb_targets_are_added_changed_and_removed() {
    let env = Env::start().await;
    env.other.subscribe(vni!(10)).unwrap();
    env.other.subscribe(PUBLIC_VNI).unwrap();
    env.network("net", 10, &[]).await;
    let nic = env
        .interface(
            "nic",
            json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1", "fd00::1"]}),
        )
        .await;
    let uid = Env::uid(&nic);
    env.ready_interface("nic", |_| true).await;
    wait_received(&env, PUBLIC_VNI, "routable IPv6 in the public VNI", |r| {
        has(r, "fd00::1/128", NextHopType::Standard)
    })
    .await;

    // VIP: add, change, remove.
    env.patch_interface("nic", json!({"virtualIP": "203.0.113.1"}))
        .await;
    env.ready_interface("nic", |n| {
        n.status
            .as_ref()
            .unwrap()
            .virtual_ip
            .as_ref()
            .map(|v| v.to_string())
            == Some("203.0.113.1".into())
    })
    .await;
    assert_eq!(env.dp.get_vip(&uid).await.unwrap().unwrap().0, ip("203.0.113.1"));
    wait_received(&env, PUBLIC_VNI, "VIP announced", |r| {
        has(r, "203.0.113.1/32", NextHopType::Standard)
    })
    .await;
    env.patch_interface("nic", json!({"virtualIP": "203.0.113.2"}))
        .await;
    poll("VIP changed", || async {
        (env.dp.get_vip(&uid).await.ok()??.0 == ip("203.0.113.2")).then_some(())
    })
    .await;
    wait_received(&env, PUBLIC_VNI, "new VIP announced, old withdrawn", |r| {
        has(r, "203.0.113.2/32", NextHopType::Standard) && !has(r, "203.0.113.1/32", NextHopType::Standard)
    })
    .await;
    env.patch_interface("nic", json!({"virtualIP": null})).await;
    env.ready_interface("nic", |n| n.status.as_ref().unwrap().virtual_ip.is_none())
        .await;
    assert_eq!(env.dp.get_vip(&uid).await.unwrap(), None);
    wait_received(&env, PUBLIC_VNI, "VIP withdrawn", |r| {
        !has(r, "203.0.113.2/32", NextHopType::Standard)
    })
    .await;

    // NAT: add, change the range, remove.
    env.patch_interface(
        "nic",
        json!({"nat": {"ip": "198.51.100.1", "port": 1000, "endPort": 2000}}),
    )
    .await;
    let n = env
        .ready_interface("nic", |n| n.status.as_ref().unwrap().nat_ip.is_some())
        .await;
    assert_eq!(n.status.unwrap().nat_ip.unwrap().end_port, 2000);
    let nat = env.dp.get_nat(&uid).await.unwrap().unwrap();
    assert_eq!(
        (nat.ip, nat.min_port, nat.max_port),
        (ip("198.51.100.1"), 1000, 2000)
    );
    wait_received(&env, vni!(10), "NAT route in the network VNI", |r| {
        has(r, "198.51.100.1/32", NextHopType::Nat)
    })
    .await;
    wait_received(&env, PUBLIC_VNI, "NAT IP in the public VNI", |r| {
        has(r, "198.51.100.1/32", NextHopType::Standard)
    })
    .await;
    env.patch_interface(
        "nic",
        json!({"nat": {"ip": "198.51.100.1", "port": 2000, "endPort": 3000}}),
    )
    .await;
    poll("NAT range changed", || async {
        let n = env.dp.get_nat(&uid).await.ok()??;
        ((n.min_port, n.max_port) == (2000, 3000)).then_some(())
    })
    .await;
    poll("announced NAT range follows", || async {
        env.other
            .routes_in(vni!(10))
            .iter()
            .any(|r| r.next_hop.kind() == NextHopType::Nat && r.next_hop.nat_ports() == (2000, 3000))
            .then_some(())
    })
    .await;
    env.patch_interface("nic", json!({"nat": null})).await;
    env.ready_interface("nic", |n| n.status.as_ref().unwrap().nat_ip.is_none())
        .await;
    assert_eq!(env.dp.get_nat(&uid).await.unwrap(), None);

    // Prefixes (IPv4 and IPv6): add, change, remove.
    env.patch_interface("nic", json!({"prefixes": ["10.1.0.0/24", "fd00:1::/64"]}))
        .await;
    env.ready_interface("nic", |n| n.status.as_ref().unwrap().prefixes.len() == 2)
        .await;
    let listed: BTreeSet<String> = env
        .dp
        .list_prefixes(&uid, false)
        .await
        .unwrap()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(listed, ["10.1.0.0/24".to_string(), "fd00:1::/64".into()].into());
    wait_received(&env, vni!(10), "prefixes announced", |r| {
        has(r, "10.1.0.0/24", NextHopType::Standard) && has(r, "fd00:1::/64", NextHopType::Standard)
    })
    .await;
    env.patch_interface("nic", json!({"prefixes": ["10.2.0.0/24"]}))
        .await;
    env.ready_interface("nic", |n| {
        n.status
            .as_ref()
            .unwrap()
            .prefixes
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            == ["10.2.0.0/24"]
    })
    .await;
    let listed: Vec<String> = env
        .dp
        .list_prefixes(&uid, false)
        .await
        .unwrap()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(listed, ["10.2.0.0/24"]);
    wait_received(&env, vni!(10), "old prefixes withdrawn", |r| {
        has(r, "10.2.0.0/24", NextHopType::Standard) && !has(r, "10.1.0.0/24", NextHopType::Standard)
    })
    .await;
    env.patch_interface("nic", json!({"prefixes": null})).await;
    env.ready_interface("nic", |n| n.status.as_ref().unwrap().prefixes.is_empty())
        .await;
    assert!(env.dp.list_prefixes(&uid, false).await.unwrap().is_empty());

    // Load balancer targets: add, change, remove.
    env.patch_interface("nic", json!({"loadBalancerTargets": ["10.9.0.1/32"]}))
        .await;
    env.ready_interface("nic", |n| {
        n.status.as_ref().unwrap().load_balancer_targets.len() == 1
    })
    .await;
    wait_received(&env, vni!(10), "LB target announced", |r| {
        has(r, "10.9.0.1/32", NextHopType::LoadBalancerTarget)
    })
    .await;
    env.patch_interface("nic", json!({"loadBalancerTargets": ["10.9.0.2/32"]}))
        .await;
    poll("LB prefix changed", || async {
        let l = env.dp.list_prefixes(&uid, true).await.ok()?;
        (l.len() == 1 && l[0].0.to_string() == "10.9.0.2/32").then_some(())
    })
    .await;
    env.patch_interface("nic", json!({"loadBalancerTargets": null}))
        .await;
    env.ready_interface("nic", |n| {
        n.status.as_ref().unwrap().load_balancer_targets.is_empty()
    })
    .await;
    assert!(env.dp.list_prefixes(&uid, true).await.unwrap().is_empty());
    wait_received(&env, vni!(10), "LB targets withdrawn", |r| {
        !r.iter().any(|(_, k)| *k == NextHopType::LoadBalancerTarget)
    })
    .await;
}

fn dst_ports(r: &proto::FirewallRule) -> Option<(i32, i32)> {
    match r.protocol_filter.as_ref()?.filter.as_ref()? {
        Filter::Tcp(t) => Some((t.dst_port_lower, t.dst_port_upper)),
        _ => None,
    }
}

#[tokio::test]
async fn firewall_rules_added_changed_removed_and_deny_is_not_swallowed() {
    let env = Env::start().await;
    env.network("net", 10, &[]).await;
    let accept = |id: &str, port: i32| {
        json!({"firewallRuleID": id, "direction": "Ingress", "action": "Accept", "ipFamily": "IPv4",
               "sourcePrefix": "10.0.0.0/8",
               "protocolMatch": {"protocolType": "TCP", "portRange": {"dstPort": port, "endDstPort": port}}})
    };
    let deny = json!({"firewallRuleID": "deny-icmp", "direction": "Egress", "action": "Deny", "priority": 10,
                      "protocolMatch": {"protocolType": "ICMP", "icmp": {"icmpType": 8, "icmpCode": -1}}});
    let nic = env
        .interface("nic", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"], "firewallRules": [accept("web", 80), deny]}))
        .await;
    let uid = Env::uid(&nic);
    env.ready_interface("nic", |_| true).await;
    let rules = env.dp.list_firewall_rules(&uid).await.unwrap();
    let ids: BTreeSet<Vec<u8>> = rules.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, [b"web".to_vec(), b"deny-icmp".to_vec()].into());
    let d = rules.iter().find(|r| r.id == b"deny-icmp").unwrap();
    assert_eq!(
        d.action,
        proto::FirewallAction::Drop as i32,
        "the Deny rule is programmed, not swallowed"
    );
    assert_eq!(d.priority, 10);

    // A content change with the same ID is applied (upstream compares IDs only).
    env.patch_interface("nic", json!({"firewallRules": [accept("web", 443), deny]}))
        .await;
    poll("rule content updated", || async {
        let rules = env.dp.list_firewall_rules(&uid).await.ok()?;
        let web = rules.iter().find(|r| r.id == b"web")?;
        (dst_ports(web) == Some((443, 443)) && rules.len() == 2).then_some(())
    })
    .await;

    // Simultaneous add and delete.
    env.patch_interface("nic", json!({"firewallRules": [accept("ssh", 22)]}))
        .await;
    poll("web and deny replaced by ssh", || async {
        let rules = env.dp.list_firewall_rules(&uid).await.ok()?;
        (rules.len() == 1 && rules[0].id == b"ssh" && dst_ports(&rules[0]) == Some((22, 22))).then_some(())
    })
    .await;
    env.patch_interface("nic", json!({"firewallRules": null})).await;
    poll("all rules deleted", || async {
        env.dp
            .list_firewall_rules(&uid)
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await;
    env.ready_interface("nic", |_| true).await;
}

#[tokio::test]
async fn interface_vni_change_recreates_it() {
    let env = Env::start().await;
    env.other.subscribe(vni!(10)).unwrap();
    env.other.subscribe(vni!(11)).unwrap();
    env.network("net", 10, &[]).await;
    let nic = env
        .interface("nic", json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"]}))
        .await;
    let uid = Env::uid(&nic);
    env.ready_interface("nic", |_| true).await;
    assert_eq!(
        env.dp.get_interface(&uid).await.unwrap().unwrap().vni,
        Some(vni!(10))
    );
    wait_received(&env, vni!(10), "announced in 10", |r| {
        has(r, "10.0.0.1/32", NextHopType::Standard)
    })
    .await;

    // The Network is replaced by one with another VNI under the same name (networkRef and spec.id are
    // immutable, so this is how an interface's VNI changes).
    env.delete(&env.networks(), "net").await;
    let api = env.interfaces();
    poll("pending while the network is gone", || async {
        let n = api.get("nic").await.unwrap();
        (n.status?.state == Some(ObjectState::Pending)).then_some(())
    })
    .await;
    env.network("net", 11, &[]).await;
    poll("interface re-created in VNI 11", || async {
        (env.dp.get_interface(&uid).await.ok()??.vni == Some(vni!(11))).then_some(())
    })
    .await;
    wait_received(&env, vni!(11), "announced in 11", |r| {
        has(r, "10.0.0.1/32", NextHopType::Standard)
    })
    .await;
    wait_received(&env, vni!(10), "withdrawn from 10", |r| r.is_empty()).await;
    env.ready_interface("nic", |_| true).await;
}

#[tokio::test]
async fn dpservice_errors_surface_as_error_status_and_recover() {
    let env = Env::start().await;
    env.network("net", 10, &[]).await;
    env.interface(
        "a",
        json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.1"], "virtualIP": "203.0.113.9"}),
    )
    .await;
    env.ready_interface("a", |n| n.status.as_ref().unwrap().virtual_ip.is_some())
        .await;
    // The same VIP in the same VNI: dpservice refuses it with a status code (DNAT_EXISTS).
    let b = env
        .interface(
            "b",
            json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.2"], "virtualIP": "203.0.113.9"}),
        )
        .await;
    let api = env.interfaces();
    poll("error status for the refused VIP", || async {
        let n = api.get("b").await.unwrap();
        let s = n.status?;
        (s.state == Some(ObjectState::Error) && s.virtual_ip.is_none()).then_some(())
    })
    .await;
    assert_eq!(env.dp.get_vip(&Env::uid(&b)).await.unwrap(), None);
    env.patch_interface("b", json!({"virtualIP": "203.0.113.10"}))
        .await;
    env.ready_interface("b", |n| n.status.as_ref().unwrap().virtual_ip.is_some())
        .await;
}

#[tokio::test]
async fn an_interface_without_a_free_device_gets_one_when_another_is_deleted() {
    let env = Env::start().await;
    env.network("net", 10, &[]).await;
    let devices = env.dp_args.vfs.len();
    for i in 0..devices {
        env.interface(
            &format!("n{i}"),
            json!({"networkRef": {"name": "net"}, "ips": [format!("10.0.0.{}", i + 1)]}),
        )
        .await;
        env.ready_interface(&format!("n{i}"), |_| true).await;
    }
    env.interface(
        "extra",
        json!({"networkRef": {"name": "net"}, "ips": ["10.0.0.99"]}),
    )
    .await;
    let api = env.interfaces();
    poll("error while every device is claimed", || async {
        let n = api.get("extra").await.unwrap();
        (n.status?.state == Some(ObjectState::Error)).then_some(())
    })
    .await;
    env.delete(&env.interfaces(), "n1").await;
    let extra = env.ready_interface("extra", |_| true).await;
    assert_eq!(
        extra.status.unwrap().tap_device.unwrap().name,
        tap_names(&env.dp_args)[1]
    );
}

#[tokio::test]
async fn ipv6_only_interface() {
    let env = Env::start().await;
    env.other.subscribe(vni!(10)).unwrap();
    env.other.subscribe(PUBLIC_VNI).unwrap();
    env.network("net", 10, &[]).await;
    let nic = env
        .interface("v6", json!({"networkRef": {"name": "net"}, "ips": ["fd00::5"]}))
        .await;
    env.ready_interface("v6", |_| true).await;
    let i = env.dp.get_interface(&Env::uid(&nic)).await.unwrap().unwrap();
    assert_eq!((i.ipv4, i.ipv6), (None, Some("fd00::5".parse().unwrap())));
    wait_received(&env, vni!(10), "announced in the network VNI", |r| {
        has(r, "fd00::5/128", NextHopType::Standard)
    })
    .await;
    wait_received(&env, PUBLIC_VNI, "and as routable IPv6", |r| {
        has(r, "fd00::5/128", NextHopType::Standard)
    })
    .await;
}
