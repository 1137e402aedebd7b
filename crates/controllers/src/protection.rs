//! The Network protection finalizer: a Network stays while NetworkInterfaces, LoadBalancers, NATGateways or
//! peers use it (upstream ironcore's `networkprotection` controller, `internal/controllers/networking`).

use crate::peering::{ObjectKey, PeeringClaimRef};

/// The finalizer every Network carries while it exists.
pub const NETWORK_FINALIZER: &str = "networking.ironcore.dev/network";

/// Something that may keep a Network in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkUser {
    /// A NetworkInterface, LoadBalancer or NATGateway in `namespace` referencing network `network`.
    Reference {
        /// Namespace of the user (references are namespace-local).
        namespace: String,
        /// `spec.networkRef.name`.
        network: String,
        /// Whether the user is being deleted (deleting users do not count).
        deleting: bool,
    },
    /// Another Network listing peers in `spec.incomingPeerings`.
    Peer {
        /// Namespace of the peer Network.
        namespace: String,
        /// Its `spec.incomingPeerings`.
        incoming: Vec<PeeringClaimRef>,
        /// Whether the peer is being deleted.
        deleting: bool,
    },
}

/// Whether `network` is in use by any of `users`.
///
/// Peer claims are matched on the full key (an empty claim namespace means the peer's own namespace), so a
/// cross-namespace peer protects the Network and a same-named Network in another namespace does not
/// (upstream compares names only, within the Network's namespace).
pub fn network_in_use<'a>(network: &ObjectKey, users: impl IntoIterator<Item = &'a NetworkUser>) -> bool {
    users.into_iter().any(|u| match u {
        NetworkUser::Reference {
            namespace,
            network: name,
            deleting,
        } => !deleting && namespace == &network.namespace && name == &network.name,
        NetworkUser::Peer {
            namespace,
            incoming,
            deleting,
        } => {
            !deleting
                && incoming.iter().any(|c| {
                    let ns = if c.namespace.is_empty() {
                        namespace
                    } else {
                        &c.namespace
                    };
                    ns == &network.namespace && c.name == network.name
                })
        }
    })
}

/// What to do with the protection finalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerAction {
    /// Add the finalizer.
    Add,
    /// Remove the finalizer: the Network is deleting and unused.
    Remove,
    /// The Network is deleting but still in use: keep it and check again later.
    WaitInUse,
    /// Nothing to write.
    None,
}

/// The finalizer action for a Network in the given state.
pub fn finalizer_action(deleting: bool, has_finalizer: bool, in_use: bool) -> FinalizerAction {
    match (deleting, has_finalizer, in_use) {
        (false, false, _) => FinalizerAction::Add,
        (false, true, _) | (true, false, _) => FinalizerAction::None,
        (true, true, true) => FinalizerAction::WaitInUse,
        (true, true, false) => FinalizerAction::Remove,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(ns: &str, net: &str, deleting: bool) -> NetworkUser {
        NetworkUser::Reference {
            namespace: ns.into(),
            network: net.into(),
            deleting,
        }
    }

    #[test]
    fn references_protect_only_in_the_same_namespace_and_while_not_deleting() {
        let key = ObjectKey::new("ns", "net");
        assert!(network_in_use(&key, &[reference("ns", "net", false)]));
        assert!(!network_in_use(&key, &[reference("ns", "net", true)]));
        assert!(!network_in_use(&key, &[reference("other", "net", false)]));
        assert!(!network_in_use(&key, &[reference("ns", "other", false)]));
        assert!(!network_in_use(&key, &[]));
    }

    #[test]
    fn peers_protect_by_full_key() {
        let key = ObjectKey::new("ns", "n1");
        let claim = |ns: &str| PeeringClaimRef {
            namespace: ns.into(),
            name: "n1".into(),
            uid: "u".into(),
        };
        let peer = |peer_ns: &str, claim_ns: &str, deleting| NetworkUser::Peer {
            namespace: peer_ns.into(),
            incoming: vec![claim(claim_ns)],
            deleting,
        };
        assert!(
            network_in_use(&key, &[peer("ns1", "ns", false)]),
            "cross-namespace peer protects"
        );
        assert!(
            network_in_use(&key, &[peer("ns", "", false)]),
            "empty namespace = peer's namespace"
        );
        assert!(
            !network_in_use(&key, &[peer("ns", "other", false)]),
            "same name elsewhere does not"
        );
        assert!(
            !network_in_use(&key, &[peer("ns", "ns", true)]),
            "deleting peers do not count"
        );
    }

    #[test]
    fn finalizer_actions() {
        assert_eq!(finalizer_action(false, false, false), FinalizerAction::Add);
        assert_eq!(finalizer_action(false, true, true), FinalizerAction::None);
        assert_eq!(finalizer_action(true, true, true), FinalizerAction::WaitInUse);
        assert_eq!(finalizer_action(true, true, false), FinalizerAction::Remove);
        assert_eq!(finalizer_action(true, false, true), FinalizerAction::None);
    }
}
