//! apinet NetworkInterface → metalnet NetworkInterface, and the status back (upstream ironcore-net
//! `metalnetlet/controllers/networkinterface_controller.go`).

use std::collections::BTreeSet;

use ironnet_api::apinet;
use ironnet_api::apinet::networkinterface::{NetworkInterfaceState, PCIAddress, TAPDevice};
use ironnet_api::common::{IP, IPFamily, IPPrefix, LocalObjectReference};
use ironnet_api::metalnet;
use ironnet_api::metalnet::networkinterface::FirewallRule;
use ironnet_api::metalnet::{NATDetails, ObjectState};

/// What a metalnet NetworkInterface is made of besides the apinet interface itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NicInputs {
    /// The metalnet Network name (the apinet Network's UID).
    pub network: String,
    /// The metalnet node the interface is on.
    pub node: String,
    /// IPs of the same-network LoadBalancers whose routing targets the interface.
    pub load_balancer_targets: BTreeSet<IP>,
    /// NAT assignments of the interface's NAT gateways, in `spec.natGateways` order.
    pub nats: Vec<NATDetails>,
    /// Firewall rules from the NetworkPolicyRules targeting the interface.
    pub firewall_rules: Vec<FirewallRule>,
}

/// The metalnet NetworkInterface spec of `nic`.
///
/// metalnet has no IPv6 virtual IP or NAT: the first IPv4 public IP is the virtual IP and the first IPv4 NAT
/// assignment is the NAT (as upstream).
pub fn metalnet_nic_spec(
    nic: &apinet::NetworkInterface,
    inputs: &NicInputs,
) -> metalnet::NetworkInterfaceSpec {
    let virtual_ip = nic
        .spec
        .public_ips
        .iter()
        .filter_map(|p| p.ip.clone())
        .find(|ip| ip.family() == IPFamily::IPv4);
    let nat = inputs
        .nats
        .iter()
        .find(|n| n.ip.as_ref().is_some_and(|ip| ip.family() == IPFamily::IPv4))
        .cloned();
    metalnet::NetworkInterfaceSpec {
        network_ref: LocalObjectReference {
            name: inputs.network.clone(),
        },
        ip_families: nic.spec.ips.iter().map(IP::family).collect(),
        ips: nic.spec.ips.clone(),
        virtual_ip,
        prefixes: nic.spec.prefixes.clone(),
        // The set is ordered, so targets come sorted ascending (as upstream sorts them).
        load_balancer_targets: inputs
            .load_balancer_targets
            .iter()
            .filter_map(|ip| IPPrefix::new(ip.addr(), ip.family().bits()))
            .collect(),
        nat,
        node_name: Some(inputs.node.clone()),
        firewall_rules: inputs.firewall_rules.clone(),
        metering_rate: None,
        // metalnet validates a hostname as a DNS subdomain, which the empty string is not; upstream sends a
        // pointer to the empty string, here an unset hostname stays unset.
        hostname: (!nic.spec.hostname.is_empty()).then(|| nic.spec.hostname.clone()),
    }
}

/// The metalnet NAT assignment of a NATTable section: NAT IP `ip`, ports `port..=end_port`.
///
/// A NATTable section's `endPort` is the last port of the slot (the controller-manager hands out
/// `[1024 + s·ppn, 1024 + s·ppn + ppn − 1]`), metalnet's `endPort` is exclusive (dpservice's `max_port`), so it
/// is one more. Upstream copies the value and so loses the last port of every slot. metalnet cannot express
/// an end of 65536: the last slot of the port space keeps its end and loses port 65535 only.
pub fn nat_section_details(ip: Option<IP>, port: i32, end_port: i32) -> NATDetails {
    NATDetails {
        ip,
        port,
        end_port: end_port.saturating_add(1).min(65535),
    }
}

/// The apinet NetworkInterface status that metalnet NetworkInterface `m` reports.
pub fn apinet_nic_status(m: &metalnet::NetworkInterface) -> apinet::NetworkInterfaceStatus {
    let status = m.status.clone().unwrap_or_default();
    apinet::NetworkInterfaceStatus {
        state: Some(match status.state {
            Some(ObjectState::Ready) => NetworkInterfaceState::Ready,
            Some(ObjectState::Error) => NetworkInterfaceState::Error,
            Some(ObjectState::Pending) | None => NetworkInterfaceState::Pending,
        }),
        pci_address: status.pci_address.map(|p| PCIAddress {
            domain: p.domain,
            bus: p.bus,
            slot: p.slot,
            function: p.function,
        }),
        tap_device: status.tap_device.map(|t| TAPDevice { name: t.name }),
        prefixes: m.spec.prefixes.clone(),
        public_ips: status.virtual_ip.into_iter().collect(),
        nat_ips: status.nat_ip.and_then(|n| n.ip).into_iter().collect(),
    }
}

