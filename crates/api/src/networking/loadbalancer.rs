//! `LoadBalancer` (`networking.ironcore.dev/v1alpha1`): an L3 load balancer in front of NetworkInterfaces.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP, IPFamily, LocalObjectReference, Protocol};
use crate::kind::ApiKind;
use crate::naming;
use crate::validation::{self, NameRule, meta};

use super::networkinterface::{self, IPSource};

/// The type of a LoadBalancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum LoadBalancerType {
    /// Allocates and routes stable public IPs.
    Public,
    /// Uses stable network-internal IPs given in `spec.ips`.
    Internal,
}

/// A port or port range the LoadBalancer forwards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerPort {
    /// Protocol (`TCP`, `UDP`, `SCTP`); when empty, TCP is meant (not written into storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The (first) port, 1..65535.
    #[serde(default)]
    pub port: i32,
    /// The last port of the range, inclusive; unset means only `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

impl LoadBalancerPort {
    /// The protocol with the documented default (TCP) applied.
    pub fn effective_protocol(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::Tcp)
    }

    /// The inclusive port range `[port, endPort or port]`.
    pub fn range(&self) -> (i32, i32) {
        (self.port, self.end_port.unwrap_or(self.port))
    }
}

/// The desired state of a LoadBalancer.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.ironcore.dev",
    version = "v1alpha1",
    kind = "LoadBalancer",
    plural = "loadbalancers",
    namespaced,
    status = "LoadBalancerStatus",
    shortname = "lb",
    derive = "PartialEq",
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".status.ips"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// Type of the LoadBalancer (`Public` or `Internal`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<LoadBalancerType>,
    /// IP families of the LoadBalancer; inferred from `ips` when empty.
    #[serde(default)]
    pub ip_families: Vec<IPFamily>,
    /// IPs of an `Internal` LoadBalancer; must be empty for `Public` ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IPSource>,
    /// The Network of the LoadBalancer. Immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Selects the target NetworkInterfaces; when unset, routing is managed externally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_selector: Option<LabelSelector>,
    /// The ports to forward.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<LoadBalancerPort>,
}

/// The observed state of a LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadBalancerStatus {
    /// The IPs of the LoadBalancer; written by the network plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IP>,
}

/// Validates the ports at `path`: every entry's range, and no overlap within a protocol.
pub fn validate_ports(ports: &[LoadBalancerPort], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if !(1..=65535).contains(&port.port) {
            errs.push(FieldError::invalid(
                &p.child("port"),
                port.port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(end) = port.end_port {
            if !(1..=65535).contains(&end) {
                errs.push(FieldError::invalid(
                    &p.child("endPort"),
                    end,
                    "must be between 1 and 65535, inclusive",
                ));
            } else if end < port.port {
                errs.push(FieldError::forbidden(
                    &p.child("endPort"),
                    "must be greater than or equal to port",
                ));
            }
        }
        let (a, b) = port.range();
        for earlier in ports[..i]
            .iter()
            .filter(|e| e.effective_protocol() == port.effective_protocol())
        {
            let (c, d) = earlier.range();
            if a <= d && c <= b {
                errs.push(FieldError::forbidden(
                    &p,
                    format!("port range [{a} {b}] overlaps with port range [{c} {d}]"),
                ));
            }
        }
    }
    errs
}

/// Validates a LoadBalancer spec at `path`; `lb_name` (when known) names the ephemeral prefixes.
pub fn validate_spec(spec: &LoadBalancerSpec, lb_name: Option<&str>, path: &Path) -> ErrorList {
    let mut errs = validation::required_enum(&spec.type_, &path.child("type"), "must specify type");
    errs.extend(networkinterface::validate_ip_families(
        &spec.ip_families,
        &path.child("ipFamilies"),
    ));
    if spec.type_ == Some(LoadBalancerType::Public) && !spec.ips.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("ips"),
            "may only be specified for Internal load balancers",
        ));
    }
    for (i, src) in spec.ips.iter().enumerate() {
        let name = lb_name.map(|n| naming::ephemeral_ip_prefix_name(n, i));
        let family = spec.ip_families.get(i).copied();
        errs.extend(networkinterface::validate_ip_source(
            src,
            family,
            &path.child("ips").index(i),
            name.as_deref(),
        ));
    }
    errs.extend(validation::subdomain(
        &path.child("networkRef").child("name"),
        &spec.network_ref.name,
    ));
    if let Some(selector) = &spec.network_interface_selector {
        errs.extend(meta::validate_label_selector(
            selector,
            &path.child("networkInterfaceSelector"),
        ));
    }
    errs.extend(validate_ports(&spec.ports, &path.child("ports")));
    errs
}

impl ApiKind for LoadBalancer {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Applies the LoadBalancer defaults: the NetworkInterface ipFamilies/ips defaulting.
    fn apply_defaults(&mut self) {
        networkinterface::default_ip_families_and_sources(&mut self.spec.ip_families, &mut self.spec.ips);
    }
    /// Validates a new LoadBalancer: metadata (name is a DNS label) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        let name = self.metadata.name.as_deref().filter(|n| !n.is_empty());
        errs.extend(validate_spec(&self.spec, name, &Path::new("spec")));
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
        let name = self.metadata.name.as_deref().filter(|n| !n.is_empty());
        errs.extend(validate_spec(&self.spec, name, &Path::new("spec")));
        errs
    }
}
