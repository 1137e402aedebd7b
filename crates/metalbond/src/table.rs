//! The route table: VNI → destination → next hop → the set of providers it was learned from.
//!
//! A pure data structure with no I/O. The same shape serves as the table of received routes (provider = the peer
//! a route came from) and of own announcements (provider = `()`). Because a next hop is kept once per provider, a
//! route learned through two HA servers stays present until the last of them withdraws it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use ipnet::IpNet;

use crate::route::{NextHop, NextHopType, Route, Vni};

/// Errors of table updates. The messages are upstream's, which callers (metalnet) match case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The provider already supplied this exact next hop.
    #[error("nexthop already exists")]
    NextHopExists,
    /// No route at all in this VNI.
    #[error("vni does not exist")]
    VniNotFound,
    /// No route for this destination in the VNI.
    #[error("destination does not exist")]
    DestinationNotFound,
    /// The destination exists, but not with this next hop from this provider.
    #[error("nexthop does not exist")]
    NextHopNotFound,
}

type Destinations<P> = HashMap<IpNet, HashMap<NextHop, Vec<P>>>;

/// Routes keyed by VNI and destination, each next hop with the providers that supply it.
#[derive(Debug, Clone)]
pub struct RouteTable<P> {
    vnis: HashMap<Vni, Destinations<P>>,
    len: usize,
}

impl<P> Default for RouteTable<P> {
    fn default() -> Self {
        Self {
            vnis: HashMap::new(),
            len: 0,
        }
    }
}

