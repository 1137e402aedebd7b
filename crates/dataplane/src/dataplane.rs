//! The [`Dataplane`]: all dataplane state, its construction, ports, interfaces, prefixes, routes and VNIs.
//!
//! Control methods mirror dpservice's gRPC RPCs (service `dpdkironcore.v1.DPDKironcore`). They run on the
//! thread that owns the dataplane, between batches, so a control change is atomic with respect to packet
//! processing. Every method either applies its change completely or returns an error and leaves the state
//! unchanged.
//!
//! VNIs: a VNI value is an [`ironnet_vni::Vni`] (1..=16777215), and wherever the wire's 0 can stand in a VNI
//! field the dataplane holds `Option<Vni>`, with `None` for that 0. dpservice accepts interfaces, routes, NATs and
//! load balancers in VNI 0 and keeps tables for it like for any other VNI, so `None` is a table key of its own
//! here too; it is also a next hop without VNI (load-balancer backends), the packets of a port without an
//! interface (parsed before they are dropped), and, for [`Dataplane::list_routes`], "every VNI". The gRPC server
//! converts once at its edge (`Vni::from_wire` in, `Vni::to_wire` out), so its answers are those of a `u32`
//! dataplane. `Option<Vni>` is four bytes (the zero niche), so flow keys and table entries keep their size and
//! comparing or ordering two of them is one `u32` comparison, ordered as their numbers with `None` as 0.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ironnet_vni::Vni;

use crate::api::{CreateInterface, InterfaceInfo, PrefixInfo, PxeConfig, Route, RouteEntry, VniType};
use crate::config::{ConfigError, DataplaneConfig};
use crate::error::DpError;
use crate::firewall::FirewallRule;
use crate::flow::FlowTable;
use crate::lpm::Lpm;
use crate::maglev::Maglev;
use crate::nat::NatPorts;
use crate::port::{MacAddr, PortConfig, PortId, PortInfo, PortKind};
use crate::stats::Stats;
use crate::underlay::{UnderlayGenerator, Vnf, VnfKind, VnfTable};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Maximum number of VNIs with routing tables, i.e. the size limit of the VNI table (dpservice: 512).
pub const MAX_VNI_TABLES: usize = 512;
/// Maximum rules per VNI routing table and family (dpservice: 1024).
pub const MAX_ROUTES: usize = 1024;
/// Maximum number of load balancers (dpservice: 256).
pub const MAX_LBS: usize = 256;

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteTarget {
    /// A local VM port: the interface's own address (`alias = false`) or an alias prefix.
    Vf { port: PortId, alias: bool },
    /// Another host, via the uplink.
    External {
        nexthop_vni: Option<Vni>,
        nexthop: Ipv6Addr,
    },
}

/// The routing tables of one VNI.
#[derive(Debug, Default)]
pub(crate) struct VniTables {
    pub(crate) v4: Lpm<u32, RouteTarget>,
    pub(crate) v6: Lpm<u128, RouteTarget>,
    /// Interfaces and load balancers using the VNI.
    users: u32,
}

/// A VM interface bound to a VF port.
#[derive(Debug, Clone)]
pub(crate) struct Interface {
    pub(crate) id: String,
    pub(crate) vni: Option<Vni>,
    pub(crate) ipv4: Option<Ipv4Addr>,
    pub(crate) ipv6: Option<Ipv6Addr>,
    pub(crate) underlay: Ipv6Addr,
    pub(crate) pxe: Option<PxeConfig>,
    pub(crate) hostname: Option<String>,
    pub(crate) prefixes: Vec<PrefixInfo>,
    pub(crate) lb_prefixes: Vec<PrefixInfo>,
    pub(crate) vip: Option<crate::api::VipInfo>,
    pub(crate) nat: Option<crate::api::NatInfo>,
    pub(crate) rules: Vec<FirewallRule>,
}

/// A registered port.
#[derive(Debug, Clone)]
pub(crate) struct Port {
    pub(crate) config: PortConfig,
    pub(crate) vm_mac: MacAddr,
    pub(crate) mac_learned: bool,
    pub(crate) iface: Option<Interface>,
}

