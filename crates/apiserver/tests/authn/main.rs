//! Authentication over HTTPS against the real server on loopback TCP: client certificates, the
//! static token file and signed tokens (401 for missing, bad, expired or untrusted credentials),
//! impersonation allowed and refused by the authorizer, the audit log of a scripted session and
//! its rotation, and the real kubectl and curl with the kubeconfig the server's PKI produces.

mod audit;
mod certificates;
mod clients;
mod impersonation;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use ironnet_apiserver::ApiServer;
use ironnet_apiserver::audit::{AuditConfig, AuditLog};
use ironnet_apiserver::auth::signed::TokenSigner;
use ironnet_apiserver::auth::token::{BearerAuthenticator, TokenAuthenticator, TokenFile};
use ironnet_apiserver::auth::union::UnionAuthenticator;
use ironnet_apiserver::auth::x509::X509Authenticator;
use ironnet_apiserver::auth::{Attributes, Authorizer, Decision, SYSTEM_MASTERS, UserInfo};
use ironnet_apiserver::kubeconfig::{Credentials, Spec};
use ironnet_apiserver::pki::Pki;
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use serde_json::Value;

/// The static token file every test server reads.
pub const TOKEN_FILE: &str = "token-carol,carol,uid-carol,\"dev,ops\"\ntoken-dave,dave,uid-dave\n";

/// A test policy: `system:masters` may do everything; `alice` may list namespaces and
/// impersonate user `bob`, group `dev` and extra `scopes=view`; nobody else may do anything.
/// Every resource request's user is recorded.
#[derive(Debug, Default)]
pub struct Policy {
    pub seen: parking_lot::Mutex<Vec<UserInfo>>,
}

#[async_trait::async_trait]
impl Authorizer for Policy {
    async fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.verb != "impersonate" && attrs.resource_request {
            self.seen.lock().push(attrs.user.clone());
        }
        if attrs.user.in_group(SYSTEM_MASTERS) {
            return Decision::Allow("masters".into());
        }
        // kube's system:public-info-viewer.
        if !attrs.resource_request && ironnet_apiserver::auth::is_public_path(&attrs.path) {
            return Decision::Allow("public info".into());
        }
        if attrs.user.name == "alice" {
            let allowed = match (attrs.verb.as_str(), attrs.resource.as_str()) {
                ("list", "namespaces") => true,
                ("impersonate", "users") => attrs.name == "bob",
                ("impersonate", "groups") => attrs.name == "dev",
                ("impersonate", "userextras") => attrs.subresource == "scopes" && attrs.name == "view",
                _ => false,
            };
            if allowed {
                return Decision::Allow("alice's rule".into());
            }
        }
        Decision::NoOpinion(String::new())
    }
}

/// How a test server audits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Audit with this maximum size (bytes, 0: no rotation) and number of backups.
    pub audit: Option<(u64, usize)>,
}

/// An API server over TLS with every authenticator and [`Policy`], on a free loopback port.
#[allow(missing_debug_implementations)]
pub struct Secured {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub signer: Arc<TokenSigner>,
    pub policy: Arc<Policy>,
    pub audit_path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Secured {
    pub async fn start(options: Options) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(&dir.path().join("pki")).unwrap();
        let serving = pki
            .ensure_serving_cert(&["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
        let tls =
            ironnet_apiserver::tls::server_config(&serving.cert_pem, &serving.key_pem, Some(pki.ca_pem()))
                .unwrap();
        let signer =
            Arc::new(TokenSigner::load_or_create(&dir.path().join("pki/token-signing.key")).unwrap());
        let tokens: Vec<Arc<dyn TokenAuthenticator>> = vec![
            Arc::new(TokenFile::parse(TOKEN_FILE, "tokens.csv").unwrap()),
            signer.clone(),
        ];
        let authenticator = UnionAuthenticator::new(vec![
            Arc::new(X509Authenticator::new(pki.ca_pem()).unwrap()),
            Arc::new(BearerAuthenticator::new(tokens)),
        ]);
        let policy = Arc::new(Policy::default());
        let store =
            Arc::new(EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).unwrap());
        let audit_path = dir.path().join("audit.log");
        let mut builder = ApiServer::builder(store)
            .authenticator(Arc::new(authenticator))
            .authorizer(policy.clone());
        if let Some((max_size_bytes, max_backups)) = options.audit {
            builder = builder.audit(
                AuditLog::start(AuditConfig {
                    path: audit_path.clone(),
                    max_size_bytes,
                    max_backups,
                })
                .unwrap(),
            );
        }
        let server = builder.build().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve_tls_with_shutdown(listener, tls, async {
                    let _ = stopped.await;
                })
                .await
        });
        Secured {
            addr,
            dir,
            pki,
            signer,
            policy,
            audit_path,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The URL of the server.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A kubeconfig trusting the server's CA with `credentials`.
    pub fn spec(&self, credentials: Credentials) -> Spec {
        Spec {
            server: self.url(),
            ca_pem: Some(self.pki.ca_pem().to_owned()),
            user: "test".into(),
            credentials,
        }
    }

    /// A kube-rs client with `credentials`.
    pub async fn client(&self, credentials: Credentials) -> kube::Client {
        client_for(&self.spec(credentials)).await
    }

    /// A client with a fresh client certificate for `user` in `groups`.
    pub async fn cert_client(&self, user: &str, groups: &[&str]) -> kube::Client {
        let pair = self
            .pki
            .issue_client_cert(user, groups, Duration::from_secs(3600))
            .unwrap();
        self.client(Credentials::ClientCertificate {
            cert_pem: pair.cert_pem,
            key_pem: pair.key_pem,
        })
        .await
    }

    /// The admin (`system:masters`).
    pub async fn admin(&self) -> kube::Client {
        self.cert_client("kubernetes-admin", &["system:masters"]).await
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for Secured {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A kube-rs client for a kubeconfig.
pub async fn client_for(spec: &Spec) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&spec.render().unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The status code and JSON body of `method path`, with `headers`.
pub async fn call(
    client: &kube::Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            serde_json::to_vec(&b).unwrap()
        }
        None => Vec::new(),
    };
    let resp = client.send(req.body(body.into()).unwrap()).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (code, value)
}

/// Asserts kube-apiserver's 401 answer.
pub fn assert_unauthorized((code, body): &(u16, Value)) {
    assert_eq!(*code, 401, "{body}");
    assert_eq!(body["reason"], "Unauthorized", "{body}");
    assert_eq!(body["message"], "Unauthorized", "{body}");
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
