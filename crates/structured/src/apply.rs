//! Server-side apply and managedFields bookkeeping for other writes: structured-merge-diff's
//! `merge.Updater` (`Apply`, `Update`, `prune`) wrapped the way kube-apiserver's field manager
//! wraps it (`before-first-apply`, stripped metadata fields, timestamps, capped update managers).

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use serde_json::{Map, Value};

use crate::managers::{self, Managed, ManagedFieldsError, ManagerId, Managers, Operation};
use crate::path::values_equal;
use crate::schema::Schema;
use crate::set::FieldSet;
use crate::typed::{Comparison, TypedError};

/// The manager kube records for the fields of an object that existed before its first apply.
pub const BEFORE_FIRST_APPLY_MANAGER: &str = "before-first-apply";

/// A server-side apply request (`PATCH` with `application/apply-patch+yaml`).
#[derive(Clone, Copy, Debug)]
pub struct ApplyRequest<'a> {
    /// The stored object, or `None` when the apply creates it.
    pub live: Option<&'a Value>,
    /// The applied configuration (see [`crate::decode_body`]).
    pub applied: &'a Value,
    /// The `fieldManager`; must be non-empty.
    pub manager: &'a str,
    /// The subresource applied to (`Some("status")`), `None` for the main resource.
    pub subresource: Option<&'a str>,
    /// `force=true`: take ownership of conflicting fields instead of failing.
    pub force: bool,
    /// The object's schema.
    pub schema: &'a Schema,
    /// The live object's `metadata.managedFields` (empty on create).
    pub managed_fields: &'a [ManagedFieldsEntry],
    /// The `group/version` of the request; the applied config must carry the same `apiVersion`.
    pub api_version: &'a str,
    /// The time recorded for entries this request changes (kept at second precision).
    pub now: Timestamp,
    /// Fields the endpoint resets (kube's `ResetFieldsStrategy`, see [`reset_fields`]): they are
    /// dropped from the applied config and never become owned by this request.
    pub reset_fields: Option<&'a FieldSet>,
}

/// The outcome of a successful apply.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplyResult {
    /// The new object, with `metadata.managedFields` set to [`ApplyResult::managed_fields`]
    /// (absent when there are none). On a no-op apply this is the live object.
    pub object: Value,
    /// The new managedFields entries, in kube's order.
    pub managed_fields: Vec<ManagedFieldsEntry>,
    /// Whether the object (apart from managedFields) differs from the live one; when neither this
    /// nor the managed fields changed, kube does not write the object at all.
    pub object_changed: bool,
}

/// One field another manager owns with a different value than the applied one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The owning manager's name.
    pub manager: String,
    /// The manager as kube prints it: `"name"`, `"name" using group/v1`, or with
    /// ` with subresource "status"`.
    pub manager_description: String,
    /// The field, e.g. `.spec.replicas` or `.spec.ports[name="http"].port`.
    pub field: String,
    /// The field as a path.
    pub path: crate::path::FieldPath,
}

impl Conflict {
    /// The `StatusCause.message`: `conflict with "name" using group/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_description)
    }

    /// The `StatusCause.type` kube uses for apply conflicts.
    pub const CAUSE_TYPE: &'static str = "FieldManagerConflict";
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conflict with {}: {}", self.manager_description, self.field)
    }
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApplyError {
    /// Fields owned by other managers would change; HTTP 409 with one cause per conflict.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is not an object.
    #[error("the applied configuration must be an object")]
    NotAnObject,
    /// The applied configuration carries `metadata.managedFields` (HTTP 400).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInConfig,
    /// The applied configuration's `apiVersion` is not the request's (HTTP 400).
    #[error(
        "Incorrect version specified in apply patch. Specified patch version: {got}, expected: {expected}"
    )]
    VersionMismatch {
        /// The request's group/version.
        expected: String,
        /// The applied configuration's `apiVersion`.
        got: String,
    },
    /// The applied configuration does not fit the schema, e.g. a map-list element without its
    /// key or duplicate set elements (HTTP 400/422).
    #[error("failed to create typed patch object: {0}")]
    InvalidConfig(TypedError),
    /// The live object does not fit the schema (HTTP 500).
    #[error("failed to create typed live object: {0}")]
    InvalidLive(TypedError),
    /// The live object's managedFields cannot be decoded (HTTP 500).
    #[error("failed to decode managed fields: {0}")]
    InvalidManagedFields(ManagedFieldsError),
    /// The field manager is empty (HTTP 400).
    #[error("fieldManager is required for apply requests")]
    MissingManager,
}

