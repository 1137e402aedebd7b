//! The test environment: one API server (with VNI and public-IP allocation) serving apinet, metalnet and core/v1
//! Nodes on an embedded store, and metalnetlet for partition [`PARTITION`] on it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ironnet_metalnetlet::MetalnetletConfig;
use ironnet_registry::{AllocationConfig, IroncoreApiServer};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The partition of the tests (upstream's).
pub const PARTITION: &str = "test-metalnetlet";
/// The namespace of the apinet objects.
pub const NS: &str = "apinet";
/// The metalnet namespace.
pub const METALNET_NS: &str = "metalnet";
/// The public pool (TEST-NET-2).
pub const PUBLIC_PREFIX: &str = "198.51.100.0/24";

/// A running server with metalnetlet; dropping it stops metalnetlet (and the controller-manager).
pub struct Env {
    /// Client of the server (apinet, metalnet and core/v1 Nodes).
    pub client: kube::Client,
    _stop: tokio::sync::watch::Sender<bool>,
    /// The server (to serve it over TCP).
    pub server: IroncoreApiServer,
    _dir: tempfile::TempDir,
}

/// The configuration of upstream's tests: partition [`PARTITION`], node label `the=node`.
pub fn config() -> MetalnetletConfig {
    MetalnetletConfig {
        metalnet_namespace: METALNET_NS.into(),
        node_labels: [("the".to_owned(), "node".to_owned())].into(),
        ..MetalnetletConfig::new(PARTITION)
    }
}

/// Starts the server and metalnetlet with [`config`].
pub async fn env() -> Env {
    env_with(config(), false).await
}

/// Starts the server and metalnetlet with `config`; with `controllers`, also the controller-manager
/// (NATTables, LoadBalancer routing and instances).
pub async fn env_with(config: MetalnetletConfig, controllers: bool) -> Env {
    // Reconcile failures are logged; `RUST_LOG=ironnet_metalnetlet=debug` shows them with the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).unwrap();
    let allocation = AllocationConfig {
        public_prefixes: vec![PUBLIC_PREFIX.parse().unwrap()],
        ..AllocationConfig::default()
    };
    let server = ironnet_registry::build(Arc::new(store), &allocation, |b| b)
        .await
        .unwrap();
    let client = kube::Client::new(server.server.router(), "default");
    for ns in [NS, METALNET_NS] {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    if controllers {
        tokio::spawn(ironnet_controllers::run(
            ironnet_controllers::ControllerConfig::default(),
            client.clone(),
            stopped(rx.clone()),
        ));
    }
    tokio::spawn(ironnet_metalnetlet::run(
        config,
        client.clone(),
        client.clone(),
        stopped(rx),
    ));
    Env {
        client,
        _stop: tx,
        server,
        _dir: dir,
    }
}

/// Polls `f` every 20 ms until it returns `Some` and returns it; panics after 20 s.
pub async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Checks `f` every 20 ms for `for_ms` milliseconds; panics as soon as it is false (Gomega's `Consistently`).
pub async fn consistently<F, Fut>(what: &str, for_ms: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + Duration::from_millis(for_ms);
    while tokio::time::Instant::now() < end {
        assert!(f().await, "no longer true: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An object from its JSON form (apiVersion and kind included).
pub fn obj<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

/// The JSON form of an object.
pub fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

impl Env {
    /// A typed API in the apinet namespace.
    pub fn apinet<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    /// A typed API in the metalnet namespace.
    pub fn metalnet<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), METALNET_NS)
    }

    /// The core/v1 Node API (the metalnet nodes).
    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// The apinet Node API.
    pub fn apinet_nodes(&self) -> Api<ironnet_api::apinet::Node> {
        Api::all(self.client.clone())
    }

    /// Creates `obj` in the apinet namespace.
    pub async fn create<K>(&self, obj: Value) -> K
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        self.apinet::<K>()
            .create(&PostParams::default(), &serde_json::from_value(obj).unwrap())
            .await
            .unwrap()
    }

    /// Registers metalnet node `name` and waits until metalnetlet has put its finalizer on it.
    pub async fn metalnet_node(&self, name: &str) -> Node {
        let node: Node = obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}));
        self.nodes().create(&PostParams::default(), &node).await.unwrap();
        poll(&format!("finalizer on metalnet node {name}"), || async {
            self.nodes()
                .get_opt(name)
                .await
                .unwrap()
                .filter(|n| !n.finalizers().is_empty())
        })
        .await
    }

    /// Creates apinet Network `name` (the server allocates its VNI).
    pub async fn network(&self, name: &str, peerings: Value) -> ironnet_api::apinet::Network {
        self.create(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Network",
            "metadata": {"name": name}, "spec": {"peerings": peerings},
        }))
        .await
    }

    /// Polls until `api` has no object `name`.
    pub async fn gone<K>(&self, api: &Api<K>, name: &str)
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        poll(&format!("{name} gone"), || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await
    }
}

/// The apinet node name of metalnet node `node` in [`PARTITION`].
pub fn apinet_node_name(node: &str) -> String {
    format!("{PARTITION}.{node}")
}
