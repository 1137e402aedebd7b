//! apinet NetworkPolicy → NetworkPolicyRule reconciler over [`crate::network_policy::resolve_policy`], the
//! rule resolution upstream ironcore-net's apinetlet NetworkPolicy controller (`apinetlet/controllers`)
//! performs.
//!
//! Upstream's controller-manager only deletes a rule whose policy is gone and leaves resolution to apinetlet,
//! which re-resolves only when the ironcore policy changes. Here the rule follows the apinet objects it depends
//! on: interfaces and load balancers changing labels, IPs or readiness, and the Network.

use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet::{LoadBalancer, Network, NetworkInterface, NetworkPolicy, NetworkPolicyRule};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::network_policy::{
    PolicyInterfaceView, PolicyLoadBalancerView, PolicyPeer, PolicyRuleView, PolicyView, ResolvedPolicy,
    ResolvedRule, resolve_policy,
};
use ironnet_runtime::cache::{BY_NETWORK, IndexedStore, fingerprint, index_key};
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::ReconcileError;

/// Field manager of the rule applies. Distinct from apinetlet's (`networkpolicies.networking.ironcore.dev`),
/// which applies only the origin metadata onto the rule this reconciler creates, so neither apply strips the
/// other's fields.
pub const FIELD_MANAGER: &str = "apinet.ironcore.dev/controller-manager";

/// The priority of a policy without `spec.priority` (as apinetlet).
pub const DEFAULT_PRIORITY: i32 = 1000;

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn ips_at(v: &Value, p: &str, key: Option<&str>) -> Vec<IpAddr> {
    v.pointer(p)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| key.map_or(Some(e), |k| e.get(k)))
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect()
}

/// The policy view of an apinet NetworkInterface (Ready = `status.state == Ready`; IPs = `spec.ips`).
pub fn interface_view(nic: &NetworkInterface) -> PolicyInterfaceView {
    let v = serde_json::to_value(nic).unwrap_or(Value::Null);
    PolicyInterfaceView {
        name: nic.name_any(),
        uid: nic.uid().unwrap_or_default(),
        labels: nic.labels().clone(),
        network: nic.spec.network_ref.name.clone(),
        ready: str_at(&v, "/status/state") == "Ready",
        ips: ips_at(&v, "/spec/ips", None),
    }
}

/// The policy view of an apinet LoadBalancer (IPs = the set `spec.ips[].ip`).
pub fn load_balancer_view(lb: &LoadBalancer) -> PolicyLoadBalancerView {
    let v = serde_json::to_value(lb).unwrap_or(Value::Null);
    PolicyLoadBalancerView {
        name: lb.name_any(),
        labels: lb.labels().clone(),
        network: lb.spec.network_ref.name.clone(),
        ips: ips_at(&v, "/spec/ips", Some("ip")),
    }
}

fn rules(spec: &Value, key: &str, peers_key: &str) -> Option<Vec<PolicyRuleView>> {
    spec.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let mut peers = Vec::new();
            for p in r.get(peers_key).and_then(Value::as_array).into_iter().flatten() {
                let os = p.get("objectSelector").filter(|x| !x.is_null());
                let block = p.get("ipBlock").filter(|x| !x.is_null());
                peers.push(match (os, block) {
                    (Some(os), _) => {
                        // The object selector is a label selector inlined next to `kind`.
                        let mut sel = json!({});
                        for k in ["matchLabels", "matchExpressions"] {
                            if let Some(x) = os.get(k).filter(|x| !x.is_null()) {
                                sel[k] = x.clone();
                            }
                        }
                        PolicyPeer::Objects {
                            kind: str_at(os, "/kind").to_owned(),
                            selector: serde_json::from_value(sel).ok()?,
                        }
                    }
                    (None, Some(b)) => PolicyPeer::IpBlock(b.clone()),
                    (None, None) => PolicyPeer::Empty,
                });
            }
            let ports = r
                .get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Some(PolicyRuleView { ports, peers })
        })
        .collect()
}

/// The resolution view of an apinet NetworkPolicy; `None` when a selector does not parse.
pub fn policy_view(policy: &NetworkPolicy) -> Option<PolicyView> {
    let spec = serde_json::to_value(&policy.spec).ok()?;
    Some(PolicyView {
        network: policy.spec.network_ref.name.clone(),
        selector: policy.spec.network_interface_selector.clone(),
        ingress: rules(&spec, "ingress", "from")?,
        egress: rules(&spec, "egress", "to")?,
    })
}

