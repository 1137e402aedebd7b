//! The server: builder, shared state, HTTP routing and response encoding.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use ironnet_store::Store;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::auth::{Attributes, Authentication, Authenticator, Authorizer, Decision, UserInfo};
use crate::definition::ResourceDefinition;
use crate::error::ApiError;
use crate::meta::{SharedClock, SystemClock};
use crate::registry::{RegisteredKind, Registry, RegistryError};
use crate::request::{Output, Query, Target, negotiate, parse_path};
use crate::strategy::Strategy;

/// Tunables of the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How often a watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How often admission hooks are re-run when a side-effect compare fails.
    pub max_admission_retries: usize,
    /// Namespaces created at startup.
    pub initial_namespaces: Vec<String>,
    /// How often the garbage collector and namespace controller rescan everything (besides reacting to events).
    pub resync_interval: Duration,
    /// Namespaces that cannot be deleted (403, as kube-apiserver's NamespaceLifecycle admission answers).
    pub immortal_namespaces: Vec<String>,
    /// How long a client may take to send a request's headers, and how long an HTTP/1 connection
    /// may wait for its next request, before the server closes it (Go's `ReadHeaderTimeout` in
    /// kube-apiserver: 32 s).
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open (kube-apiserver's `IdleTimeout`: 90 s).
    pub idle_timeout: Duration,
    /// Connections served at once; further connections wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's body (504 Timeout beyond it): the request
    /// is in flight meanwhile, so neither the header-read nor the idle timeout applies (60 s,
    /// kube-apiserver's `--request-timeout`).
    pub request_body_timeout: Duration,
    /// Non-mutating requests (get, list, discovery) served at once; more are answered 429 with
    /// `Retry-After: 1`. Watches and health checks are not counted. 0 means no limit.
    /// kube-apiserver's `--max-requests-inflight` (400).
    pub max_requests_inflight: usize,
    /// Mutating requests (create, update, patch, delete) served at once; more are answered 429.
    /// 0 means no limit. kube-apiserver's `--max-mutating-requests-inflight` (200).
    pub max_mutating_requests_inflight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bookmark_interval: Duration::from_secs(60),
            max_admission_retries: 8,
            initial_namespaces: vec![
                "default".into(),
                "kube-system".into(),
                "kube-public".into(),
                "kube-node-lease".into(),
            ],
            resync_interval: Duration::from_secs(300),
            immortal_namespaces: vec![
                "default".into(),
                "kube-system".into(),
                "kube-public".into(),
                "kube-node-lease".into(),
            ],
            header_read_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            max_connections: 4096,
            request_body_timeout: Duration::from_secs(60),
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
        }
    }
}

/// Errors building a server.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Two kinds share a group/version/plural.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Bootstrapping (creating the initial namespaces) failed.
    #[error("bootstrapping the store failed: {0}")]
    Bootstrap(ApiError),
}

/// Collects kinds and settings for an [`ApiServer`].
pub struct ApiServerBuilder {
    store: Arc<dyn Store>,
    registry: Registry,
    clock: SharedClock,
    config: ServerConfig,
    controllers: bool,
    authenticator: Option<Arc<dyn Authenticator>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    /// The RBAC state the RBAC kinds' admission checks escalation against.
    rbac: Arc<crate::auth::rbac::Rbac>,
    /// Whether RBAC and the Node authorizer decide requests.
    rbac_authorization: bool,
    audit: Option<Arc<crate::audit::AuditLog>>,
    /// Whether requests and storage operations are counted (`/metrics`).
    metrics: bool,
    /// Further metrics served on `/metrics` (and by [`ApiServer::register_metrics`]).
    metric_sources: Vec<MetricSource>,
}

/// Adds metrics to a registry; called once per registry the server's metrics are served from.
pub type MetricSource = Arc<dyn Fn(&mut prometheus_client::registry::Registry) + Send + Sync>;

impl std::fmt::Debug for ApiServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerBuilder")
            .field("registry", &self.registry)
            .field("config", &self.config)
            .finish()
    }
}

