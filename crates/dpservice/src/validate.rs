//! Syntactic validation of gRPC requests (as dpservice's gRPC server: a malformed request gets `INVALID_ARGUMENT` with a message such as `Invalid interface_id`), separate from the server so that it can be
//! tested table-driven without a network.
//!
//! Every function here is pure: it takes fields of a generated protobuf message and returns either
//! a parsed Rust value or an [`InvalidArgument`] whose message is what dpservice puts into the
//! gRPC `INVALID_ARGUMENT` status (`"Invalid interface_id"`, `"Invalid port range"`, ...).
//! Business rules (does the interface exist, is the family supported for this object) are not
//! checked here; they are the dataplane's and come back as `Status{code, name}`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_vni::Vni;

use crate::proto;

/// Longest id (interface, load balancer, firewall rule) and hostname: dpservice stores them in
/// 64-byte buffers including the terminating NUL.
pub const MAX_ID_LEN: usize = 63;
/// Most (protocol, port) pairs a load balancer may have (dpservice rejects 16 or more).
pub const MAX_LB_PORTS: usize = 15;

/// A request failed syntactic validation; the message is returned with gRPC `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArgument(pub String);

impl InvalidArgument {
    /// `Invalid <field>`, dpservice's message for a malformed field.
    pub fn field(field: &str) -> Self {
        InvalidArgument(format!("Invalid {field}"))
    }
}

impl From<InvalidArgument> for tonic::Status {
    fn from(e: InvalidArgument) -> Self {
        tonic::Status::invalid_argument(e.0)
    }
}

/// Result of a validation step.
pub type Result<T> = std::result::Result<T, InvalidArgument>;

/// An interface id: 1..=63 characters of `[-_0-9A-Za-z]`.
pub fn interface_id(field: &str, raw: &[u8]) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_ID_LEN
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if !ok {
        return Err(InvalidArgument::field(field));
    }
    // All bytes are ASCII, so this cannot fail.
    String::from_utf8(raw.to_vec()).map_err(|_| InvalidArgument::field(field))
}

/// A load balancer or firewall rule id: 1..=63 bytes of printable, non-NUL UTF-8.
pub fn object_id(field: &str, raw: &[u8]) -> Result<String> {
    if raw.is_empty() || raw.len() > MAX_ID_LEN || raw.contains(&0) {
        return Err(InvalidArgument::field(field));
    }
    let s = std::str::from_utf8(raw).map_err(|_| InvalidArgument::field(field))?;
    if s.chars().any(char::is_control) {
        return Err(InvalidArgument::field(field));
    }
    Ok(s.to_owned())
}

/// A VNI field: `Some` [`Vni`], or `None` for 0, which dpservice accepts as a VNI of its own (the dataplane keeps
/// tables for it; see the VNI paragraph of `ironnet_dataplane::dataplane`); anything needing more than 24 bits is
/// refused.
pub fn vni(value: u32) -> Result<Option<Vni>> {
    Vni::from_wire(value).map_err(|_| InvalidArgument("VNI exceeds 24-bit range".into()))
}

fn text(raw: &[u8]) -> Option<&str> {
    std::str::from_utf8(raw).ok()
}

/// An IPv4 address given as text in a `bytes` field.
pub fn ipv4_text(field: &str, raw: &[u8]) -> Result<Ipv4Addr> {
    text(raw)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| InvalidArgument::field(field))
}

/// An IPv6 address given as text in a `bytes` field.
pub fn ipv6_text(field: &str, raw: &[u8]) -> Result<Ipv6Addr> {
    text(raw)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| InvalidArgument::field(field))
}

/// An `IpAddress` message: present, with text of the family `ipver` says.
pub fn ip_address(field: &str, addr: Option<&proto::IpAddress>) -> Result<IpAddr> {
    let addr = addr.ok_or_else(|| InvalidArgument::field(field))?;
    match proto::IpVersion::try_from(addr.ipver) {
        Ok(proto::IpVersion::Ipv4) => ipv4_text(field, &addr.address).map(IpAddr::V4),
        Ok(proto::IpVersion::Ipv6) => ipv6_text(field, &addr.address).map(IpAddr::V6),
        Err(_) => Err(InvalidArgument::field(field)),
    }
}

