//! Triggers that also reach the objects a watched object *stopped* relating to.
//!
//! A controller of kind `K` that watches another kind maps each event of that kind to the `K` objects it
//! relates to (a LoadBalancerRouting to its destination interfaces, a policy rule to its targets). Mapping only
//! the new state misses the objects that were just dropped: an interface removed from a routing's destinations
//! is never reconciled, so whatever it derived from the routing stays. [`RelatedObjects`] remembers what each
//! watched object related to last time and yields the union of before and after.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use kube::Resource;
use kube::runtime::reflector::ObjectRef;

/// A watched object's key: namespace and name.
type WatchedKey = (Option<String>, String);

/// Remembers, per watched object (by namespace and name), the `K` objects it related to at its last event.
///
/// Cheap to clone; clones share the memory. Call [`RelatedObjects::update`] from the mapper of a
/// `watches_stream` with the object's current relations.
pub struct RelatedObjects<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    last: Arc<Mutex<HashMap<WatchedKey, Vec<ObjectRef<K>>>>>,
}

impl<K: Resource> std::fmt::Debug for RelatedObjects<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let watched = self.last.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("RelatedObjects")
            .field("watched", &watched)
            .finish()
    }
}

impl<K: Resource> Clone for RelatedObjects<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        RelatedObjects {
            last: Arc::clone(&self.last),
        }
    }
}

impl<K: Resource> Default for RelatedObjects<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn default() -> Self {
        RelatedObjects {
            last: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K: Resource> RelatedObjects<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `watched` (which is `deleted` or not) now relates to `now`, and returns `now` together with
    /// what it related to at its previous event, without duplicates. A deleted object is forgotten.
    pub fn update(
        &self,
        watched: &impl Resource,
        deleted: bool,
        now: Vec<ObjectRef<K>>,
    ) -> Vec<ObjectRef<K>> {
        let key = (
            watched.meta().namespace.clone(),
            watched.meta().name.clone().unwrap_or_default(),
        );
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let before = if deleted {
            last.remove(&key).unwrap_or_default()
        } else {
            last.insert(key, now.clone()).unwrap_or_default()
        };
        let mut all = now;
        for r in before {
            if !all.contains(&r) {
                all.push(r);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn r(name: &str) -> ObjectRef<ConfigMap> {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn an_object_dropped_from_the_relation_is_still_triggered_once() {
        let related = RelatedObjects::<ConfigMap>::new();
        let watched = cm("routing");
        assert_eq!(
            related.update(&watched, false, vec![r("a"), r("b")]),
            vec![r("a"), r("b")]
        );
        // b dropped: both the remaining and the dropped one are triggered.
        assert_eq!(
            related.update(&watched, false, vec![r("a")]),
            vec![r("a"), r("b")]
        );
        // Next change: b is no longer remembered.
        assert_eq!(
            related.update(&watched, false, vec![r("c")]),
            vec![r("c"), r("a")]
        );
        // Deleted: what it related to last, and then nothing is remembered.
        assert_eq!(related.update(&watched, true, vec![r("c")]), vec![r("c")]);
        assert_eq!(
            related.update(&watched, false, vec![]),
            Vec::<ObjectRef<ConfigMap>>::new()
        );
        // Objects are told apart by namespace and name.
        assert_eq!(related.update(&cm("other"), false, vec![r("x")]), vec![r("x")]);
    }
}
