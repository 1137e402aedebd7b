//! `ironnet apiserver`: the API server with every IronCore kind and its VNI and public-IP
//! allocators, on the embedded store or etcd.

use std::path::PathBuf;

use clap::Args;

use crate::serve::{self, AllocationArgs};

/// Arguments of `ironnet apiserver`.
#[derive(Debug, Args)]
pub struct ApiserverArgs {
    /// Directory for the embedded store, the cluster CA and keys (`DIR/pki`) and the admin
    /// kubeconfig (`DIR/kubeconfig`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Comma-separated etcd client URLs; when set, objects are stored in etcd instead of DIR.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    #[command(flatten)]
    serving: serve::ServingArgs,
    #[command(flatten)]
    allocation: AllocationArgs,
    #[command(flatten)]
    inflight: serve::InflightArgs,
    /// `--metrics-bind-address` (the server's metrics, also served on its own `/metrics`) and
    /// `--health-probe-bind-address` (`/readyz`: the store answers); both off by default.
    #[command(flatten)]
    telemetry: ironnet_telemetry::TelemetryArgs,
}

/// Runs the API server until Ctrl-C / SIGTERM.
pub async fn run(args: ApiserverArgs) -> anyhow::Result<()> {
    let allocation = args.allocation.config()?;
    args.serving.validate()?;
    let store = serve::open_store(&args.data_dir, &args.etcd_servers).await?;
    let server = serve::listen(
        store.clone(),
        &allocation,
        &args.data_dir,
        &args.serving,
        &args.inflight,
    )
    .await?;
    serve::apiserver_telemetry(&server.api, store)
        .serve(&args.telemetry)
        .await?;
    tracing::info!(addr = %server.addr, url = %server.url, kubeconfig = %server.kubeconfig.display(), "API server listening");
    server.serve(serve::shutdown_signal()).await
}
