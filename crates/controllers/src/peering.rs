//! Network peering (upstream ironcore's `networkpeering` controller, `internal/controllers/networking`):
//! which Networks claim a mutual peering with a Network (`spec.incomingPeerings`).

/// A namespaced object key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// One `spec.peerings[]` entry, reduced to its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeeringRef {
    /// `name` of the peering.
    pub name: String,
    /// `networkRef.namespace`; empty means the Network's own namespace.
    pub namespace: String,
    /// `networkRef.name`.
    pub network: String,
}

/// The peering-relevant part of a Network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeeringNetworkView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `status.state == Available`.
    pub available: bool,
    /// Whether the Network is being deleted.
    pub deleting: bool,
    /// `spec.peerings`.
    pub peerings: Vec<PeeringRef>,
}

impl PeeringNetworkView {
    /// This Network's key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.namespace, &self.name)
    }

    /// The resolved targets of `spec.peerings` (empty namespace = own namespace), in order.
    pub fn peer_keys(&self) -> impl Iterator<Item = ObjectKey> + '_ {
        self.peerings.iter().map(|p| {
            let ns = if p.namespace.is_empty() {
                &self.namespace
            } else {
                &p.namespace
            };
            ObjectKey::new(ns, &p.network)
        })
    }
}

/// A `spec.incomingPeerings[]` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeeringClaimRef {
    /// Namespace of the peer.
    pub namespace: String,
    /// Name of the peer.
    pub name: String,
    /// UID of the peer.
    pub uid: String,
}

