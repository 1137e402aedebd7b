//! A thin client of dpservice's gRPC API (`dpdkironcore.v1`) in metalnet's terms: typed addresses instead of the
//! ASCII text dpservice puts into `bytes` fields, `Option` for "not there", and one error type in which every
//! non-zero dpservice status code is an error (upstream metalnet swallows errors carrying a status code on some
//! paths, e.g. rejected Deny firewall rules; here the caller decides which codes mean "already done").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_dpservice::proto;
use ironnet_vni::Vni;

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

pub(crate) fn check(op: &'static str, status: Option<proto::Status>) -> DpResult<()> {
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

pub(crate) fn parse_text(op: &'static str, bytes: &[u8]) -> DpResult<IpAddr> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim_end_matches('\0').parse().ok())
        .ok_or_else(|| DpError::Malformed {
            op,
            what: format!("address {:?}", String::from_utf8_lossy(bytes)),
        })
}

/// A VNI field of a dpservice reply, where 0 means none.
pub(crate) fn wire_vni(op: &'static str, value: u32) -> DpResult<Option<Vni>> {
    Vni::from_wire(value).map_err(|e| DpError::Malformed {
        op,
        what: e.to_string(),
    })
}

pub(crate) fn parse_underlay(op: &'static str, bytes: &[u8]) -> DpResult<Ipv6Addr> {
    match parse_text(op, bytes)? {
        IpAddr::V6(a) => Ok(a),
        other => Err(DpError::Malformed {
            op,
            what: format!("underlay {other} is not IPv6"),
        }),
    }
}

pub(crate) fn parse_ip(op: &'static str, ip: Option<&proto::IpAddress>) -> DpResult<IpAddr> {
    parse_text(op, ip.map(|i| i.address.as_slice()).unwrap_or_default())
}

pub(crate) fn parse_prefix(op: &'static str, p: Option<&proto::Prefix>) -> DpResult<IpNet> {
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
    /// VNI (`None`: dpservice reports 0).
    pub vni: Option<Vni>,
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

pub(crate) fn interface(op: &'static str, i: proto::Interface) -> DpResult<DpInterface> {
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
        vni: wire_vni(op, i.vni)?,
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
    pub vni: Vni,
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
    /// VNI of a neighbour NAT; `None` for a local NAT (0 on the wire).
    pub vni: Option<Vni>,
}

/// A load balancer as dpservice has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpLoadBalancer {
    /// VNI (`None`: dpservice reports 0).
    pub vni: Option<Vni>,
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
    /// VNI of the next hop (`None`: 0 on the wire).
    pub nexthop_vni: Option<Vni>,
    /// Underlay next hop.
    pub nexthop: IpAddr,
}

mod client;

pub use client::Dp;

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
