//! apinet NATGateway → NATTable and NetworkInterface NAT claims over [`crate::nat::allocation`] (upstream
//! ironcore-net's NATGateway controller, `internal/controllers`).

use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet::{NATGateway, NATTable, NetworkInterface};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::nat::allocation::{
    NatClaim, NatGatewayView, NatInterfaceView, NatSection, NatTableIp, NatTarget, plan_nat,
};
use crate::net::Family;
use ironnet_runtime::cache::{BY_NETWORK, IndexedStore, fingerprint, index_key};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

/// Field manager of controller-manager applies.
pub const FIELD_MANAGER: &str = "apinet.ironcore.dev/controller-manager";
const API_VERSION: &str = "core.apinet.ironcore.dev/v1alpha1";

fn ip_of(v: &Value) -> Option<IpAddr> {
    v.as_str().and_then(|s| s.parse().ok())
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn arr<'a>(v: &'a Value, ptr: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(ptr).and_then(Value::as_array).into_iter().flatten()
}

/// The NAT view of an apinet NetworkInterface (from its JSON form).
pub fn interface_view(nic: &Value) -> NatInterfaceView {
    NatInterfaceView {
        name: str_at(nic, "/metadata/name").to_owned(),
        uid: str_at(nic, "/metadata/uid").to_owned(),
        node: str_at(nic, "/spec/nodeRef/name").to_owned(),
        ips: arr(nic, "/spec/ips").filter_map(ip_of).collect(),
        public_ip_families: arr(nic, "/spec/publicIPs")
            .filter_map(|p| p.get("ipFamily").and_then(Value::as_str).and_then(Family::parse))
            .collect(),
        nat_claims: arr(nic, "/spec/natGateways")
            .filter_map(|n| {
                Some(NatClaim {
                    family: Family::parse(n.get("ipFamily")?.as_str()?)?,
                    gateway_name: str_at(n, "/claimRef/name").to_owned(),
                    gateway_uid: str_at(n, "/claimRef/uid").to_owned(),
                })
            })
            .collect(),
        deleting: nic
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null()),
    }
}

fn table_of(table: &Value) -> Vec<NatTableIp> {
    arr(table, "/ips")
        .filter_map(|e| {
            Some(NatTableIp {
                ip: ip_of(e.get("ip")?)?,
                sections: arr(e, "/sections")
                    .filter_map(|s| {
                        Some(NatSection {
                            ip: ip_of(s.get("ip")?)?,
                            port: s.get("port")?.as_i64()?,
                            end_port: s.get("endPort")?.as_i64()?,
                            target: s.get("targetRef").filter(|t| !t.is_null()).map(|t| NatTarget {
                                uid: str_at(t, "/uid").to_owned(),
                                name: str_at(t, "/name").to_owned(),
                                node: str_at(t, "/nodeRef/name").to_owned(),
                            }),
                        })
                    })
                    .collect(),
            })
        })
        .collect()
}

