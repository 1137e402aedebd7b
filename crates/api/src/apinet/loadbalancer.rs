//! `LoadBalancer` (`core.apinet.ironcore.dev`): a load balancer realised by Instances on every Node.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalObjectReference, Protocol};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule, meta};

use super::instance::InstanceTemplate;
use super::{ObjectIP, default_object_ip, validate_object_ips};

/// The spec fields the public-IP allocator fills for `Public` LoadBalancers (JSON path pattern).
pub const ALLOCATED_IPS_FIELD: &str = "spec.ips[*].ip";

/// The type of a LoadBalancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum LoadBalancerType {
    /// Public IPs, allocated by the API server.
    Public,
    /// Network-internal IPs, taken as given.
    Internal,
}

/// A port or port range forwarded by a LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerPort {
    /// Protocol; unset means TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The (first) port, 1..65535.
    #[serde(default)]
    pub port: i32,
    /// The last port of the range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

/// Validates ports at `path` (every entry, no overlap within a protocol); the same rules as
/// `networking.ironcore.dev` LoadBalancer ports.
pub fn validate_ports(ports: &[LoadBalancerPort], path: &Path) -> ErrorList {
    let as_networking: Vec<crate::networking::loadbalancer::LoadBalancerPort> = ports
        .iter()
        .map(|p| crate::networking::loadbalancer::LoadBalancerPort {
            protocol: p.protocol,
            port: p.port,
            end_port: p.end_port,
        })
        .collect();
    crate::networking::loadbalancer::validate_ports(&as_networking, path)
}

/// The desired state of an apinet LoadBalancer.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "LoadBalancer",
    plural = "loadbalancers",
    namespaced,
    status = "LoadBalancerStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.networkRef.name"}"#,
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".spec.ips[*].ip"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// Type of the LoadBalancer. Immutable.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<LoadBalancerType>,
    /// The Network. Immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The IPs: allocated (Public, when `ip` is empty) or given (Internal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<ObjectIP>,
    /// The ports forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<LoadBalancerPort>,
    /// Selects the Instances of the LoadBalancer; must match the template labels. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The template of the Instances.
    #[serde(default)]
    pub template: InstanceTemplate,
}

/// The observed state of an apinet LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    /// Reserved for naming collisions (unused upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

/// Validates that `selector` is set, valid, and matches the template labels. Shared with DaemonSet.
pub(crate) fn validate_selector_matches_template(
    selector: Option<&LabelSelector>,
    template: &InstanceTemplate,
    selector_path: &Path,
    template_path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    match selector {
        None => errs.push(FieldError::required(selector_path, "")),
        Some(sel) => {
            errs.extend(meta::validate_label_selector(sel, selector_path));
            let labels = template.metadata.labels.clone().unwrap_or_default();
            if !meta::selector_matches(sel, &labels) {
                errs.push(FieldError::invalid(
                    &template_path.child("metadata").child("labels"),
                    serde_json::to_value(&labels).unwrap_or_default(),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    errs.extend(meta::validate_labels(
        template.metadata.labels.as_ref(),
        &template_path.child("metadata").child("labels"),
    ));
    errs
}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &LoadBalancerSpec, path: &Path) -> ErrorList {
    let mut errs = validation::required_enum(&spec.type_, &path.child("type"), "must specify type");
    if !spec.network_ref.name.is_empty() {
        errs.extend(validation::label(
            &path.child("networkRef").child("name"),
            &spec.network_ref.name,
        ));
    }
    errs.extend(validate_object_ips(&spec.ips, false, &path.child("ips")));
    errs.extend(validate_ports(&spec.ports, &path.child("ports")));
    errs.extend(validate_selector_matches_template(
        spec.selector.as_ref(),
        &spec.template,
        &path.child("selector"),
        &path.child("template"),
    ));
    errs
}

impl ApiKind for LoadBalancer {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Applies the defaults: each IP's family from its address.
    fn apply_defaults(&mut self) {
        self.spec.ips.iter_mut().for_each(default_object_ip);
    }
    /// Validates a new LoadBalancer: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `type`, `networkRef` and `selector` are immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.type_,
            &old.spec.type_,
            &spec.child("type"),
        ));
        errs.extend(validation::immutable(
            &self.spec.network_ref,
            &old.spec.network_ref,
            &spec.child("networkRef"),
        ));
        errs.extend(validation::immutable(
            &self.spec.selector,
            &old.spec.selector,
            &spec.child("selector"),
        ));
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
