//! `ironnet dpservice`: the dataplane service (dpservice-compatible gRPC API over TAP ports).

use ironnet_dpservice::DpServiceArgs;

/// Runs the service until SIGTERM or Ctrl-C; the TAP devices are removed on exit.
pub async fn run(args: DpServiceArgs) -> anyhow::Result<()> {
    ironnet_dpservice::run(args).await?;
    Ok(())
}
