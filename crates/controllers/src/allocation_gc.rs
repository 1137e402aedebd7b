//! Garbage collection of IPAddresses and NetworkIDs whose claimer is gone (upstream ironcore-net's IPAddress,
//! `ipaddressgc` and `networkidgc` controllers, `internal/controllers`), with the claim check of
//! [`crate::release`]: a claim holds only while an object with the claimed **UID** exists.

use crate::release::{ClaimRef, Claimer, claim_holds};

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
