//! Leader election over `coordination.k8s.io/v1` Leases with client-go's `LeaseLock` algorithm:
//! GET the Lease, decide, then PUT it with its `resourceVersion` (compare-and-swap); a 409 means another
//! candidate won the race.
//!
//! Expiry is judged on the local clock from the moment this candidate first *observed* the current record
//! (as client-go does), so clock skew between candidates does not matter. Time is injected through [`Clock`].

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

pub use ironnet_apimachinery::clock::{Clock, SystemClock};

/// The leader-relevant fields of a Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `holderIdentity`.
    pub holder: Option<String>,
    /// `leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// `acquireTime`.
    pub acquire_time: Option<Timestamp>,
    /// `renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `leaseTransitions`.
    pub transitions: i32,
}

impl LeaseRecord {
    /// Reads the record from a Lease spec.
    pub fn from_spec(spec: &LeaseSpec) -> Self {
        LeaseRecord {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// Writes the record into a Lease spec (other fields untouched).
    pub fn apply_to(&self, spec: &mut LeaseSpec) {
        spec.holder_identity = self.holder.clone();
        spec.lease_duration_seconds = Some(self.lease_duration_seconds);
        spec.acquire_time = self.acquire_time.map(MicroTime);
        spec.renew_time = self.renew_time.map(MicroTime);
        spec.lease_transitions = Some(self.transitions);
    }
}

/// The outcome of one election round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Write this record (acquire or renew).
    Take(LeaseRecord),
    /// Someone else holds an unexpired lease.
    HeldByOther {
        /// The holder.
        holder: String,
    },
}

/// Decides whether `identity` may take the lease.
///
/// `current` is the stored record (`None`: no Lease yet) and `observed_at` the local time at which this exact
/// record was first seen. A lease held by someone else is respected until `observed_at + its duration`.
pub fn decide(
    identity: &str,
    lease_duration: Duration,
    now: Timestamp,
    current: Option<&LeaseRecord>,
    observed_at: Timestamp,
) -> LeaseDecision {
    let duration_secs = i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let mut next = LeaseRecord {
        holder: Some(identity.to_owned()),
        lease_duration_seconds: duration_secs,
        acquire_time: Some(now),
        renew_time: Some(now),
        transitions: 0,
    };
    let Some(cur) = current else {
        return LeaseDecision::Take(next);
    };
    match cur.holder.as_deref() {
        Some(h) if h == identity => {
            next.acquire_time = cur.acquire_time.or(Some(now));
            next.transitions = cur.transitions;
        }
        Some(h) => {
            let held = SignedDuration::from_secs(i64::from(cur.lease_duration_seconds.max(0)));
            if observed_at.checked_add(held).is_ok_and(|expiry| expiry > now) {
                return LeaseDecision::HeldByOther { holder: h.to_owned() };
            }
            next.transitions = cur.transitions.saturating_add(1);
        }
        None => next.transitions = cur.transitions.saturating_add(1),
    }
    LeaseDecision::Take(next)
}

/// Leader-election settings.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (unique per process).
    pub identity: String,
    /// How long a lease is valid without renewal (client-go default 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up (default 10 s).
    pub renew_deadline: Duration,
    /// Time between attempts (default 2 s).
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Settings with client-go's default timings.
    ///
    /// Errors (as `LeaderError::Config`) on an empty namespace, name or identity.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Result<Self, LeaderError> {
        let cfg = LeaderElectionConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        if cfg.namespace.is_empty() || cfg.name.is_empty() || cfg.identity.is_empty() {
            return Err(LeaderError::Config(
                "namespace, name and identity must be non-empty".into(),
            ));
        }
        Ok(cfg)
    }
}

/// Leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Invalid configuration.
    #[error("invalid leader election config: {0}")]
    Config(String),
    /// The API server returned an error other than a lost race.
    #[error("lease request failed: {0}")]
    Api(#[from] kube::Error),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One candidate in a Lease-based election.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    clock: Arc<dyn Clock>,
    observed: Option<(LeaseRecord, Timestamp)>,
}