/// A DNAT entry keyed by (public IPv4, VNI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dnat {
    /// A VIP: rewrite to the VM's IPv4.
    Vip { vm_ip: Ipv4Addr },
    /// A NAT IP: makes new inbound flows (echo, neighbour relay) possible.
    NatMarker,
}

/// A load balancer.
#[derive(Debug, Clone)]
pub(crate) struct LoadBalancer {
    pub(crate) id: String,
    pub(crate) vni: Option<Vni>,
    pub(crate) ip: IpAddr,
    pub(crate) ports: Vec<crate::api::LbPort>,
    pub(crate) underlay: Ipv6Addr,
    pub(crate) maglev: Maglev,
}

/// All dataplane state: ports, interfaces, VNF table, routing tables, NAT, load balancers, firewall rules and the
/// flow table. It does no I/O and holds no locks; the owner calls [`Dataplane::process`] for batches of frames,
/// [`Dataplane::tick`] periodically and the control methods between batches.
#[derive(Debug)]
pub struct Dataplane {
    pub(crate) config: DataplaneConfig,
    pub(crate) initialized: bool,
    pub(crate) ports: Vec<Port>,
    pub(crate) pfs: Vec<PortId>,
    pub(crate) iface_ports: Map<String, PortId>,
    pub(crate) vnf: VnfTable,
    pub(crate) underlays: UnderlayGenerator,
    /// Routing tables; mutate only through [`Dataplane::routes_mut`], which invalidates the flows' cached routes.
    pub(crate) vnis: Map<Option<Vni>, VniTables>,
    /// Number of (possible) routing-table changes, plus one; part of the forwarding epoch.
    pub(crate) route_gen: u64,
    pub(crate) dnat: Map<(Ipv4Addr, Option<Vni>), Dnat>,
    pub(crate) neighbor_nats: Vec<crate::api::NeighborNat>,
    pub(crate) nat_ports: NatPorts,
    pub(crate) lbs: Map<String, LoadBalancer>,
    pub(crate) lb_by_ip: Map<(Option<Vni>, IpAddr), String>,
    pub(crate) flows: FlowTable,
    pub(crate) stats: Stats,
    pub(crate) wcmp: [u8; 10],
    pub(crate) next_aging: u64,
    pub(crate) next_maintenance: u64,
    pub(crate) maintenance_rounds: u32,
}

