//! Shared pieces of the apply bodies apinetlet writes.

use serde_json::{Value, json};

use crate::origin::{Origin, OriginData};

/// API version of `core.apinet.ironcore.dev` objects.
pub const APINET_API_VERSION: &str = "core.apinet.ironcore.dev/v1alpha1";
/// Field manager of apinetlet's server-side applies.
pub const FIELD_MANAGER: &str = "ironcore.dev/apinetlet";
/// Field manager of NetworkPolicyRule applies.
pub const POLICY_RULE_FIELD_MANAGER: &str = "networkpolicies.networking.ironcore.dev";

/// Finalizers apinetlet puts on ironcore objects.
pub mod finalizers {
    /// On Networks.
    pub const NETWORK: &str = "apinet.ironcore.dev/network";
    /// On VirtualIPs.
    pub const VIRTUAL_IP: &str = "apinet.ironcore.dev/virtualip";
    /// On NATGateways.
    pub const NAT_GATEWAY: &str = "apinet.ironcore.dev/natgateway";
    /// On LoadBalancers.
    pub const LOAD_BALANCER: &str = "apinet.ironcore.dev/loadbalancer";
    /// On NetworkPolicies.
    pub const NETWORK_POLICY: &str = "apinet.ironcore.dev/networkpolicy";
    /// On NetworkInterfaces.
    pub const NETWORK_INTERFACE: &str = "apinet.ironcore.dev/networkinterface";
}

/// The ironcore object a derived apinet object is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (the apinet object's name).
    pub uid: String,
}

impl Source {
    /// The origin data of this source.
    pub fn origin_data(&self) -> OriginData {
        OriginData {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }
}

/// `metadata` of an apinet object derived from `source` in `apinet_namespace` (name = source UID).
pub fn derived_metadata(apinet_namespace: &str, origin: Origin, source: &Source) -> Value {
    let data = source.origin_data();
    json!({
        "namespace": apinet_namespace,
        "name": source.uid,
        "labels": origin.labels(&data),
        "annotations": origin.annotations(&data),
    })
}

/// A controller owner reference to an apinet object.
pub fn controller_ref(kind: &str, name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `current` differs from `desired` so that a write is needed (`null` and absent compare equal).
pub fn differs(current: Option<&Value>, desired: &Value) -> bool {
    match current {
        None => !desired.is_null(),
        Some(c) => c != desired,
    }
}
