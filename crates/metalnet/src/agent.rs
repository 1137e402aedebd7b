//! The state every metalnet reconciler shares: the node's caches, the dpservice client, metalbond, the
//! announcements, the interface claims, and the triggers through which route changes and a dpservice restart
//! reach the controllers.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::sync::Arc;

use ipnet::IpNet;
use ironnet_api::metalnet::{LoadBalancer, Network, NetworkInterface};
use ironnet_metalbond::{MetalBond, Route};
use ironnet_runtime::cache::{BY_NETWORK, IndexedStore, index_key};
use ironnet_vni::Vni;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, watch};

use crate::announce::Announcer;
use crate::claims::ClaimStore;
use crate::dp::Dp;
use crate::routes::{self, NetworkPeering};

/// Where reconciles are requested from outside the watches.
#[derive(Debug, Clone)]
pub struct Triggers {
    /// Reconcile one Network.
    pub network: mpsc::UnboundedSender<ObjectRef<Network>>,
    /// Reconcile one LoadBalancer.
    pub load_balancer: mpsc::UnboundedSender<ObjectRef<LoadBalancer>>,
    /// Bumped to reconcile everything (dpservice was re-initialized, or the received routes settled).
    pub all: watch::Sender<u64>,
}

/// The node agent's shared state.
pub struct Agent {
    /// API client.
    pub client: kube::Client,
    /// This node.
    pub node: String,
    /// The metalbond public VNI.
    pub public_vni: Vni,
    /// `--enable-ipv6`.
    pub enable_ipv6: bool,
    /// `--router-address`.
    pub router_fallback: Option<Ipv6Addr>,
    /// `--prefer-network`.
    pub prefer_network: Option<IpNet>,
    /// `--tapdevice-mod`: report `status.tapDevice`.
    pub tap_mode: bool,
    /// dpservice.
    pub dp: Dp,
    /// metalbond.
    pub mb: MetalBond,
    /// What this node announces.
    pub announcer: Announcer,
    /// Which device each interface has.
    pub claims: ClaimStore,
    /// All Networks (of the watched namespace).
    pub networks: IndexedStore<Network>,
    /// The NetworkInterfaces of this node, indexed by Network.
    pub interfaces: IndexedStore<NetworkInterface>,
    /// The LoadBalancers of this node, indexed by Network.
    pub load_balancers: IndexedStore<LoadBalancer>,
    /// Reconcile requests.
    pub triggers: Triggers,
    /// Whether the received routes are complete enough to delete what is not among them. Until metalbond has
    /// delivered its table after a (re)start, a route missing from it may just not have arrived yet; deleting it
    /// from dpservice would interrupt traffic that a restarted metalnet must leave alone.
    pub settled: watch::Receiver<bool>,
    /// Serializes subscription changes (several Network reconciles may compute them at once).
    pub subscriptions: tokio::sync::Mutex<()>,
    /// Woken when a call found dpservice unavailable, so the supervisor checks it at once.
    pub dp_suspect: tokio::sync::Notify,
    /// Publishes Kubernetes Events about the objects (as upstream's event recorder does).
    pub recorder: kube::runtime::events::Recorder,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client and caches carry nothing useful to print.
        f.debug_struct("Agent")
            .field("node", &self.node)
            .field("public_vni", &self.public_vni)
            .field("announcer", &self.announcer)
            .finish_non_exhaustive()
    }
}

/// The finalizer of a Network is per node (several nodes use one Network).
pub fn network_finalizer(node: &str) -> String {
    format!("networking.metalnet.ironcore.dev/network-{node}")
}

/// The finalizer of NetworkInterfaces.
pub const INTERFACE_FINALIZER: &str = "networking.metalnet.ironcore.dev/networkInterface";
/// The finalizer of LoadBalancers.
pub const LOAD_BALANCER_FINALIZER: &str = "networking.metalnet.ironcore.dev/loadBalancer";

