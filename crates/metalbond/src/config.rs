//! Configuration of a metalbond instance (timers, reconnect delays, write batching).

use std::time::Duration;

use crate::codec::MAX_FRAME;
use crate::session::SessionTimers;
use crate::tls::TlsConfig;

/// Invalid configuration values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `retry_min` is larger than `retry_max`.
    #[error("retry delay minimum {min:?} exceeds maximum {max:?}")]
    RetryRange {
        /// The minimum.
        min: Duration,
        /// The maximum.
        max: Duration,
    },
    /// `time_unit` is zero.
    #[error("time unit must be non-zero")]
    ZeroTimeUnit,
    /// `max_write_bytes` cannot hold one maximal frame.
    #[error("max_write_bytes {0} is smaller than one maximal frame ({MAX_FRAME} bytes)")]
    WriteBatchTooSmall(usize),
    /// `max_queue_bytes` is smaller than `max_write_bytes`.
    #[error("max_queue_bytes {0} is smaller than max_write_bytes")]
    QueueTooSmall(usize),
}

/// How an instance behaves on the wire. [`Config::default`] is upstream's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our keepalive interval in wire seconds; 0 means upstream's default of 5. The session uses the smaller of
    /// ours and the peer's; the hold time is 2.5 × that.
    pub keepalive_interval: u32,
    /// Real duration of one wire second (1 s; tests shorten it to run the same protocol with fast timers).
    pub time_unit: Duration,
    /// Shortest wait before redialling a server (upstream: 5 s).
    pub retry_min: Duration,
    /// Longest wait before redialling a server (upstream: 9 s); the delay is uniform in `[retry_min, retry_max]`.
    pub retry_max: Duration,
    /// Upper bound on the bytes handed to the socket in one write when several messages are queued. Messages are
    /// never split across writes. The default (1220 = one maximal frame) keeps every write within one 1280-MTU
    /// segment, as upstream's one-message-per-write does, so Go peers (which cannot reassemble a message split
    /// across reads) stay safe; Rust peers may use larger batches.
    pub max_write_bytes: usize,
    /// How long to wait for a TCP connect before counting it as failed.
    pub connect_timeout: Duration,
    /// Most bytes queued for one peer beyond what its socket accepted; a peer that falls further behind is reset
    /// (and gets a full replay when it reconnects). Default 64 MiB (≈ 1.3 M route updates).
    pub max_queue_bytes: usize,
    /// Mutual TLS for every session, accepted and dialled (`None`: plain TCP, as upstream). A TLS instance and a
    /// plain one cannot talk to each other.
    pub tls: Option<TlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            keepalive_interval: 5,
            time_unit: Duration::from_secs(1),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(9),
            max_write_bytes: MAX_FRAME,
            connect_timeout: Duration::from_secs(10),
            max_queue_bytes: 64 << 20,
            tls: None,
        }
    }
}

impl Config {
    /// Checks the invariants the instance relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retry_min > self.retry_max {
            return Err(ConfigError::RetryRange {
                min: self.retry_min,
                max: self.retry_max,
            });
        }
        if self.time_unit.is_zero() {
            return Err(ConfigError::ZeroTimeUnit);
        }
        if self.max_write_bytes < MAX_FRAME {
            return Err(ConfigError::WriteBatchTooSmall(self.max_write_bytes));
        }
        if self.max_queue_bytes < self.max_write_bytes {
            return Err(ConfigError::QueueTooSmall(self.max_queue_bytes));
        }
        Ok(())
    }

    /// The session timers this configuration implies.
    pub fn timers(&self) -> SessionTimers {
        SessionTimers::new(self.keepalive_interval).with_unit(self.time_unit)
    }

    /// A random reconnect delay in `[retry_min, retry_max]`.
    pub(crate) fn retry_delay(&self) -> Duration {
        use rand::Rng;
        let span = self.retry_max.saturating_sub(self.retry_min);
        let extra = rand::rng().random_range(0..=u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
        self.retry_min + Duration::from_millis(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_upstreamlike() {
        let c = Config::default();
        c.validate().unwrap();
        for _ in 0..100 {
            let d = c.retry_delay();
            assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(9));
        }
    }

    #[test]
    fn rejects_bad_values() {
        let c = Config {
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(1),
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::RetryRange { .. })));
        let c = Config {
            time_unit: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::ZeroTimeUnit));
        let c = Config {
            max_write_bytes: 100,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::WriteBatchTooSmall(100)));
        let c = Config {
            max_queue_bytes: 1000,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::QueueTooSmall(1000)));
    }
}
