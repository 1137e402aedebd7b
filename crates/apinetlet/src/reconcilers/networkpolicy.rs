//! ironcore NetworkPolicy → apinet NetworkPolicy over [`crate::networkpolicy`].
//!
//! The NetworkPolicyRule's content is resolved and applied by the controller-manager's NetworkPolicy reconciler
//! (`ironnet_controllers::reconcilers::network_policy`), which follows interface and load-balancer changes;
//! apinetlet translates the policy and, once the rule exists, puts its origin metadata on it (field manager
//! `networkpolicies.networking.ironcore.dev`, as upstream) so the rule names its ironcore policy like upstream's
//! does (see docs/compatibility.md).

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_api::networking::{Network, NetworkPolicy};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

use super::{
    Ctx, ReconcileError, Stop, apinet_network_name, by_origin, ensure_finalizer, finalize, is_conflict,
    is_not_found, source_of, stopped, to_value,
};
use crate::meta::{APINET_API_VERSION, POLICY_RULE_FIELD_MANAGER, Source, derived_metadata, finalizers};
use crate::networkpolicy::desired_network_policy;
use crate::origin;
use ironnet_runtime::events::{Occurrence, reason};

async fn reconcile(np: Arc<NetworkPolicy>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if super::ignored(ctx.watch_filter.as_deref(), np.as_ref()) {
        return Ok(Action::await_change());
    }
    let source = source_of(np.as_ref())?;
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.ironcore.clone(), &source.namespace);
    let policies: Api<apinet::NetworkPolicy> = ctx.apinet_api();
    if np.metadata.deletion_timestamp.is_some() {
        return finalize(&api, &np, finalizers::NETWORK_POLICY, &policies).await;
    }
    if ensure_finalizer(&api, &np, finalizers::NETWORK_POLICY).await? {
        return Ok(Action::await_change());
    }
    let Some(network) = apinet_network_name(&ctx, &source.namespace, &np.spec.network_ref.name).await? else {
        return Ok(Action::await_change());
    };
    let spec = to_value(&np.spec);
    let body = desired_network_policy(&ctx.namespace, &source, &spec, &network)
        .map_err(|e| ReconcileError::Mapping(e.to_string()))?;
    super::apply_changed::<apinet::NetworkPolicy>(&ctx, &source.uid, &body).await?;
    if let Some(targets) = label_rule(&ctx, &source).await? {
        // The rule follows interfaces as they come and go; the Event marks each change of its reach.
        let note = match targets {
            1 => "Applied to 1 network interface".to_owned(),
            n => format!("Applied to {n} network interfaces"),
        };
        ctx.events
            .record_change(
                np.as_ref(),
                Occurrence::normal(reason::POLICY_APPLIED, "Apply", note),
            )
            .await;
    }
    Ok(Action::await_change())
}

/// The number of distinct network interfaces a NetworkPolicyRule (JSON) targets (an interface with two IPs
/// is one target per IP in the rule).
pub(crate) fn target_interfaces(rule: &serde_json::Value) -> usize {
    let targets = rule.get("targets").and_then(serde_json::Value::as_array);
    let mut names: Vec<String> = targets
        .into_iter()
        .flatten()
        .map(|t| {
            t.pointer("/targetRef/uid")
                .or_else(|| t.pointer("/targetRef/name"))
                .or_else(|| t.get("ip"))
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect();
    names.sort();
    names.dedup();
    names.len()
}

/// Puts the origin metadata on the policy's NetworkPolicyRule if it exists and lacks it (the rule itself is
/// created by the controller-manager; applying only metadata here never creates an empty rule). Returns the
/// number of interfaces the rule targets, if the rule exists.
async fn label_rule(ctx: &Ctx, source: &Source) -> Result<Option<usize>, ReconcileError> {
    // From the cache: a rule it does not show yet, or shows with stale labels (the patch below then conflicts),
    // comes back with the rule's next watch event.
    let cached = ctx
        .apinet_informers
        .get::<apinet::NetworkPolicyRule>()
        .store()
        .get(Some(&ctx.namespace), &source.uid);
    let Some(rule) = cached else {
        return Ok(None);
    };
    let targets = Some(target_interfaces(&to_value(rule.as_ref())));
    let o = origin::NETWORK_POLICY;
    if o.data_of(rule.labels(), rule.annotations()) == Some(source.origin_data()) {
        return Ok(targets);
    }
    let mut metadata = derived_metadata(&ctx.namespace, o, source);
    // Guarded by the observed version: a rule deleted and recreated meanwhile is labelled on its next event.
    metadata["resourceVersion"] = json!(rule.resource_version());
    let body = json!({ "apiVersion": APINET_API_VERSION, "kind": "NetworkPolicyRule", "metadata": metadata });
    let rules: Api<apinet::NetworkPolicyRule> = ctx.apinet_api();
    match rules
        .patch(
            &source.uid,
            &PatchParams::apply(POLICY_RULE_FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(targets),
        Err(e) if is_conflict(&e) || is_not_found(&e) => Ok(targets),
        Err(e) => Err(e.into()),
    }
}

fn policies_of(store: &Store<NetworkPolicy>, net: &Network) -> Vec<ObjectRef<NetworkPolicy>> {
    store
        .state()
        .iter()
        .filter(|p| p.namespace() == net.namespace() && p.spec.network_ref.name == net.name_any())
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Runs the NetworkPolicy controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let wc = watcher::Config::default();
    let ctrl = Controller::new(Api::<NetworkPolicy>::all(ctx.ironcore.clone()), wc.clone())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency));
    let store = ctrl.store();
    let rule_store = ctrl.store();
    ctrl.watches_stream(super::network_uid_changes(&ctx), move |n| policies_of(&store, &n))
        .watches_stream(
            super::apinet_events::<apinet::NetworkPolicy>(&ctx),
            by_origin::<apinet::NetworkPolicy, NetworkPolicy>(origin::NETWORK_POLICY),
        )
        // A rule is named by the policy's UID: map it back through the cache until it carries the origin.
        .watches_stream(
            super::apinet_events::<apinet::NetworkPolicyRule>(&ctx),
            move |rule| {
                let name = rule.name_any();
                rule_store
                    .state()
                    .iter()
                    .filter(|p| p.uid().as_deref() == Some(name.as_str()))
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("apinetlet-networkpolicy", reconcile),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_counted_per_interface() {
        let rule = json!({"targets": [
            {"ip": "10.0.0.1", "targetRef": {"name": "a", "uid": "ua"}},
            {"ip": "fd00::1", "targetRef": {"name": "a", "uid": "ua"}},
            {"ip": "10.0.0.2", "targetRef": {"name": "b", "uid": "ub"}},
        ]});
        assert_eq!(target_interfaces(&rule), 2);
        assert_eq!(target_interfaces(&json!({})), 0);
    }
}
