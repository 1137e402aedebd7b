//! The claim objects (NetworkID, IPAddress, ephemeral IP) written as side effects of admission,
//! in the exact shape ironcore-net gives them.

use std::net::IpAddr;

use serde_json::{Value, json};

use ironnet_vni::Vni;

use crate::alloc::IpFamily;

/// The API group of ironcore-net.
pub const APINET_GROUP: &str = "core.apinet.ironcore.dev";
/// `apiVersion` of ironcore-net objects.
pub const APINET_API_VERSION: &str = "core.apinet.ironcore.dev/v1alpha1";
/// Finalizer that protects an IPAddress while its claimer exists.
pub const IPADDRESS_PROTECTION_FINALIZER: &str = "apinet.ironcore.dev/ipaddress-protection";
/// Label with an IP's family.
pub const IP_FAMILY_LABEL: &str = "apinet.ironcore.dev/ip-family";
/// Label with an IP's address (`:` replaced by `-`).
pub const IP_LABEL: &str = "apinet.ironcore.dev/ip";

/// The value of [`IP_LABEL`] for an address.
pub fn ip_label_value(ip: IpAddr) -> String {
    ip.to_string().replace(':', "-")
}

/// Who claims a NetworkID, IPAddress or IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimer {
    /// Plural resource of the claimer, e.g. `networks`.
    pub resource: String,
    /// Namespace of the claimer (empty for cluster-scoped).
    pub namespace: String,
    /// Name of the claimer.
    pub name: String,
    /// UID of the claimer.
    pub uid: String,
}

impl Claimer {
    /// The claimer described by an object's metadata.
    pub fn of(resource: &str, obj: &Value) -> Self {
        let meta = |f: &str| {
            obj.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Claimer {
            resource: resource.to_owned(),
            namespace: meta("namespace"),
            name: meta("name"),
            uid: meta("uid"),
        }
    }

    /// `spec.claimRef` with namespace (NetworkID, IPAddress).
    pub fn claim_ref_with_namespace(&self) -> Value {
        json!({
            "group": APINET_GROUP,
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        })
    }

    /// `spec.claimRef` without namespace (IP: the claimer is always in the IP's namespace).
    pub fn claim_ref(&self) -> Value {
        json!({"group": APINET_GROUP, "resource": self.resource, "name": self.name, "uid": self.uid})
    }
}

/// Metadata for a new object created by the server itself.
fn new_metadata(name: &str, namespace: Option<&str>, now: &str) -> Value {
    let mut meta = json!({
        "name": name,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creationTimestamp": now,
        "generation": 1,
    });
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    meta
}

/// A NetworkID named after `vni`, claimed by `claimer`.
pub fn network_id(vni: Vni, claimer: &Claimer, now: &str) -> Value {
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "NetworkID",
        "metadata": new_metadata(&vni.to_string(), None, now),
        "spec": {"claimRef": claimer.claim_ref_with_namespace()},
    })
}

/// An IPAddress named after `ip`, claimed by the IP `claimer`, with its protection finalizer.
pub fn ip_address(ip: IpAddr, claimer: &Claimer, now: &str) -> Value {
    let mut meta = new_metadata(&ip.to_string(), None, now);
    meta["finalizers"] = json!([IPADDRESS_PROTECTION_FINALIZER]);
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "IPAddress",
        "metadata": meta,
        "spec": {"ip": ip.to_string(), "claimRef": claimer.claim_ref_with_namespace()},
    })
}

/// An ephemeral public IP owned and claimed by `owner` (kind `owner_kind`), named `name`.
pub fn ephemeral_ip(name: &str, ip: IpAddr, owner_kind: &str, owner: &Claimer, now: &str) -> Value {
    let family = IpFamily::of(ip);
    let mut meta = new_metadata(name, Some(&owner.namespace), now);
    meta["labels"] = json!({IP_FAMILY_LABEL: family.as_str(), IP_LABEL: ip_label_value(ip)});
    meta["ownerReferences"] = json!([{
        "apiVersion": APINET_API_VERSION,
        "kind": owner_kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "IP",
        "metadata": meta,
        "spec": {"type": "Public", "ipFamily": family.as_str(), "ip": ip.to_string(), "claimRef": owner.claim_ref()},
    })
}

/// A random 5-character suffix as `generateName` uses (consonants and digits, like Kubernetes).
pub fn name_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
