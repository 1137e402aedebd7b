//! ironcore LoadBalancer (+ its LoadBalancerRouting) → apinet LoadBalancer + LoadBalancerRouting,
//! `status.ips` back over [`crate::loadbalancer`].

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_api::networking::{LoadBalancer, LoadBalancerRouting, Network};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::natgateway::{spec_ips, status_ips};
use super::{
    Ctx, ReconcileError, Stop, allocated_prefix, apinet_network_name, by_origin, ensure_finalizer, finalize,
    patch_status, source_of, stopped, to_value,
};
use crate::loadbalancer::{
    Destination, InternalIp, LoadBalancerView, desired_load_balancer, desired_routing, destination,
    keep_allocated_ips, status_patch,
};
use crate::meta::finalizers;
use crate::origin;

/// The family of an address literal.
fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// The internal IPs of a LoadBalancer: literal values, or the address of the Allocated ipam Prefix
/// `<lb>-<i>` for ephemeral entries.
async fn internal_ips(
    ctx: &Ctx,
    lb: &Value,
    namespace: &str,
    name: &str,
) -> Result<Vec<InternalIp>, ReconcileError> {
    let mut out = Vec::new();
    for (i, src) in lb
        .pointer("/spec/ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(ip) = src.get("value").and_then(Value::as_str) {
            out.push(InternalIp::Value {
                ip: ip.to_owned(),
                family: family_of(ip).to_owned(),
            });
        } else if src.get("ephemeral").is_some_and(|e| !e.is_null()) {
            match allocated_prefix(ctx, namespace, &format!("{name}-{i}")).await? {
                Some(prefix) => {
                    let ip = prefix.split('/').next().unwrap_or_default().to_owned();
                    out.push(InternalIp::Allocated {
                        family: family_of(&ip).to_owned(),
                        ip,
                    });
                }
                None => out.push(InternalIp::Pending),
            }
        } else {
            out.push(InternalIp::Pending);
        }
    }
    Ok(out)
}

/// The destinations of the ironcore LoadBalancerRouting (JSON form).
pub fn destinations(routing: Option<&Value>) -> Vec<Destination> {
    routing
        .and_then(|r| r.get("destinations"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let ip = d.get("ip").and_then(Value::as_str)?;
            Some(destination(
                ip,
                d.pointer("/targetRef/providerID").and_then(Value::as_str),
            ))
        })
        .collect()
}

