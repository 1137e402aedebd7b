//! Field paths as structured-merge-diff defines them: a sequence of [`PathElement`]s, each a field
//! name, an associative-list key, a set value or a list index.
//!
//! Ordering and rendering follow `sigs.k8s.io/structured-merge-diff/fieldpath` exactly, because
//! both are observable: the order decides the key order of serialized FieldsV1 and the rendering
//! appears in apply-conflict messages (`.spec.ports[name="http"].port`).

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

/// One step of a [`FieldPath`].
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of a struct or an entry of a map: `f:name` in FieldsV1, `.name` when rendered.
    Field(String),
    /// An element of a `x-kubernetes-list-type: map` list, identified by its key fields sorted by
    /// name: `k:{"name":"a"}` in FieldsV1, `[name="a"]` when rendered.
    Key(Vec<(String, Value)>),
    /// An element of a `x-kubernetes-list-type: set` list, identified by its (scalar) value:
    /// `v:"a"` in FieldsV1, `[="a"]` when rendered.
    Value(Value),
    /// An element of a list identified by position: `i:3` in FieldsV1, `[3]` when rendered.
    Index(i64),
}

impl PathElement {
    /// A field element.
    pub fn field(name: impl Into<String>) -> Self {
        PathElement::Field(name.into())
    }

    /// A key element from `(name, value)` pairs; the pairs are sorted by name, as
    /// structured-merge-diff requires for a canonical key.
    pub fn key(mut fields: Vec<(String, Value)>) -> Self {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    /// The field name, if this is a field element.
    pub fn as_field(&self) -> Option<&str> {
        match self {
            PathElement::Field(name) => Some(name),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathElement {
    /// structured-merge-diff's `PathElement.Compare`: fields < keys < values < indices, then
    /// within a kind by name, key list, value or index.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.as_bytes().cmp(b.as_bytes()),
            (PathElement::Key(a), PathElement::Key(b)) => compare_key_fields(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn compare_key_fields(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let by_name = x.0.as_bytes().cmp(y.0.as_bytes());
        if by_name != Ordering::Equal {
            return by_name;
        }
        let by_value = compare_values(&x.1, &y.1);
        if by_value != Ordering::Equal {
            return by_value;
        }
    }
    a.len().cmp(&b.len())
}

/// structured-merge-diff's total order on values (`value.Compare`): numbers (integers and floats
/// compared numerically) < strings < booleans < lists < maps < null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => compare_maps(x, y),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => match (x.as_u64(), y.as_u64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => {
                let a = x.as_f64().unwrap_or(f64::NAN);
                let b = y.as_f64().unwrap_or(f64::NAN);
                a.partial_cmp(&b).unwrap_or(Ordering::Equal)
            }
        },
    }
}

/// Maps compare by their sorted keys, then values, then size (as `value.MapCompare`).
fn compare_maps(x: &Map<String, Value>, y: &Map<String, Value>) -> Ordering {
    let mut xs: Vec<(&String, &Value)> = x.iter().collect();
    let mut ys: Vec<(&String, &Value)> = y.iter().collect();
    xs.sort_by(|a, b| a.0.cmp(b.0));
    ys.sort_by(|a, b| a.0.cmp(b.0));
    for (p, q) in xs.iter().zip(&ys) {
        let c = p.0.cmp(q.0).then_with(|| compare_values(p.1, q.1));
        if c != Ordering::Equal {
            return c;
        }
    }
    xs.len().cmp(&ys.len())
}

/// Deep equality under [`compare_values`]: `1` equals `1.0`, object key order is irrelevant.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| values_equal(v, w))
        }
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Ordering::Equal,
        _ => a == b,
    }
}

/// Renders a value as structured-merge-diff's `value.ToString` does: strings quoted, numbers,
/// booleans and `null` bare, lists and maps in brackets.
fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", value_to_string(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

impl fmt::Display for PathElement {
    /// `.name`, `[name="a",port=80]`, `[="a"]` or `[3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_to_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_to_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the root of an object to one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<PathElement>);

impl FieldPath {
    /// A path made of field names only, e.g. `FieldPath::fields(&["spec", "replicas"])`.
    pub fn fields(names: &[&str]) -> Self {
        FieldPath(names.iter().map(|n| PathElement::field(*n)).collect())
    }

    /// The elements of the path.
    pub fn elements(&self) -> &[PathElement] {
        &self.0
    }

    /// This path extended by one element.
    #[must_use]
    pub fn child(&self, pe: PathElement) -> Self {
        let mut v = self.0.clone();
        v.push(pe);
        FieldPath(v)
    }
}

impl fmt::Display for FieldPath {
    /// The concatenation of the elements, e.g. `.spec.ports[name="http"].port`, as in kube's
    /// conflict messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_is_fields_keys_values_indices() {
        let mut v = [
            PathElement::Index(0),
            PathElement::Value(json!("a")),
            PathElement::key(vec![("name".into(), json!("a"))]),
            PathElement::field("z"),
            PathElement::field("a"),
        ];
        v.sort();
        let rendered: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(rendered, vec![".a", ".z", "[name=\"a\"]", "[=\"a\"]", "[0]"]);
    }

    #[test]
    fn values_order_like_structured_merge_diff() {
        assert_eq!(compare_values(&json!(1), &json!(1.0)), Ordering::Equal);
        assert_eq!(compare_values(&json!(2), &json!(1.5)), Ordering::Greater);
        assert_eq!(compare_values(&json!(9), &json!("a")), Ordering::Less);
        assert_eq!(compare_values(&json!("b"), &json!(true)), Ordering::Less);
        assert_eq!(compare_values(&json!(false), &json!(true)), Ordering::Less);
        assert_eq!(compare_values(&json!({"a":1}), &Value::Null), Ordering::Less);
        assert!(values_equal(&json!({"a":1,"b":2}), &json!({"b":2,"a":1})));
    }

    #[test]
    fn paths_render_like_kube_conflicts() {
        let p = FieldPath::fields(&["spec", "ports"])
            .child(PathElement::key(vec![
                ("protocol".into(), json!("TCP")),
                ("port".into(), json!(80)),
            ]))
            .child(PathElement::field("name"));
        assert_eq!(p.to_string(), ".spec.ports[port=80,protocol=\"TCP\"].name");
        assert_eq!(PathElement::Value(json!("x")).to_string(), "[=\"x\"]");
    }
}
