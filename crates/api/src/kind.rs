//! The uniform, dynamic view of every kind: [`ApiKind`] for typed code, [`KindDescriptor`] for an API server
//! that registers kinds without knowing them, and the decoding that turns typed deserialisation failures into
//! field errors.

use std::fmt;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::object::HasSpec;
use kube_core::{CustomResourceExt, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::validation::meta::{NameRule, validate_object_meta, validate_object_meta_update};
use crate::validation::spec_unchanged_on_status;

/// A kind of this crate: typed object with its CRD, defaulting and validation.
///
/// Contracts: [`ApiKind::apply_defaults`] is idempotent; the `validate_*` functions are pure and return every error
/// they find (empty means valid); update validation includes the full create validation of the new object.
pub trait ApiKind:
    Resource<DynamicType = ()> + CustomResourceExt + HasSpec + Serialize + DeserializeOwned + Clone + fmt::Debug
where
    <Self as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    /// Whether the kind's fields sit at the top level (no `spec` wrapper).
    const NO_SPEC: bool = false;

    /// Whether an object may omit `spec` (or send `spec: null`): it then decodes with the default
    /// spec. Such a kind's [`ApiKind::definition`] must not require `spec` either
    /// (see [`without_required_spec`]).
    const OPTIONAL_SPEC: bool = false;

    /// How `metadata.name` is checked on create and update.
    const NAME_RULE: NameRule;

    /// Whether objects live in a namespace (the CRD's scope).
    const NAMESPACED: bool = true;

    /// The CustomResourceDefinition (schema, printer columns, short names, scope, subresources, selectable fields).
    fn definition() -> CustomResourceDefinition {
        <Self as CustomResourceExt>::crd()
    }

    /// Applies the kind's defaults in place.
    fn apply_defaults(&mut self) {}

    /// Validates a new object.
    fn validate_create(&self) -> ErrorList;

    /// Validates an update of the main resource (`old` is the stored object).
    fn validate_update(&self, old: &Self) -> ErrorList;

    /// kube's ObjectMeta checks of a new object, with the kind's [`ApiKind::NAME_RULE`] and scope: the start of
    /// every kind's [`ApiKind::validate_create`].
    fn validate_meta_create(&self) -> ErrorList {
        validate_object_meta(self.meta(), Self::NAMESPACED, Self::NAME_RULE)
    }

    /// kube's ObjectMeta checks of an update (immutable name, namespace, UID, …), with the kind's name rule and
    /// scope: the start of every kind's [`ApiKind::validate_update`].
    fn validate_meta_update(&self, old: &Self) -> ErrorList {
        validate_object_meta_update(self.meta(), old.meta(), Self::NAMESPACED, Self::NAME_RULE)
    }

    /// Validates an update through the `/status` subresource. The default, which every kind with a
    /// status subresource uses, checks the metadata update and refuses any change of `spec` (a
    /// status writer cannot change the desired state).
    fn validate_status_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(spec_unchanged_on_status(self.spec(), old.spec()));
        errs
    }

    /// Validates the deletion of the stored object (e.g. a VirtualIP that is still bound). The default
    /// allows every delete.
    fn validate_delete(&self) -> ErrorList {
        ErrorList::new()
    }
}

/// Everything an API server needs to serve one kind, without compile-time knowledge of its type.
///
/// The functions take and return JSON objects as stored/sent; a body that does not decode into the typed
/// struct yields field errors at the failing path.
#[derive(Clone)]
pub struct KindDescriptor {
    /// The CustomResourceDefinition of the kind.
    pub crd: CustomResourceDefinition,
    /// Decodes, applies defaults, and re-encodes the object in place; on a decode failure the value is untouched.
    pub default: fn(&mut Value) -> Result<(), ErrorList>,
    /// Validates a new object.
    pub validate_create: fn(&Value) -> ErrorList,
    /// Validates an update of the main resource: `(new, old)`.
    pub validate_update: fn(&Value, &Value) -> ErrorList,
    /// Validates an update through `/status`: `(new, old)`.
    pub validate_status_update: fn(&Value, &Value) -> ErrorList,
    /// Validates the deletion of a stored object (see [`ApiKind::validate_delete`]).
    pub validate_delete: fn(&Value) -> ErrorList,
    /// The formatted Table cell of a printer column (by name), or `None` to render its JSONPath
    /// (see [`crate::printers::cell`]).
    pub printer_cell: fn(&str, &Value) -> Option<String>,
}

impl fmt::Debug for KindDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindDescriptor")
            .field("crd", &self.crd.metadata.name)
            .finish_non_exhaustive()
    }
}

impl KindDescriptor {
    /// The descriptor of kind `K`.
    pub fn of<K: ApiKind>() -> Self
    where
        <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
    {
        KindDescriptor {
            crd: K::definition(),
            default: default_value::<K>,
            validate_create: validate_create_value::<K>,
            validate_update: validate_update_value::<K>,
            validate_status_update: validate_status_update_value::<K>,
            validate_delete: validate_delete_value::<K>,
            printer_cell: printer_cell_value::<K>,
        }
    }

    /// The kind name, e.g. `NetworkInterface`.
    pub fn kind(&self) -> &str {
        &self.crd.spec.names.kind
    }

    /// The API group, e.g. `networking.ironcore.dev`.
    pub fn group(&self) -> &str {
        &self.crd.spec.group
    }
}

