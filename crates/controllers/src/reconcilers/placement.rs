//! Instance placement (upstream ironcore-net's scheduler, controller `instance-scheduler`,
//! `internal/controllers`) over [`crate::placement::place`].
//!
//! One reconcile at a time (upstream's MaxConcurrentReconciles 1). Bound Instances are read from the
//! controller's own reflector cache; a binding this scheduler has written but the cache has not shown yet is
//! "assumed" (kept in memory and counted as placed) until the cache catches up, so consecutive decisions never
//! miss each other. Nodes are read live.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use ironnet_api::apinet::{Instance, Node};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::daemonset::node_view;
use crate::placement::{InstanceView, NodeView, PlacedInstance, Placement, instance_view_from_json, place};
use ironnet_runtime::events::{EventRecorder, Occurrence};
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

/// Controller name, also the reporting controller of its events.
pub const CONTROLLER_NAME: &str = "instance-scheduler";

struct Ctx {
    client: Client,
    recorder: EventRecorder,
    /// The controller's cache of every Instance.
    instances: Store<Instance>,
    /// Bindings written but not yet seen in `instances`, by Instance UID.
    assumed: Mutex<BTreeMap<String, PlacedInstance>>,
}

/// Every bound, non-deleting Instance: the cached ones plus the assumed bindings the cache has not caught up
/// with. Assumptions the cache has confirmed (or whose Instance is gone) are dropped.
fn placed_instances(ctx: &Ctx) -> Vec<PlacedInstance> {
    let state = ctx.instances.state();
    let mut placed = Vec::new();
    let mut unbound = BTreeSet::new();
    for i in state.iter().filter(|i| i.metadata.deletion_timestamp.is_none()) {
        match &i.spec.node_ref {
            Some(n) => placed.push(PlacedInstance {
                instance: instance_view(i),
                node: n.name.clone(),
            }),
            None => {
                unbound.insert(i.uid().unwrap_or_default());
            }
        }
    }
    let mut assumed = ctx.assumed.lock().unwrap_or_else(|p| p.into_inner());
    assumed.retain(|uid, _| unbound.contains(uid));
    placed.extend(assumed.values().cloned());
    placed
}

fn forget(ctx: &Ctx, uid: &str) {
    ctx.assumed.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
}

/// The scheduling view of an Instance.
pub fn instance_view(inst: &Instance) -> InstanceView {
    let spec = serde_json::to_value(&inst.spec).unwrap_or(Value::Null);
    instance_view_from_json(
        &inst.namespace().unwrap_or_default(),
        &inst.name_any(),
        inst.labels().clone(),
        &spec,
    )
}

async fn reconcile(inst: Arc<Instance>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if inst.metadata.deletion_timestamp.is_some() || inst.spec.node_ref.is_some() {
        return Ok(Action::await_change());
    }
    let ns = inst
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let nodes: Vec<NodeView> = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(node_view)
        .collect();
    let placed = placed_instances(&ctx);
    let uid = inst.uid().unwrap_or_default();
    // Bound by us already; the cache has not shown it yet.
    if ctx
        .assumed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&uid)
    {
        return Ok(Action::await_change());
    }
    let placement = match place(&instance_view(&inst), &nodes, &placed) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(instance = %inst.name_any(), error = %e, "cannot schedule instance");
            return Ok(Action::await_change());
        }
    };
    match placement {
        Placement::NoFit => {
            let note = format!("No nodes available to schedule {ns}/{} on", inst.name_any());
            tracing::info!(instance = %inst.name_any(), "{note}");
            // Upstream's reason and action; a failed write is logged, never stops scheduling.
            ctx.recorder
                .record(
                    inst.as_ref(),
                    Occurrence::normal("OutOfCapacity", "Scheduling", note),
                )
                .await;
            // A Node or Instance event brings it back (see `run`).
            Ok(Action::await_change())
        }
        Placement::Node(node) => {
            ctx.assumed.lock().unwrap_or_else(|p| p.into_inner()).insert(
                uid.clone(),
                PlacedInstance {
                    instance: instance_view(&inst),
                    node: node.clone(),
                },
            );
            let patch = json!({"metadata": {"resourceVersion": inst.resource_version()},
                               "spec": {"nodeRef": {"name": node}}});
            let result = Api::<Instance>::namespaced(ctx.client.clone(), &ns)
                .patch(&inst.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if result.is_err() {
                forget(&ctx, &uid);
            }
            match result {
                Ok(_) => Ok(Action::await_change()),
                Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn unscheduled(store: &Store<Instance>, ns: Option<&str>) -> Vec<ObjectRef<Instance>> {
    store
        .state()
        .iter()
        .filter(|i| i.spec.node_ref.is_none() && i.metadata.deletion_timestamp.is_none())
        .filter(|i| ns.is_none_or(|ns| i.namespace().as_deref() == Some(ns)))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// Runs the scheduler until `shutdown` resolves.
///
/// Unscheduled Instances are retried when any Node changes (upstream: only on Node creation) and when a bound
/// Instance of their namespace changes or goes away (it may have freed an anti-affinity or spread domain;
/// upstream never retries them).
pub async fn run(client: Client, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    let wc = watcher::Config::default();
    let ctrl = Controller::new(Api::<Instance>::all(client.clone()), wc.clone())
        .with_config(ControllerConfig::default().concurrency(1));
    let store = ctrl.store();
    let (s1, s2) = (store.clone(), store);
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let recorder = EventRecorder::new(client.clone(), CONTROLLER_NAME);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder,
        instances: ctrl.store(),
        assumed: Mutex::new(BTreeMap::new()),
    });
    let controller = ctrl
        .watches(Api::<Node>::all(client.clone()), wc.clone(), move |_| {
            unscheduled(&s1, None)
        })
        .watches(Api::<Instance>::all(client.clone()), wc, move |i| {
            if i.spec.node_ref.is_some() {
                unscheduled(&s2, i.namespace().as_deref())
            } else {
                Vec::new()
            }
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("instanceplacement", reconcile),
            ironnet_runtime::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
