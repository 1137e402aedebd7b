//! `ironnet metalnetlet`: translates `core.apinet.ironcore.dev` objects of one partition into per-node
//! `networking.metalnet.ironcore.dev` objects and writes their status back.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Flags of `ironnet metalnetlet`.
#[derive(Debug, clap::Args)]
pub struct MetalnetletCmdArgs {
    /// Kubeconfig of the apinet API server (serving `core.apinet.ironcore.dev`).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Kubeconfig of the metalnet API server (serving `networking.metalnet.ironcore.dev` and the hypervisors'
    /// core/v1 Nodes); defaults to `--kubeconfig`.
    #[arg(long)]
    pub metalnet_kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub metalnetlet: ironnet_metalnetlet::MetalnetletArgs,
    /// Metrics and health endpoints.
    #[command(flatten)]
    pub telemetry: ironnet_telemetry::TelemetryArgs,
}

async fn client(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Connects to both servers and runs metalnetlet until Ctrl-C / SIGTERM (or lost leadership).
pub async fn run(args: MetalnetletCmdArgs) -> anyhow::Result<()> {
    let apinet = client(&args.kubeconfig).await?;
    let metalnet = client(args.metalnet_kubeconfig.as_deref().unwrap_or(&args.kubeconfig)).await?;
    ironnet_runtime::health::controller_telemetry(&apinet)
        .serve(&args.telemetry)
        .await?;
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ironnet".to_owned());
    let config = args
        .metalnetlet
        .config(&format!("{host}-{}", std::process::id()))?;
    ironnet_metalnetlet::run(config, apinet, metalnet, crate::serve::shutdown_signal()).await;
    Ok(())
}
