//! One Event, two APIs: core/v1 `events` and `events.k8s.io/v1` `events` serve the same objects,
//! as kube-apiserver does (it stores one Event and converts per version; field mapping from
//! k8s.io/kubernetes pkg/apis/events/v1/conversion.go).
//!
//! Each view is kept in the store under its own kind's key, in that version's form, and every
//! write through either API writes the other form in the **same** store transaction (the
//! strategy's side effects): both keys always share the resourceVersion, a delete removes both,
//! and each version's field selectors (`involvedObject.*`, `regarding.*`) run on stored data.
//! A recorder writing `events.k8s.io/v1` (kube-rs `Recorder`) is thus seen by `kubectl describe`,
//! which lists core/v1 Events by `involvedObject`.

use ironnet_store::{Compare, Op};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::strategy::{AdmissionContext, SideEffects, Strategy};

/// Field names that differ between the versions: (core/v1, events.k8s.io/v1). Every other
/// top-level field (metadata, eventTime, series, action, reason, related, type,
/// reportingInstance) has the same name and form in both.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// The API version of the core Event.
pub const CORE_API_VERSION: &str = "v1";
/// The API version of the events.k8s.io Event.
pub const EVENTS_API_VERSION: &str = "events.k8s.io/v1";

fn convert(obj: &Value, api_version: &str, rename: impl Fn(&str) -> Option<&'static str>) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    if let Value::Object(fields) = obj {
        for (k, v) in fields {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            let name = rename(k).map_or_else(|| k.clone(), str::to_owned);
            out.insert(name, v.clone());
        }
    }
    Value::Object(out)
}

/// A core/v1 Event as events.k8s.io/v1.
pub fn core_to_events(obj: &Value) -> Value {
    convert(obj, EVENTS_API_VERSION, |k| {
        RENAMED.iter().find(|(core, _)| *core == k).map(|(_, new)| *new)
    })
}

/// An events.k8s.io/v1 Event as core/v1.
pub fn events_to_core(obj: &Value) -> Value {
    convert(obj, CORE_API_VERSION, |k| {
        RENAMED.iter().find(|(_, new)| *new == k).map(|(core, _)| *core)
    })
}

/// Which API an [`EventStrategy`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventVersion {
    /// core/v1.
    Core,
    /// events.k8s.io/v1.
    Events,
}

/// The strategy of both Event kinds: writes through one API also write the other's form.
#[derive(Clone, Copy, Debug)]
pub struct EventStrategy {
    version: EventVersion,
}

impl EventStrategy {
    /// The strategy for the Event kind of `version`.
    pub fn new(version: EventVersion) -> Self {
        EventStrategy { version }
    }

    /// The other view's store key and form of `obj`.
    fn mirror(&self, ctx: &AdmissionContext, obj: &Value) -> Result<(String, Value), ApiError> {
        let (group, other) = match self.version {
            EventVersion::Core => ("events.k8s.io", core_to_events(obj)),
            EventVersion::Events => ("", events_to_core(obj)),
        };
        let kind = ctx.registry().get(group, "v1", "events").ok_or_else(|| {
            ApiError::internal(format!("the Event kind of group {group:?} is not registered"))
        })?;
        let namespace = crate::meta::meta_str(obj, "namespace");
        let key = kind
            .def
            .key(Some(namespace).filter(|n| !n.is_empty()), crate::meta::name(obj));
        Ok((key, other))
    }
}

#[async_trait::async_trait]
impl Strategy for EventStrategy {
    async fn admit_create(&self, ctx: &AdmissionContext, obj: &mut Value) -> Result<SideEffects, ApiError> {
        let (key, other) = self.mirror(ctx, obj)?;
        Ok(SideEffects {
            // Both views exist together, so the other one is absent too; the compare keeps it so.
            compares: vec![Compare {
                key: key.clone(),
                mod_revision: 0,
            }],
            ops: vec![Op::Put {
                key,
                value: crate::handlers::encode_for_store(&other),
            }],
            retryable: false,
        })
    }

    async fn admit_update(
        &self,
        ctx: &AdmissionContext,
        new: &mut Value,
        _old: &Value,
    ) -> Result<SideEffects, ApiError> {
        let (key, other) = self.mirror(ctx, new)?;
        Ok(SideEffects {
            compares: Vec::new(),
            ops: vec![Op::Put {
                key,
                value: crate::handlers::encode_for_store(&other),
            }],
            retryable: false,
        })
    }

    async fn admit_delete(&self, ctx: &AdmissionContext, old: &Value) -> Result<SideEffects, ApiError> {
        let (key, _) = self.mirror(ctx, old)?;
        Ok(SideEffects {
            compares: Vec::new(),
            ops: vec![Op::Delete { key }],
            retryable: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn conversion_renames_exactly_the_differing_fields_both_ways() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default", "uid": "u"},
            "involvedObject": {"kind": "Network", "name": "n", "namespace": "default", "uid": "x"},
            "message": "synced", "reason": "Synced", "type": "Normal", "action": "Reconcile",
            "source": {"component": "ctl"}, "firstTimestamp": "2026-12-07T17:00:00Z",
            "lastTimestamp": "2026-12-07T17:00:05Z", "count": 2,
            "eventTime": "2026-12-07T17:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2026-12-07T17:00:05.000000Z"},
            "reportingComponent": "ironnet.dev/ctl", "reportingInstance": "ctl-1",
            "related": {"kind": "Node", "name": "n1"}
        });
        let events = core_to_events(&core);
        assert_eq!(
            events,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "default", "uid": "u"},
                "regarding": {"kind": "Network", "name": "n", "namespace": "default", "uid": "x"},
                "note": "synced", "reason": "Synced", "type": "Normal", "action": "Reconcile",
                "deprecatedSource": {"component": "ctl"}, "deprecatedFirstTimestamp": "2026-12-07T17:00:00Z",
                "deprecatedLastTimestamp": "2026-12-07T17:00:05Z", "deprecatedCount": 2,
                "eventTime": "2026-12-07T17:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2026-12-07T17:00:05.000000Z"},
                "reportingController": "ironnet.dev/ctl", "reportingInstance": "ctl-1",
                "related": {"kind": "Node", "name": "n1"}
            })
        );
        assert_eq!(events_to_core(&events), core);
    }
}
