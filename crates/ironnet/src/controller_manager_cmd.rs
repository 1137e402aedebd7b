//! `ironnet controller-manager`: the ironcore networking and ironcore-net controllers.

use std::path::PathBuf;

use ironnet_controllers::ControllerConfig;
use ironnet_runtime::leader::LeaderElectionConfig;

/// Flags of `ironnet controller-manager`.
#[derive(Debug, clap::Args)]
pub struct ControllerManagerArgs {
    /// Kubeconfig of the API server to reconcile.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Run only while holding the `ironnet-controller-manager` Lease (for several replicas).
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

/// Connects with the kubeconfig and runs the controllers until Ctrl-C / SIGTERM (or lost leadership).
pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    ironnet_runtime::health::controller_telemetry(&client)
        .serve(&args.telemetry)
        .await?;
    let leader_election = if args.leader_elect {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ironnet".to_owned());
        let identity = format!("{host}-{}", std::process::id());
        Some(LeaderElectionConfig::new(
            args.leader_election_namespace,
            "ironnet-controller-manager",
            identity,
        )?)
    } else {
        None
    };
    let config = ControllerConfig {
        leader_election,
        concurrency: args.concurrency,
    };
    ironnet_controllers::run(config, client, crate::serve::shutdown_signal()).await;
    Ok(())
}
