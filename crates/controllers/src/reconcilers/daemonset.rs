//! DaemonSet → Instances reconciler over [`crate::daemonset::plan_instances`] (upstream ironcore-net's
//! DaemonSet controller, `internal/controllers`).
//!
//! Instances are listed live on every reconcile, so a create or delete is visible to the next reconcile and no
//! "expectations" bookkeeping (upstream's guard against a lagging cache) is needed.

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet::{DaemonSet, Instance, Node};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::daemonset::{
    APINET_API_VERSION, CONTROLLER_REVISION_HASH, InstanceState, instance_name, instance_spec_for_node,
    pinned_node, plan_instances, template_hash,
};
use crate::placement::{NodeView, node_selector_from_json};
use crate::selector::LabelMatcher;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

struct Ctx {
    client: Client,
}

fn controller_ref(ds: &DaemonSet) -> Value {
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "DaemonSet",
        "name": ds.name_any(),
        "uid": ds.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The node view of an apinet Node.
pub fn node_view(node: &Node) -> NodeView {
    NodeView {
        name: node.name_any(),
        labels: node.labels().clone(),
    }
}

fn state_of(inst: &Instance) -> InstanceState {
    let spec = serde_json::to_value(&inst.spec).unwrap_or(Value::Null);
    InstanceState {
        name: inst.name_any(),
        node: pinned_node(&spec),
        deleting: inst.metadata.deletion_timestamp.is_some(),
        created: inst
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        ips: spec.get("ips").cloned().unwrap_or(Value::Null),
        ports: spec.get("loadBalancerPorts").cloned().unwrap_or(Value::Null),
    }
}

/// Rewrites `inst`'s owner references to `refs`, guarded by its resourceVersion.
async fn set_owner_refs(api: &Api<Instance>, inst: &Instance, refs: Vec<Value>) -> Result<bool, kube::Error> {
    let patch = json!({"metadata": {"resourceVersion": inst.resource_version(), "ownerReferences": refs}});
    match api
        .patch(&inst.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(e) => Err(e),
    }
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    // Deleting: the Instances go with it through their owner references.
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = ds.uid().unwrap_or_default();
    let matcher = match LabelMatcher::new(ds.spec.selector.as_ref()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(ds = %ds.name_any(), error = %e, "invalid instance selector");
            return Ok(Action::await_change());
        }
    };
    let template = serde_json::to_value(&ds.spec.template).unwrap_or(Value::Null);
    let template_spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut nodes: Vec<NodeView> = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(node_view)
        .collect();
    // A template bound to one node runs only there.
    if let Some(pinned) = template_spec.pointer("/nodeRef/name").and_then(Value::as_str) {
        nodes.retain(|n| n.name == pinned);
    }
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned = Vec::new();
    let mut requeue = false;
    for inst in api.list(&ListParams::default()).await?.items {
        let refs = inst.owner_references();
        let matches = matcher.matches(inst.labels());
        let deleting = inst.metadata.deletion_timestamp.is_some();
        match refs.iter().find(|o| o.controller == Some(true)) {
            Some(c) if c.uid == uid && matches => owned.push(inst),
            Some(c) if c.uid == uid => {
                // No longer selected: release it (it keeps running, unowned).
                let rest: Vec<Value> = refs
                    .iter()
                    .filter(|o| o.uid != uid)
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect();
                requeue |= !set_owner_refs(&api, &inst, rest).await?;
            }
            Some(_) => {}
            None if matches && !deleting => {
                // An orphan the selector matches: adopt it.
                let mut all: Vec<Value> = refs.iter().filter_map(|o| serde_json::to_value(o).ok()).collect();
                all.push(controller_ref(&ds));
                if set_owner_refs(&api, &inst, all).await? {
                    owned.push(inst);
                } else {
                    requeue = true;
                }
            }
            None => {}
        }
    }
    let states: Vec<InstanceState> = owned.iter().map(state_of).collect();
    let ips = template_spec.get("ips").cloned().unwrap_or(Value::Null);
    let ports = template_spec
        .get("loadBalancerPorts")
        .cloned()
        .unwrap_or(Value::Null);
    let affinity = template_spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        .and_then(node_selector_from_json);
    let plan = plan_instances(affinity.as_ref(), &ips, &ports, &nodes, &states);

    for name in &plan.update {
        let patch = json!({"spec": {"ips": ips, "loadBalancerPorts": ports}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    labels[CONTROLLER_REVISION_HASH] = json!(template_hash(&template));
    for node in &plan.create {
        let name = instance_name(&ds.name_any(), &mut rand::rng());
        let body = json!({
            "apiVersion": Instance::api_version(&()),
            "kind": "Instance",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": [controller_ref(&ds)]},
            "spec": instance_spec_for_node(&template_spec, node),
        });
        let inst: Instance = match serde_json::from_value(body) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(ds = %ds.name_any(), error = %e, "invalid instance template");
                return Ok(Action::await_change());
            }
        };
        match api.create(&PostParams::default(), &inst).await {
            Ok(_) => {}
            // A random name collided: try again with another.
            Err(kube::Error::Api(s)) if s.code == 409 => requeue = true,
            Err(e) => return Err(e.into()),
        }
    }
    if requeue {
        return Ok(Action::requeue(CONFLICT_RETRY));
    }
    Ok(Action::await_change())
}

fn all_daemonsets(store: &Store<DaemonSet>) -> Vec<ObjectRef<DaemonSet>> {
    store
        .state()
        .iter()
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// Runs the DaemonSet controller until `shutdown` resolves.
///
/// Owned Instance events re-reconcile their DaemonSet; every Node event re-reconciles every DaemonSet (a node
/// appearing, vanishing or changing labels changes where instances should run).
pub async fn run(
    client: Client,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let wc = watcher::Config::default();
    let ctrl = Controller::new(Api::<DaemonSet>::all(client.clone()), wc.clone())
        .with_config(ControllerConfig::default().concurrency(concurrency));
    let store = ctrl.store();
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let controller = ctrl
        .owns(Api::<Instance>::all(client.clone()), wc.clone())
        .watches(Api::<Node>::all(client.clone()), wc, move |_| {
            all_daemonsets(&store)
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("daemonset", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx { client }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
