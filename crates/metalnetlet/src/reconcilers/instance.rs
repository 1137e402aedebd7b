//! LoadBalancer Instance → one metalnet LoadBalancer per IP on the instance's node (upstream ironcore-net
//! `metalnetlet/controllers/instance_controller.go`) over [`crate::instance`].

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::common::IP;
use ironnet_api::{apinet, metalnet};
use ironnet_runtime::cache::{BY_NETWORK, index_key};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use ironnet_runtime::{ReconcileError, is_not_found};
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::{BY_NODE, BY_ORIGIN, Ctx, DELETE_RECHECK, Stop, ensure_finalizer, remove_finalizer, stopped};
use crate::instance::{
    metalnet_lb_name, metalnet_lb_spec, metalnet_lb_type, same_load_balancer, unsupported_ports,
};
use crate::names::{INSTANCE_ORIGIN, parse_node_name, partition_finalizer, partition_node_name};

/// Deletes every metalnet LoadBalancer stemming from the instance; returns whether any still exists (read
/// fresh: the finalizer may only go once none is left).
async fn delete_all(ctx: &Ctx, uid: &str) -> Result<bool, ReconcileError> {
    let api: Api<metalnet::LoadBalancer> = ctx.metalnet_api();
    let selector = format!("{}={uid}", INSTANCE_ORIGIN.uid_label());
    let existing = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?;
    for lb in &existing.items {
        if lb.metadata.deletion_timestamp.is_none() {
            match api.delete(&lb.name_any(), &Default::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if existing.items.is_empty() {
        return Ok(false);
    }
    Ok(!api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items
        .is_empty())
}

async fn cleanup(
    ctx: &Ctx,
    api: &Api<apinet::Instance>,
    inst: &apinet::Instance,
    uid: &str,
) -> Result<Action, ReconcileError> {
    let finalizer = partition_finalizer(&ctx.partition);
    if !inst.finalizers().contains(&finalizer) {
        return Ok(Action::await_change());
    }
    if delete_all(ctx, uid).await? {
        return Ok(Action::requeue(DELETE_RECHECK));
    }
    remove_finalizer(api, inst, &finalizer).await?;
    Ok(Action::await_change())
}

async fn reconcile(inst: Arc<apinet::Instance>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let finalizer = partition_finalizer(&ctx.partition);
    let node_ref = inst
        .spec
        .node_ref
        .as_ref()
        .map(|n| n.name.as_str())
        .unwrap_or_default();
    let on_partition = parse_node_name(&ctx.partition, node_ref).is_some();
    if !on_partition && !inst.finalizers().contains(&finalizer) {
        return Ok(Action::await_change());
    }
    let namespace = inst
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = inst.uid().ok_or(ReconcileError::MissingMetadata("uid"))?;
    let api: Api<apinet::Instance> = Api::namespaced(ctx.apinet.clone(), &namespace);
    if inst.metadata.deletion_timestamp.is_some() {
        return cleanup(&ctx, &api, &inst, &uid).await;
    }
    let node = ctx
        .metalnet_node(node_ref)
        .filter(|n| n.metadata.deletion_timestamp.is_none());
    let Some(node) = node else {
        return cleanup(&ctx, &api, &inst, &uid).await;
    };
    if ensure_finalizer(&api, &inst, &finalizer).await? {
        return Ok(Action::await_change());
    }
    let Some(network) = ctx.network_uid(&namespace, &inst.spec.network_ref.name) else {
        return Ok(Action::await_change());
    };
    let lb_type = metalnet_lb_type(inst.spec.load_balancer_type)
        .ok_or_else(|| ReconcileError::Mapping("instance without loadBalancerType".into()))?;
    let node_name = node.name_any();
    let lbs: Api<metalnet::LoadBalancer> = ctx.metalnet_api();
    let unsupported = unsupported_ports(&inst);
    if !unsupported.is_empty() {
        tracing::warn!(namespace, name = %inst.name_any(), ports = ?unsupported, "SCTP ports cannot be forwarded by metalnet; they are left out");
    }
    // A LoadBalancer without a port it can forward serves nothing (and metalnet requires one): none is kept.
    let servable = inst
        .spec
        .load_balancer_ports
        .iter()
        .any(|p| p.protocol != Some(ironnet_api::common::Protocol::Sctp));
    if !servable {
        tracing::warn!(namespace, name = %inst.name_any(), "instance has no TCP or UDP port; no metalnet LoadBalancer serves it");
    }
    let mut unsatisfied: Vec<&IP> = Vec::new();
    for ip in inst.spec.ips.iter().filter(|_| servable) {
        if !unsatisfied.contains(&ip) {
            unsatisfied.push(ip);
        }
    }
    let existing = ctx
        .caches
        .metalnet_lbs
        .store()
        .indexed(&index_key(BY_ORIGIN, None, &uid));
    for lb in existing
        .iter()
        .filter(|lb| lb.metadata.deletion_timestamp.is_none())
    {
        let wanted = lb
            .spec
            .ip
            .as_ref()
            .and_then(|ip| unsatisfied.iter().position(|u| *u == ip));
        match wanted {
            Some(i) => {
                let ip = unsatisfied.remove(i);
                // The network, type and node a LoadBalancer was created with stay; only the ports follow.
                let desired = metalnet_lb_spec(
                    &inst,
                    &lb.spec.network_ref.name,
                    lb.spec.node_name.as_deref().unwrap_or_default(),
                    lb.spec.type_.unwrap_or(lb_type),
                    ip,
                );
                if desired != lb.spec {
                    let patch =
                        json!({ "metadata": { "resourceVersion": lb.resource_version() }, "spec": desired });
                    lbs.patch(&lb.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                }
            }
            None => match lbs.delete(&lb.name_any(), &Default::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    let data = ironnet_runtime::origin::OriginData {
        namespace: namespace.clone(),
        name: inst.name_any(),
        uid: uid.clone(),
    };
    let collision_count = inst.status.as_ref().and_then(|s| s.collision_count);
    let mut collided = None;
    for ip in unsatisfied {
        let spec = metalnet_lb_spec(&inst, &network, &node_name, lb_type, ip);
        let name = metalnet_lb_name(&uid, ip, collision_count);
        let mut lb = metalnet::LoadBalancer::new(&name, spec.clone());
        lb.metadata.namespace = Some(ctx.metalnet_namespace.clone());
        lb.metadata.labels = Some(INSTANCE_ORIGIN.labels(&data));
        lb.metadata.annotations = Some(INSTANCE_ORIGIN.annotations(&data));
        match lbs.create(&PostParams::default(), &lb).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // A slow cache or a quick re-reconcile finds its own object; anything else is a collision.
                let theirs = lbs.get_opt(&name).await?;
                let ours = theirs.as_ref().is_some_and(|t| {
                    t.metadata.deletion_timestamp.is_none() && same_load_balancer(&t.spec, &spec)
                });
                if !ours {
                    collided = Some(name);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(name) = collided {
        let next = collision_count.unwrap_or(0) + 1;
        super::patch_status(
            &api,
            &inst.name_any(),
            &json!({ "status": { "collisionCount": next } }),
        )
        .await?;
        return Err(ReconcileError::Mapping(format!(
            "metalnet LoadBalancer {name} exists with another spec; collision count bumped to {next}"
        )));
    }
    Ok(Action::await_change())
}

/// Runs the Instance controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let c = &ctx.caches;
    let instances = c.instances.store();
    let (i1, i2) = (instances.clone(), instances.clone());
    let partition = ctx.partition.clone();
    Controller::for_stream(c.instances.subscribe(), instances.reader())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        .watches_stream(c.metalnet_lbs.subscribe(), |lb: metalnet::LoadBalancer| {
            let data = INSTANCE_ORIGIN.data_of(lb.labels(), lb.annotations())?;
            Some(ObjectRef::<apinet::Instance>::new(&data.name).within(&data.namespace))
        })
        .watches_stream(
            c.metalnet_nodes.subscribe_filtered(|n: &Node| {
                ironnet_runtime::cache::hash_of(&n.metadata.deletion_timestamp.is_some())
            }),
            move |n: Node| {
                i1.indexed(&index_key(
                    BY_NODE,
                    None,
                    &partition_node_name(&partition, &n.name_any()),
                ))
                .iter()
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect::<Vec<_>>()
            },
        )
        .watches_stream(
            c.networks
                .subscribe_filtered(|n: &apinet::Network| ironnet_runtime::cache::hash_of(&n.metadata.uid)),
            move |net: apinet::Network| {
                i2.indexed(&index_key(
                    BY_NETWORK,
                    net.metadata.namespace.as_deref(),
                    &net.name_any(),
                ))
                .iter()
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnetlet-instance", reconcile),
            ironnet_runtime::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
