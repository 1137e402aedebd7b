//! Schema-driven checks and clean-ups of whole objects, as kube-apiserver's CRD handler does them:
//! unknown-field detection (`fieldValidation=Strict|Warn`), pruning (the default `Ignore`),
//! removal of non-nullable `null`s, and JSON type validation.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use serde_json::Value;

use crate::schema::{Kind, NodeId, Schema};

impl Schema {
    /// The paths of fields not declared in the schema, e.g. `spec.foo` or `spec.ports[0].bar`,
    /// sorted. Fields under `x-kubernetes-preserve-unknown-fields` and map values are known.
    /// kube-apiserver reports each as `unknown field "<path>"` (see [`unknown_field_message`]).
    pub fn unknown_fields(&self, object: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.unknown_walk(self.root(), object, &Path::default(), &mut out);
        out.sort();
        out
    }

    /// Removes every field [`Schema::unknown_fields`] would report and returns their paths
    /// (sorted); the rest of `object` is untouched.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut out = Vec::new();
        self.prune_walk(self.root(), object, &Path::default(), &mut out);
        out.sort();
        out
    }

    /// Removes `null` values of fields whose schema is not nullable (kube-apiserver drops them
    /// before validating a custom resource) and returns their paths, sorted.
    pub fn drop_non_nullable_nulls(&self, object: &mut Value) -> Vec<String> {
        let mut out = Vec::new();
        self.nulls_walk(self.root(), object, &Path::default(), &mut out);
        out.sort();
        out
    }

    /// Checks every value against its schema's JSON type, with kube-apiserver's messages:
    /// `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
    /// Unknown fields are not checked (prune or reject them first).
    pub fn validate_types(&self, object: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        self.types_walk(self.root(), object, &Path::default(), &mut errs);
        errs
    }

    fn unknown_walk(&self, id: NodeId, value: &Value, path: &Path, out: &mut Vec<String>) {
        match (&self.node(id).kind, value) {
            (Kind::Object(obj), Value::Object(map)) => {
                for (k, v) in map {
                    let child = path.child(k);
                    match self.field_of(obj, k) {
                        Some(c) => self.unknown_walk(c, v, &child, out),
                        None => out.push(child.to_string()),
                    }
                }
            }
            (Kind::List(list), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.unknown_walk(list.items, item, &path.index(i), out);
                }
            }
            _ => {}
        }
    }

    fn prune_walk(&self, id: NodeId, value: &mut Value, path: &Path, out: &mut Vec<String>) {
        match (&self.node(id).kind, value) {
            (Kind::Object(obj), Value::Object(map)) => {
                map.retain(|k, v| {
                    let child = path.child(k);
                    match self.field_of(obj, k) {
                        Some(c) => {
                            self.prune_walk(c, v, &child, out);
                            true
                        }
                        None => {
                            out.push(child.to_string());
                            false
                        }
                    }
                });
            }
            (Kind::List(list), Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.prune_walk(list.items, item, &path.index(i), out);
                }
            }
            _ => {}
        }
    }

    fn nulls_walk(&self, id: NodeId, value: &mut Value, path: &Path, out: &mut Vec<String>) {
        match (&self.node(id).kind, value) {
            (Kind::Object(obj), Value::Object(map)) => {
                map.retain(|k, v| {
                    let child = path.child(k);
                    let Some(c) = self.field_of(obj, k) else {
                        return true;
                    };
                    if v.is_null() && !self.is_nullable(c) {
                        out.push(child.to_string());
                        return false;
                    }
                    self.nulls_walk(c, v, &child, out);
                    true
                });
            }
            (Kind::List(list), Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.nulls_walk(list.items, item, &path.index(i), out);
                }
            }
            _ => {}
        }
    }

    fn types_walk(&self, id: NodeId, value: &Value, path: &Path, errs: &mut ErrorList) {
        let node = self.node(id);
        let expected = match &node.kind {
            Kind::Any | Kind::Alias(_) => return,
            Kind::Scalar(t) => t.names(),
            Kind::Object(_) => "object".to_owned(),
            Kind::List(_) => "array".to_owned(),
        };
        let actual = json_type(value);
        let ok = match (&node.kind, value) {
            (_, Value::Null) => self.is_nullable(id),
            (Kind::Scalar(t), Value::String(_)) => t.string,
            (Kind::Scalar(t), Value::Bool(_)) => t.boolean,
            (Kind::Scalar(t), Value::Number(n)) => {
                // kube-openapi accepts integers for `number` and integral floats for `integer`.
                t.number
                    || (t.integer
                        && (n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)))
            }
            (Kind::Object(_), Value::Object(_)) | (Kind::List(_), Value::Array(_)) => true,
            _ => false,
        };
        if !ok {
            let name = if path.as_str().is_empty() {
                "body"
            } else {
                path.as_str()
            };
            errs.push(FieldError::type_invalid(
                path,
                actual,
                format!("{name} in body must be of type {expected}: {actual:?}"),
            ));
            return;
        }
        match (&node.kind, value) {
            (Kind::Object(obj), Value::Object(map)) => {
                for (k, v) in map {
                    if let Some(c) = self.field_of(obj, k) {
                        self.types_walk(c, v, &path.child(k), errs);
                    }
                }
            }
            (Kind::List(list), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.types_walk(list.items, item, &path.index(i), errs);
                }
            }
            _ => {}
        }
    }
}