impl ApiServerBuilder {
    /// A builder over `store` with the built-in kinds (Namespace, Event, Lease) registered.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let mut registry = Registry::new();
        let rbac = Arc::new(crate::auth::rbac::Rbac::new());
        crate::builtin::register_builtins_with(&mut registry, &rbac);
        ApiServerBuilder {
            store,
            registry,
            clock: Arc::new(SystemClock),
            config: ServerConfig::default(),
            controllers: true,
            authenticator: None,
            authorizer: None,
            rbac,
            rbac_authorization: false,
            audit: None,
            metrics: true,
            metric_sources: Vec::new(),
        }
    }

    /// Registers a kind.
    pub fn register(
        mut self,
        def: ResourceDefinition,
        strategy: Arc<dyn Strategy>,
    ) -> Result<Self, RegistryError> {
        // NodeRestriction admission wraps the kinds node agents may write.
        let strategy = crate::auth::node::restrict(&def, strategy);
        self.registry.register(def, strategy)?;
        Ok(self)
    }

    /// Replaces the clock (tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Authenticates every request with `authenticator`: requests without credentials reach only
    /// the public paths (health, version) and get 401 elsewhere. Without one, every request is
    /// [`UserInfo::unsecured_admin`].
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Authorizes every request with `authorizer` (403 unless it allows). Without one,
    /// everything is allowed.
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Writes an audit event for every request (including those answered 401 or 403) to `log`.
    pub fn audit(mut self, log: Arc<crate::audit::AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// Authorizes requests with the Node authorizer and RBAC (after the authorizer given to
    /// [`ApiServerBuilder::authorizer`], if any), as kube-apiserver's
    /// `--authorization-mode=Node,RBAC`: the bootstrap roles are reconciled at start, the RBAC
    /// kinds are enforced from an in-memory copy kept current by a watch, and NodeRestriction
    /// admission applies to node agents.
    pub fn rbac_authorization(mut self) -> Self {
        self.rbac_authorization = true;
        self
    }

    /// Whether to count requests and storage operations (default: yes). Off, `/metrics` serves only the
    /// sources added with [`ApiServerBuilder::metric_source`]; for measuring what counting costs.
    pub fn request_metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// Serves the metrics `source` registers on `/metrics` too (and in [`ApiServer::register_metrics`]), e.g.
    /// collectors that read an admission plugin's state at scrape time.
    pub fn metric_source(
        mut self,
        source: impl Fn(&mut prometheus_client::registry::Registry) + Send + Sync + 'static,
    ) -> Self {
        self.metric_sources.push(Arc::new(source));
        self
    }

    /// Whether to run the garbage collector and namespace controller (default: yes).
    pub fn controllers(mut self, enabled: bool) -> Self {
        self.controllers = enabled;
        self
    }

    /// Creates the initial namespaces (if missing) and starts the background controllers.
    /// Must be called inside a tokio runtime.
    pub async fn build(self) -> Result<ApiServer, BuildError> {
        let schemas = self
            .registry
            .kinds()
            .map(|k| (k.def.key_prefix(), crate::apply::KindSchema::new(&k.def)))
            .collect();
        let inflight = Inflight::new(&self.config);
        let mut tasks = Vec::new();
        let (authorizer, rbac, rbac_mirror) = if self.rbac_authorization {
            let started =
                crate::auth::start_node_rbac(self.store.clone(), self.rbac.clone(), self.authorizer)
                    .await
                    .map_err(BuildError::Bootstrap)?;
            tasks.extend(started.tasks);
            (
                Some(started.authorizer),
                Some(self.rbac.clone()),
                Some(started.rbac_mirror),
            )
        } else {
            (self.authorizer, None, None)
        };
        let request_metrics = self
            .metrics
            .then(|| crate::metrics::RequestMetrics::new(self.registry.kinds()));
        let (store, storage_metrics) = if self.metrics {
            let instrumented = ironnet_store::metrics::InstrumentedStore::new(self.store)
                .await
                .map_err(|e| BuildError::Bootstrap(ApiError::from(e)))?;
            let metrics = instrumented.metrics().clone();
            for kind in self.registry.kinds() {
                metrics.track(&kind.def.key_prefix());
            }
            (Arc::new(instrumented) as Arc<dyn Store>, Some(metrics))
        } else {
            (self.store, None)
        };
        let mut metric_sources = self.metric_sources;
        if let Some(m) = &request_metrics {
            let m = m.clone();
            metric_sources.insert(
                0,
                Arc::new(move |r: &mut prometheus_client::registry::Registry| m.register(r)),
            );
        }
        if let Some(m) = storage_metrics {
            metric_sources.insert(
                1,
                Arc::new(move |r: &mut prometheus_client::registry::Registry| m.register(r)),
            );
        }
        let server = Arc::new(Server {
            store,
            registry: Arc::new(self.registry),
            clock: self.clock,
            config: self.config,
            gc_index: Default::default(),
            foreground_owners: Default::default(),
            schemas,
            event_cache: Default::default(),
            inflight,
            authenticator: self.authenticator,
            authorizer,
            rbac,
            audit: self.audit,
            metrics_page: {
                let mut page = prometheus_client::registry::Registry::default();
                for source in &metric_sources {
                    source(&mut page);
                }
                page
            },
            request_metrics,
            metric_sources,
        });
        server.bootstrap().await.map_err(BuildError::Bootstrap)?;
        if let Some(mirror) = rbac_mirror {
            let written = server
                .reconcile_bootstrap_roles()
                .await
                .map_err(BuildError::Bootstrap)?;
            if !mirror.wait_for(written, Duration::from_secs(30)).await {
                return Err(BuildError::Bootstrap(ApiError::unavailable(
                    "the bootstrap roles did not reach the authorization cache",
                )));
            }
        }
        if self.controllers {
            tasks.push(tokio::spawn(crate::gc::run(server.clone())));
            tasks.push(tokio::spawn(crate::namespace::run(server.clone())));
        }
        Ok(ApiServer {
            server,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A running API server: an axum `Router` to serve or embed. Background controllers stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct ApiServer {
    server: Arc<Server>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").finish_non_exhaustive()
    }
}

impl ApiServer {
    /// A builder over `store`.
    pub fn builder(store: Arc<dyn Store>) -> ApiServerBuilder {
        ApiServerBuilder::new(store)
    }

    /// The HTTP service (usable with `kube::Client::new` in process, or served over TCP). `/ui`
    /// is the topology page (`ironnet_ui`): static assets without data, served without
    /// authentication; the page's own requests are authenticated like any client's.
    pub fn router(&self) -> axum::Router {
        let server = self.server.clone();
        ironnet_ui::router().fallback(move |req: Request<Body>| {
            let server = server.clone();
            async move {
                let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
                let protobuf = crate::protobuf::Preference::from_accept(accept);
                let resp = crate::auth::with_request_scope(server.handle(req)).await;
                crate::protobuf::respond(protobuf, resp).await
            }
        })
    }

    /// Serves HTTP/1.1 and h2c on `listener` until the future is dropped.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.serve_with_shutdown(listener, std::future::pending()).await
    }

    /// Serves HTTP/1.1 and h2c on `listener` until `shutdown` completes; then stops accepting
    /// and closes every open connection (including long-running watches), so the store can be
    /// reopened right away. Connections are bounded and time out as [`ServerConfig`] says.
    pub async fn serve_with_shutdown(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        crate::conn::serve(self.router(), &self.server.config, listener, None, shutdown).await
    }

    /// Serves HTTPS (HTTP/1.1 and h2 by ALPN) on `listener` with `tls` (see
    /// [`crate::tls::server_config`]) until `shutdown` completes, as
    /// [`ApiServer::serve_with_shutdown`] does over plain TCP. Client certificates presented in
    /// the handshake reach the authenticator through [`crate::tls::ConnectionInfo`].
    pub async fn serve_tls_with_shutdown(
        &self,
        listener: tokio::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        crate::conn::serve(self.router(), &self.server.config, listener, Some(tls), shutdown).await
    }

    /// The registry of served kinds.
    pub fn registry(&self) -> &Registry {
        &self.server.registry
    }

    /// Adds this server's metrics (what its `/metrics` serves) to `registry`, e.g. a process-wide telemetry
    /// endpoint's. The families are shared: both pages show the same values.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        for source in &self.server.metric_sources {
            source(registry);
        }
    }
}

