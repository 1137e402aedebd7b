//! The structural-schema check of a whole object against its CRD's OpenAPI v3 schema, as kube-apiserver's
//! CRD handler does it: unknown fields are found and pruned (`fieldValidation=Strict|Warn` reports them,
//! `Ignore` drops them silently), then types, `required`, `enum` and `nullable` are validated.
//!
//! It reads the schema as given (`properties`, `additionalProperties`, `items`, `type`, `nullable`,
//! `required`, `enum`, `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string`); CRD schemas
//! are structural, so there are no `$ref`s to resolve.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use serde_json::{Map, Value};

/// `metadata` fields of `ObjectMeta`; any other key under `metadata` is unknown.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes the fields of `obj` that `schema` does not declare and returns their paths in the order found
/// (`spec.foo`, `spec.ports[0].bar`, `metadata.bogus`). At the top level `apiVersion`, `kind` and
/// `ObjectMeta`'s fields are always known; fields under `x-kubernetes-preserve-unknown-fields` are kept.
/// kube-apiserver reports each as [`unknown_field_message`].
pub fn prune_unknown_fields(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let Some(map) = obj.as_object_mut() else {
        return unknown;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let mut remove = Vec::new();
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Some(m) = v.as_object_mut() {
                    let extra: Vec<String> = m
                        .keys()
                        .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
                        .cloned()
                        .collect();
                    for e in extra {
                        m.remove(&e);
                        unknown.push(join("metadata", &e));
                    }
                }
            }
            _ => match props.and_then(|p| p.get(k)) {
                Some(sub) => prune_value(sub, v, k, &mut unknown),
                None if preserves_unknown(schema) => {}
                None => remove.push(k.clone()),
            },
        }
    }
    for k in remove {
        map.remove(&k);
        unknown.push(k);
    }
    unknown
}

fn prune_value(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let mut remove = Vec::new();
                for (k, child) in map.iter_mut() {
                    match props.get(k) {
                        Some(sub) => prune_value(sub, child, &join(path, k), unknown),
                        None if preserves_unknown(schema) => {}
                        None => remove.push(k.clone()),
                    }
                }
                for k in remove {
                    map.remove(&k);
                    unknown.push(join(path, &k));
                }
            } else if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map.iter_mut() {
                    prune_value(add, child, &join(path, k), unknown);
                }
            } else if !preserves_unknown(schema)
                && schema.get("type").and_then(Value::as_str) == Some("object")
                && schema.get("additionalProperties").is_none()
                && !map.is_empty()
            {
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    map.remove(&k);
                    unknown.push(join(path, &k));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// kube-apiserver's message for one unknown field: `unknown field "spec.foo"`.
pub fn unknown_field_message(path: &str) -> String {
    format!("unknown field {path:?}")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates types, `required`, `enum` and `nullable` of everything except `metadata`, `apiVersion`
/// and `kind`, with kube-apiserver's messages (`spec.size: Invalid value: "string": spec.size in body
/// must be of type integer: "string"`). Unknown fields are not looked at: prune them first.
pub fn validate_against_schema(schema: &Value, obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    if let (Some(props), Some(map)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object(),
    ) {
        for (k, sub) in props {
            if matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            if let Some(v) = map.get(k) {
                validate_value(sub, v, &Path::new(k), &mut errs);
            }
        }
        check_required(schema, map, None, &mut errs);
    }
    errs
}

fn check_required(schema: &Value, map: &Map<String, Value>, path: Option<&Path>, errs: &mut ErrorList) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str()
            && !map.contains_key(r)
            && r != "metadata"
        {
            let p = path.map_or_else(|| Path::new(r), |p| p.child(r));
            errs.push(FieldError::required(&p, ""));
        }
    }
}

fn validate_value(schema: &Value, v: &Value, path: &Path, errs: &mut ErrorList) {
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) == Some(true) || preserves_unknown(schema) {
            return;
        }
        if schema.get("type").is_some() {
            errs.push(FieldError::type_invalid(
                path,
                Value::Null,
                format!(
                    "{} in body must be of type {}: \"null\"",
                    path.as_str(),
                    schema["type"].as_str().unwrap_or("")
                ),
            ));
        }
        return;
    }
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errs.push(FieldError::type_invalid(
                path,
                v.clone(),
                "must be an integer or a string",
            ));
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            errs.push(FieldError::type_invalid(
                path,
                v.clone(),
                format!("{} in body must be of type {t}: {actual:?}", path.as_str()),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, v.clone(), &refs));
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, child) in map {
                    if let Some(sub) = props.get(k) {
                        validate_value(sub, child, &path.child(k), errs);
                    }
                }
            } else if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map {
                    validate_value(add, child, &path.key(k), errs);
                }
            }
            check_required(schema, map, Some(path), errs);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_value(item_schema, item, &path.index(i), errs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer"},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "opt": {"type": "string", "nullable": true}
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }})
    }

    #[test]
    fn prunes_unknown_fields() {
        let mut obj = json!({"apiVersion": "g/v1", "kind": "W", "metadata": {"name": "a", "bogus": 1},
            "spec": {"size": 1, "extra": 2, "tags": [{"k": "x", "j": "y"}], "free": {"any": 1}, "labels": {"a": "b"}},
            "top": true});
        let mut unknown = prune_unknown_fields(&schema(), &mut obj);
        unknown.sort();
        assert_eq!(
            unknown,
            vec!["metadata.bogus", "spec.extra", "spec.tags[0].j", "top"]
        );
        assert!(obj.get("top").is_none());
        assert_eq!(
            unknown_field_message(&unknown[1]),
            r#"unknown field "spec.extra""#
        );
        assert_eq!(obj["spec"]["free"]["any"], 1);
    }

    #[test]
    fn validates_types_required_enum() {
        let obj = json!({"spec": {"size": "x", "color": "green", "opt": null, "labels": {"a": 1}}});
        let errs = validate_against_schema(&schema(), &obj);
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(
            msgs[0].contains("spec.size in body must be of type integer: \"string\""),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("spec.color: Unsupported value: \"green\""))
        );
        assert!(msgs.iter().any(|m| m.starts_with("spec.labels[a]")));
        let missing = validate_against_schema(&schema(), &json!({"spec": {}}));
        assert_eq!(missing.to_string(), "spec.size: Required value");
    }
}
