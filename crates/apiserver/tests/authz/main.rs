//! Authorization end to end: a server with RBAC and the Node authorizer on, served over TCP, and
//! real clients (kube-rs, kubectl) authenticating with bearer tokens of a static token table.

mod kubectl;
mod node;
mod rbac;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ironnet_apiserver::auth::{ALL_AUTHENTICATED, Authentication, Authenticator, UserInfo};
use ironnet_apiserver::{ApiServer, DefaultStrategy, ResourceDefinition, Scope, ServerConfig};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

/// Bearer tokens of a fixed table (as kube-apiserver's `--token-auth-file`).
struct StaticTokens(HashMap<String, UserInfo>);

impl Authenticator for StaticTokens {
    fn authenticate(&self, request: &http::request::Parts) -> Authentication {
        let Some(header) = request.headers.get(http::header::AUTHORIZATION) else {
            return Authentication::NoCredentials;
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        match self.0.get(token) {
            Some(user) => Authentication::User(user.clone()),
            None => Authentication::Rejected("unknown token".into()),
        }
    }
}

/// The users of the tests: token = user name.
fn users() -> HashMap<String, UserInfo> {
    let user = |name: &str, groups: &[&str]| {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        groups.push(ALL_AUTHENTICATED.into());
        (
            name.to_owned(),
            UserInfo {
                name: name.into(),
                groups,
                ..Default::default()
            },
        )
    };
    HashMap::from([
        user("admin", &["system:masters"]),
        user("alice", &[]),
        user("bob", &["devs"]),
        user("system:node:hv-1", &["system:nodes"]),
        user("system:node:hv-2", &["system:nodes"]),
    ])
}

/// A test kind in the metalnet group with `spec.nodeName` (as metalnet's NetworkInterface).
fn metalnet_kind(kind: &str, plural: &str) -> ResourceDefinition {
    let mut def = ResourceDefinition::new(
        "networking.metalnet.ironcore.dev",
        "v1alpha1",
        kind,
        plural,
        Scope::Namespaced,
    )
    .unwrap();
    def.status_subresource = true;
    def.selectable_fields = vec![".spec.nodeName".into()];
    def.schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    }});
    def
}

/// A tenant kind (`networking.ironcore.dev`), which nodes must not read.
fn tenant_kind() -> ResourceDefinition {
    let mut def = ResourceDefinition::new(
        "networking.ironcore.dev",
        "v1alpha1",
        "Network",
        "networks",
        Scope::Namespaced,
    )
    .unwrap();
    def.schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    }});
    def
}

/// A server with RBAC and the Node authorizer, serving on 127.0.0.1.
#[allow(missing_debug_implementations, reason = "a test fixture")]
pub struct Cluster {
    pub addr: SocketAddr,
    /// The same server over HTTPS (kubectl sends credentials only over TLS).
    pub tls_addr: SocketAddr,
    /// The CA of the serving certificate (PEM).
    pub ca_pem: String,
    pub dir: tempfile::TempDir,
    _server: ApiServer,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
    }
}

impl Cluster {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).unwrap());
        let server = ApiServer::builder(store)
            .config(ServerConfig {
                resync_interval: Duration::from_secs(5),
                ..ServerConfig::default()
            })
            .register(tenant_kind(), Arc::new(DefaultStrategy))
            .unwrap()
            .register(metalnet_kind("Network", "networks"), Arc::new(DefaultStrategy))
            .unwrap()
            .register(
                metalnet_kind("NetworkInterface", "networkinterfaces"),
                Arc::new(DefaultStrategy),
            )
            .unwrap()
            .register(
                metalnet_kind("LoadBalancer", "loadbalancers"),
                Arc::new(DefaultStrategy),
            )
            .unwrap()
            .authenticator(Arc::new(StaticTokens(users())))
            .rbac_authorization()
            .build()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        tokio::spawn(async move {
            let _ = serving
                .serve_with_shutdown(listener, async move {
                    let _ = rx.await;
                })
                .await;
        });
        let pki = ironnet_apiserver::pki::Pki::load_or_create(&dir.path().join("pki")).unwrap();
        let serving_cert = pki.ensure_serving_cert(&["127.0.0.1".to_owned()]).unwrap();
        let tls = ironnet_apiserver::tls::server_config(&serving_cert.cert_pem, &serving_cert.key_pem, None)
            .unwrap();
        let tls_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let tls_addr = tls_listener.local_addr().unwrap();
        let (tls_tx, tls_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        tokio::spawn(async move {
            let _ = serving
                .serve_tls_with_shutdown(tls_listener, tls, async move {
                    let _ = tls_rx.await;
                })
                .await;
        });
        Cluster {
            addr,
            tls_addr,
            ca_pem: pki.ca_pem().to_owned(),
            dir,
            _server: server,
            stop: vec![tx, tls_tx],
        }
    }

    /// A kubeconfig for `user` (whose token is its name) over HTTPS, for kubectl.
    pub fn tls_kubeconfig(&self, user: &str) -> PathBuf {
        use base64::Engine;
        let path = self
            .dir
            .path()
            .join(format!("tls-kubeconfig-{}", user.replace(':', "_")));
        if !path.exists() {
            let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
            let config = json!({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {
                    "server": format!("https://{}", self.tls_addr), "certificate-authority-data": ca}}],
                "users": [{"name": "u", "user": {"token": user}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u", "namespace": "default"}}],
                "current-context": "test",
            });
            std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        }
        path
    }

    /// A kubeconfig for `user` (whose token is its name), written once.
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{}", user.replace(':', "_")));
        if !path.exists() {
            write_kubeconfig(&path, &format!("http://{}", self.addr), user);
        }
        path
    }

    /// A kube-rs client authenticating as `user`.
    pub async fn client(&self, user: &str) -> kube::Client {
        let yaml = std::fs::read_to_string(self.kubeconfig(user)).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

fn write_kubeconfig(path: &Path, server: &str, token: &str) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u", "namespace": "default"}}],
        "current-context": "test",
    });
    std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// The dynamic API of a kind.
pub fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Creates `obj` (JSON with apiVersion/kind) through `api`.
pub async fn create(api: &Api<DynamicObject>, obj: Value) -> Result<DynamicObject, kube::Error> {
    api.create(&PostParams::default(), &serde_json::from_value(obj).unwrap())
        .await
}

/// The status code and message of a failed call.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Waits until `check` holds (the authorization cache follows the store by a watch).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
