//! `NetworkPolicy` (`core.apinet.ironcore.dev`): the apinet form of an ironcore NetworkPolicy (no status).

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::LocalObjectReference;
use crate::kind::ApiKind;
use crate::networking::networkpolicy::{
    NetworkPolicyEgressRule, NetworkPolicyIngressRule, PolicyType, validate_peer, validate_policy_types,
    validate_port,
};
use crate::validation::{self, NameRule, meta};

/// Object kinds an apinet NetworkPolicy peer may select.
pub const PEER_KINDS: &[&str] = &["LoadBalancer", "NetworkInterface"];

/// The desired state of an apinet NetworkPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "NetworkPolicy",
    plural = "networkpolicies",
    namespaced,
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
    /// Priority of the policy's rules (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<NetworkPolicyEgressRule>,
    /// Directions the policy applies to. Required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<PolicyType>,
}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &NetworkPolicySpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if spec.network_ref.name.is_empty() {
        errs.push(FieldError::required(
            &path.child("networkRef"),
            "must specify network ref",
        ));
    } else {
        errs.extend(validation::label(
            &path.child("networkRef").child("name"),
            &spec.network_ref.name,
        ));
    }
    errs.extend(meta::validate_label_selector(
        &spec.network_interface_selector,
        &path.child("networkInterfaceSelector"),
    ));
    if let Some(p) = spec.priority
        && p < 0
    {
        errs.push(FieldError::invalid(
            &path.child("priority"),
            p,
            "must be greater than or equal to 0",
        ));
    }
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
    const NAME_RULE: NameRule = NameRule::Label;
    /// Validates a new NetworkPolicy: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `networkRef` is immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.network_ref,
            &old.spec.network_ref,
            &spec.child("networkRef"),
        ));
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
