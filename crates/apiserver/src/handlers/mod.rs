//! Verb handlers (get, list, create, update, patch, delete) and the helpers they share.

pub(crate) mod delete;
pub(crate) mod patch;
pub(crate) mod read;
pub(crate) mod write;

use bytes::Bytes;
use ironnet_store::KeyValue;
use ironnet_structured::{BodyFormat, Duplicates};
use serde_json::Value;

use crate::definition::ResourceDefinition;
use crate::error::{ApiError, GroupResource};
use crate::meta;
use crate::request::{FieldValidation, Output};
use crate::server::{Call, Server};
use crate::table::{IncludeObject, TableConvertor, partial_object_metadata};

/// Decodes a stored value into an object carrying `metadata.resourceVersion = mod_revision`.
pub(crate) fn decode_stored(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    meta::set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Encodes an object for the store: `metadata.resourceVersion` is never stored (the store
/// revision is), so an unchanged object encodes to identical bytes.
pub(crate) fn encode_for_store(obj: &Value) -> Bytes {
    let mut copy = obj.clone();
    meta::metadata_mut(&mut copy).remove("resourceVersion");
    Bytes::from(serde_json::to_vec(&copy).unwrap_or_default())
}

/// The parsed `resourceVersion` of an object, if it carries a non-empty one.
pub(crate) fn object_rv(obj: &Value) -> Result<Option<u64>, ApiError> {
    match meta::meta_str(obj, "resourceVersion") {
        "" => Ok(None),
        s => s.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resourceVersion {s:?}: must be a decimal integer"
            ))
        }),
    }
}

impl Server {
    /// Renders one object in the negotiated representation.
    pub(crate) fn render_object(&self, call: &Call, obj: Value) -> Result<Value, ApiError> {
        Ok(match call.output {
            Output::Table => {
                let include = include_object(call)?;
                let rv = meta::meta_str(&obj, "resourceVersion").to_owned();
                TableConvertor::for_kind(&call.kind).table(
                    &[obj],
                    serde_json::json!({"resourceVersion": rv}),
                    include,
                    true,
                    self.clock.now(),
                )
            }
            Output::PartialMetadata => partial_object_metadata(&obj),
            _ => obj,
        })
    }

    /// Decodes a create/update body: media type, size, syntax, apiVersion/kind, then repeated and
    /// unknown fields per `fieldValidation` (Strict → 400, Warn → warnings; unknown fields are pruned).
    pub(crate) fn decode_object_body(&self, call: &Call) -> Result<(Value, Vec<String>), ApiError> {
        let media = crate::body::media_type(call.content_type.as_deref());
        let format = match media.as_str() {
            "application/json" => BodyFormat::Json,
            "application/yaml" | "application/x-yaml" | "text/yaml" => BodyFormat::Yaml,
            // Custom kinds have no protobuf form: 415, as kube-apiserver answers for CRDs.
            crate::protobuf::MEDIA_TYPE
                if crate::protobuf::supports(&call.def().api_version(), &call.def().kind) =>
            {
                let value = crate::body::decode_protobuf(&call.body, &call.def().kind)?;
                return self.check_object(
                    call.def(),
                    value,
                    &Duplicates::None,
                    call.query.field_validation()?,
                );
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        let decoded = crate::body::decode(&call.body, format)?;
        self.check_object(
            call.def(),
            decoded.value,
            &decoded.duplicates,
            call.query.field_validation()?,
        )
    }

    /// Type and field checks shared by bodies and patch results. As kube-apiserver's CRD decoder
    /// does, the body's repeated keys are reported before the unknown fields (which are pruned).
    pub(crate) fn check_object(
        &self,
        def: &ResourceDefinition,
        mut obj: Value,
        duplicates: &Duplicates,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: the request body must be a JSON object",
                def.kind, def.version, def.kind
            )));
        }
        check_type_meta(def, &mut obj)?;
        let unknown = ironnet_structured::prune_unknown_fields(&def.schema, &mut obj);
        let unknown = unknown
            .iter()
            .map(|u| ironnet_structured::unknown_field_message(u));
        match validation {
            FieldValidation::Strict => {
                let mut errors = duplicates.strict_errors();
                errors.extend(unknown);
                if errors.is_empty() {
                    return Ok((obj, Vec::new()));
                }
                Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    def.kind,
                    def.version,
                    def.kind,
                    errors.join(", ")
                )))
            }
            FieldValidation::Warn => {
                let mut warnings = duplicates.warnings();
                warnings.extend(unknown);
                Ok((obj, warnings))
            }
            FieldValidation::Ignore => Ok((obj, Vec::new())),
        }
    }

    /// 404 if `ns` does not exist; 403 when creating in a terminating namespace.
    pub(crate) async fn check_namespace(&self, ns: &str, creating: bool) -> Result<(), ApiError> {
        let key = format!("/registry/core/namespaces/{ns}");
        match self.store.get(&key, None).await? {
            None => Err(ApiError::not_found(&GroupResource::new("", "namespaces"), ns)),
            Some(kv) if creating => {
                let obj = decode_stored(&kv)?;
                if meta::is_deleting(&obj) {
                    Err(ApiError::forbidden(
                        &GroupResource::default(),
                        "",
                        &format!(
                            "unable to create new content in namespace {ns} because it is being terminated"
                        ),
                    ))
                } else {
                    Ok(())
                }
            }
            Some(_) => Ok(()),
        }
    }
}

/// `includeObject` for Table output.
pub(crate) fn include_object(call: &Call) -> Result<IncludeObject, ApiError> {
    IncludeObject::parse(call.query.get("includeObject").unwrap_or("")).ok_or_else(|| {
        ApiError::bad_request(
            "includeObject: Unsupported value: supported values: \"None\", \"Metadata\", \"Object\"",
        )
    })
}

/// Checks (or fills in) `apiVersion` and `kind` against the endpoint's kind.
fn check_type_meta(def: &ResourceDefinition, obj: &mut Value) -> Result<(), ApiError> {
    let expected_av = def.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(expected_av.clone()));
        }
        Some(av) if av == expected_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({expected_av})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(def.kind.clone()));
        }
        Some(k) if k == def.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
    }
    if let Some(m) = map.get("metadata")
        && !m.is_object()
        && !m.is_null()
    {
        return Err(ApiError::bad_request("metadata: must be an object"));
    }
    Ok(())
}
