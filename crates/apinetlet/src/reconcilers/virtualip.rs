//! ironcore VirtualIP → apinet IP (public, allocated by the API server), `status.ip` back over
//! [`crate::virtualip`].

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_api::networking::VirtualIP;
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::Api;
use serde_json::Value;

use super::{
    Ctx, ReconcileError, Stop, by_origin, ensure_finalizer, finalize, patch_status, source_of, stopped,
    to_value,
};
use crate::meta::finalizers;
use crate::origin;
use crate::virtualip::{desired_ip, status_patch};

async fn reconcile(vip: Arc<VirtualIP>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if super::ignored(ctx.watch_filter.as_deref(), vip.as_ref()) {
        return Ok(Action::await_change());
    }
    let source = source_of(vip.as_ref())?;
    let api: Api<VirtualIP> = Api::namespaced(ctx.ironcore.clone(), &source.namespace);
    let apinet_api: Api<apinet::IP> = ctx.apinet_api();
    if vip.metadata.deletion_timestamp.is_some() {
        return finalize(&api, &vip, finalizers::VIRTUAL_IP, &apinet_api).await;
    }
    if ensure_finalizer(&api, &vip, finalizers::VIRTUAL_IP).await? {
        return Ok(Action::await_change());
    }
    let v = to_value(vip.as_ref());
    let current = v.pointer("/status/ip").and_then(Value::as_str);
    let family = v
        .pointer("/spec/ipFamily")
        .and_then(Value::as_str)
        .unwrap_or("IPv4");
    // A failed apply returns the error and leaves a previously reported address alone: a transient failure
    // must not withdraw an address the workload already uses.
    let applied = match super::apply_changed::<apinet::IP>(
        &ctx,
        &source.uid,
        &desired_ip(&ctx.namespace, &source, family),
    )
    .await
    {
        Ok(applied) => applied,
        Err(e) => return Err(super::note_exhaustion(&ctx, vip.as_ref(), e, family).await),
    };
    let a = to_value(&applied);
    let allocated = a.pointer("/spec/ip").and_then(Value::as_str);
    if let Some(patch) = status_patch(current, allocated) {
        patch_status(&api, &vip, &patch).await?;
        let ips: Vec<String> = allocated.map(str::to_owned).into_iter().collect();
        super::note_allocated(&ctx, vip.as_ref(), "public IP", &ips).await;
    }
    Ok(Action::await_change())
}

/// Runs the VirtualIP controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let vips = ctx.ironcore_informers.get::<VirtualIP>();
    Controller::for_stream(vips.subscribe(), vips.store().reader())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        .watches_stream(
            super::apinet_events::<apinet::IP>(&ctx),
            by_origin::<apinet::IP, VirtualIP>(origin::VIRTUAL_IP),
        )
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("apinetlet-virtualip", reconcile),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
