//! `LoadBalancer` (`networking.metalnet.ironcore.dev`): a load balancer VIP served on one node.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP, IPFamily, LocalObjectReference};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

use super::ObjectState;

/// Protocol names a metalnet load balancer port may use (dpservice `Protocol` enum names).
pub const LB_PROTOCOLS: &[&str] = &["TCP", "UDP"];

/// The type of a metalnet LoadBalancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum LoadBalancerType {
    /// Network-internal VIP.
    Internal,
    /// Public VIP.
    Public,
}

/// A port forwarded by a metalnet LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LBPort {
    /// Protocol name (`TCP` or `UDP`). Required.
    #[serde(default)]
    pub protocol: String,
    /// The port, 0..65535.
    #[serde(default)]
    pub port: i32,
}

/// The desired state of a metalnet LoadBalancer.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.metalnet.ironcore.dev",
    version = "v1alpha1",
    kind = "LoadBalancer",
    plural = "loadbalancers",
    namespaced,
    status = "LoadBalancerStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"NodeName","type":"string","jsonPath":".spec.nodeName"}"#,
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".spec.ip"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.nodeName",
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// The Network (same namespace). Required.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Type. Required.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<LoadBalancerType>,
    /// IP family of the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The VIP. Required.
    #[serde(default)]
    pub ip: Option<IP>,
    /// Ports forwarded; at least one.
    #[serde(default)]
    pub ports: Vec<LBPort>,
    /// The node serving the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

/// The observed state of a metalnet LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadBalancerStatus {
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ObjectState>,
}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &LoadBalancerSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if spec.network_ref.name.is_empty() {
        errs.push(FieldError::required(&path.child("networkRef").child("name"), ""));
    } else {
        errs.extend(validation::subdomain(
            &path.child("networkRef").child("name"),
            &spec.network_ref.name,
        ));
    }
    errs.extend(validation::required_enum(&spec.type_, &path.child("type"), ""));
    match (&spec.ip, spec.ip_family) {
        (None, _) => errs.push(FieldError::required(&path.child("ip"), "")),
        (Some(ip), Some(f)) if ip.family() != f => errs.push(FieldError::invalid(
            &path.child("ip"),
            ip.to_string(),
            format!("expected ip family {f} but got {}", ip.family()),
        )),
        _ => {}
    }
    if spec.ports.is_empty() {
        errs.push(FieldError::required(
            &path.child("ports"),
            "must have at least 1 item",
        ));
    }
    for (i, port) in spec.ports.iter().enumerate() {
        let p = path.child("ports").index(i);
        if port.protocol.is_empty() {
            errs.push(FieldError::required(&p.child("protocol"), ""));
        } else if !LB_PROTOCOLS.contains(&port.protocol.as_str()) {
            errs.push(FieldError::not_supported(
                &p.child("protocol"),
                port.protocol.as_str(),
                LB_PROTOCOLS,
            ));
        }
        if !(0..=65535).contains(&port.port) {
            errs.push(FieldError::invalid(
                &p.child("port"),
                port.port,
                "must be between 0 and 65535, inclusive",
            ));
        }
    }
    errs
}

impl ApiKind for LoadBalancer {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    /// Validates a new LoadBalancer: metadata (DNS subdomain name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: metadata and the new spec.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
}
