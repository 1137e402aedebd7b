//! Request and response types of the control methods of [`crate::Dataplane`]. They mirror dpservice's gRPC
//! messages (proto package `dpdkironcore.v1`, service `DPDKironcore`) with already-parsed Rust types;
//! syntactic validation is the gRPC layer's job.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_vni::Vni;

use crate::port::PortId;

/// PXE boot parameters of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeConfig {
    /// Boot server (IPv4 for DHCP, IPv6 for DHCPv6).
    pub next_server: IpAddr,
    /// Boot file name (appended to the HTTP URL for iPXE clients).
    pub boot_filename: String,
}

/// CreateInterface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateInterface {
    /// Interface id (unique).
    pub id: String,
    /// VNI of the interface.
    pub vni: Option<Vni>,
    /// Primary IPv4 (`None` for an IPv6-only VM).
    pub ipv4: Option<Ipv4Addr>,
    /// Primary IPv6 (`None` for an IPv4-only VM).
    pub ipv6: Option<Ipv6Addr>,
    /// The VF port the interface is bound to.
    pub port: PortId,
    /// PXE parameters.
    pub pxe: Option<PxeConfig>,
    /// DHCP hostname (option 12).
    pub hostname: Option<String>,
    /// Externally generated underlay address to use instead of a generated one.
    pub preferred_underlay: Option<Ipv6Addr>,
}

/// An interface as listed by ListInterfaces / GetInterface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Interface id.
    pub id: String,
    /// VNI.
    pub vni: Option<Vni>,
    /// Primary IPv4.
    pub ipv4: Option<Ipv4Addr>,
    /// Primary IPv6.
    pub ipv6: Option<Ipv6Addr>,
    /// The interface's underlay address.
    pub underlay: Ipv6Addr,
    /// The bound port.
    pub port: PortId,
    /// DHCP hostname.
    pub hostname: Option<String>,
}

/// An alias or LB prefix of an interface with its underlay address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (masked).
    pub prefix: IpNet,
    /// Its underlay address.
    pub underlay: Ipv6Addr,
}

/// The VIP of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipInfo {
    /// Public IPv4.
    pub ip: Ipv4Addr,
    /// Its underlay address.
    pub underlay: Ipv6Addr,
}

/// The NAT of an interface (GetNat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatInfo {
    /// NAT IPv4.
    pub ip: Ipv4Addr,
    /// First port of the range.
    pub min_port: u16,
    /// End of the range (exclusive).
    pub max_port: u16,
    /// Its underlay address.
    pub underlay: Ipv6Addr,
}

/// One ListLocalNats entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalNatEntry {
    /// The natted VM's IPv4 (upstream's misnamed `NatEntry.nat_ip`).
    pub vm_ip: Ipv4Addr,
    /// First port.
    pub min_port: u16,
    /// End port (exclusive).
    pub max_port: u16,
    /// VNI of the interface.
    pub vni: Option<Vni>,
    /// The NAT IP.
    pub nat_ip: Ipv4Addr,
}

/// A neighbour NAT: a port range of a shared NAT IP served by another host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborNat {
    /// The shared NAT IP.
    pub nat_ip: Ipv4Addr,
    /// VNI.
    pub vni: Option<Vni>,
    /// First port.
    pub min_port: u16,
    /// End port (exclusive).
    pub max_port: u16,
    /// The neighbour's NAT underlay address.
    pub underlay: Ipv6Addr,
}

/// An external route (CreateRoute / ListRoutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (masked on insertion).
    pub prefix: IpNet,
    /// Next-hop VNI (stored and listed, not carried on the wire).
    pub nexthop_vni: Option<Vni>,
    /// Next-hop underlay address.
    pub nexthop: Ipv6Addr,
}

/// A listed route with its VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteEntry {
    /// The VNI the route belongs to.
    pub vni: Option<Vni>,
    /// The route.
    pub route: Route,
}

/// L4 protocol of a load-balanced port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl L4Proto {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }
}

/// A load-balanced (protocol, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LbPort {
    /// Protocol.
    pub protocol: L4Proto,
    /// Port.
    pub port: u16,
}

/// CreateLoadBalancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLoadBalancer {
    /// Load balancer id.
    pub id: String,
    /// VNI.
    pub vni: Option<Vni>,
    /// The load-balanced IP.
    pub ip: IpAddr,
    /// Served ports (≤ 15, validated by the gRPC layer).
    pub ports: Vec<LbPort>,
    /// Externally generated underlay.
    pub preferred_underlay: Option<Ipv6Addr>,
}

/// A load balancer as returned by Get/ListLoadBalancers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerInfo {
    /// Id.
    pub id: String,
    /// VNI.
    pub vni: Option<Vni>,
    /// Load-balanced IP.
    pub ip: IpAddr,
    /// Served ports.
    pub ports: Vec<LbPort>,
    /// Underlay address.
    pub underlay: Ipv6Addr,
}

/// Which routing tables a VNI request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VniType {
    /// IPv4 table.
    Ipv4,
    /// IPv6 table.
    Ipv6,
    /// Both.
    Both,
}
