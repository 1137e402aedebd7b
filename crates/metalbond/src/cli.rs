//! The `metalbond server|client` command line (upstream's `cmd/metalbond`), minus the netlink route installer.
//!
//! ```text
//! metalbond server --listen [::]:4711 [--http [::]:4712] [--keepalive N] [--tls-cert F --tls-key F --tls-ca F]
//! metalbond client --server ADDR... [--subscribe VNI]... [--announce VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO]]...
//!                  [--keepalive N] [--http ADDR] [--tls-cert F --tls-key F --tls-ca F]
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::engine::RouteEvent;
use crate::instance::{Error, MetalBond};
use crate::route::{Route, Vni};
use crate::tls::{TlsConfig, TlsError};
use ironnet_telemetry::{Telemetry, TelemetryArgs};

/// How long the client waits for all servers to become ESTABLISHED before giving up (upstream: 10 s).
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// `metalbond` subcommands.
#[derive(Debug, Subcommand)]
pub enum MetalbondCommand {
    /// Run a route reflector server.
    Server(ServerArgs),
    /// Connect to servers, subscribe to VNIs and announce routes.
    Client(ClientArgs),
}

/// Mutual TLS between metalbond peers (beyond upstream, which speaks plain TCP): all three flags or none.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM certificate chain this instance presents to its peers (enables mutual TLS).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle every peer's certificate must chain to.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The loaded credentials, `None` without the flags.
    pub fn load(&self) -> Result<Option<TlsConfig>, TlsError> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => TlsConfig::from_pem_files(cert, key, ca).map(Some),
            _ => Ok(None),
        }
    }
}

/// Arguments of `metalbond server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to accept metalbond peers on.
    #[arg(long, default_value = "[::]:4711")]
    pub listen: SocketAddr,
    /// Serve the route table over HTTP on this address (`/`, `/routes.json`, `/routes.yaml`).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Keepalive interval in seconds (0 = 5).
    #[arg(long, default_value_t = 0)]
    pub keepalive: u32,
    /// Mutual TLS.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Metrics and health endpoints.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Accepted for compatibility; log levels come from RUST_LOG.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Arguments of `metalbond client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// A server to connect to (repeat for HA).
    #[arg(long = "server", required = true)]
    pub servers: Vec<String>,
    /// A VNI to subscribe to, 1..=16777215 (repeatable).
    #[arg(long = "subscribe", value_parser = Vni::parse_flag)]
    pub subscribe: Vec<Vni>,
    /// A route to announce: VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO] (repeatable).
    #[arg(long = "announce")]
    pub announce: Vec<Route>,
    /// Keepalive interval in seconds (0 = 5).
    #[arg(long, default_value_t = 0)]
    pub keepalive: u32,
    /// Serve the route table over HTTP on this address.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Mutual TLS.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Metrics and health endpoints.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Accepted for compatibility; log levels come from RUST_LOG.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Runs a subcommand until `shutdown` completes, then closes all sessions.
///
/// `config` supplies everything the command line does not set (tests pass short timers); the `--keepalive` flag
/// overrides its keepalive interval and the `--tls-*` flags its TLS credentials.
pub async fn run(
    cmd: MetalbondCommand,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    match cmd {
        MetalbondCommand::Server(args) => {
            let mb = MetalBond::new(Config {
                keepalive_interval: args.keepalive,
                tls: args.tls.load()?.or(config.tls.clone()),
                ..config
            })?;
            let addr = mb.start_server(args.listen).await?;
            tracing::info!(%addr, "metalbond server listening");
            // A listening server is ready: clients come to it.
            serve_telemetry(&mb, &args.telemetry).await?;
            if let Some(http) = args.http {
                let addr = crate::http::serve(mb.clone(), http).await?;
                tracing::info!(%addr, "serving route table over HTTP");
            }
            shutdown.await;
            mb.shutdown();
            Ok(())
        }
        MetalbondCommand::Client(args) => {
            let mb = MetalBond::new(Config {
                keepalive_interval: args.keepalive,
                tls: args.tls.load()?.or(config.tls.clone()),
                ..config
            })?;
            let mut events = mb.route_events();
            // Registered before the peers are added, so they are sent on ESTABLISHED like upstream.
            for vni in &args.subscribe {
                mb.subscribe(*vni)?;
            }
            for route in &args.announce {
                mb.announce(*route)?;
            }
            for server in &args.servers {
                mb.add_peer(server)?;
            }
            serve_telemetry(&mb, &args.telemetry).await?;
            if let Err(e) = mb
                .wait_established(ESTABLISH_TIMEOUT.min(config_timeout(mb.config())))
                .await
            {
                mb.shutdown();
                return Err(e);
            }
            tracing::info!(servers = ?args.servers, "all servers ESTABLISHED");
            if let Some(http) = args.http {
                let addr = crate::http::serve(mb.clone(), http).await?;
                tracing::info!(%addr, "serving route table over HTTP");
            }
            let log_events = async {
                while let Some(event) = events.recv().await {
                    match event {
                        RouteEvent::Added(r) => tracing::info!(route = %r, "route added"),
                        RouteEvent::Removed(r) => tracing::info!(route = %r, "route removed"),
                    }
                }
            };
            tokio::select! {
                _ = shutdown => {}
                _ = log_events => {}
            }
            mb.shutdown();
            Ok(())
        }
    }
}

/// Serves `/metrics` (the instance's metrics) and the health endpoints, with readiness = every peer ESTABLISHED
/// (always true for a server without outgoing peers).
async fn serve_telemetry(mb: &MetalBond, args: &TelemetryArgs) -> Result<(), Error> {
    let telemetry = Telemetry::new();
    telemetry.register(|registry| mb.register_metrics(registry));
    let peers = mb.clone();
    telemetry.add_readiness_check("metalbond-peers-established", move || {
        let down: Vec<String> = peers
            .peers()
            .into_iter()
            .filter(|(_, state)| *state != crate::session::ConnectionState::Established)
            .map(|(addr, state)| format!("{addr} {state}"))
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!("not ESTABLISHED: {}", down.join(", ")))
        }
    });
    let endpoints = telemetry
        .serve(args)
        .await
        .map_err(|e| Error::Io(std::io::Error::new(e.source.kind(), e.to_string())))?;
    tracing::debug!(?endpoints, "telemetry endpoints");
    Ok(())
}

/// The establish timeout scaled like every other timer when tests shorten the time unit.
fn config_timeout(config: &Config) -> Duration {
    config.time_unit.saturating_mul(10)
}
