//! The route data model: VNI, destination prefix and next hop, as upstream metalbond defines them.
//!
//! A route is `VNI: destination → next hop`. Every field of [`NextHop`] is part of its identity (upstream uses the
//! whole struct as a map key), so the same prefix may have several next hops (multipath, HA) at once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Serialize;

pub use ironnet_vni::Vni;

/// Why a route (received in an UPDATE or given to [`announce`](crate::MetalBond::announce)) is refused.
///
/// Upstream stores any route a peer sends; these are the contents no correct peer produces and that would be
/// installed wrongly (a VNI the dataplane cannot encapsulate, a prefix whose host bits make it a different key from
/// the same network announced masked, a NAT range no port falls into).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteFault {
    /// The route's VNI is 0 or needs more than 24 bits.
    #[error("VNI {0} is outside 1..={max}", max = Vni::MAX)]
    VniOutOfRange(u32),
    /// The next hop's target VNI needs more than 24 bits (0 means "the route's own VNI").
    #[error("target VNI {0} exceeds {max}", max = Vni::MAX)]
    TargetVniOutOfRange(u32),
    /// The destination prefix has bits set beyond its length.
    #[error("destination {prefix} has host bits set (the network is {network})")]
    HostBitsSet {
        /// The prefix as received.
        prefix: IpNet,
        /// The same prefix with its host bits cleared.
        network: IpNet,
    },
    /// A NAT next hop whose first port lies after its last.
    #[error("NAT port range {from}..{to} is inverted")]
    InvertedNatRange {
        /// First port of the range.
        from: u16,
        /// End of the range.
        to: u16,
    },
    /// The destination's `ipVersion` tag names a different family than its address bytes.
    #[error("destination tagged {tagged} carries a {address_bytes}-byte address")]
    FamilyMismatch {
        /// The family the tag names (`IPv4`, `IPv6`, or the unknown enum value).
        tagged: String,
        /// Length of the address bytes (4 = IPv4, 16 = IPv6).
        address_bytes: usize,
    },
    /// The prefix length does not fit the address family.
    #[error("prefix length {len} exceeds {max} for an {family} destination")]
    PrefixTooLong {
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The prefix length received.
        len: u32,
        /// The family's maximum (32 or 128).
        max: u8,
    },
}

/// What a next hop means to the receiver (wire enum `NextHopType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum NextHopType {
    /// An ordinary overlay route: prefix → underlay next hop.
    #[default]
    Standard,
    /// "This underlay address owns NAT IP `prefix` for ports `[from, to)`"; never reflected to its originator.
    Nat,
    /// "Underlay `target` serves load balancer IP `prefix` in this VNI".
    LoadBalancerTarget,
}

impl NextHopType {
    /// The protobuf enum value (`STANDARD = 0; NAT = 1; LOADBALANCER_TARGET = 2`).
    pub fn wire_value(self) -> i32 {
        match self {
            Self::Standard => 0,
            Self::Nat => 1,
            Self::LoadBalancerTarget => 2,
        }
    }

    /// The type for a protobuf enum value, `None` for values upstream does not define.
    pub fn from_wire(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Standard),
            1 => Some(Self::Nat),
            2 => Some(Self::LoadBalancerTarget),
            _ => None,
        }
    }

    /// The short name used by the CLI's `--announce` syntax (`STD`, `NAT`, `LB`).
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Standard => "STD",
            Self::Nat => "NAT",
            Self::LoadBalancerTarget => "LB",
        }
    }
}

impl fmt::Display for NextHopType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Standard => "STANDARD",
            Self::Nat => "NAT",
            Self::LoadBalancerTarget => "LOADBALANCER_TARGET",
        })
    }
}

/// Errors constructing a route from its parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A NAT next hop needs a non-empty port range `from < to` (`to` is exclusive in dpservice).
    #[error("NAT port range {from}..{to} is empty")]
    EmptyNatRange {
        /// First port of the range.
        from: u16,
        /// End of the range (exclusive).
        to: u16,
    },
    /// Port ranges are only meaningful for NAT next hops.
    #[error("a {kind} next hop cannot carry a NAT port range")]
    PortsOnNonNat {
        /// The next hop's type.
        kind: NextHopType,
    },
    /// The announce specification (`VNI#PREFIX#NEXTHOP[#TYPE][#FROM#TO]`) is malformed.
    #[error("invalid route specification {spec:?}: {reason}")]
    InvalidSpec {
        /// The offending text.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where traffic for a destination goes: an underlay address plus type-specific data.
///
/// All fields form the identity of the next hop, exactly as in upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    target: IpAddr,
    target_vni: Option<Vni>,
    kind: NextHopType,
    nat_port_from: u16,
    nat_port_to: u16,
}

impl NextHop {
    /// A STANDARD next hop to `target` (no target VNI, as metalnet always uses).
    pub fn standard(target: IpAddr) -> Self {
        Self {
            target,
            target_vni: None,
            kind: NextHopType::Standard,
            nat_port_from: 0,
            nat_port_to: 0,
        }
    }

