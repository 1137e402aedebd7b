//! Real TCP sessions on 127.0.0.1: upstream's peer_test.go scenarios and the HA / bug-fix cases.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use ironnet_metalbond::{Action, ConnectionState, Message, MetalBond, NextHop, Route, RouteEvent};
use ironnet_vni::{Vni, vni};

fn std_route(vni: Vni, dest: &str, hop: &str) -> Route {
    Route::new(
        vni,
        dest.parse().unwrap(),
        NextHop::standard(hop.parse().unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_unsubscribe() {
    let (srv, addr) = server().await;
    let c = client(&[&addr]).await;
    assert_eq!(c.peer_state(&addr), Some(ConnectionState::Established));
    c.subscribe(vni!(200)).unwrap();
    assert_eq!(c.subscribed_vnis(), vec![vni!(200)]);
    assert_eq!(
        c.subscribe(vni!(200)).unwrap_err().to_string(),
        "already subscribed to VNI 200"
    );
    eventually("server sees the subscription", || {
        established_peers(&srv)
            .first()
            .and_then(|p| srv.peer_subscriptions(p))
            == Some(vec![vni!(200)])
    })
    .await;
    c.unsubscribe(vni!(200)).unwrap();
    assert!(c.subscribed_vnis().is_empty());
    assert_eq!(
        c.unsubscribe(vni!(200)).unwrap_err().to_string(),
        "already unsubscribed from VNI 200"
    );
    eventually("server drops the subscription", || {
        established_peers(&srv)
            .first()
            .and_then(|p| srv.peer_subscriptions(p))
            == Some(vec![])
    })
    .await;
    c.remove_peer(&addr).unwrap();
    assert_eq!(c.peer_state(&addr), None);
    eventually("server forgets the client", || srv.peers().is_empty()).await;
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_flow_to_subscribers_only_and_never_back() {
    let (srv, addr) = server().await;
    let a = client(&[&addr]).await;
    let b = client(&[&addr]).await;
    let other = client(&[&addr]).await;
    a.subscribe(vni!(100)).unwrap();
    b.subscribe(vni!(100)).unwrap();
    other.subscribe(vni!(101)).unwrap();
    let mut b_events = b.route_events();
    let r = std_route(vni!(100), "10.0.0.1/32", "fc00::a");
    let nat = Route::new(
        vni!(100),
        "192.0.2.1/32".parse().unwrap(),
        NextHop::nat("fc00::a".parse().unwrap(), 1024, 2048).unwrap(),
    );
    a.announce(r).unwrap();
    a.announce(nat).unwrap();
    assert_eq!(a.announce(r).unwrap_err().to_string(), "nexthop already exists");
    // Either order: b's SUBSCRIBE and a's UPDATEs travel on different connections, so b may get them live or
    // in the subscription replay.
    let mut got = vec![b_events.recv().await.unwrap(), b_events.recv().await.unwrap()];
    got.sort_by_key(|e| matches!(e, RouteEvent::Added(x) if *x == nat));
    assert_eq!(got, vec![RouteEvent::Added(r), RouteEvent::Added(nat)]);
    // b subscribing later still gets the full table; the announcer never gets its own routes back.
    consistently(
        "announcer and other VNI see nothing",
        Duration::from_millis(300),
        || {
            a.routes_in(vni!(100)).is_empty()
                && other.routes_in(vni!(100)).is_empty()
                && other.routes_in(vni!(101)).is_empty()
        },
    )
    .await;
    let late = client(&[&addr]).await;
    late.subscribe(vni!(100)).unwrap();
    eventually("late subscriber gets the table", || {
        late.routes_in(vni!(100)) == b.routes_in(vni!(100))
    })
    .await;
    a.withdraw(r).unwrap();
    assert_eq!(
        a.withdraw(r).unwrap_err().to_string(),
        "destination does not exist"
    );
    assert_eq!(b_events.recv().await, Some(RouteEvent::Removed(r)));
    eventually("late subscriber loses it", || !late.has_route(&r)).await;
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reset_reconnects_and_replays() {
    let (srv, addr) = server().await;
    let a = client(&[&addr]).await;
    let b = client(&[&addr]).await;
    b.subscribe(vni!(7)).unwrap();
    a.subscribe(vni!(7)).unwrap();
    let r = std_route(vni!(7), "10.7.0.1/32", "fc00::7");
    a.announce(r).unwrap();
    eventually("b learns the route", || b.has_route(&r)).await;
    let a_peer = |srv: &MetalBond| {
        srv.peers()
            .into_iter()
            .map(|(p, _)| p)
            .find(|p| srv.peer_received_routes(p).is_some_and(|v| v == vec![r]))
    };
    let old = a_peer(&srv).expect("server holds a's route");
    for _ in 0..3 {
        let _ = srv.reset_peer(&old);
    }
    eventually("client notices and goes to RETRY or reconnects", || {
        a.peer_state(&addr) != Some(ConnectionState::Established) || a_peer(&srv).is_some_and(|p| p != old)
    })
    .await;
    a.wait_established(SOON).await.unwrap();
    eventually(
        "server has the client back on a new address, route re-announced",
        || a_peer(&srv).is_some_and(|p| p != old && srv.peer_state(&p) == Some(ConnectionState::Established)),
    )
    .await;
    eventually("b has the route again", || b.has_route(&r)).await;
    // Remove instead of reset: the same expectation (upstream's "should reconnect").
    let current = a_peer(&srv).unwrap();
    srv.remove_peer(&current).unwrap();
    eventually("re-announced after removal", || {
        a_peer(&srv).is_some_and(|p| p != current)
    })
    .await;
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_times_out_a_silent_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // A server that completes the HELLO exchange but never echoes a KEEPALIVE.
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = RawPeer::from_stream(stream);
        let hello = peer.recv(SOON).await.unwrap();
        assert_eq!(
            hello,
            Message::Hello {
                keepalive_interval: 2,
                is_server: false
            }
        );
        peer.send(&Message::Hello {
            keepalive_interval: 2,
            is_server: true,
        })
        .await;
        // Swallow keepalives until the client gives up and closes.
        assert!(peer.closed_within(SOON).await);
    });
    let c = MetalBond::new(fast_config()).unwrap();
    c.add_peer(&addr).unwrap();
    c.wait_peer_state(&addr, ConnectionState::HelloReceived, SOON)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    c.wait_peer_state(&addr, ConnectionState::Retry, SOON)
        .await
        .unwrap();
    // Hold time is 2.5 × 2 units = 1 s.
    assert!(started.elapsed() >= UNIT * 4, "{:?}", started.elapsed());
    fake.await.unwrap();
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_times_out_a_silent_client() {
    let (srv, addr) = server().await;
    let mut raw = RawPeer::connect(&addr).await;
    raw.handshake_as_client(2).await;
    eventually("established", || established_peers(&srv).len() == 1).await;
    // No more KEEPALIVEs: the server must drop the session after the hold time.
    assert!(raw.closed_within(SOON).await);
    eventually("server forgot the peer", || srv.peers().is_empty()).await;
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_receive_only_their_vnis() {
    let (srv, addr) = server().await;
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let c = client(&[&addr]).await;
            // Upstream's test uses VNIs 0..9; VNI 0 is refused here, so 1..10.
            let vni = Vni::new(i % 10 + 1).unwrap();
            c.subscribe(vni).unwrap();
            let hop: IpAddr = format!("b198:5b10:3880:fd32:fb80:80dd:46f7:{i:x}")
                .parse()
                .unwrap();
            let r = Route::new(
                vni,
                format!("100.64.0.{i}/32").parse().unwrap(),
                NextHop::standard(hop).with_target_vni(vni),
            );
            c.announce(r).unwrap();
            (c, r)
        }));
    }
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    for (i, (c, _)) in clients.iter().enumerate() {
        let vni = Vni::new(i as u32 % 10 + 1).unwrap();
        let mut want: Vec<Route> = clients
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i && *j as u32 % 10 + 1 == vni.get())
            .map(|(_, (_, r))| *r)
            .collect();
        want.sort();
        eventually(&format!("client {i} has exactly its VNI's routes"), || {
            c.routes_in(vni) == want
                && (1..=10)
                    .map(|v| Vni::new(v).unwrap())
                    .filter(|v| *v != vni)
                    .all(|v| c.routes_in(v).is_empty())
        })
        .await;
    }
    // Every route is in the server's table, attributed to exactly one peer.
    let all: usize = srv
        .peers()
        .iter()
        .map(|(p, _)| srv.peer_received_routes(p).map_or(0, |v| v.len()))
        .sum();
    assert_eq!(all, 50);
    for (c, _) in &clients {
        c.shutdown();
    }
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_default_routers_do_not_install_each_other() {
    let (srv, addr) = server().await;
    let r1 = client(&[&addr]).await;
    let r2 = client(&[&addr]).await;
    let watcher = client(&[&addr]).await;
    for c in [&r1, &r2, &watcher] {
        c.subscribe(vni!(100)).unwrap();
    }
    let d1 = std_route(vni!(100), "0.0.0.0/0", "fd00::1");
    let d2 = std_route(vni!(100), "0.0.0.0/0", "fd00::2");
    r1.announce(d1).unwrap();
    r2.announce(d2).unwrap();
    eventually("a third client sees both defaults", || {
        watcher.routes_in(vni!(100)) == vec![d1, d2]
    })
    .await;
    consistently(
        "routers ignore each other's default",
        Duration::from_millis(500),
        || r1.routes_in(vni!(100)).is_empty() && r2.routes_in(vni!(100)).is_empty(),
    )
    .await;
    srv.shutdown();
}

/// A router that installed another router's default before announcing its own drops it when it announces:
/// what is installed must not depend on which of the two came first (the test above sends both at once, so
/// either order can happen there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_drops_a_received_default_when_it_announces_its_own() {
    let (srv, addr) = server().await;
    let r1 = client(&[&addr]).await;
    let r2 = client(&[&addr]).await;
    for c in [&r1, &r2] {
        c.subscribe(vni!(100)).unwrap();
    }
    let d1 = std_route(vni!(100), "0.0.0.0/0", "fd00::1");
    let d2 = std_route(vni!(100), "0.0.0.0/0", "fd00::2");
    r1.announce(d1).unwrap();
    eventually("r2 installs r1's default before announcing its own", || {
        r2.routes_in(vni!(100)) == vec![d1]
    })
    .await;
    r2.announce(d2).unwrap();
    eventually("r2 drops r1's default once it announces its own", || {
        r2.routes_in(vni!(100)).is_empty()
    })
    .await;
    consistently(
        "neither router installs the other's default",
        Duration::from_millis(300),
        || r1.routes_in(vni!(100)).is_empty() && r2.routes_in(vni!(100)).is_empty(),
    )
    .await;
    srv.shutdown();
}

