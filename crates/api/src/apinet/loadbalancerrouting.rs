//! `LoadBalancerRouting` (`core.apinet.ironcore.dev`): the targets of a LoadBalancer (same name, top-level
//! fields).

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::IP as Address;
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

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
    crates(kube_core = "::kube_core"),
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

impl ApiKind for LoadBalancerRouting {
    const NAME_RULE: NameRule = NameRule::Label;
    const NO_SPEC: bool = true;
    /// Validates a new LoadBalancerRouting: metadata (DNS label name) and destinations.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_fields(&self.spec));
        errs
    }
    /// Validates an update: metadata and destinations.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validate_fields(&self.spec));
        errs
    }
}
