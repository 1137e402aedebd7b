//! apinet Network → metalnet Network `<apinet UID>`; peering states back into `status.peerings[<partition>]`
//! (upstream ironcore-net `metalnetlet/controllers/network_controller.go`) over [`crate::network`].

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::{apinet, metalnet};
use ironnet_runtime::ReconcileError;
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::{
    Ctx, DELETE_RECHECK, Stop, apply_metalnet, delete_gone, ensure_finalizer, patch_status, remove_finalizer,
    stopped,
};
use crate::names::{NETWORK_ORIGIN, partition_finalizer};
use crate::network::{apinet_peerings, metalnet_network_spec, peering_status_patch};

async fn reconcile(net: Arc<apinet::Network>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let namespace = net
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = net.uid().ok_or(ReconcileError::MissingMetadata("uid"))?;
    let api: Api<apinet::Network> = Api::namespaced(ctx.apinet.clone(), &namespace);
    let metalnet_api: Api<metalnet::Network> = ctx.metalnet_api();
    let finalizer = partition_finalizer(&ctx.partition);
    if net.metadata.deletion_timestamp.is_some() {
        if !net.finalizers().contains(&finalizer) {
            return Ok(Action::await_change());
        }
        if !delete_gone(&metalnet_api, &uid).await? {
            return Ok(Action::requeue(DELETE_RECHECK));
        }
        remove_finalizer(&api, &net, &finalizer).await?;
        return Ok(Action::await_change());
    }
    if ensure_finalizer(&api, &net, &finalizer).await? {
        return Ok(Action::await_change());
    }
    let spec = match metalnet_network_spec(&net, ctx.network_peering_disabled) {
        Ok(spec) => spec,
        Err(e) => {
            // Retrying cannot fix the object; its next change triggers again.
            tracing::warn!(namespace, name = %net.name_any(), error = %e, "apinet Network cannot be mapped");
            return Ok(Action::await_change());
        }
    };
    let data = ironnet_runtime::origin::OriginData {
        namespace: namespace.clone(),
        name: net.name_any(),
        uid: uid.clone(),
    };
    let cached = ctx
        .caches
        .metalnet_networks
        .store()
        .get(Some(&ctx.metalnet_namespace), &uid);
    let current = match cached {
        Some(m) if m.spec == spec && NETWORK_ORIGIN.stems_from(m.labels(), &uid) => m,
        _ => {
            let body = json!({
                "apiVersion": "networking.metalnet.ironcore.dev/v1alpha1",
                "kind": "Network",
                "metadata": {
                    "name": uid,
                    "namespace": ctx.metalnet_namespace,
                    "labels": NETWORK_ORIGIN.labels(&data),
                    "annotations": NETWORK_ORIGIN.annotations(&data),
                },
                "spec": spec,
            });
            Arc::new(apply_metalnet(&metalnet_api, &uid, &body).await?)
        }
    };
    if !ctx.network_peering_disabled {
        let desired = apinet_peerings(current.status.as_ref());
        if let Some(patch) = peering_status_patch(&net, &ctx.partition, &desired) {
            patch_status(&api, &net.name_any(), &patch).await?;
        }
    }
    Ok(Action::await_change())
}

/// Runs the Network controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let networks = &ctx.caches.networks;
    let metalnet_networks = ctx.caches.metalnet_networks.subscribe();
    Controller::for_stream(networks.subscribe(), networks.store().reader())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        .watches_stream(metalnet_networks, |m: metalnet::Network| {
            let data = NETWORK_ORIGIN.data_of(m.labels(), m.annotations())?;
            Some(ObjectRef::<apinet::Network>::new(&data.name).within(&data.namespace))
        })
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnetlet-network", reconcile),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
