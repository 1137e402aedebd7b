//! The LoadBalancer reconciler: the load balancer in dpservice, its targets (announced LOADBALANCER_TARGET routes
//! of its VNI, received or from this node's interfaces), its announcement, and the status.
//!
//! Unlike upstream (`controllers/loadbalancer_controller.go`), a change of the ports (or IP) is applied by
//! re-creating the load balancer.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use ipnet::IpNet;
use ironnet_api::metalnet::LoadBalancer;
use ironnet_api::metalnet::loadbalancer::LoadBalancerType;
use ironnet_dpservice::proto::Protocol;
use ironnet_metalbond::{NextHop, Route};
use ironnet_runtime::controller::{Action, Controller};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{UnboundedReceiverStream, WatchStream};

use super::{
    Error, api, ensure_finalizer, error_policy, identity, remove_finalizer, stopped, warn_event, write_status,
};
use crate::agent::{Agent, LOAD_BALANCER_FINALIZER};
use crate::dp::code;
use crate::routes::{desired_lb_targets, plan_set};

/// The ports of a spec as dpservice `(protocol, port)`, sorted; `None` if a protocol is not TCP/UDP.
pub fn dp_ports(lb: &LoadBalancer) -> Option<Vec<(i32, u32)>> {
    let mut out = Vec::new();
    for p in &lb.spec.ports {
        let proto = Protocol::from_str_name(&p.protocol)?;
        if !matches!(proto, Protocol::Tcp | Protocol::Udp) {
            return None;
        }
        out.push((proto as i32, u32::try_from(p.port).ok()?));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

async fn reconcile(lb: Arc<LoadBalancer>, agent: Arc<Agent>) -> Result<Action, Error> {
    let (uid, namespace) = identity(lb.as_ref())?;
    // The watch selects this node's objects; this guards against a server that ignores field selectors.
    let ours = lb.spec.node_name.as_deref() == Some(agent.node.as_str());
    if !ours && !lb.finalizers().iter().any(|f| f == LOAD_BALANCER_FINALIZER) {
        return Ok(Action::await_change());
    }
    let lbs = api::<LoadBalancer>(&agent, &namespace);
    let network_name = lb.spec.network_ref.name.clone();
    if lb.metadata.deletion_timestamp.is_some() {
        if lb.finalizers().iter().any(|f| f == LOAD_BALANCER_FINALIZER) {
            agent.announcer.sync(&uid, BTreeSet::new())?;
            agent.dp.delete_load_balancer(&uid).await?;
            remove_finalizer(&lbs, lb.as_ref(), LOAD_BALANCER_FINALIZER).await?;
            tracing::info!(load_balancer = %lb.name_any(), %uid, "load balancer deleted");
            agent.network_changed(&namespace, &network_name);
        }
        return Ok(Action::await_change());
    }
    if ensure_finalizer(&lbs, lb.as_ref(), LOAD_BALANCER_FINALIZER).await? {
        return Ok(Action::await_change());
    }
    let current = lb
        .status
        .as_ref()
        .map_or(json!({}), |s| serde_json::to_value(s).unwrap_or_default());
    let state = |s: &str| json!({ "state": s });
    let Some(net) = agent.network(&namespace, &network_name) else {
        tracing::info!(load_balancer = %lb.name_any(), network = %network_name, "network not found");
        warn_event(
            &agent,
            lb.as_ref(),
            "NetworkNotFound",
            format!("network {network_name} not found"),
        )
        .await;
        write_status(&lbs, lb.as_ref(), current, state("Pending")).await?;
        return Ok(Action::await_change());
    };
    let vni = net.spec.vni()?;
    let (Some(ip), Some(ports)) = (lb.spec.ip.as_ref().map(|i| i.addr()), dp_ports(&lb)) else {
        warn_event(
            &agent,
            lb.as_ref(),
            "Invalid",
            "ip missing or a port protocol other than TCP/UDP",
        )
        .await;
        write_status(&lbs, lb.as_ref(), current, state("Error")).await?;
        return Ok(Action::await_change());
    };
    if ip.is_ipv6() && !agent.enable_ipv6 {
        tracing::warn!(load_balancer = %lb.name_any(), %ip, "IPv6 load balancer but IPv6 is not enabled");
        warn_event(
            &agent,
            lb.as_ref(),
            "Invalid",
            format!("IPv6 address {ip} but IPv6 is not enabled on this node"),
        )
        .await;
        write_status(&lbs, lb.as_ref(), current, state("Error")).await?;
        return Ok(Action::await_change());
    }

    let actual = agent.dp.get_load_balancer(&uid).await?;
    let underlay = match actual {
        Some(a) if a.vni == Some(vni) && a.ip == ip && a.ports == ports => a.underlay,
        other => {
            if other.is_some() {
                tracing::info!(load_balancer = %lb.name_any(), "load balancer changed; re-creating it");
                agent.dp.delete_load_balancer(&uid).await?;
            }
            let u = agent.dp.create_load_balancer(&uid, vni, ip, &ports).await?;
            tracing::info!(load_balancer = %lb.name_any(), %uid, vni = vni.get(), %ip, underlay = %u, "load balancer created");
            agent.network_changed(&namespace, &network_name);
            u
        }
    };

    let mut errors = Vec::new();
    let want = desired_lb_targets(
        vni,
        ip,
        &agent.mb.routes_in(vni),
        &agent.announcer.local_routes(),
        agent.prefer_network,
    );
    let have: BTreeSet<IpAddr> = agent
        .dp
        .list_load_balancer_targets(&uid)
        .await?
        .into_iter()
        .collect();
    let (delete, create) = plan_set(&want, &have);
    let settled = agent.is_settled();
    for t in delete.iter().filter(|_| settled) {
        match agent.dp.delete_load_balancer_target(&uid, *t).await {
            Err(e) if !matches!(e.code(), Some(code::NOT_FOUND | code::NO_BACKIP | code::NO_LB)) => {
                errors.push(e.to_string())
            }
            _ => {}
        }
    }
    for t in &create {
        match agent.dp.create_load_balancer_target(&uid, *t).await {
            Err(e) if e.code() != Some(code::ALREADY_EXISTS) => errors.push(e.to_string()),
            _ => {}
        }
    }

    let announce_vni = match lb.spec.type_ {
        Some(LoadBalancerType::Public) => agent.public_vni,
        _ => vni,
    };
    let route = Route::new(
        announce_vni,
        IpNet::from(ip),
        NextHop::standard(IpAddr::V6(underlay)),
    );
    if let Err(e) = agent.announcer.sync(&uid, [route].into()) {
        errors.push(format!("announcement: {e}"));
    }
    let s = if errors.is_empty() { "Ready" } else { "Error" };
    write_status(&lbs, lb.as_ref(), current, state(s)).await?;
    if !errors.is_empty() {
        warn_event(&agent, lb.as_ref(), "ApplyFailed", errors.join("; ")).await;
    }
    if errors.is_empty() {
        Ok(Action::await_change())
    } else {
        Err(Error::Steps(errors))
    }
}

/// Runs the LoadBalancer controller until `stop` fires. `triggers` come from route changes of the load
/// balancer's VNI; a change of `all` re-reconciles every load balancer.
pub async fn run(
    agent: Arc<Agent>,
    load_balancers: ironnet_runtime::informer::Subscription<LoadBalancer>,
    triggers: mpsc::UnboundedReceiver<ObjectRef<LoadBalancer>>,
    all: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    Controller::for_stream(load_balancers, agent.load_balancers.reader())
        .reconcile_on(UnboundedReceiverStream::new(triggers))
        .reconcile_all_on(WatchStream::from_changes(all).map(|_| ()))
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnet-loadbalancer", reconcile),
            error_policy,
            agent,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::metalnet::loadbalancer::LBPort;

    #[test]
    fn ports_by_protocol_name() {
        let mut lb = LoadBalancer::new("l", Default::default());
        lb.spec.ports = vec![
            LBPort {
                protocol: "UDP".into(),
                port: 53,
            },
            LBPort {
                protocol: "TCP".into(),
                port: 80,
            },
        ];
        assert_eq!(dp_ports(&lb), Some(vec![(6, 80), (17, 53)]));
        lb.spec.ports.push(LBPort {
            protocol: "ICMP".into(),
            port: 0,
        });
        assert_eq!(dp_ports(&lb), None);
        lb.spec.ports = vec![LBPort {
            protocol: "tcp".into(),
            port: 1,
        }];
        assert_eq!(dp_ports(&lb), None, "dpservice enum names are upper case");
    }
}
