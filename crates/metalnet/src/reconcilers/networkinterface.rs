//! The NetworkInterface reconciler: the interface in dpservice on its claimed device, its VIP, NAT, alias and
//! load balancer prefixes and firewall rules, the routes they announce, and the status.
//!
//! Unlike upstream (`controllers/networkinterface_controller.go`), every part of the spec is applied when it
//! changes: IPs and VNI (the interface is re-created), the VIP and NAT range (replaced), prefixes and firewall rule
//! contents; and any dpservice error (e.g. a rejected Deny rule) is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use futures::StreamExt;
use ipnet::IpNet;
use ironnet_api::metalnet::{Network, NetworkInterface};
use ironnet_runtime::cache::{BY_NETWORK, IndexedStore, index_key};
use ironnet_runtime::controller::{Action, Controller};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use super::{
    Error, api, ensure_finalizer, error_policy, identity, remove_finalizer, stopped, warn_event, write_status,
};
use crate::agent::{Agent, INTERFACE_FINALIZER};
use crate::announce::{InterfaceObjects, interface_routes};
use crate::dp::{DpError, DpResult, Nat, code};
use crate::firewall::{desired_rule, plan_firewall};
use crate::interface::{
    InterfaceAction, SingleAction, plan_interface, plan_single, same_nat, wanted_interface,
};
use crate::routes::plan_set;

/// An empty list where the interface is gone (NO_VM).
fn or_empty<T>(r: DpResult<Vec<T>>) -> DpResult<Vec<T>> {
    match r {
        Err(e) if e.code() == Some(code::NO_VM) => Ok(Vec::new()),
        r => r,
    }
}

/// Removes interface `uid` and everything on it from dpservice, and withdraws its routes.
pub async fn teardown(agent: &Agent, uid: &str) -> Result<(), Error> {
    let dp = &agent.dp;
    for lb in [false, true] {
        for (p, _) in or_empty(dp.list_prefixes(uid, lb).await)? {
            match dp.delete_prefix(uid, p, lb).await {
                Err(e)
                    if !matches!(
                        e.code(),
                        Some(code::NO_VM | code::NOT_FOUND | code::ROUTE_NOT_FOUND)
                    ) =>
                {
                    return Err(e.into());
                }
                _ => {}
            }
        }
    }
    for r in or_empty(dp.list_firewall_rules(uid).await)? {
        dp.delete_firewall_rule(uid, &r.id)
            .await
            .or_else(tolerate_no_vm)?;
    }
    dp.delete_nat(uid).await?;
    dp.delete_vip(uid).await?;
    agent.announcer.sync(uid, BTreeSet::new())?;
    dp.delete_interface(uid).await?;
    Ok(())
}

fn tolerate_no_vm(e: DpError) -> DpResult<()> {
    if e.code() == Some(code::NO_VM) {
        Ok(())
    } else {
        Err(e)
    }
}

async fn sync_vip(agent: &Agent, uid: &str, want: Option<IpAddr>) -> DpResult<Option<(IpAddr, Ipv6Addr)>> {
    let actual = agent.dp.get_vip(uid).await?;
    match plan_single(want, actual.as_ref(), |w, a| *w == a.0) {
        SingleAction::Keep => Ok(actual),
        SingleAction::Delete => {
            agent.dp.delete_vip(uid).await?;
            Ok(None)
        }
        SingleAction::Create(v) => Ok(Some((v, agent.dp.create_vip(uid, v).await?))),
        SingleAction::Replace(v) => {
            agent.dp.delete_vip(uid).await?;
            Ok(Some((v, agent.dp.create_vip(uid, v).await?)))
        }
    }
}

async fn sync_nat(agent: &Agent, uid: &str, want: Option<(IpAddr, u32, u32)>) -> DpResult<Option<Nat>> {
    let actual = agent.dp.get_nat(uid).await?;
    let create = |(ip, min, max): (IpAddr, u32, u32)| async move {
        let underlay = agent.dp.create_nat(uid, ip, min, max).await?;
        Ok(Some(Nat {
            ip,
            min_port: min,
            max_port: max,
            underlay,
            vni: None,
        }))
    };
    match plan_single(want, actual.as_ref(), same_nat) {
        SingleAction::Keep => Ok(actual),
        SingleAction::Delete => {
            agent.dp.delete_nat(uid).await?;
            Ok(None)
        }
        SingleAction::Create(n) => create(n).await,
        SingleAction::Replace(n) => {
            agent.dp.delete_nat(uid).await?;
            create(n).await
        }
    }
}

