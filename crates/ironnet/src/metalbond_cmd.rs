//! `ironnet metalbond server|client`: the metalbond route reflector and command-line client.

use ironnet_metalbond::Config;
use ironnet_metalbond::cli::{self, MetalbondCommand};

/// Runs the subcommand until Ctrl-C or SIGTERM, then closes all sessions.
pub async fn run(cmd: MetalbondCommand) -> anyhow::Result<()> {
    cli::run(cmd, Config::default(), shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops metalbond");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
