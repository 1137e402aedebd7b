//! `NATGateway` (`networking.ironcore.dev/v1alpha1`): outbound NAT for the NetworkInterfaces of a Network.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP, IPFamily, LocalObjectReference};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

/// Ports per NetworkInterface when `portsPerNetworkInterface` is not given.
pub const DEFAULT_PORTS_PER_NETWORK_INTERFACE: i32 = 2048;
/// The first port NAT hands out; ports below are reserved.
pub const NAT_MIN_PORT: i32 = 1024;
/// The last port NAT hands out.
pub const NAT_MAX_PORT: i32 = 65535;
/// Number of ports NAT hands out per public IP (`65535 - 1024 + 1` = 64512).
pub const NAT_PORT_RANGE: i32 = NAT_MAX_PORT - NAT_MIN_PORT + 1;

/// The type of a NATGateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NATGatewayType {
    /// NAT to public IPs.
    Public,
}

/// The desired state of a NATGateway.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.ironcore.dev",
    version = "v1alpha1",
    kind = "NATGateway",
    plural = "natgateways",
    namespaced,
    status = "NATGatewayStatus",
    shortname = "ngw",
    derive = "PartialEq",
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".status.ips"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct NATGatewaySpec {
    /// Type of the NATGateway; only `Public`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<NATGatewayType>,
    /// IP family of the NATGateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The Network served. Immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Ports handed to each NetworkInterface: a power of two from 1 to 32768 (fits the 64512-port range);
    /// defaults to 2048.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports_per_network_interface: Option<i32>,
}

/// A public IP of a NATGateway in status: upstream writes plain addresses, its documentation shows `{name, ip}`
/// objects; both forms are accepted, plain addresses are written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct NATGatewayStatusIP(pub IP);

impl<'de> Deserialize<'de> for NATGatewayStatusIP {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Plain(IP),
            Named { ip: IP },
        }
        match Wire::deserialize(deserializer)? {
            Wire::Plain(ip) | Wire::Named { ip } => Ok(NATGatewayStatusIP(ip)),
        }
    }
}

/// The observed state of a NATGateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NATGatewayStatus {
    /// The public IPs of the NATGateway; written by the network plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<NATGatewayStatusIP>,
}

/// Validates ports per NetworkInterface at `path`: a power of two no larger than the largest power of two that
/// fits the NAT port range (32768). With `allow_full_range`, the whole range (64512, one NetworkInterface per
/// IP) is accepted too. Shared with `core.apinet.ironcore.dev`.
pub fn validate_ports_per_network_interface(ppn: i32, allow_full_range: bool, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if allow_full_range && ppn == NAT_PORT_RANGE {
        return errs;
    }
    if ppn <= 0 || (ppn & (ppn - 1)) != 0 {
        errs.push(FieldError::invalid(
            path,
            ppn,
            format!("{ppn} is not a power of 2"),
        ));
    } else if ppn > NAT_PORT_RANGE {
        errs.push(FieldError::invalid(
            path,
            ppn,
            format!(
                "must be at most {} (the largest power of 2 within the {NAT_PORT_RANGE}-port NAT range)",
                1 << 15
            ),
        ));
    }
    errs
}

/// Validates a NATGateway spec at `path`.
pub fn validate_spec(spec: &NATGatewaySpec, path: &Path) -> ErrorList {
    let mut errs = validation::required_enum(&spec.type_, &path.child("type"), "must specify type");
    errs.extend(validation::required_enum(
        &spec.ip_family,
        &path.child("ipFamily"),
        "must specify ip family",
    ));
    errs.extend(validation::subdomain(
        &path.child("networkRef").child("name"),
        &spec.network_ref.name,
    ));
    if let Some(ppn) = spec.ports_per_network_interface {
        errs.extend(validate_ports_per_network_interface(
            ppn,
            false,
            &path.child("portsPerNetworkInterface"),
        ));
    }
    errs
}

impl ApiKind for NATGateway {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Applies the NATGateway defaults: `portsPerNetworkInterface` 2048.
    fn apply_defaults(&mut self) {
        self.spec
            .ports_per_network_interface
            .get_or_insert(DEFAULT_PORTS_PER_NETWORK_INTERFACE);
    }
    /// Validates a new NATGateway: metadata (name is a DNS label) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `networkRef` is immutable; the new object must be valid.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.network_ref,
            &old.spec.network_ref,
            &Path::new("spec").child("networkRef"),
        ));
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
}
