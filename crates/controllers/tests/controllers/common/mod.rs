//! A real in-process API server serving every IronCore kind, for reconciler tests.

use std::sync::Arc;

use ironnet_api::KindDescriptor;
use ironnet_apimachinery::field::ErrorList;
use ironnet_apiserver::{ApiServer, ResourceDefinition, Strategy};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use serde_json::Value;

/// Serves one kind through the API crate's defaulting and validation (no allocation hooks: the lead's
/// registry adds those in `ironnet up`).
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
}

/// A server over a fresh embedded store and a kube-rs client talking to it in process.
pub async fn server() -> (kube::Client, ApiServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).unwrap();
    let mut builder = ApiServer::builder(Arc::new(store));
    for kind in ironnet_api::kinds() {
        let def = ResourceDefinition::from_crd(&kind.crd).unwrap();
        builder = builder.register(def, Arc::new(DescriptorStrategy(kind))).unwrap();
    }
    let server = builder.build().await.unwrap();
    (kube::Client::new(server.router(), "default"), server, dir)
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
