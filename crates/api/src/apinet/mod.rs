//! `core.apinet.ironcore.dev/v1alpha1`: ironcore-net's internal API (networks with VNIs, public IPs, load
//! balancer instances, NAT tables, policy rules, nodes).

pub mod daemonset;
pub mod instance;
pub mod ip;
pub mod ipaddress;
pub mod loadbalancer;
pub mod loadbalancerrouting;
pub mod natgateway;
pub mod natgatewayautoscaler;
pub mod nattable;
pub mod network;
pub mod networkid;
pub mod networkinterface;
pub mod networkpolicy;
pub mod networkpolicyrule;
pub mod node;

pub use daemonset::{DaemonSet, DaemonSetSpec, DaemonSetStatus};
pub use instance::{Instance, InstanceSpec, InstanceStatus, InstanceTemplate};
pub use ip::{IP, IPSpec};
pub use ipaddress::{IPAddress, IPAddressSpec};
pub use loadbalancer::{LoadBalancer, LoadBalancerSpec, LoadBalancerStatus};
pub use loadbalancerrouting::{LoadBalancerRouting, LoadBalancerRoutingFields};
pub use natgateway::{NATGateway, NATGatewaySpec, NATGatewayStatus};
pub use natgatewayautoscaler::{NATGatewayAutoscaler, NATGatewayAutoscalerSpec, NATGatewayAutoscalerStatus};
pub use nattable::{NATTable, NATTableFields};
pub use network::{Network, NetworkSpec, NetworkStatus};
pub use networkid::{NetworkID, NetworkIDSpec};
pub use networkinterface::{NetworkInterface, NetworkInterfaceSpec, NetworkInterfaceStatus};
pub use networkpolicy::{NetworkPolicy, NetworkPolicySpec};
pub use networkpolicyrule::{NetworkPolicyRule, NetworkPolicyRuleFields};
pub use node::{Node, NodeSpec, NodeStatus};

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP as Address, IPFamily};

/// The API group.
pub const GROUP: &str = "core.apinet.ironcore.dev";
/// The only version.
pub const VERSION: &str = "v1alpha1";

/// A reference to an apinet Node by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LocalNodeReference {
    /// Name of the Node.
    #[serde(default)]
    pub name: String,
}

/// The object (NetworkInterface, LoadBalancer instance, ...) behind an address, with the Node it runs on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetReference {
    /// UID of the target.
    #[serde(default)]
    pub uid: String,
    /// Name of the target.
    #[serde(default)]
    pub name: String,
    /// The Node the target runs on.
    #[serde(default)]
    pub node_ref: LocalNodeReference,
}

/// A public IP requested by an object: allocated (or claimed when `ip` is given) by the API server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectIP {
    /// Name of the entry (merge key).
    #[serde(default)]
    pub name: String,
    /// IP family; defaulted from `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The address; filled by the allocator when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Address>,
}

/// The upstream default: `ipFamily` from the address when empty.
pub(crate) fn default_object_ip(ip: &mut ObjectIP) {
    if ip.ip_family.is_none()
        && let Some(addr) = &ip.ip
    {
        ip.ip_family = Some(addr.family());
    }
}

/// Validates named, family-tagged IPs at `path`: unique names, family required and matching the address,
/// at most one entry per family when `one_per_family`.
pub(crate) fn validate_object_ips(ips: &[ObjectIP], one_per_family: bool, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, ip) in ips.iter().enumerate() {
        let p = path.index(i);
        if ips[..i].iter().any(|e| e.name == ip.name) {
            errs.push(FieldError::duplicate(&p.child("name"), ip.name.as_str()));
        }
        match ip.ip_family {
            None => errs.push(FieldError::required(
                &p.child("ipFamily"),
                "must specify ip family",
            )),
            Some(f) => {
                if let Some(addr) = &ip.ip
                    && addr.family() != f
                {
                    errs.push(FieldError::invalid(
                        &p.child("ip"),
                        addr.to_string(),
                        format!("expected ip family {f} but got {}", addr.family()),
                    ));
                }
                if one_per_family && ips[..i].iter().any(|e| e.ip_family == Some(f)) {
                    errs.push(FieldError::forbidden(
                        &p,
                        format!("cannot have multiple external IPs of family {f}"),
                    ));
                }
            }
        }
    }
    errs
}

/// `s` as a canonical decimal int32 (one that formats back to the same string), the form ironcore-net requires of
/// Network ids and NetworkID names. Wider than a [`Vni`](ironnet_vni::Vni) (ironcore-net accepts any int32 there);
/// consumers convert with the `vni()` accessors, which accept exactly the VNIs.
pub(crate) fn canonical_int32(s: &str) -> Option<i32> {
    let number: i32 = s.parse().ok()?;
    (number.to_string() == s).then_some(number)
}

/// Message for a value that is not a canonical VNI.
pub(crate) const INVALID_VNI: &str =
    "must be a canonical decimal VNI (an int32 without sign or leading zeros)";
