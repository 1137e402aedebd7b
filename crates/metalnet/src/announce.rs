//! What this node announces through metalbond, per owning object.
//!
//! Each NetworkInterface and LoadBalancer owns a set of announced routes, derived from its dpservice objects
//! (every dpservice object yields an underlay address, announced as `VNI: overlay prefix → underlay`). A reconcile
//! computes the whole desired set and [`Announcer::sync`] withdraws what is no longer wanted and announces what is
//! new, so changed addresses, a re-created interface (new underlay) or a deleted VIP never leave a stale route
//! behind. The table of owned routes also tells the route programming which routes this node originates (metalbond
//! never hands our own announcements back).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use ironnet_metalbond::{EngineError, MetalBond, NextHop, Route, TableError};
use ironnet_vni::Vni;

use crate::dp::Nat;

/// Called with every VNI whose announcements changed.
pub type OnChange = Arc<dyn Fn(Vni) + Send + Sync>;

/// The routes each object announces, and the metalbond instance they go to.
pub struct Announcer {
    mb: MetalBond,
    owned: Mutex<BTreeMap<String, BTreeSet<Route>>>,
    on_change: OnChange,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("owners", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// `(withdraw, announce)` turning an owner's `current` routes into `desired`; a route another owner also
/// announces is neither withdrawn nor announced twice (`others`). Pure.
pub fn plan_announcements(
    current: &BTreeSet<Route>,
    desired: &BTreeSet<Route>,
    others: &BTreeSet<Route>,
) -> (Vec<Route>, Vec<Route>) {
    (
        current
            .difference(desired)
            .filter(|r| !others.contains(r))
            .copied()
            .collect(),
        desired
            .difference(current)
            .filter(|r| !others.contains(r))
            .copied()
            .collect(),
    )
}

/// Whether a metalbond error means the announcement or withdrawal had already happened (upstream matches the
/// same messages: "nexthop already exists", "... does not exist").
fn already_done(e: &ironnet_metalbond::Error) -> bool {
    matches!(
        e,
        ironnet_metalbond::Error::Engine(EngineError::Table(
            TableError::NextHopExists
                | TableError::VniNotFound
                | TableError::DestinationNotFound
                | TableError::NextHopNotFound
        ))
    )
}

impl Announcer {
    /// An announcer on `mb`; `on_change` hears of every VNI whose announcements change.
    pub fn new(mb: MetalBond, on_change: OnChange) -> Self {
        Announcer {
            mb,
            owned: Mutex::new(BTreeMap::new()),
            on_change,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeSet<Route>>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `owner` announce exactly `desired`. Every route is attempted; the first metalbond error is returned
    /// (the owner's table then holds what was really done, so a retry picks up the rest).
    pub fn sync(&self, owner: &str, desired: BTreeSet<Route>) -> Result<(), ironnet_metalbond::Error> {
        let mut changed = BTreeSet::new();
        let result = {
            let mut owned = self.lock();
            let current = owned.get(owner).cloned().unwrap_or_default();
            let others: BTreeSet<Route> = owned
                .iter()
                .filter(|(o, _)| o.as_str() != owner)
                .flat_map(|(_, rs)| rs.iter().copied())
                .collect();
            let (withdraw, announce) = plan_announcements(&current, &desired, &others);
            let mut now = current.clone();
            let mut first_err = None;
            for r in withdraw {
                match self.mb.withdraw(r) {
                    Err(e) if !already_done(&e) => {
                        first_err.get_or_insert(e);
                        continue;
                    }
                    _ => {}
                }
                now.remove(&r);
                changed.insert(r.vni);
            }
            // Routes shared with another owner need no call, but belong to this owner now as well.
            now.retain(|r| desired.contains(r) || !others.contains(r));
            for r in desired.iter().filter(|r| others.contains(r)) {
                now.insert(*r);
            }
            for r in announce {
                match self.mb.announce(r) {
                    Err(e) if !already_done(&e) => {
                        first_err.get_or_insert(e);
                        continue;
                    }
                    _ => {}
                }
                now.insert(r);
                changed.insert(r.vni);
            }
            if now.is_empty() {
                owned.remove(owner);
            } else {
                owned.insert(owner.to_owned(), now);
            }
            first_err.map_or(Ok(()), Err)
        };
        for vni in changed {
            (self.on_change)(vni);
        }
        result
    }

    /// Every route this node announces.
    pub fn local_routes(&self) -> Vec<Route> {
        let owned = self.lock();
        let all: BTreeSet<Route> = owned.values().flatten().copied().collect();
        all.into_iter().collect()
    }

    /// The routes `owner` announces.
    pub fn owned_by(&self, owner: &str) -> BTreeSet<Route> {
        self.lock().get(owner).cloned().unwrap_or_default()
    }
}

/// The dpservice objects of one interface that are announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceObjects {
    /// The network VNI.
    pub vni: Vni,
    /// Interface IPs with the interface underlay.
    pub ips: Vec<IpAddr>,
    /// The interface underlay.
    pub underlay: Option<Ipv6Addr>,
    /// Alias prefixes with their underlays.
    pub prefixes: Vec<(IpNet, Ipv6Addr)>,
    /// Load balancer target prefixes with their underlays.
    pub lb_prefixes: Vec<(IpNet, Ipv6Addr)>,
    /// The VIP with its underlay.
    pub vip: Option<(IpAddr, Ipv6Addr)>,
    /// The NAT.
    pub nat: Option<Nat>,
}

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The routes an interface announces (all with target VNI 0):
/// interface IPs in the network VNI (an IPv6 also in the public VNI: routable IPv6), alias prefixes in the network
/// VNI, load balancer targets in the network VNI as LOADBALANCER_TARGET, the VIP in the public VNI, the NAT IP in
/// the public VNI (STANDARD) and in the network VNI (NAT, with the port range). Pure.
pub fn interface_routes(o: &InterfaceObjects, public_vni: Vni) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    if let Some(underlay) = o.underlay {
        let hop = NextHop::standard(IpAddr::V6(underlay));
        for ip in &o.ips {
            out.insert(Route::new(o.vni, host(*ip), hop));
            if ip.is_ipv6() {
                out.insert(Route::new(public_vni, host(*ip), hop));
            }
        }
    }
    for (p, u) in &o.prefixes {
        out.insert(Route::new(o.vni, *p, NextHop::standard(IpAddr::V6(*u))));
    }
    for (p, u) in &o.lb_prefixes {
        out.insert(Route::new(
            o.vni,
            *p,
            NextHop::load_balancer_target(IpAddr::V6(*u)),
        ));
    }
    if let Some((vip, u)) = o.vip {
        out.insert(Route::new(
            public_vni,
            host(vip),
            NextHop::standard(IpAddr::V6(u)),
        ));
    }
    if let Some(nat) = &o.nat {
        let target = IpAddr::V6(nat.underlay);
        out.insert(Route::new(public_vni, host(nat.ip), NextHop::standard(target)));
        let (from, to) = (
            u16::try_from(nat.min_port).unwrap_or(u16::MAX),
            u16::try_from(nat.max_port).unwrap_or(u16::MAX),
        );
        if let Ok(hop) = NextHop::nat(target, from, to) {
            out.insert(Route::new(o.vni, host(nat.ip), hop));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_metalbond::NextHopType;
    use ironnet_vni::vni;

    fn u(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn interface_routes_per_upstream_table() {
        let o = InterfaceObjects {
            vni: vni!(10),
            ips: vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            underlay: Some(u("fc00::1")),
            prefixes: vec![("10.1.0.0/24".parse().unwrap(), u("fc00::2"))],
            lb_prefixes: vec![("10.9.0.1/32".parse().unwrap(), u("fc00::3"))],
            vip: Some(("1.1.1.1".parse().unwrap(), u("fc00::4"))),
            nat: Some(Nat {
                ip: "2.2.2.2".parse().unwrap(),
                min_port: 1000,
                max_port: 2000,
                underlay: u("fc00::5"),
                vni: None,
            }),
        };
        let routes = interface_routes(&o, vni!(100));
        let got: Vec<(u32, String, String, NextHopType)> = routes
            .iter()
            .map(|r| {
                (
                    r.vni.get(),
                    r.destination.to_string(),
                    r.next_hop.target().to_string(),
                    r.next_hop.kind(),
                )
            })
            .collect();
        let (std, lb, nat) = (
            NextHopType::Standard,
            NextHopType::LoadBalancerTarget,
            NextHopType::Nat,
        );
        let want = [
            (10, "10.0.0.1/32", "fc00::1", std),
            (10, "fd00::1/128", "fc00::1", std),
            (10, "10.1.0.0/24", "fc00::2", std),
            (10, "10.9.0.1/32", "fc00::3", lb),
            (10, "2.2.2.2/32", "fc00::5", nat),
            (100, "fd00::1/128", "fc00::1", std),
            (100, "1.1.1.1/32", "fc00::4", std),
            (100, "2.2.2.2/32", "fc00::5", std),
        ];
        for w in want {
            assert!(
                got.contains(&(w.0, w.1.to_string(), w.2.to_string(), w.3)),
                "{w:?} in {got:?}"
            );
        }
        assert_eq!(got.len(), want.len());
        assert!(routes.iter().all(|r| r.next_hop.target_vni().is_none()));
        let nat = routes
            .iter()
            .find(|r| r.next_hop.kind() == NextHopType::Nat)
            .unwrap();
        assert_eq!(nat.next_hop.nat_ports(), (1000, 2000));
        assert!(
            interface_routes(
                &InterfaceObjects {
                    vni: vni!(10),
                    ips: Vec::new(),
                    underlay: None,
                    prefixes: Vec::new(),
                    lb_prefixes: Vec::new(),
                    vip: None,
                    nat: None,
                },
                vni!(100)
            )
            .is_empty()
        );
    }

    #[test]
    fn announcement_plan_respects_other_owners() {
        let r = |d: &str| {
            Route::new(
                vni!(1),
                d.parse().unwrap(),
                NextHop::standard("fc00::1".parse().unwrap()),
            )
        };
        let current: BTreeSet<Route> = [r("10.0.0.1/32"), r("10.0.0.2/32")].into();
        let desired: BTreeSet<Route> = [r("10.0.0.2/32"), r("10.0.0.3/32")].into();
        assert_eq!(
            plan_announcements(&current, &desired, &BTreeSet::new()),
            (vec![r("10.0.0.1/32")], vec![r("10.0.0.3/32")])
        );
        let others: BTreeSet<Route> = [r("10.0.0.1/32"), r("10.0.0.3/32")].into();
        assert_eq!(plan_announcements(&current, &desired, &others), (vec![], vec![]));
    }

    #[tokio::test]
    async fn sync_announces_withdraws_and_reports_vnis() {
        let mb = MetalBond::new(ironnet_metalbond::Config::default()).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let a = Announcer::new(mb.clone(), Arc::new(move |v| s.lock().unwrap().push(v)));
        let r1 = Route::new(
            vni!(1),
            "10.0.0.1/32".parse().unwrap(),
            NextHop::standard("fc00::1".parse().unwrap()),
        );
        let r2 = Route::new(
            vni!(2),
            "10.0.0.2/32".parse().unwrap(),
            NextHop::standard("fc00::2".parse().unwrap()),
        );
        a.sync("a", [r1, r2].into()).unwrap();
        assert!(mb.is_announced(&r1) && mb.is_announced(&r2));
        a.sync("b", [r2].into()).unwrap();
        a.sync("a", [r1].into()).unwrap();
        assert!(mb.is_announced(&r2), "still owned by b");
        a.sync("b", BTreeSet::new()).unwrap();
        assert!(!mb.is_announced(&r2));
        assert_eq!(a.local_routes(), vec![r1]);
        a.sync("a", BTreeSet::new()).unwrap();
        assert!(a.local_routes().is_empty());
        assert_eq!(*seen.lock().unwrap(), [1, 2, 2, 1].map(|v| Vni::new(v).unwrap()));
        // An announcement made behind our back (or surviving a restart of the table) is not an error.
        mb.announce(r1).unwrap();
        a.sync("a", [r1].into()).unwrap();
        mb.shutdown();
    }
}
