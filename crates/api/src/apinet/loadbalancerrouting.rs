//! `LoadBalancerRouting` (`core.apinet.ironcore.dev`): the targets of a LoadBalancer (same name, top-level
//! fields).

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::IP as Address;
use crate::kind::ApiKind;
use crate::validation::{self, NameRule, meta};

use super::TargetReference;

/// One destination of a LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerDestination {
    /// The destination IP. Required.
    #[serde(default)]
    pub ip: Option<Address>,
    /// The NetworkInterface behind the IP, with its Node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetReference>,
}

/// The top-level fields of an apinet LoadBalancerRouting.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "LoadBalancerRouting",
    plural = "loadbalancerroutings",
    namespaced,
    no_spec,
    derive = "PartialEq",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct LoadBalancerRoutingFields {
    /// The destinations.
    #[serde(default)]
    pub destinations: Vec<LoadBalancerDestination>,
}

fn validate_fields(fields: &LoadBalancerRoutingFields) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, d) in fields.destinations.iter().enumerate() {
        let p = Path::new("destinations").index(i);
        if d.ip.is_none() {
            errs.push(FieldError::required(&p.child("ip"), ""));
        }
        if let Some(t) = &d.target_ref {
            errs.extend(validation::subdomain(
                &p.child("targetRef").child("name"),
                &t.name,
            ));
            if !t.node_ref.name.is_empty() {
                errs.extend(validation::subdomain(
                    &p.child("targetRef").child("nodeRef").child("name"),
                    &t.node_ref.name,
                ));
            }
        }
    }
    errs
}

/// Validates a new LoadBalancerRouting: metadata (DNS label name) and destinations.
pub fn validate_create(lbr: &LoadBalancerRouting) -> ErrorList {
    let mut errs = meta::validate_object_meta(&lbr.metadata, true, NameRule::Label);
    errs.extend(validate_fields(&lbr.spec));
    errs
}

/// Validates an update: metadata and destinations.
pub fn validate_update(new: &LoadBalancerRouting, old: &LoadBalancerRouting) -> ErrorList {
    let mut errs = meta::validate_object_meta_update(&new.metadata, &old.metadata, true, NameRule::Label);
    errs.extend(validate_fields(&new.spec));
    errs
}

impl ApiKind for LoadBalancerRouting {
    const NO_SPEC: bool = true;
    fn validate_create(&self) -> ErrorList {
        validate_create(self)
    }
    fn validate_update(&self, old: &Self) -> ErrorList {
        validate_update(self, old)
    }
}
