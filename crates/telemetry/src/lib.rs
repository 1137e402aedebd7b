//! What every long-running ironnet component serves to operators: Prometheus metrics in the OpenMetrics text
//! format on `/metrics`, health endpoints (`/healthz`, `/livez`, `/readyz`) with checks the component registers,
//! and one log format switch.
//!
//! ```no_run
//! # async fn example(args: ironnet_telemetry::TelemetryArgs) -> Result<(), ironnet_telemetry::ServeError> {
//! let telemetry = ironnet_telemetry::Telemetry::new();
//! telemetry.register(|registry| { /* registry.register(...) */ });
//! telemetry.add_readiness_check("peers-connected", || Ok(()));
//! let endpoints = telemetry.serve(&args).await?; // binds what the flags ask for
//! # Ok(()) }
//! ```
//!
//! The flags are controller-runtime's: `--metrics-bind-address` and `--health-probe-bind-address`, where `0` (or an
//! empty value) turns an endpoint off and `:PORT` means every address. Both are off by default, because several
//! ironnet components often share one host (`ironnet up` runs them all in one process) and fixed default ports would
//! collide. Giving both flags the same address serves every path on one listener.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

pub use prometheus_client;

pub mod scrape;

/// The content type of `/metrics` for scrapers that ask for OpenMetrics (Prometheus does).
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of `/metrics` otherwise: Prometheus text 0.0.4, which `promtool check metrics`, curl users
/// and older scrapers read.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The telemetry flags every component takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Where to serve Prometheus metrics on `/metrics`, e.g. `:8080` or `127.0.0.1:8080`; `0` or empty: off.
    #[arg(long, default_value = "0", value_parser = parse_bind_address)]
    pub metrics_bind_address: BindAddress,
    /// Where to serve `/healthz`, `/livez` and `/readyz`, e.g. `:8081`; `0` or empty: off.
    #[arg(long, default_value = "0", value_parser = parse_bind_address)]
    pub health_probe_bind_address: BindAddress,
}

/// A listen address of controller-runtime's flag syntax: off, or a socket address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

/// Parses `0`/empty (off), `:PORT` (every address, IPv6 and IPv4) or `HOST:PORT`.
pub fn parse_bind_address(s: &str) -> Result<BindAddress, String> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(BindAddress(None));
    }
    let full = match s.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => s.to_owned(),
    };
    full.parse::<SocketAddr>()
        .map(|a| BindAddress(Some(a)))
        .map_err(|_| format!("invalid bind address {s:?}: expected 0, :PORT or HOST:PORT"))
}

/// The log format of the global `--log-format` flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default format).
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log collectors.
    Json,
}

/// Installs the process-wide tracing subscriber: `RUST_LOG` filter (default `info`), written to stderr in `format`.
/// Fails if a subscriber is already installed.
pub fn init_logging(format: LogFormat) -> Result<(), tracing_subscriber::util::TryInitError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    }
}

type Check = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

struct Inner {
    registry: Mutex<Registry>,
    readiness: Mutex<Vec<(String, Check)>>,
}

/// A component's metric registry and health checks. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checks: Vec<String> = self.lock_checks().iter().map(|(n, _)| n.clone()).collect();
        f.debug_struct("Telemetry")
            .field("readiness_checks", &checks)
            .finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

/// Binding an endpoint failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {what}: {source}")]
pub struct ServeError {
    /// `metrics` or `health probes`.
    pub what: &'static str,
    /// The address asked for.
    pub addr: SocketAddr,
    /// The bind error.
    #[source]
    pub source: std::io::Error,
}

/// Where the endpoints ended up (useful with port 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// The address serving `/metrics`, if enabled.
    pub metrics: Option<SocketAddr>,
    /// The address serving `/healthz`, `/livez`, `/readyz`, if enabled.
    pub health: Option<SocketAddr>,
}