/// kube-apiserver's message for one unknown field: `unknown field "spec.foo"`.
pub fn unknown_field_message(path: &str) -> String {
    format!("unknown field {path:?}")
}

/// The OpenAPI type name of a JSON value as kube-openapi infers it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_openapi(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "replicas": {"type": "integer"},
                        "ratio": {"type": "number"},
                        "name": {"type": "string", "nullable": true},
                        "ports": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "flag": {"type": "boolean"}
                    }
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn unknown_fields_use_kube_paths() {
        let obj = json!({
            "apiVersion": "x/v1", "kind": "K",
            "metadata": {"name": "a", "bogus": 1, "labels": {"x": "y"}},
            "spec": {"replicas": 1, "foo": 2, "ports": [{"port": 1}, {"port": 2, "bar": 3}],
                     "labels": {"anything": "ok"}, "raw": {"deep": {"x": 1}}},
            "extra": true
        });
        let s = schema();
        let unknown = s.unknown_fields(&obj);
        assert_eq!(
            unknown,
            vec!["extra", "metadata.bogus", "spec.foo", "spec.ports[1].bar"]
        );
        assert_eq!(unknown_field_message(&unknown[2]), r#"unknown field "spec.foo""#);
        let mut pruned = obj.clone();
        assert_eq!(s.prune(&mut pruned), unknown);
        assert!(s.unknown_fields(&pruned).is_empty());
        assert_eq!(pruned["spec"]["raw"], obj["spec"]["raw"]);
        assert_eq!(pruned["spec"]["ports"][1], json!({"port": 2}));
    }

    #[test]
    fn type_errors_match_kube_openapi() {
        let s = schema();
        let errs = s.validate_types(&json!({
            "spec": {"replicas": "3", "ratio": 1, "name": null, "ports": [{"port": 1.5}], "flag": null, "labels": {"a": 1}},
            "status": []
        }));
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
                r#"spec.ports[0].port: Invalid value: "number": spec.ports[0].port in body must be of type integer: "number""#,
                r#"spec.flag: Invalid value: "null": spec.flag in body must be of type boolean: "null""#,
                r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#,
                r#"status: Invalid value: "array": status in body must be of type object: "array""#,
            ]
        );
        assert!(
            s.validate_types(&json!({"spec": {"replicas": 2.0, "ratio": 0.5}}))
                .is_empty()
        );
    }

    #[test]
    fn drops_only_non_nullable_nulls() {
        let s = schema();
        let mut obj = json!({"spec": {"replicas": null, "name": null, "raw": {"x": null}}, "metadata": {"creationTimestamp": null}});
        assert_eq!(s.drop_non_nullable_nulls(&mut obj), vec!["spec.replicas"]);
        assert_eq!(
            obj,
            json!({"spec": {"name": null, "raw": {"x": null}}, "metadata": {"creationTimestamp": null}})
        );
    }
}
