//! `ironnet metalnet`: the node agent of one hypervisor.

/// Runs metalnet until Ctrl-C / SIGTERM.
pub async fn run(args: ironnet_metalnet::MetalnetArgs) -> anyhow::Result<()> {
    let client = ironnet_metalnet::args::client(&args).await?;
    ironnet_metalnet::run(args, client, crate::serve::shutdown_signal()).await?;
    Ok(())
}