fn rule_json(rule: &ResolvedRule) -> Value {
    json!({
        "networkPolicyPorts": rule.ports,
        "ipBlock": rule.ip_blocks,
        "ips": rule.ips.iter().map(|i| json!({"ipFamily": i.family.as_str(), "prefix": i.prefix})).collect::<Vec<_>>(),
    })
}

/// The apply body of the NetworkPolicyRule of `policy` on the Network `network` (name, uid).
pub fn desired_rule(policy: &NetworkPolicy, network: (&str, &str), resolved: &ResolvedPolicy) -> Value {
    json!({
        "apiVersion": NetworkPolicyRule::api_version(&()),
        "kind": "NetworkPolicyRule",
        "metadata": {
            "name": policy.name_any(),
            "namespace": policy.namespace(),
            "ownerReferences": [{
                "apiVersion": NetworkPolicy::api_version(&()),
                "kind": "NetworkPolicy",
                "name": policy.name_any(),
                "uid": policy.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "networkRef": {"name": network.0, "uid": network.1},
        "priority": policy.spec.priority.unwrap_or(DEFAULT_PRIORITY),
        "targets": resolved.targets.iter()
            .map(|t| json!({"ip": t.ip.to_string(), "targetRef": {"name": t.name, "uid": t.uid}}))
            .collect::<Vec<_>>(),
        "ingressRule": resolved.ingress.iter().map(rule_json).collect::<Vec<_>>(),
        "egressRule": resolved.egress.iter().map(rule_json).collect::<Vec<_>>(),
    })
}

/// Whether the stored rule already carries `body`'s content and controller.
///
/// Compared as typed values: the stored rule omits empty lists the body spells out (an ingress rule without IP
/// blocks is `"ipBlock": []` in the body and absent once stored), so a JSON comparison never matched a rule with
/// such a list and every reconcile re-applied it.
fn up_to_date(existing: &NetworkPolicyRule, body: &Value) -> bool {
    let Ok(desired) = serde_json::from_value::<NetworkPolicyRule>(body.clone()) else {
        return false;
    };
    let controller = |r: &NetworkPolicyRule| {
        r.owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone())
    };
    let (have, want) = (&existing.spec, &desired.spec);
    controller(existing).is_some()
        && controller(existing) == controller(&desired)
        && have.network_ref == want.network_ref
        && have.priority == want.priority
        && have.targets == want.targets
        && have.ingress_rules == want.ingress_rules
        && have.egress_rules == want.egress_rules
}

struct Ctx {
    client: Client,
    /// apinet NetworkInterfaces by `net:<namespace>/<network>`.
    nics: IndexedStore<NetworkInterface>,
    /// apinet LoadBalancers by `net:<namespace>/<network>`.
    lbs: IndexedStore<LoadBalancer>,
    /// Every apinet Network.
    networks: IndexedStore<Network>,
}

async fn reconcile(policy: Arc<NetworkPolicy>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    // Deleting or gone: the rule goes with the policy through its owner reference.
    if policy.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = policy
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    ctx.networks.wait_ready().await;
    let Some(network) = ctx.networks.get(Some(&ns), &policy.spec.network_ref.name) else {
        // The Network watch brings the policy back once it exists.
        return Ok(Action::await_change());
    };
    let Some(view) = policy_view(&policy) else {
        tracing::warn!(policy = %policy.name_any(), "malformed object selector");
        return Ok(Action::await_change());
    };
    // The caches feed this controller's triggers, so they are at least as new as the event that led here.
    ctx.nics.wait_ready().await;
    ctx.lbs.wait_ready().await;
    let on_network = index_key(BY_NETWORK, Some(&ns), &policy.spec.network_ref.name);
    let nics: Vec<PolicyInterfaceView> = ctx
        .nics
        .indexed(&on_network)
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| interface_view(n))
        .collect();
    let lbs: Vec<PolicyLoadBalancerView> = ctx
        .lbs
        .indexed(&on_network)
        .iter()
        .filter(|l| l.metadata.deletion_timestamp.is_none())
        .map(|l| load_balancer_view(l))
        .collect();
    let resolved = match resolve_policy(&view, &nics, &lbs) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(policy = %policy.name_any(), error = %e, "cannot resolve network policy");
            return Ok(Action::await_change());
        }
    };
    let body = desired_rule(
        &policy,
        (&network.name_any(), &network.uid().unwrap_or_default()),
        &resolved,
    );
    let rules: Api<NetworkPolicyRule> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(existing) = rules.get_opt(&policy.name_any()).await?
        && up_to_date(&existing, &body)
    {
        return Ok(Action::await_change());
    }
    rules
        .patch(
            &policy.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(Action::await_change())
}

