//! `ironnet apinetlet`: translates `networking.ironcore.dev` objects into `core.apinet.ironcore.dev` objects
//! and writes their status back.

use std::path::{Path, PathBuf};

use ironnet_apinetlet::ApinetletConfig;
use ironnet_runtime::leader::LeaderElectionConfig;

/// Flags of `ironnet apinetlet`.
#[derive(Debug, clap::Args)]
pub struct ApinetletArgs {
    /// Kubeconfig of the ironcore API server (serving `networking.ironcore.dev`).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Kubeconfig of the apinet API server (serving `core.apinet.ironcore.dev`); defaults to `--kubeconfig`.
    #[arg(long)]
    pub apinet_kubeconfig: Option<PathBuf>,
    /// Namespace on the apinet server that every derived object is created in.
    #[arg(long, alias = "api-net-namespace", default_value = ironnet_apinetlet::DEFAULT_APINET_NAMESPACE)]
    pub apinet_namespace: String,
    /// Give LoadBalancer instances node affinity to the nodes of their routing destinations.
    #[arg(long)]
    pub is_node_affinity_aware: bool,
    /// Do not write ironcore Network `status.peerings`.
    #[arg(long)]
    pub disable_network_peering: bool,
    /// Only reconcile ironcore objects labelled `common.ironcore.dev/watch-filter=<value>`.
    #[arg(long)]
    pub watch_filter: Option<String>,
    /// Run only while holding the apinetlet Lease on the ironcore server (for several replicas).
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "default")]
    pub leader_election_namespace: String,
    /// Maximum concurrent reconciles per controller.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Metrics and health endpoints.
    #[command(flatten)]
    pub telemetry: ironnet_telemetry::TelemetryArgs,
}

async fn client(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Connects to both servers and runs apinetlet until Ctrl-C / SIGTERM (or lost leadership).
pub async fn run(args: ApinetletArgs) -> anyhow::Result<()> {
    let ironcore = client(&args.kubeconfig).await?;
    let apinet = client(args.apinet_kubeconfig.as_deref().unwrap_or(&args.kubeconfig)).await?;
    ironnet_runtime::health::controller_telemetry(&apinet)
        .serve(&args.telemetry)
        .await?;
    let leader_election = if args.leader_elect {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ironnet".to_owned());
        let identity = format!("{host}-{}", std::process::id());
        Some(LeaderElectionConfig::new(
            args.leader_election_namespace,
            ironnet_apinetlet::LEASE_NAME,
            identity,
        )?)
    } else {
        None
    };
    let config = ApinetletConfig {
        concurrency: args.concurrency,
        leader_election,
        node_affinity_aware: args.is_node_affinity_aware,
        network_peering_disabled: args.disable_network_peering,
        watch_filter: args.watch_filter,
        ..ApinetletConfig::new(args.apinet_namespace)
    };
    ironnet_apinetlet::run(config, ironcore, apinet, crate::serve::shutdown_signal()).await;
    Ok(())
}
