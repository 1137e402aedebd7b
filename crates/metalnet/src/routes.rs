//! Received routes → dpservice: which external routes, neighbour NATs and load balancer targets a node's dpservice
//! should have, given what metalbond delivered and what this node announces itself. Pure.
//!
//! Upstream metalnet (`metalbond_client.go`) applies every received route as an event (`AddRoute`/`RemoveRoute`)
//! and never looks at dpservice again, so a route lost to a dpservice restart, a VNI not yet in use when the route
//! arrived, or a failed call stays missing. Here the desired state of a VNI is computed from the whole received
//! table and diffed against dpservice's List RPCs each time something in the VNI changes; events only say which
//! VNI to look at.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_metalbond::{NextHopType, Route};
use ironnet_vni::Vni;

use crate::dp::{DpRoute, Nat};

/// The peering configuration of one Network, as far as routes are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPeering {
    /// The Network's VNI.
    pub vni: Vni,
    /// VNIs it peers with (its routes are exported into them).
    pub peered_ids: BTreeSet<Vni>,
    /// Per peer VNI, the prefixes exported to it (no entry: everything).
    pub peered_prefixes: BTreeMap<Vni, Vec<IpNet>>,
}

impl NetworkPeering {
    /// Whether a route of this network to `destination` is exported into `peer`.
    pub fn exports(&self, peer: Vni, destination: &IpNet) -> bool {
        self.peered_ids.contains(&peer)
            && self
                .peered_prefixes
                .get(&peer)
                .is_none_or(|ps| ps.iter().any(|p| p.contains(&destination.addr())))
    }
}

/// The default router: the next hop of a default route (`0.0.0.0/0`, else `::/0`) announced in the public VNI,
/// else `fallback` (`--router-address`).
pub fn default_router(public_routes: &[Route], fallback: Option<Ipv6Addr>) -> Option<Ipv6Addr> {
    let announced = |v4: bool| {
        public_routes
            .iter()
            .filter(|r| r.destination.prefix_len() == 0 && r.destination.addr().is_ipv4() == v4)
            .filter_map(|r| match r.next_hop.target() {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            })
            .min()
    };
    announced(true).or_else(|| announced(false)).or(fallback)
}

/// A route's destination as dpservice keys it (host bits cleared).
fn key(net: &IpNet) -> IpNet {
    net.trunc()
}

/// The external routes VNI `vni` should have in dpservice, by prefix.
///
/// - the default routes (`0.0.0.0/0`, with `ipv6` also `::/0`) to `router`, in `vni`;
/// - every STANDARD route received in `vni`, to its target in `vni`;
/// - every STANDARD route of a peered network X (received, or announced by this node) exported into `vni`, to its
///   target in X (upstream `HandlePeeringRoutes`).
///
/// Several next hops for one prefix (dpservice holds one): received routes of the VNI itself win over peered
/// ones, which win over the default route; among equals the smallest next hop, so that every node picks the same.
pub fn desired_routes(
    vni: Vni,
    router: Option<Ipv6Addr>,
    ipv6: bool,
    received: &[Route],
    local: &[Route],
    networks: &[NetworkPeering],
) -> BTreeMap<IpNet, DpRoute> {
    let mut out: BTreeMap<IpNet, (u8, DpRoute)> = BTreeMap::new();
    let mut offer = |rank: u8, r: DpRoute| {
        let k = key(&r.prefix);
        let r = DpRoute { prefix: k, ..r };
        match out.get(&k) {
            Some((have, cur)) if (*have, *cur) <= (rank, r) => {}
            _ => {
                out.insert(k, (rank, r));
            }
        }
    };
    for r in received
        .iter()
        .filter(|r| r.vni == vni && r.next_hop.kind() == NextHopType::Standard)
    {
        offer(
            0,
            DpRoute {
                prefix: r.destination,
                nexthop_vni: Some(vni),
                nexthop: r.next_hop.target(),
            },
        );
    }
    // Only Networks exporting into `vni` contribute; checking that first keeps a reconcile from walking every
    // route of the node once per Network.
    for net in networks
        .iter()
        .filter(|n| n.vni != vni && n.peered_ids.contains(&vni))
    {
        for r in received.iter().chain(local) {
            if r.vni == net.vni
                && r.next_hop.kind() == NextHopType::Standard
                && net.exports(vni, &r.destination)
            {
                offer(
                    1,
                    DpRoute {
                        prefix: r.destination,
                        nexthop_vni: Some(net.vni),
                        nexthop: r.next_hop.target(),
                    },
                );
            }
        }
    }
    if let Some(router) = router {
        let mut defaults = vec![IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)];
        if ipv6 {
            defaults.push(IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0));
        }
        for prefix in defaults.into_iter().flatten() {
            offer(
                2,
                DpRoute {
                    prefix,
                    nexthop_vni: Some(vni),
                    nexthop: IpAddr::V6(router),
                },
            );
        }
    }
    out.into_iter().map(|(k, (_, r))| (k, r)).collect()
}