/// The incoming peerings `network` should have: every Available peer that `network` references and that
/// references `network` back, in `spec.peerings` order (duplicates removed).
///
/// `lookup` returns the Network with a key, if it exists. Missing or not-yet-Available peers give nothing; a
/// deleting peer still counts until it is gone (as upstream: its claim keeps protecting this Network, and this
/// Network's claim keeps the peer terminating until this one goes too). A deleting or non-Available `network`
/// gets no incoming peerings (its reconciler does not write them).
pub fn incoming_peerings<'a>(
    network: &PeeringNetworkView,
    lookup: impl Fn(&ObjectKey) -> Option<&'a PeeringNetworkView>,
) -> Vec<PeeringClaimRef> {
    if network.deleting || !network.available {
        return Vec::new();
    }
    let own = network.key();
    let mut refs: Vec<PeeringClaimRef> = Vec::new();
    for target in network.peer_keys() {
        let Some(peer) = lookup(&target) else { continue };
        if !peer.available || !peer.peer_keys().any(|k| k == own) {
            continue;
        }
        let r = PeeringClaimRef {
            namespace: peer.namespace.clone(),
            name: peer.name.clone(),
            uid: peer.uid.clone(),
        };
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    refs
}

/// The Networks whose incoming peerings may change when `network` changes: its own peering targets.
pub fn affected_by(network: &PeeringNetworkView) -> Vec<ObjectKey> {
    let mut keys: Vec<ObjectKey> = network.peer_keys().collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn net(ns: &str, name: &str, peers: &[(&str, &str)]) -> PeeringNetworkView {
        PeeringNetworkView {
            namespace: ns.into(),
            name: name.into(),
            uid: format!("{ns}-{name}-uid"),
            available: true,
            deleting: false,
            peerings: peers
                .iter()
                .enumerate()
                .map(|(i, (pns, pname))| PeeringRef {
                    name: format!("p{i}"),
                    namespace: pns.to_string(),
                    network: pname.to_string(),
                })
                .collect(),
        }
    }

    fn world(nets: &[PeeringNetworkView]) -> BTreeMap<ObjectKey, PeeringNetworkView> {
        nets.iter().map(|n| (n.key(), n.clone())).collect()
    }

    fn names(refs: &[PeeringClaimRef]) -> Vec<String> {
        refs.iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect()
    }

    #[test]
    fn n1_star_with_explicit_and_implicit_namespaces() {
        let w = world(&[
            net("ns", "n1", &[("ns", "n2"), ("", "n3"), ("", "n4")]),
            net("ns", "n2", &[("", "n1")]),
            net("ns", "n3", &[("ns", "n1")]),
            net("ns", "n4", &[("", "n1")]),
        ]);
        let get = |k: &ObjectKey| w.get(k);
        let n1 = incoming_peerings(&w[&ObjectKey::new("ns", "n1")], get);
        assert_eq!(names(&n1), ["ns/n2", "ns/n3", "ns/n4"]);
        assert_eq!(n1[0].uid, "ns-n2-uid");
        for n in ["n2", "n3", "n4"] {
            assert_eq!(
                names(&incoming_peerings(&w[&ObjectKey::new("ns", n)], get)),
                ["ns/n1"]
            );
        }
    }

    #[test]
    fn cross_namespace_mutual_peering() {
        let w = world(&[
            net("ns", "n1", &[("ns1", "n2")]),
            net("ns1", "n2", &[("ns", "n1")]),
        ]);
        let get = |k: &ObjectKey| w.get(k);
        assert_eq!(
            names(&incoming_peerings(&w[&ObjectKey::new("ns", "n1")], get)),
            ["ns1/n2"]
        );
        assert_eq!(
            names(&incoming_peerings(&w[&ObjectKey::new("ns1", "n2")], get)),
            ["ns/n1"]
        );
    }

    #[test]
    fn one_sided_missing_and_unavailable_peers_give_nothing() {
        let mut unavailable = net("ns", "n4", &[("", "n1")]);
        unavailable.available = false;
        let w = world(&[
            net(
                "ns",
                "n1",
                &[("ns1", "network-2"), ("", "n2"), ("", "n3"), ("", "n4")],
            ),
            net("ns", "network-2", &[("", "network-other")]),
            net("ns", "n3", &[("", "n1")]),
            unavailable,
        ]);
        let get = |k: &ObjectKey| w.get(k);
        assert_eq!(
            names(&incoming_peerings(&w[&ObjectKey::new("ns", "n1")], get)),
            ["ns/n3"]
        );
        assert!(incoming_peerings(&w[&ObjectKey::new("ns", "network-2")], get).is_empty());
    }

    #[test]
    fn full_mesh_and_removal() {
        let mut w = world(&[
            net("ns", "a", &[("", "b"), ("", "c")]),
            net("ns", "b", &[("", "a"), ("", "c")]),
            net("ns", "c", &[("", "a"), ("", "b")]),
        ]);
        {
            let get = |k: &ObjectKey| w.get(k);
            assert_eq!(
                names(&incoming_peerings(&w[&ObjectKey::new("ns", "a")], get)),
                ["ns/b", "ns/c"]
            );
        }
        w.get_mut(&ObjectKey::new("ns", "a")).unwrap().peerings.clear();
        let get = |k: &ObjectKey| w.get(k);
        assert!(incoming_peerings(&w[&ObjectKey::new("ns", "a")], get).is_empty());
        assert_eq!(
            names(&incoming_peerings(&w[&ObjectKey::new("ns", "b")], get)),
            ["ns/c"]
        );
        assert_eq!(
            affected_by(&w[&ObjectKey::new("ns", "b")]),
            [ObjectKey::new("ns", "a"), ObjectKey::new("ns", "c")]
        );
    }

    #[test]
    fn deleting_peers_still_count_until_gone() {
        let a = net("ns", "a", &[("", "b")]);
        let mut b = net("ns", "b", &[("", "a")]);
        b.deleting = true;
        let got = incoming_peerings(&a, |k| (k == &b.key()).then_some(&b));
        assert_eq!(names(&got), ["ns/b"]);
        // The deleting network itself gets nothing written.
        assert!(incoming_peerings(&b, |k| (k == &a.key()).then_some(&a)).is_empty());
    }
}
