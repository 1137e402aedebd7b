//! The topology page of ironnet: `GET /ui/` and its assets, compiled into the binary.
//!
//! The page is plain HTML, CSS and ES modules (no framework, no build step): it lists and
//! watches the tenant API (`networking.ironcore.dev`) and polls `/metrics` from the browser,
//! with the browser's own credentials, against the same origin that served it. The assets carry
//! no data, so they are served without authentication; every request for data goes through
//! the API server's authentication and authorization like any other client's.
//!
//! ```
//! let app: axum::Router = ironnet_ui::router();
//! # let _ = app;
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

/// The path prefix the page is served under.
pub const PREFIX: &str = "/ui";

/// One file of the page.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file name below `/ui/` (`index.html` is also served as `/ui/`).
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, as committed in `crates/ui/assets/`.
    pub body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../assets/", $name)),
        }
    };
}

/// Every file of the page.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("informer.js", "text/javascript; charset=utf-8"),
    asset!("metrics.js", "text/javascript; charset=utf-8"),
    asset!("topology.js", "text/javascript; charset=utf-8"),
    asset!("view.js", "text/javascript; charset=utf-8"),
];

/// The Content-Security-Policy of every asset: scripts, styles and requests only from the
/// origin that served the page, so a name or label shown on the page can never run as code,
/// and the page cannot be framed (clickjacking) or send data elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The asset named `name`, if the page has one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The routes of the page, to merge into the API server's router: `/ui` redirects to `/ui/`,
/// `/ui/` is the page, `/ui/<file>` its assets; any other name below `/ui/` is 404.
/// `GET` and `HEAD` only (others get 405).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PREFIX, get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(asset) = asset(name) else {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    let mut resp = asset.body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The binary is the version: a browser must not keep an older binary's modules.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(method: &str, path: &str) -> (StatusCode, http::HeaderMap, String) {
        let app: Router = router();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_page_and_each_asset_are_served_with_their_type_and_policy() {
        let (status, headers, body) = get("GET", "/ui/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(body, asset("index.html").unwrap().body);
        for asset in ASSETS {
            let (status, headers, body) = get("GET", &format!("/ui/{}", asset.name)).await;
            assert_eq!(status, StatusCode::OK, "{}", asset.name);
            assert_eq!(
                headers[header::CONTENT_TYPE],
                asset.content_type,
                "{}",
                asset.name
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
            assert_eq!(body, asset.body);
        }
    }

    #[tokio::test]
    async fn bare_prefix_redirects_and_unknown_names_and_methods_are_refused() {
        let (status, headers, _) = get("GET", "/ui").await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(headers[header::LOCATION], "/ui/");
        let (status, _, body) = get("GET", "/ui/secret.key").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, "404 page not found\n");
        // Paths that climb out of the asset table are just unknown names.
        let (status, _, _) = get("GET", "/ui/..%2FCargo.toml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get("POST", "/ui/app.js").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _, body) = get("HEAD", "/ui/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
    }

    /// Every module the page loads (`<script src>` and each `import … from './x.js'`) is one the
    /// binary serves, so a renamed file cannot leave the page half-loaded.
    #[test]
    fn every_referenced_module_is_served() {
        let mut referenced = Vec::new();
        for asset in ASSETS {
            for quote in ['\'', '"'] {
                for part in asset.body.split(&format!("{quote}./")).skip(1) {
                    if let Some(end) = part.find(quote) {
                        referenced.push((asset.name, part[..end].to_owned()));
                    }
                }
            }
        }
        assert!(referenced.iter().any(|(_, r)| r == "app.js"), "{referenced:?}");
        assert!(
            referenced.iter().any(|(_, r)| r == "informer.js"),
            "{referenced:?}"
        );
        for (from, name) in &referenced {
            assert!(
                asset(name).is_some(),
                "{from} refers to ./{name}, which is not served"
            );
        }
        for asset in ASSETS.iter().filter(|a| a.name != "index.html") {
            assert!(
                referenced.iter().any(|(_, r)| r == asset.name),
                "{} is served but nothing loads it",
                asset.name
            );
        }
    }
}
