//! Malformed or negative `limit` and `timeoutSeconds` are answered 400 naming the parameter.

use serde_json::json;

use crate::common::raw;
use crate::support::{WIDGETS, start};

#[tokio::test]
async fn invalid_limit_and_timeout_seconds_are_bad_requests() {
    let s = start(|_| {}).await;
    let cases = [
        (
            "?timeoutSeconds=-5",
            "timeoutSeconds: Invalid value: -5: must be greater than or equal to 0",
        ),
        (
            "?timeoutSeconds=abc",
            "timeoutSeconds: Invalid value: \"abc\": must be an integer",
        ),
        (
            "?limit=-1",
            "limit: Invalid value: -1: must be greater than or equal to 0",
        ),
        ("?limit=abc", "limit: Invalid value: \"abc\": must be an integer"),
        (
            "?watch=true&timeoutSeconds=-5",
            "timeoutSeconds: Invalid value: -5: must be greater than or equal to 0",
        ),
        (
            "?watch=true&timeoutSeconds=abc",
            "timeoutSeconds: Invalid value: \"abc\": must be an integer",
        ),
        (
            "?watch=true&limit=-1",
            "limit: Invalid value: -1: must be greater than or equal to 0",
        ),
    ];
    for collection in [WIDGETS, "/api/v1/namespaces"] {
        for (query, message) in cases {
            let path = format!("{collection}{query}");
            let (code, _, status) = raw(&s.api, "GET", &path, &[], "").await;
            assert_eq!(
                (code, status),
                (
                    400,
                    json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": message, "reason": "BadRequest", "code": 400
                    })
                ),
                "{path}"
            );
        }
    }
    // Collection deletes take the same list options.
    let (code, _, status) = raw(&s.api, "DELETE", &format!("{WIDGETS}?timeoutSeconds=-1"), &[], "").await;
    assert_eq!(
        (code, &status["message"]),
        (
            400,
            &json!("timeoutSeconds: Invalid value: -1: must be greater than or equal to 0")
        )
    );
    // Zero means "no limit" and "no timeout", as upstream.
    for q in ["?limit=0", "?timeoutSeconds=0", "?limit=1&timeoutSeconds=30"] {
        assert_eq!(
            raw(&s.api, "GET", &format!("{WIDGETS}{q}"), &[], "").await.0,
            200,
            "{q}"
        );
    }
}
