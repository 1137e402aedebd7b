//! A thin client of dpservice's gRPC API (`dpdkironcore.v1`) in metalnet's terms: typed addresses instead of the
//! ASCII text dpservice puts into `bytes` fields, `Option` for "not there", and one error type in which every
//! non-zero dpservice status code is an error (upstream metalnet swallows errors carrying a status code on some
//! paths, e.g. rejected Deny firewall rules; here the caller decides which codes mean "already done").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_dpservice::proto::{self, dpd_kironcore_client::DpdKironcoreClient};
use tonic::transport::Channel;

/// dpservice status codes metalnet reacts to (dpservice `grpc/dp_grpc_status.h`).
pub mod code {
    /// NOT_FOUND.
    pub const NOT_FOUND: u32 = 201;
    /// ALREADY_EXISTS.
    pub const ALREADY_EXISTS: u32 = 202;
    /// NO_VM: the interface does not exist.
    pub const NO_VM: u32 = 205;
    /// NO_VNI: the VNI has no tables (not in use).
    pub const NO_VNI: u32 = 206;
    /// ROUTE_EXISTS.
    pub const ROUTE_EXISTS: u32 = 301;
    /// ROUTE_NOT_FOUND.
    pub const ROUTE_NOT_FOUND: u32 = 302;
    /// ROUTE_BAD_PORT: the route is an interface's own, not an external one.
    pub const ROUTE_BAD_PORT: u32 = 304;
    /// SNAT_NO_DATA: the interface has no VIP / NAT.
    pub const SNAT_NO_DATA: u32 = 341;
    /// NO_BACKIP: no such load balancer target.
    pub const NO_BACKIP: u32 = 421;
    /// NO_LB: no such load balancer.
    pub const NO_LB: u32 = 422;
}

/// A failed dpservice call.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    /// The call failed at the gRPC level (unreachable, `ABORTED "not initialized"`, `INVALID_ARGUMENT`, ...).
    #[error("dpservice {op}: {status}")]
    Grpc {
        /// The RPC.
        op: &'static str,
        /// The gRPC status.
        status: tonic::Status,
    },
    /// dpservice answered with a business error code.
    #[error("dpservice {op}: {message} ({code})")]
    Service {
        /// The RPC.
        op: &'static str,
        /// The dpservice status code.
        code: u32,
        /// Its name.
        message: String,
    },
    /// A reply could not be understood (an address that does not parse).
    #[error("dpservice {op}: malformed reply: {what}")]
    Malformed {
        /// The RPC.
        op: &'static str,
        /// What was wrong.
        what: String,
    },
}

