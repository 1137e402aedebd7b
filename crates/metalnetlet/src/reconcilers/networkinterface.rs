//! apinet NetworkInterface → metalnet NetworkInterface `<apinet UID>` on the interface's node, and its state
//! back (upstream ironcore-net `metalnetlet/controllers/networkinterface_controller.go`) over
//! [`crate::networkinterface`] and [`crate::firewall`].

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::common::IP;
use ironnet_api::metalnet::NATDetails;
use ironnet_api::{apinet, metalnet};
use ironnet_runtime::ReconcileError;
use ironnet_runtime::cache::{BY_NETWORK, IndexedStore, index_key};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use ironnet_runtime::related::RelatedObjects;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::{
    BY_NODE, Ctx, Stop, apply_metalnet, delete_gone, ensure_finalizer, ip_key, patch_status,
    remove_finalizer, stopped,
};
use crate::firewall::firewall_rules;
use crate::names::{NETWORK_INTERFACE_ORIGIN, parse_node_name, partition_finalizer, partition_node_name};
use crate::networkinterface::{
    NicInputs, apinet_nic_status, metalnet_nic_spec, nat_section_details, nic_status_patch,
};

/// IPs of the LoadBalancers on the interface's network whose routing (named as the LoadBalancer) has a
/// destination among the interface's IPs.
fn load_balancer_targets(ctx: &Ctx, nic: &apinet::NetworkInterface, namespace: &str) -> BTreeSet<IP> {
    let routings = ctx.caches.routings.store();
    let mut targets = BTreeSet::new();
    let key = index_key(BY_NETWORK, Some(namespace), &nic.spec.network_ref.name);
    for lb in ctx.caches.load_balancers.store().indexed(&key) {
        let Some(routing) = routings.get(Some(namespace), &lb.name_any()) else {
            continue;
        };
        let targeted = routing
            .spec
            .destinations
            .iter()
            .any(|d| d.ip.as_ref().is_some_and(|ip| nic.spec.ips.contains(ip)));
        if targeted {
            targets.extend(lb.spec.ips.iter().filter_map(|i| i.ip.clone()));
        }
    }
    targets
}

/// The NAT assignments of the interface: for each NAT gateway it claims (with a matching UID), the first
/// NATTable section targeting the interface.
fn nat_details(ctx: &Ctx, nic: &apinet::NetworkInterface, namespace: &str, uid: &str) -> Vec<NATDetails> {
    let gateways = ctx.caches.nat_gateways.store();
    let tables = ctx.caches.nat_tables.store();
    let mut out = Vec::new();
    for nat in &nic.spec.nats {
        let claimed = gateways
            .get(Some(namespace), &nat.claim_ref.name)
            .is_some_and(|g| g.metadata.uid.as_deref() == Some(nat.claim_ref.uid.as_str()));
        let Some(table) = claimed
            .then(|| tables.get(Some(namespace), &nat.claim_ref.name))
            .flatten()
        else {
            continue;
        };
        let section = table.spec.ips.iter().find_map(|nat_ip| {
            nat_ip
                .sections
                .iter()
                .find(|s| s.target_ref.as_ref().is_some_and(|t| t.uid == uid))
                .map(|s| nat_section_details(nat_ip.ip.clone(), s.port, s.end_port))
        });
        out.extend(section);
    }
    out
}

/// The NetworkPolicyRules of the interface's Network targeting any of its IPs, by name (so the derived
/// firewall rules come in a stable order). A rule of another Network targeting the same address is about
/// another interface.
fn policy_rules(
    ctx: &Ctx,
    nic: &apinet::NetworkInterface,
    namespace: &str,
) -> Vec<Arc<apinet::NetworkPolicyRule>> {
    let store = ctx.caches.policy_rules.store();
    let mut rules: Vec<Arc<apinet::NetworkPolicyRule>> = Vec::new();
    for ip in &nic.spec.ips {
        for r in store.indexed(&ip_key(Some(namespace), &nic.spec.network_ref.name, ip)) {
            if !rules.iter().any(|e| e.metadata.uid == r.metadata.uid) {
                rules.push(r);
            }
        }
    }
    rules.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    rules
}

/// Deletes the metalnet interface and drops the finalizer once it is gone (the interface left the partition's
/// live nodes, or is being deleted).
async fn cleanup(
    ctx: &Ctx,
    api: &Api<apinet::NetworkInterface>,
    nic: &apinet::NetworkInterface,
    uid: &str,
) -> Result<Action, ReconcileError> {
    let finalizer = partition_finalizer(&ctx.partition);
    if !nic.finalizers().contains(&finalizer) {
        return Ok(Action::await_change());
    }
    if !delete_gone(&ctx.metalnet_api::<metalnet::NetworkInterface>(), uid).await? {
        return Ok(Action::requeue(super::DELETE_RECHECK));
    }
    remove_finalizer(api, nic, &finalizer).await?;
    Ok(Action::await_change())
}

