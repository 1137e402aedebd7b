//! Ephemeral objects owned by a NetworkInterface or LoadBalancer: VirtualIPs and ipam Prefixes
//! (upstream ironcore's `loadbalancerephemeralprefix`, `networkinterfaceephemeralprefix` and
//! `networkinterfaceephemeralvirtualip` controllers, `internal/controllers/networking`).
//!
//! The plan is the same for every kind: create missing desired objects, delete managed objects that are no
//! longer desired, never touch objects this owner does not manage, and never update existing objects.

use std::collections::BTreeSet;

/// Annotation marking an object as created by an ephemeral controller.
pub const EPHEMERAL_MANAGED_BY: &str = "common.ironcore.dev/ephemeral-managed-by";
/// The value of [`EPHEMERAL_MANAGED_BY`].
pub const EPHEMERAL_MANAGER: &str = "ephemeral-manager";

/// Name of the ephemeral Prefix for `spec.ips[index]` of NetworkInterface or LoadBalancer `owner`.
pub fn ip_prefix_name(owner: &str, index: usize) -> String {
    format!("{owner}-{index}")
}

/// Name of the ephemeral Prefix for `spec.prefixes[index]` of NetworkInterface `owner`.
pub fn prefix_prefix_name(owner: &str, index: usize) -> String {
    format!("{owner}-pf-{index}")
}

/// An existing object in the owner's namespace that may be ephemeral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingObject {
    /// Name.
    pub name: String,
    /// UID of the controller owner reference, if any.
    pub controller_uid: Option<String>,
    /// Whether it carries `ephemeral-managed-by=ephemeral-manager`.
    pub ephemeral_annotation: bool,
    /// For VirtualIPs: `spec.targetRef.uid` (retained VIPs are recognised through it).
    pub target_uid: Option<String>,
    /// Whether it is being deleted.
    pub deleting: bool,
}

impl ExistingObject {
    /// Whether `owner_uid` manages this object: it is the controller of an annotated object, or (retained
    /// VirtualIPs) the annotated object targets it.
    pub fn managed_by(&self, owner_uid: &str) -> bool {
        self.ephemeral_annotation
            && (self.controller_uid.as_deref() == Some(owner_uid)
                || self.target_uid.as_deref() == Some(owner_uid))
    }
}

/// A desired ephemeral object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredObject {
    /// Name.
    pub name: String,
    /// Whether the owner should be its controller (false for `reclaimPolicy: Retain` VirtualIPs).
    pub controlled: bool,
}

/// What the ephemeral reconciler has to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EphemeralPlan {
    /// Desired objects that do not exist yet.
    pub create: Vec<String>,
    /// Managed objects that are no longer desired.
    pub delete: Vec<String>,
    /// Managed objects that must gain the owner as controller (Retain switched to Delete).
    pub adopt: Vec<String>,
    /// Desired names taken by objects this owner does not manage ("won't adopt").
    pub conflicts: Vec<String>,
}

/// Plans the ephemeral objects of the owner with `owner_uid`.
pub fn plan_ephemeral(
    owner_uid: &str,
    desired: &[DesiredObject],
    existing: &[ExistingObject],
) -> EphemeralPlan {
    let mut plan = EphemeralPlan::default();
    let mut seen = BTreeSet::new();
    for obj in existing {
        let want = desired.iter().find(|d| d.name == obj.name);
        if want.is_some() {
            seen.insert(obj.name.as_str());
        }
        if !obj.managed_by(owner_uid) {
            if want.is_some() {
                plan.conflicts.push(obj.name.clone());
            }
            continue;
        }
        match want {
            Some(d) if d.controlled && obj.controller_uid.is_none() && !obj.deleting => {
                plan.adopt.push(obj.name.clone());
            }
            Some(_) => {}
            None if !obj.deleting => plan.delete.push(obj.name.clone()),
            None => {}
        }
    }
    plan.create = desired
        .iter()
        .filter(|d| !seen.contains(d.name.as_str()))
        .map(|d| d.name.clone())
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, controller: Option<&str>, annotated: bool) -> ExistingObject {
        ExistingObject {
            name: name.into(),
            controller_uid: controller.map(Into::into),
            ephemeral_annotation: annotated,
            target_uid: None,
            deleting: false,
        }
    }

    fn want(name: &str, controlled: bool) -> DesiredObject {
        DesiredObject {
            name: name.into(),
            controlled,
        }
    }

    #[test]
    fn names() {
        assert_eq!(ip_prefix_name("lb", 0), "lb-0");
        assert_eq!(prefix_prefix_name("nic", 2), "nic-pf-2");
    }

    #[test]
    fn creates_missing_and_deletes_only_annotated_undesired() {
        let existing = [
            obj("lb-1", Some("u"), true),
            obj("lb-2", Some("u"), false),
            obj("other", Some("x"), true),
        ];
        let plan = plan_ephemeral("u", &[want("lb-0", true)], &existing);
        assert_eq!(plan.create, ["lb-0"]);
        assert_eq!(plan.delete, ["lb-1"]);
        assert!(plan.adopt.is_empty() && plan.conflicts.is_empty());
    }

    #[test]
    fn never_adopts_foreign_objects() {
        let plan = plan_ephemeral("u", &[want("nic", true)], &[obj("nic", None, false)]);
        assert_eq!(plan.conflicts, ["nic"]);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn retained_vips_are_managed_through_their_target_and_adopted_on_switch_to_delete() {
        let mut retained = obj("nic", None, true);
        retained.target_uid = Some("u".into());
        assert_eq!(
            plan_ephemeral("u", &[want("nic", false)], std::slice::from_ref(&retained)),
            EphemeralPlan::default()
        );
        assert_eq!(
            plan_ephemeral("u", &[want("nic", true)], std::slice::from_ref(&retained)).adopt,
            ["nic"]
        );
        // Another NIC without a VIP never touches it.
        assert_eq!(
            plan_ephemeral("v", &[], std::slice::from_ref(&retained)),
            EphemeralPlan::default()
        );
        // The owning NIC switching to a virtualIPRef deletes it.
        assert_eq!(plan_ephemeral("u", &[], &[retained]).delete, ["nic"]);
    }

    #[test]
    fn deleting_objects_are_not_deleted_again() {
        let mut d = obj("lb-1", Some("u"), true);
        d.deleting = true;
        assert_eq!(plan_ephemeral("u", &[], &[d]), EphemeralPlan::default());
    }
}
