//! `NetworkInterface` (`networking.ironcore.dev/v1alpha1`): a machine's attachment to a Network, and the IP
//! sources (literal or ephemeral) shared with LoadBalancer.

use std::collections::BTreeMap;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP, IPFamily, IPPrefix, LocalObjectReference, LocalUIDReference};
use crate::kind::ApiKind;
use crate::naming;
use crate::validation::{self, NameRule};

use super::ipam::{self, PrefixTemplateSpec};
use super::virtualip::{self, VirtualIPTemplateSpec};

/// An ephemeral Prefix: created from the template and owned by the referencing object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralPrefixSource {
    /// The Prefix to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_template: Option<PrefixTemplateSpec>,
}

/// Where an IP comes from: exactly one of a literal `value` or an `ephemeral` single-address Prefix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IPSource {
    /// A literal IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<IP>,
    /// A `/32` or `/128` Prefix allocated for this IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<EphemeralPrefixSource>,
}

/// Where a prefix comes from: exactly one of a literal `value` or an `ephemeral` Prefix of any size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrefixSource {
    /// A literal IP prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<IPPrefix>,
    /// A Prefix allocated for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<EphemeralPrefixSource>,
}

/// An ephemeral VirtualIP, created from the template and named like the NetworkInterface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralVirtualIPSource {
    /// The VirtualIP to create.
    #[serde(
        default,
        rename = "virtualIPTemplate",
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_ip_template: Option<VirtualIPTemplateSpec>,
}

/// Where the public IP of a NetworkInterface comes from: exactly one of a reference or an ephemeral VirtualIP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPSource {
    /// An existing VirtualIP in the same namespace.
    #[serde(default, rename = "virtualIPRef", skip_serializing_if = "Option::is_none")]
    pub virtual_ip_ref: Option<LocalObjectReference>,
    /// A VirtualIP created for this NetworkInterface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<EphemeralVirtualIPSource>,
}

/// The state of a NetworkInterface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NetworkInterfaceState {
    /// Not yet realised (the default).
    Pending,
    /// Realised and usable.
    Available,
    /// Realising failed.
    Error,
}

/// The desired state of a NetworkInterface.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.ironcore.dev",
    version = "v1alpha1",
    kind = "NetworkInterface",
    plural = "networkinterfaces",
    namespaced,
    status = "NetworkInterfaceStatus",
    shortname = "nic",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.networkRef.name"}"#,
    printcolumn = r#"{"name":"Machine","type":"string","jsonPath":".spec.machineRef.name"}"#,
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".status.ips"}"#,
    printcolumn = r#"{"name":"Prefixes","type":"string","jsonPath":".status.prefixes"}"#,
    printcolumn = r#"{"name":"VirtualIP","type":"string","jsonPath":".status.virtualIP"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.networkRef.name",
    selectable = ".spec.machineRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceSpec {
    /// Provider-internal ID of the NetworkInterface (set by the machine pool); may be set once.
    #[serde(default, rename = "providerID", skip_serializing_if = "String::is_empty")]
    pub provider_id: String,
    /// The Network the NetworkInterface is connected to. Required, immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The Machine using the NetworkInterface (the claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_ref: Option<LocalUIDReference>,
    /// IP families of the NetworkInterface, one per entry of `ips`; inferred from `ips` when empty. Immutable.
    #[serde(default)]
    pub ip_families: Vec<IPFamily>,
    /// Internal IPs of the NetworkInterface, one per IP family.
    #[serde(default)]
    pub ips: Vec<IPSource>,
    /// Additional prefixes routed to the NetworkInterface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PrefixSource>,
    /// The public IP of the NetworkInterface.
    #[serde(default, rename = "virtualIP", skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<VirtualIPSource>,
    /// Provider-specific attributes, passed through. Immutable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// The observed state of a NetworkInterface; written by the network plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceStatus {
    /// The state; defaults to `Pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NetworkInterfaceState>,
    /// When the state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state_transition_time: Option<Time>,
    /// The effective internal IPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IP>,
    /// The effective prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IPPrefix>,
    /// The effective public IP.
    #[serde(default, rename = "virtualIP", skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<IP>,
}

/// The shared ipFamilies/ips defaulting of NetworkInterface and LoadBalancer (`setDefaults_IPFamiliesIPSources`).
///
/// Unlike upstream, each ephemeral template's family is inferred from its prefix *before* the families list is
/// built, so a template with only a prefix contributes its family instead of an empty one.
pub fn default_ip_families_and_sources(ip_families: &mut Vec<IPFamily>, ips: &mut [IPSource]) {
    for src in ips.iter_mut() {
        if let Some(t) = src.ephemeral.as_mut().and_then(|e| e.prefix_template.as_mut()) {
            t.spec.apply_defaults();
        }
    }
    if !ip_families.is_empty() && ip_families.len() == ips.len() {
        for (family, src) in ip_families.iter().zip(ips.iter_mut()) {
            if let Some(t) = src.ephemeral.as_mut().and_then(|e| e.prefix_template.as_mut())
                && t.spec.ip_family.is_none()
            {
                t.spec.ip_family = Some(*family);
            }
        }
    }
    if ip_families.is_empty() {
        for src in ips.iter() {
            if let Some(v) = &src.value {
                ip_families.push(v.family());
            } else if let Some(f) = src
                .ephemeral
                .as_ref()
                .and_then(|e| e.prefix_template.as_ref())
                .and_then(|t| t.spec.ip_family)
            {
                ip_families.push(f);
            }
        }
    }
    for src in ips.iter_mut() {
        if let Some(t) = src.ephemeral.as_mut().and_then(|e| e.prefix_template.as_mut())
            && t.spec.prefix.is_none()
            && t.spec.prefix_length == 0
        {
            t.spec.prefix_length = t.spec.ip_family.map_or(0, |f| i32::from(f.bits()));
        }
    }
}

