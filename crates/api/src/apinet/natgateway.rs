//! `NATGateway` (`core.apinet.ironcore.dev`): source NAT for the NetworkInterfaces of a Network.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP as Address, IPFamily, LocalObjectReference};
use crate::kind::ApiKind;
use crate::networking::natgateway::{
    DEFAULT_PORTS_PER_NETWORK_INTERFACE, validate_ports_per_network_interface,
};
use crate::validation::{self, NameRule};

/// The spec fields the public-IP allocator fills (JSON path pattern).
pub const ALLOCATED_IPS_FIELD: &str = "spec.ips[*].ip";

/// A public IP of a NATGateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NATGatewayIP {
    /// Name of the entry (merge key).
    #[serde(default)]
    pub name: String,
    /// The address; allocated when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Address>,
}

/// The desired state of an apinet NATGateway.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "NATGateway",
    plural = "natgateways",
    namespaced,
    status = "NATGatewayStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.networkRef.name"}"#,
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".spec.ips[*].ip"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct NATGatewaySpec {
    /// IP family. Required, immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The Network served. Immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The public IPs; allocated when `ip` is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<NATGatewayIP>,
    /// Ports per NetworkInterface: a power of two up to 32768, or 64512 (the whole range); 0 defaults to 2048.
    #[serde(default)]
    pub ports_per_network_interface: i32,
}

/// The observed state of an apinet NATGateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATGatewayStatus {
    /// Number of used port slots.
    #[serde(default, rename = "usedNATIPs", skip_serializing_if = "Option::is_none")]
    pub used_nat_ips: Option<i64>,
    /// Number of NetworkInterfaces requesting NAT.
    #[serde(default, rename = "requestedNATIPs", skip_serializing_if = "Option::is_none")]
    pub requested_nat_ips: Option<i64>,
}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &NATGatewaySpec, path: &Path) -> ErrorList {
    let mut errs =
        validation::required_enum(&spec.ip_family, &path.child("ipFamily"), "must specify ip family");
    if !spec.network_ref.name.is_empty() {
        errs.extend(validation::label(
            &path.child("networkRef").child("name"),
            &spec.network_ref.name,
        ));
    }
    for (i, ip) in spec.ips.iter().enumerate() {
        let p = path.child("ips").index(i);
        if spec.ips[..i].iter().any(|e| e.name == ip.name) {
            errs.push(FieldError::duplicate(&p.child("name"), ip.name.as_str()));
        }
        if let (Some(addr), Some(f)) = (&ip.ip, spec.ip_family)
            && addr.family() != f
        {
            errs.push(FieldError::invalid(
                &p.child("ip"),
                addr.to_string(),
                format!("expected ip family {f} but got {}", addr.family()),
            ));
        }
    }
    errs.extend(validate_ports_per_network_interface(
        spec.ports_per_network_interface,
        true,
        &path.child("portsPerNetworkInterface"),
    ));
    errs
}

impl ApiKind for NATGateway {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Applies the defaults: `portsPerNetworkInterface` 0 becomes 2048 (upstream left 0, which divides by zero).
    fn apply_defaults(&mut self) {
        if self.spec.ports_per_network_interface == 0 {
            self.spec.ports_per_network_interface = DEFAULT_PORTS_PER_NETWORK_INTERFACE;
        }
    }
    /// Validates a new NATGateway: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `ipFamily` and `networkRef` are immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.ip_family,
            &old.spec.ip_family,
            &spec.child("ipFamily"),
        ));
        errs.extend(validation::immutable(
            &self.spec.network_ref,
            &old.spec.network_ref,
            &spec.child("networkRef"),
        ));
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
