//! Pieces shared by the commands that run an API server: allocation flags, store opening, the
//! IronCore API server itself (TLS, authentication, audit, credentials), and shutdown on
//! Ctrl-C / SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use ironnet_apiserver::audit::{AuditConfig, AuditLog};
use ironnet_apiserver::auth::identities;
use ironnet_apiserver::auth::signed::{TokenClaims, TokenSigner};
use ironnet_apiserver::auth::token::{BearerAuthenticator, TokenAuthenticator, TokenFile};
use ironnet_apiserver::auth::union::UnionAuthenticator;
use ironnet_apiserver::auth::x509::X509Authenticator;
use ironnet_apiserver::pki::{self, Pki};
use ironnet_apiserver::{kubeconfig, tls};
use ironnet_registry::alloc::VniRange;
use ironnet_registry::{AllocationConfig, IroncoreApiServer};
use ironnet_store::{Store, StoreConfig};

/// ironcore-net's allocation flags.
#[derive(Debug, Clone, Args)]
pub struct AllocationArgs {
    /// Smallest VNI handed to networks without `spec.id`.
    #[arg(long, default_value_t = 200)]
    pub min_vni: u32,
    /// Largest VNI handed to networks without `spec.id` (VNIs are 24-bit).
    #[arg(long, default_value_t = 16_777_215)]
    pub max_vni: u32,
    /// A public prefix to allocate public IPs from (repeatable or comma-separated; IPv4 and IPv6).
    #[arg(long = "public-prefix", value_delimiter = ',')]
    pub public_prefixes: Vec<IpNet>,
}

impl AllocationArgs {
    /// The validated allocation configuration.
    pub fn config(&self) -> anyhow::Result<AllocationConfig> {
        let vni_range = VniRange::new(self.min_vni, self.max_vni).context("invalid --min-vni/--max-vni")?;
        Ok(AllocationConfig {
            vni_range,
            public_prefixes: self.public_prefixes.clone(),
        })
    }
}

/// kube-apiserver's in-flight request limits; beyond them requests are answered 429 with
/// `Retry-After: 1`, so an overloaded server sheds load instead of queueing it.
#[derive(Debug, Clone, Args)]
pub struct InflightArgs {
    /// Non-mutating requests (get, list) served at once; watches are not counted (0: no limit).
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// Mutating requests (create, update, patch, delete) served at once (0: no limit).
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
}

/// Opens the store: etcd when `etcd_servers` is non-empty, else the embedded store in `data_dir`.
pub async fn open_store(data_dir: &Path, etcd_servers: &[String]) -> anyhow::Result<Arc<dyn Store>> {
    // The directory holds the store and the admin kubeconfig: owner-only, whatever the umask.
    ironnet_store::create_private_dir(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let config = if etcd_servers.is_empty() {
        StoreConfig::Embedded {
            path: data_dir.join("store.redb"),
            options: Default::default(),
        }
    } else {
        StoreConfig::Etcd {
            endpoints: etcd_servers.to_vec(),
            key_prefix: String::new(),
        }
    };
    ironnet_store::open(config).await.context("opening the store")
}

/// kube-apiserver's serving, authentication and audit flags.
#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    /// Address to listen on. Anything but loopback exposes the API: it is served over TLS with
    /// authentication unless --insecure-plain-http (which refuses non-loopback addresses).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port of the HTTPS API (0 picks a free one; the kubeconfig names the actual port).
    #[arg(long = "secure-port", visible_alias = "port", default_value_t = 6443)]
    pub secure_port: u16,
    /// The serving certificate (PEM, with intermediates after it); default: one issued by the
    /// cluster CA in DIR/pki for localhost, the loopback addresses, the host name, the bind
    /// address and every --tls-san.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// An extra name (DNS name or IP address) for the generated serving certificate (repeatable).
    #[arg(long = "tls-san", value_delimiter = ',')]
    pub tls_sans: Vec<String>,
    /// CAs (PEM bundle) whose client certificates authenticate users (CN = user, O = groups), in
    /// addition to the cluster CA in DIR/pki.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Static bearer tokens, kube's CSV format: token,user,uid,"group1,group2".
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Serve plain HTTP without authentication (everyone is admin); only on a loopback address.
    #[arg(long)]
    pub insecure_plain_http: bool,
    /// Write an audit event (audit.k8s.io/v1, Metadata level) per request to this file (`-`: stdout).
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// Rotate the audit log when it reaches this many megabytes (0: never).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// Rotated audit logs kept (0: all).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
}

impl ServingArgs {
    /// Refuses contradictory flags: plain HTTP with TLS or authentication flags, or on an
    /// address other than loopback.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.insecure_plain_http {
            if !self.bind_address.is_loopback() {
                anyhow::bail!(
                    "--insecure-plain-http serves without TLS or authentication and only binds a loopback address, not {}",
                    self.bind_address
                );
            }
            if self.tls_cert_file.is_some() || self.client_ca_file.is_some() || self.token_auth_file.is_some()
            {
                anyhow::bail!(
                    "--insecure-plain-http cannot be combined with --tls-cert-file, --client-ca-file or --token-auth-file"
                );
            }
        }
        Ok(())
    }
}

