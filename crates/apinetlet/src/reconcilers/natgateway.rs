//! ironcore NATGateway → apinet NATGateway + NATGatewayAutoscaler, `status.ips` back over
//! [`crate::natgateway`].

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_api::networking::{NATGateway, Network};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::Value;

use super::{
    Ctx, ReconcileError, Stop, apinet_network_name, by_origin, ensure_finalizer, finalize, patch_status,
    source_of, stopped, to_value,
};
use crate::meta::finalizers;
use crate::natgateway::{desired_autoscaler, desired_nat_gateway, status_patch};
use crate::origin;

/// The addresses in a `spec.ips` list of `{name, ip}` entries (entries still waiting for an address are skipped).
pub(crate) fn spec_ips(obj: &Value) -> Vec<String> {
    obj.pointer("/spec/ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("ip").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The plain addresses of an ironcore `status.ips` list.
pub(crate) fn status_ips(obj: &Value) -> Vec<String> {
    obj.pointer("/status/ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.as_str()
                .or_else(|| e.get("ip").and_then(Value::as_str))
                .map(str::to_owned)
        })
        .collect()
}

async fn reconcile(nat: Arc<NATGateway>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if super::ignored(ctx.watch_filter.as_deref(), nat.as_ref()) {
        return Ok(Action::await_change());
    }
    let source = source_of(nat.as_ref())?;
    let api: Api<NATGateway> = Api::namespaced(ctx.ironcore.clone(), &source.namespace);
    let gateways: Api<apinet::NATGateway> = ctx.apinet_api();
    if nat.metadata.deletion_timestamp.is_some() {
        // The autoscaler is controlled by the apinet gateway and goes with it (owner GC).
        return finalize(&api, &nat, finalizers::NAT_GATEWAY, &gateways).await;
    }
    if ensure_finalizer(&api, &nat, finalizers::NAT_GATEWAY).await? {
        return Ok(Action::await_change());
    }
    let Some(network) = apinet_network_name(&ctx, &source.namespace, &nat.spec.network_ref.name).await?
    else {
        // Retried when the Network appears (the controller watches Networks).
        return Ok(Action::await_change());
    };
    let v = to_value(nat.as_ref());
    let family = v
        .pointer("/spec/ipFamily")
        .and_then(Value::as_str)
        .unwrap_or("IPv4");
    let body = desired_nat_gateway(
        &ctx.namespace,
        &source,
        family,
        &network,
        nat.spec.ports_per_network_interface,
    );
    let gw = match super::apply_changed::<apinet::NATGateway>(&ctx, &source.uid, &body).await {
        Ok(gw) => gw,
        Err(e) => return Err(super::note_exhaustion(&ctx, nat.as_ref(), e, family).await),
    };
    let gw_uid = gw.uid().ok_or(ReconcileError::MissingMetadata("uid"))?;
    super::apply_changed::<apinet::NATGatewayAutoscaler>(
        &ctx,
        &source.uid,
        &desired_autoscaler(&ctx.namespace, &source, &gw_uid),
    )
    .await?;
    let allocated = spec_ips(&to_value(&gw));
    if let Some(patch) = status_patch(&status_ips(&v), &allocated) {
        patch_status(&api, &nat, &patch).await?;
        super::note_allocated(&ctx, nat.as_ref(), "public IPs", &allocated).await;
    }
    Ok(Action::await_change())
}

fn gateways_of(store: &Store<NATGateway>, net: &Network) -> Vec<ObjectRef<NATGateway>> {
    store
        .state()
        .iter()
        .filter(|g| g.namespace() == net.namespace() && g.spec.network_ref.name == net.name_any())
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// Runs the NATGateway controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let wc = watcher::Config::default();
    let ctrl = Controller::new(Api::<NATGateway>::all(ctx.ironcore.clone()), wc.clone())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency));
    let store = ctrl.store();
    ctrl.watches_stream(super::network_uid_changes(&ctx), move |n| gateways_of(&store, &n))
        .watches_stream(
            super::apinet_events::<apinet::NATGateway>(&ctx),
            by_origin::<apinet::NATGateway, NATGateway>(origin::NAT_GATEWAY),
        )
        .watches_stream(
            super::apinet_events::<apinet::NATGatewayAutoscaler>(&ctx),
            by_origin::<apinet::NATGatewayAutoscaler, NATGateway>(origin::NAT_GATEWAY),
        )
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("apinetlet-natgateway", reconcile),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
