//! Server-side apply and `managedFields` bookkeeping.
//!
//! A simplified structured-merge-diff: a manager owns *leaf paths* (scalars, lists and empty
//! maps are leaves; lists are atomic). Applying sets the applied leaves, removes leaves this
//! manager applied before but omits now (unless someone else also owns them), and conflicts
//! when it would change a leaf another manager owns (unless `force`). Updates (PUT/PATCH) take
//! ownership of every leaf they change, without conflicts. The `fieldsV1` encoding is kube's
//! (`{"f:spec":{"f:size":{}}}`), so clients display it as usual.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, GroupResource};
use crate::meta;

type FieldPath = Vec<String>;
type FieldSet = BTreeSet<FieldPath>;

/// Fields that would be taken from other managers, with the manager owning each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflicts(pub Vec<(String, String)>);

impl Conflicts {
    /// 409 Conflict with one cause per field, worded like kube-apiserver.
    pub fn into_api_error(self, gr: &GroupResource, name: &str) -> ApiError {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(m, f)| format!("conflict with {m:?}: {f}"))
            .collect();
        let why = if lines.len() == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!(
                "Apply failed with {} conflicts: {}",
                lines.len(),
                lines.join("\n")
            )
        };
        let mut e = ApiError::conflict(gr, name, &why);
        let causes: Vec<Value> = self
            .0
            .iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?}"), "field": f}))
            .collect();
        if let Some(d) = e.details.as_mut() {
            d["causes"] = Value::Array(causes);
        }
        e
    }
}

#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: Value,
    set: FieldSet,
}

fn leaves(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(m) => {
            // Maps are never leaves: applying `{}` claims nothing, so it cannot conflict.
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The leaf paths of an object that ownership is tracked for.
fn object_fields(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else { return out };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for f in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(sub) = v.get(f) {
                        let mut p = vec!["metadata".to_owned(), f.to_owned()];
                        leaves(sub, &mut p, &mut out);
                    }
                }
            }
            _ => {
                let mut p = vec![k.clone()];
                leaves(v, &mut p, &mut out);
            }
        }
    }
    out
}

fn get_path<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, seg| cur.get(seg.as_str()))
}

fn set_path(v: &mut Value, p: &[String], value: Value) {
    let mut cur = v;
    for seg in &p[..p.len().saturating_sub(1)] {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(last) = p.last() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur.as_object_mut().expect("object").insert(last.clone(), value);
    }
}

fn remove_path(v: &mut Value, p: &[String]) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Whether two paths overlap (one is a prefix of the other).
fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn owns(set: &FieldSet, p: &[String]) -> bool {
    set.iter().any(|q| overlaps(q, p))
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("object");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (k, child) in children {
        prefix.push(k[2..].to_owned());
        from_fields_v1(child, prefix, out);
        prefix.pop();
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let mut set = FieldSet::new();
                    if let Some(f) = e.get("fieldsV1") {
                        from_fields_v1(f, &mut Vec::new(), &mut set);
                    }
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    Entry {
                        manager: s("manager"),
                        operation: s("operation"),
                        subresource: s("subresource"),
                        api_version: s("apiVersion"),
                        time: e.get("time").cloned().unwrap_or(Value::Null),
                        set,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.set),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = Value::String(e.subresource.clone());
            }
            v
        })
        .collect();
    let m = meta::metadata_mut(obj);
    if arr.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(arr));
    }
}

fn api_version(obj: &Value) -> String {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// The object to create from an applied configuration: the configuration plus an `Apply` entry.
pub fn apply_to_new(applied: &Value, manager: &str, now: Timestamp) -> Value {
    let mut obj = applied.clone();
    let entry = Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        subresource: String::new(),
        api_version: api_version(applied),
        time: Value::String(meta::format_time(now)),
        set: object_fields(applied),
    };
    write_entries(&mut obj, &[entry]);
    obj
}