/// The credentials of a secured server: the CA, the token key and the server URL its
/// kubeconfigs name.
pub struct Credentials {
    /// The cluster CA.
    pub pki: Pki,
    /// The key of signed tokens.
    pub signer: Arc<TokenSigner>,
    /// What clients are told to trust (PEM).
    pub trust_pem: String,
    /// The HTTPS URL clients reach the server at.
    pub server_url: String,
    /// Where component kubeconfigs go.
    pub kubeconfig_dir: PathBuf,
}

/// The signing key of `ironnet token create` and the API server.
pub fn token_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pki").join("token-signing.key")
}

impl Credentials {
    /// Writes `<kubeconfig_dir>/<name>.kubeconfig` with a client certificate for `user` in
    /// `groups`, kept in DIR/pki as `<name>.crt` and reused while valid.
    pub fn certificate_kubeconfig(&self, name: &str, user: &str, groups: &[&str]) -> anyhow::Result<PathBuf> {
        let pair = self.pki.ensure_client_cert(name, user, groups)?;
        self.write(
            name,
            kubeconfig::Credentials::ClientCertificate {
                cert_pem: pair.cert_pem,
                key_pem: pair.key_pem,
            },
        )
    }

    /// Writes `<kubeconfig_dir>/<name>.kubeconfig` with a signed token for `user` in `groups`,
    /// valid for `ttl`.
    pub fn token_kubeconfig(
        &self,
        name: &str,
        user: &str,
        groups: &[String],
        ttl: std::time::Duration,
    ) -> anyhow::Result<PathBuf> {
        let token = self.signer.sign(&TokenClaims::new(user, groups, ttl));
        self.write(name, kubeconfig::Credentials::Token(token))
    }

    fn write(&self, name: &str, credentials: kubeconfig::Credentials) -> anyhow::Result<PathBuf> {
        ironnet_store::create_private_dir(&self.kubeconfig_dir)?;
        let path = self.kubeconfig_dir.join(format!("{name}.kubeconfig"));
        kubeconfig::Spec {
            server: self.server_url.clone(),
            ca_pem: Some(self.trust_pem.clone()),
            user: name.to_owned(),
            credentials,
        }
        .write(&path)?;
        Ok(path)
    }
}

/// A started IronCore API server: bound, with its kubeconfig written.
pub struct ListeningServer {
    /// The server and its allocation index.
    pub api: IroncoreApiServer,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The URL clients use (`https://…`, or `http://…` with --insecure-plain-http).
    pub url: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The CA and token key (none with --insecure-plain-http).
    pub credentials: Option<Credentials>,
    tls: Option<Arc<rustls::ServerConfig>>,
    listener: tokio::net::TcpListener,
}

