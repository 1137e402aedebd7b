//! The dataplane's Prometheus metrics and readiness checks, served by `ironnet dpservice` through
//! `ironnet-telemetry` (`--metrics-bind-address`, `--health-probe-bind-address`).
//!
//! Nothing is counted for the exporter on the packet path: every scrape asks the worker for one
//! [`MetricsSnapshot`] (a command run between two batches) built from the counters and tables the
//! dataplane keeps anyway. Names follow dpservice-exporter (`cli/dpservice-exporter/metrics/
//! types.go` upstream) where it has the metric; the others use its `dps_` prefix. Two deviations
//! keep the page clean for `promtool check metrics`: the exporter's `dpdk_ethdev_*_total` are
//! gauges there and counters here (same sample names), and its `dps_firewall_rules_count` and
//! `dps_nat_used_ports_count` drop the `_count` suffix, which Prometheus reserves for histograms
//! and summaries.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `dpdk_ethdev_packets_total` | counter | `name`, `stat` (`rx_good_packets`, `tx_good_packets`) | frames received on / sent to the port |
//! | `dpdk_ethdev_bytes_total` | counter | `name`, `stat` (`rx_good_bytes`, `tx_good_bytes`) | their bytes |
//! | `dps_port_dropped_packets_total` | counter | `name` | frames received on the port that the pipeline dropped |
//! | `dps_dropped_packets_total` | counter | `reason` | dropped frames by reason (every reason, from 0) |
//! | `dps_flows` | gauge | `kind` | tracked flows by kind |
//! | `dps_flows_created_total` | counter | — | flows created |
//! | `dps_flows_removed_total` | counter | `cause` (`aged`, `flushed`) | flows removed |
//! | `dps_firewall_verdicts_total` | counter | `verdict` (`accept`, `drop`) | firewall verdicts on new flows |
//! | `dps_firewall_rules` | gauge | `interface_id` | firewall rules per interface |
//! | `dps_nat_used_ports` | gauge | `interface_id`, `nat_ip` | NAT ports in use per interface |
//! | `dps_nat_port_range_size` | gauge | `interface_id`, `nat_ip` | size of the interface's NAT port range |
//! | `dps_loadbalancer_targets` | gauge | `loadbalancer_id` | targets of each load balancer |
//! | `dps_hash_table_saturation` | gauge | `table`, `stat` (`entries`, `capacity`) | fill of the bounded tables |

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ironnet_dataplane::stats::MetricsSnapshot;
use ironnet_telemetry::Telemetry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::worker::CommandSender;

/// How long a scrape waits for the worker's snapshot. The worker answers within one batch; only a
/// stuck worker takes longer, and then the scrape returns without dataplane metrics.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// Registers the dataplane collector and the readiness checks `dataplane-worker` (the worker that
/// owns every port runs) and `dataplane-initialized` (a client has called Initialize, as
/// CheckInitialized reports) with `telemetry`.
pub fn register(telemetry: &Telemetry, worker: CommandSender, initialized: Arc<AtomicBool>) {
    let running = worker.clone();
    telemetry.register(|registry| {
        registry.register_collector(Box::new(DataplaneCollector { worker }));
    });
    telemetry.add_readiness_check("dataplane-worker", move || {
        if running.is_running() {
            Ok(())
        } else {
            Err("the dataplane worker has stopped".into())
        }
    });
    telemetry.add_readiness_check("dataplane-initialized", move || {
        if initialized.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err("no client has called Initialize yet".into())
        }
    });
}

struct DataplaneCollector {
    worker: CommandSender,
}

impl fmt::Debug for DataplaneCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataplaneCollector")
    }
}

fn gauge(n: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Collector for DataplaneCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let snapshot = match self
            .worker
            .call_blocking(|s| s.dataplane.metrics(), SNAPSHOT_TIMEOUT)
        {
            Ok(s) => s,
            Err(e) => {
                // The rest of the page (and /readyz, which names the stopped worker) stays useful.
                tracing::warn!(error = %e, "dataplane metrics unavailable");
                return Ok(());
            }
        };
        encode_snapshot(&snapshot, encoder)
    }
}

