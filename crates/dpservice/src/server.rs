//! The `dpdkironcore.v1.DPDKironcore` gRPC service.
//!
//! Each RPC checks that `Initialize` was called (else `ABORTED "not initialized"`), validates
//! its request with [`crate::validate`] (`INVALID_ARGUMENT`), then runs the matching
//! [`ironnet_dataplane::Dataplane`] control method on the worker thread through
//! [`CommandSender::call`]. Business errors come back as gRPC OK with `Status{code, NAME}`;
//! a worker that is gone is `INTERNAL "ipc write failed"`.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ironnet_dataplane as dp;
use ironnet_vni::Vni;
use tonic::{Request, Response, Status};

use crate::convert::{self, error, ok, text};
use crate::proto;
use crate::proto::dpd_kironcore_server::DpdKironcore;
use crate::validate::{self as v, InvalidArgument};
use crate::worker::{CommandSender, WorkerState};

type RpcResult<T> = Result<Response<T>, Status>;

/// The gRPC service. Cheap to clone; all clones share the initialized flag.
#[derive(Debug, Clone)]
pub struct DpService {
    worker: CommandSender,
    host_underlay: Ipv6Addr,
    uuid: Arc<str>,
    initialized: Arc<AtomicBool>,
}

impl DpService {
    /// A service driving the worker behind `worker`. `host_underlay` is the `--ipv6` address
    /// (preferred underlays must share its /64). A fresh random uppercase UUID identifies this
    /// process to clients.
    pub fn new(worker: CommandSender, host_underlay: Ipv6Addr) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string().to_uppercase();
        DpService {
            worker,
            host_underlay,
            uuid: uuid.into(),
            initialized: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag Initialize sets: shared with every clone, for readiness checks.
    pub fn initialized_flag(&self) -> Arc<AtomicBool> {
        self.initialized.clone()
    }

    /// The UUID reported by CheckInitialized / Initialize.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    fn check_init(&self) -> Result<(), Status> {
        if self.initialized.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Status::aborted("not initialized"))
        }
    }

    async fn exec<R, F>(&self, f: F) -> Result<R, Status>
    where
        R: Send + 'static,
        F: FnOnce(&mut WorkerState) -> R + Send + 'static,
    {
        self.worker
            .call(f)
            .await
            .map_err(|_| Status::internal("ipc write failed"))
    }

    fn preferred(&self, raw: &[u8]) -> Result<Option<Ipv6Addr>, InvalidArgument> {
        v::preferred_underlay(raw, self.host_underlay)
    }
}

/// Builds `$resp` with `status = Success` and the given fields on `Ok`, or only the error
/// status on `Err`.
macro_rules! reply {
    ($result:expr, $resp:ident, |$val:pat_param| { $($field:ident : $value:expr),* $(,)? }) => {
        Ok(Response::new(match $result {
            Ok($val) => proto::$resp { status: ok(), $($field: $value),* },
            Err(e) => {
                // Responses without payload fields make the update a no-op; keep one macro.
                #[allow(clippy::needless_update)]
                let resp = proto::$resp { status: error(e), ..Default::default() };
                resp
            }
        }))
    };
}

fn underlay_text(u: Ipv6Addr) -> Vec<u8> {
    text(u)
}

#[tonic::async_trait]
impl DpdKironcore for DpService {
    async fn check_initialized(
        &self,
        _: Request<proto::CheckInitializedRequest>,
    ) -> RpcResult<proto::CheckInitializedResponse> {
        self.check_init()?;
        Ok(Response::new(proto::CheckInitializedResponse {
            status: ok(),
            uuid: self.uuid.to_string(),
        }))
    }

    async fn initialize(&self, _: Request<proto::InitializeRequest>) -> RpcResult<proto::InitializeResponse> {
        self.exec(|s| s.dataplane.initialize()).await?;
        self.initialized.store(true, Ordering::Release);
        tracing::info!("initialized");
        Ok(Response::new(proto::InitializeResponse {
            status: ok(),
            uuid: self.uuid.to_string(),
        }))
    }