impl DpError {
    /// The dpservice status code, if this is a business error.
    pub fn code(&self) -> Option<u32> {
        match self {
            DpError::Service { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether dpservice says it has not been initialized (a fresh process: `ABORTED "not initialized"`).
    pub fn is_not_initialized(&self) -> bool {
        matches!(self, DpError::Grpc { status, .. } if status.code() == tonic::Code::Aborted)
    }

    /// Whether dpservice lost its state or is unreachable: it was restarted (`ABORTED "not initialized"`) or the
    /// connection failed. The supervisor re-initializes and re-programs everything then.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DpError::Grpc { status, .. }
            if matches!(status.code(), tonic::Code::Aborted | tonic::Code::Unavailable | tonic::Code::Unknown))
    }
}

/// The result of a dpservice call.
pub type DpResult<T> = Result<T, DpError>;

fn check(op: &'static str, status: Option<proto::Status>) -> DpResult<()> {
    match status {
        Some(s) if s.code != 0 => Err(DpError::Service {
            op,
            code: s.code,
            message: s.message,
        }),
        _ => Ok(()),
    }
}

/// Maps the given business codes to `Ok(None)` ("absent"/"already done").
pub fn absent_on<T>(r: DpResult<T>, codes: &[u32]) -> DpResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code().is_some_and(|c| codes.contains(&c)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The ASCII text of an address, as dpservice wants it in `bytes` fields.
pub fn text(ip: IpAddr) -> Vec<u8> {
    ip.to_string().into_bytes()
}

/// An `IpAddress` message.
pub fn ip_msg(ip: IpAddr) -> proto::IpAddress {
    let ipver = if ip.is_ipv4() {
        proto::IpVersion::Ipv4
    } else {
        proto::IpVersion::Ipv6
    };
    proto::IpAddress {
        ipver: ipver as i32,
        address: text(ip),
    }
}

/// A `Prefix` message.
pub fn prefix_msg(net: IpNet) -> proto::Prefix {
    proto::Prefix {
        ip: Some(ip_msg(net.addr())),
        length: u32::from(net.prefix_len()),
        underlay_route: Vec::new(),
    }
}

fn parse_text(op: &'static str, bytes: &[u8]) -> DpResult<IpAddr> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim_end_matches('\0').parse().ok())
        .ok_or_else(|| DpError::Malformed {
            op,
            what: format!("address {:?}", String::from_utf8_lossy(bytes)),
        })
}

fn parse_underlay(op: &'static str, bytes: &[u8]) -> DpResult<Ipv6Addr> {
    match parse_text(op, bytes)? {
        IpAddr::V6(a) => Ok(a),
        other => Err(DpError::Malformed {
            op,
            what: format!("underlay {other} is not IPv6"),
        }),
    }
}

fn parse_ip(op: &'static str, ip: Option<&proto::IpAddress>) -> DpResult<IpAddr> {
    parse_text(op, ip.map(|i| i.address.as_slice()).unwrap_or_default())
}

fn parse_prefix(op: &'static str, p: Option<&proto::Prefix>) -> DpResult<IpNet> {
    let p = p.ok_or_else(|| DpError::Malformed {
        op,
        what: "missing prefix".into(),
    })?;
    let addr = parse_ip(op, p.ip.as_ref())?;
    let len = u8::try_from(p.length).unwrap_or(u8::MAX);
    IpNet::new(addr, len).map_err(|e| DpError::Malformed {
        op,
        what: e.to_string(),
    })
}

/// An interface as dpservice has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpInterface {
    /// Interface ID (the NetworkInterface UID).
    pub id: String,
    /// VNI.
    pub vni: u32,
    /// IPv4 address (`None` for `0.0.0.0`).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address (`None` for `::`).
    pub ipv6: Option<Ipv6Addr>,
    /// Underlay address.
    pub underlay: Ipv6Addr,
    /// dpservice device name.
    pub device: String,
    /// Hostname (empty: none).
    pub hostname: String,
}

fn interface(op: &'static str, i: proto::Interface) -> DpResult<DpInterface> {
    let v4 = match parse_text(op, &i.primary_ipv4) {
        Ok(IpAddr::V4(a)) if !a.is_unspecified() => Some(a),
        _ => None,
    };
    let v6 = match parse_text(op, &i.primary_ipv6) {
        Ok(IpAddr::V6(a)) if !a.is_unspecified() => Some(a),
        _ => None,
    };
    Ok(DpInterface {
        id: String::from_utf8_lossy(&i.id).into_owned(),
        vni: i.vni,
        ipv4: v4,
        ipv6: v6,
        underlay: parse_underlay(op, &i.underlay_route)?,
        device: i.pci_name,
        hostname: i.hostname,
    })
}

/// What CreateInterface needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInterface {
    /// Interface ID.
    pub id: String,
    /// VNI.
    pub vni: u32,
    /// IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// dpservice device name.
    pub device: String,
    /// Total rate limit, Mbit/s (0: none).
    pub total_rate: u64,
    /// Public rate limit, Mbit/s (0: none).
    pub public_rate: u64,
    /// Hostname (empty: none).
    pub hostname: String,
}

/// A NAT (local or neighbour) as dpservice has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nat {
    /// The NAT IP.
    pub ip: IpAddr,
    /// First port.
    pub min_port: u32,
    /// End of the port range (exclusive).
    pub max_port: u32,
    /// Underlay: the local NAT's own, or the neighbour's to relay to.
    pub underlay: Ipv6Addr,
    /// VNI (neighbour NATs).
    pub vni: u32,
}