/// kube's `getConflictMessage`.
fn conflicts_message(conflicts: &[Conflict]) -> String {
    match conflicts {
        [one] => format!("Apply failed with 1 conflict: {one}"),
        many => {
            let mut lines = Vec::new();
            let mut current: Option<&str> = None;
            for c in many {
                if current != Some(c.manager_description.as_str()) {
                    lines.push(format!("conflicts with {}:", c.manager_description));
                    current = Some(&c.manager_description);
                }
                lines.push(format!("- {}", c.field));
            }
            format!("Apply failed with {} conflicts: {}", many.len(), lines.join("\n"))
        }
    }
}

/// A non-apply write whose managedFields must be updated.
#[derive(Clone, Copy, Debug)]
pub struct UpdateRequest<'a> {
    /// The stored object, or `None` on create.
    pub old: Option<&'a Value>,
    /// The object about to be stored.
    pub new: &'a Value,
    /// The field manager (see [`crate::default_field_manager`]).
    pub manager: &'a str,
    /// The operation recorded; [`Operation::Update`] for every non-apply write.
    pub operation: Operation,
    /// The subresource written (`Some("status")`), `None` for the main resource.
    pub subresource: Option<&'a str>,
    /// The managedFields to start from: the live object's, or the ones the client sent in the
    /// new object if it sent any (kube lets clients overwrite managedFields on the main resource).
    pub managed_fields: &'a [ManagedFieldsEntry],
    /// The object's schema.
    pub schema: &'a Schema,
    /// The `group/version` of the request.
    pub api_version: &'a str,
    /// The time recorded when this write changes fields.
    pub now: Timestamp,
    /// Fields the endpoint resets (see [`reset_fields`]); changes there are not tracked.
    pub reset_fields: Option<&'a FieldSet>,
}

/// Why managedFields could not be updated (kube then clears them, see [`update_managed_fields`]).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UpdateError {
    /// The existing managedFields cannot be decoded.
    #[error("failed to decode managed fields: {0}")]
    InvalidManagedFields(ManagedFieldsError),
    /// The old or new object does not fit the schema.
    #[error("failed to compare objects: {0}")]
    Typed(TypedError),
}

/// The fields kube's strategies reset for an endpoint of a custom resource with a status
/// subresource: `status` on the main resource, `spec` on `/status` (kube resets the values
/// itself; this set only keeps them out of field ownership). `None` without a status subresource.
pub fn reset_fields(subresource: Option<&str>, has_status_subresource: bool) -> Option<FieldSet> {
    if !has_status_subresource {
        return None;
    }
    let field = if subresource == Some("status") {
        "spec"
    } else {
        "status"
    };
    Some(FieldSet::from_paths(&[crate::path::FieldPath::fields(&[field])]))
}

/// Applies `req.applied` on behalf of `req.manager` with structured-merge-diff semantics:
/// the applied fields become the manager's Apply entry; maps and associative lists merge, atomic
/// values are replaced; fields the manager applied before and no longer applies are removed
/// unless someone else owns them; changing a field another manager owns is a conflict unless
/// `force`, which transfers ownership. Re-applying the same configuration changes nothing, not
/// even timestamps.
///
/// For the manager `kubectl` (what `kubectl apply --server-side` uses), kube's client-side-apply
/// upgrade path applies as well: conflicts on fields whose value still matches the object's
/// `kubectl.kubernetes.io/last-applied-configuration` annotation are taken over without `force`,
/// and an existing annotation is rewritten to the applied configuration.
pub fn apply(req: ApplyRequest<'_>) -> Result<ApplyResult, ApplyError> {
    let mut result = match apply_structured(req) {
        Err(ApplyError::Conflicts(conflicts)) if req.manager == crate::last_applied::KUBECTL_MANAGER => {
            match req
                .live
                .and_then(|live| crate::last_applied::allowed_conflicts(req.schema, live))
            {
                Some(allowed) => {
                    let remaining: Vec<Conflict> = conflicts
                        .into_iter()
                        .filter(|c| !allowed.contains(c.path.elements()))
                        .collect();
                    if remaining.is_empty() {
                        apply_structured(ApplyRequest { force: true, ..req })
                    } else {
                        Err(ApplyError::Conflicts(remaining))
                    }
                }
                None => Err(ApplyError::Conflicts(conflicts)),
            }
        }
        other => other,
    }?;
    if req.manager == crate::last_applied::KUBECTL_MANAGER
        && crate::last_applied::sync_annotation(&mut result.object, req.applied)
    {
        result.object_changed = req.live.is_none_or(|live| {
            let mut a = live.clone();
            let mut b = result.object.clone();
            set_managed_fields(&mut a, &[]);
            set_managed_fields(&mut b, &[]);
            !values_equal(&a, &b)
        });
    }
    Ok(result)
}

