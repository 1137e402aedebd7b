//! Request metrics under kube-apiserver's names, served on the API server's own `/metrics` (authorized like
//! kube-apiserver's, as the non-resource URL `/metrics`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `apiserver_request_total` | counter | `verb`, `dry_run`, `group`, `version`, `resource`, `subresource`, `scope`, `component`, `code` |
//! | `apiserver_request_duration_seconds` | histogram | `verb`, `dry_run`, `group`, `version`, `resource`, `subresource`, `scope`, `component` |
//! | `apiserver_current_inflight_requests` | gauge | `request_kind` (`readOnly`, `mutating`) |
//! | `apiserver_longrunning_requests` | gauge | `verb`, `group`, `version`, `resource`, `subresource`, `scope`, `component` |
//!
//! Verbs are kube-apiserver's: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`,
//! `DELETECOLLECTION`; a non-resource request reports its HTTP method and empty resource labels. The duration of a
//! watch is not observed (kube-apiserver excludes long-running requests too); it is counted when answered and
//! held in `apiserver_longrunning_requests` until its stream ends.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What identifies a request in the request metrics (all but the response code).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// kube-apiserver's verb (`LIST`, `WATCH`, `POST`, ...).
    pub verb: String,
    /// `All` for a dry run, else empty.
    pub dry_run: String,
    /// The API group (empty for the core group and non-resource requests).
    pub group: String,
    /// The API version.
    pub version: String,
    /// The resource's plural name.
    pub resource: String,
    /// The subresource (`status`) or empty.
    pub subresource: String,
    /// `resource` (one named object), `namespace`, `cluster`, or empty for non-resource requests.
    pub scope: String,
    /// Always `apiserver`.
    pub component: String,
}

/// [`RequestLabels`] with the response code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CodeLabels {
    #[prometheus(flatten)]
    request: RequestLabels,
    /// The HTTP status code answered.
    code: String,
}

/// Label set `{request_kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestKindLabel {
    /// `readOnly` or `mutating`.
    pub request_kind: String,
}

/// kube-apiserver's request duration buckets.
#[derive(Debug, Clone, Copy)]
pub struct DurationBuckets;

impl MetricConstructor<Histogram> for DurationBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new([
            0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0,
            15.0, 20.0, 30.0, 45.0, 60.0,
        ])
    }
}

/// One API server's request metric families.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: Family<CodeLabels, Counter>,
    durations: Family<RequestLabels, Histogram, DurationBuckets>,
    inflight: Family<RequestKindLabel, Gauge<i64, AtomicI64>>,
    longrunning: Family<RequestLabels, Gauge<i64, AtomicI64>>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestMetrics {
    /// Fresh families with both in-flight series present at 0.
    pub fn new() -> Self {
        let m = RequestMetrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(DurationBuckets),
            inflight: Family::default(),
            longrunning: Family::default(),
        };
        for kind in ["readOnly", "mutating"] {
            let _ = m.inflight.get_or_create(&RequestKindLabel {
                request_kind: kind.to_owned(),
            });
        }
        m
    }

    /// Adds the families to `registry` (prometheus-client appends `_total` to the counter).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            self.requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            self.durations.clone(),
        );
        registry.register(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind",
            self.inflight.clone(),
        );
        registry.register(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component",
            self.longrunning.clone(),
        );
    }

    /// Marks a non-long-running request in flight until the guard drops.
    pub fn in_flight(&self, mutating: bool) -> GaugeGuard {
        let kind = if mutating { "mutating" } else { "readOnly" };
        let gauge = self
            .inflight
            .get_or_create(&RequestKindLabel {
                request_kind: kind.to_owned(),
            })
            .clone();
        gauge.inc();
        GaugeGuard(gauge)
    }

    /// Marks a long-running request (a watch) active until the guard drops.
    pub fn long_running(&self, labels: &RequestLabels) -> GaugeGuard {
        let gauge = self.longrunning.get_or_create(labels).clone();
        gauge.inc();
        GaugeGuard(gauge)
    }

    /// Counts one answered request; `seconds` is observed unless the request is long-running.
    pub fn observe(&self, labels: RequestLabels, code: u16, seconds: Option<f64>) {
        if let Some(s) = seconds {
            self.durations.get_or_create(&labels).observe(s);
        }
        self.requests
            .get_or_create(&CodeLabels {
                request: labels,
                code: code.to_string(),
            })
            .inc();
    }
}

/// Decrements its gauge when dropped (the request ended, however it ended).
#[derive(Debug)]
pub struct GaugeGuard(Gauge<i64, AtomicI64>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// kube-apiserver's verb and labels of a request.
pub(crate) fn classify(
    method: &http::Method,
    path: &str,
    query: &crate::request::Query,
    content_type: Option<&str>,
) -> (RequestLabels, bool) {
    let dry_run = if query.get("dryRun").is_some_and(|v| !v.is_empty()) {
        "All"
    } else {
        ""
    };
    let watch = *method == http::Method::GET && query.flag("watch").unwrap_or(false);
    let mut labels = RequestLabels {
        verb: method.as_str().to_owned(),
        dry_run: dry_run.to_owned(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        scope: String::new(),
        component: "apiserver".to_owned(),
    };
    if let Some(crate::request::Target::Resource(r)) = crate::request::parse_path(path) {
        let named = r.name.is_some();
        labels.verb = match (method.as_str(), named) {
            ("GET", _) if watch => "WATCH",
            ("GET", false) => "LIST",
            ("DELETE", false) => "DELETECOLLECTION",
            ("PATCH", _) if content_type.is_some_and(|c| c.starts_with("application/apply-patch")) => "APPLY",
            (m, _) => m,
        }
        .to_owned();
        labels.scope = if named {
            "resource"
        } else if r.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        }
        .to_owned();
        labels.group = r.group.clone();
        labels.version = r.version.clone();
        labels.resource = r.plural.clone();
        labels.subresource = r.subresource.clone().unwrap_or_default();
    } else if watch {
        labels.verb = "WATCH".to_owned();
    }
    (labels, watch)
}

/// The metrics page in Prometheus' text format.
pub(crate) fn page(registry: &Registry) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (
            [(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            // prometheus-client writes OpenMetrics; Prometheus' text format is what kube-apiserver serves.
            ironnet_telemetry::openmetrics_to_prometheus_text(&text),
        )
            .into_response(),
        Err(e) => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response(),
    }
}
