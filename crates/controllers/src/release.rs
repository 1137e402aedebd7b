//! Releasing stale claims (upstream ironcore's `networkrelease` and `virtualiprelease` in
//! `internal/controllers/networking`, ironcore-net's NetworkInterfaceNATRelease in `internal/controllers`);
//! [`crate::allocation_gc`] applies the same claim check to IPAddresses and NetworkIDs.
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
}
