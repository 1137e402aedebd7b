//! Request bodies (JSON or YAML) to `serde_json::Value`, with the repeated keys kube-apiserver's strict
//! decoding reports.
//!
//! serde_json and serde-saphyr keep the last of repeated keys without saying so, so the value is built
//! here by a visitor that notices them. kube-apiserver reports them differently per encoding
//! (apimachinery `runtime/serializer/json/json.go`, `Serializer.unmarshal`): JSON through
//! sigs.k8s.io/json's strict decoder, one `duplicate field "spec.a"` per repetition with its field path;
//! YAML through sigs.k8s.io/yaml's `YAMLToJSONStrict`, whose go-yaml v2 error lists each repetition by
//! line: `yaml: unmarshal errors:\n  line 7: key "a" already set in map`. [`Duplicates`] keeps that
//! distinction.

use std::cell::RefCell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json` and the JSON patch types.
    Json,
    /// `application/yaml` and `application/apply-patch+yaml` (JSON is valid YAML).
    Yaml,
}

/// Why a body could not be decoded; the messages are kube-apiserver's 400 messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A JSON body is not valid JSON.
    #[error("error decoding request body as JSON: {0}")]
    Json(String),
    /// A YAML body is neither JSON nor valid YAML (or not UTF-8).
    #[error("error converting YAML to JSON: {0}")]
    Yaml(String),
}

/// A decoded body.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBody {
    /// The value; of repeated keys the last one wins, as in kube's non-strict decoding.
    pub value: Value,
    /// The repeated keys, for `fieldValidation=Strict|Warn`.
    pub duplicates: Duplicates,
}

/// Keys repeated within one mapping of a body, in document order, as kube-apiserver reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Duplicates {
    /// No key is repeated.
    #[default]
    None,
    /// Found by JSON decoding: the field path of each repetition (`spec.ports[0].name`).
    Json(Vec<String>),
    /// Found by YAML decoding: each repetition's key and the (1-based) line it is on.
    Yaml(Vec<YamlDuplicate>),
}

/// A key that repeats one earlier in the same YAML mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlDuplicate {
    /// The line of the repetition, 1-based.
    pub line: u64,
    /// The key.
    pub key: String,
}

impl YamlDuplicate {
    /// go-yaml v2's message for it: `line 7: key "a" already set in map`.
    pub fn message(&self) -> String {
        format!("line {}: key {:?} already set in map", self.line, self.key)
    }
}

impl Duplicates {
    /// Whether no key is repeated.
    pub fn is_empty(&self) -> bool {
        match self {
            Duplicates::None => true,
            Duplicates::Json(paths) => paths.is_empty(),
            Duplicates::Yaml(keys) => keys.is_empty(),
        }
    }

    /// The strict decoding errors kube-apiserver joins into its 400 message under
    /// `fieldValidation=Strict`: `duplicate field "spec.a"` per JSON repetition; for YAML a single
    /// go-yaml error, `yaml: unmarshal errors:` followed by one indented line per repetition.
    pub fn strict_errors(&self) -> Vec<String> {
        match self {
            Duplicates::None => Vec::new(),
            Duplicates::Json(paths) => paths.iter().map(|p| duplicate_field_message(p)).collect(),
            Duplicates::Yaml(keys) if keys.is_empty() => Vec::new(),
            Duplicates::Yaml(keys) => {
                let mut text = String::from("yaml: unmarshal errors:");
                for k in keys {
                    text.push_str("\n  ");
                    text.push_str(&k.message());
                }
                vec![text]
            }
        }
    }

    /// The `Warning` texts under `fieldValidation=Warn`: one per repetition (kube-apiserver splits the
    /// go-yaml error into its lines).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Duplicates::None => Vec::new(),
            Duplicates::Json(paths) => paths.iter().map(|p| duplicate_field_message(p)).collect(),
            Duplicates::Yaml(keys) => keys.iter().map(YamlDuplicate::message).collect(),
        }
    }
}

/// sigs.k8s.io/json's message for a repeated JSON field: `duplicate field "spec.a"`.
pub fn duplicate_field_message(path: &str) -> String {
    format!("duplicate field {path:?}")
}

/// Decodes a request body. A YAML body that is JSON is read by the (faster) JSON parser, as
/// kube-apiserver's YAML decoder does; its repeated keys are still reported the YAML way, by line.
///
/// Errors: [`BodyError::Json`] or [`BodyError::Yaml`] with the parser's message. An empty YAML body
/// decodes to `null`; whether a value must be an object is the caller's decision.
pub fn decode_body(raw: &[u8], format: BodyFormat) -> Result<DecodedBody, BodyError> {
    match format {
        BodyFormat::Json => decode_json(raw).map_err(|e| BodyError::Json(e.to_string())),
        BodyFormat::Yaml => {
            let Ok(json) = decode_json(raw) else {
                return decode_yaml(raw);
            };
            if json.duplicates.is_empty() {
                return Ok(json);
            }
            // Only a body with repeated keys pays for the second parse that finds their lines. Should
            // the YAML parser refuse what the JSON parser took, the JSON paths are reported instead.
            let duplicates = decode_yaml(raw).map_or(json.duplicates, |y| y.duplicates);
            Ok(DecodedBody {
                value: json.value,
                duplicates,
            })
        }
    }
}

fn decode_json(raw: &[u8]) -> Result<DecodedBody, serde_json::Error> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = Scan::<JsonKeys>::root(&found).deserialize(&mut de)?;
    de.end()?;
    let paths: Vec<String> = found.into_inner().into_iter().map(|(_, path)| path).collect();
    Ok(DecodedBody {
        value,
        duplicates: if paths.is_empty() {
            Duplicates::None
        } else {
            Duplicates::Json(paths)
        },
    })
}

fn decode_yaml(raw: &[u8]) -> Result<DecodedBody, BodyError> {
    let text = std::str::from_utf8(raw).map_err(|e| BodyError::Yaml(e.to_string()))?;
    // Repeated keys reach the visitor (serde-saphyr's default is to fail on them), which keeps the last.
    let options = serde_saphyr::options! { duplicate_keys: DuplicateKeyPolicy::PassThrough };
    let YamlDocument(value, found) =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| BodyError::Yaml(e.to_string()))?;
    let keys: Vec<YamlDuplicate> = found
        .into_iter()
        .map(|(line, key)| YamlDuplicate { line, key })
        .collect();
    Ok(DecodedBody {
        value,
        duplicates: if keys.is_empty() {
            Duplicates::None
        } else {
            Duplicates::Yaml(keys)
        },
    })
}

/// A YAML document's value and its repeated keys (line, key).
struct YamlDocument(Value, Vec<(u64, String)>);

impl<'de> Deserialize<'de> for YamlDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let found = RefCell::new(Vec::new());
        let value = Scan::<YamlKeys>::root(&found).deserialize(d)?;
        Ok(YamlDocument(value, found.into_inner()))
    }
}

/// Where a value sits, as a chain of steps up to the root: a field path is only rendered for a
/// repeated key, so decoding a body without repetitions allocates nothing for paths.
#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str, &'a Step<'a>),
    Index(usize, &'a Step<'a>),
}

impl Step<'_> {
    /// The field path as kube prints it: `spec.ports[0].name`.
    fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = self;
        loop {
            match at {
                Step::Root => break,
                Step::Key(_, up) | Step::Index(_, up) => {
                    steps.push(*at);
                    at = up;
                }
            }
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Key(k, _) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Step::Index(i, _) => {
                    use std::fmt::Write as _;
                    let _ = write!(out, "[{i}]");
                }
                Step::Root => {}
            }
        }
        out
    }
}

/// How mapping keys are read and their repetitions recorded, per encoding.
trait Keys {
    /// Whether repetitions inside the value of a repeated key are reported too.
    const LOOKS_INSIDE_REPEATS: bool;
    /// The next key, and the line it is on where the format knows it.
    fn next<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<(String, u64)>, A::Error>;
    /// The record of one repetition of `key` at `line` in the mapping at `at`.
    fn record(at: &Step<'_>, key: &str, line: u64) -> (u64, String);
}

/// JSON: repetitions are recorded by field path.
struct JsonKeys;

impl Keys for JsonKeys {
    // sigs.k8s.io/json decodes a repeated field's value like any other.
    const LOOKS_INSIDE_REPEATS: bool = true;

    fn next<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<(String, u64)>, A::Error> {
        Ok(map.next_key::<String>()?.map(|k| (k, 0)))
    }

    fn record(at: &Step<'_>, key: &str, line: u64) -> (u64, String) {
        (line, Step::Key(key, at).render())
    }
}

/// YAML: repetitions are recorded by key and line, as go-yaml reports them.
struct YamlKeys;

impl Keys for YamlKeys {
    // go-yaml v2's strict mode skips the value of a repeated key (decode.go, `d.mapping`).
    const LOOKS_INSIDE_REPEATS: bool = false;

    fn next<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<(String, u64)>, A::Error> {
        Ok(map
            .next_key::<Spanned<String>>()?
            .map(|k| (k.value, k.referenced.line())))
    }

    fn record(_: &Step<'_>, key: &str, line: u64) -> (u64, String) {
        (line, key.to_owned())
    }
}

/// Builds a `Value` exactly as `serde_json::Value`'s own `Deserialize` does, recording repeated keys.
struct Scan<'a, K> {
    at: Step<'a>,
    found: &'a RefCell<Vec<(u64, String)>>,
    keys: std::marker::PhantomData<K>,
}

impl<'a, K: Keys> Scan<'a, K> {
    fn root(found: &'a RefCell<Vec<(u64, String)>>) -> Self {
        Scan {
            at: Step::Root,
            found,
            keys: std::marker::PhantomData,
        }
    }
}

impl<'de, K: Keys> DeserializeSeed<'de> for Scan<'_, K> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: Keys> Visitor<'de> for Scan<'_, K> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Number::deserialize(de::value::I128Deserializer::<E>::new(v)).map(Value::Number)
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Number::deserialize(de::value::U128Deserializer::<E>::new(v)).map(Value::Number)
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // Non-finite numbers (YAML's `.inf`, `.nan`) have no JSON form; serde_json makes them null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let item = Scan::<K> {
                at: Step::Index(out.len(), &self.at),
                found: self.found,
                keys: std::marker::PhantomData,
            };
            match seq.next_element_seed(item)? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some((key, line)) = K::next(&mut map)? {
            // Both decoders report a repetition when they meet its key, before its value.
            let repeated = out.contains_key(&key);
            if repeated {
                self.found.borrow_mut().push(K::record(&self.at, &key, line));
            }
            let mark = self.found.borrow().len();
            let value = map.next_value_seed(Scan::<K> {
                at: Step::Key(&key, &self.at),
                found: self.found,
                keys: std::marker::PhantomData,
            })?;
            if repeated && !K::LOOKS_INSIDE_REPEATS {
                self.found.borrow_mut().truncate(mark);
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json(raw: &str) -> DecodedBody {
        decode_body(raw.as_bytes(), BodyFormat::Json).unwrap()
    }

    fn yaml(raw: &str) -> DecodedBody {
        decode_body(raw.as_bytes(), BodyFormat::Yaml).unwrap()
    }

    #[test]
    fn json_and_yaml_decode_to_the_same_value() {
        let a = json(
            r#"{"apiVersion":"v1","kind":"K","spec":{"num":3,"f":1.5,"s":"x","b":true,"z":null,"l":[1,"a"]}}"#,
        );
        let b = yaml(
            "apiVersion: v1\nkind: K\nspec:\n  num: 3\n  f: 1.5\n  s: x\n  b: true\n  z: null\n  l: [1, a]\n",
        );
        assert_eq!(a, b);
        assert_eq!(a.value["spec"]["num"], json!(3));
        assert_eq!(a.duplicates, Duplicates::None);
        // Edge cases decode as serde-saphyr decodes them into serde_json's own Value.
        for text in [
            "",
            "a: .inf\n",
            "# only a comment\n",
            "just text",
            "[1, 2]",
            "1: a\ntrue: b\n",
        ] {
            let plain = serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string());
            let ours = decode_body(text.as_bytes(), BodyFormat::Yaml).map(|d| d.value);
            assert_eq!(
                ours.map_err(|e| e.to_string()),
                plain.map_err(|e| format!("error converting YAML to JSON: {e}")),
                "{text:?}"
            );
        }
    }

    #[test]
    fn json_repetitions_are_reported_by_field_path() {
        let d = json(
            r#"{"spec":{"a":1,"a":2,"ports":[{"name":"x","name":"y"}]},"spec":{"a":3},"k":[[{"x":1,"x":2}]]}"#,
        );
        assert_eq!(
            d.duplicates,
            Duplicates::Json(vec![
                "spec.a".into(),
                "spec.ports[0].name".into(),
                "spec".into(),
                "k[0][0].x".into()
            ])
        );
        // The last value wins and keeps the first one's place.
        assert_eq!(
            serde_json::to_string(&d.value).unwrap(),
            r#"{"spec":{"a":3},"k":[[{"x":2}]]}"#
        );
        assert_eq!(
            d.duplicates.strict_errors(),
            vec![
                r#"duplicate field "spec.a""#,
                r#"duplicate field "spec.ports[0].name""#,
                r#"duplicate field "spec""#,
                r#"duplicate field "k[0][0].x""#
            ]
        );
        assert_eq!(d.duplicates.warnings(), d.duplicates.strict_errors());
        assert!(json(r#"{"a":{"b":1},"c":{"b":2}}"#).duplicates.is_empty());
        // A repetition is reported where its key is met, then those inside its value.
        assert_eq!(
            json(r#"{"s":{"a":1},"s":{"a":2,"a":3}}"#).duplicates,
            Duplicates::Json(vec!["s".into(), "s.a".into()])
        );
    }

    #[test]
    fn yaml_repetitions_are_reported_by_line_as_go_yaml_does() {
        let d = yaml("spec:\n  a: 1\n  b: 2\n  a: 3\nmetadata:\n  labels:\n    x: y1\n    x: z\n");
        assert_eq!(
            d.duplicates,
            Duplicates::Yaml(vec![
                YamlDuplicate {
                    line: 4,
                    key: "a".into()
                },
                YamlDuplicate {
                    line: 8,
                    key: "x".into()
                }
            ])
        );
        assert_eq!(d.value["spec"]["a"], json!(3));
        assert_eq!(d.value["metadata"]["labels"]["x"], json!("z"));
        assert_eq!(
            d.duplicates.strict_errors(),
            vec![
                "yaml: unmarshal errors:\n  line 4: key \"a\" already set in map\n  line 8: key \"x\" already set in map"
            ]
        );
        assert_eq!(
            d.duplicates.warnings(),
            vec![
                r#"line 4: key "a" already set in map"#,
                r#"line 8: key "x" already set in map"#
            ]
        );
        // go-yaml does not look inside a repeated key's value.
        assert_eq!(
            yaml("s:\n  a: 1\ns:\n  a: 2\n  a: 3\n").duplicates.warnings(),
            vec![r#"line 3: key "s" already set in map"#]
        );
        // A JSON body sent as YAML: decoded as JSON, repetitions still reported by line.
        let d = yaml("{\"a\": 1,\n \"a\": 2}");
        assert_eq!(d.value, json!({"a": 2}));
        assert_eq!(
            d.duplicates.warnings(),
            vec![r#"line 2: key "a" already set in map"#]
        );
    }

    #[test]
    fn errors_carry_the_servers_messages() {
        let err = |raw: &[u8], f| decode_body(raw, f).unwrap_err().to_string();
        assert!(
            err(b"{", BodyFormat::Json).starts_with("error decoding request body as JSON: EOF while parsing"),
            "{}",
            err(b"{", BodyFormat::Json)
        );
        assert!(
            err(b"{} x", BodyFormat::Json)
                .starts_with("error decoding request body as JSON: trailing characters")
        );
        assert!(err(b"a: [", BodyFormat::Yaml).starts_with("error converting YAML to JSON: "));
        assert!(
            err(&[0xff, 0xfe], BodyFormat::Yaml).starts_with("error converting YAML to JSON: invalid utf-8")
        );
        assert!(matches!(
            decode_body(b"kind: K", BodyFormat::Json),
            Err(BodyError::Json(_))
        ));
    }

    #[test]
    fn pathologically_deep_bodies_are_rejected_not_overflowing() {
        // Unterminated nesting 20 000 levels deep: an error, not a stack overflow.
        for open in ["[", "{\"a\":", "- "] {
            let body = open.repeat(20_000);
            for format in [BodyFormat::Json, BodyFormat::Yaml] {
                assert!(decode_body(body.as_bytes(), format).is_err(), "{open}");
            }
        }
        // Well-formed but deep block YAML: whatever the parser makes of it, it must not crash.
        let _ = decode_body("a:\n ".repeat(20_000).as_bytes(), BodyFormat::Yaml);
    }
}