/// The spec part of [`default`], also applied to Machine NetworkInterface templates.
pub fn default_spec(spec: &mut NetworkInterfaceSpec) {
    default_ip_families_and_sources(&mut spec.ip_families, &mut spec.ips);
    for src in &mut spec.prefixes {
        if let Some(t) = src.ephemeral.as_mut().and_then(|e| e.prefix_template.as_mut()) {
            t.spec.apply_defaults();
        }
    }
}

/// Validates `ipFamilies` at `path`: required, no duplicates (unknown values fail decoding).
pub fn validate_ip_families(families: &[IPFamily], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if families.is_empty() {
        errs.push(FieldError::required(path, "must specify ipFamilies"));
    }
    for (i, f) in families.iter().enumerate() {
        if families[..i].contains(f) {
            errs.push(FieldError::duplicate(&path.index(i), f.as_str()));
        }
    }
    errs
}

/// Validates one IP source at `path` against the `expected` family; `prefix_name` is the name of the ephemeral
/// Prefix it would create (checked as a DNS subdomain when given).
pub fn validate_ip_source(
    src: &IPSource,
    expected: Option<IPFamily>,
    path: &Path,
    prefix_name: Option<&str>,
) -> ErrorList {
    let mut errs = ErrorList::new();
    match (&src.value, &src.ephemeral) {
        (Some(value), ephemeral) => {
            match expected {
                Some(f) if f != value.family() => errs.push(FieldError::invalid(
                    &path.child("value"),
                    value.to_string(),
                    format!("expected ip family {f} but got {}", value.family()),
                )),
                None => errs.push(FieldError::invalid(
                    &path.child("value"),
                    value.to_string(),
                    "cannot determine ip family for ip",
                )),
                _ => {}
            }
            if let Some(e) = ephemeral {
                errs.push(FieldError::invalid(
                    &path.child("ephemeral"),
                    serde_json::to_value(e).unwrap_or_default(),
                    "cannot specify multiple ip sources",
                ));
            }
        }
        (None, Some(ephemeral)) => {
            let p = path.child("ephemeral").child("prefixTemplate");
            match &ephemeral.prefix_template {
                None => errs.push(FieldError::required(&p, "must specify prefix template")),
                Some(t) => {
                    errs.extend(ipam::validate_template_metadata(
                        &t.metadata,
                        &p.child("metadata"),
                        "prefix",
                    ));
                    let sp = p.child("spec");
                    errs.extend(ipam::validate_prefix_spec(&t.spec, &sp));
                    if let (Some(want), Some(got)) = (expected, t.spec.ip_family)
                        && want != got
                    {
                        errs.push(FieldError::forbidden(
                            &sp.child("ipFamily"),
                            "has to match network interface ip family",
                        ));
                    }
                    if let Some(prefix) = &t.spec.prefix
                        && !prefix.is_single_ip()
                    {
                        errs.push(FieldError::forbidden(&sp.child("prefix"), "must be a single IP"));
                    }
                    if t.spec.prefix_length != 0 {
                        let bits = expected.or(t.spec.ip_family).map(|f| i32::from(f.bits()));
                        if bits != Some(t.spec.prefix_length) {
                            errs.push(FieldError::forbidden(
                                &sp.child("prefixLength"),
                                "must be a single IP",
                            ));
                        }
                    }
                    if let Some(name) = prefix_name {
                        for msg in crate::validation::names::dns1123_subdomain(name) {
                            errs.push(FieldError::invalid(
                                path,
                                name,
                                format!("resulting prefix name {name:?} is invalid: {msg}"),
                            ));
                        }
                    }
                }
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            serde_json::json!({}),
            "must specify an ip source",
        )),
    }
    errs
}

