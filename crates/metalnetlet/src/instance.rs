//! LoadBalancer Instances → metalnet LoadBalancers, one per IP (upstream ironcore-net
//! `metalnetlet/controllers/instance_controller.go`).

use ironnet_api::apinet;
use ironnet_api::apinet::loadbalancer::LoadBalancerType;
use ironnet_api::common::{IP, LocalObjectReference, Protocol};
use ironnet_api::metalnet;
use ironnet_api::metalnet::loadbalancer::{LBPort, LoadBalancerType as MetalnetLoadBalancerType};

/// The metalnet LoadBalancer spec serving `ip` of `instance` on metalnet node `node`, in metalnet Network
/// `network` (the apinet Network's UID). Port ranges are not supported by metalnet: only `port` is kept. SCTP
/// ports, which metalnet cannot forward (see [`unsupported_ports`]), are left out.
pub fn metalnet_lb_spec(
    instance: &apinet::Instance,
    network: &str,
    node: &str,
    lb_type: MetalnetLoadBalancerType,
    ip: &IP,
) -> metalnet::LoadBalancerSpec {
    metalnet::LoadBalancerSpec {
        network_ref: LocalObjectReference {
            name: network.to_owned(),
        },
        type_: Some(lb_type),
        ip_family: Some(ip.family()),
        ip: Some(ip.clone()),
        ports: instance
            .spec
            .load_balancer_ports
            .iter()
            .filter_map(|p| {
                let protocol = match p.protocol.unwrap_or(Protocol::Tcp) {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP",
                    Protocol::Sctp => return None,
                };
                Some(LBPort {
                    protocol: protocol.to_owned(),
                    port: p.port,
                })
            })
            .collect(),
        node_name: Some(node.to_owned()),
    }
}

/// The ports of `instance` metalnet cannot forward (SCTP: metalnet LoadBalancers take TCP and UDP only), for
/// reporting; upstream passes them on and the metalnet LoadBalancer is rejected.
pub fn unsupported_ports(instance: &apinet::Instance) -> Vec<i32> {
    instance
        .spec
        .load_balancer_ports
        .iter()
        .filter(|p| p.protocol == Some(Protocol::Sctp))
        .map(|p| p.port)
        .collect()
}

/// The metalnet LoadBalancer type of an apinet LoadBalancer type.
pub fn metalnet_lb_type(t: Option<LoadBalancerType>) -> Option<MetalnetLoadBalancerType> {
    t.map(|t| match t {
        LoadBalancerType::Public => MetalnetLoadBalancerType::Public,
        LoadBalancerType::Internal => MetalnetLoadBalancerType::Internal,
    })
}

/// Whether two metalnet LoadBalancer specs serve the same thing (upstream's `EqualMetalnetLoadBalancers`: IP,
/// family, network, type and ports).
pub fn same_load_balancer(a: &metalnet::LoadBalancerSpec, b: &metalnet::LoadBalancerSpec) -> bool {
    a.ip == b.ip
        && a.ip_family == b.ip_family
        && a.network_ref == b.network_ref
        && a.type_ == b.type_
        && a.ports == b.ports
}

/// The name of the metalnet LoadBalancer of `ip` of the instance with `uid`: `<uid>-<hash>`, the hash being
/// upstream's (FNV-32a of the address bytes and, if set, the collision count as 8 little-endian bytes, in
/// decimal, safely encoded), so names stay those upstream gives.
pub fn metalnet_lb_name(uid: &str, ip: &IP, collision_count: Option<i32>) -> String {
    let mut data: Vec<u8> = match ip.addr() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    if let Some(c) = collision_count {
        // Upstream writes the u32 count into the first four of eight zeroed bytes.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&c.to_le_bytes());
        data.extend_from_slice(&bytes);
    }
    let hash = data.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    format!("{uid}-{}", safe_encode(&hash.to_string()))
}

/// Kubernetes' `rand.SafeEncodeString`: every character mapped into an alphabet without vowels and
/// look-alikes.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| char::from(ALPHANUMS[(c as usize) % ALPHANUMS.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::apinet::loadbalancer::LoadBalancerPort;
    use ironnet_api::common::IPFamily;

    #[test]
    fn names_follow_upstreams_hash() {
        let ip: IP = "10.0.0.1".parse().unwrap();
        // FNV-32a of 0a 00 00 01 is 1817209388; its digits encoded.
        assert_eq!(safe_encode("1817209388"), "5d5c64f7dd");
        assert_eq!(metalnet_lb_name("u", &ip, None), "u-5d5c64f7dd");
        assert_ne!(
            metalnet_lb_name("u", &ip, Some(1)),
            metalnet_lb_name("u", &ip, None)
        );
        assert_ne!(
            metalnet_lb_name("u", &"10.0.0.2".parse().unwrap(), None),
            metalnet_lb_name("u", &ip, None)
        );
    }

    #[test]
    fn spec_keeps_port_and_defaults_protocol_to_tcp() {
        let inst = apinet::Instance::new(
            "i",
            apinet::InstanceSpec {
                load_balancer_ports: vec![
                    LoadBalancerPort {
                        protocol: None,
                        port: 1000,
                        end_port: Some(1005),
                    },
                    LoadBalancerPort {
                        protocol: Some(Protocol::Udp),
                        port: 53,
                        end_port: None,
                    },
                    LoadBalancerPort {
                        protocol: Some(Protocol::Sctp),
                        port: 9,
                        end_port: None,
                    },
                ],
                ..Default::default()
            },
        );
        let ip: IP = "2001:db8::1".parse().unwrap();
        let spec = metalnet_lb_spec(&inst, "net", "node", MetalnetLoadBalancerType::Public, &ip);
        assert_eq!(spec.ip_family, Some(IPFamily::IPv6));
        assert_eq!(
            spec.ports,
            vec![
                LBPort {
                    protocol: "TCP".into(),
                    port: 1000
                },
                LBPort {
                    protocol: "UDP".into(),
                    port: 53
                }
            ]
        );
        assert_eq!(unsupported_ports(&inst), vec![9], "SCTP is reported and left out");
        let mut other = spec.clone();
        other.node_name = Some("elsewhere".into());
        assert!(same_load_balancer(&spec, &other), "the node is not compared");
        other.ports.pop();
        assert!(!same_load_balancer(&spec, &other));
    }
}
