//! The `ipam.ironcore.dev` Prefix template embedded in ephemeral IP and prefix sources, and its validation.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IPFamily, IPPrefix, LocalObjectReference};
use crate::validation::{self, meta};

/// The spec of an `ipam.ironcore.dev` Prefix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrefixSpec {
    /// IP family of the prefix; inferred from `prefix` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The prefix to allocate; for a child prefix, alternatively give `prefixLength`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<IPPrefix>,
    /// The length of the prefix to allocate from the parent (0 = unset).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefix_length: i32,
    /// The parent prefix to allocate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<LocalObjectReference>,
    /// Selects the parent prefix to allocate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_selector: Option<LabelSelector>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

impl PrefixSpec {
    /// Whether this is a root prefix (no parentRef and no parentSelector).
    pub fn is_root(&self) -> bool {
        self.parent_ref.is_none() && self.parent_selector.is_none()
    }

    /// The ipam Prefix default: infer `ipFamily` from a valid `prefix` when the family is empty and no length is set.
    pub fn apply_defaults(&mut self) {
        if self.ip_family.is_none()
            && self.prefix_length == 0
            && let Some(prefix) = &self.prefix
        {
            self.ip_family = Some(prefix.family());
        }
    }
}

/// A Prefix to create: metadata (labels and annotations only) and spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrefixTemplateSpec {
    /// Labels and annotations of the created Prefix; other metadata fields are forbidden.
    #[serde(default, skip_serializing_if = "is_empty_meta")]
    pub metadata: ObjectMeta,
    /// The spec of the created Prefix.
    #[serde(default)]
    pub spec: PrefixSpec,
}

pub(crate) fn is_empty_meta(meta: &ObjectMeta) -> bool {
    meta == &ObjectMeta::default()
}

/// Validates an ipam PrefixSpec at `path` (ironcore's `ValidatePrefixSpec`).
pub fn validate_prefix_spec(spec: &PrefixSpec, path: &Path) -> ErrorList {
    let mut errs =
        validation::required_enum(&spec.ip_family, &path.child("ipFamily"), "must specify ip family");
    if let (Some(prefix), Some(family)) = (&spec.prefix, spec.ip_family)
        && prefix.family() != family
    {
        errs.push(FieldError::invalid(
            &path.child("prefix"),
            prefix.to_string(),
            format!("expected ip family {family} but got {}", prefix.family()),
        ));
    }
    if spec.prefix_length != 0 {
        let max = spec.ip_family.map_or(128, |f| i32::from(f.bits()));
        if !(1..=max).contains(&spec.prefix_length) {
            errs.push(FieldError::invalid(
                &path.child("prefixLength"),
                spec.prefix_length,
                format!("must be between 1 and {max}"),
            ));
        }
    }
    if spec.is_root() {
        if spec.prefix_length != 0 {
            errs.push(FieldError::invalid(
                &path.child("prefixLength"),
                spec.prefix_length,
                "cannot specify prefixLength for a root prefix",
            ));
        }
        if spec.prefix.is_none() {
            errs.push(FieldError::required(
                &path.child("prefix"),
                "must specify prefix for root prefix",
            ));
        }
    } else {
        match &spec.prefix {
            None if spec.prefix_length == 0 => errs.push(FieldError::invalid(
                path,
                serde_json::Value::Null,
                "must specify either prefix or prefixLength",
            )),
            Some(prefix) if spec.prefix_length != 0 && i32::from(prefix.len()) != spec.prefix_length => {
                errs.push(FieldError::invalid(
                    &path.child("prefixLength"),
                    spec.prefix_length,
                    format!("does not match prefix bits {}", prefix.len()),
                ));
            }
            _ => {}
        }
        if let Some(parent) = &spec.parent_ref {
            let p = path.child("parentRef").child("name");
            if parent.name.is_empty() {
                errs.push(FieldError::required(&p, "must specify parent ref name"));
            } else {
                errs.extend(validation::subdomain(&p, &parent.name));
            }
        }
        if let Some(selector) = &spec.parent_selector {
            errs.extend(meta::validate_label_selector(
                selector,
                &path.child("parentSelector"),
            ));
        }
    }
    errs
}

/// Validates the metadata of an ephemeral object template: only labels and annotations may be set
/// (Forbidden "cannot be set for an ephemeral <what>"), and both are validated.
pub fn validate_template_metadata(metadata: &ObjectMeta, path: &Path, what: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let detail = format!("cannot be set for an ephemeral {what}");
    let set: [(&str, bool); 12] = [
        ("name", metadata.name.is_some()),
        ("generateName", metadata.generate_name.is_some()),
        ("namespace", metadata.namespace.is_some()),
        ("selfLink", metadata.self_link.is_some()),
        ("uid", metadata.uid.is_some()),
        ("resourceVersion", metadata.resource_version.is_some()),
        ("generation", metadata.generation.is_some()),
        ("creationTimestamp", metadata.creation_timestamp.is_some()),
        ("deletionTimestamp", metadata.deletion_timestamp.is_some()),
        (
            "deletionGracePeriodSeconds",
            metadata.deletion_grace_period_seconds.is_some(),
        ),
        (
            "ownerReferences",
            metadata.owner_references.as_ref().is_some_and(|v| !v.is_empty()),
        ),
        (
            "finalizers",
            metadata.finalizers.as_ref().is_some_and(|v| !v.is_empty()),
        ),
    ];
    for (field, is_set) in set {
        if is_set {
            errs.push(FieldError::forbidden(&path.child(field), detail.clone()));
        }
    }
    if metadata.managed_fields.as_ref().is_some_and(|v| !v.is_empty()) {
        errs.push(FieldError::forbidden(
            &path.child("managedFields"),
            detail.clone(),
        ));
    }
    errs.extend(meta::validate_labels(
        metadata.labels.as_ref(),
        &path.child("labels"),
    ));
    errs.extend(meta::validate_annotations(
        metadata.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs
}
