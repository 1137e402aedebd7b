//! ironcore VirtualIP → apinet IP, `status.ip` back (upstream ironcore-net's apinetlet
//! VirtualIP controller, `apinetlet/controllers`).

use serde_json::{Value, json};

use crate::meta::{APINET_API_VERSION, Source, derived_metadata};
use crate::origin;

/// The apply body of the apinet IP for a VirtualIP of `family` (`IPv4`/`IPv6`); the address is allocated by
/// the API server.
pub fn desired_ip(apinet_namespace: &str, vip: &Source, family: &str) -> Value {
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "IP",
        "metadata": derived_metadata(apinet_namespace, origin::VIRTUAL_IP, vip),
        "spec": { "type": "Public", "ipFamily": family },
    })
}

/// The status merge patch setting `status.ip` to `allocated` (`None` clears it), or `None` if unchanged.
pub fn status_patch(current: Option<&str>, allocated: Option<&str>) -> Option<Value> {
    (current != allocated).then(|| json!({ "status": { "ip": allocated } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_ip_shape_and_status() {
        let vip = Source {
            namespace: "ns".into(),
            name: "vip".into(),
            uid: "vip-uid".into(),
        };
        let ip = desired_ip("apinet", &vip, "IPv4");
        assert_eq!(ip["metadata"]["name"], "vip-uid");
        assert_eq!(ip["spec"], json!({"type": "Public", "ipFamily": "IPv4"}));
        assert_eq!(
            ip["metadata"]["labels"]["apinetlet.ironcore.dev/virtualip-uid"],
            "vip-uid"
        );
        assert_eq!(
            status_patch(None, Some("10.0.0.1")),
            Some(json!({"status": {"ip": "10.0.0.1"}}))
        );
        assert_eq!(status_patch(Some("10.0.0.1"), Some("10.0.0.1")), None);
        assert_eq!(
            status_patch(Some("10.0.0.1"), None),
            Some(json!({"status": {"ip": null}}))
        );
    }
}