/// The peering view of a Network; `None` for a Network whose id is not a VNI (it did not pass validation).
pub fn peering_of(n: &Network) -> Option<NetworkPeering> {
    Some(NetworkPeering {
        vni: n.spec.vni().ok()?,
        peered_ids: n.spec.peered_vnis().collect(),
        peered_prefixes: n
            .spec
            .peered_prefixes
            .iter()
            .filter_map(|p| {
                let prefixes = p
                    .prefixes
                    .iter()
                    .filter_map(|x| IpNet::new(x.addr(), x.len()).ok())
                    .collect();
                Some((p.vni().ok()?, prefixes))
            })
            .collect(),
    })
}

/// The VNIs metalnet should subscribe to: the public VNI, and for every Network used on this node (by an
/// interface or a load balancer) its own VNI and the VNIs it peers with. Pure.
pub fn desired_subscriptions(public_vni: Vni, used: &[NetworkPeering]) -> BTreeSet<Vni> {
    let mut out: BTreeSet<Vni> = [public_vni].into();
    for n in used {
        out.insert(n.vni);
        out.extend(n.peered_ids.iter().copied());
    }
    out
}

/// The Networks whose routes depend on routes of `vni`: the Network of `vni` itself, Networks peering with
/// `vni`, and Networks `vni`'s Network exports into; every Network when `router_changed` (a change in the public
/// VNI that moved the default router, the one thing every Network takes from the public VNI). Pure.
pub fn networks_affected(
    vni: Vni,
    router_changed: bool,
    networks: &[(ObjectRef<Network>, NetworkPeering)],
) -> Vec<ObjectRef<Network>> {
    let exported_into: BTreeSet<Vni> = networks
        .iter()
        .filter(|(_, p)| p.vni == vni)
        .flat_map(|(_, p)| p.peered_ids.iter().copied())
        .collect();
    networks
        .iter()
        .filter(|(_, p)| {
            router_changed || p.vni == vni || p.peered_ids.contains(&vni) || exported_into.contains(&p.vni)
        })
        .map(|(r, _)| r.clone())
        .collect()
}

impl Agent {
    /// The Network `name` in `namespace`, from the cache.
    pub fn network(&self, namespace: &str, name: &str) -> Option<Arc<Network>> {
        self.networks.get(Some(namespace), name)
    }

    /// Whether Network `net` is used on this node (an interface or load balancer references it).
    pub fn is_used(&self, net: &Network) -> bool {
        let key = index_key(BY_NETWORK, net.namespace().as_deref(), &net.name_any());
        !self.interfaces.indexed(&key).is_empty() || !self.load_balancers.indexed(&key).is_empty()
    }

    /// The peering views of every known Network.
    pub fn peerings(&self) -> Vec<NetworkPeering> {
        self.networks
            .state()
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .filter_map(|n| peering_of(n))
            .collect()
    }

    /// The default router: announced in the public VNI, else `--router-address`.
    pub fn router(&self) -> Option<Ipv6Addr> {
        routes::default_router(&self.mb.routes_in(self.public_vni), self.router_fallback)
    }

    /// Every route received in the given VNIs.
    pub fn received(&self, vnis: impl IntoIterator<Item = Vni>) -> Vec<Route> {
        vnis.into_iter().flat_map(|v| self.mb.routes_in(v)).collect()
    }