/// The merge patch turning `current` into `desired` (every field owned by metalnetlet is written, absent ones
/// as `null`), or `None` if they are equal.
pub fn nic_status_patch(
    current: Option<&apinet::NetworkInterfaceStatus>,
    desired: &apinet::NetworkInterfaceStatus,
) -> Option<serde_json::Value> {
    if current.cloned().unwrap_or_default() == *desired {
        return None;
    }
    let mut status = serde_json::json!({
        "state": null, "pciAddress": null, "tapDevice": null, "prefixes": null, "publicIPs": null, "natIPs": null,
    });
    if let (Some(obj), Ok(serde_json::Value::Object(d))) =
        (status.as_object_mut(), serde_json::to_value(desired))
    {
        obj.extend(d);
    }
    Some(serde_json::json!({ "status": status }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::apinet::ObjectIP;
    use serde_json::json;

    fn nic() -> apinet::NetworkInterface {
        serde_json::from_value(json!({
            "apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
            "metadata": {"name": "nic", "namespace": "ns", "uid": "u1"},
            "spec": {"networkRef": {"name": "net"}, "nodeRef": {"name": "p.node"}, "ips": ["10.0.0.1", "fd00::1"],
                     "prefixes": ["10.1.0.0/24"]},
        }))
        .unwrap()
    }

    #[test]
    fn spec_maps_addresses_targets_vip_and_nat() {
        let mut n = nic();
        n.spec.public_ips = vec![
            ObjectIP {
                name: "v6".into(),
                ip_family: Some(IPFamily::IPv6),
                ip: Some("2001:db8::9".parse().unwrap()),
            },
            ObjectIP {
                name: "v4".into(),
                ip_family: Some(IPFamily::IPv4),
                ip: Some("198.51.100.7".parse().unwrap()),
            },
        ];
        let inputs = NicInputs {
            network: "net-uid".into(),
            node: "node".into(),
            load_balancer_targets: ["198.51.100.20", "2001:db8::1", "198.51.100.3"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            nats: vec![
                NATDetails {
                    ip: Some("2001:db8::5".parse().unwrap()),
                    port: 1024,
                    end_port: 2048,
                },
                NATDetails {
                    ip: Some("198.51.100.5".parse().unwrap()),
                    port: 2048,
                    end_port: 4096,
                },
            ],
            firewall_rules: vec![],
        };
        let spec = metalnet_nic_spec(&n, &inputs);
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({
                "networkRef": {"name": "net-uid"},
                "ipFamilies": ["IPv4", "IPv6"],
                "ips": ["10.0.0.1", "fd00::1"],
                "virtualIP": "198.51.100.7",
                "prefixes": ["10.1.0.0/24"],
                "loadBalancerTargets": ["198.51.100.3/32", "198.51.100.20/32", "2001:db8::1/128"],
                "nat": {"ip": "198.51.100.5", "port": 2048, "endPort": 4096},
                "nodeName": "node",
            })
        );
        n.spec.hostname = "foo".into();
        assert_eq!(metalnet_nic_spec(&n, &inputs).hostname.as_deref(), Some("foo"));
    }

    #[test]
    fn nat_section_ends_become_exclusive() {
        let ip: IP = "198.51.100.5".parse().unwrap();
        let d = nat_section_details(Some(ip.clone()), 1024, 1087);
        assert_eq!((d.port, d.end_port), (1024, 1088), "64 ports: 1024..=1087");
        assert_eq!(nat_section_details(Some(ip), 65472, 65535).end_port, 65535);
    }

    #[test]
    fn status_mirrors_metalnet_and_is_written_only_on_change() {
        let m: metalnet::NetworkInterface = serde_json::from_value(json!({
            "apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
            "metadata": {"name": "u1", "namespace": "default"},
            "spec": {"networkRef": {"name": "n"}, "ipFamilies": ["IPv4"], "ips": ["10.0.0.1"]},
            "status": {"state": "Ready", "pciAddress": {"domain": "0000", "bus": "03", "slot": "00", "function": "06"}},
        }))
        .unwrap();
        let desired = apinet_nic_status(&m);
        assert_eq!(
            serde_json::to_value(&desired).unwrap(),
            json!({"state": "Ready", "pciAddress": {"domain": "0000", "bus": "03", "slot": "00", "function": "06"}})
        );
        let patch = nic_status_patch(None, &desired).unwrap();
        assert_eq!(patch["status"]["state"], "Ready");
        assert_eq!(patch["status"]["tapDevice"], serde_json::Value::Null);
        assert_eq!(nic_status_patch(Some(&desired), &desired), None);
        let mut pending = m.clone();
        pending.status = None;
        assert_eq!(
            apinet_nic_status(&pending).state,
            Some(NetworkInterfaceState::Pending)
        );
        let mut vip = m;
        vip.status.as_mut().unwrap().virtual_ip = Some("198.51.100.7".parse().unwrap());
        vip.status.as_mut().unwrap().nat_ip = Some(NATDetails {
            ip: Some("198.51.100.8".parse().unwrap()),
            port: 1,
            end_port: 2,
        });
        let s = apinet_nic_status(&vip);
        assert_eq!(s.public_ips, vec!["198.51.100.7".parse::<IP>().unwrap()]);
        assert_eq!(s.nat_ips, vec!["198.51.100.8".parse::<IP>().unwrap()]);
    }
}