/// Like [`ip_address`], but an absent message or the unspecified address of either family
/// (`"0.0.0.0"`, `"::"`) means "none"; used where clients pass a wildcard.
pub fn optional_ip_address(field: &str, addr: Option<&proto::IpAddress>) -> Result<Option<IpAddr>> {
    match addr {
        None => Ok(None),
        Some(a) => {
            let ip = ip_address(field, Some(a))?;
            Ok((!ip.is_unspecified()).then_some(ip))
        }
    }
}

/// A `Prefix` message: valid address and a length within the family's width. The returned
/// network is not masked; callers mask where dpservice does.
pub fn prefix(field: &str, p: Option<&proto::Prefix>) -> Result<IpNet> {
    let p = p.ok_or_else(|| InvalidArgument::field(field))?;
    let ip = ip_address(&format!("{field}.ip"), p.ip.as_ref())?;
    let len = u8::try_from(p.length).map_err(|_| InvalidArgument::field(&format!("{field}.length")))?;
    IpNet::new(ip, len).map_err(|_| InvalidArgument::field(&format!("{field}.length")))
}

/// A NAT port range `[min, max)`: `min < max <= 65535`.
pub fn port_range(min: u32, max: u32) -> Result<(u16, u16)> {
    match (u16::try_from(min), u16::try_from(max)) {
        (Ok(lo), Ok(hi)) if lo < hi => Ok((lo, hi)),
        _ => Err(InvalidArgument("Invalid port range".into())),
    }
}

/// Protocol of a load-balanced port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LbProtocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

/// The `loadbalanced_ports` list: each TCP or UDP, port 1..=65535, at most [`MAX_LB_PORTS`], no
/// duplicate (protocol, port).
pub fn lb_ports(ports: &[proto::LbPort]) -> Result<Vec<(LbProtocol, u16)>> {
    if ports.len() > MAX_LB_PORTS {
        return Err(InvalidArgument("Too many loadbalanced_ports".into()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        let proto = match proto::Protocol::try_from(p.protocol) {
            Ok(proto::Protocol::Tcp) => LbProtocol::Tcp,
            Ok(proto::Protocol::Udp) => LbProtocol::Udp,
            _ => return Err(InvalidArgument::field("loadbalanced_ports.protocol")),
        };
        let port = u16::try_from(p.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| InvalidArgument::field("loadbalanced_ports.port"))?;
        if !seen.insert((proto, port)) {
            return Err(InvalidArgument("Duplicate loadbalanced_ports entry".into()));
        }
        out.push((proto, port));
    }
    Ok(out)
}

/// `preferred_underlay_route`: empty or `"::"` means "generate one"; otherwise an IPv6 address in
/// the host underlay's /64 with the "externally generated" flag (byte 10, bit 0x80) set.
pub fn preferred_underlay(raw: &[u8], host_underlay: Ipv6Addr) -> Result<Option<Ipv6Addr>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let addr = ipv6_text("preferred_underlay_route", raw)?;
    if addr.is_unspecified() {
        return Ok(None);
    }
    let (a, h) = (addr.octets(), host_underlay.octets());
    if a[..8] != h[..8] || a[10] & 0x80 == 0 {
        return Err(InvalidArgument::field("preferred_underlay_route"));
    }
    Ok(Some(addr))
}

/// A hostname: at most 63 bytes of UTF-8 without NUL (empty means none).
pub fn hostname(raw: &str) -> Result<Option<String>> {
    if raw.len() > MAX_ID_LEN || raw.contains('\0') {
        return Err(InvalidArgument::field("hostname"));
    }
    Ok((!raw.is_empty()).then(|| raw.to_owned()))
}

/// The primary addresses of `CreateInterface`: each given as text, `"0.0.0.0"` / `"::"` for an
/// absent family; at least one must be set.
pub fn primary_addresses(
    v4: Option<&proto::IpConfig>,
    v6: Option<&proto::IpConfig>,
) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
    let v4 = ipv4_text(
        "ipv4_config.primary_address",
        v4.map(|c| c.primary_address.as_slice()).unwrap_or_default(),
    )?;
    let v6 = ipv6_text(
        "ipv6_config.primary_address",
        v6.map(|c| c.primary_address.as_slice()).unwrap_or_default(),
    )?;
    if v4.is_unspecified() && v6.is_unspecified() {
        return Err(InvalidArgument(
            "Invalid ipv4_config.primary_address and ipv6_config.primary_address combination".into(),
        ));
    }
    Ok((
        (!v4.is_unspecified()).then_some(v4),
        (!v6.is_unspecified()).then_some(v6),
    ))
}

