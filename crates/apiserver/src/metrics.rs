//! Request metrics under kube-apiserver's names, served on the API server's own `/metrics` (authorized like
//! kube-apiserver's, as the non-resource URL `/metrics`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `apiserver_request_total` | counter | `verb`, `dry_run`, `group`, `version`, `resource`, `subresource`, `scope`, `component`, `code` |
//! | `apiserver_request_duration_seconds` | histogram | `verb`, `dry_run`, `group`, `version`, `resource`, `subresource`, `scope`, `component` |
//! | `apiserver_current_inflight_requests` | gauge | `request_kind` (`readOnly`, `mutating`) |
//! | `apiserver_longrunning_requests` | gauge | `verb`, `group`, `version`, `resource`, `subresource`, `scope`, `component` |
//! | `apiserver_registered_watchers` | gauge | `group`, `version`, `kind` |
//!
//! Verbs are kube-apiserver's: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`,
//! `DELETECOLLECTION`; a non-resource request reports its HTTP method and empty resource labels. The duration of a
//! watch is not observed (kube-apiserver excludes long-running requests too); it is counted when answered and
//! held in `apiserver_longrunning_requests` until its stream ends.
//!
//! Counting costs a request a few atomic operations: the server resolves the request's kind anyway, and the
//! handles of each (kind, verb, scope, subresource, dry run) are created on the route's first request and then
//! found by indexing a per-kind table. Only requests refused before their kind is
//! known (401, 429, unknown paths) and non-resource requests build their labels per request.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::registry::RegisteredKind;

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

/// Label set `{group, version, kind}` of `apiserver_registered_watchers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// The API group (empty for the core group).
    pub group: String,
    /// The API version.
    pub version: String,
    /// The kind (`Network`).
    pub kind: String,
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

type IntGauge = Gauge<i64, AtomicI64>;

/// kube-apiserver's verbs of resource requests, in the order of [`Route`]'s table index.
const VERBS: [&str; 9] = [
    "GET",
    "LIST",
    "WATCH",
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];
/// Request scopes, in the order of [`Route`]'s table index.
const SCOPES: [&str; 3] = ["resource", "namespace", "cluster"];
/// Routes per kind: verb × scope × (status subresource or not) × (dry run or not).
const ROUTES_PER_KIND: usize = VERBS.len() * SCOPES.len() * 2 * 2;
/// Status codes whose counters a route keeps ready-made; any other code goes through the family's map.
const CODES: [u16; 20] = [
    200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 429, 500, 503, 504, 304,
];

/// The metric handles of one (kind, verb, scope, subresource, dry run): resolved once, then every request on
/// the route is counted with atomic operations only (no label strings built, no map locked).
#[derive(Debug)]
pub struct RouteHandles {
    labels: RequestLabels,
    duration: Histogram,
    longrunning: IntGauge,
    /// The kind's `apiserver_registered_watchers` series (WATCH routes only).
    watchers: Option<IntGauge>,
    codes: [OnceLock<Counter>; CODES.len()],
    requests: Family<CodeLabels, Counter>,
}

impl RouteHandles {
    /// Counts one answered request; `seconds` is observed unless the request is long-running.
    pub fn observe(&self, code: u16, seconds: Option<f64>) {
        if let Some(s) = seconds {
            self.duration.observe(s);
        }
        match CODES.iter().position(|c| *c == code) {
            Some(i) => self.codes[i]
                .get_or_init(|| {
                    self.requests
                        .get_or_create(&CodeLabels {
                            request: self.labels.clone(),
                            code: code.to_string(),
                        })
                        .clone()
                })
                .inc(),
            None => self
                .requests
                .get_or_create(&CodeLabels {
                    request: self.labels.clone(),
                    code: code.to_string(),
                })
                .inc(),
        };
    }

    /// Marks a watch on this route active until the guard drops.
    pub fn long_running(&self) -> WatchGuard {
        self.longrunning.inc();
        if let Some(w) = &self.watchers {
            w.inc();
        }
        WatchGuard {
            longrunning: self.longrunning.clone(),
            watchers: self.watchers.clone(),
        }
    }
}

/// What the server resolved about a resource request, enough to pick its [`RouteHandles`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route<'a> {
    /// The kind served.
    pub(crate) kind: &'a Arc<RegisteredKind>,
    /// The HTTP method.
    pub(crate) method: &'a http::Method,
    /// Whether the request names one object.
    pub(crate) named: bool,
    /// Whether the request is for one namespace.
    pub(crate) namespaced: bool,
    /// Whether the request is for the `status` subresource.
    pub(crate) status: bool,
    /// Whether the request is a watch.
    pub(crate) watch: bool,
    /// Whether the request is a dry run.
    pub(crate) dry_run: bool,
    /// The request's content type.
    pub(crate) content_type: Option<&'a str>,
}

impl Route<'_> {
    /// kube-apiserver's verb, as an index into [`VERBS`].
    fn verb(&self) -> usize {
        let apply = || {
            self.content_type
                .is_some_and(|c| c.starts_with("application/apply-patch"))
        };
        match (self.method.as_str(), self.named) {
            ("GET", _) if self.watch => 2,
            ("GET", true) => 0,
            ("GET", false) => 1,
            ("POST", _) => 3,
            ("PUT", _) => 4,
            ("PATCH", _) if apply() => 6,
            ("PATCH", _) => 5,
            ("DELETE", true) => 7,
            ("DELETE", false) => 8,
            // Methods without a kube verb (HEAD, OPTIONS, ...) are rare and answered 405: the slow path.
            _ => usize::MAX,
        }
    }

    fn scope(&self) -> usize {
        if self.named {
            0
        } else if self.namespaced {
            1
        } else {
            2
        }
    }
}