/// Builds the IronCore API server over `store`, binds the serving address, and writes
/// `data_dir/kubeconfig`: over TLS with client-certificate and token authentication (creating
/// the CA and certificates in `data_dir/pki` on first start), or plain HTTP on loopback with
/// --insecure-plain-http.
pub async fn listen(
    store: Arc<dyn Store>,
    allocation: &AllocationConfig,
    data_dir: &Path,
    serving: &ServingArgs,
    inflight: &InflightArgs,
) -> anyhow::Result<ListeningServer> {
    serving.validate()?;
    let config = ironnet_apiserver::ServerConfig {
        max_requests_inflight: inflight.max_requests_inflight,
        max_mutating_requests_inflight: inflight.max_mutating_requests_inflight,
        ..Default::default()
    };
    let audit = match &serving.audit_log_path {
        Some(path) => Some(
            AuditLog::start(AuditConfig {
                path: path.clone(),
                max_size_bytes: serving.audit_log_maxsize.saturating_mul(1024 * 1024),
                max_backups: serving.audit_log_maxbackup,
            })
            .with_context(|| format!("opening the audit log {}", path.display()))?,
        ),
        None => None,
    };
    let bind = serving.bind_address;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(bind, serving.secure_port))
        .await
        .with_context(|| format!("binding {bind}:{}", serving.secure_port))?;
    let addr = listener.local_addr()?;
    // Clients of a server on every address reach it on loopback.
    let client_addr = if bind.is_unspecified() {
        let loopback = if bind.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    };
    let kubeconfig = data_dir.join("kubeconfig");
    if serving.insecure_plain_http {
        let api = ironnet_registry::build(store, allocation, |b| {
            let b = b.config(config);
            match audit {
                Some(log) => b.audit(log),
                None => b,
            }
        })
        .await
        .context("starting the API server")?;
        let url = format!("http://{client_addr}");
        kubeconfig::write(&kubeconfig, &url)?;
        return Ok(ListeningServer {
            api,
            addr,
            url,
            kubeconfig,
            credentials: None,
            tls: None,
            listener,
        });
    }

    let pki = Pki::load_or_create(&data_dir.join("pki")).context("the cluster CA")?;
    let signer = Arc::new(TokenSigner::load_or_create(&token_key_path(data_dir))?);
    let (serving_cert, serving_key, trust_pem) = match (&serving.tls_cert_file, &serving.tls_private_key_file)
    {
        (Some(cert), Some(key)) => {
            let cert_pem =
                std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key_pem =
                std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
            // Clients are told to trust the given chain (its issuer, or the certificate itself
            // when self-signed) as well as the cluster CA.
            let trust = format!("{}{cert_pem}", pki.ca_pem());
            (cert_pem, key_pem, trust)
        }
        _ => {
            let mut names = pki::default_serving_names(bind);
            names.extend(serving.tls_sans.iter().cloned());
            let pair = pki
                .ensure_serving_cert(&names)
                .context("the serving certificate")?;
            (pair.cert_pem, pair.key_pem, pki.ca_pem().to_owned())
        }
    };
    let mut client_ca = pki.ca_pem().to_owned();
    if let Some(file) = &serving.client_ca_file {
        let extra = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        client_ca.push_str(&extra);
    }
    let tls = tls::server_config(&serving_cert, &serving_key, Some(&client_ca))
        .context("the serving certificate")?;
    let mut token_authenticators: Vec<Arc<dyn TokenAuthenticator>> = Vec::new();
    if let Some(file) = &serving.token_auth_file {
        token_authenticators.push(Arc::new(TokenFile::load(file)?));
    }
    token_authenticators.push(signer.clone());
    let authenticator = Arc::new(UnionAuthenticator::new(vec![
        Arc::new(X509Authenticator::new(&client_ca).context("--client-ca-file")?),
        Arc::new(BearerAuthenticator::new(token_authenticators)),
    ]));
    let api = ironnet_registry::build(store, allocation, |b| {
        // kube-apiserver's --authorization-mode=Node,RBAC with the bootstrap roles.
        let b = b.config(config).authenticator(authenticator).rbac_authorization();
        match audit {
            Some(log) => b.audit(log),
            None => b,
        }
    })
    .await
    .context("starting the API server")?;
    let url = format!("https://{client_addr}");
    let credentials = Credentials {
        pki,
        signer,
        trust_pem,
        server_url: url.clone(),
        kubeconfig_dir: data_dir.join("kubeconfigs"),
    };
    let admin =
        credentials
            .pki
            .ensure_client_cert("admin", identities::ADMIN_USER, &[identities::ADMIN_GROUP])?;
    kubeconfig::Spec {
        server: url.clone(),
        ca_pem: Some(credentials.trust_pem.clone()),
        user: "admin".into(),
        credentials: kubeconfig::Credentials::ClientCertificate {
            cert_pem: admin.cert_pem,
            key_pem: admin.key_pem,
        },
    }
    .write(&kubeconfig)?;
    Ok(ListeningServer {
        api,
        addr,
        url,
        kubeconfig,
        credentials: Some(credentials),
        tls: Some(tls),
        listener,
    })
}

/// How often `ironnet apiserver`/`up` probe their store for `/readyz`.
const STORE_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The telemetry of a process running the API server: the server's own metrics (requests, storage, allocation
/// pools; the same families its `/metrics` serves) and the readiness check `store`, which passes while the last
/// probe of `store` (reading its revision, every 2 s) succeeded. Must be called inside a tokio runtime.
pub fn apiserver_telemetry(api: &IroncoreApiServer, store: Arc<dyn Store>) -> ironnet_telemetry::Telemetry {
    let telemetry = ironnet_telemetry::Telemetry::new();
    telemetry.register(|registry| api.server.register_metrics(registry));
    let (tx, rx) = tokio::sync::watch::channel(Err::<(), String>("not probed yet".into()));
    tokio::spawn(async move {
        loop {
            let result = match tokio::time::timeout(STORE_PROBE_INTERVAL, store.current_revision()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {STORE_PROBE_INTERVAL:?}")),
            };
            // Nobody reads the result once the telemetry is gone: then neither is the reason to probe.
            if tx.send(result).is_err() {
                return;
            }
            tokio::time::sleep(STORE_PROBE_INTERVAL).await;
        }
    });
    telemetry.add_readiness_check("store", move || rx.borrow().clone());
    telemetry
}

/// A kube-rs client from a kubeconfig file.
pub async fn client_from(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

impl ListeningServer {
    /// Serves until `shutdown` completes, then drains connections.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let ListeningServer {
            api, listener, tls, ..
        } = self;
        match tls {
            Some(tls) => {
                api.server
                    .serve_tls_with_shutdown(listener, tls, shutdown)
                    .await?
            }
            None => api.server.serve_with_shutdown(listener, shutdown).await?,
        }
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