impl Dataplane {
    /// A dataplane without ports. Fails if `config` does not validate.
    pub fn new(config: DataplaneConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        // WCMP: 10 slots, round(P/10) to pf0 (index 0), the rest to pf1 (index 1).
        let pf0_slots = (usize::from(config.wcmp_percent) + 5) / 10;
        let mut wcmp = [1u8; 10];
        for w in wcmp.iter_mut().take(pf0_slots) {
            *w = 0;
        }
        Ok(Dataplane {
            underlays: UnderlayGenerator::new(config.host_underlay, config.underlay_seed),
            flows: FlowTable::new(config.max_flows),
            config,
            initialized: false,
            ports: Vec::new(),
            pfs: Vec::new(),
            iface_ports: Map::default(),
            vnf: VnfTable::default(),
            vnis: Map::default(),
            route_gen: 1,
            dnat: Map::default(),
            neighbor_nats: Vec::new(),
            nat_ports: NatPorts::default(),
            lbs: Map::default(),
            lb_by_ip: Map::default(),
            stats: Stats::new(),
            wcmp,
            next_aging: 0,
            next_maintenance: 0,
            maintenance_rounds: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DataplaneConfig {
        &self.config
    }

    /// Registers a port and returns its id (dense, in registration order). At most 2 PFs and [`DataplaneConfig::max_vm_ports`] VFs;
    /// names must be unique.
    pub fn add_port(&mut self, config: PortConfig) -> Result<PortId, ConfigError> {
        if self.ports.iter().any(|p| p.config.name == config.name) {
            return Err(ConfigError::DuplicatePortName(config.name));
        }
        let vfs = self
            .ports
            .iter()
            .filter(|p| p.config.kind == PortKind::Vf)
            .count();
        match config.kind {
            PortKind::Pf if self.pfs.len() >= 2 => return Err(ConfigError::TooManyPorts),
            PortKind::Vf if vfs >= self.config.max_vm_ports => return Err(ConfigError::TooManyPorts),
            _ => {}
        }
        let id = PortId(u16::try_from(self.ports.len()).map_err(|_| ConfigError::TooManyPorts)?);
        if config.kind == PortKind::Pf {
            self.pfs.push(id);
        }
        self.ports.push(Port {
            vm_mac: config.mac,
            mac_learned: false,
            iface: None,
            config,
        });
        self.stats.add_port();
        Ok(id)
    }

    /// The id of the port named `name`.
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        self.ports
            .iter()
            .position(|p| p.config.name == name)
            .map(PortId::of_registered)
    }

    /// Runtime information about `port`.
    pub fn port(&self, port: PortId) -> Option<PortInfo> {
        self.ports.get(port.index()).map(|p| PortInfo {
            id: port,
            config: p.config.clone(),
            vm_mac: p.vm_mac,
            interface: p.iface.as_ref().map(|i| i.id.clone()),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of tracked flows.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Preallocates the flow table for `flows` flows (capped at `max_flows`). Call once at startup so that the
    /// first packet of a flow never pays for a table resize; costs roughly 330 bytes per flow up front.
    pub fn reserve_flows(&mut self, flows: usize) {
        self.flows.reserve(flows);
    }

    /// Approximate heap bytes of the flow table.
    pub fn flow_table_memory(&self) -> usize {
        self.flows.memory_bytes()
    }

    /// Whether [`Dataplane::initialize`] has been called.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// dpservice's Initialize: rebuilds every VNI's routing tables from the local interfaces (own addresses and
    /// alias prefixes; external routes are dropped), deletes all neighbour NATs, and marks the dataplane
    /// initialized. May be called again.
    pub fn initialize(&mut self) {
        let vnis: Vec<Option<Vni>> = self.vnis.keys().copied().collect();
        for vni in vnis {
            self.rebuild_vni_routes(vni);
        }
        let neighbors = std::mem::take(&mut self.neighbor_nats);
        for n in neighbors {
            self.release_nat_marker(n.nat_ip, n.vni);
        }
        self.flush_flows(|f| matches!(f.kind, crate::flow::FlowKind::NeighborRelay { .. }));
        self.initialized = true;
    }

    /// The routing tables for changing. Every call moves the forwarding epoch on, so flows re-run the route
    /// lookup that they cached.
    #[inline]
    pub(crate) fn routes_mut(&mut self) -> &mut Map<Option<Vni>, VniTables> {
        self.route_gen += 1;
        &mut self.vnis
    }

    /// The forwarding epoch: changes whenever a routing table or the VNF table may have changed, so a flow's
    /// cached output decision ([`crate::flow::FwdCache`]) is current exactly while its epoch equals this. Never 0.
    #[inline]
    pub(crate) fn fwd_epoch(&self) -> u64 {
        self.route_gen.wrapping_add(self.vnf.generation())
    }

    /// Recreates `vni`'s tables with only the local interface routes (own IPs and alias prefixes).
    fn rebuild_vni_routes(&mut self, vni: Option<Vni>) {
        let Some(t) = self.routes_mut().get_mut(&vni) else {
            return;
        };
        t.v4.retain(|_, _, r| matches!(r, RouteTarget::Vf { .. }));
        t.v6.retain(|_, _, r| matches!(r, RouteTarget::Vf { .. }));
    }

    /// Registers `addr` (or a fresh generated address) in the VNF table.
    pub(crate) fn alloc_underlay(
        &mut self,
        preferred: Option<Ipv6Addr>,
        vnf: Vnf,
    ) -> Result<Ipv6Addr, DpError> {
        let addr = match preferred {
            Some(a) if !a.is_unspecified() => {
                if !self.underlays.accepts_preferred(a) {
                    return Err(DpError::VnfInsert);
                }
                a
            }
            _ => {
                // Generated addresses cannot collide unless the counter wrapped or a preferred address took it.
                let mut a = self.underlays.next_address();
                while self.vnf.contains(&a) {
                    a = self.underlays.next_address();
                }
                a
            }
        };
        self.vnf.insert(addr, vnf)?;
        Ok(addr)
    }

    /// Takes a reference on `vni`'s tables, creating them.
    pub(crate) fn vni_ref(&mut self, vni: Option<Vni>) -> Result<(), DpError> {
        if let Some(t) = self.routes_mut().get_mut(&vni) {
            t.users += 1;
            return Ok(());
        }
        if self.vnis.len() >= MAX_VNI_TABLES {
            return Err(DpError::VniInit4);
        }
        self.routes_mut().insert(
            vni,
            VniTables {
                users: 1,
                ..Default::default()
            },
        );
        Ok(())
    }

    /// Drops a deleted interface's or load balancer's reference on `vni`. With the last one the VNI goes, and with
    /// it the VNI's neighbour NATs (and their relayed flows) and all its DNAT entries, i.e. the VIP and NAT address
    /// reservations, as dpservice's `src/dp_vni.c` does when it frees a VNI. (Rollbacks of a failed create use
    /// [`Dataplane::vni_unref`], which leaves them alone, so a failed request changes nothing.)
    pub(crate) fn vni_release(&mut self, vni: Option<Vni>) {
        self.vni_unref(vni);
        if self.vnis.contains_key(&vni) {
            return;
        }
        self.neighbor_nats.retain(|n| n.vni != vni);
        self.dnat.retain(|&(_, v), _| v != vni);
        self.flush_flows(|f| {
            matches!(f.kind, crate::flow::FlowKind::NeighborRelay { .. }) && f.keys[0].vni == vni
        });
    }

    /// Drops a reference on `vni`'s tables, freeing them with the last one.
    pub(crate) fn vni_unref(&mut self, vni: Option<Vni>) {
        if let Some(t) = self.routes_mut().get_mut(&vni) {
            t.users = t.users.saturating_sub(1);
            if t.users == 0 {
                self.routes_mut().remove(&vni);
            }
        }
    }

    /// Inserts a route; `RouteExists` if the masked prefix is taken, `RouteInsert` if the table is full.
    pub(crate) fn route_insert(
        &mut self,
        vni: Option<Vni>,
        prefix: IpNet,
        target: RouteTarget,
    ) -> Result<(), DpError> {
        let t = self.routes_mut().get_mut(&vni).ok_or(DpError::NoVni)?;
        let inserted = match prefix {
            IpNet::V4(p) => {
                if t.v4.get_exact(u32::from(p.addr()), p.prefix_len()).is_some() {
                    return Err(DpError::RouteExists);
                }
                if t.v4.len() >= MAX_ROUTES {
                    return Err(DpError::RouteInsert);
                }
                t.v4.insert(u32::from(p.addr()), p.prefix_len(), target)
            }
            IpNet::V6(p) => {
                if t.v6.get_exact(u128::from(p.addr()), p.prefix_len()).is_some() {
                    return Err(DpError::RouteExists);
                }
                if t.v6.len() >= MAX_ROUTES {
                    return Err(DpError::RouteInsert);
                }
                t.v6.insert(u128::from(p.addr()), p.prefix_len(), target)
            }
        };
        if inserted {
            Ok(())
        } else {
            Err(DpError::RouteExists)
        }
    }

    /// Removes a route, returning its target.
    pub(crate) fn route_remove(&mut self, vni: Option<Vni>, prefix: IpNet) -> Option<RouteTarget> {
        let t = self.routes_mut().get_mut(&vni)?;
        match prefix {
            IpNet::V4(p) => t.v4.remove(u32::from(p.addr()), p.prefix_len()),
            IpNet::V6(p) => t.v6.remove(u128::from(p.addr()), p.prefix_len()),
        }
    }

    pub(crate) fn iface(&self, id: &str) -> Result<(&Interface, PortId), DpError> {
        let port = *self.iface_ports.get(id).ok_or(DpError::NoVm)?;
        let iface = self.ports[port.index()].iface.as_ref().ok_or(DpError::NoVm)?;
        Ok((iface, port))
    }

    pub(crate) fn iface_mut(&mut self, id: &str) -> Result<(&mut Interface, PortId), DpError> {
        let port = *self.iface_ports.get(id).ok_or(DpError::NoVm)?;
        let iface = self.ports[port.index()].iface.as_mut().ok_or(DpError::NoVm)?;
        Ok((iface, port))
    }

    /// CreateInterface: binds a new interface to a free VF port, registers its underlay and its own-address
    /// routes in its VNI. Errors: unknown or non-VF port 201, port in use 202, id exists 402, bad preferred
    /// underlay or collision 401, VNI table limit 361, own address already routed in the VNI 301.
    pub fn create_interface(&mut self, req: CreateInterface) -> Result<Ipv6Addr, DpError> {
        let port = self.ports.get(req.port.index()).ok_or(DpError::NotFound)?;
        if port.config.kind != PortKind::Vf {
            return Err(DpError::NotFound);
        }
        if port.iface.is_some() {
            return Err(DpError::AlreadyExists);
        }
        if self.iface_ports.contains_key(&req.id) {
            return Err(DpError::VmHandle);
        }
        let own_routes: Vec<IpNet> = req
            .ipv4
            .filter(|a| !a.is_unspecified())
            .map(|a| IpNet::V4(Ipv4Net::from(a)))
            .into_iter()
            .chain(
                req.ipv6
                    .filter(|a| !a.is_unspecified())
                    .map(|a| IpNet::V6(Ipv6Net::from(a))),
            )
            .collect();
        if let Some(t) = self.vnis.get(&req.vni) {
            for r in &own_routes {
                let taken = match r {
                    IpNet::V4(p) => t.v4.get_exact(u32::from(p.addr()), 32).is_some(),
                    IpNet::V6(p) => t.v6.get_exact(u128::from(p.addr()), 128).is_some(),
                };
                if taken {
                    return Err(DpError::RouteExists);
                }
            }
        }
        let vnf = Vnf {
            kind: VnfKind::InterfaceIp,
            vni: req.vni,
            port: Some(req.port),
            prefix: None,
        };
        let underlay = self.alloc_underlay(req.preferred_underlay, vnf)?;
        if let Err(e) = self.vni_ref(req.vni) {
            self.vnf.remove(&underlay);
            return Err(e);
        }
        for (i, r) in own_routes.iter().enumerate() {
            if let Err(e) = self.route_insert(
                req.vni,
                *r,
                RouteTarget::Vf {
                    port: req.port,
                    alias: false,
                },
            ) {
                for done in &own_routes[..i] {
                    self.route_remove(req.vni, *done);
                }
                self.vni_unref(req.vni);
                self.vnf.remove(&underlay);
                return Err(e);
            }
        }
        self.ports[req.port.index()].iface = Some(Interface {
            id: req.id.clone(),
            vni: req.vni,
            ipv4: req.ipv4.filter(|a| !a.is_unspecified()),
            ipv6: req.ipv6.filter(|a| !a.is_unspecified()),
            underlay,
            pxe: req.pxe,
            hostname: req.hostname,
            prefixes: Vec::new(),
            lb_prefixes: Vec::new(),
            vip: None,
            nat: None,
            rules: Vec::new(),
        });
        self.iface_ports.insert(req.id, req.port);
        Ok(underlay)
    }

    /// GetInterface. 201 if unknown.
    pub fn get_interface(&self, id: &str) -> Result<InterfaceInfo, DpError> {
        let (i, port) = self.iface(id).map_err(|_| DpError::NotFound)?;
        Ok(info(i, port))
    }

    /// ListInterfaces, in port order.
    pub fn list_interfaces(&self) -> Vec<InterfaceInfo> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(n, p)| p.iface.as_ref().map(|i| info(i, PortId::of_registered(n))))
            .collect()
    }

    /// DeleteInterface: removes the interface with its VIP, NAT, prefixes, LB prefixes, firewall rules, routes,
    /// underlays and all flows of its port, and, if it was the VNI's last user, the VNI with its neighbour NATs and
    /// address reservations. 201 if unknown. The learned VM MAC stays with the port.
    pub fn delete_interface(&mut self, id: &str) -> Result<(), DpError> {
        let port = *self.iface_ports.get(id).ok_or(DpError::NotFound)?;
        if self.iface(id).map(|(i, _)| i.vip.is_some()).unwrap_or(false) {
            self.delete_vip(id)?;
        }
        if self.iface(id).map(|(i, _)| i.nat.is_some()).unwrap_or(false) {
            self.delete_nat(id)?;
        }
        let Some(iface) = self.ports[port.index()].iface.take() else {
            return Err(DpError::NotFound);
        };
        self.iface_ports.remove(id);
        for p in iface.prefixes.iter() {
            self.route_remove(iface.vni, p.prefix);
            self.vnf.remove(&p.underlay);
        }
        for p in iface.lb_prefixes.iter() {
            self.vnf.remove(&p.underlay);
        }
        if let Some(a) = iface.ipv4 {
            self.route_remove(iface.vni, IpNet::V4(Ipv4Net::from(a)));
        }
        if let Some(a) = iface.ipv6 {
            self.route_remove(iface.vni, IpNet::V6(Ipv6Net::from(a)));
        }
        self.vnf.remove(&iface.underlay);
        self.vni_release(iface.vni);
        self.flush_flows(|f| f.port == Some(port));
        Ok(())
    }

    /// CreatePrefix: routes `prefix` to the interface's port in its VNI and registers an ALIAS_PFX underlay.
    /// 205 unknown interface, 301 route exists, 303 table full, 401 underlay.
    pub fn create_prefix(
        &mut self,
        id: &str,
        prefix: IpNet,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, DpError> {
        let prefix = prefix.trunc();
        let (iface, port) = self.iface(id)?;
        let vni = iface.vni;
        self.route_insert(vni, prefix, RouteTarget::Vf { port, alias: true })?;
        let vnf = Vnf {
            kind: VnfKind::AliasPrefix,
            vni,
            port: Some(port),
            prefix: Some(prefix),
        };
        let underlay = match self.alloc_underlay(preferred, vnf) {
            Ok(u) => u,
            Err(e) => {
                self.route_remove(vni, prefix);
                return Err(e);
            }
        };
        self.iface_mut(id)?
            .0
            .prefixes
            .push(PrefixInfo { prefix, underlay });
        Ok(underlay)
    }

    /// DeletePrefix. 205 unknown interface, 302 no such prefix.
    pub fn delete_prefix(&mut self, id: &str, prefix: IpNet) -> Result<(), DpError> {
        let prefix = prefix.trunc();
        let (iface, _) = self.iface_mut(id)?;
        let pos = iface
            .prefixes
            .iter()
            .position(|p| p.prefix == prefix)
            .ok_or(DpError::RouteNotFound)?;
        let p = iface.prefixes.remove(pos);
        let vni = iface.vni;
        self.route_remove(vni, prefix);
        self.vnf.remove(&p.underlay);
        Ok(())
    }

    /// ListPrefixes, in creation order. 205 unknown interface.
    pub fn list_prefixes(&self, id: &str) -> Result<Vec<PrefixInfo>, DpError> {
        Ok(self.iface(id)?.0.prefixes.clone())
    }

    /// CreateLoadBalancerPrefix: registers an LB_ALIAS_PFX underlay for `prefix` on the interface (no route).
    /// 205 unknown interface, 202 exists, 401 underlay.
    pub fn create_lb_prefix(
        &mut self,
        id: &str,
        prefix: IpNet,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, DpError> {
        let prefix = prefix.trunc();
        let (iface, port) = self.iface(id)?;
        if iface.lb_prefixes.iter().any(|p| p.prefix == prefix) {
            return Err(DpError::AlreadyExists);
        }
        let vnf = Vnf {
            kind: VnfKind::LbAliasPrefix,
            vni: iface.vni,
            port: Some(port),
            prefix: Some(prefix),
        };
        let underlay = self.alloc_underlay(preferred, vnf)?;
        self.iface_mut(id)?
            .0
            .lb_prefixes
            .push(PrefixInfo { prefix, underlay });
        Ok(underlay)
    }

    /// DeleteLoadBalancerPrefix. 205 unknown interface, 201 no such prefix.
    pub fn delete_lb_prefix(&mut self, id: &str, prefix: IpNet) -> Result<(), DpError> {
        let prefix = prefix.trunc();
        let (iface, _) = self.iface_mut(id)?;
        let pos = iface
            .lb_prefixes
            .iter()
            .position(|p| p.prefix == prefix)
            .ok_or(DpError::NotFound)?;
        let p = iface.lb_prefixes.remove(pos);
        self.vnf.remove(&p.underlay);
        Ok(())
    }

    /// ListLoadBalancerPrefixes. 205 unknown interface.
    pub fn list_lb_prefixes(&self, id: &str) -> Result<Vec<PrefixInfo>, DpError> {
        Ok(self.iface(id)?.0.lb_prefixes.clone())
    }

    /// CreateRoute: an external route in `vni` to `route.nexthop` via the uplink. 206 no VNI, 301 exists,
    /// 303 table full.
    pub fn create_route(&mut self, vni: Option<Vni>, route: Route) -> Result<(), DpError> {
        let target = RouteTarget::External {
            nexthop_vni: route.nexthop_vni,
            nexthop: route.nexthop,
        };
        self.route_insert(vni, route.prefix.trunc(), target)
    }

    /// DeleteRoute. 206 no VNI, 302 no such route, 304 the route is an interface/alias route.
    pub fn delete_route(&mut self, vni: Option<Vni>, prefix: IpNet) -> Result<(), DpError> {
        let prefix = prefix.trunc();
        let t = self.vnis.get(&vni).ok_or(DpError::NoVni)?;
        let existing = match prefix {
            IpNet::V4(p) => t.v4.get_exact(u32::from(p.addr()), p.prefix_len()),
            IpNet::V6(p) => t.v6.get_exact(u128::from(p.addr()), p.prefix_len()),
        };
        match existing {
            None => Err(DpError::RouteNotFound),
            Some(RouteTarget::Vf { .. }) => Err(DpError::RouteBadPort),
            Some(RouteTarget::External { .. }) => {
                self.route_remove(vni, prefix);
                Ok(())
            }
        }
    }

    /// ListRoutes: external routes of `vni`, or of every VNI (the VNI-0 tables included) for `None`, which is
    /// the wire's 0 as dpservice reads it here; IPv4 and IPv6, sorted by VNI then prefix. 206 for an unknown VNI.
    pub fn list_routes(&self, vni: Option<Vni>) -> Result<Vec<RouteEntry>, DpError> {
        if vni.is_some() && !self.vnis.contains_key(&vni) {
            return Err(DpError::NoVni);
        }
        let mut out = Vec::new();
        for (&v, t) in self.vnis.iter().filter(|(v, _)| vni.is_none() || **v == vni) {
            let ext = |target: &RouteTarget| match *target {
                RouteTarget::External { nexthop_vni, nexthop } => Some((nexthop_vni, nexthop)),
                RouteTarget::Vf { .. } => None,
            };
            for (a, l, r) in t.v4.iter() {
                if let Some((nv, nh)) = ext(r) {
                    let prefix = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap_or_default());
                    out.push(RouteEntry {
                        vni: v,
                        route: Route {
                            prefix,
                            nexthop_vni: nv,
                            nexthop: nh,
                        },
                    });
                }
            }
            for (a, l, r) in t.v6.iter() {
                if let Some((nv, nh)) = ext(r) {
                    let prefix = IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap_or_default());
                    out.push(RouteEntry {
                        vni: v,
                        route: Route {
                            prefix,
                            nexthop_vni: nv,
                            nexthop: nh,
                        },
                    });
                }
            }
        }
        out.sort_by_key(|e| (e.vni, e.route.prefix));
        Ok(out)
    }

    /// CheckVniInUse: whether `vni` has routing tables. 203 for [`VniType::Both`].
    pub fn check_vni_in_use(&self, vni: Option<Vni>, kind: VniType) -> Result<bool, DpError> {
        match kind {
            VniType::Both => Err(DpError::WrongType),
            VniType::Ipv4 | VniType::Ipv6 => Ok(self.vnis.contains_key(&vni)),
        }
    }

    /// ResetVni: drops `vni`'s external routes, keeping the local interface and alias-prefix routes. Only
    /// [`VniType::Both`] (else 203); unknown VNI is a no-op.
    pub fn reset_vni(&mut self, vni: Option<Vni>, kind: VniType) -> Result<(), DpError> {
        if kind != VniType::Both {
            return Err(DpError::WrongType);
        }
        self.rebuild_vni_routes(vni);
        Ok(())
    }
}

fn info(i: &Interface, port: PortId) -> InterfaceInfo {
    InterfaceInfo {
        id: i.id.clone(),
        vni: i.vni,
        ipv4: i.ipv4,
        ipv6: i.ipv6,
        underlay: i.underlay,
        port,
        hostname: i.hostname.clone(),
    }
}