/// A `dpdk_ethdev_*` family: name, help, and its two `stat` series with how each is read.
type EthdevFamily = (
    &'static str,
    &'static str,
    [(&'static str, fn(&ironnet_dataplane::PortStats) -> u64); 2],
);

/// Writes every family of `s` (see the module's table).
pub fn encode_snapshot(s: &MetricsSnapshot, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
    let ethdev: [EthdevFamily; 2] = [
        (
            "dpdk_ethdev_packets",
            "Frames received on and sent to each dataplane port",
            [
                ("rx_good_packets", |p| p.rx_packets),
                ("tx_good_packets", |p| p.tx_packets),
            ],
        ),
        (
            "dpdk_ethdev_bytes",
            "Bytes received on and sent to each dataplane port",
            [
                ("rx_good_bytes", |p| p.rx_bytes),
                ("tx_good_bytes", |p| p.tx_bytes),
            ],
        ),
    ];
    for (name, help, stats) in ethdev {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for port in &s.ports {
            for (stat, read) in stats {
                let labels = [("name", port.name.as_str()), ("stat", stat)];
                ConstCounter::new(read(&port.stats)).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    let mut family = encoder.encode_descriptor(
        "dps_port_dropped_packets",
        "Frames received on each port that the pipeline dropped",
        None,
        MetricType::Counter,
    )?;
    for port in &s.ports {
        let labels = [("name", port.name.as_str())];
        ConstCounter::new(port.stats.dropped).encode(family.encode_family(&labels)?)?;
    }
    let mut family = encoder.encode_descriptor(
        "dps_dropped_packets",
        "Frames the pipeline dropped, by reason",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in &s.drops {
        let labels = [("reason", reason.name())];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    let mut family =
        encoder.encode_descriptor("dps_flows", "Tracked flows by kind", None, MetricType::Gauge)?;
    for (kind, n) in &s.flows {
        let labels = [("kind", kind.name())];
        gauge(*n).encode(family.encode_family(&labels)?)?;
    }
    ConstCounter::new(s.flows_created).encode(encoder.encode_descriptor(
        "dps_flows_created",
        "Flows created",
        None,
        MetricType::Counter,
    )?)?;
    let mut family = encoder.encode_descriptor(
        "dps_flows_removed",
        "Flows removed: aged (idle past their timeout) or flushed (their configuration went away)",
        None,
        MetricType::Counter,
    )?;
    for (cause, n) in [("aged", s.flows_aged), ("flushed", s.flows_flushed)] {
        ConstCounter::new(n).encode(family.encode_family(&[("cause", cause)])?)?;
    }
    let mut family = encoder.encode_descriptor(
        "dps_firewall_verdicts",
        "Firewall verdicts on new flows (a dropped flow's packets are dropped while the firewall is enforced)",
        None,
        MetricType::Counter,
    )?;
    for (verdict, n) in [("accept", s.firewall_accepted), ("drop", s.firewall_denied)] {
        ConstCounter::new(n).encode(family.encode_family(&[("verdict", verdict)])?)?;
    }
    let mut family = encoder.encode_descriptor(
        "dps_firewall_rules",
        "Count of firewall rules on interface",
        None,
        MetricType::Gauge,
    )?;
    for (id, n) in &s.firewall_rules {
        gauge(*n).encode(family.encode_family(&[("interface_id", id.as_str())])?)?;
    }
    for (name, help, used) in [
        ("dps_nat_used_ports", "Count of used NAT ports on interface", true),
        (
            "dps_nat_port_range_size",
            "Size of the interface's NAT port range",
            false,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for nat in &s.nat {
            let ip = nat.nat_ip.to_string();
            let labels = [
                ("interface_id", nat.interface_id.as_str()),
                ("nat_ip", ip.as_str()),
            ];
            gauge(if used { nat.used } else { nat.range }).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "dps_loadbalancer_targets",
        "Targets of each load balancer",
        None,
        MetricType::Gauge,
    )?;
    for (id, n) in &s.load_balancer_targets {
        gauge(*n).encode(family.encode_family(&[("loadbalancer_id", id.as_str())])?)?;
    }
    let mut family = encoder.encode_descriptor(
        "dps_hash_table_saturation",
        "Dpservice hash table saturation",
        None,
        MetricType::Gauge,
    )?;
    for t in &s.tables {
        for (stat, n) in [("entries", t.entries), ("capacity", t.capacity)] {
            gauge(n).encode(family.encode_family(&[("table", t.table), ("stat", stat)])?)?;
        }
    }
    Ok(())
}
