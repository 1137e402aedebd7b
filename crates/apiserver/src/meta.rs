//! Object metadata: accessors, name and label validation, server-owned fields, generation and time.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use jiff::Timestamp;
use serde_json::{Map, Value};

pub use ironnet_apimachinery::clock::{Clock, SharedClock, SystemClock};

/// Formats a timestamp like Kubernetes (`2026-11-23T19:00:00Z`, whole seconds).
pub fn format_time(t: Timestamp) -> String {
    let secs = t.as_second();
    Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// `obj.metadata` (creating it if missing or not an object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("just made an object");
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("just made an object")
}

/// A string field of `obj.metadata`, or "".
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, rv: u64) {
    metadata_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// Whether `s` is a DNS-1123 subdomain (lowercase alphanumerics, `-`, `.`; ≤ 253 bytes).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label_part)
}

fn is_dns1123_label_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 label (≤ 63 bytes, no dots).
pub fn is_dns1123_label(s: &str) -> bool {
    is_dns1123_label_part(s)
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or \
     '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
     '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and \
     must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation \
     is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Validates a name: a DNS-1123 subdomain, or a DNS-1123 label when `label_only` (namespaces).
pub fn validate_name(name: &str, label_only: bool, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if label_only {
        if name.len() > 63 {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be no more than 63 characters",
            ));
        } else if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(path, name, LABEL_MSG));
        }
    } else if name.len() > 253 {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be no more than 253 characters",
        ));
    } else if !is_dns1123_subdomain(name) {
        errs.push(FieldError::invalid(path, name, SUBDOMAIN_MSG));
    }
    errs
}

fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && prefix.is_none_or(is_dns1123_subdomain)
}

fn is_label_value(v: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(ok_char)
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Validates a name as kube's `ValidatePathSegmentName` does (the RBAC kinds' names, such as
/// `system:discovery`): not `.` or `..`, no `/` or `%`.
pub fn validate_path_segment_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if name == "." || name == ".." {
        errs.push(FieldError::invalid(path, name, format!("may not be '{name}'")));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(FieldError::invalid(
                path,
                name,
                format!("may not contain '{bad}'"),
            ));
        }
    }
    errs
}

/// Validates `metadata` of an object of `def`: the name as the kind requires (a DNS-1123 label
/// for namespaces, a path segment for the RBAC kinds, a DNS-1123 subdomain otherwise), labels,
/// annotation keys, finalizer names.
pub fn validate_object_meta_of(def: &crate::ResourceDefinition, obj: &Value) -> ErrorList {
    if def.group == crate::auth::rbac::GROUP {
        let mut errs = validate_path_segment_name(name(obj), &Path::new("metadata").child("name"));
        errs.extend(validate_meta_except_name(obj));
        return errs;
    }
    validate_object_meta(obj, !def.namespaced() && def.plural == "namespaces")
}

/// Validates `metadata`: name (already set), labels, annotation keys, finalizer names.
pub fn validate_object_meta(obj: &Value, label_only_name: bool) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = validate_name(name(obj), label_only_name, &meta_path.child("name"));
    errs.extend(validate_meta_except_name(obj));
    errs
}

