//! kube-rs reconcilers: thin shells that read metalnetlet's caches, call the pure mappings of this crate and
//! write only what differs.
//!
//! Every controller takes its triggers from [`Caches`] subscriptions, so a reconcile reads caches at least as
//! new as the event that triggered it; writes are server-side applies (force, [`METALNET_FIELD_MANAGER`]) or
//! carry the cached resourceVersion, so a stale cache costs a conflict and a retry, never a lost update.

pub mod gc;
pub mod instance;
pub mod network;
pub mod networkinterface;
pub mod node;

pub(crate) use ironnet_runtime::finalizer::{delete_gone, ensure_finalizer, remove_finalizer};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use ironnet_api::{apinet, metalnet};
use ironnet_runtime::cache::{BY_NETWORK, index_key};
use ironnet_runtime::informer::Informer;
use ironnet_runtime::{ReconcileError, is_not_found};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::names::{INSTANCE_ORIGIN, METALNET_FIELD_MANAGER, parse_node_name};

/// Delay before checking again whether a deleted object is gone (its own finalizers may hold it).
pub(crate) const DELETE_RECHECK: Duration = Duration::from_millis(500);

/// Index of objects by the apinet Node they are on (`node:/<node name>`).
pub const BY_NODE: &str = "node";
/// Index of objects by an IP they have or target on a Network (`ip:<namespace>/<network>/<ip>`). Every
/// Network is its own address space, so the same IP on two Networks names two unrelated interfaces.
pub const BY_IP: &str = "ip";
/// Index of metalnet objects by the UID of their source (`origin:/<uid>`).
pub const BY_ORIGIN: &str = "origin";

/// The shared caches: one watch per kind for all of metalnetlet's controllers, each an index over what the
/// controllers look up.
#[derive(Clone, Debug)]
pub struct Caches {
    /// metalnet (core/v1) Nodes, restricted by `--metalnet-node-selector`.
    pub metalnet_nodes: Informer<Node>,
    /// apinet Networks (looked up by namespace and name).
    pub networks: Informer<apinet::Network>,
    /// apinet NetworkInterfaces by node, network and IP.
    pub nics: Informer<apinet::NetworkInterface>,
    /// apinet Instances by node and network.
    pub instances: Informer<apinet::Instance>,
    /// apinet LoadBalancers by network.
    pub load_balancers: Informer<apinet::LoadBalancer>,
    /// apinet LoadBalancerRoutings (by name: a routing is named as its LoadBalancer).
    pub routings: Informer<apinet::LoadBalancerRouting>,
    /// apinet NATGateways (by name).
    pub nat_gateways: Informer<apinet::NATGateway>,
    /// apinet NATTables (by name: a table is named as its gateway).
    pub nat_tables: Informer<apinet::NATTable>,
    /// apinet NetworkPolicyRules by target IP.
    pub policy_rules: Informer<apinet::NetworkPolicyRule>,
    /// metalnet Networks of the metalnet namespace.
    pub metalnet_networks: Informer<metalnet::Network>,
    /// metalnet NetworkInterfaces of the metalnet namespace.
    pub metalnet_nics: Informer<metalnet::NetworkInterface>,
    /// metalnet LoadBalancers of the metalnet namespace, by source Instance UID.
    pub metalnet_lbs: Informer<metalnet::LoadBalancer>,
}

fn informer<K>(
    api: Api<K>,
    config: watcher::Config,
    index: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
) -> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    Informer::new(index, watcher(api, config).default_backoff())
}

fn unindexed<K>(_: &K) -> Vec<String> {
    Vec::new()
}

/// The [`BY_IP`] key of `ip` on `network` (an apinet Network name) in `namespace`.
pub fn ip_key(namespace: Option<&str>, network: &str, ip: &ironnet_api::common::IP) -> String {
    index_key(BY_IP, namespace, &format!("{network}/{ip}"))
}

fn ip_keys<'a>(
    namespace: Option<&str>,
    network: &str,
    ips: impl Iterator<Item = &'a ironnet_api::common::IP>,
) -> Vec<String> {
    ips.map(|ip| ip_key(namespace, network, ip)).collect()
}

