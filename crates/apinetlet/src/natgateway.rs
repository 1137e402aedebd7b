//! ironcore NATGateway → apinet NATGateway + NATGatewayAutoscaler, `status.ips` back (upstream
//! ironcore-net's apinetlet NATGateway controller, `apinetlet/controllers`).

use serde_json::{Value, json};

use crate::meta::{APINET_API_VERSION, Source, controller_ref, derived_metadata};
use crate::origin;

/// `portsPerNetworkInterface` when the ironcore object leaves it unset.
pub const DEFAULT_PORTS_PER_NETWORK_INTERFACE: i32 = 2048;
/// Autoscaler lower bound.
pub const MIN_PUBLIC_IPS: i32 = 1;
/// Autoscaler upper bound.
pub const MAX_PUBLIC_IPS: i32 = 10;

/// The apply body of the apinet NATGateway (no `ips`: the autoscaler owns them).
pub fn desired_nat_gateway(
    apinet_namespace: &str,
    nat: &Source,
    family: &str,
    apinet_network: &str,
    ports_per_interface: Option<i32>,
) -> Value {
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "NATGateway",
        "metadata": derived_metadata(apinet_namespace, origin::NAT_GATEWAY, nat),
        "spec": {
            "ipFamily": family,
            "networkRef": { "name": apinet_network },
            "portsPerNetworkInterface": ports_per_interface.unwrap_or(DEFAULT_PORTS_PER_NETWORK_INTERFACE),
        },
    })
}

/// The apply body of the NATGatewayAutoscaler, controlled by the apinet NATGateway with `apinet_uid`.
pub fn desired_autoscaler(apinet_namespace: &str, nat: &Source, apinet_uid: &str) -> Value {
    let mut metadata = derived_metadata(apinet_namespace, origin::NAT_GATEWAY, nat);
    metadata["ownerReferences"] = json!([controller_ref("NATGateway", &nat.uid, apinet_uid)]);
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "NATGatewayAutoscaler",
        "metadata": metadata,
        "spec": {
            "natGatewayRef": { "name": nat.uid },
            "minPublicIPs": MIN_PUBLIC_IPS,
            "maxPublicIPs": MAX_PUBLIC_IPS,
        },
    })
}

/// The status merge patch mirroring the apinet gateway's allocated IPs, or `None` if unchanged.
pub fn status_patch(current: &[String], allocated: &[String]) -> Option<Value> {
    (current != allocated).then(|| json!({ "status": { "ips": allocated } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_gateway_and_autoscaler() {
        let nat = Source {
            namespace: "ns".into(),
            name: "nat".into(),
            uid: "nat-uid".into(),
        };
        let gw = desired_nat_gateway("apinet", &nat, "IPv4", "net-uid", None);
        assert_eq!(
            gw["spec"],
            json!({"ipFamily": "IPv4", "networkRef": {"name": "net-uid"}, "portsPerNetworkInterface": 2048})
        );
        assert_eq!(
            desired_nat_gateway("apinet", &nat, "IPv4", "n", Some(64))["spec"]["portsPerNetworkInterface"],
            64
        );
        let a = desired_autoscaler("apinet", &nat, "gw-uid");
        assert_eq!(a["metadata"]["name"], "nat-uid");
        assert_eq!(a["metadata"]["ownerReferences"][0]["uid"], "gw-uid");
        assert_eq!(a["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(a["spec"]["natGatewayRef"]["name"], "nat-uid");
        assert_eq!(
            status_patch(&[], &["10.0.0.1".into()]),
            Some(json!({"status": {"ips": ["10.0.0.1"]}}))
        );
        assert_eq!(status_patch(&["10.0.0.1".into()], &["10.0.0.1".into()]), None);
    }
}
