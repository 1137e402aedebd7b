//! `ironnet`: every ironnet component behind one binary.

use clap::{Parser, Subcommand};

// The control plane allocates and frees many short-lived JSON trees per request; glibc's allocator spent
// a third of the control-plane benchmark's CPU in malloc/free (consolidation of fragmented bins), mimalloc
// a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod apinetlet_cmd;
mod apiserver_cmd;
mod controller_manager_cmd;
mod dpservice_cmd;
mod metalbond_cmd;
mod serve;
mod up_cmd;

#[derive(Debug, Parser)]
#[command(name = "ironnet", version, about = "IronCore's cloud networking stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process: API server (embedded store), controllers, apinetlet and a simulated node.
    Up(up_cmd::UpArgs),
    /// The API server with every IronCore kind and its allocators (embedded store or etcd).
    Apiserver(apiserver_cmd::ApiserverArgs),
    /// The ironcore networking and ironcore-net controllers.
    ControllerManager(controller_manager_cmd::ControllerManagerArgs),
    /// apinetlet: networking.ironcore.dev objects → core.apinet.ironcore.dev objects, status back.
    Apinetlet(apinetlet_cmd::ApinetletArgs),
    /// The dataplane service: dpservice's gRPC API over TAP ports.
    Dpservice(ironnet_dpservice::DpServiceArgs),
    /// metalbond route distribution: route reflector server or client.
    #[command(subcommand)]
    Metalbond(ironnet_metalbond::cli::MetalbondCommand),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => up_cmd::run(args).await,
        Command::Apiserver(args) => apiserver_cmd::run(args).await,
        Command::ControllerManager(args) => controller_manager_cmd::run(args).await,
        Command::Apinetlet(args) => apinetlet_cmd::run(args).await,
        Command::Dpservice(args) => dpservice_cmd::run(args).await,
        Command::Metalbond(cmd) => metalbond_cmd::run(cmd).await,
    }
}