/// What to change in one VNI's external routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// Prefixes to delete (gone, or to be replaced by a different next hop).
    pub delete: Vec<IpNet>,
    /// Routes to create (after the deletions).
    pub create: Vec<DpRoute>,
}

/// Diffs desired against programmed routes. A route whose next hop changed is deleted and created again (dpservice
/// has no update). Pure.
pub fn plan_routes(desired: &BTreeMap<IpNet, DpRoute>, actual: &[DpRoute]) -> RoutePlan {
    let actual: BTreeMap<IpNet, DpRoute> = actual
        .iter()
        .map(|r| {
            (
                key(&r.prefix),
                DpRoute {
                    prefix: key(&r.prefix),
                    ..*r
                },
            )
        })
        .collect();
    let mut plan = RoutePlan::default();
    for (k, a) in &actual {
        if desired.get(k) != Some(a) {
            plan.delete.push(*k);
        }
    }
    for (k, d) in desired {
        if actual.get(k) != Some(d) {
            plan.create.push(*d);
        }
    }
    plan
}

/// The neighbour NATs VNI `vni` should have: every NAT route received in it (`nat IP/32 → owner's NAT underlay`
/// for ports `[from, to)`). Routes with an IPv4 target or an IPv6 NAT IP are not representable and skipped.
pub fn desired_neighbor_nats(vni: Vni, received: &[Route]) -> BTreeSet<Nat> {
    received
        .iter()
        .filter(|r| r.vni == vni && r.next_hop.kind() == NextHopType::Nat)
        .filter_map(|r| {
            let (from, to) = r.next_hop.nat_ports();
            match (r.destination.addr(), r.next_hop.target()) {
                (ip @ IpAddr::V4(_), IpAddr::V6(underlay)) => Some(Nat {
                    ip,
                    min_port: u32::from(from),
                    max_port: u32::from(to),
                    underlay,
                    vni: Some(vni),
                }),
                _ => None,
            }
        })
        .collect()
}

/// The targets load balancer `ip` in `vni` should have: the underlays announced as LOADBALANCER_TARGET for
/// `ip` in `vni`, received or announced by this node's own interfaces (our own announcements never come back
/// from metalbond), restricted to `prefer` when set (`--prefer-network`).
pub fn desired_lb_targets(
    vni: Vni,
    ip: IpAddr,
    received: &[Route],
    local: &[Route],
    prefer: Option<IpNet>,
) -> BTreeSet<IpAddr> {
    received
        .iter()
        .chain(local)
        .filter(|r| {
            r.vni == vni && r.next_hop.kind() == NextHopType::LoadBalancerTarget && r.destination.addr() == ip
        })
        .map(|r| r.next_hop.target())
        .filter(|t| prefer.is_none_or(|p| p.contains(t)))
        .collect()
}