/// Shared state of one server.
pub(crate) struct Server {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: SharedClock,
    pub(crate) config: ServerConfig,
    /// The garbage collector's owner → dependents index.
    pub(crate) gc_index: parking_lot::Mutex<crate::gc::GcIndex>,
    /// Owners being deleted in the foreground: uid → store key.
    pub(crate) foreground_owners: parking_lot::Mutex<std::collections::HashMap<String, String>>,
    /// Structural schemas for apply and managedFields, by kind key prefix.
    pub(crate) schemas: std::collections::HashMap<String, crate::apply::KindSchema>,
    /// Watch events decoded and encoded once, shared by all watchers.
    pub(crate) event_cache: crate::watch::EventCache,
    /// The in-flight request limits.
    inflight: Inflight,
    /// Who asks (none: everyone is [`UserInfo::unsecured_admin`]).
    authenticator: Option<Arc<dyn Authenticator>>,
    /// May they (none: everything is allowed).
    authorizer: Option<Arc<dyn Authorizer>>,
    /// The RBAC state, when RBAC authorization is on.
    rbac: Option<Arc<crate::auth::rbac::Rbac>>,
    /// Where audit events go (none: no audit log).
    audit: Option<Arc<crate::audit::AuditLog>>,
    /// kube-apiserver's request metrics of this server (none: not counted).
    request_metrics: Option<crate::metrics::RequestMetrics>,
    /// The registry `/metrics` serves (built from `metric_sources`).
    metrics_page: prometheus_client::registry::Registry,
    /// What `/metrics` serves: request and storage metrics, then the builder's sources.
    metric_sources: Vec<MetricSource>,
}