fn validate_prefix_source(src: &PrefixSource, path: &Path, prefix_name: Option<&str>) -> ErrorList {
    let mut errs = ErrorList::new();
    match (&src.value, &src.ephemeral) {
        (Some(_), Some(e)) => {
            errs.push(FieldError::invalid(
                &path.child("ephemeral"),
                serde_json::to_value(e).unwrap_or_default(),
                "cannot specify multiple ip sources",
            ));
        }
        (Some(_), None) => {}
        (None, Some(ephemeral)) => {
            let p = path.child("ephemeral").child("prefixTemplate");
            match &ephemeral.prefix_template {
                None => errs.push(FieldError::required(&p, "must specify template")),
                Some(t) => {
                    errs.extend(ipam::validate_template_metadata(
                        &t.metadata,
                        &p.child("metadata"),
                        "prefix",
                    ));
                    errs.extend(ipam::validate_prefix_spec(&t.spec, &p.child("spec")));
                    if let Some(name) = prefix_name {
                        for msg in crate::validation::names::dns1123_subdomain(name) {
                            errs.push(FieldError::invalid(
                                path,
                                name,
                                format!("resulting prefix name {name:?} is invalid: {msg}"),
                            ));
                        }
                    }
                }
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            serde_json::json!({}),
            "must specify a prefix source",
        )),
    }
    errs
}

fn validate_virtual_ip_source(src: &VirtualIPSource, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(r) = &src.virtual_ip_ref {
        errs.extend(validation::label(
            &path.child("virtualIPRef").child("name"),
            &r.name,
        ));
    }
    match (&src.virtual_ip_ref, &src.ephemeral) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::invalid(
                &path.child("ephemeral"),
                serde_json::json!({}),
                "cannot specify multiple sources",
            ));
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            serde_json::json!({}),
            "must specify a virtual ip source",
        )),
        (None, Some(e)) => {
            let p = path.child("ephemeral").child("virtualIPTemplate");
            match &e.virtual_ip_template {
                None => errs.push(FieldError::required(&p, "must specify virtual ip template")),
                Some(t) => {
                    errs.extend(ipam::validate_template_metadata(
                        &t.metadata,
                        &p.child("metadata"),
                        "virtual ip",
                    ));
                    errs.extend(virtualip::validate_spec(&t.spec.spec, &p.child("spec")));
                }
            }
        }
        (Some(_), None) => {}
    }
    errs
}

/// Validates a NetworkInterface spec at `path`; `nic_name` (when known) names the ephemeral prefixes.
pub fn validate_spec(spec: &NetworkInterfaceSpec, nic_name: Option<&str>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let net = path.child("networkRef");
    if spec.network_ref == LocalObjectReference::default() {
        errs.push(FieldError::required(&net, "must specify network ref"));
    }
    errs.extend(validation::subdomain(&net.child("name"), &spec.network_ref.name));
    if let Some(m) = &spec.machine_ref {
        errs.extend(validation::label(
            &path.child("machineRef").child("name"),
            &m.name,
        ));
    }
    errs.extend(validate_ip_families(&spec.ip_families, &path.child("ipFamilies")));
    if spec.ip_families.len() != spec.ips.len() {
        errs.push(FieldError::invalid(
            &path.child("ips"),
            serde_json::to_value(&spec.ips).unwrap_or_default(),
            "ip families must match ips",
        ));
    }
    for (i, src) in spec.ips.iter().enumerate() {
        let name = nic_name.map(|n| naming::ephemeral_ip_prefix_name(n, i));
        errs.extend(validate_ip_source(
            src,
            spec.ip_families.get(i).copied(),
            &path.child("ips").index(i),
            name.as_deref(),
        ));
    }
    for (i, src) in spec.prefixes.iter().enumerate() {
        let name = nic_name.map(|n| naming::ephemeral_prefix_prefix_name(n, i));
        errs.extend(validate_prefix_source(
            src,
            &path.child("prefixes").index(i),
            name.as_deref(),
        ));
    }
    if let Some(v) = &spec.virtual_ip {
        errs.extend(validate_virtual_ip_source(v, &path.child("virtualIP")));
    }
    errs
}

impl ApiKind for NetworkInterface {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    /// Applies the NetworkInterface defaults: IP families and ephemeral templates (see
    /// [`default_ip_families_and_sources`]), ephemeral prefix families, and status state `Pending`.
    fn apply_defaults(&mut self) {
        default_spec(&mut self.spec);
        if let Some(status) = self.status.as_mut()
            && status.state.is_none()
        {
            status.state = Some(NetworkInterfaceState::Pending);
        }
    }
    /// Validates a new NetworkInterface: metadata (DNS subdomain name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        let name = self.metadata.name.as_deref().filter(|n| !n.is_empty());
        errs.extend(validate_spec(&self.spec, name, &Path::new("spec")));
        errs
    }
    /// Validates an update: `networkRef`, `ipFamilies` and `attributes` are immutable (one Forbidden on `spec`),
    /// and the new object must be valid.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        let mut masked = self.spec.clone();
        masked.provider_id.clone_from(&old.spec.provider_id);
        masked.ips.clone_from(&old.spec.ips);
        masked.prefixes.clone_from(&old.spec.prefixes);
        masked.machine_ref.clone_from(&old.spec.machine_ref);
        masked.virtual_ip.clone_from(&old.spec.virtual_ip);
        errs.extend(validation::immutable_with_diff(
            &masked,
            &old.spec,
            &Path::new("spec"),
        ));
        let name = self.metadata.name.as_deref().filter(|n| !n.is_empty());
        errs.extend(validate_spec(&self.spec, name, &Path::new("spec")));
        errs
    }
}