/// structured-merge-diff's apply inside kube's field-manager layers, without the
/// last-applied-configuration handling.
fn apply_structured(req: ApplyRequest<'_>) -> Result<ApplyResult, ApplyError> {
    if req.manager.is_empty() {
        return Err(ApplyError::MissingManager);
    }
    let Value::Object(applied_map) = req.applied else {
        return Err(ApplyError::NotAnObject);
    };
    if applied_map
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::ManagedFieldsInConfig);
    }
    let got = applied_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if got != req.api_version {
        return Err(ApplyError::VersionMismatch {
            expected: req.api_version.to_owned(),
            got: got.to_owned(),
        });
    }
    let schema = req.schema;
    let now = Time(Timestamp::from_second(req.now.as_second()).unwrap_or(req.now));
    let mut managers = managers::decode(req.managed_fields).map_err(ApplyError::InvalidManagedFields)?;
    let live = without_managed_fields(req.live.cloned().unwrap_or_else(|| Value::Object(Map::new())));
    let mut applied = without_managed_fields(req.applied.clone());
    if let Some(reset) = req.reset_fields {
        applied = schema.remove_items(&applied, reset);
    }

    if managers.is_empty() && req.live.is_some() {
        // kube's skipNonAppliedManager: whatever the object already holds is owned by
        // `before-first-apply`, so the first applier conflicts with it like with anyone else.
        let id = ManagerId::new(
            BEFORE_FIRST_APPLY_MANAGER,
            Operation::Update,
            req.api_version,
            None,
        );
        let empty = Value::Object(Map::new());
        record_update(
            schema,
            &empty,
            &live,
            &mut managers,
            id,
            req.api_version,
            &now,
            req.reset_fields,
        )
        .map_err(ApplyError::InvalidLive)?;
    }

    let mut applied_set = schema.to_field_set(&applied).map_err(ApplyError::InvalidConfig)?;
    if let Some(reset) = req.reset_fields {
        applied_set = applied_set.recursive_difference(reset);
    }
    let merged = schema.merge(&live, &applied).map_err(ApplyError::InvalidLive)?;

    let applier = ManagerId::new(req.manager, Operation::Apply, req.api_version, req.subresource);
    let previous = managers.remove(&applier);
    let last_set = previous.as_ref().map(|m| m.set.clone());
    let previous_time = previous.and_then(|m| m.time);
    managers.insert(
        applier.clone(),
        Managed {
            set: applied_set,
            api_version: req.api_version.to_owned(),
            time: previous_time,
        },
    );
    let mut merged =
        prune(schema, merged, &managers, &applier, last_set.as_ref()).map_err(ApplyError::InvalidLive)?;
    schema.restore_applied_nulls(&applied, &mut merged);

    let compare =
        filtered_compare(schema, &live, &merged, req.reset_fields).map_err(ApplyError::InvalidLive)?;
    let changed = compare.modified.union(&compare.added);
    let mut conflicts = Vec::new();
    for (id, m) in managers.iter_mut() {
        if *id == applier {
            continue;
        }
        let conflict = m.set.intersection(&changed);
        for p in conflict.paths() {
            conflicts.push(Conflict {
                manager: id.manager.clone(),
                manager_description: id.describe(),
                field: p.to_string(),
                path: p,
            });
        }
        m.set = m.set.difference(&conflict).difference(&compare.removed);
    }
    if !req.force && !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    managers.retain(|_, m| !m.set.is_empty());
    strip_meta(&mut managers, &applier);

    let object_changed = !values_equal(&live, &merged);
    if object_changed && let Some(m) = managers.get_mut(&applier) {
        m.time = Some(now);
    }
    managers::cap_update_managers(&mut managers);
    let managed_fields = managers::encode(&managers);
    let mut object = if object_changed { merged } else { live };
    set_managed_fields(&mut object, &managed_fields);
    Ok(ApplyResult {
        object,
        managed_fields,
        object_changed,
    })
}