    async fn get_version(
        &self,
        req: Request<proto::GetVersionRequest>,
    ) -> RpcResult<proto::GetVersionResponse> {
        self.check_init()?;
        let r = req.into_inner();
        v::non_empty("client_protocol", &r.client_protocol)?;
        v::non_empty("client_name", &r.client_name)?;
        v::non_empty("client_version", &r.client_version)?;
        tracing::info!(client = %r.client_name, version = %r.client_version, protocol = %r.client_protocol, "client version");
        let version = env!("CARGO_PKG_VERSION").to_owned();
        Ok(Response::new(proto::GetVersionResponse {
            status: ok(),
            service_protocol: version.clone(),
            service_version: version,
        }))
    }

    async fn list_interfaces(
        &self,
        _: Request<proto::ListInterfacesRequest>,
    ) -> RpcResult<proto::ListInterfacesResponse> {
        self.check_init()?;
        let interfaces = self
            .exec(|s| {
                s.dataplane
                    .list_interfaces()
                    .iter()
                    .map(|i| {
                        let device = s
                            .dataplane
                            .port(i.port)
                            .map(|p| p.config.name)
                            .unwrap_or_default();
                        convert::interface(i, &device)
                    })
                    .collect()
            })
            .await?;
        Ok(Response::new(proto::ListInterfacesResponse {
            status: ok(),
            interfaces,
        }))
    }

