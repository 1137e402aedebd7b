//! Shared test fixtures: the `Widget` test kind (from kube-derive) and servers over the embedded store.
// kube-derive printcolumn attributes legitimately repeat keys such as `type_`.
#![allow(clippy::duplicated_attributes)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use ironnet_apiserver::{ApiServer, ResourceDefinition, ServerConfig, Strategy};
use ironnet_store::Store;
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::CustomResourceExt;
use kube::{CustomResource, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The test kind: `widgets.test.ironnet.dev/v1`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.ironnet.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd",
    category = "all",
    printcolumn(name = "Size", type_ = "integer", json_path = ".spec.size"),
    printcolumn(name = "Color", type_ = "string", json_path = ".spec.color", priority = "1"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.color"
)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    /// How big.
    pub size: i64,
    /// Which colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// Status of a widget.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct WidgetStatus {
    /// Conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Observed spec generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<i64>,
}

/// A condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Condition {
    /// Type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status.
    pub status: String,
}

/// Widgets must not be bigger than 100.
pub struct WidgetStrategy;

impl Strategy for WidgetStrategy {
    fn validate_create(&self, obj: &Value) -> ErrorList {
        validate(obj)
    }
    fn validate_update(&self, new: &Value, _old: &Value) -> ErrorList {
        validate(new)
    }
}

fn validate(obj: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    if obj
        .pointer("/spec/size")
        .and_then(Value::as_i64)
        .is_some_and(|s| s > 100)
    {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("size"),
            obj["spec"]["size"].clone(),
            "must be at most 100",
        ));
    }
    errs
}

/// A server over a fresh embedded store in a temp dir.
pub struct TestServer {
    pub server: ApiServer,
    pub store: Arc<dyn Store>,
    pub _dir: tempfile::TempDir,
    pub _etcd: Option<ironnet_store::testing::EtcdProcess>,
}

pub fn widget_definition() -> ResourceDefinition {
    ResourceDefinition::from_crd(&Widget::crd()).unwrap()
}

pub fn test_config() -> ServerConfig {
    ServerConfig {
        bookmark_interval: Duration::from_secs(1),
        resync_interval: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

pub fn open_store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(dir.join("store.redb"), EmbeddedOptions::default()).unwrap())
}

pub async fn server_on(store: Arc<dyn Store>) -> ApiServer {
    ApiServer::builder(store)
        .config(test_config())
        .register(widget_definition(), Arc::new(WidgetStrategy))
        .unwrap()
        .build()
        .await
        .unwrap()
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let server = server_on(store.clone()).await;
        TestServer {
            server,
            store,
            _dir: dir,
            _etcd: None,
        }
    }

    /// A server over a fresh etcd (Debian's etcd-server, started for this test).
    pub async fn start_etcd() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Started on this thread, not a blocking-pool thread: etcd gets SIGKILL when the thread
        // that spawned it exits (PR_SET_PDEATHSIG), and idle pool threads exit after 10 s.
        let etcd = ironnet_store::testing::EtcdProcess::start().unwrap();
        let store = ironnet_store::open(ironnet_store::StoreConfig::Etcd {
            endpoints: vec![etcd.endpoint().to_owned()],
            key_prefix: "/ironnet".into(),
        })
        .await
        .unwrap();
        let server = server_on(store.clone()).await;
        TestServer {
            server,
            store,
            _dir: dir,
            _etcd: Some(etcd),
        }
    }

    /// A kube client talking to the router in process.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.server.router(), "default")
    }

    /// Serves over TCP on 127.0.0.1; returns the address and the serving task.
    pub async fn serve_tcp(&self) -> (SocketAddr, Serving) {
        serve_tcp(&self.server, 0).await
    }
}

pub async fn serve_tcp(server: &ApiServer, port: u16) -> (SocketAddr, Serving) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = server.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = s
            .serve_with_shutdown(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    (
        addr,
        Serving {
            stop: Some(tx),
            task: Some(task),
        },
    )
}

/// A server listening on TCP; stops (closing every connection) on `stop()` or drop.
pub struct Serving {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Serving {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A kube client over TCP.
pub fn tcp_client(addr: SocketAddr) -> kube::Client {
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

pub fn widget(name: &str, size: i64) -> Widget {
    let mut w = Widget::new(name, WidgetSpec { size, color: None });
    w.meta_mut().namespace = Some("default".into());
    w
}

/// Sends a raw request to the router.
pub async fn raw(
    server: &ApiServer,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<axum::body::Body>,
) -> (u16, http::HeaderMap, Value) {
    use tower::ServiceExt;
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = server
        .router()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v =
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, v)
}

/// Runs each named `async fn(TestServer)` once on the embedded store and once on etcd.
#[macro_export]
macro_rules! on_both_stores {
    ($flavor:meta; $($name:ident),* $(,)?) => {
        mod embedded {
            $( #[$flavor] async fn $name() { super::$name($crate::common::TestServer::start().await).await } )*
        }
        mod etcd {
            $( #[$flavor] async fn $name() { super::$name($crate::common::TestServer::start_etcd().await).await } )*
        }
    };
}
