//! apinet LoadBalancer → DaemonSet reconciler over [`crate::apinet_loadbalancer::desired_daemonset`]
//! (upstream ironcore-net's LoadBalancer controller, `internal/controllers`).

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet::{DaemonSet, LoadBalancer};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::apinet_loadbalancer::{LoadBalancerView, daemonset_name, desired_daemonset};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::ReconcileError;

/// Field manager of the controller-manager's applies (DaemonSet, as upstream).
pub const FIELD_MANAGER: &str = "apinet.ironcore.dev/controller-manager";

/// The DaemonSet-relevant view of an apinet LoadBalancer.
///
/// Entries of `spec.ips` without an address yet are left out (upstream writes the zero IP, which an Instance
/// cannot hold); the DaemonSet gains them once the API server has allocated them.
pub fn lb_view(lb: &LoadBalancer) -> LoadBalancerView {
    let v = serde_json::to_value(lb).unwrap_or(Value::Null);
    let arr = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    LoadBalancerView {
        namespace: lb.namespace().unwrap_or_default(),
        name: lb.name_any(),
        uid: lb.uid().unwrap_or_default(),
        lb_type: v
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        network: lb.spec.network_ref.name.clone(),
        ips: arr("/spec/ips")
            .iter()
            .filter_map(|ip| ip.get("ip").filter(|a| !a.is_null()).cloned())
            .collect(),
        ports: arr("/spec/ports"),
        selector: v.pointer("/spec/selector").cloned().unwrap_or(Value::Null),
        template: v.pointer("/spec/template").cloned().unwrap_or(Value::Null),
    }
}

struct Ctx {
    client: Client,
}

async fn reconcile(lb: Arc<LoadBalancer>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    // Deleting: nothing to do; the DaemonSet and its Instances go with the LoadBalancer through their owner
    // references (the server's garbage collector), as does a routing object.
    if lb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = lb
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let body = desired_daemonset(&lb_view(&lb));
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
    // An unchanged apply is a no-op on the server (no write, no event), so there is no separate diff here.
    api.patch(
        &daemonset_name(&lb.name_any()),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(Action::await_change())
}

/// Runs the apinet LoadBalancer → DaemonSet controller until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let wc = watcher::Config::default();
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let lbs = informers.get::<LoadBalancer>();
    let controller = Controller::for_stream(lbs.subscribe(), lbs.store().reader())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .owns(Api::<DaemonSet>::all(client.clone()), wc)
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("apinetloadbalancer", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx { client }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
