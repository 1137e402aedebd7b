//! PATCH: JSON merge patch, JSON patch (RFC 6902, including `test`), server-side apply, and
//! strategic merge patch only where a kind declares it equivalent to merge patch.

use http::StatusCode;
use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
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
        let decoded = crate::body::decode_json(&call.body)?;
        let json_patch: Option<json_patch::Patch> = match patch_type {
            PatchType::Json => Some(
                serde_json::from_value(decoded.value.clone())
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
            ),
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
                Some(p) => json_patch::patch(&mut doc, p).map_err(|e| ApiError {
                    code: 422,
                    reason: "Invalid".into(),
                    message: format!("the server rejected our request due to an error in our request: {e}"),
                    details: None,
                })?,
                None => json_patch::merge(&mut doc, &patch_value),
            }
            let (checked, w) = self.check_object(def, doc, duplicates.clone(), validation)?;
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
        let decoded = crate::body::decode(&call.body, true)?;
        let (applied, warnings) =
            self.check_object(call.def(), decoded.value, decoded.duplicates, validation)?;
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

fn contains_patch_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || contains_patch_directive(v)),
        Value::Array(a) => a.iter().any(contains_patch_directive),
        _ => false,
    }
}
