//! metalnet (core/v1) Node → apinet Node `<partition>.<node>` (upstream ironcore-net
//! `metalnetlet/controllers/metalnetnode_controller.go`).
//!
//! A live metalnet node gets the finalizer [`NODE_FINALIZER`] and its apinet Node is applied with the partition
//! label and `--node-label`s; a deleting one has its apinet Node deleted before the finalizer goes. apinet Nodes
//! of the partition whose metalnet node is gone without that flow (finalizer removed by hand, node deleted
//! while metalnetlet was down, node no longer matching the selector) are deleted by [`run_orphans`] — upstream
//! deletes the apinet Node `"<partition>."` instead, leaving the real one behind.

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_runtime::ReconcileError;
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use super::{Ctx, DELETE_RECHECK, Stop, apply, delete_gone, ensure_finalizer, remove_finalizer, stopped};
use crate::names::{
    NODE_FINALIZER, PARTITION_LABEL, parse_node_name, partition_field_manager, partition_node_name,
};

/// The apply body of the apinet Node of metalnet node `node`.
pub fn apinet_node_body(ctx: &Ctx, node: &str) -> serde_json::Value {
    let mut labels = ctx.node_labels.clone();
    labels.insert(PARTITION_LABEL.to_owned(), ctx.partition.clone());
    json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1",
        "kind": "Node",
        "metadata": { "name": partition_node_name(&ctx.partition, node), "labels": labels },
        // apinet Nodes carry no spec fields, but the object requires one.
        "spec": {},
    })
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let nodes: Api<Node> = Api::all(ctx.metalnet.clone());
    let apinet_nodes: Api<apinet::Node> = Api::all(ctx.apinet.clone());
    let name = node.name_any();
    let apinet_name = partition_node_name(&ctx.partition, &name);
    if node.metadata.deletion_timestamp.is_some() {
        if !node.finalizers().iter().any(|f| f == NODE_FINALIZER) {
            return Ok(Action::await_change());
        }
        if !delete_gone(&apinet_nodes, &apinet_name).await? {
            return Ok(Action::requeue(DELETE_RECHECK));
        }
        remove_finalizer(&nodes, &node, NODE_FINALIZER).await?;
        return Ok(Action::await_change());
    }
    if ensure_finalizer(&nodes, &node, NODE_FINALIZER).await? {
        return Ok(Action::await_change());
    }
    let body = apinet_node_body(&ctx, &name);
    apply(
        &apinet_nodes,
        &apinet_name,
        &partition_field_manager(&ctx.partition),
        &body,
    )
    .await?;
    Ok(Action::await_change())
}

/// Runs the MetalnetNode controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let nodes = &ctx.caches.metalnet_nodes;
    let partition = ctx.partition.clone();
    // apinet Node events of the partition lead back to their metalnet node (a deleted or changed apinet Node
    // is restored).
    let apinet_wc = watcher::Config::default().labels(&format!("{PARTITION_LABEL}={partition}"));
    Controller::for_stream(nodes.subscribe(), nodes.store().reader())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        .watches(
            Api::<apinet::Node>::all(ctx.apinet.clone()),
            apinet_wc,
            move |n: apinet::Node| parse_node_name(&partition, &n.name_any()).map(ObjectRef::<Node>::new),
        )
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnetlet-node", reconcile),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Where a metalnet node stands with respect to the partition.
enum Membership {
    /// It exists and is selected.
    Member,
    /// It exists but no longer matches `--metalnet-node-selector`.
    Unselected(Node),
    /// It does not exist.
    Gone,
}

/// The membership of metalnet node `name`, read fresh where the cache says it is no member (a cache lagging
/// behind a just-registered node must not delete its apinet Node).
async fn membership(ctx: &Ctx, name: &str) -> Result<Membership, ReconcileError> {
    let store = ctx.caches.metalnet_nodes.store();
    store.wait_ready().await;
    if store.get(None, name).is_some() {
        return Ok(Membership::Member);
    }
    let api: Api<Node> = Api::all(ctx.metalnet.clone());
    let Some(node) = api.get_opt(name).await? else {
        return Ok(Membership::Gone);
    };
    let Some(selector) = &ctx.metalnet_node_selector else {
        return Ok(Membership::Member);
    };
    // The server evaluates the selector; this path is rare (the cache disagreed), so a list is affordable.
    let selected = api
        .list(&kube::api::ListParams::default().labels(selector))
        .await?;
    Ok(if selected.items.iter().any(|n| n.name_any() == name) {
        Membership::Member
    } else {
        Membership::Unselected(node)
    })
}

async fn reconcile_orphan(node: Arc<apinet::Node>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let name = node.name_any();
    let Some(metalnet_name) = parse_node_name(&ctx.partition, &name) else {
        return Ok(Action::await_change());
    };
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    match membership(&ctx, metalnet_name).await? {
        Membership::Member => return Ok(Action::await_change()),
        Membership::Gone => {}
        Membership::Unselected(metalnet_node) => {
            // The node left the partition: nothing watches it any more, so the finalizer goes now (it would
            // otherwise block the node's deletion forever, as it does upstream).
            let nodes: Api<Node> = Api::all(ctx.metalnet.clone());
            remove_finalizer(&nodes, &metalnet_node, NODE_FINALIZER).await?;
        }
    }
    tracing::info!(node = %name, "deleting the apinet Node of a metalnet node that left the partition");
    let api: Api<apinet::Node> = Api::all(ctx.apinet.clone());
    delete_gone(&api, &name).await?;
    Ok(Action::await_change())
}

/// Runs the collector of apinet Nodes of the partition whose metalnet node is gone, until `stop` fires.
pub async fn run_orphans(ctx: Arc<Ctx>, stop: Stop) {
    let wc = watcher::Config::default().labels(&format!("{PARTITION_LABEL}={}", ctx.partition));
    let (reader, writer) = reflector::store();
    let apinet_nodes = reflector(
        writer,
        watcher(Api::<apinet::Node>::all(ctx.apinet.clone()), wc).default_backoff(),
    )
    .applied_objects();
    let nodes = ctx.caches.metalnet_nodes.clone();
    let partition = ctx.partition.clone();
    // A metalnet node that leaves the cache (deleted, or no longer selected) re-evaluates its apinet Node.
    Controller::for_stream(apinet_nodes, reader)
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        .watches_stream(nodes.subscribe(), move |n: Node| {
            Some(ObjectRef::<apinet::Node>::new(&partition_node_name(
                &partition,
                &n.name_any(),
            )))
        })
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnetlet-node-orphan", reconcile_orphan),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