/// Applies `applied` by `manager` onto `live`; conflicts unless `force`.
pub fn apply_to_live(
    live: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    now: Timestamp,
) -> Result<Value, Conflicts> {
    let mut entries = read_entries(live);
    let applied_set = object_fields(applied);
    let is_me = |e: &Entry| e.manager == manager && e.operation == "Apply";
    let mut conflicts = Vec::new();
    for p in &applied_set {
        if get_path(live, p) == get_path(applied, p) {
            continue;
        }
        for e in entries.iter().filter(|e| !is_me(e)) {
            if owns(&e.set, p) {
                conflicts.push((e.manager.clone(), format!(".{}", p.join("."))));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            conflicts.sort();
            conflicts.dedup();
            return Err(Conflicts(conflicts));
        }
        for p in &applied_set {
            if get_path(live, p) == get_path(applied, p) {
                continue;
            }
            for e in entries
                .iter_mut()
                .filter(|e| !(e.manager == manager && e.operation == "Apply"))
            {
                e.set.retain(|q| !overlaps(q, p));
            }
        }
    }
    let previous: FieldSet = entries
        .iter()
        .filter(|e| is_me(e))
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let mut result = live.clone();
    for p in &applied_set {
        if let Some(v) = get_path(applied, p) {
            set_path(&mut result, p, v.clone());
        }
    }
    for p in previous.difference(&applied_set) {
        let others_own = entries.iter().filter(|e| !is_me(e)).any(|e| owns(&e.set, p));
        if !others_own && !applied_set.iter().any(|q| overlaps(q, p)) {
            remove_path(&mut result, p);
        }
    }
    // Other managers keep only fields the applied configuration did not take over.
    for e in entries.iter_mut().filter(|e| !is_me(e)) {
        e.set
            .retain(|q| !applied_set.contains(q) || get_path(live, q) == get_path(applied, q));
    }
    let time = match entries.iter().find(|e| is_me(e)) {
        Some(e) if e.set == applied_set => e.time.clone(),
        _ => Value::String(meta::format_time(now)),
    };
    entries.retain(|e| !is_me(e));
    entries.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        subresource: String::new(),
        api_version: api_version(applied),
        time,
        set: applied_set,
    });
    write_entries(&mut result, &entries);
    Ok(result)
}

/// Records an update (PUT/PATCH/create) by `manager`: it takes ownership of every leaf it
/// changed; removed leaves lose their owners.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, subresource: &str, now: Timestamp) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let old_fields = old.map(object_fields).unwrap_or_default();
    let new_fields = object_fields(new);
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| old.is_none_or(|o| get_path(o, p) != get_path(new, p)))
        .cloned()
        .collect();
    let removed: FieldSet = old_fields.difference(&new_fields).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        // Keep the stored entries verbatim so a no-op stays a no-op.
        if let Some(o) = old {
            match o.pointer("/metadata/managedFields") {
                Some(mf) => {
                    meta::metadata_mut(new).insert("managedFields".into(), mf.clone());
                }
                None => {
                    meta::metadata_mut(new).remove("managedFields");
                }
            }
        }
        return;
    }
    for e in entries.iter_mut() {
        e.set.retain(|q| {
            !removed.contains(q)
                && !changed
                    .iter()
                    .any(|c| overlaps(c, q) && !(e.manager == manager && e.operation == "Update"))
        });
    }
    let mine = entries
        .iter()
        .position(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource);
    let mut set: FieldSet = mine.map(|i| entries[i].set.clone()).unwrap_or_default();
    set.extend(changed);
    set.retain(|q| new_fields.contains(q));
    let entry = Entry {
        manager: manager.to_owned(),
        operation: "Update".into(),
        subresource: subresource.to_owned(),
        api_version: api_version(new),
        time: Value::String(meta::format_time(now)),
        set,
    };
    match mine {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-23T19:00:00Z".parse().unwrap()
    }

    #[test]
    fn apply_conflicts_and_force() {
        let a = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {"size": 1, "color": "red"}});
        let live = apply_to_new(&a, "alice", now());
        assert_eq!(
            live["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:color": {}, "f:size": {}}})
        );
        // Same config again: unchanged, including the timestamp.
        let again =
            apply_to_live(&live, &a, "alice", false, "2026-11-23T20:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(again, live);
        // Bob changes size: conflict.
        let b = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {"size": 2}});
        let c = apply_to_live(&live, &b, "bob", false, now()).unwrap_err();
        assert_eq!(c.0, vec![("alice".to_owned(), ".spec.size".to_owned())]);
        // Bob applying the same value is shared ownership, not a conflict.
        let same = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {"size": 1}});
        assert!(apply_to_live(&live, &same, "bob", false, now()).is_ok());
        let forced = apply_to_live(&live, &b, "bob", true, now()).unwrap();
        assert_eq!(forced["spec"]["size"], 2);
        let entries = read_entries(&forced);
        let alice = entries.iter().find(|e| e.manager == "alice").unwrap();
        assert!(!alice.set.contains(&vec!["spec".to_owned(), "size".to_owned()]));
        // Alice drops color: removed from the object.
        let a2 = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {}});
        let dropped = apply_to_live(&forced, &a2, "alice", false, now()).unwrap();
        assert!(dropped["spec"].get("color").is_none());
        assert_eq!(dropped["spec"]["size"], 2);
    }

    #[test]
    fn updates_take_ownership() {
        let a = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "x"}, "spec": {"size": 1}});
        let live = apply_to_new(&a, "alice", now());
        let mut edited = live.clone();
        edited["spec"]["size"] = json!(5);
        record_update(Some(&live), &mut edited, "kubectl-edit", "", now());
        let entries = read_entries(&edited);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].manager, "kubectl-edit");
        let mut same = edited.clone();
        record_update(Some(&edited), &mut same, "other", "", now());
        assert_eq!(same, edited);
    }
}
