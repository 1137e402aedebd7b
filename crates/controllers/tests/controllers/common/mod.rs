//! A real in-process API server serving every IronCore kind, for reconciler tests.

use std::sync::Arc;

use ironnet_api::KindDescriptor;
use ironnet_apimachinery::field::ErrorList;
use ironnet_apiserver::{AdmissionContext, ApiError, ApiServer, ResourceDefinition, Scope, Strategy};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use serde_json::Value;

/// Serves one kind through the API crate's defaulting and validation, delete validation included (no
/// allocation hooks: the lead's registry adds those in `ironnet up`).
struct DescriptorStrategy(KindDescriptor);

#[async_trait::async_trait]
impl Strategy for DescriptorStrategy {
    fn default(&self, obj: &mut Value) {
        let _ = (self.0.default)(obj);
    }
    fn validate_create(&self, obj: &Value) -> ErrorList {
        (self.0.validate_create)(obj)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        (self.0.validate_update)(new, old)
    }
    fn validate_status_update(&self, new: &Value, old: &Value) -> ErrorList {
        (self.0.validate_status_update)(new, old)
    }
    async fn validate_delete(&self, _ctx: &AdmissionContext, obj: &Value) -> Result<ErrorList, ApiError> {
        Ok((self.0.validate_delete)(obj))
    }
}

/// Serves a kind without defaulting or validation (ipam Prefixes, which the API crate does not define).
struct PassThrough;

impl Strategy for PassThrough {}

/// A server over a fresh embedded store and a kube-rs client talking to it in process.
pub async fn server() -> (kube::Client, ApiServer, tempfile::TempDir) {
    server_with(false).await
}

/// Like [`server`], and also serving `ipam.ironcore.dev/v1alpha1` Prefixes (schema-less, as a stand-in for
/// IronCore's ipam API server).
pub async fn server_with_prefixes() -> (kube::Client, ApiServer, tempfile::TempDir) {
    server_with(true).await
}

async fn server_with(prefixes: bool) -> (kube::Client, ApiServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).unwrap();
    let mut builder = ApiServer::builder(Arc::new(store));
    for kind in ironnet_api::kinds() {
        let def = ResourceDefinition::from_crd(&kind.crd).unwrap();
        builder = builder.register(def, Arc::new(DescriptorStrategy(kind))).unwrap();
    }
    if prefixes {
        let def = ResourceDefinition::new(
            "ipam.ironcore.dev",
            "v1alpha1",
            "Prefix",
            "prefixes",
            Scope::Namespaced,
        )
        .unwrap();
        builder = builder.register(def, Arc::new(PassThrough)).unwrap();
    }
    let server = builder.build().await.unwrap();
    (kube::Client::new(server.router(), "default"), server, dir)
}

/// Starts a reconciler's `run(client, shutdown)` in the background; dropping the returned sender stops it.
pub fn start<F, Fut>(client: &kube::Client, run: F) -> tokio::sync::oneshot::Sender<()>
where
    F: FnOnce(kube::Client, futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(
        client.clone(),
        Box::pin(async move {
            let _ = rx.await;
        }),
    ));
    tx
}

/// Checks `f` every 50 ms for 1 s and panics the first time it returns false (upstream's `Consistently`).
pub async fn consistently<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..20 {
        assert!(f().await, "no longer true: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Polls `f` every 20 ms until it returns true, for at most 10 s.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}