/// A non-empty string field (`GetVersion`'s client fields, `device_name`).
pub fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(InvalidArgument::field(field));
    }
    Ok(value)
}

/// `VniType` of CheckVniInUse / ResetVni.
pub fn vni_type(value: i32) -> Result<proto::VniType> {
    proto::VniType::try_from(value).map_err(|_| InvalidArgument::field("type"))
}

/// A port bound of a TCP/UDP firewall filter: `-1` (any) or 0..=65535.
fn filter_port(field: &str, v: i32) -> Result<Option<u16>> {
    match v {
        -1 => Ok(None),
        _ => u16::try_from(v)
            .map(Some)
            .map_err(|_| InvalidArgument::field(field)),
    }
}

/// An ICMP type or code of a firewall filter: `-1` (any) or 0..=255.
fn filter_icmp(field: &str, v: i32) -> Result<Option<u8>> {
    match v {
        -1 => Ok(None),
        _ => u8::try_from(v)
            .map(Some)
            .map_err(|_| InvalidArgument::field(field)),
    }
}

/// An inclusive port range of a firewall filter; `None` matches every port.
pub type PortMatch = Option<(u16, u16)>;

fn filter_range(field: &str, lower: i32, upper: i32) -> Result<PortMatch> {
    let lo = filter_port(&format!("{field}_lower"), lower)?;
    let hi = filter_port(&format!("{field}_upper"), upper)?;
    match (lo, hi) {
        (None, _) => Ok(None),
        (Some(lo), None) => Ok(Some((lo, lo))),
        (Some(lo), Some(hi)) if lo <= hi => Ok(Some((lo, hi))),
        _ => Err(InvalidArgument::field(&format!("{field}_upper"))),
    }
}

/// The layer-4 part of a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleProtocol {
    /// Any protocol, no port match.
    Any,
    /// TCP with source and destination port ranges.
    Tcp {
        /// Source ports.
        src: PortMatch,
        /// Destination ports.
        dst: PortMatch,
    },
    /// UDP with source and destination port ranges.
    Udp {
        /// Source ports.
        src: PortMatch,
        /// Destination ports.
        dst: PortMatch,
    },
    /// ICMP (and ICMPv6) with an optional type and code.
    Icmp {
        /// ICMP type, `None` = any.
        icmp_type: Option<u8>,
        /// ICMP code, `None` = any.
        icmp_code: Option<u8>,
    },
}

/// A syntactically valid firewall rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Rule id.
    pub id: String,
    /// Traffic direction.
    pub direction: proto::TrafficDirection,
    /// Action.
    pub action: proto::FirewallAction,
    /// Priority (stored, not evaluated: dpservice evaluates in insertion order).
    pub priority: u32,
    /// Source prefix; absent means any.
    pub source: Option<IpNet>,
    /// Destination prefix; absent means any.
    pub destination: Option<IpNet>,
    /// Layer-4 match.
    pub protocol: RuleProtocol,
}