/// A CRD whose schema does not require `spec` (for kinds with [`ApiKind::OPTIONAL_SPEC`]).
pub fn without_required_spec(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            && let Some(required) = schema.required.as_mut()
        {
            required.retain(|f| f != "spec");
            if required.is_empty() {
                schema.required = None;
            }
        }
    }
    crd
}

/// Decodes a JSON object into `K`; failures become field errors at the failing path.
pub fn decode<K: ApiKind>(value: &Value) -> Result<K, ErrorList>
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    if K::OPTIONAL_SPEC
        && let Some(map) = value.as_object()
        && map.get("spec").is_none_or(Value::is_null)
    {
        let mut with_spec = map.clone();
        with_spec.insert("spec".into(), Value::Object(Default::default()));
        return decode::<K>(&Value::Object(with_spec));
    }
    match serde_path_to_error::deserialize::<_, K>(value) {
        Ok(k) => Ok(k),
        Err(err) => {
            // Flattened (top-level) fields lose their path in serde; decode them on their own to find it.
            if K::NO_SPEC
                && let Err(inner) = serde_path_to_error::deserialize::<_, K::Spec>(value)
            {
                return Err(decode_error(value, &Path::default(), &inner));
            }
            Err(decode_error(value, &Path::default(), &err))
        }
    }
}

fn decode_error(root: &Value, base: &Path, err: &serde_path_to_error::Error<serde_json::Error>) -> ErrorList {
    let mut path = base.clone();
    let mut bad = Some(root);
    for segment in err.path().iter() {
        match segment {
            serde_path_to_error::Segment::Map { key } => {
                path = path.child(key);
                bad = bad.and_then(|v| v.get(key));
            }
            serde_path_to_error::Segment::Seq { index } => {
                path = path.index(*index);
                bad = bad.and_then(|v| v.get(*index));
            }
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    let bad = bad.cloned().unwrap_or(Value::Null);
    let msg = err.inner().to_string();
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((variant, expected)) = rest.split_once('`')
    {
        if variant.is_empty() {
            return FieldError::required(&path, "").into();
        }
        let supported: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return FieldError::not_supported(&path, variant, &supported).into();
    }
    if msg.starts_with("invalid type") {
        return FieldError::type_invalid(&path, bad, msg).into();
    }
    if msg.starts_with("missing field") {
        let field = msg.trim_start_matches("missing field `").trim_end_matches('`');
        return FieldError::required(&path.child(field), "").into();
    }
    FieldError::invalid(&path, bad, msg).into()
}

fn default_value<K: ApiKind>(value: &mut Value) -> Result<(), ErrorList>
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    let mut k: K = decode(value)?;
    k.apply_defaults();
    *value = serde_json::to_value(&k)
        .map_err(|e| ErrorList::from(FieldError::internal(&Path::default(), e.to_string())))?;
    Ok(())
}

fn validate_create_value<K: ApiKind>(value: &Value) -> ErrorList
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    match decode::<K>(value) {
        Ok(k) => k.validate_create(),
        Err(errs) => errs,
    }
}

fn decode_pair<K: ApiKind>(new: &Value, old: &Value) -> Result<(K, K), ErrorList>
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    let new = decode::<K>(new)?;
    let old = decode::<K>(old).map_err(|errs| {
        ErrorList::from(FieldError::internal(
            &Path::default(),
            format!("the stored object does not decode: {errs}"),
        ))
    })?;
    Ok((new, old))
}

fn validate_update_value<K: ApiKind>(new: &Value, old: &Value) -> ErrorList
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    match decode_pair::<K>(new, old) {
        Ok((new, old)) => new.validate_update(&old),
        Err(errs) => errs,
    }
}

fn validate_status_update_value<K: ApiKind>(new: &Value, old: &Value) -> ErrorList
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    match decode_pair::<K>(new, old) {
        Ok((new, old)) => new.validate_status_update(&old),
        Err(errs) => errs,
    }
}

fn validate_delete_value<K: ApiKind>(value: &Value) -> ErrorList
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    // A stored object that no longer decodes must stay deletable.
    decode::<K>(value)
        .map(|k| k.validate_delete())
        .unwrap_or_default()
}

fn printer_cell_value<K: ApiKind>(column: &str, value: &Value) -> Option<String>
where
    <K as HasSpec>::Spec: DeserializeOwned + PartialEq,
{
    crate::printers::cell(&K::group(&()), &K::kind(&()), column, value)
}

/// Main-endpoint update of a kind with a status subresource: the status cannot be changed here, so the stored
/// status is carried over into `new` (kube's CRD strategy; upstream ironcore let some kinds overwrite status).
pub fn prepare_for_update(new: &mut Value, old: &Value) {
    if let Some(obj) = new.as_object_mut() {
        match old.get("status") {
            Some(status) => {
                obj.insert("status".to_owned(), status.clone());
            }
            None => {
                obj.remove("status");
            }
        }
    }
}

/// `/status` update: only `status` (and metadata) may change, so every other top-level field of `new` is reset to
/// the stored object's value (upstream ironcore let some kinds change spec through `/status`).
pub fn prepare_for_status_update(new: &mut Value, old: &Value) {
    let (Some(obj), Some(old_obj)) = (new.as_object_mut(), old.as_object()) else {
        return;
    };
    let keep = |k: &str| matches!(k, "status" | "metadata" | "apiVersion" | "kind");
    obj.retain(|k, _| keep(k));
    for (k, v) in old_obj {
        if !keep(k) {
            obj.insert(k.clone(), v.clone());
        }
    }
}
