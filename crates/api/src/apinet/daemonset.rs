//! `DaemonSet` (`core.apinet.ironcore.dev`): one Instance per Node from a template (used for LoadBalancers).

use ironnet_apimachinery::field::{ErrorList, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::ApiKind;
use crate::validation::{self, NameRule, meta};

use super::instance::{InstanceTemplate, validate_spec as validate_instance_spec};
use super::loadbalancer::validate_selector_matches_template;

/// The desired state of a DaemonSet.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
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

/// Validates a new DaemonSet: metadata (DNS label name) and spec.
pub fn validate_create(ds: &DaemonSet) -> ErrorList {
    let mut errs = meta::validate_object_meta(&ds.metadata, true, NameRule::Label);
    errs.extend(validate_spec(&ds.spec, &Path::new("spec")));
    errs
}

/// Validates an update: metadata and the new spec.
pub fn validate_update(new: &DaemonSet, old: &DaemonSet) -> ErrorList {
    let mut errs = meta::validate_object_meta_update(&new.metadata, &old.metadata, true, NameRule::Label);
    errs.extend(validate_spec(&new.spec, &Path::new("spec")));
    errs
}

/// Validates a `/status` update: metadata, and the spec unchanged.
pub fn validate_status_update(new: &DaemonSet, old: &DaemonSet) -> ErrorList {
    let mut errs = meta::validate_object_meta_update(&new.metadata, &old.metadata, true, NameRule::Label);
    errs.extend(validation::spec_unchanged_on_status(&new.spec, &old.spec));
    errs
}

impl ApiKind for DaemonSet {
    fn validate_create(&self) -> ErrorList {
        validate_create(self)
    }
    fn validate_update(&self, old: &Self) -> ErrorList {
        validate_update(self, old)
    }
    fn validate_status_update(&self, old: &Self) -> ErrorList {
        validate_status_update(self, old)
    }
}
