//! `IP` (`core.apinet.ironcore.dev`): a public IP, allocated from the public prefixes by the API server and
//! claimed by a LoadBalancer, NATGateway or NetworkInterface.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP as Address, IPFamily};
use crate::kind::ApiKind;
use crate::validation::{self, FIELD_IS_IMMUTABLE, NameRule};

/// The spec field the IP allocator fills when empty (JSON path).
pub const ALLOCATED_IP_FIELD: &str = "spec.ip";

/// The type of an IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum IPType {
    /// A public IP.
    Public,
}

/// The object claiming an IP (always in the IP's namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct IPClaimRef {
    /// API group of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Resource of the claimer, e.g. `loadbalancers`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Name of the claimer.
    #[serde(default)]
    pub name: String,
    /// UID of the claimer.
    #[serde(default)]
    pub uid: String,
}

/// The desired state of an IP.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "IP",
    plural = "ips",
    namespaced,
    derive = "PartialEq",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".spec.ip"}"#,
    printcolumn = r#"{"name":"ClaimRef","type":"string","jsonPath":".spec.claimRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.ip"
)]
#[serde(rename_all = "camelCase")]
pub struct IPSpec {
    /// Type of the IP; only `Public`. Immutable.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<IPType>,
    /// IP family; defaulted from `ip`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The address; allocated by the API server when empty. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Address>,
    /// The object using the IP; mutable (claim and release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_ref: Option<IPClaimRef>,
}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &IPSpec, path: &Path) -> ErrorList {
    let mut errs = validation::required_enum(&spec.type_, &path.child("type"), "must specify type");
    errs.extend(validation::required_enum(
        &spec.ip_family,
        &path.child("ipFamily"),
        "must specify ip family",
    ));
    if let (Some(addr), Some(f)) = (&spec.ip, spec.ip_family)
        && addr.family() != f
    {
        errs.push(FieldError::invalid(
            &path.child("ip"),
            addr.to_string(),
            format!("expected ip family {f} but got {}", addr.family()),
        ));
    }
    if let Some(claim) = &spec.claim_ref {
        errs.extend(validation::subdomain(
            &path.child("claimRef").child("name"),
            &claim.name,
        ));
    }
    errs
}

impl ApiKind for IP {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Applies the IP defaults: `ipFamily` from `ip`.
    fn apply_defaults(&mut self) {
        if self.spec.ip_family.is_none()
            && let Some(addr) = &self.spec.ip
        {
            self.spec.ip_family = Some(addr.family());
        }
    }
    /// Validates a new IP: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `type` and `ipFamily` immutable (Forbidden), `ip` immutable once set (Invalid).
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.type_,
            &old.spec.type_,
            &spec.child("type"),
        ));
        errs.extend(validation::immutable(
            &self.spec.ip_family,
            &old.spec.ip_family,
            &spec.child("ipFamily"),
        ));
        if old.spec.ip.is_some() && self.spec.ip != old.spec.ip {
            errs.push(FieldError::invalid(
                &spec.child("ip"),
                self.spec.ip.as_ref().map(ToString::to_string).unwrap_or_default(),
                FIELD_IS_IMMUTABLE,
            ));
        }
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