/// A load balancer as dpservice has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpLoadBalancer {
    /// VNI.
    pub vni: u32,
    /// The VIP.
    pub ip: IpAddr,
    /// `(protocol number, port)`, sorted.
    pub ports: Vec<(i32, u32)>,
    /// Underlay address.
    pub underlay: Ipv6Addr,
}

/// An external route as dpservice has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DpRoute {
    /// Destination.
    pub prefix: IpNet,
    /// VNI of the next hop.
    pub nexthop_vni: u32,
    /// Underlay next hop.
    pub nexthop: IpAddr,
}

/// A dpservice connection. Cheap to clone (tonic channels multiplex).
#[derive(Debug, Clone)]
pub struct Dp {
    client: DpdKironcoreClient<Channel>,
}

macro_rules! call {
    ($self:ident, $rpc:ident, $req:expr) => {{
        let op = stringify!($rpc);
        let r = $self
            .client
            .clone()
            .$rpc($req)
            .await
            .map_err(|status| DpError::Grpc { op, status })?
            .into_inner();
        check(op, r.status.clone())?;
        (op, r)
    }};
}

impl Dp {
    /// A client on a lazily connected channel to `uri` (`http://host:port`); calls fail with `UNAVAILABLE`
    /// until dpservice is up, and the channel reconnects by itself.
    pub fn lazy(uri: &str) -> Result<Dp, String> {
        let channel = Channel::from_shared(uri.to_owned())
            .map_err(|e| format!("{uri}: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .connect_lazy();
        Ok(Dp {
            client: DpdKironcoreClient::new(channel),
        })
    }

    /// CheckInitialized: the process UUID.
    pub async fn check_initialized(&self) -> DpResult<String> {
        let (_, r) = call!(self, check_initialized, proto::CheckInitializedRequest {});
        Ok(r.uuid)
    }

    /// Initialize: the process UUID.
    pub async fn initialize(&self) -> DpResult<String> {
        let (_, r) = call!(self, initialize, proto::InitializeRequest {});
        Ok(r.uuid)
    }

    /// GetVersion: the service version.
    pub async fn get_version(&self, client_name: &str) -> DpResult<String> {
        let (_, r) = call!(
            self,
            get_version,
            proto::GetVersionRequest {
                client_protocol: env!("CARGO_PKG_VERSION").into(),
                client_name: client_name.into(),
                client_version: env!("CARGO_PKG_VERSION").into(),
            }
        );
        Ok(r.service_version)
    }

    /// ListInterfaces.
    pub async fn list_interfaces(&self) -> DpResult<Vec<DpInterface>> {
        let (op, r) = call!(self, list_interfaces, proto::ListInterfacesRequest {});
        r.interfaces.into_iter().map(|i| interface(op, i)).collect()
    }

    /// GetInterface; `None` if there is none with this ID.
    pub async fn get_interface(&self, id: &str) -> DpResult<Option<DpInterface>> {
        let r = async {
            let (op, r) = call!(
                self,
                get_interface,
                proto::GetInterfaceRequest {
                    interface_id: id.into()
                }
            );
            interface(op, r.interface.unwrap_or_default())
        }
        .await;
        absent_on(r, &[code::NOT_FOUND])
    }

    /// CreateInterface: the underlay address.
    pub async fn create_interface(&self, n: &NewInterface) -> DpResult<Ipv6Addr> {
        let zero4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let zero6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let (op, r) = call!(
            self,
            create_interface,
            proto::CreateInterfaceRequest {
                interface_type: proto::InterfaceType::Virtual as i32,
                interface_id: n.id.clone().into_bytes(),
                vni: n.vni,
                ipv4_config: Some(proto::IpConfig {
                    primary_address: text(n.ipv4.map_or(zero4, IpAddr::V4)),
                }),
                ipv6_config: Some(proto::IpConfig {
                    primary_address: text(n.ipv6.map_or(zero6, IpAddr::V6)),
                }),
                pxe_config: None,
                device_name: n.device.clone(),
                metering_parameters: Some(proto::MeteringParams {
                    total_rate: n.total_rate,
                    public_rate: n.public_rate,
                }),
                preferred_underlay_route: Vec::new(),
                hostname: n.hostname.clone(),
            }
        );
        parse_underlay(op, &r.underlay_route)
    }

    /// DeleteInterface; `Ok(false)` if it did not exist.
    pub async fn delete_interface(&self, id: &str) -> DpResult<bool> {
        let r = async {
            call!(
                self,
                delete_interface,
                proto::DeleteInterfaceRequest {
                    interface_id: id.into()
                }
            );
            Ok(())
        }
        .await;
        Ok(absent_on(r, &[code::NOT_FOUND])?.is_some())
    }

    /// ListPrefixes (`lb`: ListLoadBalancerPrefixes): `(prefix, underlay)`.
    pub async fn list_prefixes(&self, id: &str, lb: bool) -> DpResult<Vec<(IpNet, Ipv6Addr)>> {
        let (op, prefixes) = if lb {
            let (op, r) = call!(
                self,
                list_load_balancer_prefixes,
                proto::ListLoadBalancerPrefixesRequest {
                    interface_id: id.into()
                }
            );
            (op, r.prefixes)
        } else {
            let (op, r) = call!(
                self,
                list_prefixes,
                proto::ListPrefixesRequest {
                    interface_id: id.into()
                }
            );
            (op, r.prefixes)
        };
        prefixes
            .into_iter()
            .map(|p| {
                Ok((
                    parse_prefix(op, Some(&p))?,
                    parse_underlay(op, &p.underlay_route)?,
                ))
            })
            .collect()
    }

    /// CreatePrefix (`lb`: CreateLoadBalancerPrefix): the underlay.
    pub async fn create_prefix(&self, id: &str, prefix: IpNet, lb: bool) -> DpResult<Ipv6Addr> {
        let (op, underlay) = if lb {
            let (op, r) = call!(
                self,
                create_load_balancer_prefix,
                proto::CreateLoadBalancerPrefixRequest {
                    interface_id: id.into(),
                    prefix: Some(prefix_msg(prefix)),
                    preferred_underlay_route: Vec::new(),
                }
            );
            (op, r.underlay_route)
        } else {
            let (op, r) = call!(
                self,
                create_prefix,
                proto::CreatePrefixRequest {
                    interface_id: id.into(),
                    prefix: Some(prefix_msg(prefix)),
                    preferred_underlay_route: Vec::new(),
                }
            );
            (op, r.underlay_route)
        };
        parse_underlay(op, &underlay)
    }

    /// DeletePrefix (`lb`: DeleteLoadBalancerPrefix).
    pub async fn delete_prefix(&self, id: &str, prefix: IpNet, lb: bool) -> DpResult<()> {
        if lb {
            call!(
                self,
                delete_load_balancer_prefix,
                proto::DeleteLoadBalancerPrefixRequest {
                    interface_id: id.into(),
                    prefix: Some(prefix_msg(prefix)),
                }
            );
        } else {
            call!(
                self,
                delete_prefix,
                proto::DeletePrefixRequest {
                    interface_id: id.into(),
                    prefix: Some(prefix_msg(prefix)),
                }
            );
        }
        Ok(())
    }

    /// GetVip: `(vip, underlay)`, `None` without one.
    pub async fn get_vip(&self, id: &str) -> DpResult<Option<(IpAddr, Ipv6Addr)>> {
        let r = async {
            let (op, r) = call!(
                self,
                get_vip,
                proto::GetVipRequest {
                    interface_id: id.into()
                }
            );
            Ok((
                parse_ip(op, r.vip_ip.as_ref())?,
                parse_underlay(op, &r.underlay_route)?,
            ))
        }
        .await;
        absent_on(r, &[code::SNAT_NO_DATA])
    }

    /// CreateVip: the underlay.
    pub async fn create_vip(&self, id: &str, vip: IpAddr) -> DpResult<Ipv6Addr> {
        let (op, r) = call!(
            self,
            create_vip,
            proto::CreateVipRequest {
                interface_id: id.into(),
                vip_ip: Some(ip_msg(vip)),
                preferred_underlay_route: Vec::new(),
            }
        );
        parse_underlay(op, &r.underlay_route)
    }

    /// DeleteVip; absent is fine.
    pub async fn delete_vip(&self, id: &str) -> DpResult<()> {
        let r = async {
            call!(
                self,
                delete_vip,
                proto::DeleteVipRequest {
                    interface_id: id.into()
                }
            );
            Ok(())
        }
        .await;
        absent_on(r, &[code::SNAT_NO_DATA, code::NO_VM]).map(|_| ())
    }

    /// GetNat; `None` without one.
    pub async fn get_nat(&self, id: &str) -> DpResult<Option<Nat>> {
        let r = async {
            let (op, r) = call!(
                self,
                get_nat,
                proto::GetNatRequest {
                    interface_id: id.into()
                }
            );
            Ok(Nat {
                ip: parse_ip(op, r.nat_ip.as_ref())?,
                min_port: r.min_port,
                max_port: r.max_port,
                underlay: parse_underlay(op, &r.underlay_route)?,
                vni: 0,
            })
        }
        .await;
        absent_on(r, &[code::SNAT_NO_DATA])
    }

    /// CreateNat: the underlay.
    pub async fn create_nat(&self, id: &str, ip: IpAddr, min_port: u32, max_port: u32) -> DpResult<Ipv6Addr> {
        let (op, r) = call!(
            self,
            create_nat,
            proto::CreateNatRequest {
                interface_id: id.into(),
                nat_ip: Some(ip_msg(ip)),
                min_port,
                max_port,
                preferred_underlay_route: Vec::new(),
            }
        );
        parse_underlay(op, &r.underlay_route)
    }

    /// DeleteNat; absent is fine.
    pub async fn delete_nat(&self, id: &str) -> DpResult<()> {
        let r = async {
            call!(
                self,
                delete_nat,
                proto::DeleteNatRequest {
                    interface_id: id.into()
                }
            );
            Ok(())
        }
        .await;
        absent_on(r, &[code::SNAT_NO_DATA, code::NO_VM]).map(|_| ())
    }

    /// ListNeighborNats (all NAT IPs).
    pub async fn list_neighbor_nats(&self) -> DpResult<Vec<Nat>> {
        let (op, r) = call!(
            self,
            list_neighbor_nats,
            proto::ListNeighborNatsRequest {
                nat_ip: Some(ip_msg(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
            }
        );
        r.nat_entries
            .into_iter()
            .map(|e| {
                Ok(Nat {
                    ip: parse_ip(op, e.actual_nat_ip.as_ref().or(e.nat_ip.as_ref()))?,
                    min_port: e.min_port,
                    max_port: e.max_port,
                    underlay: parse_underlay(op, &e.underlay_route)?,
                    vni: e.vni,
                })
            })
            .collect()
    }

    /// CreateNeighborNat.
    pub async fn create_neighbor_nat(&self, n: &Nat) -> DpResult<()> {
        call!(
            self,
            create_neighbor_nat,
            proto::CreateNeighborNatRequest {
                nat_ip: Some(ip_msg(n.ip)),
                vni: n.vni,
                min_port: n.min_port,
                max_port: n.max_port,
                underlay_route: text(IpAddr::V6(n.underlay)),
            }
        );
        Ok(())
    }

    /// DeleteNeighborNat.
    pub async fn delete_neighbor_nat(&self, n: &Nat) -> DpResult<()> {
        call!(
            self,
            delete_neighbor_nat,
            proto::DeleteNeighborNatRequest {
                nat_ip: Some(ip_msg(n.ip)),
                vni: n.vni,
                min_port: n.min_port,
                max_port: n.max_port,
            }
        );
        Ok(())
    }

    /// GetLoadBalancer; `None` if there is none with this ID.
    pub async fn get_load_balancer(&self, id: &str) -> DpResult<Option<DpLoadBalancer>> {
        let r = async {
            let (op, r) = call!(
                self,
                get_load_balancer,
                proto::GetLoadBalancerRequest {
                    loadbalancer_id: id.into()
                }
            );
            let mut ports: Vec<(i32, u32)> = r
                .loadbalanced_ports
                .iter()
                .map(|p| (p.protocol, p.port))
                .collect();
            ports.sort_unstable();
            Ok(DpLoadBalancer {
                vni: r.vni,
                ip: parse_ip(op, r.loadbalanced_ip.as_ref())?,
                ports,
                underlay: parse_underlay(op, &r.underlay_route)?,
            })
        }
        .await;
        absent_on(r, &[code::NOT_FOUND])
    }

    /// CreateLoadBalancer: the underlay.
    pub async fn create_load_balancer(
        &self,
        id: &str,
        vni: u32,
        ip: IpAddr,
        ports: &[(i32, u32)],
    ) -> DpResult<Ipv6Addr> {
        let (op, r) = call!(
            self,
            create_load_balancer,
            proto::CreateLoadBalancerRequest {
                loadbalancer_id: id.into(),
                loadbalanced_ip: Some(ip_msg(ip)),
                vni,
                loadbalanced_ports: ports
                    .iter()
                    .map(|&(protocol, port)| proto::LbPort { port, protocol })
                    .collect(),
                preferred_underlay_route: Vec::new(),
            }
        );
        parse_underlay(op, &r.underlay_route)
    }

    /// DeleteLoadBalancer; `Ok(false)` if it did not exist.
    pub async fn delete_load_balancer(&self, id: &str) -> DpResult<bool> {
        let r = async {
            call!(
                self,
                delete_load_balancer,
                proto::DeleteLoadBalancerRequest {
                    loadbalancer_id: id.into()
                }
            );
            Ok(())
        }
        .await;
        Ok(absent_on(r, &[code::NOT_FOUND])?.is_some())
    }

    /// ListLoadBalancers: their IDs.
    pub async fn list_load_balancers(&self) -> DpResult<Vec<String>> {
        let (_, r) = call!(self, list_load_balancers, proto::ListLoadBalancersRequest {});
        Ok(r.loadbalancers
            .iter()
            .map(|l| String::from_utf8_lossy(&l.id).into_owned())
            .collect())
    }

    /// ListLoadBalancerTargets.
    pub async fn list_load_balancer_targets(&self, id: &str) -> DpResult<Vec<IpAddr>> {
        let (op, r) = call!(
            self,
            list_load_balancer_targets,
            proto::ListLoadBalancerTargetsRequest {
                loadbalancer_id: id.into()
            }
        );
        r.target_ips.iter().map(|t| parse_ip(op, Some(t))).collect()
    }

    /// CreateLoadBalancerTarget.
    pub async fn create_load_balancer_target(&self, id: &str, target: IpAddr) -> DpResult<()> {
        call!(
            self,
            create_load_balancer_target,
            proto::CreateLoadBalancerTargetRequest {
                loadbalancer_id: id.into(),
                target_ip: Some(ip_msg(target)),
            }
        );
        Ok(())
    }

    /// DeleteLoadBalancerTarget.
    pub async fn delete_load_balancer_target(&self, id: &str, target: IpAddr) -> DpResult<()> {
        call!(
            self,
            delete_load_balancer_target,
            proto::DeleteLoadBalancerTargetRequest {
                loadbalancer_id: id.into(),
                target_ip: Some(ip_msg(target)),
            }
        );
        Ok(())
    }

    /// ListRoutes of one VNI (external routes only).
    pub async fn list_routes(&self, vni: u32) -> DpResult<Vec<DpRoute>> {
        let (op, r) = call!(self, list_routes, proto::ListRoutesRequest { vni });
        r.routes
            .into_iter()
            .map(|r| {
                Ok(DpRoute {
                    prefix: parse_prefix(op, r.prefix.as_ref())?,
                    nexthop_vni: r.nexthop_vni,
                    nexthop: parse_ip(op, r.nexthop_address.as_ref())?,
                })
            })
            .collect()
    }

    /// CreateRoute in `vni`.
    pub async fn create_route(&self, vni: u32, route: &DpRoute) -> DpResult<()> {
        call!(
            self,
            create_route,
            proto::CreateRouteRequest {
                vni,
                route: Some(proto::Route {
                    prefix: Some(prefix_msg(route.prefix)),
                    nexthop_vni: route.nexthop_vni,
                    nexthop_address: Some(ip_msg(route.nexthop)),
                    weight: 100,
                }),
            }
        );
        Ok(())
    }

    /// DeleteRoute of `prefix` in `vni`.
    pub async fn delete_route(&self, vni: u32, prefix: IpNet) -> DpResult<()> {
        call!(
            self,
            delete_route,
            proto::DeleteRouteRequest {
                vni,
                route: Some(proto::Route {
                    prefix: Some(prefix_msg(prefix)),
                    ..Default::default()
                }),
            }
        );
        Ok(())
    }

    /// CheckVniInUse (IPv4 tables, which exist exactly when the IPv6 ones do).
    pub async fn vni_in_use(&self, vni: u32) -> DpResult<bool> {
        let (_, r) = call!(
            self,
            check_vni_in_use,
            proto::CheckVniInUseRequest {
                vni,
                r#type: proto::VniType::VniIpv4 as i32,
            }
        );
        Ok(r.in_use)
    }

    /// ListFirewallRules.
    pub async fn list_firewall_rules(&self, id: &str) -> DpResult<Vec<proto::FirewallRule>> {
        let (_, r) = call!(
            self,
            list_firewall_rules,
            proto::ListFirewallRulesRequest {
                interface_id: id.into()
            }
        );
        Ok(r.rules)
    }

    /// CreateFirewallRule.
    pub async fn create_firewall_rule(&self, id: &str, rule: proto::FirewallRule) -> DpResult<()> {
        call!(
            self,
            create_firewall_rule,
            proto::CreateFirewallRuleRequest {
                interface_id: id.into(),
                rule: Some(rule),
            }
        );
        Ok(())
    }

    /// DeleteFirewallRule; absent is fine.
    pub async fn delete_firewall_rule(&self, id: &str, rule_id: &[u8]) -> DpResult<()> {
        let r = async {
            call!(
                self,
                delete_firewall_rule,
                proto::DeleteFirewallRuleRequest {
                    interface_id: id.into(),
                    rule_id: rule_id.to_vec(),
                }
            );
            Ok(())
        }
        .await;
        absent_on(r, &[code::NOT_FOUND]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nonzero_status_code_is_an_error() {
        assert!(check("x", None).is_ok());
        assert!(
            check(
                "x",
                Some(proto::Status {
                    code: 0,
                    message: "Success".into()
                })
            )
            .is_ok()
        );
        let e = check(
            "x",
            Some(proto::Status {
                code: 441,
                message: "NO_DROP_SUPPORT".into(),
            }),
        )
        .unwrap_err();
        assert_eq!(e.code(), Some(441));
        assert!(
            absent_on::<()>(Err(e), &[201]).is_err(),
            "only the named codes mean absent"
        );
        let e = check(
            "x",
            Some(proto::Status {
                code: 201,
                message: "NOT_FOUND".into(),
            }),
        )
        .unwrap_err();
        assert_eq!(absent_on::<()>(Err(e), &[201]).unwrap(), None);
    }

    #[test]
    fn addresses_are_text() {
        assert_eq!(text("10.0.0.1".parse().unwrap()), b"10.0.0.1");
        assert_eq!(
            parse_text("x", b"fc00::1").unwrap(),
            "fc00::1".parse::<IpAddr>().unwrap()
        );
        assert!(parse_text("x", b"\x0a\0\0\x01").is_err());
        assert!(parse_underlay("x", b"10.0.0.1").is_err());
        let p = prefix_msg("10.1.0.0/16".parse().unwrap());
        assert_eq!(
            parse_prefix("x", Some(&p)).unwrap(),
            "10.1.0.0/16".parse::<IpNet>().unwrap()
        );
        let i = interface(
            "x",
            proto::Interface {
                id: b"u".to_vec(),
                vni: 7,
                primary_ipv4: b"10.0.0.1".to_vec(),
                primary_ipv6: b"::".to_vec(),
                underlay_route: b"fc00::5".to_vec(),
                pci_name: "net_tap2".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(i.ipv4, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(i.ipv6, None, ":: means no IPv6");
    }
}
