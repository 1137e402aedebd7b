//! The FieldsV1 encoding of a [`FieldSet`], as stored in `metadata.managedFields[].fieldsV1`.
//!
//! Each path element becomes an object key: `f:<name>`, `k:<json object of key fields>`,
//! `v:<json value>` or `i:<index>`; a leaf maps to `{}`, and a path that is both a member and a
//! prefix of deeper members gets a `".": {}` entry first. Keys are emitted in structured-merge-diff
//! path-element order, so the JSON is byte-for-byte what kube-apiserver writes.

use serde_json::{Map, Value};

use crate::path::PathElement;
use crate::set::FieldSet;

/// Why a FieldsV1 document could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FieldsV1Error {
    /// A level of the document is not a JSON object.
    #[error("fieldsV1 at {0:?} is not an object")]
    NotAnObject(String),
    /// A key is not a valid serialized path element.
    #[error("invalid path element {key:?}: {reason}")]
    InvalidPathElement {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Serializes one path element as a FieldsV1 key (`f:spec`, `k:{"name":"a"}`, `v:"x"`, `i:0`).
pub fn path_element_key(pe: &PathElement) -> String {
    match pe {
        PathElement::Field(name) => format!("f:{name}"),
        PathElement::Key(fields) => {
            let mut s = String::from("k:{");
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&go_json(&Value::String(name.clone())));
                s.push(':');
                s.push_str(&go_json(value));
            }
            s.push('}');
            s
        }
        PathElement::Value(v) => format!("v:{}", go_json(v)),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

/// Compact JSON with Go's `encoding/json` HTML escaping (`<`, `>`, `&`, U+2028, U+2029), which
/// structured-merge-diff's serializer applies inside keys and values.
fn go_json(v: &Value) -> String {
    let s = v.to_string();
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Parses a FieldsV1 key back into a path element.
pub fn parse_path_element(key: &str) -> Result<PathElement, FieldsV1Error> {
    let invalid = |reason: &str| FieldsV1Error::InvalidPathElement {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((kind, rest)) = key.split_once(':') else {
        return Err(invalid("missing type prefix"));
    };
    match kind {
        "f" => Ok(PathElement::Field(rest.to_owned())),
        "v" => serde_json::from_str(rest)
            .map(PathElement::Value)
            .map_err(|e| invalid(&e.to_string())),
        "i" => rest
            .parse::<i64>()
            .map(PathElement::Index)
            .map_err(|e| invalid(&e.to_string())),
        "k" => match serde_json::from_str::<Value>(rest) {
            Ok(Value::Object(map)) if !map.is_empty() => Ok(PathElement::key(map.into_iter().collect())),
            Ok(_) => Err(invalid("key must be a non-empty JSON object")),
            Err(e) => Err(invalid(&e.to_string())),
        },
        _ => Err(invalid("unknown type prefix")),
    }
}

impl FieldSet {
    /// The FieldsV1 JSON of this set (`{}` for the empty set).
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(emit(self, false))
    }

    /// Decodes a FieldsV1 JSON document.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldsV1Error> {
        let Value::Object(map) = value else {
            return Err(FieldsV1Error::NotAnObject(String::new()));
        };
        let (set, _) = read(map, "")?;
        Ok(set)
    }
}

fn emit(set: &FieldSet, include_self: bool) -> Map<String, Value> {
    let mut out = Map::new();
    if include_self && !set.is_empty() {
        out.insert(".".to_owned(), Value::Object(Map::new()));
    }
    let mut members = set.members().peekable();
    let mut children = set.children().peekable();
    loop {
        match (members.peek(), children.peek()) {
            (None, None) => break,
            (Some(m), Some((c, _))) if m < c => {
                out.insert(path_element_key(m), Value::Object(Map::new()));
                members.next();
            }
            (Some(m), Some((c, child))) if m == c => {
                out.insert(path_element_key(c), Value::Object(emit(child, true)));
                members.next();
                children.next();
            }
            (_, Some((c, child))) => {
                out.insert(path_element_key(c), Value::Object(emit(child, false)));
                children.next();
            }
            (Some(m), None) => {
                out.insert(path_element_key(m), Value::Object(Map::new()));
                members.next();
            }
        }
    }
    out
}

/// Reads one level; returns the set below it and whether it contained `"."`.
fn read(map: &Map<String, Value>, at: &str) -> Result<(FieldSet, bool), FieldsV1Error> {
    let mut set = FieldSet::new();
    let mut is_self = false;
    for (key, value) in map {
        let here = format!("{at}{key}");
        let Value::Object(inner) = value else {
            return Err(FieldsV1Error::NotAnObject(here));
        };
        if key == "." {
            is_self = true;
            continue;
        }
        let pe = parse_path_element(key)?;
        if inner.is_empty() {
            set.insert_member(pe);
            continue;
        }
        let (child, child_self) = read(inner, &format!("{here}/"))?;
        if child_self {
            set.insert_member(pe.clone());
        }
        set.insert_child(pe, child);
    }
    Ok((set, is_self))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::FieldPath;
    use serde_json::json;

    #[test]
    fn encodes_exactly_like_kubernetes() {
        // A Deployment-like set as kube-apiserver records it for `kubectl create`.
        let container = PathElement::key(vec![("name".into(), json!("nginx"))]);
        let containers = FieldPath::fields(&["spec", "template", "spec", "containers"]);
        let labels = FieldPath::fields(&["metadata", "labels"]);
        let paths = vec![
            labels.clone(),
            labels.child(PathElement::field("app")),
            FieldPath::fields(&["spec", "replicas"]),
            containers.child(container.clone()),
            containers
                .child(container.clone())
                .child(PathElement::field("image")),
            containers
                .child(container.clone())
                .child(PathElement::field("name")),
            FieldPath::fields(&["metadata", "finalizers"]).child(PathElement::Value(json!("a/b"))),
        ];
        let set = FieldSet::from_paths(&paths);
        let encoded = serde_json::to_string(&set.to_fields_v1()).unwrap();
        assert_eq!(
            encoded,
            r#"{"f:metadata":{"f:finalizers":{"v:\"a/b\"":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        );
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
    }

    #[test]
    fn composite_keys_are_sorted_and_escaped_like_go() {
        let pe = PathElement::key(vec![
            ("protocol".into(), json!("TCP")),
            ("containerPort".into(), json!(80)),
        ]);
        assert_eq!(
            path_element_key(&pe),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        assert_eq!(
            path_element_key(&PathElement::Value(json!("a<b"))),
            r#"v:"a\u003cb""#
        );
        assert_eq!(
            parse_path_element(r#"v:"a\u003cb""#).unwrap(),
            PathElement::Value(json!("a<b"))
        );
        assert_eq!(path_element_key(&PathElement::Index(3)), "i:3");
        assert_eq!(parse_path_element("i:3").unwrap(), PathElement::Index(3));
    }

    #[test]
    fn rejects_malformed_documents() {
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"x:a": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"k:[1]": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"i:z": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"nocolon": {}})).is_err());
        assert_eq!(FieldSet::from_fields_v1(&json!({})).unwrap(), FieldSet::new());
    }
}
