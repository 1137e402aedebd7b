//! `Network` (`networking.metalnet.ironcore.dev`): a VNI on a node, with the VNIs it peers with.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::IPPrefix;
use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

use ironnet_vni::{Vni, VniError};

use super::ObjectState;

/// Prefixes of this Network exported to one peer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PeeredPrefix {
    /// VNI of the peer, 1..16777215.
    #[serde(default)]
    pub id: i32,
    /// The prefixes exported to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IPPrefix>,
}

/// The desired state of a metalnet Network.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.metalnet.ironcore.dev",
    version = "v1alpha1",
    kind = "Network",
    plural = "networks",
    namespaced,
    status = "NetworkStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Handle","type":"integer","jsonPath":".spec.id"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// The VNI, 1..16777215. Required.
    #[serde(default)]
    pub id: i32,
    /// VNIs to peer with.
    #[serde(default, rename = "peeredIDs", skip_serializing_if = "Vec::is_empty")]
    pub peered_ids: Vec<i32>,
    /// Per peer, the prefixes of this Network exported to it (no entry: export everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peered_prefixes: Vec<PeeredPrefix>,
}

/// The observed state of one peering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPeeringStatus {
    /// VNI of the peer.
    #[serde(default)]
    pub id: i32,
    /// State of the peering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ObjectState>,
}

/// The observed state of a metalnet Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkStatus {
    /// Peering states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<NetworkPeeringStatus>,
}

fn validate_vni(v: i32, path: &Path) -> ErrorList {
    match Vni::try_from(v) {
        Ok(_) => ErrorList::new(),
        Err(_) => {
            FieldError::invalid(path, v, format!("must be between 1 and {}, inclusive", Vni::MAX)).into()
        }
    }
}

impl NetworkSpec {
    /// The Network's VNI; an error only for an object that did not pass validation.
    pub fn vni(&self) -> Result<Vni, VniError> {
        Vni::try_from(self.id)
    }

    /// The VNIs peered with; ids that are not VNIs (only in objects that did not pass validation) are skipped.
    pub fn peered_vnis(&self) -> impl Iterator<Item = Vni> + '_ {
        self.peered_ids.iter().filter_map(|id| Vni::try_from(*id).ok())
    }
}

impl PeeredPrefix {
    /// The peer's VNI; an error only for an object that did not pass validation.
    pub fn vni(&self) -> Result<Vni, VniError> {
        Vni::try_from(self.id)
    }
}

/// Validates a spec at `path`: VNIs in range, peered-prefix ids unique.
pub fn validate_spec(spec: &NetworkSpec, path: &Path) -> ErrorList {
    let mut errs = validate_vni(spec.id, &path.child("id"));
    for (i, id) in spec.peered_ids.iter().enumerate() {
        errs.extend(validate_vni(*id, &path.child("peeredIDs").index(i)));
    }
    for (i, pp) in spec.peered_prefixes.iter().enumerate() {
        let p = path.child("peeredPrefixes").index(i);
        errs.extend(validate_vni(pp.id, &p.child("id")));
        if spec.peered_prefixes[..i].iter().any(|e| e.id == pp.id) {
            errs.push(FieldError::duplicate(&p.child("id"), pp.id));
        }
    }
    errs
}

impl ApiKind for Network {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    /// Validates a new Network: metadata (DNS subdomain name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `spec.id` is immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.id,
            &old.spec.id,
            &spec.child("id"),
        ));
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
