//! kube's protobuf encoding (`application/vnd.kubernetes.protobuf`) for the built-in kinds.
//!
//! Objects are held as JSON inside the server; this module transcodes at the edges: request
//! bodies are decoded into the JSON the handlers take, JSON responses and watch events are
//! encoded when the client prefers protobuf. The messages are k8s-pb's generated prost types;
//! [`json`] maps them to and from kube's JSON. Which kinds have a protobuf form is the table in
//! [`codec`]: a kind added later needs one line there (and, if it brings new messages, a rerun
//! of `scripts/gen-protobuf-json.py`). Custom kinds stay JSON, as kube-apiserver serves CRDs.
//!
//! The wire format (k8s.io/apimachinery/pkg/runtime/serializer/protobuf): the 4-byte magic
//! `k8s\0`, then a `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` holds the
//! object's message. Watch streams (`;stream=watch`) are 4-byte big-endian length-prefixed
//! `WatchEvent` messages without magic, each event's object encoded as above.

pub(crate) mod json;
mod messages;
mod response;

pub(crate) use response::respond;

use std::collections::HashMap;
use std::sync::LazyLock;

use k8s_pb::api;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use prost::Message;
use serde_json::{Map, Value};

use json::Json;

/// The media type of kube's protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The media type of a protobuf watch stream.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";
/// The magic bytes every protobuf-encoded object starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Encodes and decodes one kind's message.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    encode: fn(&Value) -> Result<Vec<u8>, String>,
    decode: fn(&[u8]) -> Result<Value, String>,
}

fn codec<T: Json + Message + Default>() -> Codec {
    Codec {
        encode: |v| Ok(T::from_json(v, "")?.encode_to_vec()),
        decode: |b| {
            Ok(T::decode(b)
                .map_err(|e| format!("invalid protobuf: {e}"))?
                .to_json())
        },
    }
}

/// Every kind with a protobuf form, by apiVersion and kind.
fn table() -> Vec<(&'static str, &'static str, Codec)> {
    use api::authentication::v1 as authn;
    use api::authorization::v1 as authz;
    use api::coordination::v1 as coordination;
    use api::core::v1 as core;
    use api::events::v1 as events;
    use api::rbac::v1 as rbac;
    const RBAC: &str = "rbac.authorization.k8s.io/v1";
    const AUTHZ: &str = "authorization.k8s.io/v1";
    vec![
        ("v1", "Namespace", codec::<core::Namespace>()),
        ("v1", "NamespaceList", codec::<core::NamespaceList>()),
        ("v1", "Node", codec::<core::Node>()),
        ("v1", "NodeList", codec::<core::NodeList>()),
        ("v1", "Event", codec::<core::Event>()),
        ("v1", "EventList", codec::<core::EventList>()),
        ("v1", "Status", codec::<meta::Status>()),
        ("v1", "List", codec::<meta::List>()),
        ("meta.k8s.io/v1", "Status", codec::<meta::Status>()),
        ("meta.k8s.io/v1", "DeleteOptions", codec::<meta::DeleteOptions>()),
        ("v1", "DeleteOptions", codec::<meta::DeleteOptions>()),
        ("events.k8s.io/v1", "Event", codec::<events::Event>()),
        ("events.k8s.io/v1", "EventList", codec::<events::EventList>()),
        ("coordination.k8s.io/v1", "Lease", codec::<coordination::Lease>()),
        (
            "coordination.k8s.io/v1",
            "LeaseList",
            codec::<coordination::LeaseList>(),
        ),
        (RBAC, "Role", codec::<rbac::Role>()),
        (RBAC, "RoleList", codec::<rbac::RoleList>()),
        (RBAC, "ClusterRole", codec::<rbac::ClusterRole>()),
        (RBAC, "ClusterRoleList", codec::<rbac::ClusterRoleList>()),
        (RBAC, "RoleBinding", codec::<rbac::RoleBinding>()),
        (RBAC, "RoleBindingList", codec::<rbac::RoleBindingList>()),
        (RBAC, "ClusterRoleBinding", codec::<rbac::ClusterRoleBinding>()),
        (
            RBAC,
            "ClusterRoleBindingList",
            codec::<rbac::ClusterRoleBindingList>(),
        ),
        (
            AUTHZ,
            "SelfSubjectAccessReview",
            codec::<authz::SelfSubjectAccessReview>(),
        ),
        (
            AUTHZ,
            "SubjectAccessReview",
            codec::<authz::SubjectAccessReview>(),
        ),
        (
            AUTHZ,
            "LocalSubjectAccessReview",
            codec::<authz::LocalSubjectAccessReview>(),
        ),
        (
            AUTHZ,
            "SelfSubjectRulesReview",
            codec::<authz::SelfSubjectRulesReview>(),
        ),
        (
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            codec::<authn::SelfSubjectReview>(),
        ),
        (
            "authentication.k8s.io/v1",
            "TokenReview",
            codec::<authn::TokenReview>(),
        ),
    ]
}

static CODECS: LazyLock<HashMap<(&'static str, &'static str), Codec>> =
    LazyLock::new(|| table().into_iter().map(|(v, k, c)| ((v, k), c)).collect());

fn lookup(api_version: &str, kind: &str) -> Option<Codec> {
    CODECS.get(&(api_version, kind)).copied()
}

