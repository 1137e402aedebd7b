//! `NATTable` (`core.apinet.ironcore.dev`): the port slices of a NATGateway's public IPs (same name as the
//! NATGateway, top-level fields; written by the NATGateway controller).

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::IP as Address;
use crate::kind::ApiKind;
use crate::validation::NameRule;

use super::TargetReference;

/// One port slice of a public IP, handed to one NetworkInterface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATTableIPTargetSection {
    /// The internal IP of the NetworkInterface.
    #[serde(default)]
    pub ip: Option<Address>,
    /// First port of the slice.
    #[serde(default)]
    pub port: i32,
    /// Last port of the slice, inclusive.
    #[serde(default)]
    pub end_port: i32,
    /// The NetworkInterface and its Node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetReference>,
}

/// The slices of one public IP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NATIP {
    /// The public IP.
    #[serde(default)]
    pub ip: Option<Address>,
    /// Its port slices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<NATTableIPTargetSection>,
}

/// The top-level fields of a NATTable.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "NATTable",
    plural = "nattables",
    namespaced,
    no_spec,
    derive = "PartialEq",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct NATTableFields {
    /// The public IPs with their slices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<NATIP>,
}

fn validate_fields(fields: &NATTableFields) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, nat_ip) in fields.ips.iter().enumerate() {
        let p = Path::new("ips").index(i);
        if nat_ip.ip.is_none() {
            errs.push(FieldError::required(&p.child("ip"), ""));
        }
        for (j, s) in nat_ip.sections.iter().enumerate() {
            let sp = p.child("sections").index(j);
            if s.ip.is_none() {
                errs.push(FieldError::required(&sp.child("ip"), ""));
            }
            if !(1..=65535).contains(&s.port) {
                errs.push(FieldError::invalid(
                    &sp.child("port"),
                    s.port,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            if !(s.port..=65535).contains(&s.end_port) {
                errs.push(FieldError::invalid(
                    &sp.child("endPort"),
                    s.end_port,
                    "must be between port and 65535, inclusive",
                ));
            }
        }
    }
    errs
}

impl ApiKind for NATTable {
    const NAME_RULE: NameRule = NameRule::Label;
    const NO_SPEC: bool = true;
    /// Validates a new NATTable: metadata (DNS label name) and the slices.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_fields(&self.spec));
        errs
    }
    /// Validates an update: metadata and the slices.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validate_fields(&self.spec));
        errs
    }
}
