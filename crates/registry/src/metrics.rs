//! Allocation-pool usage, read from the [`ClaimIndex`] at each scrape (allocating costs nothing extra).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `ironnet_allocation_pool_in_use` | gauge | `pool` | values taken: VNIs with a `NetworkID`, addresses with an `IPAddress` |
//! | `ironnet_allocation_pool_free` | gauge | `pool` | values still free (size − in use), to alarm before exhaustion |
//! | `ironnet_allocation_pool_size` | gauge | `pool` | values the pool holds |
//!
//! `pool` is `vni` for the VNI range (`--min-vni`..=`--max-vni`) and the prefix itself (`192.0.2.0/24`,
//! `2001:db8::/64`) for each `--public-prefix`. Sizes beyond 2^53 (large IPv6 prefixes) are shown rounded, as any
//! Prometheus sample is a float.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::index::ClaimIndex;

/// The usage of one pool at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// `vni` or the public prefix.
    pub pool: String,
    /// Values taken.
    pub in_use: u128,
    /// Values the pool holds.
    pub size: u128,
}

#[derive(Debug)]
struct PoolCollector(Arc<ClaimIndex>);

/// Which number of a pool's usage a family shows.
type PoolValue = fn(&PoolUsage) -> u128;

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let usage = self.0.pool_usage();
        let families: [(&str, &str, PoolValue); 3] = [
            (
                "ironnet_allocation_pool_in_use",
                "Values taken in the allocation pool (VNIs, public IP addresses)",
                |u| u.in_use,
            ),
            (
                "ironnet_allocation_pool_free",
                "Values still free in the allocation pool",
                |u| u.size.saturating_sub(u.in_use),
            ),
            (
                "ironnet_allocation_pool_size",
                "Values the allocation pool holds",
                |u| u.size,
            ),
        ];
        for (name, help, value) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for u in &usage {
                let labels = [("pool", u.pool.as_str())];
                ConstGauge::new(value(u) as f64).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Adds the pool usage of `index` (see the module docs) to `registry`; it is read at every scrape.
pub fn register(index: &Arc<ClaimIndex>, registry: &mut Registry) {
    registry.register_collector(Box::new(PoolCollector(Arc::clone(index))));
}
