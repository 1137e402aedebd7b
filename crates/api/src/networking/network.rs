//! `Network` (`networking.ironcore.dev/v1alpha1`): an isolated layer-3 network, with peerings.

use std::collections::HashSet;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::common::{IPPrefix, LocalObjectReference};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule, names};

/// A reference to a peer Network, possibly in another namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, JsonSchema)]
pub struct NetworkPeeringNetworkRef {
    /// Namespace of the peer Network; empty means the Network's own namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the peer Network.
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
struct NetworkRefObject {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NetworkRefWire {
    Object(NetworkRefObject),
    List(Vec<NetworkRefObject>),
}

impl<'de> Deserialize<'de> for NetworkPeeringNetworkRef {
    /// Accepts the object form, and also a one-element list (the form shown in upstream's network documentation).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let obj = match NetworkRefWire::deserialize(deserializer)? {
            NetworkRefWire::Object(o) => o,
            NetworkRefWire::List(mut l) if l.len() == 1 => l.remove(0),
            NetworkRefWire::List(l) => {
                return Err(serde::de::Error::custom(format!(
                    "a network reference is an object, or a list of exactly one object; got a list of {}",
                    l.len()
                )));
            }
        };
        Ok(NetworkPeeringNetworkRef {
            namespace: obj.namespace,
            name: obj.name,
        })
    }
}

/// A prefix exposed to the peer: a literal prefix or a reference to an ipam Prefix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeeringPrefix {
    /// Name of the prefix entry; unique across all peerings of the Network.
    #[serde(default)]
    pub name: String,
    /// A literal prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<IPPrefix>,
    /// An ipam Prefix in the Network's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_ref: Option<LocalObjectReference>,
}

/// A peering with another Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPeering {
    /// Name of the peering; unique within the Network.
    #[serde(default)]
    pub name: String,
    /// The peer Network.
    #[serde(default)]
    pub network_ref: NetworkPeeringNetworkRef,
    /// Prefixes exposed to the peer; empty means no filtering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PeeringPrefix>,
}

/// A Network that claims a peering with this one (written by the peering controller).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPeeringClaimRef {
    /// Namespace of the claiming Network; empty means the Network's own namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the claiming Network.
    #[serde(default)]
    pub name: String,
    /// UID of the claiming Network.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The state of a Network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NetworkState {
    /// Not yet realised.
    Pending,
    /// Realised and usable.
    Available,
    /// Realising failed.
    Error,
}

/// The state of one peering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NetworkPeeringState {
    /// Not (yet) in place.
    Pending,
    /// In place.
    Ready,
    /// Failed.
    Error,
}

/// A prefix as realised for a peering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PeeringPrefixStatus {
    /// Name of the prefix entry.
    #[serde(default)]
    pub name: String,
    /// The effective prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<IPPrefix>,
}

/// The observed state of one peering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPeeringStatus {
    /// Name of the peering (as in `spec.peerings`).
    #[serde(default)]
    pub name: String,
    /// State of the peering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NetworkPeeringState>,
    /// Effective prefixes exposed to the peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PeeringPrefixStatus>,
}

/// The desired state of a Network.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.ironcore.dev",
    version = "v1alpha1",
    kind = "Network",
    plural = "networks",
    namespaced,
    status = "NetworkStatus",
    shortname = "net",
    derive = "PartialEq",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"ProviderID","type":"string","jsonPath":".spec.providerID"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Provider-internal ID of the Network; may be set once, then immutable.
    #[serde(default, rename = "providerID", skip_serializing_if = "String::is_empty")]
    pub provider_id: String,
    /// Peerings with other Networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<NetworkPeering>,
    /// Networks that claim a peering with this one; written by the peering controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incoming_peerings: Vec<NetworkPeeringClaimRef>,
}

/// The observed state of a Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkStatus {
    /// State of the Network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NetworkState>,
    /// State of each peering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<NetworkPeeringStatus>,
}

