//! Releasing stale claims (upstream ironcore's `networkrelease` and `virtualiprelease` in
//! `internal/controllers/networking`, ironcore-net's NetworkInterfaceNATRelease in `internal/controllers`)
//! and garbage collection of IPAddresses and NetworkIDs whose claimer is gone (ironcore-net's IPAddress,
//! `ipaddressgc` and `networkidgc` controllers).
//!
//! Upstream checks existence by name only, so an object re-created under the same name keeps the claim of
//! its predecessor. Here a claim holds only while an object with the claimed **UID** exists.

/// A claim on an object: who is supposed to hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRef {
    /// Namespace of the claimer (empty for cluster-scoped claimers).
    pub namespace: String,
    /// Name of the claimer.
    pub name: String,
    /// UID of the claimer; empty means "any object with that name" (claims written without a UID).
    pub uid: String,
}

/// What a lookup of the claimer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claimer {
    /// No object with that namespace/name.
    Missing,
    /// An object exists with this UID.
    Exists {
        /// Its UID.
        uid: String,
    },
}

/// Whether `claim` is still held, given what exists under its namespace/name.
pub fn claim_holds(claim: &ClaimRef, found: &Claimer) -> bool {
    match found {
        Claimer::Missing => false,
        Claimer::Exists { uid } => claim.uid.is_empty() || &claim.uid == uid,
    }
}

/// The indices of `claims` that no longer hold, in order.
pub fn stale_claims(claims: &[ClaimRef], lookup: impl Fn(&ClaimRef) -> Claimer) -> Vec<usize> {
    claims
        .iter()
        .enumerate()
        .filter(|(_, c)| !claim_holds(c, &lookup(c)))
        .map(|(i, _)| i)
        .collect()
}

/// What to do with an IPAddress or a NetworkID whose claim is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationAction {
    /// The claimer is alive: keep it.
    Keep,
    /// The claimer is gone: delete the allocation object.
    Delete,
    /// The allocation is deleting and its claimer is gone: drop the protection finalizer.
    RemoveFinalizer,
    /// The allocation is deleting while its claimer lives: wait (check again later).
    WaitForClaimer,
    /// Nothing to do (deleting, no finalizer left).
    None,
}

/// The action for an allocation object whose claimer is `claim`.
pub fn allocation_action(
    deleting: bool,
    has_finalizer: bool,
    claim: Option<&ClaimRef>,
    found: &Claimer,
) -> AllocationAction {
    let alive = claim.is_some_and(|c| claim_holds(c, found));
    match (deleting, alive) {
        (false, true) => AllocationAction::Keep,
        (false, false) => AllocationAction::Delete,
        (true, _) if !has_finalizer => AllocationAction::None,
        (true, true) => AllocationAction::WaitForClaimer,
        (true, false) => AllocationAction::RemoveFinalizer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(uid: &str) -> ClaimRef {
        ClaimRef {
            namespace: "ns".into(),
            name: "m".into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn claims_hold_only_for_the_same_uid() {
        assert!(claim_holds(&claim("u1"), &Claimer::Exists { uid: "u1".into() }));
        assert!(
            !claim_holds(&claim("u1"), &Claimer::Exists { uid: "u2".into() }),
            "re-created object"
        );
        assert!(!claim_holds(&claim("u1"), &Claimer::Missing));
        assert!(claim_holds(&claim(""), &Claimer::Exists { uid: "u2".into() }));
    }

    #[test]
    fn stale_claims_are_listed_in_order() {
        let claims = [claim("a"), claim("b"), claim("c")];
        let stale = stale_claims(&claims, |c| match c.uid.as_str() {
            "b" => Claimer::Exists { uid: "b".into() },
            "c" => Claimer::Exists { uid: "other".into() },
            _ => Claimer::Missing,
        });
        assert_eq!(stale, [0, 2]);
    }

    #[test]
    fn allocation_actions() {
        let c = claim("u");
        let alive = Claimer::Exists { uid: "u".into() };
        assert_eq!(
            allocation_action(false, true, Some(&c), &alive),
            AllocationAction::Keep
        );
        assert_eq!(
            allocation_action(false, true, Some(&c), &Claimer::Missing),
            AllocationAction::Delete
        );
        assert_eq!(
            allocation_action(false, true, None, &Claimer::Missing),
            AllocationAction::Delete
        );
        assert_eq!(
            allocation_action(true, true, Some(&c), &alive),
            AllocationAction::WaitForClaimer
        );
        assert_eq!(
            allocation_action(true, true, Some(&c), &Claimer::Missing),
            AllocationAction::RemoveFinalizer
        );
        assert_eq!(
            allocation_action(true, false, Some(&c), &Claimer::Missing),
            AllocationAction::None
        );
    }
}
