//! Conversion between k8s-pb's prost messages and kube's JSON form of the same objects.
//!
//! kube's protobuf and JSON encodings are two views of one Go struct: every protobuf field has a
//! JSON name (listed per message in `messages.rs`, generated from k8s-pb and k8s-openapi), and a
//! few types have their own JSON form (`Time`, `MicroTime`, `Quantity`, `IntOrString`,
//! `RawExtension`, `FieldsV1`, the `ExtraValue` string lists), written by hand here.
//!
//! Go writes every non-pointer field of a message in protobuf, empty or not, while its JSON
//! encoder leaves `omitempty` fields out; so zero scalars, empty lists and maps, and zero times
//! are left out of the JSON unless the field is marked `keep` (pointers and fields without
//! `omitempty`, whose zero value means something).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// Converts one protobuf value to and from its JSON form.
pub(crate) trait Json: Sized {
    /// The JSON form.
    fn to_json(&self) -> Value;
    /// From the JSON form; `path` names the field in errors.
    fn from_json(v: &Value, path: &str) -> Result<Self, String>;
    /// Whether Go's JSON encoder leaves this value out of an `omitempty` field.
    fn is_empty_value(&self) -> bool {
        false
    }
}

fn type_error(path: &str, want: &str, got: &Value) -> String {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("{path}: expected {want}, got {got}")
}

impl Json for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| type_error(path, "a string", v))
    }
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}

impl Json for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        v.as_bool().ok_or_else(|| type_error(path, "a boolean", v))
    }
    fn is_empty_value(&self) -> bool {
        !*self
    }
}

impl Json for i64 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        v.as_i64().ok_or_else(|| type_error(path, "an integer", v))
    }
    fn is_empty_value(&self) -> bool {
        *self == 0
    }
}

impl Json for i32 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        let n = i64::from_json(v, path)?;
        i32::try_from(n).map_err(|_| format!("{path}: {n} does not fit a 32-bit integer"))
    }
    fn is_empty_value(&self) -> bool {
        *self == 0
    }
}

impl Json for f64 {
    fn to_json(&self) -> Value {
        serde_json::Number::from_f64(*self).map_or(Value::Null, Value::Number)
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        v.as_f64().ok_or_else(|| type_error(path, "a number", v))
    }
    fn is_empty_value(&self) -> bool {
        *self == 0.0
    }
}

impl<T: Json> Json for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_json)
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        if v.is_null() {
            return Ok(None);
        }
        T::from_json(v, path).map(Some)
    }
    fn is_empty_value(&self) -> bool {
        self.as_ref().is_none_or(T::is_empty_value)
    }
}

impl<T: Json> Json for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(T::to_json).collect())
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| T::from_json(item, &format!("{path}[{i}]")))
                .collect(),
            other => Err(type_error(path, "a list", other)),
        }
    }
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}

impl<T: Json> Json for BTreeMap<String, T> {
    fn to_json(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        match v {
            Value::Null => Ok(BTreeMap::new()),
            Value::Object(m) => m
                .iter()
                .map(|(k, item)| Ok((k.clone(), T::from_json(item, &format!("{path}.{k}"))?)))
                .collect(),
            other => Err(type_error(path, "an object", other)),
        }
    }
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}

/// Implements [`Json`] for a message from its fields' JSON names; `keep` marks fields written
/// even when zero.
macro_rules! message {
    ($ty:path { $( $field:ident : $name:literal $($keep:ident)? ),* $(,)? }) => {
        impl $crate::protobuf::json::Json for $ty {
            fn to_json(&self) -> serde_json::Value {
                let mut out = serde_json::Map::new();
                $(
                    let keep = $crate::protobuf::json::message!(@keep $($keep)?);
                    if $crate::protobuf::json::include(&self.$field, keep) {
                        out.insert($name.to_owned(), $crate::protobuf::json::Json::to_json(&self.$field));
                    }
                )*
                serde_json::Value::Object(out)
            }
            fn from_json(v: &serde_json::Value, path: &str) -> Result<Self, String> {
                let obj = $crate::protobuf::json::object(v, path)?;
                #[allow(unused_mut, reason = "messages without fields")]
                let mut out = Self::default();
                $(
                    if let Some(field) = obj.get($name) {
                        out.$field = $crate::protobuf::json::Json::from_json(
                            field,
                            &$crate::protobuf::json::child(path, $name),
                        )?;
                    }
                )*
                let _ = obj;
                Ok(out)
            }
        }
    };
    (@keep keep) => { true };
    (@keep) => { false };
}
pub(crate) use message;

/// Whether a field is written: always when set if `keep`, else unless Go's `omitempty` drops it.
pub(crate) fn include<T: Json>(field: &T, keep: bool) -> bool {
    if keep {
        !field.to_json().is_null()
    } else {
        !field.is_empty_value()
    }
}

/// `v` as an object (JSON `null` as an empty one).
pub(crate) fn object<'a>(
    v: &'a Value,
    path: &str,
) -> Result<std::borrow::Cow<'a, Map<String, Value>>, String> {
    match v {
        Value::Object(m) => Ok(std::borrow::Cow::Borrowed(m)),
        Value::Null => Ok(std::borrow::Cow::Owned(Map::new())),
        other => Err(type_error(
            if path.is_empty() { "<root>" } else { path },
            "an object",
            other,
        )),
    }
}

