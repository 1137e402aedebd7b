//! `IPAddress` (cluster-scoped): the claim on one public address, named by the canonical address.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::IP as Address;
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

use super::networkid::ClaimRef;

/// The claim on an address.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "IPAddress",
    plural = "ipaddresses",
    derive = "PartialEq",
    printcolumn = r#"{"name":"ClaimRef","type":"string","jsonPath":".spec.claimRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressSpec {
    /// The address; equals the object's name. Immutable.
    #[serde(default)]
    pub ip: Option<Address>,
    /// The IP object holding the address. Immutable.
    #[serde(default)]
    pub claim_ref: ClaimRef,
}

fn canonical_ip_name(name: &str) -> Vec<String> {
    match name.parse::<Address>() {
        Ok(ip) if ip.to_string() == name => Vec::new(),
        Ok(ip) => vec![format!("must be in canonical form ({ip})")],
        Err(e) => vec![format!("must be a valid IP address: {e}")],
    }
}

/// The name rule of IPAddress: a canonical IP address.
pub const NAME_RULE: NameRule = NameRule::Custom(canonical_ip_name);

fn validate_spec(addr: &IPAddress) -> ErrorList {
    let path = Path::new("spec").child("ip");
    let mut errs = ErrorList::new();
    match &addr.spec.ip {
        None => errs.push(FieldError::required(&path, "")),
        Some(ip) => {
            if addr.metadata.name.as_deref().is_some_and(|n| n != ip.to_string()) {
                errs.push(FieldError::invalid(
                    &path,
                    ip.to_string(),
                    "must equal the object name",
                ));
            }
        }
    }
    errs
}

impl ApiKind for IPAddress {
    const NAME_RULE: NameRule = NAME_RULE;
    const NAMESPACED: bool = false;
    /// Validates a new IPAddress: the name is a canonical IP and `spec.ip` equals it.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(self));
        errs
    }
    /// Validates an update: `spec.ip` and `spec.claimRef` are immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.ip,
            &old.spec.ip,
            &spec.child("ip"),
        ));
        errs.extend(validation::immutable(
            &self.spec.claim_ref,
            &old.spec.claim_ref,
            &spec.child("claimRef"),
        ));
        errs.extend(validate_spec(self));
        errs
    }
}
