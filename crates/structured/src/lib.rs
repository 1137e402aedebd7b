//! Request-body decoding, the structural-schema check, server-side apply and `managedFields` for
//! ironnet's API server: pure functions over `serde_json::Value`, no I/O.
//!
//! - [`decode_body`] decodes JSON and YAML request bodies and reports repeated keys ([`Duplicates`])
//!   the way kube-apiserver's strict decoding does, per encoding.
//! - [`prune_unknown_fields`] and [`validate_against_schema`] check an object against its CRD's
//!   OpenAPI v3 schema: unknown fields, types, `required`, `enum`.
//! - [`Schema`] is the structural schema server-side apply merges with: the merge semantics of
//!   lists and maps (`x-kubernetes-list-type`, ...), built from the same OpenAPI schema.
//! - [`FieldSet`] is structured-merge-diff's set of field paths, convertible to and from the
//!   FieldsV1 JSON stored in `metadata.managedFields`.
//! - [`apply`] implements server-side apply (including kubectl's upgrade path from client-side
//!   apply); [`update_managed_fields`] keeps managedFields up to date for every other write.
//!
//! The algorithms follow `sigs.k8s.io/structured-merge-diff` (v4/v6) and kube-apiserver's
//! `managedfields` package; `docs/server-side-apply.md` lists where they differ.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod apply;
mod body;
mod fieldsv1;
mod last_applied;
mod managers;
mod path;
mod schema;
mod set;
mod structural;
mod typed;

pub use apply::{
    ApplyError, ApplyRequest, ApplyResult, BEFORE_FIRST_APPLY_MANAGER, Conflict, UpdateError, UpdateRequest,
    apply, managed_fields_for_update, reset_fields, set_managed_fields, try_update_managed_fields,
    update_managed_fields,
};
pub use body::{
    BodyError, BodyFormat, DecodedBody, Duplicates, YamlDuplicate, decode_body, duplicate_field_message,
};
pub use fieldsv1::{FieldsV1Error, parse_path_element, path_element_key};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
pub use last_applied::{KUBECTL_MANAGER, LAST_APPLIED_ANNOTATION};
pub use managers::{
    ANCIENT_CHANGES_MANAGER, FIELD_MANAGER_MAX_LENGTH, MAX_UPDATE_MANAGERS, ManagedFieldsError, Operation,
    default_field_manager, validate_field_manager,
};
pub use path::{FieldPath, PathElement, compare_values, values_equal};
pub use schema::{Schema, SchemaError};
pub use set::FieldSet;
pub use structural::{prune_unknown_fields, unknown_field_message, validate_against_schema};
pub use typed::TypedError;
