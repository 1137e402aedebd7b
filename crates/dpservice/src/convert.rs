//! Conversions from dataplane values to protobuf messages, with dpservice's conventions:
//! addresses as text in `bytes` fields, `Status{0, "Success"}` on success and
//! `Status{code, NAME}` for business errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_dataplane as dp;
use ironnet_vni::Vni;

use crate::proto;

/// `Status{0, "Success"}`, set on every successful response.
pub fn ok() -> Option<proto::Status> {
    Some(proto::Status {
        code: 0,
        message: "Success".into(),
    })
}

/// `Status{code, NAME}` for a business error.
pub fn error(e: dp::DpError) -> Option<proto::Status> {
    Some(proto::Status {
        code: e.code(),
        message: e.name().into(),
    })
}

/// An address as the ASCII text dpservice puts into `bytes` fields.
pub fn text(ip: impl Into<IpAddr>) -> Vec<u8> {
    ip.into().to_string().into_bytes()
}

/// An `IpAddress` message.
pub fn ip(ip: impl Into<IpAddr>) -> proto::IpAddress {
    let ip = ip.into();
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

/// A `Prefix` message (without underlay).
pub fn prefix(net: IpNet, underlay: Option<Ipv6Addr>) -> proto::Prefix {
    proto::Prefix {
        ip: Some(ip(net.addr())),
        length: u32::from(net.prefix_len()),
        underlay_route: underlay.map(text).unwrap_or_default(),
    }
}

/// An `Interface` message; absent families are reported as `0.0.0.0` / `::` like dpservice.
pub fn interface(i: &dp::InterfaceInfo, device: &str) -> proto::Interface {
    proto::Interface {
        id: i.id.clone().into_bytes(),
        vni: Vni::to_wire(i.vni),
        primary_ipv4: text(i.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED)),
        primary_ipv6: text(i.ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
        underlay_route: text(i.underlay),
        pci_name: device.to_owned(),
        metering_params: Some(proto::MeteringParams::default()),
        hostname: i.hostname.clone().unwrap_or_default(),
    }
}

/// An `LbPort` message.
pub fn lb_port(p: &dp::LbPort) -> proto::LbPort {
    let protocol = match p.protocol {
        dp::L4Proto::Tcp => proto::Protocol::Tcp,
        dp::L4Proto::Udp => proto::Protocol::Udp,
    };
    proto::LbPort {
        port: u32::from(p.port),
        protocol: protocol as i32,
    }
}

fn range(r: dp::PortRange) -> (i32, i32) {
    (r.lower.map_or(-1, i32::from), r.upper.map_or(-1, i32::from))
}

/// A `FirewallRule` message.
pub fn firewall_rule(r: &dp::FirewallRule) -> proto::FirewallRule {
    use proto::protocol_filter::Filter;
    let filter = match r.protocol {
        dp::ProtocolFilter::Any => None,
        dp::ProtocolFilter::Tcp { src, dst } => {
            let ((sl, su), (dl, du)) = (range(src), range(dst));
            Some(Filter::Tcp(proto::TcpFilter {
                src_port_lower: sl,
                src_port_upper: su,
                dst_port_lower: dl,
                dst_port_upper: du,
            }))
        }
        dp::ProtocolFilter::Udp { src, dst } => {
            let ((sl, su), (dl, du)) = (range(src), range(dst));
            Some(Filter::Udp(proto::UdpFilter {
                src_port_lower: sl,
                src_port_upper: su,
                dst_port_lower: dl,
                dst_port_upper: du,
            }))
        }
        dp::ProtocolFilter::Icmp { icmp_type, icmp_code } => Some(Filter::Icmp(proto::IcmpFilter {
            icmp_type: icmp_type.map_or(-1, i32::from),
            icmp_code: icmp_code.map_or(-1, i32::from),
        })),
    };
    proto::FirewallRule {
        id: r.id.clone().into_bytes(),
        direction: match r.direction {
            dp::Direction::Ingress => proto::TrafficDirection::Ingress,
            dp::Direction::Egress => proto::TrafficDirection::Egress,
        } as i32,
        action: match r.action {
            dp::Action::Accept => proto::FirewallAction::Accept,
            dp::Action::Drop => proto::FirewallAction::Drop,
        } as i32,
        priority: r.priority,
        source_prefix: Some(prefix(r.source, None)),
        destination_prefix: Some(prefix(r.destination, None)),
        protocol_filter: Some(proto::ProtocolFilter { filter }),
    }
}

/// A validated rule as the dataplane's type. An absent prefix matches everything of the
/// family of the other prefix (IPv4 if neither is given).
pub fn to_dataplane_rule(r: crate::validate::Rule) -> dp::FirewallRule {
    use crate::validate::RuleProtocol;
    let any = |other: Option<IpNet>| {
        match other {
            Some(IpNet::V6(_)) => IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            _ => IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        }
        .unwrap_or_default()
    };
    let pr = |m: crate::validate::PortMatch| match m {
        None => dp::PortRange::ANY,
        Some((lo, hi)) => dp::PortRange {
            lower: Some(lo),
            upper: Some(hi),
        },
    };
    dp::FirewallRule {
        source: r.source.unwrap_or_else(|| any(r.destination)),
        destination: r.destination.unwrap_or_else(|| any(r.source)),
        id: r.id,
        direction: match r.direction {
            proto::TrafficDirection::Ingress => dp::Direction::Ingress,
            proto::TrafficDirection::Egress => dp::Direction::Egress,
        },
        action: match r.action {
            proto::FirewallAction::Accept => dp::Action::Accept,
            proto::FirewallAction::Drop => dp::Action::Drop,
        },
        priority: r.priority,
        protocol: match r.protocol {
            RuleProtocol::Any => dp::ProtocolFilter::Any,
            RuleProtocol::Tcp { src, dst } => dp::ProtocolFilter::Tcp {
                src: pr(src),
                dst: pr(dst),
            },
            RuleProtocol::Udp { src, dst } => dp::ProtocolFilter::Udp {
                src: pr(src),
                dst: pr(dst),
            },
            RuleProtocol::Icmp { icmp_type, icmp_code } => dp::ProtocolFilter::Icmp { icmp_type, icmp_code },
        },
    }
}