impl LeaderElector {
    /// A candidate using `client` and `clock`.
    pub fn new(client: kube::Client, config: LeaderElectionConfig, clock: Arc<dyn Clock>) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        LeaderElector {
            api,
            config,
            clock,
            observed: None,
        }
    }

    /// One round: acquire or renew the lease. `Ok(true)` means this candidate holds it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = self.clock.now();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let LeaseDecision::Take(record) =
                decide(&self.config.identity, self.config.lease_duration, now, None, now)
            else {
                unreachable!("an absent lease is always taken")
            };
            let mut spec = LeaseSpec::default();
            record.apply_to(&mut spec);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observed = Some((record, now));
                    Ok(true)
                }
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let current = LeaseRecord::from_spec(lease.spec.as_ref().unwrap_or(&LeaseSpec::default()));
        let observed_at = match &self.observed {
            Some((rec, at)) if rec == &current => *at,
            _ => now,
        };
        self.observed = Some((current.clone(), observed_at));
        match decide(
            &self.config.identity,
            self.config.lease_duration,
            now,
            Some(&current),
            observed_at,
        ) {
            LeaseDecision::HeldByOther { .. } => Ok(false),
            LeaseDecision::Take(record) => {
                record.apply_to(lease.spec.get_or_insert_with(Default::default));
                match self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => {
                        self.observed = Some((record, now));
                        Ok(true)
                    }
                    Err(e) if is_conflict(&e) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Campaigns until elected, then renews until leadership is lost or `shutdown` becomes true.
    ///
    /// `leading` is set to true while this candidate leads. Returns when leadership is lost (the caller must
    /// stop its controllers) or on shutdown.
    pub async fn run(mut self, leading: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let retry = self.config.retry_period;
        let mut last_renew: Option<Timestamp> = None;
        // A candidate reports 0 (backup) until it wins, so the series exists before the first election.
        crate::metrics::set_leader(&self.config.name, false);
        loop {
            if *shutdown.borrow() {
                leading.send_replace(false);
                crate::metrics::set_leader(&self.config.name, false);
                return;
            }
            let ok = match self.try_acquire_or_renew().await {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election round failed");
                    false
                }
            };
            let now = self.clock.now();
            if ok {
                last_renew = Some(now);
                leading.send_replace(true);
                crate::metrics::set_leader(&self.config.name, true);
            } else if let Some(last) = last_renew {
                let deadline =
                    SignedDuration::try_from(self.config.renew_deadline).unwrap_or(SignedDuration::MAX);
                if last.checked_add(deadline).is_ok_and(|d| d <= now) {
                    tracing::warn!(identity = %self.config.identity, "leadership lost");
                    leading.send_replace(false);
                    crate::metrics::set_leader(&self.config.name, false);
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn held_by(holder: &str, at: i64) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.into()),
            lease_duration_seconds: 15,
            acquire_time: Some(t(at)),
            renew_time: Some(t(at)),
            transitions: 3,
        }
    }

    #[test]
    fn absent_lease_is_taken() {
        let LeaseDecision::Take(r) = decide("me", D, t(0), None, t(0)) else {
            panic!()
        };
        assert_eq!(r.holder.as_deref(), Some("me"));
        assert_eq!(r.transitions, 0);
        assert_eq!(r.lease_duration_seconds, 15);
    }

    #[test]
    fn foreign_lease_is_respected_until_expiry_measured_from_observation() {
        let cur = held_by("other", -1000); // a skewed renewTime does not matter
        assert_eq!(
            decide("me", D, t(14), Some(&cur), t(0)),
            LeaseDecision::HeldByOther {
                holder: "other".into()
            }
        );
        let LeaseDecision::Take(r) = decide("me", D, t(15), Some(&cur), t(0)) else {
            panic!()
        };
        assert_eq!(r.transitions, 4);
        assert_eq!(r.acquire_time, Some(t(15)));
    }

    #[test]
    fn own_lease_is_renewed_keeping_acquire_time() {
        let cur = held_by("me", 0);
        let LeaseDecision::Take(r) = decide("me", D, t(5), Some(&cur), t(0)) else {
            panic!()
        };
        assert_eq!(
            (r.acquire_time, r.renew_time, r.transitions),
            (Some(t(0)), Some(t(5)), 3)
        );
    }

    #[test]
    fn released_lease_is_taken_immediately() {
        let mut cur = held_by("x", 0);
        cur.holder = None;
        assert!(matches!(
            decide("me", D, t(1), Some(&cur), t(1)),
            LeaseDecision::Take(_)
        ));
    }

    #[test]
    fn records_round_trip_through_the_lease_spec() {
        let rec = held_by("me", 7);
        let mut spec = LeaseSpec::default();
        rec.apply_to(&mut spec);
        assert_eq!(LeaseRecord::from_spec(&spec), rec);
    }

    #[test]
    fn config_validates() {
        assert!(LeaderElectionConfig::new("", "l", "me").is_err());
        assert!(LeaderElectionConfig::new("ns", "l", "me").is_ok());
    }
}