fn table_json(table: &[NatTableIp]) -> Value {
    json!(
        table
            .iter()
            .map(|e| json!({
                "ip": e.ip.to_string(),
                "sections": e.sections.iter().map(|s| {
                    let mut v = json!({"ip": s.ip.to_string(), "port": s.port, "endPort": s.end_port});
                    if let Some(t) = &s.target {
                        v["targetRef"] = json!({"uid": t.uid, "name": t.name, "nodeRef": {"name": t.node}});
                    }
                    v
                }).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()
    )
}

struct Ctx {
    client: Client,
    /// apinet NetworkInterfaces by `net:<namespace>/<network>`.
    nics: IndexedStore<NetworkInterface>,
}

async fn patch_claims(
    api: &Api<NetworkInterface>,
    nic: &Value,
    claims: Vec<Value>,
) -> Result<bool, ReconcileError> {
    let patch = json!({
        "metadata": {"resourceVersion": nic.pointer("/metadata/resourceVersion")},
        "spec": {"natGateways": claims},
    });
    match api
        .patch(
            str_at(nic, "/metadata/name"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(gw: Arc<NATGateway>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if gw.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = gw
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let g = serde_json::to_value(gw.as_ref()).unwrap_or(Value::Null);
    let Some(family) = Family::parse(str_at(&g, "/spec/ipFamily")) else {
        return Ok(Action::await_change());
    };
    let view = NatGatewayView {
        name: gw.name_any(),
        uid: gw.uid().unwrap_or_default(),
        family,
        ips: arr(&g, "/spec/ips")
            .filter_map(|i| i.get("ip").and_then(ip_of))
            .collect(),
        ports_per_interface: g
            .pointer("/spec/portsPerNetworkInterface")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    };
    let network = str_at(&g, "/spec/networkRef/name").to_owned();
    let tables: Api<NATTable> = Api::namespaced(ctx.client.clone(), &ns);
    let current = tables
        .get_opt(&gw.name_any())
        .await?
        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null));
    let nic_api: Api<NetworkInterface> = Api::namespaced(ctx.client.clone(), &ns);
    // The cache feeds this controller's interface triggers, so it is at least as new as the event that led
    // here; a claim written from an older view fails its resourceVersion precondition and is planned again.
    ctx.nics.wait_ready().await;
    let nics: Vec<Value> = ctx
        .nics
        .indexed(&index_key(BY_NETWORK, Some(&ns), &network))
        .iter()
        .map(|n| serde_json::to_value(n.as_ref()).unwrap_or(Value::Null))
        .collect();
    let views: Vec<NatInterfaceView> = nics.iter().map(interface_view).collect();
    let plan = match plan_nat(&view, &current.as_ref().map(table_of).unwrap_or_default(), &views) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(gateway = %gw.name_any(), error = %e, "cannot allocate NAT ports");
            return Ok(Action::await_change());
        }
    };
    let by_name = |name: &str| nics.iter().find(|n| str_at(n, "/metadata/name") == name);
    for name in &plan.claim {
        let Some(nic) = by_name(name) else { continue };
        let mut claims: Vec<Value> = arr(nic, "/spec/natGateways").cloned().collect();
        claims.push(json!({"ipFamily": family.as_str(), "claimRef": {"name": view.name, "uid": view.uid}}));
        if !patch_claims(&nic_api, nic, claims).await? {
            // The interface changed under us: plan again with fresh data before writing the table.
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
    }
    for name in &plan.release {
        let Some(nic) = by_name(name) else { continue };
        let claims: Vec<Value> = arr(nic, "/spec/natGateways")
            .filter(|c| str_at(c, "/claimRef/uid") != view.uid)
            .cloned()
            .collect();
        if !patch_claims(&nic_api, nic, claims).await? {
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
    }
    let desired_ips = table_json(&plan.table);
    let unchanged = current.as_ref().is_some_and(|t| {
        t.get("ips")
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| json!([]))
            == desired_ips
    });
    if !unchanged {
        let body = json!({
            "apiVersion": API_VERSION,
            "kind": "NATTable",
            "metadata": {
                "name": view.name,
                "namespace": ns,
                "ownerReferences": [{
                    "apiVersion": API_VERSION, "kind": "NATGateway", "name": view.name, "uid": view.uid,
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "ips": desired_ips,
        });
        tables
            .patch(
                &view.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
    }
    let used = g.pointer("/status/usedNATIPs").and_then(Value::as_i64);
    let requested = g.pointer("/status/requestedNATIPs").and_then(Value::as_i64);
    if used != Some(plan.used) || requested != Some(plan.requested) {
        let patch = json!({"status": {"usedNATIPs": plan.used, "requestedNATIPs": plan.requested}});
        Api::<NATGateway>::namespaced(ctx.client.clone(), &ns)
            .patch_status(&view.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Action::await_change())
}

fn gateways_for(store: &IndexedStore<NATGateway>, nic: &NetworkInterface) -> Vec<ObjectRef<NATGateway>> {
    let key = index_key(BY_NETWORK, nic.namespace().as_deref(), &nic.spec.network_ref.name);
    store
        .indexed(&key)
        .iter()
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// Runs the NATGateway controller until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let wc = watcher::Config::default();
    let gateways = informers.get::<NATGateway>();
    let ctrl = Controller::for_stream(gateways.subscribe(), gateways.store().reader()).with_config(
        ControllerConfig::default()
            .concurrency(concurrency)
            .debounce(super::FAN_IN_DEBOUNCE),
    );
    let store = gateways.store();
    // Port slots depend on the interface's spec only; its status (reported by the node) does not re-trigger.
    let nic_informer = informers.get::<NetworkInterface>();
    let nic_events = nic_informer
        .subscribe_filtered(|n: &NetworkInterface| fingerprint(&(&n.spec, &n.metadata.deletion_timestamp)));
    let nics = nic_informer.store();
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let controller = ctrl
        .owns(Api::<NATTable>::all(client.clone()), wc)
        .watches_stream(nic_events, move |nic| gateways_for(&store, &nic))
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("natgateway", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx { client, nics }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
