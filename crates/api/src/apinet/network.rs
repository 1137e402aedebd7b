//! `Network` (`core.apinet.ironcore.dev`): a network with its VNI (`spec.id`, allocated by the API server).

use std::collections::BTreeMap;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::IPPrefix;
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

use ironnet_vni::{Vni, VniError};

use super::{INVALID_VNI, canonical_int32};

/// The spec field the VNI allocator fills when empty (JSON path).
pub const ALLOCATED_ID_FIELD: &str = "spec.id";

/// A prefix exported to a peer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PeeringPrefix {
    /// Name of the prefix entry.
    #[serde(default)]
    pub name: String,
    /// The prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<IPPrefix>,
}

/// A peering with another apinet Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPeering {
    /// Name of the peering.
    #[serde(default)]
    pub name: String,
    /// VNI of the peer Network.
    #[serde(default)]
    pub id: String,
    /// Prefixes of this Network exported to the peer; empty exports everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PeeringPrefix>,
}

impl NetworkPeering {
    /// The peer's VNI: `id` in canonical decimal form, `1..=16777215`.
    pub fn vni(&self) -> Result<Vni, VniError> {
        self.id.parse()
    }
}

/// The desired state of an apinet Network.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "Network",
    plural = "networks",
    namespaced,
    status = "NetworkStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".spec.id"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.id"
)]
pub struct NetworkSpec {
    /// The VNI, as a canonical decimal string; allocated by the API server when empty. Immutable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Peerings with other Networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<NetworkPeering>,
}

impl NetworkSpec {
    /// The Network's VNI: `id` in canonical decimal form, `1..=16777215` (an error while `id` is unallocated).
    pub fn vni(&self) -> Result<Vni, VniError> {
        self.id.parse()
    }
}

/// The state of a peering on one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NetworkPeeringState {
    /// Not (yet) in place.
    Pending,
    /// In place.
    Ready,
    /// Failed.
    Error,
}

/// The observed state of a peering on one partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPeeringStatus {
    /// VNI of the peer.
    #[serde(default)]
    pub id: i32,
    /// State of the peering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NetworkPeeringState>,
}

/// The observed state of an apinet Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkStatus {
    /// Peering states keyed by partition name; written by metalnetlet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peerings: BTreeMap<String, Vec<NetworkPeeringStatus>>,
}

/// Validates a spec at `path`: `id` (when set) and peer ids are canonical VNIs, peering names unique.
pub fn validate_spec(spec: &NetworkSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if !spec.id.is_empty() && canonical_int32(&spec.id).is_none_or(|v| v <= 0) {
        errs.push(FieldError::invalid(
            &path.child("id"),
            spec.id.as_str(),
            INVALID_VNI,
        ));
    }
    for (i, peering) in spec.peerings.iter().enumerate() {
        let p = path.child("peerings").index(i);
        if spec.peerings[..i].iter().any(|e| e.name == peering.name) {
            errs.push(FieldError::duplicate(&p.child("name"), peering.name.as_str()));
        }
        if canonical_int32(&peering.id).is_none_or(|v| v <= 0) {
            errs.push(FieldError::invalid(
                &p.child("id"),
                peering.id.as_str(),
                INVALID_VNI,
            ));
        }
        for (j, prefix) in peering.prefixes.iter().enumerate() {
            if prefix.prefix.is_none() {
                errs.push(FieldError::required(
                    &p.child("prefixes").index(j).child("prefix"),
                    "",
                ));
            }
        }
    }
    errs
}

impl ApiKind for Network {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Validates a new Network: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `spec.id` is immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.id,
            &old.spec.id,
            &Path::new("spec").child("id"),
        ));
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
}
