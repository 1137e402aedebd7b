//! The one reconcile error type and the retry policy every ironnet controller uses.
//!
//! A failed reconcile is retried by kube-rs after the delay [`error_policy`] returns: quickly and quietly after
//! an optimistic-concurrency conflict (someone wrote the object first, which is normal among cooperating
//! controllers), after [`RETRY_AFTER`] with a warning for everything else.

use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::runtime::controller::Action;

/// Delay before retrying a failed reconcile.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Delay before retrying after an optimistic-concurrency conflict: the next read sees the winner's write, so
/// waiting longer gains nothing.
pub const CONFLICT_RETRY: Duration = Duration::from_millis(50);

/// A reconcile failed; the controller retries it (see [`error_policy`]).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API request failed.
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    /// The object is missing required metadata.
    #[error("object without {0}")]
    MissingMetadata(&'static str),
    /// The object cannot be mapped (unsupported type, malformed field).
    #[error("cannot map object: {0}")]
    Mapping(String),
}

impl ReconcileError {
    /// Whether this is an optimistic-concurrency conflict (HTTP 409 from the API server).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ReconcileError::Api(e) if is_conflict(e))
    }

    /// The allocation pool this error says is exhausted, if any ([`exhausted_pool`]).
    pub fn exhausted_pool(&self) -> Option<Pool> {
        match self {
            ReconcileError::Api(e) => exhausted_pool(e),
            _ => None,
        }
    }
}

/// Whether `e` is an optimistic-concurrency conflict (the object changed under us; a retry reads it again).
///
/// An exhausted allocation pool is also answered with 409 (as upstream ironcore-net does) but is not a
/// conflict: retrying at once cannot succeed, so it is retried like any other failure ([`exhausted_pool`]).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409) && exhausted_pool(e).is_none()
}

/// An allocation pool of the apinet API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The public IP addresses (`--public-prefix`), of one family.
    PublicIps,
    /// The network IDs (VNIs, `--min-vni`..`--max-vni`).
    NetworkIds,
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pool::PublicIps => "public IP address pool",
            Pool::NetworkIds => "network ID (VNI) pool",
        })
    }
}

/// The pool `e` says is exhausted, if it is the apinet API server refusing an allocation for lack of free
/// values: a 409 whose message ends in upstream ironcore-net's allocator message ("all IP addresses are
/// already allocated", "all IDs are allocated").
pub fn exhausted_pool(e: &kube::Error) -> Option<Pool> {
    let kube::Error::Api(s) = e else {
        return None;
    };
    if s.code != 409 {
        return None;
    }
    if s.message.ends_with("all IP addresses are already allocated") {
        Some(Pool::PublicIps)
    } else if s.message.ends_with("all IDs are allocated") {
        Some(Pool::NetworkIds)
    } else {
        None
    }
}

/// Whether `e` is a NotFound (HTTP 404).
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The delay before retrying a reconcile that failed with `err`: [`CONFLICT_RETRY`] for a conflict,
/// [`RETRY_AFTER`] otherwise.
pub fn retry_delay(err: &ReconcileError) -> Duration {
    if err.is_conflict() {
        CONFLICT_RETRY
    } else {
        RETRY_AFTER
    }
}

/// The error policy of every ironnet controller: logs the failure with the object's kind and name (conflicts at
/// debug level, everything else as a warning) and requeues after [`retry_delay`].
///
/// Usable directly as the `error_policy` argument of `kube::runtime::Controller::run` for any context type.
pub fn error_policy<K, C>(obj: Arc<K>, err: &ReconcileError, _ctx: Arc<C>) -> Action
where
    K: Resource,
    K::DynamicType: Default,
{
    let dynamic_type = K::DynamicType::default();
    let kind = K::kind(&dynamic_type);
    let name = obj.meta().name.as_deref().unwrap_or("");
    let namespace = obj.meta().namespace.as_deref().unwrap_or("");
    if err.is_conflict() {
        tracing::debug!(%kind, namespace, name, error = %err, "reconcile conflicted; retrying");
    } else {
        tracing::warn!(%kind, namespace, name, error = %err, "reconcile failed");
    }
    Action::requeue(retry_delay(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status {
                code,
                ..Default::default()
            }
            .boxed(),
        )
    }

    #[test]
    fn conflicts_are_retried_quickly_and_everything_else_after_the_retry_delay() {
        assert_eq!(retry_delay(&ReconcileError::Api(api_error(409))), CONFLICT_RETRY);
        assert_eq!(retry_delay(&ReconcileError::Api(api_error(500))), RETRY_AFTER);
        assert_eq!(retry_delay(&ReconcileError::MissingMetadata("uid")), RETRY_AFTER);
        assert!(is_not_found(&api_error(404)));
        assert!(!is_not_found(&api_error(409)));
        assert!(!is_conflict(&api_error(404)));
    }

    fn conflict(message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status {
                code: 409,
                reason: "Conflict".into(),
                message: message.into(),
                ..Default::default()
            }
            .boxed(),
        )
    }

    #[test]
    fn an_exhausted_pool_is_named_and_retried_slowly_not_as_a_conflict() {
        let ips = conflict(
            "Operation cannot be fulfilled on ips.core.apinet.ironcore.dev \"u\": all IP addresses are already allocated",
        );
        let ids = conflict(
            "Operation cannot be fulfilled on networks.core.apinet.ironcore.dev \"u\": all IDs are allocated",
        );
        let modified = conflict(
            "Operation cannot be fulfilled on ips.core.apinet.ironcore.dev \"u\": the object has been modified; please apply your changes to the latest version and try again",
        );
        assert_eq!(exhausted_pool(&ips), Some(Pool::PublicIps));
        assert_eq!(exhausted_pool(&ids), Some(Pool::NetworkIds));
        assert_eq!(exhausted_pool(&modified), None);
        assert_eq!(exhausted_pool(&api_error(500)), None);
        assert!(!is_conflict(&ips) && !is_conflict(&ids) && is_conflict(&modified));
        assert_eq!(retry_delay(&ReconcileError::Api(ips)), RETRY_AFTER);
        assert_eq!(Pool::PublicIps.to_string(), "public IP address pool");
    }
}
