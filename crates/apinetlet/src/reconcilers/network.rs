//! ironcore Network → apinet Network; provider ID, `state: Available` and peering status back over
//! [`crate::network`].

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_api::networking::Network;
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::{
    CONFLICT_RETRY, Ctx, RETRY_AFTER, ReconcileError, Stop, by_origin, ensure_finalizer, finalize,
    is_conflict, patch_status, source_of, stopped, to_value,
};
use crate::meta::finalizers;
use crate::network::{
    ClaimRef, NetworkView, PartitionPeerings, Peering, PeeringPrefix, apinet_peerings, desired_network,
    provider_id, status_patch, status_peerings,
};
use crate::origin;

/// The mapping view of an ironcore Network.
pub fn network_view(net: &Network) -> Result<NetworkView, ReconcileError> {
    Ok(NetworkView {
        source: source_of(net)?,
        peerings: net
            .spec
            .peerings
            .iter()
            .map(|p| Peering {
                name: p.name.clone(),
                namespace: p.network_ref.namespace.clone(),
                network: p.network_ref.name.clone(),
                prefixes: p
                    .prefixes
                    .iter()
                    .map(|x| PeeringPrefix {
                        name: x.name.clone(),
                        prefix: x.prefix.as_ref().map(ToString::to_string),
                        prefix_ref: x.prefix_ref.as_ref().map(|r| r.name.clone()),
                    })
                    .collect(),
            })
            .collect(),
        incoming: net
            .spec
            .incoming_peerings
            .iter()
            .map(|c| ClaimRef {
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                uid: c.uid.clone(),
            })
            .collect(),
    })
}

/// The per-partition peering states an apinet Network reports.
pub fn reported_peerings(apinet_network: &Value) -> PartitionPeerings {
    apinet_network
        .pointer("/status/peerings")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(partition, entries)| {
            let states = entries
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((
                        e.get("id")?.as_i64()?,
                        e.get("state")
                            .and_then(Value::as_str)
                            .unwrap_or("Pending")
                            .to_owned(),
                    ))
                })
                .collect();
            (partition.clone(), states)
        })
        .collect()
}

async fn reconcile(net: Arc<Network>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if super::ignored(ctx.watch_filter.as_deref(), net.as_ref()) {
        return Ok(Action::await_change());
    }
    let view = network_view(&net)?;
    let api: Api<Network> = Api::namespaced(ctx.ironcore.clone(), &view.source.namespace);
    let apinet_api: Api<apinet::Network> = ctx.apinet_api();
    if net.metadata.deletion_timestamp.is_some() {
        return finalize(&api, &net, finalizers::NETWORK, &apinet_api).await;
    }
    if ensure_finalizer(&api, &net, finalizers::NETWORK).await? {
        return Ok(Action::await_change());
    }

    // Peer VNIs and referenced prefixes are read fresh; the pure mapping decides what is used.
    let mut peer_ids = BTreeMap::new();
    // A claim without a uid (hand-written, like the seed's reconciled example) names no apinet Network.
    for claim in view.incoming.iter().filter(|c| !c.uid.is_empty()) {
        if let Some(peer) = apinet_api.get_opt(&claim.uid).await?
            && !peer.spec.id.is_empty()
        {
            peer_ids.insert(claim.uid.clone(), peer.spec.id.clone());
        }
    }
    let mut prefixes = BTreeMap::new();
    for name in view
        .peerings
        .iter()
        .flat_map(|p| &p.prefixes)
        .filter_map(|p| p.prefix_ref.as_ref())
    {
        if let Some(prefix) = super::allocated_prefix(&ctx, &view.source.namespace, name).await? {
            prefixes.insert(name.clone(), prefix);
        }
    }
    let peerings = apinet_peerings(
        &view,
        |uid| peer_ids.get(uid).cloned(),
        |n| prefixes.get(n).cloned(),
    );
    let body = desired_network(&ctx.namespace, &view, &peerings);
    let applied = match super::apply_changed::<apinet::Network>(&ctx, &view.source.uid, &body).await {
        Ok(a) => a,
        Err(e) => {
            let available = net.status.as_ref().and_then(|s| s.state.as_ref())
                == Some(&ironnet_api::networking::network::NetworkState::Available);
            if !available {
                patch_status(&api, &net, &json!({"status": {"state": "Pending"}})).await?;
            }
            return Err(super::note_exhaustion(&ctx, net.as_ref(), e, "").await);
        }
    };
    let id = applied.spec.id.clone();
    if id.is_empty() {
        // The API server assigns the VNI at create; an apinet Network without one is not usable yet.
        return Ok(Action::requeue(RETRY_AFTER));
    }
    if net.spec.provider_id.is_empty() {
        let pid = provider_id(
            &ctx.namespace,
            &applied.name_any(),
            &id,
            &applied.uid().unwrap_or_default(),
        );
        let patch = json!({ "metadata": { "resourceVersion": net.resource_version() }, "spec": { "providerID": pid } });
        return match api
            .patch(&net.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(Action::await_change()),
            Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
            Err(e) => Err(e.into()),
        };
    }
    let reported = reported_peerings(&to_value(&applied));
    let status_peers =
        (!ctx.network_peering_disabled).then(|| status_peerings(&view.peerings, &peerings, &reported));
    let current = net.status.as_ref().map(to_value).unwrap_or_else(|| json!({}));
    if let Some(patch) = status_patch(&current, status_peers.as_ref()) {
        patch_status(&api, &net, &patch).await?;
    }
    Ok(Action::await_change())
}

/// Runs the Network controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let networks = ctx.ironcore_informers.get::<Network>();
    Controller::for_stream(networks.subscribe(), networks.store().reader())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        .watches_stream(
            super::apinet_events::<apinet::Network>(&ctx),
            by_origin::<apinet::Network, Network>(origin::NETWORK),
        )
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("apinetlet-network", reconcile),
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
    fn reported_peerings_read_every_partition() {
        let n = json!({"status": {"peerings": {"a": [{"id": 300, "state": "Ready"}], "b": [{"id": 300}]}}});
        let r = reported_peerings(&n);
        assert_eq!(r["a"], [(300, "Ready".to_string())]);
        // A missing state counts as Pending.
        assert_eq!(r["b"], [(300, "Pending".to_string())]);
        assert!(reported_peerings(&json!({})).is_empty());
    }
}
