//! `ironnet apiserver`: the API server with every IronCore kind and its VNI and public-IP
//! allocators, on the embedded store or etcd.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use crate::serve::{self, AllocationArgs};

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
    #[command(flatten)]
    allocation: AllocationArgs,
    #[command(flatten)]
    inflight: serve::InflightArgs,
}

/// Runs the API server until Ctrl-C / SIGTERM.
pub async fn run(args: ApiserverArgs) -> anyhow::Result<()> {
    let allocation = args.allocation.config()?;
    let store = serve::open_store(&args.data_dir, &args.etcd_servers).await?;
    let server = serve::listen(
        store,
        &allocation,
        &args.data_dir,
        args.bind_address,
        args.port,
        &args.inflight,
    )
    .await?;
    tracing::info!(addr = %server.addr, kubeconfig = %server.kubeconfig.display(), "API server listening");
    server.serve(serve::shutdown_signal()).await
}
