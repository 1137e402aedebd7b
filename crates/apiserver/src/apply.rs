//! Server-side apply and `managedFields` bookkeeping, delegated to `ironnet_structured`
//! (structured-merge-diff semantics: list-map/set merging from `x-kubernetes-list-type`,
//! conflicts, `force`, removal of omitted fields, no-op re-apply) and mapped to API errors here.

use std::sync::Arc;

use ironnet_structured::{
    ApplyError, ApplyRequest, Operation, Schema, UpdateRequest, managed_fields_for_update, reset_fields,
    set_managed_fields,
};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::definition::ResourceDefinition;
use crate::error::{ApiError, GroupResource};

/// What apply and managed-fields tracking need to know about a kind.
#[derive(Clone, Debug)]
pub struct KindSchema {
    schema: Arc<Schema>,
    api_version: String,
    status_subresource: bool,
}

impl KindSchema {
    /// The structural schema of `def` (an untyped one, treating everything atomically, if the
    /// definition's schema cannot be converted).
    pub fn new(def: &ResourceDefinition) -> Self {
        let schema = Schema::from_openapi(&def.schema).unwrap_or_else(|e| {
            tracing::warn!(kind = %def.kind, error = %e, "schema not usable for server-side apply; treating it as untyped");
            Schema::untyped()
        });
        KindSchema {
            schema: Arc::new(schema),
            api_version: def.api_version(),
            status_subresource: def.status_subresource,
        }
    }
}

fn apply_error(e: ApplyError, gr: &GroupResource, name: &str) -> ApiError {
    match e {
        ApplyError::Conflicts(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": c.cause_message(), "field": c.field}))
                .collect();
            ApiError {
                code: 409,
                reason: "Conflict".into(),
                message: ApplyError::Conflicts(conflicts).to_string(),
                details: Some(
                    json!({"name": name, "group": gr.group, "kind": gr.resource, "causes": causes}),
                ),
            }
        }
        ApplyError::InvalidConfig(t) => ApiError {
            code: 422,
            reason: "Invalid".into(),
            message: ApplyError::InvalidConfig(t).to_string(),
            details: None,
        },
        e @ (ApplyError::InvalidLive(_) | ApplyError::InvalidManagedFields(_)) => {
            ApiError::internal(e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Applies `applied` by `manager` on `live` (`None`: the apply creates the object); returns the
/// object to store with its new `managedFields`.
pub fn apply(
    ks: &KindSchema,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
    now: Timestamp,
    gr: &GroupResource,
    name: &str,
) -> Result<Value, ApiError> {
    let managed: Vec<ironnet_structured::ManagedFieldsEntry> = live
        .and_then(|l| l.pointer("/metadata/managedFields"))
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let reset = reset_fields(subresource, ks.status_subresource);
    let result = ironnet_structured::apply(ApplyRequest {
        live,
        applied,
        manager,
        subresource,
        force,
        schema: &ks.schema,
        managed_fields: &managed,
        api_version: &ks.api_version,
        now,
        reset_fields: reset.as_ref(),
    })
    .map_err(|e| apply_error(e, gr, name))?;
    Ok(result.object)
}

/// Records a non-apply write (`old`: `None` on create) by `manager` in `new`'s `managedFields`.
pub fn record_update(
    ks: &KindSchema,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: Timestamp,
) {
    let start = managed_fields_for_update(old, new, subresource);
    let reset = reset_fields(subresource, ks.status_subresource);
    let entries = ironnet_structured::update_managed_fields(UpdateRequest {
        old,
        new,
        manager,
        operation: Operation::Update,
        subresource,
        managed_fields: &start,
        schema: &ks.schema,
        api_version: &ks.api_version,
        now,
        reset_fields: reset.as_ref(),
    });
    set_managed_fields(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Scope;

    fn ks() -> KindSchema {
        let mut def = ResourceDefinition::new("g", "v1", "W", "ws", Scope::Namespaced).unwrap();
        def.schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer"}, "color": {"type": "string"}}}}});
        KindSchema::new(&def)
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let ks = ks();
        let gr = GroupResource::new("g", "ws");
        let now: Timestamp = "2026-11-23T19:00:00Z".parse().unwrap();
        let a = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {"size": 1, "color": "red"}});
        let live = apply(&ks, None, &a, "alice", false, None, now, &gr, "x").unwrap();
        let again = apply(
            &ks,
            Some(&live),
            &a,
            "alice",
            false,
            None,
            "2026-11-23T20:00:00Z".parse().unwrap(),
            &gr,
            "x",
        )
        .unwrap();
        assert_eq!(again, live, "re-applying is a no-op, timestamps included");
        let b = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {"size": 2}});
        let e = apply(&ks, Some(&live), &b, "bob", false, None, now, &gr, "x").unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(e.details.as_ref().unwrap()["causes"][0]["field"], ".spec.size");
        let forced = apply(&ks, Some(&live), &b, "bob", true, None, now, &gr, "x").unwrap();
        assert_eq!(forced["spec"]["size"], 2);
        let a2 = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {}});
        let dropped = apply(&ks, Some(&forced), &a2, "alice", false, None, now, &gr, "x").unwrap();
        assert!(dropped["spec"].get("color").is_none());
        assert_eq!(dropped["spec"]["size"], 2);
    }

    #[test]
    fn updates_are_recorded() {
        let ks = ks();
        let now: Timestamp = "2026-11-23T19:00:00Z".parse().unwrap();
        let mut obj =
            json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {"size": 1}});
        record_update(&ks, None, &mut obj, "creator", None, now);
        assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "creator");
        let mut same = obj.clone();
        record_update(&ks, Some(&obj), &mut same, "other", None, now);
        assert_eq!(same, obj, "a write that changes nothing keeps managedFields");
    }
}
