//! Request-body decoding for server-side apply and strict field validation: YAML (a superset of
//! JSON) to `serde_json::Value`, and duplicate-key detection, which serde_json cannot report
//! because it silently keeps the last value.

use std::cell::RefCell;
use std::fmt;

use ironnet_apimachinery::field::Path;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::DuplicateKeyPolicy;

/// Why an apply body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is empty or holds only whitespace/comments.
    #[error("the apply body is empty")]
    Empty,
    /// The body is not valid JSON or YAML.
    #[error("error decoding YAML: {0}")]
    Syntax(String),
    /// The body decodes, but not to an object.
    #[error("the apply body must be an object, got {0}")]
    NotAnObject(&'static str),
}

/// Decodes an `application/apply-patch+yaml` body (JSON or YAML) into a JSON object.
///
/// Duplicate keys keep the last value (as kube-apiserver's non-strict decoding does); use
/// [`find_duplicate_fields`] to reject them under `fieldValidation=Strict`.
pub fn parse_apply_body(raw: &[u8]) -> Result<Value, BodyError> {
    let scanned = scan(raw)?;
    match scanned.value {
        Value::Object(_) => Ok(scanned.value),
        Value::Null => Err(BodyError::Empty),
        Value::Array(_) => Err(BodyError::NotAnObject("a list")),
        _ => Err(BodyError::NotAnObject("a scalar")),
    }
}

/// The paths of keys that occur more than once in the same mapping of a JSON or YAML document,
/// e.g. `spec.foo` or `spec.ports[0].name`, in document order (one entry per repetition).
/// kube-apiserver rejects these under `fieldValidation=Strict` (`duplicate field "spec.foo"`).
/// A body that does not parse has no duplicates to report (its syntax error is reported by
/// [`parse_apply_body`] or the JSON decoder).
pub fn find_duplicate_fields(raw: &[u8]) -> Vec<String> {
    scan(raw).map(|s| s.duplicates).unwrap_or_default()
}

/// kube-apiserver's message for one duplicate field: `json: duplicate field "spec.foo"`.
pub fn duplicate_field_message(path: &str) -> String {
    format!("json: duplicate field {path:?}")
}

struct Scanned {
    value: Value,
    duplicates: Vec<String>,
}

fn scan(raw: &[u8]) -> Result<Scanned, BodyError> {
    let text = std::str::from_utf8(raw).map_err(|e| BodyError::Syntax(e.to_string()))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut de = serde_json::Deserializer::from_str(text);
        if let Ok(s) = Scanned::deserialize_from(&mut de)
            && de.end().is_ok()
        {
            return Ok(s);
        }
        // Not strict JSON (e.g. YAML flow style); let the YAML parser have a go.
    }
    let options = serde_saphyr::options! { duplicate_keys: DuplicateKeyPolicy::PassThrough };
    let ScannedYaml(s) =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| BodyError::Syntax(e.to_string()))?;
    Ok(s)
}

struct ScannedYaml(Scanned);

impl<'de> serde::Deserialize<'de> for ScannedYaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Scanned::deserialize_from(d).map(ScannedYaml)
    }
}

impl Scanned {
    fn deserialize_from<'de, D: Deserializer<'de>>(d: D) -> Result<Scanned, D::Error> {
        let duplicates = RefCell::new(Vec::new());
        let value = Scan {
            path: Path::default(),
            duplicates: &duplicates,
        }
        .deserialize(d)?;
        Ok(Scanned {
            value,
            duplicates: duplicates.into_inner(),
        })
    }
}

/// Builds a `Value` while recording repeated keys under their field path.
struct Scan<'a> {
    path: Path,
    duplicates: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::from)
            .or_else(|_| u64::try_from(v).map(Value::from))
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite numbers are not valid JSON"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Scan {
            path: self.path.index(out.len()),
            duplicates: self.duplicates,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let key = key.0;
            let path = self.path.child(&key);
            let value = map.next_value_seed(Scan {
                path: path.clone(),
                duplicates: self.duplicates,
            })?;
            if out.contains_key(&key) {
                self.duplicates.borrow_mut().push(path.to_string());
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// A mapping key as a string; YAML allows scalar keys of any type (`1: a`, `true: b`), which JSON
/// objects spell as strings.
struct KeyString(String);

impl<'de> serde::Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<KeyString, E> {
                Ok(KeyString(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_json_and_yaml_to_the_same_value() {
        let json_body = br#"{"apiVersion":"v1","kind":"K","spec":{"num":3,"f":1.5,"s":"x","b":true,"z":null,"l":[1,"a"]}}"#;
        let yaml_body = b"apiVersion: v1\nkind: K\nspec:\n  num: 3\n  f: 1.5\n  s: x\n  b: true\n  z: null\n  l: [1, a]\n";
        let a = parse_apply_body(json_body).unwrap();
        assert_eq!(a, parse_apply_body(yaml_body).unwrap());
        assert_eq!(a["spec"]["num"], json!(3));
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        assert!(matches!(parse_apply_body(b""), Err(BodyError::Empty)));
        assert!(matches!(
            parse_apply_body(b"  # only a comment\n"),
            Err(BodyError::Empty)
        ));
        assert!(matches!(
            parse_apply_body(b"[1,2]"),
            Err(BodyError::NotAnObject(_))
        ));
        assert!(matches!(
            parse_apply_body(b"just text"),
            Err(BodyError::NotAnObject(_))
        ));
        assert!(matches!(parse_apply_body(b"a: [1, 2"), Err(BodyError::Syntax(_))));
        assert!(matches!(
            parse_apply_body(&[0xff, 0xfe]),
            Err(BodyError::Syntax(_))
        ));
    }

    #[test]
    fn finds_duplicates_in_json_and_yaml() {
        let json_body = br#"{"spec":{"a":1,"a":2,"ports":[{"name":"x","name":"y"}]},"spec":{"a":3}}"#;
        assert_eq!(
            find_duplicate_fields(json_body),
            vec!["spec.a", "spec.ports[0].name", "spec"]
        );
        // serde_json semantics (last wins) are kept for the value.
        assert_eq!(parse_apply_body(json_body).unwrap(), json!({"spec": {"a": 3}}));
        let yaml_body = b"spec:\n  a: 1\n  b: 2\n  a: 3\nmetadata:\n  labels:\n    x: y\n    x: z\n";
        assert_eq!(
            find_duplicate_fields(yaml_body),
            vec!["spec.a", "metadata.labels.x"]
        );
        assert_eq!(parse_apply_body(yaml_body).unwrap()["spec"]["a"], json!(3));
        assert!(find_duplicate_fields(br#"{"a":{"b":1},"c":{"b":2}}"#).is_empty());
        assert_eq!(
            duplicate_field_message("spec.a"),
            r#"json: duplicate field "spec.a""#
        );
    }

    #[test]
    fn pathologically_deep_bodies_are_rejected_not_overflowing() {
        // Unterminated nesting 20 000 levels deep: an error, not a stack overflow.
        for open in ["[", "{\"a\":", "- "] {
            let body = open.repeat(20_000);
            assert!(parse_apply_body(body.as_bytes()).is_err(), "{open}");
            let _ = find_duplicate_fields(body.as_bytes());
        }
        // Well-formed but deep block YAML: whatever the parser makes of it, it must not crash.
        let _ = parse_apply_body("a:\n ".repeat(20_000).as_bytes());
    }
}
