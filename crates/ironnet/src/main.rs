//! `ironnet`: every ironnet component behind one binary.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

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
mod gateway_cmd;
mod lab;
mod metalbond_cmd;
mod metalnet_cmd;
mod metalnetlet_cmd;
mod netns;
mod serve;
mod token_cmd;
mod up_cmd;
mod vm_cmd;

#[derive(Debug, Parser)]
#[command(name = "ironnet", version, about = "IronCore's cloud networking stack")]
struct Cli {
    /// Log line format on stderr (`json`: one object per line, for log collectors). Levels come from RUST_LOG.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: ironnet_telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process: API server (embedded store), controllers, apinetlet and a simulated node
    /// (or, with --hypervisors, metalnetlet and a lab of real hypervisors).
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
    /// metalnetlet: core.apinet.ironcore.dev objects of a partition → per-node metalnet objects, status back.
    Metalnetlet(metalnetlet_cmd::MetalnetletCmdArgs),
    /// metalnet: the node agent; programs its hypervisor's dataplane and distributes routes over metalbond.
    Metalnet(ironnet_metalnet::MetalnetArgs),
    /// A lab's border router: the internet behind a dataplane port, public routes learned from metalbond.
    InternetGateway(gateway_cmd::GatewayArgs),
    /// Signed bearer tokens for node agents and users (`token create --node NODE`).
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// A machine provider stand-in: attach a network namespace as a VM to a tenant NetworkInterface.
    #[command(subcommand)]
    Vm(vm_cmd::VmCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ironnet_telemetry::init_logging(cli.log_format)?;
    match cli.command {
        Command::Up(args) => up_cmd::run(args).await,
        Command::Apiserver(args) => apiserver_cmd::run(args).await,
        Command::ControllerManager(args) => controller_manager_cmd::run(args).await,
        Command::Apinetlet(args) => apinetlet_cmd::run(args).await,
        Command::Dpservice(args) => dpservice_cmd::run(args).await,
        Command::Metalbond(cmd) => metalbond_cmd::run(cmd).await,
        Command::Metalnetlet(args) => metalnetlet_cmd::run(args).await,
        Command::Metalnet(args) => metalnet_cmd::run(args).await,
        Command::InternetGateway(args) => gateway_cmd::run(args, serve::shutdown_signal()).await,
        Command::Vm(cmd) => vm_cmd::run(cmd).await,
        Command::Token(cmd) => token_cmd::run(cmd),
    }
}
