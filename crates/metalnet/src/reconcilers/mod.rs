//! The kube-rs reconcilers of the three metalnet kinds: thin shells that read dpservice's state, call the pure
//! decisions of this crate, make the calls that differ and write the status back.

pub mod loadbalancer;
pub mod network;
pub mod networkinterface;

pub(crate) use ironnet_runtime::finalizer::{ensure_finalizer, remove_finalizer};
use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::agent::Agent;
use crate::dp::DpError;

/// A failed reconcile; the controller retries it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    /// A dpservice call failed.
    #[error(transparent)]
    Dp(#[from] DpError),
    /// A metalbond call failed.
    #[error("metalbond: {0}")]
    Metalbond(#[from] ironnet_metalbond::Error),
    /// An interface claim could not be made.
    #[error(transparent)]
    Claim(#[from] crate::claims::ClaimError),
    /// The object has no UID or namespace.
    #[error("object without {0}")]
    MissingMetadata(&'static str),
    /// The Network's id is not a VNI (only an object that bypassed validation has one).
    #[error("network id: {0}")]
    NetworkId(#[from] ironnet_vni::VniError),
    /// Several independent steps failed.
    #[error("{}", .0.join("; "))]
    Steps(Vec<String>),
}

impl Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Api(e) if ironnet_runtime::is_conflict(e))
    }
}

/// Logs a failed reconcile and requeues it: quickly after a write conflict, after the runtime's retry delay
/// otherwise. A dpservice that looks restarted or gone wakes the supervisor.
pub(crate) fn error_policy<K>(obj: Arc<K>, err: &Error, agent: Arc<Agent>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&());
    let name = obj.meta().name.as_deref().unwrap_or("");
    if err.is_conflict() {
        tracing::debug!(%kind, name, error = %err, "reconcile conflicted; retrying");
        return Action::requeue(ironnet_runtime::reconcile::CONFLICT_RETRY);
    }
    if matches!(err, Error::Dp(e) if e.is_unavailable()) {
        agent.dp_suspect.notify_one();
    }
    tracing::warn!(%kind, name, error = %err, "reconcile failed");
    Action::requeue(ironnet_runtime::reconcile::RETRY_AFTER)
}

/// The UID and namespace of an object.
pub(crate) fn identity<K: Resource>(obj: &K) -> Result<(String, String), Error> {
    Ok((
        obj.meta().uid.clone().ok_or(Error::MissingMetadata("uid"))?,
        obj.meta()
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata("namespace"))?,
    ))
}

/// Writes `status` (a complete status object; absent fields as `null` so that they are cleared) if it differs
/// from `current`.
pub(crate) async fn write_status<K>(api: &Api<K>, obj: &K, current: Value, status: Value) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if same_status(&current, &status) {
        return Ok(());
    }
    match api
        .patch_status(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if ironnet_runtime::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether two status objects say the same: `null` and empty lists count as absent (the API types omit them when
/// serializing, while the status written spells them out to clear old values).
pub(crate) fn same_status(a: &Value, b: &Value) -> bool {
    fn present(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    present(a) == present(b)
}

/// The namespaced API of kind `K`.
pub(crate) fn api<K>(agent: &Agent, namespace: &str) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(agent.client.clone(), namespace)
}

/// Publishes a Warning Event about `obj` (best effort: an event that cannot be written is only logged).
pub(crate) async fn warn_event<K>(agent: &Agent, obj: &K, reason: &str, note: impl std::fmt::Display)
where
    K: Resource<DynamicType = ()>,
{
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: reason.into(),
        // Events hold at most 1 kB of note.
        note: Some(note.to_string().chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = agent.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::debug!(error = %e, reason, "event not published");
    }
}

/// A future resolving once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_null_and_empty_are_the_same_status() {
        assert!(same_status(&json!({}), &json!({"peerings": [], "natIP": null})));
        assert!(same_status(
            &json!({"state": "Ready"}),
            &json!({"state": "Ready", "prefixes": null})
        ));
        assert!(!same_status(
            &json!({"state": "Ready"}),
            &json!({"state": "Error"})
        ));
        assert!(!same_status(
            &json!({"prefixes": ["10.0.0.0/8"]}),
            &json!({"prefixes": null})
        ));
    }
}
