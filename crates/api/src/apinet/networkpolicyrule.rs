//! `NetworkPolicyRule` (`core.apinet.ironcore.dev`): a NetworkPolicy resolved to IPs (same name as the policy,
//! top-level fields; written by apinetlet, read by metalnetlet).

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP as Address, IPFamily, IPPrefix, LocalUIDReference};
use crate::kind::ApiKind;
use crate::networking::networkpolicy::{IPBlock, NetworkPolicyPort, validate_ip_block, validate_port};
use crate::validation::NameRule;

/// A NetworkInterface the policy applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetNetworkInterface {
    /// Its IP.
    #[serde(default)]
    pub ip: Option<Address>,
    /// The NetworkInterface (name and UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalUIDReference>,
}

/// A resolved peer prefix with its family.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectIP {
    /// IP family of the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The prefix.
    #[serde(default)]
    pub prefix: Option<IPPrefix>,
}

/// One resolved rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// IP blocks of the rule.
    #[serde(default, rename = "ipBlock", skip_serializing_if = "Vec::is_empty")]
    pub ip_block: Vec<IPBlock>,
    /// Resolved object IPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<ObjectIP>,
    /// Ports of the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_policy_ports: Vec<NetworkPolicyPort>,
}

/// The top-level fields of a NetworkPolicyRule.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "NetworkPolicyRule",
    plural = "networkpolicyrules",
    namespaced,
    no_spec,
    derive = "PartialEq",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyRuleFields {
    /// The Network (name and UID).
    #[serde(default)]
    pub network_ref: LocalUIDReference,
    /// The NetworkInterfaces the rules apply to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetNetworkInterface>,
    /// Priority of the rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Ingress rules (singular JSON name, as upstream).
    #[serde(default, rename = "ingressRule", skip_serializing_if = "Vec::is_empty")]
    pub ingress_rules: Vec<Rule>,
    /// Egress rules (singular JSON name, as upstream).
    #[serde(default, rename = "egressRule", skip_serializing_if = "Vec::is_empty")]
    pub egress_rules: Vec<Rule>,
}

fn validate_rule(rule: &Rule, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, b) in rule.ip_block.iter().enumerate() {
        errs.extend(validate_ip_block(b, &path.child("ipBlock").index(i)));
    }
    for (i, ip) in rule.ips.iter().enumerate() {
        let p = path.child("ips").index(i);
        match (&ip.prefix, ip.ip_family) {
            (None, _) => errs.push(FieldError::required(&p.child("prefix"), "")),
            (Some(prefix), Some(f)) if prefix.family() != f => errs.push(FieldError::invalid(
                &p.child("prefix"),
                prefix.to_string(),
                format!("expected ip family {f} but got {}", prefix.family()),
            )),
            _ => {}
        }
    }
    for (i, port) in rule.network_policy_ports.iter().enumerate() {
        errs.extend(validate_port(port, &path.child("networkPolicyPorts").index(i)));
    }
    errs
}

fn validate_fields(f: &NetworkPolicyRuleFields) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, t) in f.targets.iter().enumerate() {
        if t.ip.is_none() {
            errs.push(FieldError::required(
                &Path::new("targets").index(i).child("ip"),
                "",
            ));
        }
    }
    if let Some(p) = f.priority
        && p < 0
    {
        errs.push(FieldError::invalid(
            &Path::new("priority"),
            p,
            "must be greater than or equal to 0",
        ));
    }
    for (i, r) in f.ingress_rules.iter().enumerate() {
        errs.extend(validate_rule(r, &Path::new("ingressRule").index(i)));
    }
    for (i, r) in f.egress_rules.iter().enumerate() {
        errs.extend(validate_rule(r, &Path::new("egressRule").index(i)));
    }
    errs
}

impl ApiKind for NetworkPolicyRule {
    const NAME_RULE: NameRule = NameRule::Label;
    const NO_SPEC: bool = true;
    /// Validates a new NetworkPolicyRule: metadata (DNS label name) and the rules.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_fields(&self.spec));
        errs
    }
    /// Validates an update: metadata and the rules.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validate_fields(&self.spec));
        errs
    }
}
