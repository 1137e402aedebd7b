//! Re-encodes finished JSON responses as protobuf when the client prefers it.

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use http_body_util::BodyExt;
use serde_json::Value;

use super::{MEDIA_TYPE, Preference};
use crate::error::ApiError;

/// The response for a client with protobuf preference `pref`: a complete JSON object response
/// (objects, lists, `Status` errors) whose kind has a protobuf form is re-encoded; otherwise the
/// JSON stays, except that a client accepting only protobuf gets 406. Streaming responses
/// (watches, which encode their own frames) and other media types pass through.
pub(crate) async fn respond(pref: Preference, resp: Response) -> Response {
    // A 406 means negotiation failed: kube-apiserver writes that error in JSON, its default.
    if pref == Preference::No || resp.status() == http::StatusCode::NOT_ACCEPTABLE {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct == "application/json");
    if !is_json || resp.body().size_hint().exact().is_none() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await else {
        return ApiError::internal("reading the response body failed").into_response();
    };
    let bytes = collected.to_bytes();
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| super::encode(&v));
    match encoded {
        Some(Ok(pb)) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
            Response::from_parts(parts, Body::from(pb))
        }
        Some(Err(e)) => ApiError::internal(e.to_string()).into_response(),
        None if pref == Preference::Only => ApiError::not_acceptable().into_response(),
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}