async fn reconcile(nic: Arc<apinet::NetworkInterface>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let finalizer = partition_finalizer(&ctx.partition);
    let on_partition = parse_node_name(&ctx.partition, &nic.spec.node_ref.name).is_some();
    if !on_partition && !nic.finalizers().contains(&finalizer) {
        return Ok(Action::await_change());
    }
    let namespace = nic
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = nic.uid().ok_or(ReconcileError::MissingMetadata("uid"))?;
    let api: Api<apinet::NetworkInterface> = Api::namespaced(ctx.apinet.clone(), &namespace);
    if nic.metadata.deletion_timestamp.is_some() {
        return cleanup(&ctx, &api, &nic, &uid).await;
    }
    let node = ctx
        .metalnet_node(&nic.spec.node_ref.name)
        .filter(|n| n.metadata.deletion_timestamp.is_none());
    let Some(node) = node else {
        return cleanup(&ctx, &api, &nic, &uid).await;
    };
    if ensure_finalizer(&api, &nic, &finalizer).await? {
        return Ok(Action::await_change());
    }
    let Some(network) = ctx.network_uid(&namespace, &nic.spec.network_ref.name) else {
        // The Network's creation triggers this interface again.
        return Ok(Action::await_change());
    };
    let rules = policy_rules(&ctx, &nic, &namespace);
    let (firewall_rules, problems) = firewall_rules(rules.iter().map(Arc::as_ref));
    for problem in problems {
        tracing::warn!(namespace, name = %nic.name_any(), "{problem}");
    }
    let inputs = NicInputs {
        network,
        node: node.name_any(),
        load_balancer_targets: load_balancer_targets(&ctx, &nic, &namespace),
        nats: nat_details(&ctx, &nic, &namespace, &uid),
        firewall_rules,
    };
    let spec = metalnet_nic_spec(&nic, &inputs);
    let metalnet_api: Api<metalnet::NetworkInterface> = ctx.metalnet_api();
    let cached = ctx
        .caches
        .metalnet_nics
        .store()
        .get(Some(&ctx.metalnet_namespace), &uid);
    // An unchanged spec is not applied again: the cache holds what the last apply wrote, and a change of the
    // metalnet object by anyone else triggers this reconcile again.
    let current = match cached {
        Some(m) if m.spec == spec && NETWORK_INTERFACE_ORIGIN.stems_from(m.labels(), &uid) => m,
        stale => {
            if let Some(m) = &stale {
                tracing::debug!(
                    interface = %nic.name_any(),
                    changed = ?changed_fields(&m.spec, &spec),
                    "re-applying metalnet interface"
                );
            }
            let data = ironnet_runtime::origin::OriginData {
                namespace: namespace.clone(),
                name: nic.name_any(),
                uid: uid.clone(),
            };
            let body = json!({
                "apiVersion": "networking.metalnet.ironcore.dev/v1alpha1",
                "kind": "NetworkInterface",
                "metadata": {
                    "name": uid,
                    "namespace": ctx.metalnet_namespace,
                    "labels": NETWORK_INTERFACE_ORIGIN.labels(&data),
                    "annotations": NETWORK_INTERFACE_ORIGIN.annotations(&data),
                },
                "spec": spec,
            });
            Arc::new(apply_metalnet(&metalnet_api, &uid, &body).await?)
        }
    };
    if let Some(patch) = nic_status_patch(nic.status.as_ref(), &apinet_nic_status(&current)) {
        patch_status(&api, &nic.name_any(), &patch).await?;
    }
    Ok(Action::await_change())
}

/// The top-level spec fields that differ between `old` and `new` (for the re-apply log line).
fn changed_fields(old: &metalnet::NetworkInterfaceSpec, new: &metalnet::NetworkInterfaceSpec) -> Vec<String> {
    let (serde_json::Value::Object(o), serde_json::Value::Object(n)) = (json!(old), json!(new)) else {
        return Vec::new();
    };
    let mut keys: BTreeSet<&String> = o.keys().collect();
    keys.extend(n.keys());
    keys.into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .cloned()
        .collect()
}