impl Caches {
    /// Starts every watch: apinet kinds across all namespaces through `apinet`, metalnet kinds in
    /// `metalnet_namespace` and Nodes matching `node_selector` through `metalnet`.
    pub fn start(
        apinet: &Client,
        metalnet: &Client,
        metalnet_namespace: &str,
        node_selector: Option<&str>,
    ) -> Self {
        let wc = watcher::Config::default;
        let node_wc = match node_selector {
            Some(s) => wc().labels(s),
            None => wc(),
        };
        Caches {
            metalnet_nodes: informer(Api::all(metalnet.clone()), node_wc, unindexed),
            networks: informer(Api::all(apinet.clone()), wc(), unindexed),
            nics: informer(Api::all(apinet.clone()), wc(), |n: &apinet::NetworkInterface| {
                let ns = n.metadata.namespace.as_deref();
                let mut keys = ip_keys(ns, &n.spec.network_ref.name, n.spec.ips.iter());
                keys.push(index_key(BY_NODE, None, &n.spec.node_ref.name));
                keys.push(index_key(BY_NETWORK, ns, &n.spec.network_ref.name));
                keys
            }),
            instances: informer(Api::all(apinet.clone()), wc(), |i: &apinet::Instance| {
                let mut keys = vec![index_key(
                    BY_NETWORK,
                    i.metadata.namespace.as_deref(),
                    &i.spec.network_ref.name,
                )];
                keys.extend(
                    i.spec
                        .node_ref
                        .as_ref()
                        .map(|n| index_key(BY_NODE, None, &n.name)),
                );
                keys
            }),
            load_balancers: informer(Api::all(apinet.clone()), wc(), |lb: &apinet::LoadBalancer| {
                vec![index_key(
                    BY_NETWORK,
                    lb.metadata.namespace.as_deref(),
                    &lb.spec.network_ref.name,
                )]
            }),
            routings: informer(Api::all(apinet.clone()), wc(), unindexed),
            nat_gateways: informer(Api::all(apinet.clone()), wc(), unindexed),
            nat_tables: informer(Api::all(apinet.clone()), wc(), unindexed),
            policy_rules: informer(Api::all(apinet.clone()), wc(), |r: &apinet::NetworkPolicyRule| {
                ip_keys(
                    r.metadata.namespace.as_deref(),
                    &r.spec.network_ref.name,
                    r.spec.targets.iter().filter_map(|t| t.ip.as_ref()),
                )
            }),
            metalnet_networks: informer(
                Api::namespaced(metalnet.clone(), metalnet_namespace),
                wc(),
                unindexed,
            ),
            metalnet_nics: informer(
                Api::namespaced(metalnet.clone(), metalnet_namespace),
                wc(),
                unindexed,
            ),
            metalnet_lbs: informer(
                Api::namespaced(metalnet.clone(), metalnet_namespace),
                wc(),
                |lb: &metalnet::LoadBalancer| {
                    lb.labels()
                        .get(&INSTANCE_ORIGIN.uid_label())
                        .map(|uid| index_key(BY_ORIGIN, None, uid))
                        .into_iter()
                        .collect()
                },
            ),
        }
    }
}

/// What every metalnetlet controller needs.
#[derive(Clone)]
pub struct Ctx {
    /// Client of the apinet (`core.apinet.ironcore.dev`) API server.
    pub apinet: Client,
    /// Client of the metalnet API server (core/v1 Nodes and `networking.metalnet.ironcore.dev`).
    pub metalnet: Client,
    /// The partition served.
    pub partition: String,
    /// Namespace of the metalnet objects.
    pub metalnet_namespace: String,
    /// Labels of every apinet Node of the partition (besides the partition label).
    pub node_labels: BTreeMap<String, String>,
    /// Whether peerings are left out of metalnet Networks and apinet Network status.
    pub network_peering_disabled: bool,
    /// `--metalnet-node-selector`, if any.
    pub metalnet_node_selector: Option<String>,
    /// Maximum concurrent reconciles per controller.
    pub concurrency: u16,
    /// The shared caches.
    pub caches: Caches,
}

impl Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The clients carry no useful state to print.
        f.debug_struct("Ctx")
            .field("partition", &self.partition)
            .field("metalnet_namespace", &self.metalnet_namespace)
            .field("node_labels", &self.node_labels)
            .field("network_peering_disabled", &self.network_peering_disabled)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// A metalnet API in the metalnet namespace.
    pub fn metalnet_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.metalnet.clone(), &self.metalnet_namespace)
    }

    /// The metalnet node of apinet node `node_ref` if it belongs to this partition and is cached (i.e. it
    /// exists and matches the node selector).
    pub fn metalnet_node(&self, node_ref: &str) -> Option<std::sync::Arc<Node>> {
        let name = parse_node_name(&self.partition, node_ref)?;
        self.caches.metalnet_nodes.store().get(None, name)
    }

    /// The UID of apinet Network `namespace/name`, if it is cached.
    pub fn network_uid(&self, namespace: &str, name: &str) -> Option<String> {
        self.caches
            .networks
            .store()
            .get(Some(namespace), name)
            .and_then(|n| n.metadata.uid.clone())
    }
}

/// Server-side applies `body` with field manager `manager` (force) and returns the applied object.
pub(crate) async fn apply<K>(
    api: &Api<K>,
    name: &str,
    manager: &str,
    body: &Value,
) -> Result<K, ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    Ok(api
        .patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(body))
        .await?)
}

/// Server-side applies a metalnet object (field manager [`METALNET_FIELD_MANAGER`]).
pub(crate) async fn apply_metalnet<K>(api: &Api<K>, name: &str, body: &Value) -> Result<K, ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    apply(api, name, METALNET_FIELD_MANAGER, body).await
}

/// Merge-patches the status subresource of object `name`; a vanished object is not an error.
pub(crate) async fn patch_status<K>(api: &Api<K>, name: &str, patch: &Value) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The stop signal every controller of one metalnetlet run shares.
pub type Stop = tokio::sync::watch::Receiver<bool>;

/// A future resolving once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(mut stop: Stop) {
    let _ = stop.wait_for(|v| *v).await;
}
