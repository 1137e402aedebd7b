//! Request bodies: size limit, JSON (with duplicate-field detection), YAML or kube's protobuf
//! (built-in kinds only), into `serde_json::Value`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The largest accepted request body, like kube-apiserver (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A decoded body and the paths of fields that appeared more than once (JSON only).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The value (for duplicates, the last occurrence wins, like Go's decoder).
    pub value: Value,
    /// Paths of duplicated fields, e.g. `spec.size`.
    pub duplicates: Vec<String>,
}

/// The media type of a request body, without parameters, lowercased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON or YAML body. Errors are 400 BadRequest with the parser's message.
pub fn decode(bytes: &[u8], yaml: bool) -> Result<Decoded, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    if yaml {
        return decode_yaml(bytes);
    }
    decode_json(bytes)
}

/// Decodes a protobuf body (`application/vnd.kubernetes.protobuf`) into the object's JSON form.
/// Bytes that are not a kube protobuf object, or name a kind without a protobuf form, are a 400
/// saying why; `what` names the expected kind in the message, as kube-apiserver's decoder does.
pub fn decode_protobuf(bytes: &[u8], what: &str) -> Result<Value, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    crate::protobuf::decode(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding request body as {what} from protobuf: {e}"
        ))
    })
}

/// Decodes a `DeleteOptions` body: JSON, or protobuf (what client-go's typed clients send for
/// built-in kinds).
pub fn decode_delete_options(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, ApiError> {
    if media_type(content_type) == crate::protobuf::MEDIA_TYPE {
        return decode_protobuf(bytes, "DeleteOptions");
    }
    Ok(decode(bytes, false)?.value)
}

fn decode_yaml(bytes: &[u8]) -> Result<Decoded, ApiError> {
    // JSON is valid YAML; parse it as JSON first so duplicate detection works for kubectl's JSON bodies.
    if let Ok(d) = decode_json(bytes) {
        return Ok(d);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    let value: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    Ok(Decoded {
        value,
        duplicates: Vec::new(),
    })
}

/// Decodes JSON, recording duplicated object keys.
pub fn decode_json(bytes: &[u8]) -> Result<Decoded, ApiError> {
    let dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = DupSeed {
        path: String::new(),
        dups: &dups,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| ApiError::bad_request(format!("error decoding request body as JSON: {e}")))?;
    Ok(Decoded {
        value,
        duplicates: dups.into_inner(),
    })
}

struct DupSeed<'a> {
    path: String,
    dups: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for DupSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(DupSeed {
            path: format!("{}[{}]", self.path, out.len()),
            dups: self.dups,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if out.contains_key(&key) {
                self.dups.borrow_mut().push(path.clone());
            }
            let v = map.next_value_seed(DupSeed {
                path,
                dups: self.dups,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicates() {
        let d = decode(
            br#"{"spec": {"a": 1, "a": 2, "l": [{"x": 1, "x": 1}]}, "kind": "W"}"#,
            false,
        )
        .unwrap();
        assert_eq!(d.duplicates, vec!["spec.a", "spec.l[0].x"]);
        assert_eq!(d.value["spec"]["a"], 2);
    }

    #[test]
    fn yaml_and_errors() {
        let d = decode(b"kind: W\nspec:\n  size: 3\n", true).unwrap();
        assert_eq!(d.value["spec"]["size"], 3);
        assert_eq!(decode(b"{", false).unwrap_err().code, 400);
        assert_eq!(decode(b"{} x", false).unwrap_err().code, 400);
        assert_eq!(decode(b"a: [", true).unwrap_err().code, 400);
        assert_eq!(
            decode(&vec![b' '; MAX_BODY_BYTES + 1], false).unwrap_err().code,
            413
        );
    }

    proptest::proptest! {
        #[test]
        fn protobuf_decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut prefixed = b"k8s\0".to_vec();
            prefixed.extend_from_slice(&bytes);
            for input in [&bytes, &prefixed] {
                if let Err(e) = decode_protobuf(input, "Namespace") {
                    proptest::prop_assert_eq!(e.code, 400);
                }
            }
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), yaml: bool) {
            let _ = decode(&bytes, yaml);
        }
    }
}
