//! `NetworkPolicy` (`networking.ironcore.dev/v1alpha1`): allowed traffic to and from selected NetworkInterfaces.

use std::collections::BTreeSet;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IPPrefix, LocalObjectReference, ObjectSelector, Protocol};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule, meta};

/// Object kinds a NetworkPolicy peer may select.
pub const PEER_KINDS: &[&str] = &["LoadBalancer", "NetworkInterface", "VirtualIP"];

/// A direction a policy applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum PolicyType {
    /// Incoming traffic.
    Ingress,
    /// Outgoing traffic.
    Egress,
}

/// A port or port range; port 0 (unset) means all ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPort {
    /// Protocol (`TCP`, `UDP`, `SCTP`); unset means TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The (first) port, 1..65535; 0 or unset means all ports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: i32,
    /// The last port of the range, inclusive; requires `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// An IP range, optionally with holes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IPBlock {
    /// The range. Required.
    #[serde(default)]
    pub cidr: Option<IPPrefix>,
    /// Sub-ranges of `cidr` excluded from the block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IPPrefix>,
}

/// A peer: either objects selected by kind and labels, or an IP block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    /// Objects of a kind (NetworkInterface, LoadBalancer, VirtualIP) selected by labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<ObjectSelector>,
    /// An IP block.
    #[serde(default, rename = "ipBlock", skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IPBlock>,
}

/// An ingress rule: traffic from any of `from` on any of `ports`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPolicyIngressRule {
    /// The ports allowed; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
    /// The sources allowed; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
}

/// An egress rule: traffic to any of `to` on any of `ports`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPolicyEgressRule {
    /// The ports allowed; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
    /// The destinations allowed; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<NetworkPolicyPeer>,
}

/// The desired state of a NetworkPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.ironcore.dev",
    version = "v1alpha1",
    kind = "NetworkPolicy",
    plural = "networkpolicies",
    namespaced,
    status = "NetworkPolicyStatus",
    shortname = "netpol",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.networkRef.name"}"#,
    printcolumn = r#"{"name":"Nic-Selector","type":"string","jsonPath":".spec.networkInterfaceSelector"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// The Network regulated. Required, immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Selects the NetworkInterfaces the policy applies to.
    #[serde(default)]
    pub network_interface_selector: LabelSelector,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<NetworkPolicyEgressRule>,
    /// Directions the policy applies to; defaulted from the rules given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<PolicyType>,
}

/// The observed state of a NetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPolicyStatus {
    /// Conditions of the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn policy_type_str(t: PolicyType) -> &'static str {
    match t {
        PolicyType::Ingress => "Ingress",
        PolicyType::Egress => "Egress",
    }
}

