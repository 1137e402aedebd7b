//! The dpservice client proper: one method per RPC metalnet uses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_dpservice::proto::{self, dpd_kironcore_client::DpdKironcoreClient};
use tonic::transport::Channel;

use super::{
    DpError, DpInterface, DpLoadBalancer, DpResult, DpRoute, Nat, NewInterface, absent_on, check, code,
    interface, ip_msg, parse_ip, parse_prefix, parse_underlay, prefix_msg, text, wire_vni,
};
use ironnet_vni::Vni;

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
            // A hung dpservice must not hang reconciles (and with them the controller's slots) forever.
            .timeout(std::time::Duration::from_secs(10))
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
                vni: n.vni.get(),
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
                vni: None,
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
                    vni: wire_vni(op, e.vni)?,
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
                vni: Vni::to_wire(n.vni),
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
                vni: Vni::to_wire(n.vni),
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
                vni: wire_vni(op, r.vni)?,
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
        vni: Vni,
        ip: IpAddr,
        ports: &[(i32, u32)],
    ) -> DpResult<Ipv6Addr> {
        let (op, r) = call!(
            self,
            create_load_balancer,
            proto::CreateLoadBalancerRequest {
                loadbalancer_id: id.into(),
                loadbalanced_ip: Some(ip_msg(ip)),
                vni: vni.get(),
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
    pub async fn list_routes(&self, vni: Vni) -> DpResult<Vec<DpRoute>> {
        let (op, r) = call!(self, list_routes, proto::ListRoutesRequest { vni: vni.get() });
        r.routes
            .into_iter()
            .map(|r| {
                Ok(DpRoute {
                    prefix: parse_prefix(op, r.prefix.as_ref())?,
                    nexthop_vni: wire_vni(op, r.nexthop_vni)?,
                    nexthop: parse_ip(op, r.nexthop_address.as_ref())?,
                })
            })
            .collect()
    }

    /// CreateRoute in `vni`.
    pub async fn create_route(&self, vni: Vni, route: &DpRoute) -> DpResult<()> {
        call!(
            self,
            create_route,
            proto::CreateRouteRequest {
                vni: vni.get(),
                route: Some(proto::Route {
                    prefix: Some(prefix_msg(route.prefix)),
                    nexthop_vni: Vni::to_wire(route.nexthop_vni),
                    nexthop_address: Some(ip_msg(route.nexthop)),
                    weight: 100,
                }),
            }
        );
        Ok(())
    }

    /// DeleteRoute of `prefix` in `vni`.
    pub async fn delete_route(&self, vni: Vni, prefix: IpNet) -> DpResult<()> {
        call!(
            self,
            delete_route,
            proto::DeleteRouteRequest {
                vni: vni.get(),
                route: Some(proto::Route {
                    prefix: Some(prefix_msg(prefix)),
                    ..Default::default()
                }),
            }
        );
        Ok(())
    }

    /// CheckVniInUse (IPv4 tables, which exist exactly when the IPv6 ones do).
    pub async fn vni_in_use(&self, vni: Vni) -> DpResult<bool> {
        let (_, r) = call!(
            self,
            check_vni_in_use,
            proto::CheckVniInUseRequest {
                vni: vni.get(),
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
