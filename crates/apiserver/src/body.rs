//! Request bodies as HTTP sees them: the media type, the size limit, and kube's protobuf (built-in
//! kinds only). JSON and YAML are decoded, with their repeated keys, by [`ironnet_structured::decode_body`].

use ironnet_structured::{BodyFormat, DecodedBody};
use serde_json::Value;

use crate::error::ApiError;

/// The largest accepted request body, like kube-apiserver (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The media type of a request body, without parameters, lowercased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON or YAML body with its repeated keys. Errors: 413 beyond [`MAX_BODY_BYTES`], else
/// 400 BadRequest with the parser's message.
pub fn decode(bytes: &[u8], format: BodyFormat) -> Result<DecodedBody, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    ironnet_structured::decode_body(bytes, format).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Decodes a protobuf body (`application/vnd.kubernetes.protobuf`) into the object's JSON form.
/// Bytes that are not a kube protobuf object, or name a kind without a protobuf form, are a 400
/// saying why; `what` names the expected kind in the message, as kube-apiserver's decoder does.
pub fn decode_protobuf(bytes: &[u8], what: &str) -> Result<Value, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    crate::protobuf::decode(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding request body as {what} from protobuf: {e}"
        ))
    })
}

/// Decodes a `DeleteOptions` body: JSON, or protobuf (what client-go's typed clients send for
/// built-in kinds).
pub fn decode_delete_options(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, ApiError> {
    if media_type(content_type) == crate::protobuf::MEDIA_TYPE {
        return decode_protobuf(bytes, "DeleteOptions");
    }
    Ok(decode(bytes, BodyFormat::Json)?.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    use ironnet_structured::Duplicates;

    #[test]
    fn finds_duplicates() {
        let d = decode(
            br#"{"spec": {"a": 1, "a": 2, "l": [{"x": 1, "x": 1}]}, "kind": "W"}"#,
            BodyFormat::Json,
        )
        .unwrap();
        assert_eq!(
            d.duplicates,
            Duplicates::Json(vec!["spec.a".into(), "spec.l[0].x".into()])
        );
        assert_eq!(d.value["spec"]["a"], 2);
    }

    #[test]
    fn yaml_and_errors() {
        let d = decode(b"kind: W\nspec:\n  size: 3\n", BodyFormat::Yaml).unwrap();
        assert_eq!(d.value["spec"]["size"], 3);
        let bad = |raw: &[u8], format| decode(raw, format).unwrap_err();
        assert_eq!(bad(b"{", BodyFormat::Json).code, 400);
        assert_eq!(bad(b"{} x", BodyFormat::Json).code, 400);
        let e = bad(b"a: [", BodyFormat::Yaml);
        assert_eq!(e.code, 400);
        assert!(
            e.message.starts_with("error converting YAML to JSON: "),
            "{}",
            e.message
        );
        assert_eq!(bad(&vec![b' '; MAX_BODY_BYTES + 1], BodyFormat::Json).code, 413);
    }

    proptest::proptest! {
        #[test]
        fn protobuf_decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut prefixed = b"k8s\0".to_vec();
            prefixed.extend_from_slice(&bytes);
            for input in [&bytes, &prefixed] {
                if let Err(e) = decode_protobuf(input, "Namespace") {
                    proptest::prop_assert_eq!(e.code, 400);
                }
            }
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), yaml: bool) {
            let _ = decode(&bytes, if yaml { BodyFormat::Yaml } else { BodyFormat::Json });
        }
    }
}