    /// A LOADBALANCER_TARGET next hop: `target` serves the destination load balancer IP.
    pub fn load_balancer_target(target: IpAddr) -> Self {
        Self {
            kind: NextHopType::LoadBalancerTarget,
            ..Self::standard(target)
        }
    }

    /// A NAT next hop: `target` owns the destination NAT IP for ports `[from, to)`.
    ///
    /// Fails when the range is empty (`from >= to`).
    pub fn nat(target: IpAddr, from: u16, to: u16) -> Result<Self, RouteError> {
        if from >= to {
            return Err(RouteError::EmptyNatRange { from, to });
        }
        Ok(Self {
            kind: NextHopType::Nat,
            nat_port_from: from,
            nat_port_to: to,
            ..Self::standard(target)
        })
    }

    /// A next hop from raw parts as they arrive from a peer. Port fields are kept only for NAT next hops (upstream
    /// only sends them for NAT); for other types they are zeroed so that identity does not depend on garbage.
    /// `target_vni` is `None` where the wire carries 0 ("the route's own VNI").
    pub fn from_parts(
        target: IpAddr,
        target_vni: Option<Vni>,
        kind: NextHopType,
        from: u16,
        to: u16,
    ) -> Self {
        let (nat_port_from, nat_port_to) = if kind == NextHopType::Nat {
            (from, to)
        } else {
            (0, 0)
        };
        Self {
            target,
            target_vni,
            kind,
            nat_port_from,
            nat_port_to,
        }
    }

    /// Returns the same next hop with `target_vni` set (the VNI the target address lives in).
    pub fn with_target_vni(mut self, target_vni: Vni) -> Self {
        self.target_vni = Some(target_vni);
        self
    }

    /// The underlay address.
    pub fn target(&self) -> IpAddr {
        self.target
    }

    /// The VNI of the target; `None` (wire value 0, the route's own VNI) in all metalnet usage.
    pub fn target_vni(&self) -> Option<Vni> {
        self.target_vni
    }

    /// The next hop type.
    pub fn kind(&self) -> NextHopType {
        self.kind
    }

    /// The NAT port range `[from, to)`; `(0, 0)` for non-NAT next hops.
    pub fn nat_ports(&self) -> (u16, u16) {
        (self.nat_port_from, self.nat_port_to)
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.target)?;
        if let Some(vni) = self.target_vni {
            write!(f, " (VNI: {vni})")?;
        }
        match self.kind {
            NextHopType::Standard => Ok(()),
            NextHopType::LoadBalancerTarget => f.write_str(" LB"),
            NextHopType::Nat => write!(f, " NAT {}-{}", self.nat_port_from, self.nat_port_to),
        }
    }
}

/// One route: `vni: destination → next_hop`.
///
/// The destination prefix is kept exactly as given; [`Route::validate`] refuses one with host bits set (upstream
/// stores `10.0.0.1/24` and `10.0.0.0/24` as different destinations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The virtual network the route belongs to.
    pub vni: Vni,
    /// The overlay prefix.
    pub destination: IpNet,
    /// Where it goes.
    pub next_hop: NextHop,
}

impl Route {
    /// A route from its parts (not checked; see [`validate`](Self::validate)).
    pub fn new(vni: Vni, destination: IpNet, next_hop: NextHop) -> Self {
        Self {
            vni,
            destination,
            next_hop,
        }
    }

    /// Checks what a route must satisfy to be stored or sent beyond what its types guarantee (the VNIs are
    /// valid by construction): no host bits in the destination and a NAT range that is not inverted. Returns the
    /// first fault.
    pub fn validate(&self) -> Result<(), RouteFault> {
        let network = self.destination.trunc();
        if network != self.destination {
            return Err(RouteFault::HostBitsSet {
                prefix: self.destination,
                network,
            });
        }
        let (from, to) = self.next_hop.nat_ports();
        if self.next_hop.kind == NextHopType::Nat && from > to {
            return Err(RouteFault::InvertedNatRange { from, to });
        }
        Ok(())
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VNI {}: {} via {}", self.vni, self.destination, self.next_hop)
    }
}