/// The path of field `name` below `path`.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// RFC 3339 in UTC with `precision` fractional digits, as Go's `time.RFC3339` (0) and
/// `RFC3339Micro` (6) print.
fn format_time(seconds: i64, nanos: i32, micro: bool) -> Result<String, String> {
    let ts = jiff::Timestamp::new(seconds, if micro { nanos / 1000 * 1000 } else { 0 })
        .map_err(|e| format!("time out of range: {e}"))?;
    let fmt = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(ts.strftime(fmt).to_string())
}

fn parse_time(v: &Value, path: &str) -> Result<(i64, i32), String> {
    let s = v
        .as_str()
        .ok_or_else(|| type_error(path, "an RFC 3339 time", v))?;
    let ts: jiff::Timestamp = s
        .parse()
        .map_err(|e| format!("{path}: invalid time {s:?}: {e}"))?;
    Ok((ts.as_second(), ts.subsec_nanosecond()))
}

/// Go's zero `time.Time` is written as an empty message (no seconds, no nanos).
fn zero_time(seconds: Option<i64>, nanos: Option<i32>) -> bool {
    seconds.is_none() && nanos.is_none()
}

impl Json for k8s_pb::apimachinery::pkg::apis::meta::v1::Time {
    fn to_json(&self) -> Value {
        if zero_time(self.seconds, self.nanos) {
            return Value::Null;
        }
        // metav1.Time keeps whole seconds only (time_proto.go drops nanos on both sides).
        format_time(self.seconds.unwrap_or(0), 0, false).map_or(Value::Null, Value::String)
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        let (seconds, _) = parse_time(v, path)?;
        Ok(Self {
            seconds: Some(seconds),
            nanos: None,
        })
    }
    fn is_empty_value(&self) -> bool {
        zero_time(self.seconds, self.nanos)
    }
}

impl Json for k8s_pb::apimachinery::pkg::apis::meta::v1::MicroTime {
    fn to_json(&self) -> Value {
        if zero_time(self.seconds, self.nanos) {
            return Value::Null;
        }
        format_time(self.seconds.unwrap_or(0), self.nanos.unwrap_or(0), true)
            .map_or(Value::Null, Value::String)
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        let (seconds, nanos) = parse_time(v, path)?;
        Ok(Self {
            seconds: Some(seconds),
            nanos: Some(nanos / 1000 * 1000),
        })
    }
    fn is_empty_value(&self) -> bool {
        zero_time(self.seconds, self.nanos)
    }
}

impl Json for k8s_pb::apimachinery::pkg::api::resource::Quantity {
    fn to_json(&self) -> Value {
        Value::String(self.string.clone().unwrap_or_default())
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        // JSON clients may write a quantity as a number; kube accepts both.
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(type_error(path, "a quantity", other)),
        };
        Ok(Self { string: Some(s) })
    }
}

impl Json for k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
    fn to_json(&self) -> Value {
        if self.r#type == Some(1) {
            Value::String(self.str_val.clone().unwrap_or_default())
        } else {
            Value::from(self.int_val.unwrap_or(0))
        }
    }
    fn from_json(v: &Value, path: &str) -> Result<Self, String> {
        match v {
            Value::String(s) => Ok(Self {
                r#type: Some(1),
                int_val: None,
                str_val: Some(s.clone()),
            }),
            other => Ok(Self {
                r#type: Some(0),
                int_val: Some(i32::from_json(other, path)?),
                str_val: None,
            }),
        }
    }
}

/// Embedded JSON (`RawExtension.raw`, `FieldsV1.raw`): the bytes are the JSON text.
fn raw_to_json(raw: Option<&Vec<u8>>) -> Value {
    match raw {
        None => Value::Null,
        Some(bytes) => {
            serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(STANDARD.encode(bytes)))
        }
    }
}

fn raw_from_json(v: &Value) -> Option<Vec<u8>> {
    (!v.is_null()).then(|| serde_json::to_vec(v).unwrap_or_default())
}

impl Json for k8s_pb::apimachinery::pkg::runtime::RawExtension {
    fn to_json(&self) -> Value {
        raw_to_json(self.raw.as_ref())
    }
    fn from_json(v: &Value, _path: &str) -> Result<Self, String> {
        Ok(Self {
            raw: raw_from_json(v),
        })
    }
}

impl Json for k8s_pb::apimachinery::pkg::apis::meta::v1::FieldsV1 {
    fn to_json(&self) -> Value {
        raw_to_json(self.raw.as_ref())
    }
    fn from_json(v: &Value, _path: &str) -> Result<Self, String> {
        Ok(Self {
            raw: raw_from_json(v),
        })
    }
}

/// `ExtraValue` is a Go `[]string`: a plain JSON list.
macro_rules! extra_value {
    ($($ty:path),*) => {$(
        impl Json for $ty {
            fn to_json(&self) -> Value {
                self.items.to_json()
            }
            fn from_json(v: &Value, path: &str) -> Result<Self, String> {
                Ok(Self { items: Vec::from_json(v, path)? })
            }
        }
    )*};
}
extra_value!(
    k8s_pb::api::authorization::v1::ExtraValue,
    k8s_pb::api::authentication::v1::ExtraValue
);