/// One kind's routes, created on first use.
#[derive(Debug)]
struct KindRoutes {
    kind: Arc<RegisteredKind>,
    routes: Box<[OnceLock<Arc<RouteHandles>>]>,
}

/// One API server's request metric families.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: Family<CodeLabels, Counter>,
    durations: Family<RequestLabels, Histogram, DurationBuckets>,
    inflight: Family<RequestKindLabel, IntGauge>,
    longrunning: Family<RequestLabels, IntGauge>,
    watchers: Family<KindLabels, IntGauge>,
    read_only: IntGauge,
    mutating: IntGauge,
    /// Per served kind, sorted by the address of its `Arc<RegisteredKind>` (looked up by binary search: the
    /// kinds are fixed when the server is built, so no lock is needed).
    kinds: Arc<[KindRoutes]>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new(std::iter::empty())
    }
}

impl RequestMetrics {
    /// Fresh families for a server serving `kinds`, with both in-flight series present at 0.
    pub fn new<'a>(kinds: impl IntoIterator<Item = &'a Arc<RegisteredKind>>) -> Self {
        let inflight: Family<RequestKindLabel, IntGauge> = Family::default();
        let kind_gauge = |kind: &str| {
            inflight
                .get_or_create(&RequestKindLabel {
                    request_kind: kind.to_owned(),
                })
                .clone()
        };
        let (read_only, mutating) = (kind_gauge("readOnly"), kind_gauge("mutating"));
        let mut kinds: Vec<KindRoutes> = kinds
            .into_iter()
            .map(|kind| KindRoutes {
                kind: Arc::clone(kind),
                routes: (0..ROUTES_PER_KIND).map(|_| OnceLock::new()).collect(),
            })
            .collect();
        kinds.sort_by_key(|k| Arc::as_ptr(&k.kind) as usize);
        RequestMetrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(DurationBuckets),
            inflight,
            longrunning: Family::default(),
            watchers: Family::default(),
            read_only,
            mutating,
            kinds: kinds.into(),
        }
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
        registry.register(
            "apiserver_registered_watchers",
            "Number of currently registered watchers for a given resources",
            self.watchers.clone(),
        );
    }

    /// Marks a non-long-running request in flight until the guard drops.
    pub fn in_flight(&self, mutating: bool) -> GaugeGuard {
        let gauge = if mutating { &self.mutating } else { &self.read_only };
        gauge.inc();
        GaugeGuard(gauge.clone())
    }

    /// The handles of a resource request's route (`None` for a method without a kube verb, or a kind this
    /// server was not built with). Created on the route's first request; later calls only index a table.
    pub(crate) fn route(&self, route: &Route<'_>) -> Option<Arc<RouteHandles>> {
        let verb = route.verb();
        if verb == usize::MAX {
            return None;
        }
        let address = Arc::as_ptr(route.kind) as usize;
        let kind = &self.kinds[self
            .kinds
            .binary_search_by_key(&address, |k| Arc::as_ptr(&k.kind) as usize)
            .ok()?];
        let index = ((verb * SCOPES.len() + route.scope()) * 2 + usize::from(route.status)) * 2
            + usize::from(route.dry_run);
        let handles = kind.routes[index].get_or_init(|| {
            let def = &kind.kind.def;
            let labels = RequestLabels {
                verb: VERBS[verb].to_owned(),
                dry_run: if route.dry_run { "All" } else { "" }.to_owned(),
                group: def.group.clone(),
                version: def.version.clone(),
                resource: def.plural.clone(),
                subresource: if route.status { "status" } else { "" }.to_owned(),
                scope: SCOPES[route.scope()].to_owned(),
                component: "apiserver".to_owned(),
            };
            let watchers = (verb == 2).then(|| {
                self.watchers
                    .get_or_create(&KindLabels {
                        group: def.group.clone(),
                        version: def.version.clone(),
                        kind: def.kind.clone(),
                    })
                    .clone()
            });
            Arc::new(RouteHandles {
                duration: self.durations.get_or_create(&labels).clone(),
                longrunning: self.longrunning.get_or_create(&labels).clone(),
                watchers,
                codes: std::array::from_fn(|_| OnceLock::new()),
                requests: self.requests.clone(),
                labels,
            })
        });
        Some(Arc::clone(handles))
    }

    /// Marks a long-running request (a watch) that has no resolved route active until the guard drops.
    pub fn long_running(&self, labels: &RequestLabels) -> WatchGuard {
        let gauge = self.longrunning.get_or_create(labels).clone();
        gauge.inc();
        WatchGuard {
            longrunning: gauge,
            watchers: None,
        }
    }

    /// Counts one answered request that has no resolved route (non-resource paths, requests refused before
    /// their kind was looked up); `seconds` is observed unless the request is long-running.
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
pub struct GaugeGuard(IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Decrements a watch's gauges when dropped (its stream ended).
#[derive(Debug)]
pub struct WatchGuard {
    longrunning: IntGauge,
    watchers: Option<IntGauge>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.longrunning.dec();
        if let Some(w) = &self.watchers {
            w.dec();
        }
    }
}

/// Whether a request is a watch (`GET` with `watch=true|1`), judged without parsing the whole query unless it
/// mentions `watch`.
pub(crate) fn is_watch(method: &http::Method, query: Option<&str>) -> bool {
    *method == http::Method::GET
        && query.is_some_and(|q| {
            q.contains("watch")
                && crate::request::Query::parse(Some(q))
                    .flag("watch")
                    .unwrap_or(false)
        })
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