/// Validates a Network spec; `own` is the Network's `(namespace, name)` when it has a name.
pub fn validate_spec(spec: &NetworkSpec, namespace: &str, own_name: Option<&str>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut peering_names = HashSet::new();
    let mut targets = HashSet::new();
    let mut prefix_names = HashSet::new();
    for (i, peering) in spec.peerings.iter().enumerate() {
        let p = path.child("peerings").index(i);
        if !peering_names.insert(peering.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), peering.name.as_str()));
        }
        let target_ns = if peering.network_ref.namespace.is_empty() {
            namespace
        } else {
            peering.network_ref.namespace.as_str()
        };
        let target = (target_ns, peering.network_ref.name.as_str());
        if own_name.is_some_and(|n| (namespace, n) == target) {
            errs.push(FieldError::forbidden(
                &p.child("networkRef"),
                "cannot peer a network with itself",
            ));
        } else if !targets.insert(target) {
            errs.push(FieldError::duplicate(
                &p.child("networkRef"),
                serde_json::to_value(&peering.network_ref).unwrap_or_default(),
            ));
        }
        errs.extend(validation::subdomain(&p.child("name"), &peering.name));
        if !peering.network_ref.namespace.is_empty() {
            errs.extend(validation::label(
                &p.child("networkRef").child("namespace"),
                &peering.network_ref.namespace,
            ));
        }
        errs.extend(validation::subdomain(
            &p.child("networkRef").child("name"),
            &peering.network_ref.name,
        ));
        // Unlike upstream, prefixRef uniqueness only counts entries that use a prefixRef.
        let mut prefix_refs = HashSet::new();
        for (j, prefix) in peering.prefixes.iter().enumerate() {
            let pp = p.child("prefixes").index(j);
            if !prefix_names.insert(prefix.name.as_str()) {
                errs.push(FieldError::duplicate(&pp.child("name"), prefix.name.as_str()));
            }
            errs.extend(validation::subdomain(&pp.child("name"), &prefix.name));
            match (&prefix.prefix, &prefix.prefix_ref) {
                (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                    &pp.child("prefixRef"),
                    "cannot specify both prefix and prefixRef",
                )),
                // Upstream accepts entries with neither; an entry that exposes nothing is rejected here.
                (None, None) => errs.push(FieldError::forbidden(
                    &pp.child("prefix"),
                    "must be a valid IP range",
                )),
                _ => {}
            }
            if let Some(r) = &prefix.prefix_ref {
                if !prefix_refs.insert(r.name.as_str()) {
                    errs.push(FieldError::duplicate(
                        &pp.child("prefixRef"),
                        serde_json::to_value(r).unwrap_or_default(),
                    ));
                }
                if r.name.is_empty() {
                    errs.push(FieldError::required(&pp.child("prefixRef").child("name"), ""));
                } else {
                    errs.extend(validation::subdomain(
                        &pp.child("prefixRef").child("name"),
                        &r.name,
                    ));
                }
            }
        }
    }
    let mut claims = HashSet::new();
    for (i, claim) in spec.incoming_peerings.iter().enumerate() {
        let p = path.child("incomingPeerings").index(i);
        let claim_ns = if claim.namespace.is_empty() {
            namespace
        } else {
            claim.namespace.as_str()
        };
        let key = (claim_ns, claim.name.as_str());
        if own_name.is_some_and(|n| (namespace, n) == key) {
            errs.push(FieldError::forbidden(&p, "cannot claim itself"));
        } else if !claims.insert(key) {
            errs.push(FieldError::duplicate(
                &p,
                serde_json::to_value(claim).unwrap_or_default(),
            ));
        }
        if claim.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), "must specify name"));
        } else {
            errs.extend(validation::subdomain(&p.child("name"), &claim.name));
        }
        // Namespaces are DNS labels (upstream checked claim namespaces as subdomains, peer namespaces as labels).
        if !claim.namespace.is_empty() {
            validation::push_name_errors(
                &mut errs,
                &p.child("namespace"),
                &claim.namespace,
                names::dns1123_label(&claim.namespace),
            );
        }
    }
    errs
}

impl ApiKind for Network {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    // Upstream's spec is optional (`json:"spec,omitempty"`): a Network without one is an empty one.
    const OPTIONAL_SPEC: bool = true;

    fn definition()
    -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
        crate::kind::without_required_spec(<Self as kube_core::CustomResourceExt>::crd())
    }

    /// Validates a new Network: metadata (DNS subdomain name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        let ns = self.metadata.namespace.as_deref().unwrap_or("");
        let name = self.metadata.name.as_deref().filter(|n| !n.is_empty());
        errs.extend(validate_spec(&self.spec, ns, name, &Path::new("spec")));
        errs
    }
    /// Validates an update: `spec.providerID` can go from empty to a value once, then it is immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        if !old.spec.provider_id.is_empty() {
            errs.extend(validation::immutable(
                &self.spec.provider_id,
                &old.spec.provider_id,
                &Path::new("spec").child("providerID"),
            ));
        }
        let ns = self.metadata.namespace.as_deref().unwrap_or("");
        let name = self.metadata.name.as_deref().filter(|n| !n.is_empty());
        errs.extend(validate_spec(&self.spec, ns, name, &Path::new("spec")));
        errs
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kind::KindDescriptor;

    /// Upstream's `spec` is optional (`json:"spec,omitempty"`): a Network without one is valid and
    /// is stored with an empty spec, as upstream returns it.
    #[test]
    fn spec_is_optional() {
        let d = KindDescriptor::of::<Network>();
        let schema = d.crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap();
        assert!(
            !schema
                .required
                .as_ref()
                .is_some_and(|r| r.iter().any(|f| f == "spec")),
            "{:?}",
            schema.required
        );
        let mut obj = json!({
            "apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "Network",
            "metadata": {"name": "bare", "namespace": "default"}
        });
        assert_eq!((d.validate_create)(&obj), ErrorList::new());
        (d.default)(&mut obj).unwrap();
        assert_eq!(obj["spec"], json!({}));
        assert_eq!((d.validate_create)(&obj), ErrorList::new());
    }
}
