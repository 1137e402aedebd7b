//! Skipping server-side applies that cannot change anything.
//!
//! A reconciler that server-side applies (with `force`) its whole desired object on every reconcile sends an
//! apply per trigger, and most triggers (another component writing the object's status or finalizers, a
//! related object's event) leave the desired object as it was. The API server recognises such an apply as a
//! no-op and writes nothing, but only after decoding it, merging it with the managed fields, defaulting and
//! validating the result: at scale those no-op applies are a large share of what the server does.
//!
//! An apply of `body` by field manager `m` with `force` changes nothing when
//! - every field of `body` already has that value in the live object (so nothing is set), and
//! - `m` owns no field that `body` leaves out (so nothing is removed), which holds when `m`'s last apply to the
//!   object was of this same `body` and `m` still has an apply entry in the object's managed fields.
//!
//! [`AppliedBodies`] remembers per object a hash of the body last applied, and [`AppliedBodies::unchanged`]
//! checks both conditions against the object as a cache shows it. A stale cache can only make it answer
//! `false` (the caller applies, as without it) or describe an object that a newer event will bring back to the
//! reconciler. Ownership of a field another manager set to the same value is not taken over; the field's value
//! is the same either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;

/// At most this many objects are remembered; beyond it the memory starts over (the cost is one apply per
/// object, as without it). Far above the objects one reconciler owns in a large deployment. Entries of deleted
/// objects stay until then: an object re-created under the same name is skipped only if it carries the body
/// and the manager's apply entry, which is exactly when applying would change nothing.
pub const MAX_REMEMBERED: usize = 200_000;

/// Which object: kind, namespace, name.
type ObjectKey = (String, String, String);

/// The bodies a field manager applied, per object, to skip applies that cannot change anything (see the
/// module documentation).
///
/// Cheap to clone; clones share the record.
#[derive(Clone, Debug)]
pub struct AppliedBodies {
    field_manager: Arc<str>,
    applied: Arc<Mutex<HashMap<ObjectKey, u64>>>,
}

fn key_of<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectKey {
    (
        K::kind(&()).into_owned(),
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
    )
}

fn body_hash(body: &Value) -> u64 {
    crate::cache::hash_of(&body.to_string())
}

/// Whether `v` sets nothing: `null`, an empty list or an empty object (which the API server stores as absent).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Whether `live` already carries every value of `wanted`: objects field by field (fields only `live` has are
/// someone else's or the server's), lists element by element with the same length, scalars equal. An empty
/// wanted value matches an absent or empty live one.
pub fn carries(live: &Value, wanted: &Value) -> bool {
    match (live, wanted) {
        (Value::Object(l), Value::Object(w)) => w.iter().all(|(k, wv)| match l.get(k) {
            Some(lv) => carries(lv, wv),
            None => is_empty(wv),
        }),
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(lv, wv)| carries(lv, wv))
        }
        (l, w) if is_empty(w) => is_empty(l),
        (l, w) => l == w,
    }
}

impl AppliedBodies {
    /// An empty record of the applies of `field_manager`.
    pub fn new(field_manager: &str) -> Self {
        AppliedBodies {
            field_manager: field_manager.into(),
            applied: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Records that `body` was applied to `applied` (the object the server returned).
    pub fn record<K: Resource<DynamicType = ()>>(&self, applied: &K, body: &Value) {
        let mut map = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
        map.insert(key_of(applied), body_hash(body));
    }

    /// Whether applying `body` to `live` (the object as a cache shows it) would change nothing: the last apply
    /// recorded for this object was of the same body, the field manager still has its apply entry in `live`'s
    /// managed fields, and `live` carries every value of `body`.
    ///
    /// `false` whenever it cannot tell: the caller then applies.
    pub fn unchanged<K>(&self, live: &K, body: &Value) -> bool
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let same_body = self
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key_of(live))
            .is_some_and(|hash| *hash == body_hash(body));
        let managed = live.meta().managed_fields.iter().flatten().any(|m| {
            m.manager.as_deref() == Some(&*self.field_manager) && m.operation.as_deref() == Some("Apply")
        });
        same_body && managed && serde_json::to_value(live).is_ok_and(|l| carries(&l, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::apinet::Network;
    use serde_json::json;

    const MANAGER: &str = "apinetlet";

    /// A live Network with `spec`, applied by `manager`, with a status someone else wrote.
    fn live(spec: Value, manager: &str) -> Network {
        serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Network",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7", "uid": "u",
                         "labels": {"mine": "x", "theirs": "y"},
                         "managedFields": [{"manager": manager, "operation": "Apply", "apiVersion": "core.apinet.ironcore.dev/v1alpha1"}]},
            "spec": spec,
            "status": {"peerings": {"p": [{"id": 1, "state": "Ready"}]}},
        }))
        .expect("valid network")
    }

    fn body(spec: Value) -> Value {
        json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Network",
               "metadata": {"name": "a", "namespace": "ns", "labels": {"mine": "x"}}, "spec": spec})
    }

    #[test]
    fn the_same_body_on_an_object_carrying_it_is_unchanged_whatever_else_changed() {
        let memo = AppliedBodies::new(MANAGER);
        let spec = json!({"id": "300", "peerings": []});
        let b = body(spec.clone());
        assert!(
            !memo.unchanged(&live(json!({"id": "300"}), MANAGER), &b),
            "nothing recorded yet"
        );
        memo.record(&live(json!({"id": "300"}), MANAGER), &b);
        // Another label, a status and a new resourceVersion do not matter; the empty list matches its absence.
        let mut l = live(json!({"id": "300"}), MANAGER);
        l.metadata.resource_version = Some("8".into());
        assert!(memo.unchanged(&l, &b));
    }

    #[test]
    fn another_body_a_changed_field_or_a_lost_apply_entry_is_not_unchanged() {
        let memo = AppliedBodies::new(MANAGER);
        let b = body(json!({"id": "300"}));
        memo.record(&live(json!({"id": "300"}), MANAGER), &b);
        assert!(
            !memo.unchanged(&live(json!({"id": "300"}), MANAGER), &body(json!({}))),
            "a body leaving a field out removes it"
        );
        assert!(
            !memo.unchanged(&live(json!({"id": "301"}), MANAGER), &b),
            "someone changed a field"
        );
        assert!(
            !memo.unchanged(&live(json!({"id": "300"}), "kubectl"), &b),
            "not ours any more"
        );
    }

    #[test]
    fn carries_compares_lists_by_element_and_objects_by_the_wanted_fields() {
        let live = json!({"a": [{"x": 1, "y": 2}], "b": "s", "c": null});
        assert!(carries(
            &live,
            &json!({"a": [{"x": 1}], "b": "s", "d": [], "e": {}, "c": null})
        ));
        assert!(
            !carries(&live, &json!({"a": [{"x": 1}, {"x": 2}]})),
            "a list of another length"
        );
        assert!(!carries(&live, &json!({"a": [{"x": 2}]})));
        assert!(!carries(&live, &json!({"b": "t"})));
        assert!(!carries(&live, &json!({"f": 1})), "a field the live object lacks");
        assert!(
            !carries(&json!({"a": [1]}), &json!({"a": []})),
            "an empty list removes the elements"
        );
    }
}