/// kube-apiserver's max-in-flight filter: one pool of slots for non-mutating and one for
/// mutating requests; a request that finds its pool full is answered 429 at once, so an
/// overloaded server sheds load instead of queueing it without bound.
struct Inflight {
    read_only: Option<Arc<tokio::sync::Semaphore>>,
    mutating: Option<Arc<tokio::sync::Semaphore>>,
}

impl Inflight {
    fn new(config: &ServerConfig) -> Self {
        let pool = |n: usize| (n > 0).then(|| Arc::new(tokio::sync::Semaphore::new(n)));
        Inflight {
            read_only: pool(config.max_requests_inflight),
            mutating: pool(config.max_mutating_requests_inflight),
        }
    }

    /// A slot for the request, `Ok(None)` if it is not counted, or the 429 answer.
    fn admit(
        &self,
        method: &Method,
        path: &str,
        query: &Query,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Response> {
        // Long-running requests are not counted, as in kube-apiserver; health checks neither, as
        // kube-apiserver's priority-and-fairness exempts probes (an overloaded server that fails
        // its liveness probe gets restarted, which sheds nothing).
        let watch = *method == Method::GET && query.flag("watch").unwrap_or(false);
        if watch || matches!(path, "/healthz" | "/livez" | "/readyz") {
            return Ok(None);
        }
        let read_only = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let pool = if read_only {
            &self.read_only
        } else {
            &self.mutating
        };
        let Some(pool) = pool else {
            return Ok(None);
        };
        match Arc::clone(pool).try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                let mut resp = ApiError::too_many_requests().into_response();
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Err(resp)
            }
        }
    }
}

impl Server {
    /// The authorizer (none: everything is allowed).
    pub(crate) fn authorizer(&self) -> Option<&Arc<dyn Authorizer>> {
        self.authorizer.as_ref()
    }

    /// The RBAC state, when RBAC authorization is on.
    pub(crate) fn rbac(&self) -> Option<&Arc<crate::auth::rbac::Rbac>> {
        self.rbac.as_ref()
    }

    /// The structural schema of a registered kind.
    pub(crate) fn kind_schema(&self, def: &ResourceDefinition) -> crate::apply::KindSchema {
        self.schemas
            .get(&def.key_prefix())
            .cloned()
            .unwrap_or_else(|| crate::apply::KindSchema::new(def))
    }
}

/// One response body plus the `Warning` headers to attach.
pub(crate) struct Reply {
    pub(crate) code: StatusCode,
    pub(crate) body: Value,
    pub(crate) warnings: Vec<String>,
    pub(crate) content_type: &'static str,
}

