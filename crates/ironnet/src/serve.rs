//! Pieces shared by the commands that run an API server: allocation flags, store opening, the
//! IronCore API server itself, and shutdown on Ctrl-C / SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
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

/// A started IronCore API server: bound, with its kubeconfig written.
pub struct ListeningServer {
    /// The server and its allocation index.
    pub api: IroncoreApiServer,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    listener: tokio::net::TcpListener,
}

/// Builds the IronCore API server over `store`, binds `bind:port` and writes `data_dir/kubeconfig`.
pub async fn listen(
    store: Arc<dyn Store>,
    allocation: &AllocationConfig,
    data_dir: &Path,
    bind: IpAddr,
    port: u16,
    inflight: &InflightArgs,
) -> anyhow::Result<ListeningServer> {
    let config = ironnet_apiserver::ServerConfig {
        max_requests_inflight: inflight.max_requests_inflight,
        max_mutating_requests_inflight: inflight.max_mutating_requests_inflight,
        ..Default::default()
    };
    let api = ironnet_registry::build(store, allocation, |b| b.config(config))
        .await
        .context("starting the API server")?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .with_context(|| format!("binding {bind}:{port}"))?;
    let addr = listener.local_addr()?;
    let kubeconfig = data_dir.join("kubeconfig");
    ironnet_apiserver::kubeconfig::write(&kubeconfig, &format!("http://{addr}"))?;
    Ok(ListeningServer {
        api,
        addr,
        kubeconfig,
        listener,
    })
}

impl ListeningServer {
    /// Serves until `shutdown` completes, then drains connections.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let ListeningServer { api, listener, .. } = self;
        api.server.serve_with_shutdown(listener, shutdown).await?;
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
