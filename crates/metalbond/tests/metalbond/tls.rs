//! Mutual TLS between metalbond peers: peers holding certificates of one CA exchange routes; a peer with a
//! certificate of another CA, and a plain-TCP peer, are refused.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use ironnet_metalbond::cli::{ClientArgs, MetalbondCommand, ServerArgs, TlsArgs};
use ironnet_metalbond::{Config, ConnectionState, Message, MetalBond, NextHop, Route, TlsConfig};
use ironnet_vni::vni;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

/// A certificate authority that issues peer certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// (certificate PEM, key PEM) for a peer reachable at 127.0.0.1 (servers need the IP SAN; clients carry it too).
    fn issue(&self, name: &str) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::from([127, 0, 0, 1]))];
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// TLS credentials issued by this CA, trusting `trust`.
    fn credentials(&self, name: &str, trust: &Ca) -> TlsConfig {
        let (cert, key) = self.issue(name);
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes(), trust.pem.as_bytes()).unwrap()
    }
}

fn tls_config(tls: TlsConfig) -> Config {
    Config {
        tls: Some(tls),
        ..fast_config()
    }
}

async fn tls_server(tls: TlsConfig) -> (MetalBond, String) {
    let mb = MetalBond::new(tls_config(tls)).unwrap();
    let addr = mb.start_server("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (mb, addr.to_string())
}

fn route() -> Route {
    Route::new(
        vni!(100),
        "10.0.0.1/32".parse().unwrap(),
        NextHop::standard("fc00:1::d0".parse().unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_peers_exchange_routes() {
    let ca = Ca::new("metalbond CA");
    let (srv, addr) = tls_server(ca.credentials("server", &ca)).await;
    let announcer = MetalBond::new(tls_config(ca.credentials("hv-1", &ca))).unwrap();
    announcer.announce(route()).unwrap();
    announcer.add_peer(&addr).unwrap();
    let subscriber = MetalBond::new(tls_config(ca.credentials("hv-2", &ca))).unwrap();
    subscriber.subscribe(vni!(100)).unwrap();
    subscriber.add_peer(&addr).unwrap();
    announcer.wait_established(SOON).await.unwrap();
    subscriber.wait_established(SOON).await.unwrap();
    eventually("the route crosses the TLS sessions", || {
        subscriber.has_route(&route())
    })
    .await;
    announcer.withdraw(route()).unwrap();
    eventually("the withdrawal too", || !subscriber.has_route(&route())).await;
    for mb in [srv, announcer, subscriber] {
        mb.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_is_refused_both_ways() {
    let ca = Ca::new("metalbond CA");
    let other = Ca::new("someone else's CA");
    let (srv, addr) = tls_server(ca.credentials("server", &ca)).await;
    let good = MetalBond::new(tls_config(ca.credentials("hv-1", &ca))).unwrap();
    good.add_peer(&addr).unwrap();
    good.wait_established(SOON).await.unwrap();

    // A client whose certificate another CA signed (it trusts our CA, so only the server can refuse it).
    let intruder = MetalBond::new(tls_config(other.credentials("intruder", &ca))).unwrap();
    intruder.subscribe(vni!(100)).unwrap();
    intruder.add_peer(&addr).unwrap();
    // A server whose certificate another CA signed: our client must refuse it.
    let (rogue, rogue_addr) = tls_server(other.credentials("rogue", &other)).await;
    let victim = MetalBond::new(tls_config(ca.credentials("hv-2", &ca))).unwrap();
    victim.add_peer(&rogue_addr).unwrap();

    let refused = Duration::from_secs(2);
    consistently("no session with a foreign certificate", refused, || {
        intruder.peer_state(&addr) != Some(ConnectionState::Established)
            && victim.peer_state(&rogue_addr) != Some(ConnectionState::Established)
            && established_peers(&srv).len() == 1
            && established_peers(&rogue).is_empty()
    })
    .await;
    // The intruder's subscription never reached the server, and the good client is unaffected.
    assert!(
        established_peers(&srv)
            .iter()
            .all(|p| srv.peer_subscriptions(p) == Some(vec![]))
    );
    assert_eq!(good.peer_state(&addr), Some(ConnectionState::Established));
    for mb in [srv, good, intruder, rogue, victim] {
        mb.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_and_tls_do_not_mix() {
    let ca = Ca::new("metalbond CA");
    let (srv, addr) = tls_server(ca.credentials("server", &ca)).await;
    // A plain-TCP peer's HELLO is not a TLS ClientHello: the server closes the connection.
    let mut raw = RawPeer::connect(&addr).await;
    raw.send(&Message::Hello {
        keepalive_interval: 2,
        is_server: false,
    })
    .await;
    assert!(
        raw.closed_within(SOON).await,
        "the TLS server kept a plain-TCP peer"
    );
    // A plain metalbond client never gets a session either.
    let plain = MetalBond::new(fast_config()).unwrap();
    plain.add_peer(&addr).unwrap();
    // The other way round: a TLS client's ClientHello is not a metalbond frame to a plain server.
    let (plain_srv, plain_addr) = server().await;
    let tls_client = MetalBond::new(tls_config(ca.credentials("hv-1", &ca))).unwrap();
    tls_client.add_peer(&plain_addr).unwrap();
    consistently("no mixed session", Duration::from_secs(2), || {
        plain.peer_state(&addr) != Some(ConnectionState::Established)
            && tls_client.peer_state(&plain_addr) != Some(ConnectionState::Established)
            && established_peers(&srv).is_empty()
            && established_peers(&plain_srv).is_empty()
    })
    .await;
    for mb in [srv, plain, plain_srv, tls_client] {
        mb.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_flags_enable_mutual_tls() {
    let ca = Ca::new("metalbond CA");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca_path = write("ca.pem", &ca.pem);
    let (cert, key) = ca.issue("server");
    let server_tls = TlsArgs {
        tls_cert: Some(write("server.pem", &cert)),
        tls_key: Some(write("server-key.pem", &key)),
        tls_ca: Some(ca_path.clone()),
    };
    // The server command on a port we pick: bind one, release it, hand it to the command.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ironnet_metalbond::cli::run(
        MetalbondCommand::Server(ServerArgs {
            listen: addr.parse().unwrap(),
            http: None,
            keepalive: 0,
            tls: server_tls,
            telemetry: Default::default(),
            verbose: false,
        }),
        fast_config(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    // A library client with credentials of the same CA reaches it.
    let client = MetalBond::new(tls_config(ca.credentials("hv-1", &ca))).unwrap();
    client.add_peer(&addr).unwrap();
    client.wait_established(SOON).await.unwrap();
    // The client command without credentials does not (its establish timeout is 10 wire seconds).
    let plain = ironnet_metalbond::cli::run(
        MetalbondCommand::Client(ClientArgs {
            servers: vec![addr.clone()],
            subscribe: vec![vni!(100)],
            announce: vec![],
            keepalive: 0,
            http: None,
            tls: TlsArgs::default(),
            telemetry: Default::default(),
            verbose: false,
        }),
        fast_config(),
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(plain, Err(ironnet_metalbond::Error::EstablishTimeout(_))),
        "{plain:?}"
    );
    // A missing key file is named in the error.
    let broken = ironnet_metalbond::cli::run(
        MetalbondCommand::Client(ClientArgs {
            servers: vec![addr.clone()],
            subscribe: vec![],
            announce: vec![],
            keepalive: 0,
            http: None,
            tls: TlsArgs {
                tls_cert: Some(write("c.pem", &cert)),
                tls_key: Some(dir.path().join("missing-key.pem")),
                tls_ca: Some(ca_path),
            },
            telemetry: Default::default(),
            verbose: false,
        }),
        fast_config(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        broken.to_string().starts_with(&format!(
            "private key {}: ",
            dir.path().join("missing-key.pem").display()
        )),
        "{broken}"
    );
    client.shutdown();
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
