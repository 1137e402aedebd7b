//! `DaemonSet` (`core.apinet.ironcore.dev`): one Instance per Node from a template (used for LoadBalancers).

use ironnet_apimachinery::field::{ErrorList, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::ApiKind;
use crate::validation::NameRule;

use super::instance::{InstanceTemplate, validate_spec as validate_instance_spec};
use super::loadbalancer::validate_selector_matches_template;

/// The desired state of a DaemonSet.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "DaemonSet",
    plural = "daemonsets",
    namespaced,
    status = "DaemonSetStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct DaemonSetSpec {
    /// Selects the Instances of the DaemonSet (JSON name `nodeSelector`, as upstream); must match the template
    /// labels.
    #[serde(default, rename = "nodeSelector", skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The template of the Instances.
    #[serde(default)]
    pub template: InstanceTemplate,
}

/// The observed state of a DaemonSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    /// Reserved for naming collisions (unused upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

/// Validates a spec at `path`: selector set, valid and matching the template labels; the template spec valid.
pub fn validate_spec(spec: &DaemonSetSpec, path: &Path) -> ErrorList {
    let template = path.child("template");
    let mut errs = validate_selector_matches_template(
        spec.selector.as_ref(),
        &spec.template,
        &path.child("nodeSelector"),
        &template,
    );
    errs.extend(validate_instance_spec(
        &spec.template.spec,
        &template.child("spec"),
    ));
    errs
}

impl ApiKind for DaemonSet {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Validates a new DaemonSet: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: metadata and the new spec.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
}