/// A `FirewallRule` message.
pub fn firewall_rule(rule: Option<&proto::FirewallRule>) -> Result<Rule> {
    let r = rule.ok_or_else(|| InvalidArgument::field("rule"))?;
    let id = object_id("rule.id", &r.id)?;
    let direction = proto::TrafficDirection::try_from(r.direction)
        .map_err(|_| InvalidArgument::field("rule.direction"))?;
    let action =
        proto::FirewallAction::try_from(r.action).map_err(|_| InvalidArgument::field("rule.action"))?;
    if r.priority > 65535 {
        return Err(InvalidArgument::field("rule.priority"));
    }
    let source = match &r.source_prefix {
        None => None,
        Some(p) => Some(prefix("rule.source_prefix", Some(p))?),
    };
    let destination = match &r.destination_prefix {
        None => None,
        Some(p) => Some(prefix("rule.destination_prefix", Some(p))?),
    };
    use proto::protocol_filter::Filter;
    let protocol = match r.protocol_filter.as_ref().and_then(|f| f.filter.as_ref()) {
        None => RuleProtocol::Any,
        Some(Filter::Tcp(f)) => RuleProtocol::Tcp {
            src: filter_range(
                "rule.protocol_filter.tcp.src_port",
                f.src_port_lower,
                f.src_port_upper,
            )?,
            dst: filter_range(
                "rule.protocol_filter.tcp.dst_port",
                f.dst_port_lower,
                f.dst_port_upper,
            )?,
        },
        Some(Filter::Udp(f)) => RuleProtocol::Udp {
            src: filter_range(
                "rule.protocol_filter.udp.src_port",
                f.src_port_lower,
                f.src_port_upper,
            )?,
            dst: filter_range(
                "rule.protocol_filter.udp.dst_port",
                f.dst_port_lower,
                f.dst_port_upper,
            )?,
        },
        Some(Filter::Icmp(f)) => RuleProtocol::Icmp {
            icmp_type: filter_icmp("rule.protocol_filter.icmp.icmp_type", f.icmp_type)?,
            icmp_code: filter_icmp("rule.protocol_filter.icmp.icmp_code", f.icmp_code)?,
        },
    };
    Ok(Rule {
        id,
        direction,
        action,
        priority: r.priority,
        source,
        destination,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> proto::IpAddress {
        proto::IpAddress {
            ipver: proto::IpVersion::Ipv4 as i32,
            address: s.as_bytes().to_vec(),
        }
    }
    fn v6(s: &str) -> proto::IpAddress {
        proto::IpAddress {
            ipver: proto::IpVersion::Ipv6 as i32,
            address: s.as_bytes().to_vec(),
        }
    }
    fn err(s: &str) -> InvalidArgument {
        InvalidArgument(s.into())
    }

    #[test]
    fn interface_ids() {
        let long = "a".repeat(64);
        let max = "a".repeat(63);
        let table: &[(&str, bool)] = &[
            ("vm-1_A", true),
            (&max, true),
            ("", false),
            (&long, false),
            ("vm.1", false),
            ("vm 1", false),
            ("vm/1", false),
        ];
        for (id, ok) in table {
            let got = interface_id("interface_id", id.as_bytes());
            assert_eq!(got.is_ok(), *ok, "{id:?}");
            if !ok {
                assert_eq!(got.unwrap_err(), err("Invalid interface_id"));
            }
        }
        assert!(interface_id("interface_id", &[0xff]).is_err());
    }

    #[test]
    fn object_ids() {
        assert_eq!(object_id("loadbalancer_id", b"lb.1:x").unwrap(), "lb.1:x");
        for bad in [&b""[..], b"a\0b", b"\xff", b"a\nb", &[b'x'; 64]] {
            assert_eq!(
                object_id("loadbalancer_id", bad),
                Err(err("Invalid loadbalancer_id"))
            );
        }
    }

    #[test]
    fn vnis() {
        assert_eq!(vni(0), Ok(None));
        assert_eq!(vni(1), Ok(Some(Vni::MIN)));
        assert_eq!(vni(0xff_ffff), Ok(Some(Vni::MAX)));
        assert_eq!(vni(0x100_0000), Err(err("VNI exceeds 24-bit range")));
    }

    #[test]
    fn ip_addresses_are_text_of_the_declared_family() {
        let table: Vec<(Option<proto::IpAddress>, Option<IpAddr>)> = vec![
            (Some(v4("10.0.0.1")), Some("10.0.0.1".parse().unwrap())),
            (Some(v6("fc00::1")), Some("fc00::1".parse().unwrap())),
            (Some(v4("fc00::1")), None),
            (Some(v6("10.0.0.1")), None),
            (Some(v4("")), None),
            (Some(v4("10.0.0.256")), None),
            (
                Some(proto::IpAddress {
                    ipver: 0,
                    address: vec![10, 0, 0, 1],
                }),
                None,
            ),
            (
                Some(proto::IpAddress {
                    ipver: 7,
                    address: b"10.0.0.1".to_vec(),
                }),
                None,
            ),
            (None, None),
        ];
        for (input, want) in table {
            let got = ip_address("vip_ip", input.as_ref());
            match want {
                Some(ip) => assert_eq!(got, Ok(ip)),
                None => assert_eq!(got, Err(err("Invalid vip_ip")), "{input:?}"),
            }
        }
        assert_eq!(optional_ip_address("nat_ip", Some(&v4("0.0.0.0"))), Ok(None));
        assert_eq!(optional_ip_address("nat_ip", None), Ok(None));
        assert!(optional_ip_address("nat_ip", Some(&v4("x"))).is_err());
    }

    #[test]
    fn prefixes() {
        let p = |ip: proto::IpAddress, length| proto::Prefix {
            ip: Some(ip),
            length,
            underlay_route: vec![],
        };
        assert_eq!(
            prefix("prefix", Some(&p(v4("10.1.0.0"), 16))),
            Ok("10.1.0.0/16".parse().unwrap())
        );
        assert_eq!(
            prefix("prefix", Some(&p(v6("fd00::"), 128))),
            Ok("fd00::/128".parse().unwrap())
        );
        assert_eq!(
            prefix("prefix", Some(&p(v4("10.1.0.0"), 33))),
            Err(err("Invalid prefix.length"))
        );
        assert_eq!(
            prefix("prefix", Some(&p(v6("fd00::"), 129))),
            Err(err("Invalid prefix.length"))
        );
        assert_eq!(
            prefix("prefix", Some(&p(v4("x"), 8))),
            Err(err("Invalid prefix.ip"))
        );
        let no_ip = proto::Prefix {
            ip: None,
            length: 8,
            underlay_route: vec![],
        };
        assert_eq!(prefix("prefix", Some(&no_ip)), Err(err("Invalid prefix.ip")));
        assert_eq!(prefix("prefix", None), Err(err("Invalid prefix")));
    }

    #[test]
    fn port_ranges() {
        let table = [
            (1000, 2000, Some((1000, 2000))),
            (0, 1, Some((0, 1))),
            (100, 65535, Some((100, 65535))),
            (2000, 2000, None),
            (2000, 1000, None),
            (100, 65536, None),
        ];
        for (lo, hi, want) in table {
            match want {
                Some(r) => assert_eq!(port_range(lo, hi), Ok(r)),
                None => assert_eq!(port_range(lo, hi), Err(err("Invalid port range")), "{lo} {hi}"),
            }
        }
    }

    #[test]
    fn lb_port_lists() {
        let port = |port, protocol: proto::Protocol| proto::LbPort {
            port,
            protocol: protocol as i32,
        };
        use proto::Protocol::*;
        assert_eq!(
            lb_ports(&[port(80, Tcp), port(80, Udp)]),
            Ok(vec![(LbProtocol::Tcp, 80), (LbProtocol::Udp, 80)])
        );
        assert_eq!(
            lb_ports(&[port(80, Icmp)]),
            Err(err("Invalid loadbalanced_ports.protocol"))
        );
        assert_eq!(
            lb_ports(&[port(80, Undefined)]),
            Err(err("Invalid loadbalanced_ports.protocol"))
        );
        assert_eq!(
            lb_ports(&[port(65536, Tcp)]),
            Err(err("Invalid loadbalanced_ports.port"))
        );
        assert_eq!(
            lb_ports(&[port(0, Tcp)]),
            Err(err("Invalid loadbalanced_ports.port"))
        );
        assert_eq!(
            lb_ports(&[port(80, Tcp), port(80, Tcp)]),
            Err(err("Duplicate loadbalanced_ports entry"))
        );
        let fifteen: Vec<_> = (1..=15).map(|p| port(p, Tcp)).collect();
        assert_eq!(lb_ports(&fifteen).unwrap().len(), 15);
        let sixteen: Vec<_> = (1..=16).map(|p| port(p, Tcp)).collect();
        assert_eq!(lb_ports(&sixteen), Err(err("Too many loadbalanced_ports")));
    }

    #[test]
    fn preferred_underlays() {
        let host: Ipv6Addr = "fc00:1::1".parse().unwrap();
        let table: &[(&str, std::result::Result<Option<&str>, ()>)] = &[
            ("", Ok(None)),
            ("::", Ok(None)),
            ("fc00:1::d000:8000:0:1", Ok(Some("fc00:1::d000:8000:0:1"))),
            ("fc00:1::d000:0:0:1", Err(())),
            ("fc00:2::d000:8000:0:1", Err(())),
            ("10.0.0.1", Err(())),
            ("garbage", Err(())),
        ];
        for (raw, want) in table {
            let got = preferred_underlay(raw.as_bytes(), host);
            match want {
                Ok(v) => assert_eq!(got, Ok(v.map(|s| s.parse().unwrap())), "{raw}"),
                Err(()) => assert_eq!(got, Err(err("Invalid preferred_underlay_route")), "{raw}"),
            }
        }
    }

    #[test]
    fn primary_address_combinations() {
        let cfg = |s: &str| proto::IpConfig {
            primary_address: s.as_bytes().to_vec(),
        };
        let combo = err("Invalid ipv4_config.primary_address and ipv6_config.primary_address combination");
        assert_eq!(
            primary_addresses(Some(&cfg("10.0.0.1")), Some(&cfg("::"))),
            Ok((Some("10.0.0.1".parse().unwrap()), None))
        );
        assert_eq!(
            primary_addresses(Some(&cfg("0.0.0.0")), Some(&cfg("fd00::1"))),
            Ok((None, Some("fd00::1".parse().unwrap())))
        );
        assert_eq!(
            primary_addresses(Some(&cfg("0.0.0.0")), Some(&cfg("::"))),
            Err(combo)
        );
        assert_eq!(
            primary_addresses(Some(&cfg("")), Some(&cfg("::"))),
            Err(err("Invalid ipv4_config.primary_address"))
        );
        assert_eq!(
            primary_addresses(Some(&cfg("10.0.0.1")), None),
            Err(err("Invalid ipv6_config.primary_address"))
        );
    }

    #[test]
    fn hostnames_and_required_strings() {
        assert_eq!(hostname(""), Ok(None));
        assert_eq!(hostname("vm1"), Ok(Some("vm1".into())));
        assert_eq!(hostname(&"h".repeat(64)), Err(err("Invalid hostname")));
        assert_eq!(non_empty("client_name", ""), Err(err("Invalid client_name")));
        assert_eq!(non_empty("client_name", "x"), Ok("x"));
        assert_eq!(vni_type(2), Ok(proto::VniType::VniBoth));
        assert_eq!(vni_type(3), Err(err("Invalid type")));
    }

    #[test]
    fn firewall_rules() {
        use proto::protocol_filter::Filter;
        let base = proto::FirewallRule {
            id: b"fw1".to_vec(),
            direction: proto::TrafficDirection::Ingress as i32,
            action: proto::FirewallAction::Accept as i32,
            priority: 1000,
            source_prefix: Some(proto::Prefix {
                ip: Some(v4("0.0.0.0")),
                length: 0,
                underlay_route: vec![],
            }),
            destination_prefix: None,
            protocol_filter: Some(proto::ProtocolFilter {
                filter: Some(Filter::Tcp(proto::TcpFilter {
                    src_port_lower: -1,
                    src_port_upper: -1,
                    dst_port_lower: 80,
                    dst_port_upper: 90,
                })),
            }),
        };
        let rule = firewall_rule(Some(&base)).unwrap();
        assert_eq!(
            rule.protocol,
            RuleProtocol::Tcp {
                src: None,
                dst: Some((80, 90))
            }
        );
        assert_eq!(rule.source, Some("0.0.0.0/0".parse().unwrap()));

        let with = |f: &dyn Fn(&mut proto::FirewallRule)| {
            let mut r = base.clone();
            f(&mut r);
            firewall_rule(Some(&r))
        };
        type Mutation = Box<dyn Fn(&mut proto::FirewallRule)>;
        let table: Vec<(Mutation, &str)> = vec![
            (Box::new(|r| r.id.clear()), "Invalid rule.id"),
            (Box::new(|r| r.direction = 5), "Invalid rule.direction"),
            (Box::new(|r| r.action = 9), "Invalid rule.action"),
            (Box::new(|r| r.priority = 65536), "Invalid rule.priority"),
            (
                Box::new(|r| r.source_prefix.as_mut().unwrap().length = 33),
                "Invalid rule.source_prefix.length",
            ),
            (
                Box::new(|r| {
                    r.protocol_filter = Some(proto::ProtocolFilter {
                        filter: Some(Filter::Udp(proto::UdpFilter {
                            src_port_lower: 70000,
                            src_port_upper: -1,
                            dst_port_lower: -1,
                            dst_port_upper: -1,
                        })),
                    })
                }),
                "Invalid rule.protocol_filter.udp.src_port_lower",
            ),
            (
                Box::new(|r| {
                    r.protocol_filter = Some(proto::ProtocolFilter {
                        filter: Some(Filter::Tcp(proto::TcpFilter {
                            src_port_lower: -1,
                            src_port_upper: -1,
                            dst_port_lower: 90,
                            dst_port_upper: 80,
                        })),
                    })
                }),
                "Invalid rule.protocol_filter.tcp.dst_port_upper",
            ),
            (
                Box::new(|r| {
                    r.protocol_filter = Some(proto::ProtocolFilter {
                        filter: Some(Filter::Icmp(proto::IcmpFilter {
                            icmp_type: 256,
                            icmp_code: -1,
                        })),
                    })
                }),
                "Invalid rule.protocol_filter.icmp.icmp_type",
            ),
        ];
        for (mutate, msg) in table {
            assert_eq!(with(&*mutate), Err(err(msg)));
        }
        assert_eq!(firewall_rule(None), Err(err("Invalid rule")));
    }

    proptest::proptest! {
        #[test]
        fn validation_never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), n in proptest::prelude::any::<u32>(), m in proptest::prelude::any::<u32>()) {
            let _ = interface_id("interface_id", &raw);
            let _ = object_id("id", &raw);
            let _ = ipv4_text("a", &raw);
            let _ = ipv6_text("a", &raw);
            let _ = preferred_underlay(&raw, Ipv6Addr::LOCALHOST);
            let _ = port_range(n, m);
            let _ = vni(n);
            let addr = proto::IpAddress { ipver: (n % 3) as i32, address: raw.clone() };
            let _ = prefix("p", Some(&proto::Prefix { ip: Some(addr), length: m, underlay_route: raw.clone() }));
        }
    }
}
