//! PATCH: JSON merge patch, JSON patch (RFC 6902, including `test`), server-side apply, and
//! strategic merge patch only where a kind declares it equivalent to merge patch.

use http::StatusCode;
use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use ironnet_structured::{BodyFormat, Duplicates};
use serde_json::Value;

use super::write::Part;
use crate::error::ApiError;
use crate::meta;
use crate::request::FieldValidation;
use crate::server::{Call, Reply, Server};

/// Patch content types this server accepts for kinds without strategic merge patch.
pub(crate) const ACCEPTED_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// The most operations one JSON patch may have (kube-apiserver's limit; beyond it: 413).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes the `copy` operations of one JSON patch may copy in total (kube-apiserver's
/// `JSONPatchMaxCopyBytes`, 3 MiB; beyond it: 422). Copies that are removed again still count:
/// copying is what costs.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = crate::body::MAX_BODY_BYTES;

/// The largest object a patch may produce: what the store accepts in one transaction. Checked
/// before each operation of a JSON patch is applied, so a patch cannot allocate more than this
/// on the way to an object the store would refuse anyway.
pub const MAX_OBJECT_BYTES: usize = ironnet_store::MAX_TXN_BYTES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchType {
    Merge,
    Json,
    Apply,
}

impl Server {
    /// PATCH.
    pub(crate) async fn patch(&self, call: &Call) -> Result<Reply, ApiError> {
        let media = crate::body::media_type(call.content_type.as_deref());
        let patch_type = match media.as_str() {
            "application/merge-patch+json" => PatchType::Merge,
            "application/json-patch+json" => PatchType::Json,
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
            "application/strategic-merge-patch+json" if call.def().strategic_merge_patch => PatchType::Merge,
            other => {
                let mut accepted = ACCEPTED_PATCH_TYPES.to_vec();
                if call.def().strategic_merge_patch {
                    accepted.push("application/strategic-merge-patch+json");
                }
                return Err(ApiError::unsupported_patch_type(other, &accepted));
            }
        };
        let dry_run = call.query.dry_run()?;
        let validation = call.query.field_validation()?;
        if patch_type == PatchType::Apply {
            return self.apply(call, dry_run, validation).await;
        }
        if call.body.len() > crate::body::MAX_BODY_BYTES {
            return Err(ApiError::too_large(crate::body::MAX_BODY_BYTES));
        }
        let decoded = crate::body::decode(&call.body, BodyFormat::Json)?;
        let json_patch: Option<json_patch::Patch> = match patch_type {
            PatchType::Json => {
                let patch: json_patch::Patch = serde_json::from_value(decoded.value.clone())
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                if patch.0.len() > MAX_JSON_PATCH_OPERATIONS {
                    return Err(ApiError::entity_too_large(format!(
                        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                        patch.0.len()
                    )));
                }
                Some(patch)
            }
            _ => {
                if !decoded.value.is_object() {
                    return Err(ApiError::bad_request("merge patch must be a JSON object"));
                }
                None
            }
        };
        if patch_type == PatchType::Merge
            && media.contains("strategic")
            && contains_patch_directive(&decoded.value)
        {
            return Err(ApiError::bad_request(
                "strategic merge patch directives ($patch, $retainKeys, ...) are not supported for this kind",
            ));
        }
        let part = if call.is_status() {
            Part::Status
        } else {
            Part::Main
        };
        let name = call.name.clone().unwrap_or_default();
        // The closure below outlives the borrow of `call`; share the kind instead of cloning its definition
        // (whose OpenAPI schema made that clone a few percent of the control plane's CPU).
        let kind = std::sync::Arc::clone(&call.kind);
        let def = &kind.def;
        let mut warnings = Vec::new();
        let duplicates = decoded.duplicates.clone();
        let patch_value = decoded.value;
        let mut mutate = |current: &Value| -> Result<Value, ApiError> {
            let mut doc = current.clone();
            match &json_patch {
                Some(p) => apply_json_patch(&mut doc, &p.0, MAX_OBJECT_BYTES)?,
                None => json_patch::merge(&mut doc, &patch_value),
            }
            let (checked, w) = self.check_object(def, doc, &duplicates, validation)?;
            warnings = w;
            Ok(checked)
        };
        let updated = self
            .update_object(
                &call.kind,
                call.namespace.as_deref(),
                &name,
                part,
                dry_run,
                Some(&call.field_manager),
                &mut mutate,
            )
            .await?;
        let mut reply = Reply::new(StatusCode::OK, self.render_object(call, updated.object)?);
        reply.warnings = warnings;
        Ok(reply)
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    async fn apply(
        &self,
        call: &Call,
        dry_run: bool,
        validation: FieldValidation,
    ) -> Result<Reply, ApiError> {
        let manager = call.query.get("fieldManager").unwrap_or("").to_owned();
        if manager.is_empty() {
            let errs: ErrorList =
                FieldError::required(&Path::new("fieldManager"), "is required for apply patch").into();
            return Err(ApiError::invalid("meta.k8s.io", "PatchOptions", "", &errs));
        }
        let force = call.query.flag("force")?;
        let decoded = crate::body::decode(&call.body, BodyFormat::Yaml)?;
        let (applied, mut warnings) =
            self.check_object(call.def(), decoded.value, &Duplicates::None, validation)?;
        // kube-apiserver's applyPatcher checks the patch with yaml.UnmarshalStrict (JSON is YAML too),
        // so repeated keys are go-yaml's `line N: key "x" already set in map` whatever the encoding.
        match validation {
            FieldValidation::Strict if !decoded.duplicates.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "error strict decoding YAML: error converting YAML to JSON: {}",
                    decoded.duplicates.strict_errors().join(", ")
                )));
            }
            FieldValidation::Warn => warnings.extend(decoded.duplicates.warnings()),
            _ => {}
        }
        let name = call.name.clone().unwrap_or_default();
        if meta::name(&applied) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&applied)
            )));
        }
        let part = if call.is_status() {
            Part::Status
        } else {
            Part::Main
        };
        let key = call.def().key(call.namespace.as_deref(), &name);
        let ks = self.kind_schema(call.def());
        let sub = (part == Part::Status).then_some("status");
        for _ in 0..4 {
            let exists = self.store.get(&key, None).await?.is_some();
            if !exists {
                if part == Part::Status {
                    return Err(ApiError::not_found(&call.gr(), &name));
                }
                let mut obj = crate::apply::apply(
                    &ks,
                    None,
                    &applied,
                    &manager,
                    force,
                    None,
                    self.clock.now(),
                    &call.gr(),
                    &name,
                )?;
                meta::metadata_mut(&mut obj).remove("resourceVersion");
                match self
                    .create_object(&call.kind, call.namespace.as_deref(), obj, dry_run, None)
                    .await
                {
                    Ok(created) => {
                        let mut reply = Reply::new(StatusCode::CREATED, self.render_object(call, created)?);
                        reply.warnings = warnings;
                        return Ok(reply);
                    }
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    Err(e) => return Err(e),
                }
            }
            let gr = call.gr();
            let now = self.clock.now();
            let mut mutate = |current: &Value| -> Result<Value, ApiError> {
                crate::apply::apply(
                    &ks,
                    Some(current),
                    &applied,
                    &manager,
                    force,
                    sub,
                    now,
                    &gr,
                    &name,
                )
            };
            match self
                .update_object(
                    &call.kind,
                    call.namespace.as_deref(),
                    &name,
                    part,
                    dry_run,
                    None,
                    &mut mutate,
                )
                .await
            {
                Ok(updated) => {
                    let mut reply = Reply::new(StatusCode::OK, self.render_object(call, updated.object)?);
                    reply.warnings = warnings;
                    return Ok(reply);
                }
                Err(e) if e.reason == "NotFound" => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(
            &call.gr(),
            &name,
            "the object was concurrently created and deleted; please retry",
        ))
    }
}

