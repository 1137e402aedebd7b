//! The test environment: API server with the allocation hooks, controller-manager and apinetlet.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ironnet_registry::{AllocationConfig, IroncoreApiServer};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The apinet namespace of the tests.
pub const APINET_NS: &str = "apinet-system";
/// The public pool the tests allocate from (TEST-NET-2).
pub const PUBLIC_PREFIX: &str = "198.51.100.0/24";

/// A running control plane; dropping it stops the controllers and apinetlet.
pub struct Env {
    /// Client of the server (both API groups).
    pub client: kube::Client,
    _stop: tokio::sync::watch::Sender<bool>,
    _server: IroncoreApiServer,
    _dir: tempfile::TempDir,
}

/// Starts the server, `ironnet_controllers::run` and `ironnet_apinetlet::run`.
pub async fn env() -> Env {
    env_with(ironnet_apinetlet::ApinetletConfig::new(APINET_NS)).await
}

/// Like [`env`], with apinetlet configured by `config`.
pub async fn env_with(config: ironnet_apinetlet::ApinetletConfig) -> Env {
    env_with_prefix(config, PUBLIC_PREFIX).await
}

/// Like [`env_with`], allocating public IPs from `public_prefix`.
pub async fn env_with_prefix(config: ironnet_apinetlet::ApinetletConfig, public_prefix: &str) -> Env {
    let allocation = AllocationConfig {
        public_prefixes: vec![public_prefix.parse().unwrap()],
        ..AllocationConfig::default()
    };
    env_with_allocation(config, allocation).await
}

/// Like [`env_with`], with the API server's allocation pools configured by `allocation`.
pub async fn env_with_allocation(
    config: ironnet_apinetlet::ApinetletConfig,
    allocation: AllocationConfig,
) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).unwrap();
    let server = ironnet_registry::build(Arc::new(store), &allocation, |b| b)
        .await
        .unwrap();
    let client = kube::Client::new(server.server.router(), "default");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    tokio::spawn(ironnet_controllers::run(
        ironnet_controllers::ControllerConfig::default(),
        client.clone(),
        stopped(rx.clone()),
    ));
    tokio::spawn(ironnet_apinetlet::run(
        config,
        client.clone(),
        client.clone(),
        stopped(rx),
    ));
    Env {
        client,
        _stop: tx,
        _server: server,
        _dir: dir,
    }
}

/// A resource of `group/v1alpha1`.
pub fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: "v1alpha1".into(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The plural of a kind.
fn plural(kind: &str) -> String {
    match kind {
        "IPAddress" => "ipaddresses".to_owned(),
        "NetworkPolicy" => "networkpolicies".to_owned(),
        k => format!("{}s", k.to_lowercase()),
    }
}

/// A `networking.ironcore.dev` kind.
pub fn ironcore(kind: &str) -> ApiResource {
    resource("networking.ironcore.dev", kind, &plural(kind))
}

/// A `core.apinet.ironcore.dev` kind.
pub fn apinet(kind: &str) -> ApiResource {
    resource("core.apinet.ironcore.dev", kind, &plural(kind))
}

impl Env {
    /// Serves the API server on a loopback TCP port too (until the environment is dropped) and returns the
    /// path of a kubeconfig for it, for the real kubectl.
    pub async fn serve_tcp(&self) -> std::path::PathBuf {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = self._server.server.clone();
        let mut stop = self._stop.subscribe();
        tokio::spawn(async move {
            let _ = server
                .serve_with_shutdown(listener, async move {
                    let _ = stop.wait_for(|v| *v).await;
                })
                .await;
        });
        let path = self._dir.path().join("kubeconfig");
        ironnet_apiserver::kubeconfig::write(&path, &format!("http://{addr}")).unwrap();
        path
    }

    /// A namespaced dynamic API (`None`: cluster-scoped).
    pub fn api(&self, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
        match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        }
    }

    /// Creates `obj` (JSON with apiVersion/kind/metadata) and returns its JSON form.
    pub async fn create(&self, ar: &ApiResource, ns: Option<&str>, obj: Value) -> Value {
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        let created = self
            .api(ar, ns)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
        serde_json::to_value(created).unwrap()
    }

    /// The JSON form of an object, if it exists.
    pub async fn get(&self, ar: &ApiResource, ns: Option<&str>, name: &str) -> Option<Value> {
        self.api(ar, ns)
            .get_opt(name)
            .await
            .unwrap()
            .map(|o| serde_json::to_value(o).unwrap())
    }

    /// Merge-patches an object (or its status subresource).
    pub async fn patch(&self, ar: &ApiResource, ns: Option<&str>, name: &str, patch: Value, status: bool) {
        let api = self.api(ar, ns);
        let pp = PatchParams::default();
        if status {
            api.patch_status(name, &pp, &Patch::Merge(&patch)).await.unwrap();
        } else {
            api.patch(name, &pp, &Patch::Merge(&patch)).await.unwrap();
        }
    }

    /// Deletes an object.
    pub async fn delete(&self, ar: &ApiResource, ns: Option<&str>, name: &str) {
        self.api(ar, ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Polls until `f` returns `Some` and returns it.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        poll(what, f).await
    }

    /// Polls until the object is gone.
    pub async fn wait_gone(&self, ar: &ApiResource, ns: Option<&str>, name: &str) {
        let what = format!("{} {name} gone", ar.kind);
        poll(&what, || async {
            self.get(ar, ns, name).await.is_none().then_some(())
        })
        .await
    }

    /// Creates a Network in `ns` and waits until it is Available; returns its JSON form.
    pub async fn available_network(&self, ns: &str, name: &str, spec: Value) -> Value {
        self.create(
            &ironcore("Network"),
            Some(ns),
            json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        self.wait_for(&format!("network {name} available"), || async {
            self.get(&ironcore("Network"), Some(ns), name)
                .await
                .filter(|n| n.pointer("/status/state") == Some(&json!("Available")))
        })
        .await
    }

    /// Creates a namespace (if absent).
    pub async fn namespace(&self, name: &str) {
        let ar = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Namespace".into(),
            plural: "namespaces".into(),
        };
        let obj: DynamicObject = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .unwrap();
        match self.api(&ar, None).create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {name}: {e}"),
        }
    }
}

/// Polls `f` every 20 ms until it returns `Some`, for at most 20 s.
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

/// A string at a JSON pointer.
pub fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}