impl Reply {
    pub(crate) fn new(code: StatusCode, body: Value) -> Self {
        Reply {
            code,
            body,
            warnings: Vec::new(),
            content_type: "application/json",
        }
    }

    /// Encodes per `output` (JSON, or YAML when asked for).
    pub(crate) fn into_response(self, output: Output) -> Response {
        let (bytes, ct) = if output == Output::Yaml {
            match serde_saphyr::to_string(&self.body) {
                Ok(s) => (Bytes::from(s), "application/yaml"),
                Err(e) => return ApiError::internal(e.to_string()).into_response(),
            }
        } else {
            (
                Bytes::from(serde_json::to_vec(&self.body).unwrap_or_default()),
                self.content_type,
            )
        };
        let mut resp = (self.code, bytes).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        for w in self.warnings {
            let text = format!("299 - {}", serde_json::Value::String(w));
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
        resp
    }
}

/// Everything a handler needs about one request.
pub(crate) struct Call {
    pub(crate) kind: Arc<RegisteredKind>,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) query: Query,
    pub(crate) output: Output,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
    /// `fieldManager`, or the user agent's product name (like kube-apiserver's default).
    pub(crate) field_manager: String,
    /// The authenticated user (for the review endpoints; admission reads it through
    /// [`crate::auth::request_user`]).
    pub(crate) user: UserInfo,
    /// Whether watch events go out as protobuf frames (the client prefers protobuf and the kind has it).
    pub(crate) protobuf_watch: bool,
}

impl Call {
    pub(crate) fn def(&self) -> &ResourceDefinition {
        &self.kind.def
    }
    pub(crate) fn gr(&self) -> crate::error::GroupResource {
        crate::error::GroupResource::new(&self.kind.def.group, &self.kind.def.plural)
    }
    pub(crate) fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

impl Server {
    /// Authenticates a request: its user, or the 401 answer.
    fn authenticate(&self, parts: &http::request::Parts) -> Result<UserInfo, Response> {
        let Some(authenticator) = &self.authenticator else {
            return Ok(UserInfo::unsecured_admin());
        };
        match authenticator.authenticate(parts) {
            Authentication::User(user) => Ok(user),
            Authentication::NoCredentials if crate::auth::is_public_path(parts.uri.path()) => {
                Ok(UserInfo::anonymous())
            }
            Authentication::NoCredentials => Err(crate::auth::unauthorized().into_response()),
            Authentication::Rejected(why) => {
                tracing::info!(path = parts.uri.path(), reason = %why, "authentication failed");
                Err(crate::auth::unauthorized().into_response())
            }
        }
    }