/// Validates a policy port at `path`. Shared with `core.apinet.ironcore.dev`.
pub fn validate_port(port: &NetworkPolicyPort, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if port.port != 0 && !(1..=65535).contains(&port.port) {
        errs.push(FieldError::invalid(
            &path.child("port"),
            port.port,
            "must be between 1 and 65535, inclusive",
        ));
    }
    if let Some(end) = port.end_port {
        if port.port == 0 {
            errs.push(FieldError::forbidden(
                &path.child("endPort"),
                "cannot specify endPort without port",
            ));
        } else if end < port.port {
            errs.push(FieldError::forbidden(
                &path.child("endPort"),
                "endPort must be greater than or equal to port",
            ));
        } else if end > 65535 {
            errs.push(FieldError::invalid(
                &path.child("endPort"),
                end,
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    errs
}

/// Validates an IP block at `path`: `cidr` required, every `except` inside it.
pub fn validate_ip_block(block: &IPBlock, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(cidr) = &block.cidr else {
        errs.push(FieldError::invalid(
            &path.child("cidr"),
            serde_json::Value::Null,
            "must specify cidr",
        ));
        return errs;
    };
    for (k, except) in block.except.iter().enumerate() {
        if !cidr.contains_prefix(except) {
            errs.push(FieldError::forbidden(
                &path.child("except").index(k),
                format!("cidr {cidr} does not contain except {except}"),
            ));
        }
    }
    errs
}

/// Validates a peer at `path` against the allowed object-selector kinds.
pub fn validate_peer(peer: &NetworkPolicyPeer, kinds: &[&str], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(sel) = &peer.object_selector {
        let p = path.child("objectSelector");
        if sel.kind.is_empty() {
            errs.push(FieldError::required(&p.child("kind"), "must specify kind"));
        } else if !kinds.contains(&sel.kind.as_str()) {
            errs.push(FieldError::not_supported(
                &p.child("kind"),
                sel.kind.as_str(),
                kinds,
            ));
        }
        errs.extend(meta::validate_label_selector(&sel.selector, &p));
    }
    if peer.object_selector.is_some() && peer.ip_block.is_some() {
        errs.push(FieldError::forbidden(
            &path.child("ipBlock"),
            "cannot specify multiple peers",
        ));
    }
    if let Some(block) = &peer.ip_block {
        errs.extend(validate_ip_block(block, &path.child("ipBlock")));
    }
    errs
}

/// Validates policy types at `path`: required, no duplicates.
pub fn validate_policy_types(types: &[PolicyType], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if types.is_empty() {
        errs.push(FieldError::required(path, "must specify policy types"));
    }
    for (i, t) in types.iter().enumerate() {
        if types[..i].contains(t) {
            errs.push(FieldError::duplicate(&path.index(i), policy_type_str(*t)));
        }
    }
    errs
}

/// Validates a NetworkPolicy spec at `path`.
pub fn validate_spec(spec: &NetworkPolicySpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let net = path.child("networkRef");
    if spec.network_ref.name.is_empty() {
        errs.push(FieldError::required(&net, "must specify network ref"));
    } else {
        errs.extend(validation::subdomain(&net.child("name"), &spec.network_ref.name));
    }
    errs.extend(meta::validate_label_selector(
        &spec.network_interface_selector,
        &path.child("networkInterfaceSelector"),
    ));
    for (i, rule) in spec.ingress.iter().enumerate() {
        let p = path.child("ingress").index(i);
        for (j, peer) in rule.from.iter().enumerate() {
            errs.extend(validate_peer(peer, PEER_KINDS, &p.child("from").index(j)));
        }
        for (j, port) in rule.ports.iter().enumerate() {
            errs.extend(validate_port(port, &p.child("ports").index(j)));
        }
    }
    for (i, rule) in spec.egress.iter().enumerate() {
        let p = path.child("egress").index(i);
        for (j, peer) in rule.to.iter().enumerate() {
            errs.extend(validate_peer(peer, PEER_KINDS, &p.child("to").index(j)));
        }
        for (j, port) in rule.ports.iter().enumerate() {
            errs.extend(validate_port(port, &p.child("ports").index(j)));
        }
    }
    errs.extend(validate_policy_types(
        &spec.policy_types,
        &path.child("policyTypes"),
    ));
    errs
}

impl ApiKind for NetworkPolicy {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    /// Applies the NetworkPolicy defaults: `policyTypes` = the given types plus Ingress/Egress when there are
    /// ingress/egress rules, sorted (`["Egress","Ingress"]`).
    fn apply_defaults(&mut self) {
        let mut types: BTreeSet<&str> = self
            .spec
            .policy_types
            .iter()
            .map(|t| policy_type_str(*t))
            .collect();
        if !self.spec.ingress.is_empty() {
            types.insert("Ingress");
        }
        if !self.spec.egress.is_empty() {
            types.insert("Egress");
        }
        let mut seen = Vec::new();
        for t in types {
            seen.push(if t == "Ingress" {
                PolicyType::Ingress
            } else {
                PolicyType::Egress
            });
        }
        self.spec.policy_types = seen;
    }
    /// Validates a new NetworkPolicy: metadata (DNS subdomain name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `networkRef` is immutable; the new object must be valid.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.network_ref,
            &old.spec.network_ref,
            &Path::new("spec").child("networkRef"),
        ));
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
}