/// Applies an RFC 6902 patch to `doc` one operation at a time, refusing before an operation
/// that would grow the document past `limit` bytes (413) or copy more than
/// [`MAX_JSON_PATCH_COPY_BYTES`] in total (422). Without these checks each `copy` of a list
/// into itself doubles it, and a 2.5 KB patch asks for terabytes. On error `doc` is left
/// half-patched; callers patch a copy.
///
/// The size kept is an upper bound of the document's JSON length: exact for values added,
/// replaced, copied and removed, plus each added member name with its punctuation; it never
/// needs a re-encoding of the whole document, so checking costs no more than the operations.
pub(crate) fn apply_json_patch(
    doc: &mut Value,
    ops: &[json_patch::PatchOperation],
    limit: usize,
) -> Result<(), ApiError> {
    use json_patch::PatchOperation as O;
    let mut size = json_len(doc);
    let mut copied = 0usize;
    for (i, op) in ops.iter().enumerate() {
        let at = |path: &json_patch::jsonptr::Pointer| doc.pointer(path.as_str()).map_or(0, json_len);
        let (grows, shrinks) = match op {
            // Adding to an object member that exists replaces it; in an array it inserts.
            O::Add(o) => {
                let replaces = o
                    .path
                    .parent()
                    .and_then(|parent| doc.pointer(parent.as_str()))
                    .is_some_and(Value::is_object);
                (
                    json_len(&o.value) + member_len(&o.path),
                    if replaces { at(&o.path) } else { 0 },
                )
            }
            O::Replace(o) => (json_len(&o.value), at(&o.path)),
            O::Remove(o) => (0, at(&o.path)),
            O::Move(o) => (member_len(&o.path), 0),
            O::Copy(o) => {
                let n = at(&o.from);
                copied += n;
                if copied > MAX_JSON_PATCH_COPY_BYTES {
                    return Err(ApiError::unprocessable(format!(
                        "Unable to complete the copy, the accumulated size increase of copy is {copied}, \
                         exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                    )));
                }
                (n + member_len(&o.path), 0)
            }
            O::Test(_) => (0, 0),
        };
        let next = (size + grows).saturating_sub(shrinks);
        if next > limit {
            return Err(ApiError::entity_too_large(format!(
                "Request entity too large: operation {i} of the JSON patch grows the object past the limit of \
                 {limit} bytes"
            )));
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(op)).map_err(|e| {
            ApiError::unprocessable(format!(
                "the server rejected our request due to an error in our request: operation '/{i}' failed at path \
                 '{}': {}",
                e.path, e.kind
            ))
        })?;
        size = next;
    }
    Ok(())
}

/// The length of `v` encoded as JSON.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a Value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// An upper bound of what adding at `path` costs besides the value: the member name, its
/// quotes, the colon and a comma.
fn member_len(path: &json_patch::jsonptr::Pointer) -> usize {
    path.last().map_or(0, |t| t.encoded().len()) + 4
}

fn contains_patch_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || contains_patch_directive(v)),
        Value::Array(a) => a.iter().any(contains_patch_directive),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ops(v: Value) -> Vec<json_patch::PatchOperation> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn replacing_values_does_not_count_as_growth() {
        let big = "x".repeat(1000);
        let mut doc = json!({"a": big, "l": []});
        let limit = 3000;
        // Ten times 1 KB over the same member, by add and by replace: the document stays ~1 KB.
        let mut patch = Vec::new();
        for i in 0..5 {
            patch.push(json!({"op": "add", "path": "/a", "value": format!("{i}{big}")}));
            patch.push(json!({"op": "replace", "path": "/a", "value": big}));
        }
        apply_json_patch(&mut doc, &ops(Value::Array(patch)), limit).unwrap();
        assert_eq!(doc["a"], json!(big));
        // Inserting into a list, and a new member, do grow it.
        let e = apply_json_patch(
            &mut doc,
            &ops(json!([
                {"op": "add", "path": "/l/0", "value": big},
                {"op": "add", "path": "/b", "value": big},
            ])),
            limit,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                413,
                "Request entity too large: operation 1 of the JSON patch grows the object past the limit of 3000 bytes"
            )
        );
    }

    #[test]
    fn failed_operations_name_their_index() {
        let mut doc = json!({"a": 1});
        let e = apply_json_patch(
            &mut doc,
            &ops(json!([{"op": "test", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}])),
            1000,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                422,
                "the server rejected our request due to an error in our request: operation '/1' failed at path \
                 '/b': path is invalid"
            )
        );
    }
}