fn policies_on(
    store: &Store<NetworkPolicy>,
    ns: Option<String>,
    network: &str,
) -> Vec<ObjectRef<NetworkPolicy>> {
    store
        .state()
        .iter()
        .filter(|p| p.namespace() == ns && p.spec.network_ref.name == network)
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Runs the NetworkPolicy controller until `shutdown` resolves.
///
/// Every NetworkInterface, LoadBalancer or Network event re-reconciles every policy on that network in that
/// namespace: kube-rs mappers see only the new object, so matching on labels would miss an object whose labels
/// stop matching. Reconciles that change nothing write nothing.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let wc = watcher::Config::default();
    let ctrl = Controller::new(Api::<NetworkPolicy>::all(client.clone()), wc.clone()).with_config(
        ControllerConfig::default()
            .concurrency(concurrency)
            .debounce(super::FAN_IN_DEBOUNCE),
    );
    let store = ctrl.store();
    let (s1, s2, s3) = (store.clone(), store.clone(), store);
    // Only what resolution depends on re-triggers: labels, network, IPs and status (not NAT claims).
    let nic_informer = informers.get::<NetworkInterface>();
    let nic_events = nic_informer.subscribe_filtered(|n: &NetworkInterface| {
        fingerprint(&(
            n.labels(),
            &n.spec.network_ref.name,
            &n.spec.ips,
            &n.status,
            &n.metadata.deletion_timestamp,
        ))
    });
    let nics = nic_informer.store();
    let network_informer = informers.get::<Network>();
    let (networks, network_events) = (network_informer.store(), network_informer.subscribe());
    let lb_informer = informers.get::<LoadBalancer>();
    let (lbs, lb_events) = (lb_informer.store(), lb_informer.subscribe());
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let controller = ctrl
        .owns(Api::<NetworkPolicyRule>::all(client.clone()), wc.clone())
        .watches_stream(nic_events, move |n| {
            policies_on(&s1, n.namespace(), &n.spec.network_ref.name)
        })
        .watches_stream(lb_events, move |l| {
            policies_on(&s2, l.namespace(), &l.spec.network_ref.name)
        })
        .watches_stream(network_events, move |n| {
            policies_on(&s3, n.namespace(), &n.name_any())
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("networkpolicy", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx {
                client,
                nics,
                lbs,
                networks,
            }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Family;
    use crate::network_policy::{ObjectIp, PolicyTarget};

    fn policy() -> NetworkPolicy {
        serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkPolicy",
            "metadata": {"name": "np", "namespace": "default", "uid": "policy-uid"},
            "spec": {"networkRef": {"name": "net"}, "networkInterfaceSelector": {}},
        }))
        .unwrap()
    }

    fn resolved(target: &str) -> ResolvedPolicy {
        ResolvedPolicy {
            targets: vec![PolicyTarget {
                ip: target.parse().unwrap(),
                name: "web".into(),
                uid: "web-uid".into(),
            }],
            // No IP blocks and no ports: the lists the stored rule omits.
            ingress: vec![ResolvedRule {
                ports: vec![],
                ip_blocks: vec![],
                ips: vec![ObjectIp {
                    family: Family::V4,
                    prefix: "10.0.0.2/32".into(),
                }],
            }],
            egress: vec![],
        }
    }

    /// The rule as the API server stores it after applying `body`.
    fn stored(body: &Value) -> NetworkPolicyRule {
        let typed: NetworkPolicyRule = serde_json::from_value(body.clone()).unwrap();
        serde_json::from_value(serde_json::to_value(typed).unwrap()).unwrap()
    }

    #[test]
    fn a_stored_rule_with_empty_lists_is_up_to_date_with_its_body() {
        let body = desired_rule(&policy(), ("net", "net-uid"), &resolved("10.0.0.1"));
        assert!(up_to_date(&stored(&body), &body));
    }

    #[test]
    fn a_changed_target_or_controller_is_not_up_to_date() {
        let body = desired_rule(&policy(), ("net", "net-uid"), &resolved("10.0.0.1"));
        let moved = desired_rule(&policy(), ("net", "net-uid"), &resolved("10.0.0.3"));
        assert!(!up_to_date(&stored(&body), &moved));
        let mut orphan = stored(&body);
        orphan.metadata.owner_references = None;
        assert!(!up_to_date(&orphan, &body));
    }
}