/// Parses the CLI's announce syntax `VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO]`.
///
/// The type is matched case-insensitively by substring like upstream (`std`, `lb`, `nat`); NAT requires the port
/// range, parsed as unsigned 16-bit numbers (upstream parses them as signed and rejects ports above 32767).
impl FromStr for Route {
    type Err = RouteError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| RouteError::InvalidSpec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = spec.split('#').collect();
        if !(3..=6).contains(&parts.len()) || parts.len() == 5 {
            return Err(invalid("expected VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO]"));
        }
        let vni: u32 = parts[0]
            .parse()
            .map_err(|_| invalid("VNI is not an unsigned 32-bit number"))?;
        let destination: IpNet = parts[1]
            .parse()
            .map_err(|_| invalid("PREFIX is not an IP prefix (ADDR/LEN)"))?;
        let target: IpAddr = parts[2]
            .parse()
            .map_err(|_| invalid("NEXTHOP is not an IP address"))?;
        let kind = match parts.get(3).map(|t| t.to_ascii_lowercase()) {
            None => NextHopType::Standard,
            Some(t) if t.contains("nat") => NextHopType::Nat,
            Some(t) if t.contains("lb") => NextHopType::LoadBalancerTarget,
            Some(t) if t.contains("std") => NextHopType::Standard,
            Some(_) => return Err(invalid("type must be STD, LB or NAT")),
        };
        let next_hop = match (kind, parts.len()) {
            (NextHopType::Nat, 6) => {
                let port = |s: &str| {
                    s.parse::<u16>()
                        .map_err(|_| invalid("NAT ports must be numbers 0..=65535"))
                };
                NextHop::nat(target, port(parts[4])?, port(parts[5])?)?
            }
            (NextHopType::Nat, _) => return Err(invalid("NAT requires #FROM#TO")),
            (kind, 6) => return Err(RouteError::PortsOnNonNat { kind }),
            (NextHopType::LoadBalancerTarget, _) => NextHop::load_balancer_target(target),
            (NextHopType::Standard, _) => NextHop::standard(target),
        };
        let vni = Vni::new(vni).map_err(|_| invalid(&RouteFault::VniOutOfRange(vni).to_string()))?;
        let route = Route::new(vni, destination, next_hop);
        route.validate().map_err(|fault| invalid(&fault.to_string()))?;
        Ok(route)
    }
}

/// Serialized like upstream's Go `NextHop` struct in `/routes.json` (Go field names, numeric enum).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NextHopJson {
    pub target_address: IpAddr,
    #[serde(rename = "TargetVNI")]
    pub target_vni: u32,
    #[serde(rename = "Type")]
    pub kind: i32,
    #[serde(rename = "NATPortRangeFrom")]
    pub nat_port_range_from: u16,
    #[serde(rename = "NATPortRangeTo")]
    pub nat_port_range_to: u16,
}

impl From<&NextHop> for NextHopJson {
    fn from(hop: &NextHop) -> Self {
        Self {
            target_address: hop.target,
            target_vni: Vni::to_wire(hop.target_vni),
            kind: hop.kind.wire_value(),
            nat_port_range_from: hop.nat_port_from,
            nat_port_range_to: hop.nat_port_to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_vni::vni;

    #[test]
    fn parses_announce_specs() {
        let r: Route = "100#10.0.0.1/32#fc00::1".parse().unwrap();
        assert_eq!(r.vni, vni!(100));
        assert_eq!(r.destination.to_string(), "10.0.0.1/32");
        assert_eq!(r.next_hop, NextHop::standard("fc00::1".parse().unwrap()));

        let r: Route = "7#1.2.3.4/32#fc00::2#LB".parse().unwrap();
        assert_eq!(r.next_hop.kind(), NextHopType::LoadBalancerTarget);

        let r: Route = "7#1.2.3.4/32#fc00::2#nat#32768#65535".parse().unwrap();
        assert_eq!(r.next_hop.nat_ports(), (32768, 65535));
        assert_eq!(r.next_hop.kind(), NextHopType::Nat);

        let r: Route = "7#::/0#fc00::2#std".parse().unwrap();
        assert_eq!(r.next_hop.kind(), NextHopType::Standard);
    }

    #[test]
    fn rejects_bad_announce_specs() {
        for bad in [
            "",
            "100",
            "100#10.0.0.1/32",
            "x#10.0.0.1/32#fc00::1",
            "100#10.0.0.1#fc00::1",
            "100#10.0.0.1/33#fc00::1",
            "100#10.0.0.1/32#nohop",
            "100#10.0.0.1/32#fc00::1#BGP",
            "100#10.0.0.1/32#fc00::1#NAT",
            "100#10.0.0.1/32#fc00::1#NAT#1",
            "100#10.0.0.1/32#fc00::1#NAT#10#5",
            "100#10.0.0.1/32#fc00::1#NAT#1#70000",
            "100#10.0.0.1/32#fc00::1#STD#1#2",
            "100#10.0.0.1/32#fc00::1#NAT#1#2#3",
            "0#10.0.0.1/32#fc00::1",
            "16777216#10.0.0.1/32#fc00::1",
            "100#10.0.0.1/24#fc00::1",
        ] {
            assert!(bad.parse::<Route>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn non_nat_parts_drop_ports() {
        let ip: IpAddr = "fc00::1".parse().unwrap();
        let hop = NextHop::from_parts(ip, None, NextHopType::Standard, 5, 6);
        assert_eq!(hop, NextHop::standard(ip));
        let nat = NextHop::from_parts(ip, None, NextHopType::Nat, 5, 6);
        assert_eq!(nat.nat_ports(), (5, 6));
    }
}
