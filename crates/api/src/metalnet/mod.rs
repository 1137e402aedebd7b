//! `networking.metalnet.ironcore.dev/v1alpha1`: the per-node dataplane API read by metalnet (and by ironnet's
//! dataplane agent).

pub mod loadbalancer;
pub mod network;
pub mod networkinterface;

pub use loadbalancer::{LoadBalancer, LoadBalancerSpec, LoadBalancerStatus};
pub use network::{Network, NetworkSpec, NetworkStatus};
pub use networkinterface::{NetworkInterface, NetworkInterfaceSpec, NetworkInterfaceStatus};

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::IP;

/// The API group.
pub const GROUP: &str = "networking.metalnet.ironcore.dev";
/// The only version.
pub const VERSION: &str = "v1alpha1";

/// The state of a metalnet object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ObjectState {
    /// Realised.
    Ready,
    /// Not yet realised.
    Pending,
    /// Realising failed.
    Error,
}

/// A NAT assignment: public IP and the port range `[port, endPort)` (end exclusive, dpservice semantics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATDetails {
    /// The public IP. Required.
    #[serde(default)]
    pub ip: Option<IP>,
    /// First port, 0..65535.
    #[serde(default)]
    pub port: i32,
    /// End of the range, exclusive, 0..65535.
    #[serde(default)]
    pub end_port: i32,
}

/// Validates NAT details at `path`: IP required, ports in range, `port < endPort`.
pub fn validate_nat(nat: &NATDetails, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if nat.ip.is_none() {
        errs.push(FieldError::required(&path.child("ip"), ""));
    }
    for (f, v) in [("port", nat.port), ("endPort", nat.end_port)] {
        if !(0..=65535).contains(&v) {
            errs.push(FieldError::invalid(
                &path.child(f),
                v,
                "must be between 0 and 65535, inclusive",
            ));
        }
    }
    if nat.end_port <= nat.port {
        errs.push(FieldError::invalid(
            &path.child("endPort"),
            nat.end_port,
            "must be greater than port (the range end is exclusive)",
        ));
    }
    errs
}