/// The managedFields a non-apply write starts from, chosen as kube's `decodeLiveOrNew` does:
/// on a subresource, always the live object's; on the main resource, the ones the client sent in
/// `new` if they decode to at least one manager (clients may rewrite managedFields), an explicit
/// `[]` or `[{}]` resets them to nothing, and otherwise (absent, undecodable) the live object's.
/// Live entries that do not decode count as none.
pub fn managed_fields_for_update(
    live: Option<&Value>,
    new: &Value,
    subresource: Option<&str>,
) -> Vec<ManagedFieldsEntry> {
    let entries_of = |v: &Value| -> Option<Vec<ManagedFieldsEntry>> {
        let raw = v.get("metadata")?.get("managedFields")?;
        if raw.is_null() {
            return None;
        }
        Some(serde_json::from_value(raw.clone()).unwrap_or_default())
    };
    let live_entries = || {
        let entries = live.and_then(entries_of).unwrap_or_default();
        if managers::decode(&entries).is_ok() {
            entries
        } else {
            Vec::new()
        }
    };
    if subresource.is_some_and(|s| !s.is_empty()) {
        return live_entries();
    }
    let sent = new.get("metadata").and_then(|m| m.get("managedFields"));
    if let Some(Value::Array(items)) = sent
        && (items.is_empty() || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty)))
    {
        return Vec::new();
    }
    match entries_of(new) {
        Some(entries) if managers::decode(&entries).is_ok_and(|m| !m.is_empty()) => entries,
        _ => live_entries(),
    }
}

/// kube's `FieldManager.UpdateNoErrors`: the managedFields after a non-apply write, or, if they
/// cannot be computed (undecodable entries, an object that does not fit the schema), no entries
/// at all, so that garbage is never stored. See [`try_update_managed_fields`].
pub fn update_managed_fields(req: UpdateRequest<'_>) -> Vec<ManagedFieldsEntry> {
    try_update_managed_fields(req).unwrap_or_default()
}

/// The managedFields after a non-apply write: the manager gains the fields this write added or
/// changed (all fields on create), those fields leave every other manager's set, removed fields
/// leave every set, and managers left with nothing are dropped. The manager's timestamp moves to
/// `now` only if the write changed something.
pub fn try_update_managed_fields(req: UpdateRequest<'_>) -> Result<Vec<ManagedFieldsEntry>, UpdateError> {
    let mut managers = managers::decode(req.managed_fields).map_err(UpdateError::InvalidManagedFields)?;
    let old = without_managed_fields(req.old.cloned().unwrap_or_else(|| Value::Object(Map::new())));
    let new = without_managed_fields(req.new.clone());
    let now = Time(Timestamp::from_second(req.now.as_second()).unwrap_or(req.now));
    let id = ManagerId::new(req.manager, req.operation, req.api_version, req.subresource);
    record_update(
        req.schema,
        &old,
        &new,
        &mut managers,
        id,
        req.api_version,
        &now,
        req.reset_fields,
    )
    .map_err(UpdateError::Typed)?;
    managers::cap_update_managers(&mut managers);
    Ok(managers::encode(&managers))
}

/// structured-merge-diff's `Updater.Update` run for a temporary "current-operation" manager and
/// folded into `id` as kube's `managedFieldsUpdater` does.
fn record_update(
    schema: &Schema,
    old: &Value,
    new: &Value,
    managers: &mut Managers,
    id: ManagerId,
    api_version: &str,
    now: &Time,
    reset: Option<&FieldSet>,
) -> Result<(), TypedError> {
    let compare = filtered_compare(schema, old, new, reset)?;
    let changed = compare.modified.union(&compare.added);
    for m in managers.values_mut() {
        m.set = m.set.difference(&changed).difference(&compare.removed);
    }
    managers.retain(|_, m| !m.set.is_empty());
    let operation_set = changed.difference(&managers::strip_set());
    if operation_set.is_empty() {
        return Ok(());
    }
    let set = match managers.remove(&id) {
        Some(previous) => operation_set.union(&previous.set),
        None => operation_set,
    };
    managers.insert(
        id,
        Managed {
            set,
            api_version: api_version.to_owned(),
            time: Some(now.clone()),
        },
    );
    Ok(())
}