    /// Authorizes a request: nothing, or the 403 answer. The decision goes into the audit event.
    async fn authorize(
        &self,
        attrs: &Attributes,
        audit: &mut Option<crate::audit::Entry>,
    ) -> Result<(), Response> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let decision = authorizer.authorize(attrs).await;
        if let Some(entry) = audit.as_mut() {
            entry.decision = Some(match &decision {
                Decision::Allow(reason) => ("allow", reason.clone()),
                Decision::Deny(reason) | Decision::NoOpinion(reason) => ("forbid", reason.clone()),
            });
        }
        match decision {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                Err(crate::auth::forbidden(attrs, &reason).into_response())
            }
        }
    }

    /// Serves one request and counts it in the request metrics.
    async fn handle(self: Arc<Self>, req: Request<Body>) -> Response {
        let mut route = None;
        let Some(metrics) = self.request_metrics.clone() else {
            return self.handle_audited(req, &mut route).await;
        };
        let started = std::time::Instant::now();
        let watch = crate::metrics::is_watch(req.method(), req.uri().query());
        let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        // Kept for requests answered before their kind is resolved (cheap: reference-counted clones).
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let in_flight = (!watch).then(|| metrics.in_flight(mutating));
        let resp = self.clone().handle_audited(req, &mut route).await;
        drop(in_flight);
        let code = resp.status().as_u16();
        let seconds = (!watch).then(|| started.elapsed().as_secs_f64());
        let route = route.ok_or_else(|| {
            crate::metrics::classify(
                &method,
                uri.path(),
                &Query::parse(uri.query()),
                content_type.as_ref().and_then(|v| v.to_str().ok()),
            )
            .0
        });
        if watch && resp.status().is_success() {
            // The watch stays active until its stream ends (the client leaves or the server closes it).
            let active = match &route {
                Ok(handles) => handles.long_running(),
                Err(labels) => metrics.long_running(labels),
            };
            match route {
                Ok(handles) => handles.observe(code, None),
                Err(labels) => metrics.observe(labels, code, None),
            }
            return resp.map(|body| {
                Body::from_stream(futures::StreamExt::map(body.into_data_stream(), move |chunk| {
                    let _active = &active;
                    chunk
                }))
            });
        }
        match route {
            Ok(handles) => handles.observe(code, seconds),
            Err(labels) => metrics.observe(labels, code, seconds),
        }
        resp
    }

    /// Serves one request, with an audit event when the audit log is on.
    async fn handle_audited(
        self: Arc<Self>,
        req: Request<Body>,
        route: &mut Option<Arc<crate::metrics::RouteHandles>>,
    ) -> Response {
        let Some(log) = self.audit.clone() else {
            return self.serve_request(req, &mut None, route).await;
        };
        let watch = Query::parse(req.uri().query()).flag("watch").unwrap_or(false);
        let mut entry = Some(crate::audit::Entry::begin(&req));
        let mut resp = self.serve_request(req, &mut entry, route).await;
        let entry = entry.expect("the audit entry is never taken");
        if let Ok(id) = HeaderValue::from_str(&entry.audit_id) {
            resp.headers_mut().insert("audit-id", id);
        }
        let streaming = watch && resp.status().is_success();
        log.record(&entry.finish(resp.status().as_u16(), streaming)).await;
        resp
    }

    /// Serves one request; `route` gets the request's metric handles once its kind is resolved.
    async fn serve_request(
        self: Arc<Self>,
        req: Request<Body>,
        audit: &mut Option<crate::audit::Entry>,
        route: &mut Option<Arc<crate::metrics::RouteHandles>>,
    ) -> Response {
        let (parts, body) = req.into_parts();
        let authenticated = match self.authenticate(&parts) {
            Ok(user) => user,
            Err(unauthorized) => return unauthorized,
        };
        if let Some(entry) = audit.as_mut() {
            entry.user = Some(authenticated.clone());
        }
        let user =
            match crate::auth::impersonate::impersonate(&parts, &authenticated, self.authorizer.as_deref())
                .await
            {
                Ok(None) => authenticated,
                Ok(Some(impersonated)) => {
                    if let Some(entry) = audit.as_mut() {
                        entry.impersonated = Some(impersonated.clone());
                    }
                    impersonated
                }
                Err(refused) => return refused.into_response(),
            };
        crate::auth::set_request_user(&user);
        let req = Request::from_parts(parts, body);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = Query::parse(req.uri().query());
        let _slot = match self.inflight.admit(&method, &path, &query) {
            Ok(slot) => slot,
            Err(too_many) => return too_many,
        };
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let field_manager = match query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => m.to_owned(),
            None => req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_owned(),
        };
        if field_manager.len() > 128 {
            return ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &ironnet_apimachinery::field::FieldError::too_long(
                    &ironnet_apimachinery::field::Path::new("fieldManager"),
                    128,
                )
                .into(),
            )
            .into_response();
        }
        let output = match negotiate(accept.as_deref()) {
            Ok(o) => o,
            Err(e) => return e.into_response(),
        };
        let target = parse_path(&path);
        let attrs = match &target {
            Some(Target::Resource(r)) => Attributes::for_resource(user.clone(), &method, r, &query, &path),
            _ => Attributes::for_path(user.clone(), &method, &path),
        };
        if let Some(entry) = audit.as_mut() {
            entry.attributes = Some(attrs.clone());
        }
        if let Err(forbidden) = self.authorize(&attrs, audit).await {
            return forbidden;
        }
        match path.as_str() {
            "/healthz" | "/livez" | "/readyz" => return self.health().await,
            "/metrics" if method == Method::GET => return crate::metrics::page(&self.metrics_page),
            "/version" => return Reply::new(StatusCode::OK, version()).into_response(Output::Json),
            "/openapi/v3" => return crate::openapi::root(&self.registry),
            p if p.starts_with("/openapi/v3/") => {
                return crate::openapi::document(&self.registry, &p["/openapi/v3/".len()..]);
            }
            _ => {}
        }
        let Some(target) = target else {
            return ApiError::path_not_found().into_response();
        };
        let resource = match target {
            Target::Resource(r) => r,
            discovery => {
                if method != Method::GET {
                    return ApiError::method_not_allowed().into_response();
                }
                return crate::discovery::serve(&self.registry, &discovery, output);
            }
        };
        let Some(kind) = self
            .registry
            .get(&resource.group, &resource.version, &resource.plural)
            .cloned()
        else {
            return ApiError::path_not_found().into_response();
        };
        if resource.namespace.is_some() && !kind.def.namespaced() {
            return ApiError::path_not_found().into_response();
        }
        let protobuf = crate::protobuf::Preference::from_accept(accept.as_deref());
        let protobuf_kind = crate::protobuf::supports(&kind.def.api_version(), &kind.def.kind);
        if protobuf == crate::protobuf::Preference::Only && !protobuf_kind {
            return ApiError::not_acceptable().into_response();
        }
        if let Some(sub) = &resource.subresource
            && !(sub == "status" && (kind.def.status_subresource || kind.def.plural == "namespaces"))
        {
            return ApiError::path_not_found().into_response();
        }
        let body = match read_body(req.into_body(), self.config.request_body_timeout).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let call = Call {
            kind,
            namespace: resource.namespace,
            name: resource.name,
            subresource: resource.subresource,
            query,
            output,
            content_type,
            body,
            field_manager,
            user,
            protobuf_watch: protobuf != crate::protobuf::Preference::No && protobuf_kind,
        };
        if let Some(metrics) = &self.request_metrics {
            *route = metrics.route(&crate::metrics::Route {
                kind: &call.kind,
                method: &method,
                named: call.name.is_some(),
                namespaced: call.namespace.is_some(),
                status: call.is_status(),
                watch: method == Method::GET && call.query.flag("watch").unwrap_or(false),
                dry_run: call.query.get("dryRun").is_some_and(|v| !v.is_empty()),
                content_type: call.content_type.as_deref(),
            });
        }
        if output == Output::AggregatedDiscovery {
            return ApiError::not_acceptable().into_response();
        }
        if call.name.is_none()
            && (method == Method::GET || method == Method::DELETE)
            && let Err(e) = call.query.validate_list_options()
        {
            return e.into_response();
        }
        let result = match (&method, call.name.is_some()) {
            _ if crate::auth::review::is_review(call.def()) => self.review(&call, &method).await,
            (&Method::GET, false) if call.query.flag("watch").unwrap_or(false) => {
                return self.watch(call).await;
            }
            (&Method::GET, false) => self.list(&call).await,
            (&Method::GET, true) => self.get(&call).await,
            (&Method::POST, false) => self.create(&call).await,
            (&Method::PUT, true) => self.update(&call).await,
            (&Method::PATCH, true) => self.patch(&call).await,
            (&Method::DELETE, true) => self.delete(&call).await,
            (&Method::DELETE, false) => self.delete_collection(&call).await,
            _ => Err(ApiError::method_not_allowed()),
        };
        match result {
            Ok(reply) => reply.into_response(output),
            Err(e) => e.into_response(),
        }
    }

    async fn health(&self) -> Response {
        match self.store.current_revision().await {
            Ok(_) => (StatusCode::OK, "ok").into_response(),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")).into_response(),
        }
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": concat!("v1.32.0-ironnet-", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// Reads the whole body, failing with 413 beyond the limit.
async fn read_body(body: Body, timeout: Duration) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, crate::body::MAX_BODY_BYTES);
    let Ok(collected) = tokio::time::timeout(timeout, limited.collect()).await else {
        return Err(ApiError::timeout(format!(
            "request did not complete within requested timeout - the request body was not received within {}s",
            timeout.as_secs()
        )));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(crate::body::MAX_BODY_BYTES))
        }
        Err(e) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
    }
}
