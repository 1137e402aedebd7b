//! Starting and stopping the whole service: TAP ports, dataplane, worker thread, gRPC server
//! with `grpc.health.v1`.

use std::net::SocketAddr;

use ironnet_dataplane::{self as dp, Dataplane, DataplaneConfig, MacAddr, PortConfig, PortKind};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, DpServiceArgs, PortSpec};
use crate::port::Port;
use crate::proto::dpd_kironcore_server::DpdKironcoreServer;
use crate::server::DpService;
use crate::tap::{TapDevice, TapError};
use crate::vhost_user::{VhostUserError, VhostUserPort};
use crate::worker::{WorkerError, WorkerHandle};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The flags are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The dataplane rejected its configuration or a port.
    #[error("dataplane configuration: {0}")]
    Dataplane(#[from] dp::ConfigError),
    /// A TAP device could not be created.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// A vhost-user socket could not be created.
    #[error(transparent)]
    VhostUser(#[from] VhostUserError),
    /// The worker thread could not be started.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The gRPC listener could not be bound or inspected.
    #[error("gRPC listener: {0}")]
    Listen(#[source] std::io::Error),
    /// The metrics or health-probe endpoint could not be bound.
    #[error(transparent)]
    Telemetry(#[from] ironnet_telemetry::ServeError),
}

/// A running service. [`RunningService::shutdown`] stops it; dropping it without calling
/// shutdown also stops the worker (removing the TAPs) but aborts the gRPC server abruptly.
#[derive(Debug)]
pub struct RunningService {
    local_addr: SocketAddr,
    uuid: String,
    stop_grpc: Option<oneshot::Sender<()>>,
    grpc: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    worker: WorkerHandle,
    telemetry: ironnet_telemetry::Endpoints,
}

/// The dataplane configuration the flags describe.
pub fn dataplane_config(args: &DpServiceArgs) -> DataplaneConfig {
    let mut c = DataplaneConfig::new(args.ipv6);
    c.dhcp_mtu = args.dhcp_mtu;
    c.dhcp_dns = args.dhcp_dns.clone();
    c.dhcpv6_dns = args.dhcpv6_dns.clone();
    c.flow_timeout = args.flow_timeout();
    c.wcmp_percent = args.wcmp;
    c.enforce_firewall = !args.no_firewall_enforcement;
    c.enable_ipv6_overlay = args.enable_ipv6_overlay;
    c.max_vm_ports = args.max_vm_ports;
    c.router_mac = MacAddr(args.router_mac.unwrap_or(args.pf0.peer_mac));
    // Random per process, like dpservice's rand(): underlays of a restarted process differ.
    c.underlay_seed = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or_default(),
    );
    c
}

fn add_port(
    dataplane: &mut Dataplane,
    ports: &mut Vec<Port>,
    spec: &PortSpec,
    kind: PortKind,
) -> Result<(), StartError> {
    // VM ports get carrier only once an interface is bound to them; uplinks are always up.
    // VM ports offer checksum/TSO offload to the VM (vnet header); uplinks carry plain frames.
    let port = match &spec.vhost_user {
        Some(path) => Port::VhostUser(VhostUserPort::create(path, &spec.tap, spec.queue_pairs)?),
        None => Port::Tap(TapDevice::create(
            &spec.tap,
            spec.peer_mac,
            kind == PortKind::Pf,
            kind == PortKind::Vf,
        )?),
    };
    let id = dataplane.add_port(PortConfig {
        kind,
        mac: MacAddr(spec.mac),
        name: spec.device.clone(),
    })?;
    debug_assert_eq!(id.index(), ports.len());
    ports.push(port);
    Ok(())
}

impl RunningService {
    /// Creates the TAP ports, starts the worker and serves gRPC on `listener`. On error,
    /// everything created so far is removed again.
    pub async fn start(args: &DpServiceArgs, listener: TcpListener) -> Result<Self, StartError> {
        args.validate()?;
        let mut dataplane = Dataplane::new(dataplane_config(args))?;
        let mut taps = Vec::new();
        add_port(&mut dataplane, &mut taps, &args.pf0, PortKind::Pf)?;
        if let Some(pf1) = &args.pf1 {
            add_port(&mut dataplane, &mut taps, pf1, PortKind::Pf)?;
        }
        for vf in &args.vfs {
            add_port(&mut dataplane, &mut taps, vf, PortKind::Vf)?;
        }
        let worker = WorkerHandle::spawn(dataplane, taps)?;
        let service = DpService::new(worker.sender(), args.ipv6);
        let uuid = service.uuid().to_owned();
        let local_addr = listener.local_addr().map_err(StartError::Listen)?;
        let telemetry = ironnet_telemetry::Telemetry::new();
        crate::metrics::register(&telemetry, worker.sender(), service.initialized_flag());
        // Dropping `worker` on this error stops it and removes the TAPs again.
        let telemetry = telemetry.serve(&args.telemetry).await?;

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<DpdKironcoreServer<DpService>>().await;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let grpc = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(std::time::Duration::from_secs(15)))
                .add_service(health_service)
                .add_service(DpdKironcoreServer::new(service))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop_rx.await;
                    health.set_not_serving::<DpdKironcoreServer<DpService>>().await;
                })
                .await
        });
        tracing::info!(%local_addr, %uuid, "dpservice running");
        Ok(RunningService {
            local_addr,
            uuid,
            stop_grpc: Some(stop_tx),
            grpc: Some(grpc),
            worker,
            telemetry,
        })
    }

    /// The gRPC server's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` and the health probes are served (what `--metrics-bind-address` and
    /// `--health-probe-bind-address` asked for, with the actual port for port 0).
    pub fn telemetry_endpoints(&self) -> ironnet_telemetry::Endpoints {
        self.telemetry
    }

    /// The process UUID reported by CheckInitialized.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Stops serving gRPC (health turns NOT_SERVING first), stops the worker and removes the
    /// TAP devices.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop_grpc.take() {
            let _ = stop.send(());
        }
        if let Some(grpc) = self.grpc.take() {
            match grpc.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "gRPC server ended with an error"),
                Err(e) => tracing::warn!(error = %e, "gRPC server task failed"),
            }
        }
        self.worker.shutdown();
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(grpc) = self.grpc.take() {
            grpc.abort();
        }
    }
}

/// Runs the service until SIGTERM or Ctrl-C, then shuts it down cleanly.
pub async fn run(args: DpServiceArgs) -> Result<(), StartError> {
    // Register for SIGTERM before creating anything, so that a signal arriving during startup
    // still leads to a clean shutdown instead of the default disposition.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(StartError::Listen)?;
    let addr = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, args.grpc_port));
    let listener = TcpListener::bind(addr).await.map_err(StartError::Listen)?;
    let service = RunningService::start(&args, listener).await?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = term.recv() => tracing::info!("terminated; shutting down"),
    }
    service.shutdown().await;
    Ok(())
}