/// Brings alias (`lb == false`) or load balancer prefixes to `want`; returns what is programmed afterwards.
async fn sync_prefixes(
    agent: &Agent,
    uid: &str,
    want: &BTreeSet<IpNet>,
    lb: bool,
    errors: &mut Vec<String>,
) -> DpResult<Vec<(IpNet, Ipv6Addr)>> {
    let mut have: BTreeMap<IpNet, Ipv6Addr> = agent
        .dp
        .list_prefixes(uid, lb)
        .await?
        .into_iter()
        .map(|(p, u)| (p.trunc(), u))
        .collect();
    let keys: BTreeSet<IpNet> = have.keys().copied().collect();
    let (delete, create) = plan_set(want, &keys);
    for p in delete {
        match agent.dp.delete_prefix(uid, p, lb).await {
            Ok(()) => {
                have.remove(&p);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    for p in create {
        match agent.dp.create_prefix(uid, p, lb).await {
            Ok(u) => {
                have.insert(p, u);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok(have.into_iter().collect())
}

async fn sync_firewall(
    agent: &Agent,
    nic: &NetworkInterface,
    uid: &str,
    errors: &mut Vec<String>,
) -> DpResult<()> {
    let desired: Vec<_> = nic.spec.firewall_rules.iter().map(desired_rule).collect();
    let actual = agent.dp.list_firewall_rules(uid).await?;
    let plan = plan_firewall(&desired, &actual);
    for id in &plan.delete {
        if let Err(e) = agent.dp.delete_firewall_rule(uid, id).await {
            errors.push(e.to_string());
        }
    }
    for rule in plan.create {
        let id = String::from_utf8_lossy(&rule.id).into_owned();
        if let Err(e) = agent.dp.create_firewall_rule(uid, rule).await {
            errors.push(format!("firewall rule {id}: {e}"));
        }
    }
    Ok(())
}

/// The status fields that do not depend on dpservice: everything unset except `state`.
fn pending_status() -> Value {
    json!({
        "state": "Pending", "pciAddress": null, "tapDevice": null, "virtualIP": null, "natIP": null,
        "prefixes": null, "loadBalancerTargets": null,
    })
}

fn mirrored(spec: &[ironnet_api::common::IPPrefix], realised: &[(IpNet, Ipv6Addr)]) -> Value {
    let v: Vec<String> = spec
        .iter()
        .filter(|p| {
            IpNet::new(p.addr(), p.len()).is_ok_and(|n| realised.iter().any(|(r, _)| *r == n.trunc()))
        })
        .map(ToString::to_string)
        .collect();
    if v.is_empty() { Value::Null } else { json!(v) }
}

async fn reconcile(nic: Arc<NetworkInterface>, agent: Arc<Agent>) -> Result<Action, Error> {
    let (uid, namespace) = identity(nic.as_ref())?;
    // The watch selects this node's objects; this guards against a server that ignores field selectors.
    let ours = nic.spec.node_name.as_deref() == Some(agent.node.as_str());
    if !ours && !nic.finalizers().iter().any(|f| f == INTERFACE_FINALIZER) {
        return Ok(Action::await_change());
    }
    let nics = api::<NetworkInterface>(&agent, &namespace);
    let network_name = nic.spec.network_ref.name.clone();
    if nic.metadata.deletion_timestamp.is_some() {
        if nic.finalizers().iter().any(|f| f == INTERFACE_FINALIZER) {
            teardown(&agent, &uid).await?;
            agent.claims.release(&uid)?;
            remove_finalizer(&nics, nic.as_ref(), INTERFACE_FINALIZER).await?;
            tracing::info!(interface = %nic.name_any(), %uid, "interface deleted");
            agent.network_changed(&namespace, &network_name);
        }
        return Ok(Action::await_change());
    }
    if ensure_finalizer(&nics, nic.as_ref(), INTERFACE_FINALIZER).await? {
        return Ok(Action::await_change());
    }
    let current = nic
        .status
        .as_ref()
        .map_or(json!({}), |s| serde_json::to_value(s).unwrap_or_default());
    let Some(net) = agent.network(&namespace, &network_name) else {
        tracing::info!(interface = %nic.name_any(), network = %network_name, "network not found");
        warn_event(
            &agent,
            nic.as_ref(),
            "NetworkNotFound",
            format!("network {network_name} not found"),
        )
        .await;
        write_status(&nics, nic.as_ref(), current, pending_status()).await?;
        return Ok(Action::await_change());
    };
    let vni = net.spec.vni()?;
    let actual = agent.dp.get_interface(&uid).await?;
    // The device dpservice has the interface on wins over the claim (a restart may have lost the claim file).
    let device = match actual.as_ref().and_then(|a| agent.claims.by_device(&a.device)) {
        Some(d) => {
            agent.claims.adopt(&uid, &d)?;
            d
        }
        None => match agent.claims.get_or_claim(&uid) {
            Ok(d) => d,
            Err(e) => {
                let mut s = pending_status();
                s["state"] = json!("Error");
                write_status(&nics, nic.as_ref(), current, s).await?;
                return Err(e.into());
            }
        },
    };
    let want = match wanted_interface(&nic.spec, &uid, vni, &device.device, agent.enable_ipv6) {
        Ok(w) => w,
        Err(e) => {
            // Retrying cannot fix the spec; the next spec change triggers a reconcile.
            tracing::warn!(interface = %nic.name_any(), error = %e, "invalid interface");
            warn_event(&agent, nic.as_ref(), "Invalid", &e).await;
            let mut s = pending_status();
            s["state"] = json!("Error");
            write_status(&nics, nic.as_ref(), current, s).await?;
            return Ok(Action::await_change());
        }
    };
    let underlay = match (plan_interface(&want.new, actual.as_ref()), actual) {
        (InterfaceAction::Keep, Some(a)) => a.underlay,
        (action, _) => {
            if action == InterfaceAction::Recreate {
                tracing::info!(interface = %nic.name_any(), %uid, "interface changed; re-creating it");
                teardown(&agent, &uid).await?;
            }
            let u = agent.dp.create_interface(&want.new).await?;
            tracing::info!(interface = %nic.name_any(), %uid, vni = vni.get(), device = %device.name, underlay = %u, "interface created");
            agent.network_changed(&namespace, &network_name);
            u
        }
    };

    let mut errors = Vec::new();
    let vip = sync_vip(&agent, &uid, want.vip).await.unwrap_or_else(|e| {
        errors.push(format!("virtual IP: {e}"));
        None
    });
    let nat = sync_nat(&agent, &uid, want.nat).await.unwrap_or_else(|e| {
        errors.push(format!("NAT: {e}"));
        None
    });
    let prefixes = sync_prefixes(&agent, &uid, &want.prefixes, false, &mut errors)
        .await
        .unwrap_or_else(|e| {
            errors.push(format!("prefixes: {e}"));
            Vec::new()
        });
    let lb_prefixes = sync_prefixes(&agent, &uid, &want.lb_prefixes, true, &mut errors)
        .await
        .unwrap_or_else(|e| {
            errors.push(format!("load balancer targets: {e}"));
            Vec::new()
        });
    if let Err(e) = sync_firewall(&agent, &nic, &uid, &mut errors).await {
        errors.push(format!("firewall: {e}"));
    }
    let objects = InterfaceObjects {
        vni,
        ips: want
            .new
            .ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(want.new.ipv6.map(IpAddr::V6))
            .collect(),
        underlay: Some(underlay),
        prefixes: prefixes.clone(),
        lb_prefixes: lb_prefixes.clone(),
        vip,
        nat,
    };
    if let Err(e) = agent
        .announcer
        .sync(&uid, interface_routes(&objects, agent.public_vni))
    {
        errors.push(format!("announcements: {e}"));
    }

    let status = json!({
        "state": if errors.is_empty() { "Ready" } else { "Error" },
        "pciAddress": null,
        "tapDevice": if agent.tap_mode { json!({"name": device.name}) } else { Value::Null },
        "virtualIP": vip.map(|(v, _)| v.to_string()),
        "natIP": nat.map(|n| json!({"ip": n.ip.to_string(), "port": n.min_port, "endPort": n.max_port})),
        "prefixes": mirrored(&nic.spec.prefixes, &prefixes),
        "loadBalancerTargets": mirrored(&nic.spec.load_balancer_targets, &lb_prefixes),
    });
    write_status(&nics, nic.as_ref(), current, status).await?;
    if !errors.is_empty() {
        warn_event(&agent, nic.as_ref(), "ApplyFailed", errors.join("; ")).await;
    }
    if errors.is_empty() {
        Ok(Action::await_change())
    } else {
        Err(Error::Steps(errors))
    }
}

/// The interfaces on Network `net` (this node's, from the cache).
fn interfaces_on(store: &IndexedStore<NetworkInterface>, net: &Network) -> Vec<ObjectRef<NetworkInterface>> {
    store
        .indexed(&index_key(
            BY_NETWORK,
            net.namespace().as_deref(),
            &net.name_any(),
        ))
        .iter()
        .map(|n| ObjectRef::from_obj(n.as_ref()))
        .collect()
}

/// Runs the NetworkInterface controller until `stop` fires; a change of `all` re-reconciles every interface.
pub async fn run(
    agent: Arc<Agent>,
    interfaces: ironnet_runtime::informer::Subscription<NetworkInterface>,
    networks: ironnet_runtime::informer::Subscription<Network>,
    all: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    let store = agent.interfaces.clone();
    Controller::for_stream(interfaces, agent.interfaces.reader())
        .watches_stream(networks, move |n: Network| interfaces_on(&store, &n))
        .reconcile_all_on(WatchStream::from_changes(all).map(|_| ()))
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnet-networkinterface", reconcile),
            error_policy,
            agent,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
