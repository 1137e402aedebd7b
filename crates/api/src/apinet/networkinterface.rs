//! `NetworkInterface` (`core.apinet.ironcore.dev`): a NIC on a Node, with internal IPs, public IPs and NAT.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP as Address, IPFamily, IPPrefix, LocalObjectReference, LocalUIDReference};
use crate::kind::ApiKind;
use crate::validation::{self, FIELD_IS_IMMUTABLE, NameRule, names};

use super::{LocalNodeReference, ObjectIP, default_object_ip, validate_object_ips};

/// The spec fields the public-IP allocator fills (JSON path pattern).
pub const ALLOCATED_PUBLIC_IPS_FIELD: &str = "spec.publicIPs[*].ip";

/// A NATGateway's claim on the NetworkInterface for one family.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceNAT {
    /// IP family NATed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// The NATGateway (name and UID).
    #[serde(default)]
    pub claim_ref: LocalUIDReference,
}

/// The state of a NetworkInterface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NetworkInterfaceState {
    /// Not yet realised.
    Pending,
    /// Realised.
    Ready,
    /// Realising failed.
    Error,
}

/// The PCI address of a realised NetworkInterface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PCIAddress {
    /// PCI domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// PCI bus.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bus: String,
    /// PCI slot.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub slot: String,
    /// PCI function.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub function: String,
}

/// The TAP device of a NetworkInterface realised in TAP mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TAPDevice {
    /// Name of the TAP device.
    #[serde(default)]
    pub name: String,
}

/// The desired state of an apinet NetworkInterface.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "NetworkInterface",
    plural = "networkinterfaces",
    namespaced,
    status = "NetworkInterfaceStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.networkRef.name"}"#,
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".spec.ips"}"#,
    printcolumn = r#"{"name":"Prefixes","type":"string","jsonPath":".spec.prefixes"}"#,
    printcolumn = r#"{"name":"PublicIPs","type":"string","jsonPath":".spec.publicIPs[*].ip"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.networkRef.name",
    selectable = ".spec.nodeRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceSpec {
    /// The Network. Immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The Node the NetworkInterface lives on. Required, immutable.
    #[serde(default)]
    pub node_ref: LocalNodeReference,
    /// Internal IPs, at most one per family. Immutable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Address>,
    /// Prefixes routed to the NetworkInterface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IPPrefix>,
    /// Hostname (DHCP option 12); a DNS label. Immutable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Public IPs, at most one per family; allocated when `ip` is empty.
    #[serde(default, rename = "publicIPs", skip_serializing_if = "Vec::is_empty")]
    pub public_ips: Vec<ObjectIP>,
    /// NATGateway claims, one per family not covered by a public IP; written by the NATGateway controller.
    #[serde(default, rename = "natGateways", skip_serializing_if = "Vec::is_empty")]
    pub nats: Vec<NetworkInterfaceNAT>,
}

/// The observed state of an apinet NetworkInterface; written by metalnetlet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceStatus {
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NetworkInterfaceState>,
    /// PCI address (device mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PCIAddress>,
    /// TAP device (TAP mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap_device: Option<TAPDevice>,
    /// Prefixes realised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IPPrefix>,
    /// Public IPs realised.
    #[serde(default, rename = "publicIPs", skip_serializing_if = "Vec::is_empty")]
    pub public_ips: Vec<Address>,
    /// NAT IPs realised.
    #[serde(default, rename = "natIPs", skip_serializing_if = "Vec::is_empty")]
    pub nat_ips: Vec<Address>,
}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &NetworkInterfaceSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let node = path.child("nodeRef").child("name");
    if spec.node_ref.name.is_empty() {
        errs.push(FieldError::required(&node, "must specify node ref"));
    } else {
        errs.extend(validation::subdomain(&node, &spec.node_ref.name));
    }
    if !spec.network_ref.name.is_empty() {
        errs.extend(validation::label(
            &path.child("networkRef").child("name"),
            &spec.network_ref.name,
        ));
    }
    for (i, ip) in spec.ips.iter().enumerate() {
        if spec.ips[..i].iter().any(|e| e.family() == ip.family()) {
            errs.push(FieldError::forbidden(
                &path.child("ips").index(i),
                format!("cannot have multiple ips of family {}", ip.family()),
            ));
        }
    }
    if !spec.hostname.is_empty() {
        validation::push_name_errors(
            &mut errs,
            &path.child("hostname"),
            &spec.hostname,
            names::dns1123_label(&spec.hostname),
        );
    }
    errs.extend(validate_object_ips(
        &spec.public_ips,
        true,
        &path.child("publicIPs"),
    ));
    for (i, nat) in spec.nats.iter().enumerate() {
        let p = path.child("natGateways").index(i);
        match nat.ip_family {
            None => errs.push(FieldError::required(
                &p.child("ipFamily"),
                "must specify ip family",
            )),
            Some(f) => {
                if spec.public_ips.iter().any(|e| e.ip_family == Some(f)) {
                    errs.push(FieldError::forbidden(
                        &p,
                        format!("cannot have a public IP and a NAT gateway of family {f}"),
                    ));
                }
                if spec.nats[..i].iter().any(|e| e.ip_family == Some(f)) {
                    errs.push(FieldError::forbidden(
                        &p,
                        format!("cannot have multiple NAT gateways of family {f}"),
                    ));
                }
            }
        }
        errs.extend(validation::label(
            &p.child("claimRef").child("name"),
            &nat.claim_ref.name,
        ));
    }
    errs
}

/// Validates a spec update at `path`: `nodeRef`, `networkRef` immutable (Forbidden); `ips` and `hostname`
/// immutable (Invalid, as upstream).
pub fn validate_spec_update(
    new: &NetworkInterfaceSpec,
    old: &NetworkInterfaceSpec,
    path: &Path,
) -> ErrorList {
    let mut errs = validation::immutable(&new.node_ref, &old.node_ref, &path.child("nodeRef"));
    errs.extend(validation::immutable(
        &new.network_ref,
        &old.network_ref,
        &path.child("networkRef"),
    ));
    if new.ips != old.ips {
        errs.push(FieldError::invalid(
            &path.child("ips"),
            serde_json::to_value(&new.ips).unwrap_or_default(),
            FIELD_IS_IMMUTABLE,
        ));
    }
    if new.hostname != old.hostname {
        errs.push(FieldError::invalid(
            &path.child("hostname"),
            new.hostname.as_str(),
            FIELD_IS_IMMUTABLE,
        ));
    }
    errs
}

impl ApiKind for NetworkInterface {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Applies the defaults: each public IP's family from its address.
    fn apply_defaults(&mut self) {
        self.spec.public_ips.iter_mut().for_each(default_object_ip);
    }
    /// Validates a new NetworkInterface: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: metadata, immutable fields, and the new spec.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validate_spec_update(&self.spec, &old.spec, &spec));
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
