//! LoadBalancer → LoadBalancerRouting reconciler over [`crate::loadbalancer_routing`] (upstream ironcore's
//! `loadbalancer` controller, `internal/controllers/networking`).

use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::networking::{LoadBalancer, LoadBalancerRouting, Network, NetworkInterface};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::loadbalancer_routing::{self, RoutingInterfaceView};
use ironnet_runtime::cache::{BY_NETWORK, IndexedStore, fingerprint, index_key};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::ReconcileError;

/// Field manager of the routing applies.
pub const FIELD_MANAGER: &str = "loadbalancers.networking.ironcore.dev";

/// The routing view of a NetworkInterface.
pub fn routing_view(nic: &NetworkInterface) -> RoutingInterfaceView {
    let v = serde_json::to_value(nic).unwrap_or(Value::Null);
    RoutingInterfaceView {
        name: nic.name_any(),
        uid: nic.uid().unwrap_or_default(),
        labels: nic.labels().clone(),
        network: nic.spec.network_ref.name.clone(),
        provider_id: nic.spec.provider_id.clone(),
        available: v.pointer("/status/state").and_then(Value::as_str) == Some("Available"),
        ips: v
            .pointer("/status/ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()))
            .collect(),
    }
}

struct Ctx {
    client: Client,
    /// NetworkInterfaces by `net:<namespace>/<network>`.
    nics: IndexedStore<NetworkInterface>,
    /// Every Network.
    networks: IndexedStore<Network>,
}

async fn reconcile(lb: Arc<LoadBalancer>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if lb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(selector) = lb.spec.network_interface_selector.as_ref() else {
        return Ok(Action::await_change());
    };
    let ns = lb
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let network_name = &lb.spec.network_ref.name;
    // An absent Network is waited for: its creation comes through the Network watch and triggers again.
    ctx.networks.wait_ready().await;
    let Some(network) = ctx.networks.get(Some(&ns), network_name) else {
        return Ok(Action::await_change());
    };
    // The cache feeds this controller's interface triggers, so it is at least as new as the event that led here.
    ctx.nics.wait_ready().await;
    let views: Vec<RoutingInterfaceView> = ctx
        .nics
        .indexed(&index_key(BY_NETWORK, Some(&ns), network_name))
        .iter()
        .map(|n| routing_view(n))
        .collect();
    let selector_json = serde_json::to_value(selector).unwrap_or(Value::Null);
    let selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
        serde_json::from_value(selector_json).unwrap_or_default();
    let Ok(Some(destinations)) = loadbalancer_routing::destinations(network_name, Some(&selector), &views)
    else {
        tracing::warn!(lb = %lb.name_any(), "invalid networkInterfaceSelector");
        return Ok(Action::await_change());
    };
    let destinations: Vec<Value> = destinations
        .iter()
        .map(|d| {
            json!({"ip": d.ip.to_string(), "targetRef": {"uid": d.uid, "name": d.name, "providerID": d.provider_id}})
        })
        .collect();
    let network_ref = json!({"name": network.name_any(), "uid": network.uid().unwrap_or_default()});
    let routings: Api<LoadBalancerRouting> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(existing) = routings.get_opt(&lb.name_any()).await? {
        let cur = serde_json::to_value(&existing).unwrap_or(Value::Null);
        let owned = existing
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == lb.uid().as_ref() && o.controller == Some(true));
        let cur_dest = cur
            .get("destinations")
            .cloned()
            .filter(|d| !d.is_null())
            .unwrap_or_else(|| json!([]));
        if owned && cur.get("networkRef") == Some(&network_ref) && cur_dest == json!(destinations) {
            return Ok(Action::await_change());
        }
    }
    let body = json!({
        "apiVersion": LoadBalancerRouting::api_version(&()),
        "kind": "LoadBalancerRouting",
        "metadata": {
            "name": lb.name_any(),
            "namespace": ns,
            "ownerReferences": [{
                "apiVersion": LoadBalancer::api_version(&()),
                "kind": "LoadBalancer",
                "name": lb.name_any(),
                "uid": lb.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "networkRef": network_ref,
        "destinations": destinations,
    });
    routings
        .patch(
            &lb.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(Action::await_change())
}

fn lbs_on_network(
    store: &IndexedStore<LoadBalancer>,
    ns: &str,
    network: &str,
) -> Vec<ObjectRef<LoadBalancer>> {
    store
        .indexed(&index_key(BY_NETWORK, Some(ns), network))
        .iter()
        .filter(|lb| lb.spec.network_interface_selector.is_some())
        .map(|lb| ObjectRef::from_obj(lb.as_ref()))
        .collect()
}

/// Runs the LoadBalancer routing controller until `shutdown` resolves.
///
/// Every interface event re-reconciles every LB with a selector on the interface's network: kube-rs mappers
/// see only the new object, so matching on labels would miss an interface whose labels stop matching.
/// Reconciles that change nothing write nothing.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let lbs = informers.get::<LoadBalancer>();
    let wc = watcher::Config::default();
    let ctrl = Controller::for_stream(lbs.subscribe(), lbs.store().reader()).with_config(
        ControllerConfig::default()
            .concurrency(concurrency)
            .debounce(super::FAN_IN_DEBOUNCE),
    );
    let (s1, s2) = (lbs.store(), lbs.store());
    // Only what routing depends on re-triggers: labels, network, provider ID and status (a finalizer or a
    // NAT claim does not).
    let nic_informer = informers.get::<NetworkInterface>();
    let nic_events = nic_informer.subscribe_filtered(|n: &NetworkInterface| {
        fingerprint(&(
            n.labels(),
            &n.spec.network_ref.name,
            &n.spec.provider_id,
            &n.status,
        ))
    });
    let nics = nic_informer.store();
    let network_informer = informers.get::<Network>();
    let network_events = network_informer.subscribe();
    let networks = network_informer.store();
    let ctrl = ctrl
        .owns(Api::<LoadBalancerRouting>::all(client.clone()), wc.clone())
        .watches_stream(nic_events, move |nic| {
            lbs_on_network(
                &s1,
                &nic.namespace().unwrap_or_default(),
                &nic.spec.network_ref.name,
            )
        })
        .watches_stream(network_events, move |net| {
            lbs_on_network(&s2, &net.namespace().unwrap_or_default(), &net.name_any())
        });
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let controller = ctrl
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("loadbalancerrouting", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx {
                client,
                nics,
                networks,
            }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