    async fn get_interface(
        &self,
        req: Request<proto::GetInterfaceRequest>,
    ) -> RpcResult<proto::GetInterfaceResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self
            .exec(move |s| {
                s.dataplane.get_interface(&id).map(|i| {
                    let device = s
                        .dataplane
                        .port(i.port)
                        .map(|p| p.config.name)
                        .unwrap_or_default();
                    convert::interface(&i, &device)
                })
            })
            .await?;
        reply!(r, GetInterfaceResponse, |i| { interface: Some(i) })
    }

    async fn create_interface(
        &self,
        req: Request<proto::CreateInterfaceRequest>,
    ) -> RpcResult<proto::CreateInterfaceResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let vni = v::vni(r.vni)?;
        let (ipv4, ipv6) = v::primary_addresses(r.ipv4_config.as_ref(), r.ipv6_config.as_ref())?;
        let device = v::non_empty("device_name", &r.device_name)?.to_owned();
        let preferred_underlay = self.preferred(&r.preferred_underlay_route)?;
        let hostname = v::hostname(&r.hostname)?;
        let pxe = match r.pxe_config {
            Some(p) if !p.next_server.is_empty() || !p.boot_filename.is_empty() => {
                let bad = || InvalidArgument::field("pxe_config.next_server");
                let next_server: IpAddr = if ipv6.is_some() {
                    IpAddr::V6(p.next_server.parse().map_err(|_| bad())?)
                } else {
                    IpAddr::V4(p.next_server.parse().map_err(|_| bad())?)
                };
                Some(dp::PxeConfig {
                    next_server,
                    boot_filename: p.boot_filename,
                })
            }
            _ => None,
        };
        let result = self
            .exec(move |s| {
                let port = s.dataplane.port_by_name(&device).ok_or(dp::DpError::NotFound)?;
                let underlay = s.dataplane.create_interface(dp::CreateInterface {
                    id,
                    vni,
                    ipv4,
                    ipv6,
                    port,
                    pxe,
                    hostname,
                    preferred_underlay,
                })?;
                let tap = &s.ports[port.index()];
                if let Err(e) = tap.set_carrier(true) {
                    tracing::warn!(error = %e, "cannot raise the VM port's carrier");
                }
                Ok((underlay, tap.name().to_owned()))
            })
            .await?;
        reply!(result, CreateInterfaceResponse, |(underlay, name)| {
            underlay_route: underlay_text(underlay),
            vf: Some(proto::VirtualFunction { name, ..Default::default() }),
        })
    }

    async fn delete_interface(
        &self,
        req: Request<proto::DeleteInterfaceRequest>,
    ) -> RpcResult<proto::DeleteInterfaceResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self
            .exec(move |s| {
                let port = s.dataplane.get_interface(&id)?.port;
                s.dataplane.delete_interface(&id)?;
                if let Some(tap) = s.ports.get(port.index())
                    && let Err(e) = tap.set_carrier(false)
                {
                    tracing::warn!(error = %e, "cannot drop the VM port's carrier");
                }
                Ok(())
            })
            .await?;
        reply!(r, DeleteInterfaceResponse, |()| {})
    }

    async fn list_prefixes(
        &self,
        req: Request<proto::ListPrefixesRequest>,
    ) -> RpcResult<proto::ListPrefixesResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self.exec(move |s| s.dataplane.list_prefixes(&id)).await?;
        reply!(r, ListPrefixesResponse, |list| {
            prefixes: list.iter().map(|p| convert::prefix(p.prefix, Some(p.underlay))).collect(),
        })
    }

    async fn create_prefix(
        &self,
        req: Request<proto::CreatePrefixRequest>,
    ) -> RpcResult<proto::CreatePrefixResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let prefix = v::prefix("prefix", r.prefix.as_ref())?;
        let preferred = self.preferred(&r.preferred_underlay_route)?;
        let r = self
            .exec(move |s| s.dataplane.create_prefix(&id, prefix, preferred))
            .await?;
        reply!(r, CreatePrefixResponse, |u| { underlay_route: underlay_text(u) })
    }

    async fn delete_prefix(
        &self,
        req: Request<proto::DeletePrefixRequest>,
    ) -> RpcResult<proto::DeletePrefixResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let prefix = v::prefix("prefix", r.prefix.as_ref())?;
        let r = self.exec(move |s| s.dataplane.delete_prefix(&id, prefix)).await?;
        reply!(r, DeletePrefixResponse, |()| {})
    }

    async fn list_load_balancer_prefixes(
        &self,
        req: Request<proto::ListLoadBalancerPrefixesRequest>,
    ) -> RpcResult<proto::ListLoadBalancerPrefixesResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self.exec(move |s| s.dataplane.list_lb_prefixes(&id)).await?;
        reply!(r, ListLoadBalancerPrefixesResponse, |list| {
            prefixes: list.iter().map(|p| convert::prefix(p.prefix, Some(p.underlay))).collect(),
        })
    }

    async fn create_load_balancer_prefix(
        &self,
        req: Request<proto::CreateLoadBalancerPrefixRequest>,
    ) -> RpcResult<proto::CreateLoadBalancerPrefixResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let prefix = v::prefix("prefix", r.prefix.as_ref())?;
        let preferred = self.preferred(&r.preferred_underlay_route)?;
        let r = self
            .exec(move |s| s.dataplane.create_lb_prefix(&id, prefix, preferred))
            .await?;
        reply!(r, CreateLoadBalancerPrefixResponse, |u| { underlay_route: underlay_text(u) })
    }

    async fn delete_load_balancer_prefix(
        &self,
        req: Request<proto::DeleteLoadBalancerPrefixRequest>,
    ) -> RpcResult<proto::DeleteLoadBalancerPrefixResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let prefix = v::prefix("prefix", r.prefix.as_ref())?;
        let r = self
            .exec(move |s| s.dataplane.delete_lb_prefix(&id, prefix))
            .await?;
        reply!(r, DeleteLoadBalancerPrefixResponse, |()| {})
    }

    async fn create_vip(&self, req: Request<proto::CreateVipRequest>) -> RpcResult<proto::CreateVipResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let ip = v::ip_address("vip_ip", r.vip_ip.as_ref())?;
        let preferred = self.preferred(&r.preferred_underlay_route)?;
        let r = self
            .exec(move |s| s.dataplane.create_vip(&id, ip, preferred))
            .await?;
        reply!(r, CreateVipResponse, |u| { underlay_route: underlay_text(u) })
    }

    async fn get_vip(&self, req: Request<proto::GetVipRequest>) -> RpcResult<proto::GetVipResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self.exec(move |s| s.dataplane.get_vip(&id)).await?;
        reply!(r, GetVipResponse, |vip| {
            vip_ip: Some(convert::ip(vip.ip)),
            underlay_route: underlay_text(vip.underlay),
        })
    }

    async fn delete_vip(&self, req: Request<proto::DeleteVipRequest>) -> RpcResult<proto::DeleteVipResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self.exec(move |s| s.dataplane.delete_vip(&id)).await?;
        reply!(r, DeleteVipResponse, |()| {})
    }

    async fn create_load_balancer(
        &self,
        req: Request<proto::CreateLoadBalancerRequest>,
    ) -> RpcResult<proto::CreateLoadBalancerResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::object_id("loadbalancer_id", &r.loadbalancer_id)?;
        let ip = v::ip_address("loadbalanced_ip", r.loadbalanced_ip.as_ref())?;
        let vni = v::vni(r.vni)?;
        let ports = v::lb_ports(&r.loadbalanced_ports)?
            .into_iter()
            .map(|(p, port)| dp::LbPort {
                protocol: match p {
                    v::LbProtocol::Tcp => dp::L4Proto::Tcp,
                    v::LbProtocol::Udp => dp::L4Proto::Udp,
                },
                port,
            })
            .collect();
        let preferred_underlay = self.preferred(&r.preferred_underlay_route)?;
        let req = dp::CreateLoadBalancer {
            id,
            vni,
            ip,
            ports,
            preferred_underlay,
        };
        let r = self.exec(move |s| s.dataplane.create_loadbalancer(req)).await?;
        reply!(r, CreateLoadBalancerResponse, |u| { underlay_route: underlay_text(u) })
    }

    async fn get_load_balancer(
        &self,
        req: Request<proto::GetLoadBalancerRequest>,
    ) -> RpcResult<proto::GetLoadBalancerResponse> {
        self.check_init()?;
        let id = v::object_id("loadbalancer_id", &req.into_inner().loadbalancer_id)?;
        let r = self.exec(move |s| s.dataplane.get_loadbalancer(&id)).await?;
        reply!(r, GetLoadBalancerResponse, |lb| {
            loadbalanced_ip: Some(convert::ip(lb.ip)),
            vni: Vni::to_wire(lb.vni),
            loadbalanced_ports: lb.ports.iter().map(convert::lb_port).collect(),
            underlay_route: underlay_text(lb.underlay),
        })
    }

    async fn delete_load_balancer(
        &self,
        req: Request<proto::DeleteLoadBalancerRequest>,
    ) -> RpcResult<proto::DeleteLoadBalancerResponse> {
        self.check_init()?;
        let id = v::object_id("loadbalancer_id", &req.into_inner().loadbalancer_id)?;
        let r = self.exec(move |s| s.dataplane.delete_loadbalancer(&id)).await?;
        reply!(r, DeleteLoadBalancerResponse, |()| {})
    }

    async fn list_load_balancers(
        &self,
        _: Request<proto::ListLoadBalancersRequest>,
    ) -> RpcResult<proto::ListLoadBalancersResponse> {
        self.check_init()?;
        let lbs = self.exec(|s| s.dataplane.list_loadbalancers()).await?;
        let loadbalancers = lbs
            .iter()
            .map(|lb| proto::Loadbalancer {
                id: lb.id.clone().into_bytes(),
                vni: Vni::to_wire(lb.vni),
                ip: Some(convert::ip(lb.ip)),
                ports: lb.ports.iter().map(convert::lb_port).collect(),
                underlay_route: underlay_text(lb.underlay),
            })
            .collect();
        Ok(Response::new(proto::ListLoadBalancersResponse {
            status: ok(),
            loadbalancers,
        }))
    }

    async fn create_load_balancer_target(
        &self,
        req: Request<proto::CreateLoadBalancerTargetRequest>,
    ) -> RpcResult<proto::CreateLoadBalancerTargetResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::object_id("loadbalancer_id", &r.loadbalancer_id)?;
        let target = v::ip_address("target_ip", r.target_ip.as_ref())?;
        let r = self
            .exec(move |s| s.dataplane.create_lb_target(&id, target))
            .await?;
        reply!(r, CreateLoadBalancerTargetResponse, |()| {})
    }

    async fn list_load_balancer_targets(
        &self,
        req: Request<proto::ListLoadBalancerTargetsRequest>,
    ) -> RpcResult<proto::ListLoadBalancerTargetsResponse> {
        self.check_init()?;
        let raw = req.into_inner().loadbalancer_id;
        let id = if raw.is_empty() {
            None
        } else {
            Some(v::object_id("loadbalancer_id", &raw)?)
        };
        let r = self
            .exec(move |s| s.dataplane.list_lb_targets(id.as_deref()))
            .await?;
        reply!(r, ListLoadBalancerTargetsResponse, |targets| {
            target_ips: targets.into_iter().map(convert::ip).collect(),
        })
    }

    async fn delete_load_balancer_target(
        &self,
        req: Request<proto::DeleteLoadBalancerTargetRequest>,
    ) -> RpcResult<proto::DeleteLoadBalancerTargetResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::object_id("loadbalancer_id", &r.loadbalancer_id)?;
        let target = v::ip_address("target_ip", r.target_ip.as_ref())?;
        let r = self
            .exec(move |s| s.dataplane.delete_lb_target(&id, target))
            .await?;
        reply!(r, DeleteLoadBalancerTargetResponse, |()| {})
    }

    async fn create_nat(&self, req: Request<proto::CreateNatRequest>) -> RpcResult<proto::CreateNatResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let ip = v::ip_address("nat_ip", r.nat_ip.as_ref())?;
        let (min, max) = v::port_range(r.min_port, r.max_port)?;
        let preferred = self.preferred(&r.preferred_underlay_route)?;
        let r = self
            .exec(move |s| s.dataplane.create_nat(&id, ip, min, max, preferred))
            .await?;
        reply!(r, CreateNatResponse, |u| { underlay_route: underlay_text(u) })
    }

    async fn get_nat(&self, req: Request<proto::GetNatRequest>) -> RpcResult<proto::GetNatResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self.exec(move |s| s.dataplane.get_nat(&id)).await?;
        reply!(r, GetNatResponse, |n| {
            nat_ip: Some(convert::ip(n.ip)),
            min_port: u32::from(n.min_port),
            max_port: u32::from(n.max_port),
            underlay_route: underlay_text(n.underlay),
        })
    }

    async fn delete_nat(&self, req: Request<proto::DeleteNatRequest>) -> RpcResult<proto::DeleteNatResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self.exec(move |s| s.dataplane.delete_nat(&id)).await?;
        reply!(r, DeleteNatResponse, |()| {})
    }

    async fn list_local_nats(
        &self,
        req: Request<proto::ListLocalNatsRequest>,
    ) -> RpcResult<proto::ListLocalNatsResponse> {
        self.check_init()?;
        let ip = v::optional_ip_address("nat_ip", req.into_inner().nat_ip.as_ref())?;
        let r = self.exec(move |s| s.dataplane.list_local_nats(ip)).await?;
        reply!(r, ListLocalNatsResponse, |list| {
            nat_entries: list
                .iter()
                .map(|e| proto::NatEntry {
                    nat_ip: Some(convert::ip(e.vm_ip)),
                    min_port: u32::from(e.min_port),
                    max_port: u32::from(e.max_port),
                    underlay_route: Vec::new(),
                    vni: Vni::to_wire(e.vni),
                    actual_nat_ip: Some(convert::ip(e.nat_ip)),
                })
                .collect(),
        })
    }

    async fn create_neighbor_nat(
        &self,
        req: Request<proto::CreateNeighborNatRequest>,
    ) -> RpcResult<proto::CreateNeighborNatResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let ip = v::ip_address("nat_ip", r.nat_ip.as_ref())?;
        let vni = v::vni(r.vni)?;
        let (min_port, max_port) = v::port_range(r.min_port, r.max_port)?;
        let underlay = v::ipv6_text("underlay_route", &r.underlay_route)?;
        let r = self
            .exec(move |s| match ip {
                IpAddr::V4(nat_ip) => s.dataplane.create_neighbor_nat(dp::NeighborNat {
                    nat_ip,
                    vni,
                    min_port,
                    max_port,
                    underlay,
                }),
                IpAddr::V6(_) => Err(dp::DpError::BadIpVer),
            })
            .await?;
        reply!(r, CreateNeighborNatResponse, |()| {})
    }

    async fn delete_neighbor_nat(
        &self,
        req: Request<proto::DeleteNeighborNatRequest>,
    ) -> RpcResult<proto::DeleteNeighborNatResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let ip = v::ip_address("nat_ip", r.nat_ip.as_ref())?;
        let vni = v::vni(r.vni)?;
        let (min, max) = v::port_range(r.min_port, r.max_port)?;
        let r = self
            .exec(move |s| s.dataplane.delete_neighbor_nat(ip, vni, min, max))
            .await?;
        reply!(r, DeleteNeighborNatResponse, |()| {})
    }

    async fn list_neighbor_nats(
        &self,
        req: Request<proto::ListNeighborNatsRequest>,
    ) -> RpcResult<proto::ListNeighborNatsResponse> {
        self.check_init()?;
        let ip = v::optional_ip_address("nat_ip", req.into_inner().nat_ip.as_ref())?;
        let r = self.exec(move |s| s.dataplane.list_neighbor_nats(ip)).await?;
        reply!(r, ListNeighborNatsResponse, |list| {
            nat_entries: list
                .iter()
                .map(|n| proto::NatEntry {
                    nat_ip: None,
                    min_port: u32::from(n.min_port),
                    max_port: u32::from(n.max_port),
                    underlay_route: underlay_text(n.underlay),
                    vni: Vni::to_wire(n.vni),
                    actual_nat_ip: Some(convert::ip(n.nat_ip)),
                })
                .collect(),
        })
    }

    async fn list_routes(
        &self,
        req: Request<proto::ListRoutesRequest>,
    ) -> RpcResult<proto::ListRoutesResponse> {
        self.check_init()?;
        let vni = v::vni(req.into_inner().vni)?;
        let r = self.exec(move |s| s.dataplane.list_routes(vni)).await?;
        reply!(r, ListRoutesResponse, |list| {
            routes: list
                .iter()
                .map(|e| proto::Route {
                    prefix: Some(convert::prefix(e.route.prefix, None)),
                    nexthop_vni: Vni::to_wire(e.route.nexthop_vni),
                    nexthop_address: Some(convert::ip(e.route.nexthop)),
                    weight: 0,
                })
                .collect(),
        })
    }

    async fn create_route(
        &self,
        req: Request<proto::CreateRouteRequest>,
    ) -> RpcResult<proto::CreateRouteResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let vni = v::vni(r.vni)?;
        let route = r.route.ok_or_else(|| InvalidArgument::field("route"))?;
        let prefix = v::prefix("route.prefix", route.prefix.as_ref())?;
        let nexthop = v::ip_address("route.nexthop_address", route.nexthop_address.as_ref())?;
        let nexthop_vni = v::vni(route.nexthop_vni)?;
        let r = self
            .exec(move |s| match nexthop {
                IpAddr::V6(nexthop) => s.dataplane.create_route(
                    vni,
                    dp::Route {
                        prefix,
                        nexthop_vni,
                        nexthop,
                    },
                ),
                IpAddr::V4(_) => Err(dp::DpError::BadIpVer),
            })
            .await?;
        reply!(r, CreateRouteResponse, |()| {})
    }

    async fn delete_route(
        &self,
        req: Request<proto::DeleteRouteRequest>,
    ) -> RpcResult<proto::DeleteRouteResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let vni = v::vni(r.vni)?;
        let route = r.route.ok_or_else(|| InvalidArgument::field("route"))?;
        let prefix = v::prefix("route.prefix", route.prefix.as_ref())?;
        let r = self.exec(move |s| s.dataplane.delete_route(vni, prefix)).await?;
        reply!(r, DeleteRouteResponse, |()| {})
    }

    async fn check_vni_in_use(
        &self,
        req: Request<proto::CheckVniInUseRequest>,
    ) -> RpcResult<proto::CheckVniInUseResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let vni = v::vni(r.vni)?;
        let kind = vni_kind(v::vni_type(r.r#type)?);
        let r = self
            .exec(move |s| s.dataplane.check_vni_in_use(vni, kind))
            .await?;
        reply!(r, CheckVniInUseResponse, |in_use| { in_use: in_use })
    }

    async fn reset_vni(&self, req: Request<proto::ResetVniRequest>) -> RpcResult<proto::ResetVniResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let vni = v::vni(r.vni)?;
        let kind = vni_kind(v::vni_type(r.r#type)?);
        let r = self.exec(move |s| s.dataplane.reset_vni(vni, kind)).await?;
        reply!(r, ResetVniResponse, |()| {})
    }

    async fn list_firewall_rules(
        &self,
        req: Request<proto::ListFirewallRulesRequest>,
    ) -> RpcResult<proto::ListFirewallRulesResponse> {
        self.check_init()?;
        let id = v::interface_id("interface_id", &req.into_inner().interface_id)?;
        let r = self.exec(move |s| s.dataplane.list_firewall_rules(&id)).await?;
        reply!(r, ListFirewallRulesResponse, |rules| {
            rules: rules.iter().map(convert::firewall_rule).collect(),
        })
    }

    async fn create_firewall_rule(
        &self,
        req: Request<proto::CreateFirewallRuleRequest>,
    ) -> RpcResult<proto::CreateFirewallRuleResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let rule = convert::to_dataplane_rule(v::firewall_rule(r.rule.as_ref())?);
        let r = self
            .exec(move |s| s.dataplane.create_firewall_rule(&id, rule))
            .await?;
        reply!(r, CreateFirewallRuleResponse, |rule_id| { rule_id: rule_id.into_bytes() })
    }

    async fn get_firewall_rule(
        &self,
        req: Request<proto::GetFirewallRuleRequest>,
    ) -> RpcResult<proto::GetFirewallRuleResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let rule_id = v::object_id("rule_id", &r.rule_id)?;
        let r = self
            .exec(move |s| s.dataplane.get_firewall_rule(&id, &rule_id))
            .await?;
        reply!(r, GetFirewallRuleResponse, |rule| { rule: Some(convert::firewall_rule(&rule)) })
    }

    async fn delete_firewall_rule(
        &self,
        req: Request<proto::DeleteFirewallRuleRequest>,
    ) -> RpcResult<proto::DeleteFirewallRuleResponse> {
        self.check_init()?;
        let r = req.into_inner();
        let id = v::interface_id("interface_id", &r.interface_id)?;
        let rule_id = v::object_id("rule_id", &r.rule_id)?;
        let r = self
            .exec(move |s| s.dataplane.delete_firewall_rule(&id, &rule_id))
            .await?;
        reply!(r, DeleteFirewallRuleResponse, |()| {})
    }

    async fn capture_start(
        &self,
        _: Request<proto::CaptureStartRequest>,
    ) -> RpcResult<proto::CaptureStartResponse> {
        self.check_init()?;
        Err(Status::unimplemented("packet capture is not supported"))
    }

    async fn capture_stop(
        &self,
        _: Request<proto::CaptureStopRequest>,
    ) -> RpcResult<proto::CaptureStopResponse> {
        self.check_init()?;
        Err(Status::unimplemented("packet capture is not supported"))
    }

    async fn capture_status(
        &self,
        _: Request<proto::CaptureStatusRequest>,
    ) -> RpcResult<proto::CaptureStatusResponse> {
        self.check_init()?;
        Err(Status::unimplemented("packet capture is not supported"))
    }
}

fn vni_kind(t: proto::VniType) -> dp::VniType {
    match t {
        proto::VniType::VniIpv4 => dp::VniType::Ipv4,
        proto::VniType::VniIpv6 => dp::VniType::Ipv6,
        proto::VniType::VniBoth => dp::VniType::Both,
    }
}