async fn reconcile(lb: Arc<LoadBalancer>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if super::ignored(ctx.watch_filter.as_deref(), lb.as_ref()) {
        return Ok(Action::await_change());
    }
    let source = source_of(lb.as_ref())?;
    let api: Api<LoadBalancer> = Api::namespaced(ctx.ironcore.clone(), &source.namespace);
    let lbs: Api<apinet::LoadBalancer> = ctx.apinet_api();
    if lb.metadata.deletion_timestamp.is_some() {
        // The routing is controlled by the apinet LoadBalancer and goes with it (owner GC).
        return finalize(&api, &lb, finalizers::LOAD_BALANCER, &lbs).await;
    }
    if ensure_finalizer(&api, &lb, finalizers::LOAD_BALANCER).await? {
        return Ok(Action::await_change());
    }
    let Some(network) = apinet_network_name(&ctx, &source.namespace, &lb.spec.network_ref.name).await? else {
        return Ok(Action::await_change());
    };
    let v = to_value(lb.as_ref());
    let routing = Api::<LoadBalancerRouting>::namespaced(ctx.ironcore.clone(), &source.namespace)
        .get_opt(&source.name)
        .await?
        .map(|r| to_value(&r));
    let dests = destinations(routing.as_ref());
    let view = LoadBalancerView {
        lb_type: v
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("Public")
            .to_owned(),
        ip_families: v
            .pointer("/spec/ipFamilies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect(),
        internal_ips: internal_ips(&ctx, &v, &source.namespace, &source.name).await?,
        ports: v
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let mut out = json!({ "port": p.get("port").cloned().unwrap_or(json!(0)) });
                for key in ["protocol", "endPort"] {
                    if let Some(x) = p.get(key).filter(|x| !x.is_null()) {
                        out[key] = x.clone();
                    }
                }
                out
            })
            .collect(),
        source: source.clone(),
    };
    let mut body = desired_load_balancer(&ctx.namespace, &view, &network, &dests, ctx.node_affinity_aware)
        .map_err(|e| ReconcileError::Mapping(e.to_string()))?;
    let current = lbs.get_opt(&source.uid).await?.map(|l| to_value(&l));
    keep_allocated_ips(&mut body, current.as_ref());
    let applied = match super::apply_changed::<apinet::LoadBalancer>(&ctx, &source.uid, &body).await {
        Ok(applied) => applied,
        Err(e) => {
            let family = view.ip_families.first().map_or("IPv4", String::as_str);
            return Err(super::note_exhaustion(&ctx, lb.as_ref(), e, family).await);
        }
    };
    let apinet_uid = applied.uid().ok_or(ReconcileError::MissingMetadata("uid"))?;
    super::apply_changed::<apinet::LoadBalancerRouting>(
        &ctx,
        &source.uid,
        &desired_routing(&ctx.namespace, &source, &apinet_uid, &dests),
    )
    .await?;
    let allocated = spec_ips(&to_value(&applied));
    if let Some(patch) = status_patch(&status_ips(&v), &allocated) {
        patch_status(&api, &lb, &patch).await?;
        if view.lb_type == "Public" {
            super::note_allocated(&ctx, lb.as_ref(), "public IPs", &allocated).await;
        }
    }
    Ok(Action::await_change())
}

fn lbs_of(store: &Store<LoadBalancer>, net: &Network) -> Vec<ObjectRef<LoadBalancer>> {
    store
        .state()
        .iter()
        .filter(|l| l.namespace() == net.namespace() && l.spec.network_ref.name == net.name_any())
        .map(|l| ObjectRef::from_obj(l.as_ref()))
        .collect()
}

/// Runs the LoadBalancer controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let wc = watcher::Config::default();
    let ctrl = Controller::new(Api::<LoadBalancer>::all(ctx.ironcore.clone()), wc.clone())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency));
    let store = ctrl.store();
    ctrl.watches(
        Api::<LoadBalancerRouting>::all(ctx.ironcore.clone()),
        wc.clone(),
        |r| Some(ObjectRef::<LoadBalancer>::new(&r.name_any()).within(&r.namespace()?)),
    )
    .watches_stream(super::network_uid_changes(&ctx), move |n| lbs_of(&store, &n))
    .watches_stream(
        super::apinet_events::<apinet::LoadBalancer>(&ctx),
        by_origin::<apinet::LoadBalancer, LoadBalancer>(origin::LOAD_BALANCER),
    )
    .watches_stream(
        super::apinet_events::<apinet::LoadBalancerRouting>(&ctx),
        by_origin::<apinet::LoadBalancerRouting, LoadBalancer>(origin::LOAD_BALANCER),
    )
    .graceful_shutdown_on(stopped(stop))
    .run(
        ironnet_runtime::metrics::instrument("apinetlet-loadbalancer", reconcile),
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
    fn routing_destinations_parse_provider_ids() {
        let r = json!({"destinations": [
            {"ip": "10.0.0.1", "targetRef": {"uid": "u", "name": "n", "providerID": "ironcore-net://ns/nic/node-1/uid-1"}},
            {"ip": "10.0.0.2"},
            {"targetRef": {"providerID": "ironcore-net://ns/nic/node-1/uid-2"}},
        ]});
        let d = destinations(Some(&r));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].target.as_ref().map(|t| t.node.as_str()), Some("node-1"));
        assert_eq!(d[1].target, None);
        assert!(destinations(None).is_empty());
        assert_eq!(family_of("2001:db8::1"), "IPv6");
        assert_eq!(family_of("10.0.0.1"), "IPv4");
    }
}
