//! API errors rendered as Kubernetes `Status` objects, with kube-apiserver's codes, reasons and messages.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use ironnet_apimachinery::field::ErrorList;
use ironnet_store::StoreError;
use serde_json::{Value, json};

/// The group and resource an error is about, e.g. `widgets` in `test.ironnet.dev`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GroupResource {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// A group and resource.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// `resource.group`, or `resource` in the core group, as kube-apiserver prints it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// A failed API request: everything needed to render a `Status` with the right HTTP code.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `Status.details`, if any.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    fn gr_details(gr: &GroupResource, name: &str) -> Value {
        // kube's StatusDetails omits an empty group (the core API's).
        if gr.group.is_empty() {
            json!({"name": name, "kind": gr.resource})
        } else {
            json!({"name": name, "group": gr.group, "kind": gr.resource})
        }
    }

    /// 404: `widgets.test.ironnet.dev "x" not found`.
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", gr.qualified()),
        )
        .with_details(Self::gr_details(gr, name))
    }

    /// 409: `widgets.test.ironnet.dev "x" already exists`.
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", gr.qualified()),
        )
        .with_details(Self::gr_details(gr, name))
    }

    /// 409 Conflict with kube-apiserver's optimistic-concurrency message.
    pub fn conflict_modified(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict: `Operation cannot be fulfilled on <gr> "<name>": <why>`.
    pub fn conflict(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                gr.qualified()
            ),
        )
        .with_details(Self::gr_details(gr, name))
    }

    /// 422 Invalid: `Widget.test.ironnet.dev "x" is invalid: <errors>`, with one cause per field error.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &ErrorList) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.error_type.reason(), "message": e.body(), "field": e.field}))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {errors}"),
        )
        .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 403 Forbidden about one object.
    pub fn forbidden(gr: &GroupResource, name: &str, why: &str) -> Self {
        let subject = if name.is_empty() {
            gr.qualified()
        } else {
            format!("{} \"{name}\"", gr.qualified())
        };
        Self::new(403, "Forbidden", format!("{subject} is forbidden: {why}"))
            .with_details(Self::gr_details(gr, name))
    }

    /// 410 Expired (a compacted revision or an outdated continue token).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 410 Expired for a continue token whose revision was compacted.
    pub fn continue_expired() -> Self {
        Self::expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new \
             list without the continue parameter, or use the continue token in this response to retrieve the \
             remainder of the results. Continuing with the provided token results in an inconsistent list - \
             objects that were created, modified, or deleted between the time the first chunk was returned and \
             now may show up in the list.",
        )
    }

    /// 415 naming the accepted patch content types.
    pub fn unsupported_patch_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"reason": "UnsupportedMediaType", "message": content_type}]}))
    }

    /// 415 for a request body in a media type the server does not decode.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json, application/yaml (got {content_type:?})"
            ),
        )
    }

    /// 413 for bodies over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 413 with a specific message (e.g. a JSON patch that is too big to apply).
    pub fn entity_too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 422 without field causes, as kube-apiserver answers a patch that cannot be applied.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 429 from the in-flight limits, with kube-apiserver's message; the caller adds `Retry-After: 1`.
    pub fn too_many_requests() -> Self {
        Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .with_details(json!({"retryAfterSeconds": 1}))
    }

    /// 401 for a request without valid credentials (kube-apiserver says no more than this).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 with a ready-made message (non-resource requests, which name no group or resource).
    pub fn forbidden_message(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 406.
    pub fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "the server was unable to respond with a content type that the client supports",
        )
    }

    /// 404 for a path that names no resource.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 504 Timeout: the request did not complete in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// 504: the requested resourceVersion is newer than anything the server has.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}))
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 (the store is unreachable).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted {
                requested,
                compact_revision,
            } => ApiError::expired(format!(
                "too old resource version: {requested} ({compact_revision})"
            )),
            StoreError::FutureRevision { requested, current } => {
                ApiError::too_large_resource_version(requested, current)
            }
            StoreError::ValueTooLarge { size, limit } => ApiError::too_large(limit)
                .with_details(json!({"causes": [{"message": format!("object of {size} bytes")}]})),
            StoreError::Unavailable(m) => ApiError::unavailable(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_apimachinery::field::{FieldError, Path};

    #[test]
    fn conflict_message_matches_kube() {
        let e = ApiError::conflict_modified(&GroupResource::new("test.ironnet.dev", "widgets"), "x");
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on widgets.test.ironnet.dev \"x\": the object has been modified; please \
             apply your changes to the latest version and try again"
        );
        assert_eq!(e.code, 409);
        let s = e.to_status();
        assert_eq!(s["details"]["kind"], "widgets");
        assert_eq!(s["details"]["group"], "test.ironnet.dev");
    }

    #[test]
    fn invalid_lists_causes() {
        let errs: ErrorList = FieldError::required(&Path::new("spec").child("size"), "").into();
        let e = ApiError::invalid("test.ironnet.dev", "Widget", "w", &errs);
        assert_eq!(
            e.message,
            "Widget.test.ironnet.dev \"w\" is invalid: spec.size: Required value"
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "spec.size");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(s["code"], 422);
    }

    #[test]
    fn core_group_is_unqualified() {
        let e = ApiError::not_found(&GroupResource::new("", "namespaces"), "n");
        assert_eq!(e.message, "namespaces \"n\" not found");
    }
}
