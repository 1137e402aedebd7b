//! `ironnet apiserver`: the Kubernetes-style API server on the embedded store or etcd.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ironnet_store::StoreConfig;

/// Arguments of `ironnet apiserver`.
#[derive(Debug, Args)]
pub struct ApiserverArgs {
    /// Directory for the embedded store and the admin kubeconfig (`DIR/kubeconfig`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Comma-separated etcd client URLs; when set, objects are stored in etcd instead of DIR.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Address to listen on (plain HTTP, no authentication: keep it on loopback).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Port to listen on (0 picks a free one; the kubeconfig names the actual port).
    #[arg(long, default_value_t = 6443)]
    port: u16,
}

/// Runs the API server until Ctrl-C / SIGTERM.
pub async fn run(args: ApiserverArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let config = if args.etcd_servers.is_empty() {
        StoreConfig::Embedded {
            path: args.data_dir.join("store.redb"),
            options: Default::default(),
        }
    } else {
        StoreConfig::Etcd {
            endpoints: args.etcd_servers.clone(),
            key_prefix: String::new(),
        }
    };
    let store = ironnet_store::open(config).await.context("opening the store")?;
    let server = ironnet_apiserver::ApiServer::builder(store)
        .build()
        .await
        .context("starting the API server")?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.bind_address, args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.bind_address, args.port))?;
    let addr = listener.local_addr()?;
    let kubeconfig = args.data_dir.join("kubeconfig");
    ironnet_apiserver::kubeconfig::write(&kubeconfig, &format!("http://{addr}"))?;
    tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "API server listening");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    server.serve_with_shutdown(listener, shutdown).await?;
    Ok(())
}
