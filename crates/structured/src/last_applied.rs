//! kube-apiserver's client-side-apply upgrade path for `kubectl apply --server-side`
//! (`lastAppliedManager` and `lastAppliedUpdater`): conflicts on fields the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation still describes are allowed, and
//! the annotation is kept in sync with what is applied.

use serde_json::{Map, Value};

use crate::schema::Schema;
use crate::set::FieldSet;

/// The manager name for which kube runs the upgrade path.
pub const KUBECTL_MANAGER: &str = "kubectl";

/// The annotation `kubectl apply` (client-side) stores the applied configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kube's limit on the total size of an object's annotations (keys plus values).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn annotation(object: &Value) -> Option<&str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The fields the live object's last-applied annotation sets to the value the object still has
/// (`allowedConflictsFromLastApplied`); `None` without a usable annotation.
pub(crate) fn allowed_conflicts(schema: &Schema, live: &Value) -> Option<FieldSet> {
    let last_applied: Value = serde_json::from_str(annotation(live)?).ok()?;
    if !last_applied.is_object() {
        return None;
    }
    let mut live = live.clone();
    if let Some(Value::Object(meta)) = live.get_mut("metadata") {
        meta.remove("managedFields");
    }
    let set = schema.to_field_set_lenient(&last_applied).ok()?;
    let c = schema.compare(&last_applied, &live).ok()?;
    Some(
        set.difference(&c.modified)
            .difference(&c.added)
            .difference(&c.removed),
    )
}

/// If `object` carries a non-empty last-applied annotation, replaces it with `applied` (without
/// the annotation) encoded as kube does: compact JSON, keys sorted, a trailing newline. The
/// annotation is dropped instead if it would push the annotations over kube's 256 KiB limit.
/// Returns whether the annotation was touched.
pub(crate) fn sync_annotation(object: &mut Value, applied: &Value) -> bool {
    if annotation(object).is_none() {
        return false;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(annotations)) =
        config.get_mut("metadata").and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let mut encoded = sorted(&config).to_string();
    encoded.push('\n');
    let Some(Value::Object(annotations)) = object.get_mut("metadata").and_then(|m| m.get_mut("annotations"))
    else {
        return false;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(encoded));
    let total: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len))
        .sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    true
}

/// `v` with every object's keys in sorted order, as Go's `encoding/json` writes maps.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::with_capacity(m.len());
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