impl<P: Copy + Eq> RouteTable<P> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `provider` supplies `route`.
    ///
    /// Returns how many providers supplied the route before (0 = the route is new). Fails with
    /// [`TableError::NextHopExists`] if this provider already supplies it; the table is then unchanged.
    pub fn add(&mut self, route: &Route, provider: P) -> Result<usize, TableError> {
        let providers = self
            .vnis
            .entry(route.vni)
            .or_default()
            .entry(route.destination)
            .or_default()
            .entry(route.next_hop)
            .or_default();
        if providers.contains(&provider) {
            return Err(TableError::NextHopExists);
        }
        providers.push(provider);
        self.len += 1;
        Ok(providers.len() - 1)
    }

    /// Records that `provider` no longer supplies `route`, pruning empty levels.
    ///
    /// Returns how many providers still supply it (0 = the route is gone). Fails, leaving the table unchanged, when
    /// the VNI, destination or provider's next hop is unknown.
    pub fn remove(&mut self, route: &Route, provider: P) -> Result<usize, TableError> {
        let Some(dests) = self.vnis.get_mut(&route.vni) else {
            return Err(TableError::VniNotFound);
        };
        let Some(hops) = dests.get_mut(&route.destination) else {
            return Err(TableError::DestinationNotFound);
        };
        let Entry::Occupied(mut entry) = hops.entry(route.next_hop) else {
            return Err(TableError::NextHopNotFound);
        };
        let providers = entry.get_mut();
        let Some(pos) = providers.iter().position(|p| *p == provider) else {
            return Err(TableError::NextHopNotFound);
        };
        providers.swap_remove(pos);
        self.len -= 1;
        let remaining = providers.len();
        if remaining == 0 {
            entry.remove();
            if hops.is_empty() {
                dests.remove(&route.destination);
                if dests.is_empty() {
                    self.vnis.remove(&route.vni);
                }
            }
        }
        Ok(remaining)
    }

    /// The providers of `route` (empty if nobody supplies it).
    pub fn providers(&self, route: &Route) -> &[P] {
        self.vnis
            .get(&route.vni)
            .and_then(|d| d.get(&route.destination))
            .and_then(|h| h.get(&route.next_hop))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether any next hop exists for `destination` in `vni`.
    pub fn has_destination(&self, vni: Vni, destination: &IpNet) -> bool {
        self.vnis.get(&vni).is_some_and(|d| d.contains_key(destination))
    }

    /// Whether some route for (`vni`, `destination`) has a next hop of `kind`.
    pub fn has_destination_of_kind(&self, vni: Vni, destination: &IpNet, kind: NextHopType) -> bool {
        self.vnis
            .get(&vni)
            .and_then(|d| d.get(destination))
            .is_some_and(|hops| hops.keys().any(|h| h.kind() == kind))
    }

    /// Whether `route` is present (from any provider).
    pub fn contains(&self, route: &Route) -> bool {
        !self.providers(route).is_empty()
    }

    /// Every distinct route of `vni` with its providers, in no particular order.
    pub fn routes_in(&self, vni: Vni) -> impl Iterator<Item = (Route, &[P])> + '_ {
        self.vnis.get(&vni).into_iter().flat_map(move |dests| {
            dests.iter().flat_map(move |(dest, hops)| {
                hops.iter()
                    .map(move |(hop, providers)| (Route::new(vni, *dest, *hop), providers.as_slice()))
            })
        })
    }

    /// Every distinct route with its providers, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = (Route, &[P])> + '_ {
        self.vnis.keys().flat_map(move |vni| self.routes_in(*vni))
    }

    /// The VNIs that have at least one route, sorted.
    pub fn vnis(&self) -> Vec<Vni> {
        let mut v: Vec<Vni> = self.vnis.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Number of (route, provider) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_vni::vni;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn route(vni: Vni, dest: &str, hop: &str) -> Route {
        Route::new(
            vni,
            dest.parse().unwrap(),
            NextHop::standard(hop.parse().unwrap()),
        )
    }

    #[test]
    fn providers_are_counted_per_next_hop() {
        let mut t = RouteTable::new();
        let r = route(vni!(1), "10.0.0.1/32", "fc00::1");
        assert_eq!(t.add(&r, 'a'), Ok(0));
        assert_eq!(t.add(&r, 'b'), Ok(1));
        assert_eq!(t.add(&r, 'a'), Err(TableError::NextHopExists));
        assert_eq!(t.providers(&r), &['a', 'b']);
        assert_eq!(t.remove(&r, 'a'), Ok(1));
        assert!(t.contains(&r));
        assert_eq!(t.remove(&r, 'a'), Err(TableError::NextHopNotFound));
        assert_eq!(t.remove(&r, 'b'), Ok(0));
        assert!(!t.contains(&r));
        assert!(t.is_empty());
        assert!(t.vnis().is_empty());
    }

    #[test]
    fn removal_errors_name_the_missing_level() {
        let mut t = RouteTable::new();
        t.add(&route(vni!(1), "10.0.0.1/32", "fc00::1"), ()).unwrap();
        assert_eq!(
            t.remove(&route(vni!(2), "10.0.0.1/32", "fc00::1"), ()),
            Err(TableError::VniNotFound)
        );
        assert_eq!(
            t.remove(&route(vni!(1), "10.0.0.2/32", "fc00::1"), ()),
            Err(TableError::DestinationNotFound)
        );
        assert_eq!(
            t.remove(&route(vni!(1), "10.0.0.1/32", "fc00::2"), ()),
            Err(TableError::NextHopNotFound)
        );
        assert_eq!(TableError::VniNotFound.to_string(), "vni does not exist");
    }

    proptest! {
        /// The table behaves like a set of (route, provider) pairs.
        #[test]
        fn matches_a_set_model(ops in prop::collection::vec((any::<bool>(), 1u32..4, 0u8..3, 0u8..3, 0u8..3), 0..200)) {
            let mut t = RouteTable::new();
            let mut model: HashSet<(Route, u8)> = HashSet::new();
            for (add, vni, d, h, p) in ops {
                let r = route(Vni::new(vni).unwrap(), &format!("10.0.0.{d}/32"), &format!("fc00::{h}"));
                if add {
                    let res = t.add(&r, p);
                    prop_assert_eq!(res.is_ok(), model.insert((r, p)));
                } else {
                    let res = t.remove(&r, p);
                    prop_assert_eq!(res.is_ok(), model.remove(&(r, p)));
                }
                prop_assert_eq!(t.len(), model.len());
            }
            let mut got: Vec<(Route, u8)> = t.routes().flat_map(|(r, ps)| ps.iter().map(move |p| (r, *p))).collect();
            let mut want: Vec<(Route, u8)> = model.into_iter().collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
