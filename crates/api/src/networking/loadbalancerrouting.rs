//! `LoadBalancerRouting` (`networking.ironcore.dev/v1alpha1`): the NetworkInterfaces a LoadBalancer routes to.
//! Fields sit at the top level; the object has the LoadBalancer's name and is controlled by it.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP, LocalUIDReference};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

/// The NetworkInterface behind a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadBalancerTargetRef {
    /// UID of the NetworkInterface.
    #[serde(default)]
    pub uid: String,
    /// Name of the NetworkInterface.
    #[serde(default)]
    pub name: String,
    /// Provider ID of the NetworkInterface.
    #[serde(default, rename = "providerID")]
    pub provider_id: String,
}

/// One routing destination.
///
/// ironnet also accepts the documentation's legacy shape `{name, uid}` (the NetworkInterface, without IP):
/// defaulting turns it into `targetRef: {name, uid}`, and the API server fills in `ip` from that interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerDestination {
    /// The destination IP. Required, unless `targetRef` names the NetworkInterface to take it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IP>,
    /// The NetworkInterface the IP belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LoadBalancerTargetRef>,
    /// Deprecated: the legacy shape's NetworkInterface name; defaulting moves it into `targetRef`, it is
    /// never stored.
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// Deprecated: the legacy shape's NetworkInterface UID; defaulting moves it into `targetRef`, it is
    /// never stored.
    #[serde(default, skip_serializing)]
    pub uid: Option<String>,
}

impl LoadBalancerDestination {
    /// Converts the legacy `{name, uid}` shape: without a `targetRef`, they become `targetRef: {name, uid}`;
    /// next to one they are dropped (the `targetRef` wins). Idempotent.
    pub fn convert_legacy(&mut self) {
        let (name, uid) = (self.name.take(), self.uid.take());
        if self.target_ref.is_none() && (name.is_some() || uid.is_some()) {
            self.target_ref = Some(LoadBalancerTargetRef {
                name: name.unwrap_or_default(),
                uid: uid.unwrap_or_default(),
                provider_id: String::new(),
            });
        }
    }
}

/// The top-level fields of a LoadBalancerRouting.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.ironcore.dev",
    version = "v1alpha1",
    kind = "LoadBalancerRouting",
    plural = "loadbalancerroutings",
    namespaced,
    no_spec,
    shortname = "lbr",
    shortname = "lbrt",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".destinations[*].ip"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerRoutingFields {
    /// The Network of the routing (name and UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ref: Option<LocalUIDReference>,
    /// The destinations traffic is routed to.
    #[serde(default)]
    pub destinations: Vec<LoadBalancerDestination>,
}

fn validate_fields(fields: &LoadBalancerRoutingFields) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, d) in fields.destinations.iter().enumerate() {
        let p = Path::new("destinations").index(i);
        // Without an IP the destination must name its NetworkInterface: the API server resolves the IP
        // from it (upstream requires the IP; see docs/compatibility.md).
        if d.ip.is_none() && d.target_ref.is_none() {
            errs.push(FieldError::invalid(
                &p.child("ip"),
                serde_json::Value::Null,
                "must specify a valid ip",
            ));
        }
        if let Some(t) = &d.target_ref {
            errs.extend(validation::subdomain(
                &p.child("targetRef").child("name"),
                &t.name,
            ));
        }
    }
    errs
}

impl ApiKind for LoadBalancerRouting {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    const NO_SPEC: bool = true;
    fn apply_defaults(&mut self) {
        for d in &mut self.spec.destinations {
            d.convert_legacy();
        }
    }
    /// Validates a new LoadBalancerRouting: metadata (DNS subdomain name), every destination IP (or the target
    /// it is resolved from) and target name.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_fields(&self.spec));
        errs
    }
    /// Validates an update: metadata and the new object's fields.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validate_fields(&self.spec));
        errs
    }
}