impl Telemetry {
    /// An empty registry and no readiness checks (so `/readyz` answers ok).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
                readiness: Mutex::new(Vec::new()),
            }),
        }
    }

    fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while registering leaves at worst a partly registered component: still worth serving.
        self.inner.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_checks(&self) -> MutexGuard<'_, Vec<(String, Check)>> {
        self.inner.readiness.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers metrics: `f` gets the registry (metrics may be registered at any time, also after serving).
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.lock_registry());
    }

    /// Adds a readiness check: `/readyz` answers 200 only while every check returns `Ok`. The `Err` text is shown
    /// by `/readyz?verbose`. Checks run on every probe, so they must be cheap and must not block.
    pub fn add_readiness_check(
        &self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.lock_checks().push((name.into(), Box::new(check)));
    }

    /// The current metrics in the OpenMetrics text format (what `/metrics` returns).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in a collector, which then gets an
        // empty page rather than a half-written one.
        if prometheus_client::encoding::text::encode(&mut out, &self.lock_registry()).is_err() {
            out.clear();
        }
        out
    }

    /// The current metrics in Prometheus text format 0.0.4: the OpenMetrics page with counter families named by
    /// their `_total` samples (OpenMetrics names the family without the suffix) and without the `# EOF` marker.
    pub fn encode_prometheus_text(&self) -> String {
        openmetrics_to_prometheus_text(&self.encode())
    }

    /// Runs the readiness checks: `(all passed, one line per check as kube-apiserver's /readyz?verbose prints)`.
    pub fn readiness(&self) -> (bool, String) {
        let mut ok = true;
        let mut report = String::new();
        for (name, check) in self.lock_checks().iter() {
            match check() {
                Ok(()) => report.push_str(&format!("[+]{name} ok\n")),
                Err(reason) => {
                    ok = false;
                    report.push_str(&format!("[-]{name} failed: {reason}\n"));
                }
            }
        }
        (ok, report)
    }

    /// The router of every endpoint (`/metrics`, `/healthz`, `/livez`, `/readyz`), to mount elsewhere.
    pub fn router(&self) -> Router {
        self.metrics_router().merge(self.health_router())
    }

    fn metrics_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    fn health_router(&self) -> Router {
        Router::new()
            .route("/healthz", get(live))
            .route("/livez", get(live))
            .route("/readyz", get(ready))
            .with_state(self.clone())
    }

    /// Binds the endpoints the flags enable and serves them until the process ends. Returns where they listen.
    pub async fn serve(&self, args: &TelemetryArgs) -> Result<Endpoints, ServeError> {
        let (metrics, health) = (args.metrics_bind_address.0, args.health_probe_bind_address.0);
        let mut endpoints = Endpoints::default();
        if let (Some(m), Some(h)) = (metrics, health)
            && m == h
            && m.port() != 0
        {
            let addr = bind_and_serve("metrics and health probes", m, self.router()).await?;
            return Ok(Endpoints {
                metrics: Some(addr),
                health: Some(addr),
            });
        }
        if let Some(addr) = metrics {
            endpoints.metrics = Some(bind_and_serve("metrics", addr, self.metrics_router()).await?);
        }
        if let Some(addr) = health {
            endpoints.health = Some(bind_and_serve("health probes", addr, self.health_router()).await?);
        }
        Ok(endpoints)
    }
}

async fn bind_and_serve(
    what: &'static str,
    addr: SocketAddr,
    router: Router,
) -> Result<SocketAddr, ServeError> {
    let err = |source| ServeError { what, addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    tracing::info!(%bound, "serving {what}");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "{what} endpoint stopped");
        }
    });
    Ok(bound)
}

async fn metrics(State(t): State<Telemetry>, headers: axum::http::HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], t.encode()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE)],
            t.encode_prometheus_text(),
        )
            .into_response()
    }
}

/// Rewrites an OpenMetrics page (as prometheus-client writes it) into Prometheus text format 0.0.4.
pub fn openmetrics_to_prometheus_text(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut pending_help: Option<&str> = None;
    for line in page.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(help) = pending_help.replace(rest) {
                out.push_str("# HELP ");
                out.push_str(help);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some(help) = pending_help.take() {
                let text = help.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(help) = pending_help.take() {
            out.push_str("# HELP ");
            out.push_str(help);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Liveness: the process answers, so its runtime is not wedged.
async fn live() -> &'static str {
    "ok"
}

async fn ready(
    State(t): State<Telemetry>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let (ok, report) = t.readiness();
    let verbose = query.contains_key("verbose");
    match (ok, verbose) {
        (true, false) => (StatusCode::OK, "ok".to_owned()).into_response(),
        (true, true) => (StatusCode::OK, format!("{report}readyz check passed\n")).into_response(),
        (false, _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{report}readyz check failed\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_renamed_for_the_prometheus_text_format() {
        let page = "# HELP a_things Things.\n# TYPE a_things counter\na_things_total{x=\"1\"} 3\n\
                    # HELP b Level.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(page),
            "# HELP a_things_total Things.\n# TYPE a_things_total counter\na_things_total{x=\"1\"} 3\n\
             # HELP b Level.\n# TYPE b gauge\nb 1\n"
        );
    }

    #[test]
    fn bind_addresses_follow_controller_runtime() {
        assert_eq!(parse_bind_address("0"), Ok(BindAddress(None)));
        assert_eq!(parse_bind_address(""), Ok(BindAddress(None)));
        assert_eq!(
            parse_bind_address(":8080"),
            Ok(BindAddress(Some("[::]:8080".parse().unwrap())))
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:9"),
            Ok(BindAddress(Some("127.0.0.1:9".parse().unwrap())))
        );
        assert_eq!(
            parse_bind_address("localhost"),
            Err("invalid bind address \"localhost\": expected 0, :PORT or HOST:PORT".into())
        );
    }
}
