//! UPDATEs no correct peer sends (VNI out of range, host bits, inverted NAT range, family mismatch) close the
//! sending session with a warning that names the peer and the fault; nothing is stored or forwarded.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use ironnet_metalbond::{Error, NextHop, Route, RouteFault};
use ironnet_vni::{Vni, vni};

/// Log lines written by the tracing subscriber of one test.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// The next hop fc00:1::d0 (STANDARD) as an UPDATE's field 4.
const HOP: &str = "22 12 0a 10 fc 00 00 01 00 00 00 00 00 00 00 00 00 00 00 d0";

/// (frame, the fault text the log must name), each the upstream example UPDATE with one field changed.
fn faulty_frames() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (
            hex(&format!("01 00 1e 05 1a 08 12 04 0a 00 00 01 18 20 {HOP}")),
            "VNI 0 is outside 1..=16777215",
        ),
        (
            hex(&format!(
                "01 00 23 05 10 80 80 80 08 1a 08 12 04 0a 00 00 01 18 20 {HOP}"
            )),
            "VNI 16777216 is outside 1..=16777215",
        ),
        (
            hex(&format!("01 00 20 05 10 64 1a 08 12 04 0a 00 00 01 18 18 {HOP}")),
            "destination 10.0.0.1/24 has host bits set (the network is 10.0.0.0/24)",
        ),
        (
            hex("01 00 28 05 10 64 1a 08 12 04 0a 00 00 01 18 20 \
                 22 1a 0a 10 fc 00 00 01 00 00 00 00 00 00 00 00 00 00 00 d0 18 01 20 80 10 28 80 08"),
            "NAT port range 2048..1024 is inverted",
        ),
        (
            hex(&format!(
                "01 00 22 05 10 64 1a 0a 08 01 12 04 0a 00 00 01 18 20 {HOP}"
            )),
            "destination tagged IPv6 carries a 4-byte address",
        ),
        (
            hex(&format!("01 00 20 05 10 64 1a 08 12 04 0a 00 00 01 18 40 {HOP}")),
            "prefix length 64 exceeds 32 for an IPv4 destination",
        ),
    ]
}

/// The process-wide log of warnings. A thread-scoped subscriber would miss events whose call sites other tests of
/// this binary already registered without one, so the capture is global; each test finds its lines by peer address.
fn warnings() -> &'static CapturedLog {
    static LOG: OnceLock<CapturedLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLog::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .init();
        log
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_faulty_update_closes_the_session_and_stores_nothing() {
    let log = warnings();

    let (srv, addr) = server_with_keepalive(50).await;
    // A subscriber to every VNI a faulty route names: anything that got through would reach it.
    let watcher = client(&[&addr]).await;
    // VNI 0 and 16777216 (named by two of the frames) cannot be subscribed to: they are not VNIs.
    watcher.subscribe(vni!(100)).unwrap();
    let mut events = watcher.route_events();
    eventually("the watcher's subscriptions are in place", || {
        established_peers(&srv)
            .iter()
            .any(|p| srv.peer_subscriptions(p) == Some(vec![vni!(100)]))
    })
    .await;

    for (frame, fault) in faulty_frames() {
        let mut raw = RawPeer::connect(&addr).await;
        raw.handshake_as_client(50).await;
        let peer = raw.local_addr().to_string();
        raw.send_raw(&frame).await;
        assert!(raw.closed_within(SOON).await, "{fault}: the session stayed open");
        eventually("the peer is forgotten", || srv.peer_state(&peer).is_none()).await;
        assert!(
            srv.route_table().is_empty(),
            "{fault}: stored {:?}",
            srv.route_table()
        );
        let text = log.text();
        let line = text
            .lines()
            .find(|l| l.contains(&peer))
            .unwrap_or_else(|| panic!("no log line names peer {peer}:\n{text}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains(&format!("refused UPDATE: {fault}")), "{line}");
    }
    // A correct UPDATE on the same server still flows, and it is the first thing the watcher ever received.
    let mut raw = RawPeer::connect(&addr).await;
    raw.handshake_as_client(50).await;
    raw.send_raw(&hex(&format!(
        "01 00 20 05 10 64 1a 08 12 04 0a 00 00 01 18 20 {HOP}"
    )))
    .await;
    let good = Route::new(
        vni!(100),
        "10.0.0.1/32".parse().unwrap(),
        NextHop::standard("fc00:1::d0".parse().unwrap()),
    );
    let first = tokio::time::timeout(SOON, events.recv()).await.unwrap().unwrap();
    assert_eq!(first, ironnet_metalbond::RouteEvent::Added(good));
    srv.shutdown();
    watcher.shutdown();
}

#[tokio::test]
async fn announcing_an_invalid_route_is_refused_before_anything_is_sent() {
    let mb = ironnet_metalbond::MetalBond::new(fast_config()).unwrap();
    let hop = NextHop::standard("fc00::1".parse().unwrap());
    // A route in VNI 0 or beyond 24 bits cannot be built: the type refuses the number with the fault's wording.
    assert_eq!(
        Vni::new(0).unwrap_err().to_string(),
        RouteFault::VniOutOfRange(0).to_string()
    );
    assert_eq!(
        Vni::new(16_777_216).unwrap_err().to_string(),
        "VNI 16777216 is outside 1..=16777215"
    );
    let cases = [(
        Route::new(vni!(7), "10.0.0.1/8".parse().unwrap(), hop),
        RouteFault::HostBitsSet {
            prefix: "10.0.0.1/8".parse().unwrap(),
            network: "10.0.0.0/8".parse().unwrap(),
        },
    )];
    for (route, want) in cases {
        match mb.announce(route) {
            Err(Error::InvalidRoute { fault, .. }) => assert_eq!(fault, want),
            other => panic!("{route}: {other:?}"),
        }
        assert!(!mb.is_announced(&route));
    }
    let err = mb
        .announce(Route::new(vni!(7), "10.0.0.1/8".parse().unwrap(), hop))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid route VNI 7: 10.0.0.1/8 via fc00::1: destination 10.0.0.1/8 has host bits set (the network is 10.0.0.0/8)"
    );
    mb.shutdown();
}