fn validate_meta_except_name(obj: &Value) -> ErrorList {
    let meta_path = Path::new("metadata");
    let mut errs = ErrorList::new();
    let labels_path = meta_path.child("labels");
    match obj.pointer("/metadata/labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                if !is_qualified_name(k) {
                    errs.push(FieldError::invalid(
                        &labels_path,
                        k.as_str(),
                        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and \
                         end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex \
                         used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                    ));
                }
                match v.as_str() {
                    Some(s) if is_label_value(s) => {}
                    _ => errs.push(FieldError::invalid(
                        &labels_path,
                        v.clone(),
                        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
                         or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or \
                         'my_value',  or '12345', regex used for validation is \
                         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                    )),
                }
            }
        }
        Some(other) => errs.push(FieldError::type_invalid(
            &labels_path,
            other.clone(),
            "must be an object",
        )),
    }
    let ann_path = meta_path.child("annotations");
    match obj.pointer("/metadata/annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(anns)) => {
            let mut total = 0;
            for (k, v) in anns {
                total += k.len() + v.as_str().map_or(0, str::len);
                if !is_qualified_name(&k.to_lowercase()) {
                    errs.push(FieldError::invalid(
                        &ann_path,
                        k.as_str(),
                        "name part must consist of alphanumeric characters, '-', '_' or '.'",
                    ));
                }
                if !v.is_string() {
                    errs.push(FieldError::type_invalid(
                        &ann_path.key(k),
                        v.clone(),
                        "must be a string",
                    ));
                }
            }
            if total > 256 * 1024 {
                errs.push(FieldError::too_long(&ann_path, 256 * 1024));
            }
        }
        Some(other) => errs.push(FieldError::type_invalid(
            &ann_path,
            other.clone(),
            "must be an object",
        )),
    }
    if let Some(f) = obj.pointer("/metadata/finalizers") {
        let path = meta_path.child("finalizers");
        match f {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if is_qualified_name(s) => {}
                        _ => errs.push(FieldError::invalid(
                            &path.index(i),
                            item.clone(),
                            "must be a qualified name",
                        )),
                    }
                }
            }
            other => errs.push(FieldError::type_invalid(&path, other.clone(), "must be an array")),
        }
    }
    errs
}

/// Metadata fields the server owns: clients cannot set them; updates keep the stored values.
pub const SERVER_OWNED: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Copies server-owned metadata (and `managedFields`) from `old` into `new`.
pub fn keep_server_owned(new: &mut Value, old: &Value) {
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = metadata_mut(new);
    for f in SERVER_OWNED {
        match old_meta.get(*f) {
            Some(v) => {
                meta.insert((*f).to_owned(), v.clone());
            }
            None => {
                meta.remove(*f);
            }
        }
    }
}

/// The parts of an object that make up its "spec" for generation purposes: everything except
/// `metadata`, `status`, `apiVersion` and `kind`.
fn spec_part(obj: &Value) -> Map<String, Value> {
    let mut m = obj.as_object().cloned().unwrap_or_default();
    for k in ["metadata", "status", "apiVersion", "kind"] {
        m.remove(k);
    }
    m
}

/// Whether the spec part differs, i.e. `metadata.generation` must be bumped.
pub fn spec_changed(new: &Value, old: &Value) -> bool {
    spec_part(new) != spec_part(old)
}

/// `metadata.generation` (0 when missing).
pub fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Characters kube-apiserver uses for `generateName` suffixes (no vowels, no confusables).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `base` plus a random 5-character suffix, like kube-apiserver's `SimpleNameGenerator`
/// (`base` is cut to leave room for the suffix within 63 characters).
pub fn generate_name(base: &str) -> String {
    use rand::Rng;
    let mut base = base.to_owned();
    if base.len() > 58 {
        base.truncate(58);
    }
    let mut rng = rand::rng();
    for _ in 0..5 {
        base.push(NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("a.b-c.d1"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_label("a.b"));
        let e = validate_name("Bad_Name", false, &Path::new("metadata").child("name"));
        assert_eq!(e.len(), 1);
        assert!(
            e.to_string()
                .starts_with("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
        );
    }

    #[test]
    fn labels_are_validated() {
        let obj = json!({"metadata": {"name": "x", "labels": {"ok": "v", "bad key": "v", "k": "bad value"}}});
        assert_eq!(validate_object_meta(&obj, false).len(), 2);
    }

    #[test]
    fn generation_tracks_spec_only() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"s": 1}});
        let b = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"x": 1}, "status": {"s": 2}});
        let c = json!({"metadata": {}, "spec": {"x": 2}});
        assert!(!spec_changed(&a, &b));
        assert!(spec_changed(&a, &c));
    }

    #[test]
    fn generated_names() {
        let n = generate_name("w-");
        assert_eq!(n.len(), 7);
        assert!(n.starts_with("w-"));
        assert!(is_dns1123_subdomain(&n));
    }
}