/// The interfaces on `network` of `namespace` with any of `ips`.
fn nics_with_ips<'a>(
    nics: &IndexedStore<apinet::NetworkInterface>,
    namespace: Option<&str>,
    network: &str,
    ips: impl Iterator<Item = &'a IP>,
) -> Vec<ObjectRef<apinet::NetworkInterface>> {
    let mut refs: Vec<ObjectRef<apinet::NetworkInterface>> = Vec::new();
    for ip in ips {
        for n in nics.indexed(&ip_key(namespace, network, ip)) {
            let r = ObjectRef::from_obj(n.as_ref());
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
    }
    refs
}

/// Runs the NetworkInterface controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let c = &ctx.caches;
    let nics = c.nics.store();
    let (n1, n2, n3, n4, n5) = (
        nics.clone(),
        nics.clone(),
        nics.clone(),
        nics.clone(),
        nics.clone(),
    );
    let routings = c.routings.store();
    let routings_seen = c.routings.store();
    let lbs = c.load_balancers.store();
    let rules_seen = c.policy_rules.store();
    let tables_seen = c.nat_tables.store();
    let (by_routing, by_rule, by_table) = (
        RelatedObjects::new(),
        RelatedObjects::new(),
        RelatedObjects::new(),
    );
    let (p1, p2) = (ctx.partition.clone(), ctx.partition.clone());
    Controller::for_stream(c.nics.subscribe(), nics.reader())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        // A metalnet node appearing, going or being deleted: the interfaces on it.
        .watches_stream(
            c.metalnet_nodes.subscribe_filtered(|n: &Node| {
                ironnet_runtime::cache::hash_of(&n.metadata.deletion_timestamp.is_some())
            }),
            move |n: Node| {
                n1.indexed(&index_key(
                    BY_NODE,
                    None,
                    &partition_node_name(&p1, &n.name_any()),
                ))
                .iter()
                .map(|n| ObjectRef::from_obj(n.as_ref()))
                .collect::<Vec<_>>()
            },
        )
        // A Network appearing: the interfaces waiting for its UID.
        .watches_stream(
            c.networks
                .subscribe_filtered(|n: &apinet::Network| ironnet_runtime::cache::hash_of(&n.metadata.uid)),
            move |net: apinet::Network| {
                n2.indexed(&index_key(
                    BY_NETWORK,
                    net.metadata.namespace.as_deref(),
                    &net.name_any(),
                ))
                .iter()
                .map(|n| ObjectRef::from_obj(n.as_ref()))
                .collect::<Vec<_>>()
            },
        )
        // A LoadBalancer (its IPs): the destinations of its routing.
        .watches_stream(c.load_balancers.subscribe(), move |lb: apinet::LoadBalancer| {
            let ns = lb.metadata.namespace.clone();
            routings
                .get(ns.as_deref(), &lb.name_any())
                .map(|r| {
                    nics_with_ips(
                        &n3,
                        ns.as_deref(),
                        &lb.spec.network_ref.name,
                        r.spec.destinations.iter().filter_map(|d| d.ip.as_ref()),
                    )
                })
                .unwrap_or_default()
        })
        // Routings, policy rules and NAT tables: the interfaces they relate to now and, so that an interface
        // dropped from them loses what it derived (LB targets, firewall rules, NAT), the ones they related to
        // before. An object no longer in its cache was deleted.
        .watches_stream(c.routings.subscribe(), move |r: apinet::LoadBalancerRouting| {
            // A routing is on its LoadBalancer's Network (same name); one without a LoadBalancer targets nothing.
            let network = lbs
                .get(r.metadata.namespace.as_deref(), &r.name_any())
                .map(|lb| lb.spec.network_ref.name.clone())
                .unwrap_or_default();
            let now = nics_with_ips(
                &n4,
                r.metadata.namespace.as_deref(),
                &network,
                r.spec.destinations.iter().filter_map(|d| d.ip.as_ref()),
            );
            let deleted = routings_seen
                .get(r.metadata.namespace.as_deref(), &r.name_any())
                .is_none();
            by_routing.update(&r, deleted, now)
        })
        .watches_stream(c.policy_rules.subscribe(), move |r: apinet::NetworkPolicyRule| {
            let now = nics_with_ips(
                &n5,
                r.metadata.namespace.as_deref(),
                &r.spec.network_ref.name,
                r.spec.targets.iter().filter_map(|t| t.ip.as_ref()),
            );
            let deleted = rules_seen
                .get(r.metadata.namespace.as_deref(), &r.name_any())
                .is_none();
            by_rule.update(&r, deleted, now)
        })
        // A NATTable: the interfaces of the partition it gives a section to (and gave one to before).
        .watches_stream(c.nat_tables.subscribe(), move |t: apinet::NATTable| {
            let ns = t.metadata.namespace.clone().unwrap_or_default();
            let now = t
                .spec
                .ips
                .iter()
                .flat_map(|ip| &ip.sections)
                .filter_map(|s| s.target_ref.as_ref())
                .filter(|r| parse_node_name(&p2, &r.node_ref.name).is_some())
                .map(|r| ObjectRef::new(&r.name).within(&ns))
                .collect::<Vec<_>>();
            let deleted = tables_seen.get(Some(&ns), &t.name_any()).is_none();
            by_table.update(&t, deleted, now)
        })
        // The metalnet interface's spec or status changing: its source.
        .watches_stream(
            c.metalnet_nics
                .subscribe_filtered(|m: &metalnet::NetworkInterface| {
                    ironnet_runtime::cache::hash_of(&(
                        serde_json::to_string(&m.spec).unwrap_or_default(),
                        serde_json::to_string(&m.status).unwrap_or_default(),
                    ))
                }),
            |m: metalnet::NetworkInterface| {
                let data = NETWORK_INTERFACE_ORIGIN.data_of(m.labels(), m.annotations())?;
                Some(ObjectRef::<apinet::NetworkInterface>::new(&data.name).within(&data.namespace))
            },
        )
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("metalnetlet-networkinterface", reconcile),
            ironnet_runtime::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