    /// Brings metalbond's subscriptions to [`desired_subscriptions`] of the Networks used on this node.
    pub async fn sync_subscriptions(&self) -> Result<(), ironnet_metalbond::Error> {
        let _serial = self.subscriptions.lock().await;
        let used: Vec<NetworkPeering> = self
            .networks
            .state()
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none() && self.is_used(n))
            .filter_map(|n| peering_of(n))
            .collect();
        let desired = desired_subscriptions(self.public_vni, &used);
        let current: BTreeSet<Vni> = self.mb.subscribed_vnis().into_iter().collect();
        let (remove, add) = routes::plan_set(&desired, &current);
        let mut first_err = None;
        for vni in add {
            tracing::info!(vni = vni.get(), "subscribing");
            if let Err(e) = self.mb.subscribe(vni) {
                first_err.get_or_insert(e);
            }
        }
        for vni in remove {
            tracing::info!(vni = vni.get(), "unsubscribing");
            if let Err(e) = self.mb.unsubscribe(vni) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Requests reconciles of everything that depends on routes of `vni`. `last_router` is the default router
    /// as of the previous call (`None` before the first): a change in the public VNI concerns every Network only
    /// when it moves the default router. Every VirtualIP, NAT IP and load balancer IP of every node is announced
    /// in the public VNI, so re-reconciling every Network on each of them made the work grow with Networks ×
    /// public IPs.
    pub fn route_changed(&self, vni: Vni, last_router: &mut Option<Option<Ipv6Addr>>) {
        let router_changed = vni == self.public_vni && {
            let router = self.router();
            last_router.replace(router) != Some(router)
        };
        let networks: Vec<(ObjectRef<Network>, NetworkPeering)> = self
            .networks
            .state()
            .iter()
            .filter_map(|n| Some((ObjectRef::from_obj(n.as_ref()), peering_of(n)?)))
            .collect();
        for r in networks_affected(vni, router_changed, &networks) {
            let _ = self.triggers.network.send(r);
        }
        for lb in self.load_balancers.state() {
            let net_vni = lb
                .namespace()
                .and_then(|ns| self.network(&ns, &lb.spec.network_ref.name))
                .and_then(|n| n.spec.vni().ok());
            if net_vni == Some(vni) {
                let _ = self.triggers.load_balancer.send(ObjectRef::from_obj(lb.as_ref()));
            }
        }
    }

    /// Requests a reconcile of Network `name` in `namespace`.
    pub fn network_changed(&self, namespace: &str, name: &str) {
        let _ = self.triggers.network.send(ObjectRef::new(name).within(namespace));
    }

    /// Whether received routes may be trusted to be complete (see [`Agent::settled`]).
    pub fn is_settled(&self) -> bool {
        *self.settled.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_vni::vni;

    fn peering(vni: u32, peers: &[u32]) -> NetworkPeering {
        NetworkPeering {
            vni: Vni::new(vni).unwrap(),
            peered_ids: peers.iter().map(|p| Vni::new(*p).unwrap()).collect(),
            peered_prefixes: Default::default(),
        }
    }

    #[test]
    fn subscriptions_cover_used_networks_and_their_peers() {
        assert_eq!(desired_subscriptions(vni!(100), &[]), [vni!(100)].into());
        assert_eq!(
            desired_subscriptions(vni!(100), &[peering(10, &[20, 30]), peering(20, &[10])]),
            [10, 20, 30, 100].map(|v| Vni::new(v).unwrap()).into()
        );
    }

    #[test]
    fn route_changes_reach_the_networks_that_depend_on_them() {
        let nets: Vec<(ObjectRef<Network>, NetworkPeering)> = [
            ("a", peering(10, &[20])),
            ("b", peering(20, &[])),
            ("c", peering(30, &[])),
            ("d", peering(40, &[10])),
        ]
        .into_iter()
        .map(|(n, p)| (ObjectRef::new(n).within("ns"), p))
        .collect();
        let names = |v: Vec<ObjectRef<Network>>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        // 10's routes: network a itself, d peers with 10, b receives 10's exports.
        assert_eq!(names(networks_affected(vni!(10), false, &nets)), ["a", "b", "d"]);
        assert_eq!(names(networks_affected(vni!(20), false, &nets)), ["a", "b"]);
        assert_eq!(names(networks_affected(vni!(30), false, &nets)), ["c"]);
        assert_eq!(
            names(networks_affected(vni!(100), true, &nets)).len(),
            4,
            "the default router concerns all"
        );
        assert!(
            networks_affected(vni!(100), false, &nets).is_empty(),
            "another public IP concerns no Network"
        );
        assert!(networks_affected(vni!(99), false, &nets).is_empty());
    }
}