/// Whether objects of `kind` in `api_version` (and their lists) have a protobuf form.
pub fn supports(api_version: &str, kind: &str) -> bool {
    lookup(api_version, kind).is_some()
}

/// Errors decoding or encoding protobuf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The bytes are not a protobuf-encoded kube object.
    #[error("{0}")]
    Malformed(String),
    /// The envelope names a kind without a protobuf form here.
    #[error("no protobuf encoding is registered for {kind} in version {api_version:?}")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
}

/// Decodes a protobuf-encoded object (magic, `runtime.Unknown`, message) into its JSON form,
/// `apiVersion` and `kind` included.
pub fn decode(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let malformed = |m: String| ProtobufError::Malformed(m);
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
        malformed(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]".into(),
        )
    })?;
    let unknown = Unknown::decode(rest).map_err(|e| malformed(format!("invalid protobuf envelope: {e}")))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if !unknown.content_encoding.as_deref().unwrap_or("").is_empty() {
        return Err(malformed(format!(
            "unsupported content encoding {:?}",
            unknown.content_encoding.unwrap_or_default()
        )));
    }
    if kind.is_empty() {
        return Err(malformed("the protobuf envelope names no kind".into()));
    }
    let codec = lookup(&api_version, &kind).ok_or(ProtobufError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let body = (codec.decode)(unknown.raw.as_deref().unwrap_or_default())
        .map_err(|e| malformed(format!("decoding {kind}: {e}")))?;
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    if let Value::Object(fields) = body {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// Encodes an object (with `apiVersion` and `kind`) as kube's protobuf; `None` if its kind has
/// no protobuf form. An object that does not fit its message is an error.
pub fn encode(obj: &Value) -> Option<Result<Vec<u8>, ProtobufError>> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str)?;
    let codec = lookup(api_version, kind)?;
    Some(encode_with(codec, api_version, kind, obj))
}

fn encode_with(codec: Codec, api_version: &str, kind: &str, obj: &Value) -> Result<Vec<u8>, ProtobufError> {
    let raw = (codec.encode)(obj).map_err(|e| ProtobufError::Malformed(format!("encoding {kind}: {e}")))?;
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(raw),
        // Go writes its non-pointer strings even when empty.
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + unknown.encoded_len());
    out.extend_from_slice(MAGIC);
    unknown.encode(&mut out).expect("a Vec grows as needed");
    Ok(out)
}

/// One frame of a protobuf watch stream: the length-prefixed `WatchEvent` carrying `object`
/// (protobuf-encoded with its envelope); `None` if the object's kind has no protobuf form.
pub fn watch_frame(type_: &str, object: &Value) -> Option<Result<Vec<u8>, ProtobufError>> {
    let raw = match encode(object)? {
        Ok(raw) => raw,
        Err(e) => return Some(Err(e)),
    };
    let event = meta::WatchEvent {
        r#type: Some(type_.to_owned()),
        object: Some(RawExtension { raw: Some(raw) }),
    };
    let len = event.encoded_len();
    let Ok(prefix) = u32::try_from(len) else {
        return Some(Err(ProtobufError::Malformed(format!(
            "watch event of {len} bytes is too large"
        ))));
    };
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&prefix.to_be_bytes());
    event.encode(&mut out).expect("a Vec grows as needed");
    Some(Ok(out))
}

/// A decoded watch frame: the event type, the object's JSON form, and the bytes after the frame.
pub type WatchFrame<'a> = (String, Value, &'a [u8]);

/// Splits one frame off a protobuf watch stream and decodes it; `Ok(None)` if `bytes` holds no
/// complete frame yet.
pub fn read_watch_frame(bytes: &[u8]) -> Result<Option<WatchFrame<'_>>, ProtobufError> {
    let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Ok(None);
    }
    let (frame, rest) = rest.split_at(len);
    let event = meta::WatchEvent::decode(frame)
        .map_err(|e| ProtobufError::Malformed(format!("invalid watch event: {e}")))?;
    let raw = event.object.and_then(|o| o.raw).unwrap_or_default();
    Ok(Some((event.r#type.unwrap_or_default(), decode(&raw)?, rest)))
}

/// How much a request's `Accept` wants protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    /// Protobuf is not asked for (or something else comes first).
    No,
    /// Protobuf first, with JSON acceptable too (kubectl's `protobuf,json`).
    Preferred,
    /// Only protobuf.
    Only,
}

impl Preference {
    /// From the `Accept` header: protobuf must be the first listed type; whether any other
    /// listed type is one this server produces decides between `Preferred` and `Only`.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Preference::No;
        };
        let mut entries = accept.split(',').map(|e| {
            let media = e.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let has_as = e.split(';').skip(1).any(|p| p.trim().starts_with("as="));
            (media, has_as)
        });
        match entries.next() {
            Some((media, false)) if media == MEDIA_TYPE => {}
            _ => return Preference::No,
        }
        if entries.any(|(m, _)| {
            matches!(
                m.as_str(),
                "application/json" | "application/yaml" | "*/*" | "application/*"
            )
        }) {
            Preference::Preferred
        } else {
            Preference::Only
        }
    }
}

#[cfg(test)]
mod tests;
