//! Prometheus metrics of a metalbond instance, computed from its tables at each scrape.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `metalbond_peers` | gauge | `state` | peers per session state (`CONNECTING`, `HELLO_SENT`, `HELLO_RECEIVED`, `ESTABLISHED`, `RETRY`, `CLOSED`) |
//! | `metalbond_routes` | gauge | `vni` | distinct routes (VNI, destination, next hop) learned from peers |
//! | `metalbond_announced_routes` | gauge | `vni` | routes this instance announces |
//! | `metalbond_subscriptions` | gauge | — | VNIs this instance subscribes to |
//! | `metalbond_updates_received_total` | counter | `action` (`add`, `remove`) | UPDATE messages accepted from peers |
//! | `metalbond_updates_sent_total` | counter | `action` | UPDATE messages queued to peers (announcements, reflection, replays) |
//! | `metalbond_protocol_faults_total` | counter | — | sessions closed because the peer sent a refused or undecodable message |

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::instance::MetalBond;
use crate::session::ConnectionState;

const STATES: [ConnectionState; 6] = [
    ConnectionState::Connecting,
    ConnectionState::HelloSent,
    ConnectionState::HelloReceived,
    ConnectionState::Established,
    ConnectionState::Retry,
    ConnectionState::Closed,
];

#[derive(Debug)]
struct MetalBondCollector(MetalBond);

/// One consistent reading of the instance, taken under one lock.
struct Snapshot {
    peers: BTreeMap<ConnectionState, i64>,
    routes: BTreeMap<u32, i64>,
    announced: BTreeMap<u32, i64>,
    subscriptions: i64,
    received: [u64; 2],
    sent: [u64; 2],
    faults: u64,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl MetalBondCollector {
    fn snapshot(&self) -> Snapshot {
        let engine = self.0.core().lock();
        let mut peers: BTreeMap<ConnectionState, i64> = STATES.iter().map(|s| (*s, 0)).collect();
        for p in engine.peers.values() {
            *peers.entry(p.state).or_default() += 1;
        }
        let mut routes = BTreeMap::new();
        for (route, _) in engine.received.routes() {
            *routes.entry(route.vni.get()).or_default() += 1;
        }
        let mut announced = BTreeMap::new();
        for (route, _) in engine.announced.routes() {
            *announced.entry(route.vni.get()).or_default() += 1;
        }
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            peers,
            routes,
            announced,
            subscriptions: count(engine.subscriptions.len()),
            received: [
                load(&engine.stats.received_add),
                load(&engine.stats.received_remove),
            ],
            sent: [load(&engine.stats.sent_add), load(&engine.stats.sent_remove)],
            faults: load(&engine.stats.protocol_faults),
        }
    }
}

impl Collector for MetalBondCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.snapshot();
        let mut family = encoder.encode_descriptor(
            "metalbond_peers",
            "Peers per session state",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in &s.peers {
            let labels = [("state", state.to_string())];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
        for (name, help, per_vni) in [
            (
                "metalbond_routes",
                "Distinct routes learned from peers per VNI",
                &s.routes,
            ),
            (
                "metalbond_announced_routes",
                "Routes this instance announces per VNI",
                &s.announced,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (vni, n) in per_vni {
                let labels = [("vni", vni.to_string())];
                ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        ConstGauge::new(s.subscriptions).encode(encoder.encode_descriptor(
            "metalbond_subscriptions",
            "VNIs this instance subscribes to",
            None,
            MetricType::Gauge,
        )?)?;
        for (name, help, values) in [
            (
                "metalbond_updates_received",
                "UPDATE messages accepted from peers",
                s.received,
            ),
            (
                "metalbond_updates_sent",
                "UPDATE messages queued to peers",
                s.sent,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (action, n) in ["add", "remove"].iter().zip(values) {
                let labels = [("action", *action)];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        ConstCounter::new(s.faults).encode(encoder.encode_descriptor(
            "metalbond_protocol_faults",
            "Sessions closed because the peer sent a refused or undecodable message",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

impl MetalBond {
    /// Adds this instance's metrics (see [`crate::metrics`]) to `registry`; they are read from the live tables at
    /// every scrape.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(MetalBondCollector(self.clone())));
    }
}
