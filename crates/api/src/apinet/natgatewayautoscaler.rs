//! `NATGatewayAutoscaler` (`core.apinet.ironcore.dev`): grows and shrinks a NATGateway's public IPs.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::LocalObjectReference;
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

/// The desired state of a NATGatewayAutoscaler.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "NATGatewayAutoscaler",
    plural = "natgatewayautoscalers",
    namespaced,
    status = "NATGatewayAutoscalerStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"NATGateway","type":"string","jsonPath":".spec.natGatewayRef.name"}"#,
    printcolumn = r#"{"name":"PublicIPs","type":"string","description":"minPublicIPs/maxPublicIPs (unset counts as 0)","jsonPath":".spec.maxPublicIPs"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NATGatewayAutoscalerSpec {
    /// The NATGateway scaled. Immutable.
    #[serde(default, rename = "natGatewayRef")]
    pub nat_gateway_ref: LocalObjectReference,
    /// Minimum number of public IPs (at least 0; unset means 0).
    #[serde(default, rename = "minPublicIPs", skip_serializing_if = "Option::is_none")]
    pub min_public_ips: Option<i32>,
    /// Maximum number of public IPs (at least 0 and at least the minimum; unset means unbounded).
    #[serde(default, rename = "maxPublicIPs", skip_serializing_if = "Option::is_none")]
    pub max_public_ips: Option<i32>,
}

/// The (empty) observed state of a NATGatewayAutoscaler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NATGatewayAutoscalerStatus {}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &NATGatewayAutoscalerSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let r = path.child("natGatewayRef").child("name");
    if spec.nat_gateway_ref.name.is_empty() {
        errs.push(FieldError::required(&r, "must specify nat gateway ref"));
    } else {
        errs.extend(validation::label(&r, &spec.nat_gateway_ref.name));
    }
    for (field, value) in [
        ("minPublicIPs", spec.min_public_ips),
        ("maxPublicIPs", spec.max_public_ips),
    ] {
        if let Some(v) = value
            && v < 0
        {
            errs.push(FieldError::invalid(
                &path.child(field),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    if let (Some(min), Some(max)) = (spec.min_public_ips, spec.max_public_ips)
        && min > max
    {
        errs.push(FieldError::invalid(
            &path.child("maxPublicIPs"),
            max,
            "must >= minPublicIPs",
        ));
    }
    errs
}

impl ApiKind for NATGatewayAutoscaler {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Validates a new NATGatewayAutoscaler: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `natGatewayRef` is immutable (upstream checked this only on `/status`).
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.nat_gateway_ref,
            &old.spec.nat_gateway_ref,
            &spec.child("natGatewayRef"),
        ));
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
