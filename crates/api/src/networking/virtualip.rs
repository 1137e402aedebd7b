//! `VirtualIP` (`networking.ironcore.dev/v1alpha1`): a public IP that can be bound to a NetworkInterface.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP, IPFamily, LocalUIDReference};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

/// The type of a VirtualIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum VirtualIPType {
    /// A stable public IP, routed from the internet.
    Public,
}

/// The desired state of a VirtualIP.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.ironcore.dev",
    version = "v1alpha1",
    kind = "VirtualIP",
    plural = "virtualips",
    namespaced,
    status = "VirtualIPStatus",
    shortname = "vip",
    derive = "PartialEq",
    printcolumn = r#"{"name":"ExternalIP","type":"string","description":"The allocated address","jsonPath":".status.ip"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.targetRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPSpec {
    /// Type of the VirtualIP; only `Public` is supported. Immutable.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<VirtualIPType>,
    /// IP family of the VirtualIP (`IPv4` or `IPv6`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The NetworkInterface the VirtualIP is bound to (name and UID); the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalUIDReference>,
}

/// The observed state of a VirtualIP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPStatus {
    /// The allocated address; written by the network plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IP>,
}

/// What happens to an ephemeral VirtualIP when its owner goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the VirtualIP (it loses its owner reference).
    Retain,
    /// Delete the VirtualIP with its owner (the behaviour when empty).
    Delete,
}

/// The spec of an ephemeral VirtualIP: the VirtualIP spec fields plus a reclaim policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralVirtualIPSpec {
    /// The VirtualIP spec, inlined.
    #[serde(flatten)]
    pub spec: VirtualIPSpec,
    /// What to do with the VirtualIP when its owner is deleted; empty means `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<ReclaimPolicy>,
}

/// A VirtualIP to create: metadata (labels and annotations only) and spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VirtualIPTemplateSpec {
    /// Labels and annotations of the created VirtualIP; other metadata fields are forbidden.
    #[serde(default, skip_serializing_if = "super::ipam::is_empty_meta")]
    pub metadata: ObjectMeta,
    /// The spec of the created VirtualIP.
    #[serde(default)]
    pub spec: EphemeralVirtualIPSpec,
}

/// Validates a VirtualIP spec at `path` (also used for ephemeral templates).
pub fn validate_spec(spec: &VirtualIPSpec, path: &Path) -> ErrorList {
    let mut errs = validation::required_enum(&spec.type_, &path.child("type"), "must specify type");
    errs.extend(validation::required_enum(
        &spec.ip_family,
        &path.child("ipFamily"),
        "must specify ip family",
    ));
    if let Some(target) = &spec.target_ref {
        errs.extend(validation::subdomain(
            &path.child("targetRef").child("name"),
            &target.name,
        ));
    }
    errs
}

impl ApiKind for VirtualIP {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Validates a new VirtualIP: metadata (name is a DNS label) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: everything but `spec.targetRef` is immutable (one Forbidden on `spec`).
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        let mut new_spec = self.spec.clone();
        new_spec.target_ref.clone_from(&old.spec.target_ref);
        errs.extend(validation::immutable_with_diff(
            &new_spec,
            &old.spec,
            &Path::new("spec"),
        ));
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Whether deleting this VirtualIP must be refused: it is still bound (`spec.targetRef` set).
    /// Upstream defines this rule but never enforces it; ironnet's API server calls it before a delete
    /// (and lets the delete through when the binding is stale: the target is gone, being deleted, or no longer
    /// refers to this VirtualIP).
    fn validate_delete(&self) -> ErrorList {
        match &self.spec.target_ref {
            Some(target) => FieldError::forbidden(
                &Path::new("spec").child("targetRef"),
                format!("virtual ip is still bound to {}", target.name),
            )
            .into(),
            None => ErrorList::new(),
        }
    }
}