/// Two hosts sharing a NAT IP (each with its own port range) and serving one load balancer IP each learn the
/// other's NAT and load-balancer-target routes for that destination, although they announce the destination
/// themselves: loop prevention is for standard routes only (upstream drops these too, so neighbour NAT and remote
/// load-balancer targets were never programmed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_learn_each_others_nat_and_lb_target_routes_for_a_shared_destination() {
    let (srv, addr) = server().await;
    let a = client(&[&addr]).await;
    let b = client(&[&addr]).await;
    for c in [&a, &b] {
        c.subscribe(vni!(7)).unwrap();
    }
    let nat = |hop: &str, from: u16, to: u16| {
        Route::new(
            vni!(7),
            "192.0.2.9/32".parse().unwrap(),
            NextHop::nat(hop.parse().unwrap(), from, to).unwrap(),
        )
    };
    let lb = |hop: &str| {
        Route::new(
            vni!(7),
            "192.0.2.10/32".parse().unwrap(),
            NextHop::load_balancer_target(hop.parse().unwrap()),
        )
    };
    let (nat_a, nat_b) = (nat("fc00:a::1", 1024, 2048), nat("fc00:b::1", 2048, 3072));
    let (lb_a, lb_b) = (lb("fc00:a::2"), lb("fc00:b::2"));
    for r in [nat_a, lb_a] {
        a.announce(r).unwrap();
    }
    for r in [nat_b, lb_b] {
        b.announce(r).unwrap();
    }
    eventually("a learns b's NAT range and LB target", || {
        a.has_route(&nat_b) && a.has_route(&lb_b)
    })
    .await;
    eventually("b learns a's NAT range and LB target", || {
        b.has_route(&nat_a) && b.has_route(&lb_a)
    })
    .await;
    assert!(
        !a.has_route(&nat_a) && !b.has_route(&nat_b),
        "own routes are not received back"
    );
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_route_survives_one_server_and_goes_with_the_other() {
    let (s1, a1) = server().await;
    let (s2, a2) = server().await;
    let announcer = client(&[&a1, &a2]).await;
    let receiver = client(&[&a1, &a2]).await;
    receiver.subscribe(vni!(300)).unwrap();
    let mut events = receiver.route_events();
    let r = std_route(vni!(300), "10.30.0.0/24", "fc00::30");
    announcer.announce(r).unwrap();
    assert_eq!(events.recv().await, Some(RouteEvent::Added(r)));
    // Both servers reflect it (the receiver holds it once per server); one event only.
    eventually("the receiver has it from both servers", || {
        [&a1, &a2]
            .iter()
            .all(|a| receiver.peer_received_routes(a) == Some(vec![r]))
    })
    .await;
    s1.shutdown();
    receiver
        .wait_peer_state(&a1, ConnectionState::Retry, SOON)
        .await
        .unwrap();
    consistently("route stays while s2 has it", Duration::from_millis(300), || {
        receiver.has_route(&r)
    })
    .await;
    assert!(
        events.try_recv().is_err(),
        "no event while one server still provides the route"
    );
    announcer.withdraw(r).unwrap();
    assert_eq!(
        tokio::time::timeout(SOON, events.recv()).await.unwrap(),
        Some(RouteEvent::Removed(r))
    );
    assert!(!receiver.has_route(&r));
    s2.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_drops_routes_with_events() {
    let (srv, addr) = server().await;
    let a = client(&[&addr]).await;
    let b = client(&[&addr]).await;
    b.subscribe(vni!(5)).unwrap();
    let r = std_route(vni!(5), "10.5.0.1/32", "fc00::5");
    a.announce(r).unwrap();
    let (snapshot, mut events) = loop {
        let (s, e) = b.route_events_with_snapshot();
        if !s.is_empty() {
            break (s, e);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(snapshot, vec![r]);
    b.unsubscribe(vni!(5)).unwrap();
    assert_eq!(events.recv().await, Some(RouteEvent::Removed(r)));
    // The announcer's route stays at the server; a new subscriber still gets it.
    b.subscribe(vni!(5)).unwrap();
    assert_eq!(events.recv().await, Some(RouteEvent::Added(r)));
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_subscribe_does_not_wedge_the_server() {
    let (srv, addr) = server_with_keepalive(50).await;
    let a = client(&[&addr]).await;
    let r = std_route(vni!(9), "10.9.0.1/32", "fc00::9");
    a.announce(r).unwrap();
    let mut raw = RawPeer::connect(&addr).await;
    raw.handshake_as_client(50).await;
    raw.send(&Message::Subscribe(vni!(9))).await;
    raw.send(&Message::Subscribe(vni!(9))).await;
    assert_eq!(raw.recv(SOON).await, Some(Message::Update(Action::Add, r)));
    // Not sent twice, and the server still serves everyone else.
    raw.send(&Message::Keepalive).await;
    assert_eq!(raw.recv(SOON).await, Some(Message::Keepalive));
    let b = client(&[&addr]).await;
    b.subscribe(vni!(9)).unwrap();
    eventually("another client subscribes fine", || b.has_route(&r)).await;
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_route_is_not_reflected_to_its_originator() {
    let (srv, addr) = server_with_keepalive(50).await;
    let mut raw = RawPeer::connect(&addr).await;
    raw.handshake_as_client(50).await;
    let nat = Route::new(
        vni!(4),
        "192.0.2.9/32".parse().unwrap(),
        NextHop::nat("fc00::4".parse().unwrap(), 0, 1024).unwrap(),
    );
    raw.send(&Message::Update(Action::Add, nat)).await;
    raw.send(&Message::Subscribe(vni!(4))).await;
    raw.send(&Message::Keepalive).await;
    // Only the echo: the NAT route (and any own route) is not reflected back.
    assert_eq!(raw.recv(SOON).await, Some(Message::Keepalive));
    assert_eq!(raw.recv(Duration::from_millis(200)).await, None);
    let b = client(&[&addr]).await;
    b.subscribe(vni!(4)).unwrap();
    eventually("others do get it", || b.has_route(&nat)).await;
    srv.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_reset() {
    let config = ironnet_metalbond::Config {
        keepalive_interval: 50,
        max_queue_bytes: 64 * 1024,
        ..fast_config()
    };
    let srv = MetalBond::new(config).unwrap();
    let addr = srv.start_server("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // A subscriber with a tiny receive window that never reads after subscribing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut raw = RawPeer::from_stream(socket.connect(addr).await.unwrap());
    raw.handshake_as_client(50).await;
    raw.send(&Message::Subscribe(vni!(1))).await;
    let announcer = client(&[&addr.to_string()]).await;
    eventually("the subscription is in place", || {
        established_peers(&srv)
            .iter()
            .any(|p| srv.peer_subscriptions(p) == Some(vec![vni!(1)]))
    })
    .await;
    let mut i = 0u32;
    // Announce until the server gives up on the subscriber (its socket buffers plus 64 KiB of queue are full).
    while srv.peers().len() == 2 {
        for _ in 0..5_000 {
            let dest =
                ipnet::IpNet::new(IpAddr::from(0x0a00_0000u32.wrapping_add(i).to_be_bytes()), 32).unwrap();
            announcer
                .announce(Route::new(
                    vni!(1),
                    dest,
                    NextHop::standard("fc00::1".parse().unwrap()),
                ))
                .unwrap();
            i += 1;
        }
        assert!(i < 2_000_000, "the slow subscriber was never reset");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(raw.closed_within(SOON).await);
    // The announcer's session is unaffected.
    assert_eq!(established_peers(&srv).len(), 1);
    assert_eq!(
        announcer.peer_state(&addr.to_string()),
        Some(ConnectionState::Established)
    );
    srv.shutdown();
}