/// `(to delete, to create)` turning `actual` into `desired`. Pure.
pub fn plan_set<T: Ord + Clone>(desired: &BTreeSet<T>, actual: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (
        actual.difference(desired).cloned().collect(),
        desired.difference(actual).cloned().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_metalbond::NextHop;
    use ironnet_vni::vni;

    fn std(vni: Vni, dest: &str, target: &str) -> Route {
        Route::new(
            vni,
            dest.parse().unwrap(),
            NextHop::standard(target.parse().unwrap()),
        )
    }

    fn dp(prefix: &str, vni: Vni, nh: &str) -> DpRoute {
        DpRoute {
            prefix: prefix.parse().unwrap(),
            nexthop_vni: Some(vni),
            nexthop: nh.parse().unwrap(),
        }
    }

    #[test]
    fn default_router_prefers_the_announcement() {
        let fallback = Some("fc00::ff".parse().unwrap());
        assert_eq!(default_router(&[], fallback), fallback);
        assert_eq!(default_router(&[], None), None);
        let public = [
            std(vni!(100), "0.0.0.0/0", "fc00::2"),
            std(vni!(100), "0.0.0.0/0", "fc00::1"),
            std(vni!(100), "1.2.3.4/32", "fc00::9"),
            std(vni!(100), "::/0", "fc00::0:7"),
        ];
        assert_eq!(
            default_router(&public, fallback),
            Some("fc00::1".parse().unwrap())
        );
        assert_eq!(
            default_router(&public[3..], None),
            Some("fc00::7".parse().unwrap())
        );
        // An IPv4 next hop cannot be an underlay router.
        assert_eq!(
            default_router(&[std(vni!(100), "0.0.0.0/0", "10.0.0.1")], None),
            None
        );
    }

    #[test]
    fn routes_of_a_vni_with_defaults_and_peering() {
        let received = [
            std(vni!(10), "10.0.0.2/32", "fc00:2::1"),
            std(vni!(10), "10.0.1.0/24", "fc00:2::2"),
            std(vni!(20), "10.2.0.1/32", "fc00:3::1"),
            std(vni!(20), "10.2.9.1/32", "fc00:3::9"),
            std(vni!(30), "10.3.0.1/32", "fc00:4::1"),
            Route::new(
                vni!(10),
                "10.0.0.5/32".parse().unwrap(),
                NextHop::load_balancer_target("fc00:2::5".parse().unwrap()),
            ),
        ];
        // A local interface of network 20 (our own announcements never come back from metalbond).
        let local = [
            std(vni!(20), "10.2.0.7/32", "fc00:1::7"),
            std(vni!(10), "10.0.0.1/32", "fc00:1::1"),
        ];
        let networks = [
            NetworkPeering {
                vni: vni!(20),
                peered_ids: [vni!(10)].into(),
                peered_prefixes: [(vni!(10), vec!["10.2.0.0/24".parse().unwrap()])].into(),
            },
            // 30 does not export into 10.
            NetworkPeering {
                vni: vni!(30),
                peered_ids: [vni!(40)].into(),
                peered_prefixes: Default::default(),
            },
        ];
        let want = desired_routes(
            vni!(10),
            Some("fc00::1".parse().unwrap()),
            true,
            &received,
            &local,
            &networks,
        );
        let got: Vec<DpRoute> = want.values().copied().collect();
        assert_eq!(
            got,
            vec![
                dp("0.0.0.0/0", vni!(10), "fc00::1"),
                dp("10.0.0.2/32", vni!(10), "fc00:2::1"),
                dp("10.0.1.0/24", vni!(10), "fc00:2::2"),
                dp("10.2.0.1/32", vni!(20), "fc00:3::1"),
                dp("10.2.0.7/32", vni!(20), "fc00:1::7"),
                dp("::/0", vni!(10), "fc00::1"),
            ],
            "10.2.9.1 is outside the exported prefixes; LB targets and own routes are not routes"
        );
        // Without a router and IPv6 there is no default route.
        let want = desired_routes(vni!(10), None, false, &received, &local, &networks);
        assert!(!want.keys().any(|k| k.prefix_len() == 0));
        // No peering entry for the peer: everything is exported.
        let all = [NetworkPeering {
            vni: vni!(20),
            peered_ids: [vni!(10)].into(),
            peered_prefixes: Default::default(),
        }];
        assert_eq!(
            desired_routes(vni!(10), None, false, &received, &local, &all).len(),
            5
        );
    }

    #[test]
    fn conflicting_next_hops_resolve_deterministically() {
        let received = [
            std(vni!(10), "10.0.0.0/24", "fc00::9"),
            std(vni!(10), "10.0.0.7/24", "fc00::3"),
            std(vni!(10), "0.0.0.0/0", "fc00::8"),
        ];
        let want = desired_routes(
            vni!(10),
            Some("fc00::1".parse().unwrap()),
            false,
            &received,
            &[],
            &[],
        );
        assert_eq!(want.len(), 2);
        assert_eq!(
            want[&"10.0.0.0/24".parse().unwrap()],
            dp("10.0.0.0/24", vni!(10), "fc00::3"),
            "host bits cleared, smallest hop"
        );
        assert_eq!(
            want[&"0.0.0.0/0".parse().unwrap()],
            dp("0.0.0.0/0", vni!(10), "fc00::8"),
            "a received default beats the router"
        );
    }

    #[test]
    fn route_plan() {
        let desired: BTreeMap<IpNet, DpRoute> = [
            dp("10.0.0.1/32", vni!(1), "fc00::1"),
            dp("10.0.0.2/32", vni!(1), "fc00::2"),
        ]
        .into_iter()
        .map(|r| (r.prefix, r))
        .collect();
        assert_eq!(
            plan_routes(&desired, &desired.values().copied().collect::<Vec<_>>()),
            RoutePlan::default()
        );
        let plan = plan_routes(
            &desired,
            &[
                dp("10.0.0.1/32", vni!(1), "fc00::9"),
                dp("10.0.0.3/32", vni!(1), "fc00::3"),
            ],
        );
        assert_eq!(
            plan.delete,
            vec![
                "10.0.0.1/32".parse::<IpNet>().unwrap(),
                "10.0.0.3/32".parse().unwrap()
            ]
        );
        assert_eq!(
            plan.create,
            vec![
                dp("10.0.0.1/32", vni!(1), "fc00::1"),
                dp("10.0.0.2/32", vni!(1), "fc00::2")
            ]
        );
        let plan = plan_routes(&BTreeMap::new(), &[dp("10.0.0.3/32", vni!(1), "fc00::3")]);
        assert_eq!(plan.delete.len(), 1);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn neighbor_nats_and_lb_targets() {
        let received = [
            Route::new(
                vni!(10),
                "1.2.3.4/32".parse().unwrap(),
                NextHop::nat("fc00:2::4".parse().unwrap(), 1000, 2000).unwrap(),
            ),
            Route::new(
                vni!(11),
                "1.2.3.4/32".parse().unwrap(),
                NextHop::nat("fc00:2::4".parse().unwrap(), 2000, 3000).unwrap(),
            ),
            Route::new(
                vni!(10),
                "1.2.3.5/32".parse().unwrap(),
                NextHop::nat("10.0.0.1".parse().unwrap(), 1, 2).unwrap(),
            ),
            Route::new(
                vni!(10),
                "10.0.0.9/32".parse().unwrap(),
                NextHop::load_balancer_target("fc00:2::9".parse().unwrap()),
            ),
            Route::new(
                vni!(10),
                "10.0.0.9/32".parse().unwrap(),
                NextHop::load_balancer_target("2001:db8::9".parse().unwrap()),
            ),
            Route::new(
                vni!(10),
                "10.0.0.8/32".parse().unwrap(),
                NextHop::load_balancer_target("fc00:2::8".parse().unwrap()),
            ),
            std(vni!(10), "10.0.0.9/32", "fc00:2::1"),
        ];
        let nats = desired_neighbor_nats(vni!(10), &received);
        assert_eq!(
            nats.into_iter().collect::<Vec<_>>(),
            vec![Nat {
                ip: "1.2.3.4".parse().unwrap(),
                min_port: 1000,
                max_port: 2000,
                underlay: "fc00:2::4".parse().unwrap(),
                vni: Some(vni!(10))
            }]
        );
        let local = [Route::new(
            vni!(10),
            "10.0.0.9/32".parse().unwrap(),
            NextHop::load_balancer_target("fc00:1::1".parse().unwrap()),
        )];
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let t = desired_lb_targets(vni!(10), ip, &received, &local, None);
        assert_eq!(t.len(), 3);
        let t = desired_lb_targets(
            vni!(10),
            ip,
            &received,
            &local,
            Some("2001:db8::/52".parse().unwrap()),
        );
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec!["2001:db8::9".parse::<IpAddr>().unwrap()]
        );
        assert!(desired_lb_targets(vni!(11), ip, &received, &local, None).is_empty());
    }

    #[test]
    fn set_plan() {
        let a: BTreeSet<u8> = [1, 2, 3].into();
        let b: BTreeSet<u8> = [2, 3, 4].into();
        assert_eq!(plan_set(&a, &b), (vec![4], vec![1]));
        assert_eq!(plan_set(&a, &a), (vec![], vec![]));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn route() -> impl Strategy<Value = DpRoute> {
            (0u8..8, prop_oneof![Just(24u8), Just(32u8)], 1u32..3, 1u16..4).prop_map(|(a, len, vni, hop)| {
                let vni = Vni::new(vni).unwrap();
                DpRoute {
                    prefix: IpNet::new(IpAddr::V4(Ipv4Addr::new(10, 0, a, 1)), len).unwrap(),
                    nexthop_vni: Some(vni),
                    nexthop: IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, hop)),
                }
            })
        }

        proptest! {
            /// Applying a plan (deletions, then creations) to dpservice's table gives exactly the desired one,
            /// and a table that already matches yields an empty plan.
            #[test]
            fn applying_the_plan_reaches_the_desired_routes(
                desired in proptest::collection::vec(route(), 0..12),
                actual in proptest::collection::vec(route(), 0..12),
            ) {
                let desired: BTreeMap<IpNet, DpRoute> = desired
                    .into_iter()
                    .map(|r| (key(&r.prefix), DpRoute { prefix: key(&r.prefix), ..r }))
                    .collect();
                // dpservice holds one route per prefix, with the host bits cleared.
                let mut table: BTreeMap<IpNet, DpRoute> = actual
                    .iter()
                    .map(|r| (key(&r.prefix), DpRoute { prefix: key(&r.prefix), ..*r }))
                    .collect();
                let actual: Vec<DpRoute> = table.values().copied().collect();
                let plan = plan_routes(&desired, &actual);
                for p in &plan.delete {
                    prop_assert!(table.remove(p).is_some(), "deletes only what exists");
                }
                for r in &plan.create {
                    prop_assert!(table.insert(r.prefix, *r).is_none(), "creates only what is absent");
                }
                prop_assert_eq!(&table, &desired);
                let again: Vec<DpRoute> = table.values().copied().collect();
                prop_assert_eq!(plan_routes(&desired, &again), RoutePlan::default());
            }

            #[test]
            fn set_plans_reach_the_desired_set(
                desired in proptest::collection::btree_set(0u8..20, 0..10),
                actual in proptest::collection::btree_set(0u8..20, 0..10),
            ) {
                let (delete, create) = plan_set(&desired, &actual);
                let mut s = actual.clone();
                for d in &delete {
                    prop_assert!(s.remove(d));
                }
                for c in &create {
                    prop_assert!(s.insert(*c));
                }
                prop_assert_eq!(s, desired);
            }
        }
    }
}
