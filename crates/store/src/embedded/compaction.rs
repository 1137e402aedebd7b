//! Automatic compaction policy: how much history the embedded backend retains.
//!
//! The policy is a pure function of the commit timeline and an injected `now`, so tests drive
//! it with synthetic instants instead of sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::Revision;

/// How much history to keep. History is discarded once it is older than `max_age` **or** more
/// than `max_revisions` revisions behind the current one, whichever discards more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep at most this many revisions of history (`None`: unbounded by count).
    pub max_revisions: Option<u64>,
    /// Keep history for at most this long (`None`: unbounded by age). Default: 5 minutes, like
    /// kube-apiserver's `--etcd-compaction-interval`.
    pub max_age: Option<Duration>,
    /// How often the policy is evaluated.
    pub check_interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_revisions: Some(1_000_000),
            max_age: Some(Duration::from_secs(300)),
            check_interval: Duration::from_secs(10),
        }
    }
}

/// When revisions were committed, for age-based retention (one sample per commit batch).
#[derive(Debug, Default)]
pub struct CommitTimeline {
    samples: VecDeque<(Instant, Revision)>,
}

impl CommitTimeline {
    /// Records that every revision ≤ `revision` was committed by `at`.
    pub fn record(&mut self, at: Instant, revision: Revision) {
        self.samples.push_back((at, revision));
    }

    /// The compaction revision the policy asks for, if it is above `compact`.
    ///
    /// Samples older than the age cut-off are consumed: their revision is a lower bound for
    /// every later answer.
    pub fn target(
        &mut self,
        policy: &RetentionPolicy,
        now: Instant,
        current: Revision,
        compact: Revision,
    ) -> Option<Revision> {
        let mut target = 0;
        if let Some(max) = policy.max_revisions {
            target = current.saturating_sub(max);
        }
        if let Some(max_age) = policy.max_age
            && let Some(cutoff) = now.checked_sub(max_age)
        {
            while let Some(&(at, rev)) = self.samples.front() {
                if at > cutoff {
                    break;
                }
                self.samples.pop_front();
                target = target.max(rev);
            }
            // Keep the last consumed sample's effect: re-record it as the oldest entry.
            if target > 0 && self.samples.front().is_none_or(|&(_, r)| r > target) {
                self.samples.push_front((cutoff, target));
            }
        }
        let target = target.min(current);
        (target > compact).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_bound() {
        let policy = RetentionPolicy {
            max_revisions: Some(10),
            max_age: None,
            check_interval: Duration::ZERO,
        };
        let mut t = CommitTimeline::default();
        let now = Instant::now();
        assert_eq!(t.target(&policy, now, 5, 0), None);
        assert_eq!(t.target(&policy, now, 25, 0), Some(15));
        assert_eq!(t.target(&policy, now, 25, 15), None);
    }

    #[test]
    fn age_bound_uses_injected_time() {
        let policy = RetentionPolicy {
            max_revisions: None,
            max_age: Some(Duration::from_secs(60)),
            check_interval: Duration::ZERO,
        };
        let mut t = CommitTimeline::default();
        let t0 = Instant::now();
        t.record(t0, 10);
        t.record(t0 + Duration::from_secs(30), 20);
        t.record(t0 + Duration::from_secs(90), 30);
        assert_eq!(t.target(&policy, t0 + Duration::from_secs(59), 30, 0), None);
        assert_eq!(t.target(&policy, t0 + Duration::from_secs(60), 30, 0), Some(10));
        assert_eq!(t.target(&policy, t0 + Duration::from_secs(100), 30, 10), Some(20));
        // Once consumed, the bound persists.
        assert_eq!(t.target(&policy, t0 + Duration::from_secs(101), 30, 0), Some(20));
        assert_eq!(t.target(&policy, t0 + Duration::from_secs(200), 30, 20), Some(30));
    }

    #[test]
    fn stricter_bound_wins() {
        let policy = RetentionPolicy {
            max_revisions: Some(100),
            max_age: Some(Duration::from_secs(60)),
            check_interval: Duration::ZERO,
        };
        let mut t = CommitTimeline::default();
        let t0 = Instant::now();
        t.record(t0, 500);
        assert_eq!(
            t.target(&policy, t0 + Duration::from_secs(61), 1000, 0),
            Some(900)
        );
        let mut t = CommitTimeline::default();
        t.record(t0, 950);
        assert_eq!(
            t.target(&policy, t0 + Duration::from_secs(61), 1000, 0),
            Some(950)
        );
    }
}