fn filtered_compare(
    schema: &Schema,
    old: &Value,
    new: &Value,
    reset: Option<&FieldSet>,
) -> Result<Comparison, TypedError> {
    let mut c = schema.compare(old, new)?;
    if let Some(reset) = reset {
        c.added = c.added.recursive_difference(reset);
        c.modified = c.modified.recursive_difference(reset);
        c.removed = c.removed.recursive_difference(reset);
    }
    Ok(c)
}

/// kube's `stripMetaManager`, applied to the manager of the current operation.
fn strip_meta(managers: &mut Managers, id: &ManagerId) {
    if let Some(m) = managers.get_mut(id) {
        m.set = m.set.difference(&managers::strip_set());
        if m.set.is_empty() {
            managers.remove(id);
        }
    }
}

/// structured-merge-diff's `prune` with `addBackOwnedItems` and `addBackDanglingItems`: removes
/// from `merged` what the applier owned in `last` but no longer applies, unless another manager
/// owns it, while keeping fields nobody ever owned.
fn prune(
    schema: &Schema,
    merged: Value,
    managers: &Managers,
    applier: &ManagerId,
    last: Option<&FieldSet>,
) -> Result<Value, TypedError> {
    let Some(last) = last.filter(|l| !l.is_empty()) else {
        return Ok(merged);
    };
    // Nothing the manager applied before is missing now: every path of `last` and each of its
    // ancestors is owned by the applier, so the passes below would remove nothing.
    if let Some(current) = managers.get(applier)
        && last.difference(&current.set).is_empty()
    {
        return Ok(merged);
    }
    let last = schema.ensure_named_fields_are_members(last);
    let pruned = schema.remove_items(&merged, &last);
    let owned = managers
        .values()
        .fold(FieldSet::new(), |acc, m| acc.union(&m.set));
    let owned = schema.ensure_named_fields_are_members(&owned);
    let merged_set = schema.ensure_named_fields_are_members(&schema.to_field_set_lenient(&merged)?);
    let pruned_set = schema.ensure_named_fields_are_members(&schema.to_field_set_lenient(&pruned)?);
    let pruned = schema.remove_items(&merged, &merged_set.difference(&pruned_set.union(&owned)));
    let pruned_set = schema.ensure_named_fields_are_members(&schema.to_field_set_lenient(&pruned)?);
    Ok(schema.remove_items(&merged, &merged_set.difference(&pruned_set).intersection(&last)))
}

fn without_managed_fields(mut v: Value) -> Value {
    if let Some(Value::Object(meta)) = v.get_mut("metadata") {
        meta.remove("managedFields");
    }
    v
}

/// One entry as kube-apiserver serializes it, keys in Go's field order: `manager`, `operation`,
/// `apiVersion`, `time`, `fieldsType`, `fieldsV1`, `subresource`; absent fields omitted.
fn entry_json(e: &ManagedFieldsEntry) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    put("manager", e.manager.clone().map(Value::String));
    put("operation", e.operation.clone().map(Value::String));
    put("apiVersion", e.api_version.clone().map(Value::String));
    put("time", e.time.as_ref().and_then(|t| serde_json::to_value(t).ok()));
    put("fieldsType", e.fields_type.clone().map(Value::String));
    put("fieldsV1", e.fields_v1.as_ref().map(|f| f.0.clone()));
    put("subresource", e.subresource.clone().map(Value::String));
    Value::Object(m)
}

/// Sets `metadata.managedFields` of `object` to `entries` (removing it when empty), serialized
/// with kube's key order.
pub fn set_managed_fields(object: &mut Value, entries: &[ManagedFieldsEntry]) {
    let Value::Object(obj) = object else { return };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            meta.remove("managedFields");
        }
        return;
    }
    let encoded = Value::Array(entries.iter().map(entry_json).collect());
    let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".to_owned(), encoded);
    }
}
