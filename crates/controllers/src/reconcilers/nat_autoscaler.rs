//! NATGatewayAutoscaler reconciler over [`crate::nat::autoscaler`] (upstream ironcore-net's
//! NATGatewayAutoscaler controller, `internal/controllers`).

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet::{NATGateway, NATGatewayAutoscaler};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rand::Rng;
use serde_json::{Value, json};

use crate::nat::autoscaler::{ScaleBounds, desired_public_ips, scale_ip_names};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random 10-character IP entry name (Kubernetes' random-suffix alphabet).
fn random_name() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

struct Ctx {
    client: Client,
}

async fn reconcile(scaler: Arc<NATGatewayAutoscaler>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if scaler.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = scaler
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let s = serde_json::to_value(scaler.as_ref()).unwrap_or(Value::Null);
    let Some(target) = s.pointer("/spec/natGatewayRef/name").and_then(Value::as_str) else {
        return Ok(Action::await_change());
    };
    let gws: Api<NATGateway> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(gw) = gws.get_opt(target).await? else {
        return Ok(Action::await_change());
    };
    let g = serde_json::to_value(&gw).unwrap_or(Value::Null);
    let bounds = ScaleBounds {
        min: s.pointer("/spec/minPublicIPs").and_then(Value::as_i64),
        max: s.pointer("/spec/maxPublicIPs").and_then(Value::as_i64),
    };
    let ppn = g
        .pointer("/spec/portsPerNetworkInterface")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let requested = g
        .pointer("/status/requestedNATIPs")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let desired = match desired_public_ips(ppn, requested, bounds) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(gateway = %target, error = %e, "cannot scale NAT gateway");
            return Ok(Action::await_change());
        }
    };
    let entries: Vec<Value> = g
        .pointer("/spec/ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.len() as i64 == desired {
        return Ok(Action::await_change());
    }
    let names: Vec<String> = entries
        .iter()
        .map(|e| {
            e.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let new_names = scale_ip_names(&names, desired, random_name);
    let ips: Vec<Value> = new_names
        .iter()
        .map(|n| {
            entries
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(n))
                .cloned()
                .unwrap_or(json!({"name": n}))
        })
        .collect();
    let patch = json!({"metadata": {"resourceVersion": gw.resource_version()}, "spec": {"ips": ips}});
    match gws
        .patch(target, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(CONFLICT_RETRY)),
        Err(e) => Err(e.into()),
    }
}

/// Runs the NATGatewayAutoscaler controller until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let wc = watcher::Config::default();
    let ctrl = Controller::new(Api::<NATGatewayAutoscaler>::all(client.clone()), wc.clone())
        .with_config(ControllerConfig::default().concurrency(concurrency));
    let store = ctrl.store();
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    // A gateway change (demand in status, IPs in spec) re-evaluates the autoscalers targeting it.
    let controller = ctrl
        .watches_stream(informers.get::<NATGateway>().subscribe(), move |gw| {
            let (ns, name) = (gw.namespace(), gw.name_any());
            store
                .state()
                .iter()
                .filter(|s| s.namespace() == ns)
                .filter(|s| {
                    serde_json::to_value(s.as_ref()).is_ok_and(|v| {
                        v.pointer("/spec/natGatewayRef/name").and_then(Value::as_str) == Some(name.as_str())
                    })
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("natgatewayautoscaler", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx { client }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
