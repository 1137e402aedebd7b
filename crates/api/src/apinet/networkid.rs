//! `NetworkID` (cluster-scoped): the claim on one VNI, named by the canonical VNI.

use ironnet_apimachinery::field::{ErrorList, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::ApiKind;
use crate::validation::{self, NameRule};

use ironnet_vni::Vni;

use super::{INVALID_VNI, canonical_int32};

/// Default lowest allocatable VNI (`--min-vni`).
pub const DEFAULT_MIN_VNI: i32 = 200;
/// Default highest allocatable VNI (`--max-vni`): the largest VNI.
// Cannot wrap: a VNI has at most 24 bits.
#[allow(clippy::cast_possible_wrap)]
pub const DEFAULT_MAX_VNI: i32 = Vni::MAX.get() as i32;

/// The object claiming a NetworkID or IPAddress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ClaimRef {
    /// API group of the claimer, e.g. `core.apinet.ironcore.dev`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Resource of the claimer, e.g. `networks`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// UID of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The claim on a VNI.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "NetworkID",
    plural = "networkids",
    derive = "PartialEq",
    printcolumn = r#"{"name":"ClaimRef","type":"string","jsonPath":".spec.claimRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIDSpec {
    /// The Network holding the VNI. Immutable.
    #[serde(default)]
    pub claim_ref: ClaimRef,
}

/// The NetworkID name of a VNI string: the canonical decimal form, or `None` if `id` is not an int32.
/// `"0300"` → `"300"`.
pub fn canonical_name(id: &str) -> Option<String> {
    id.parse::<i32>().ok().map(|v| v.to_string())
}

fn vni_name(name: &str) -> Vec<String> {
    if canonical_int32(name).is_some() {
        Vec::new()
    } else {
        vec![INVALID_VNI.to_owned()]
    }
}

/// The name rule of NetworkID: a canonical VNI.
pub const NAME_RULE: NameRule = NameRule::Custom(vni_name);

impl ApiKind for NetworkID {
    const NAME_RULE: NameRule = NAME_RULE;
    const NAMESPACED: bool = false;
    /// Validates a new NetworkID: the name is a canonical VNI.
    fn validate_create(&self) -> ErrorList {
        self.validate_meta_create()
    }
    /// Validates an update: `spec.claimRef` is immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.claim_ref,
            &old.spec.claim_ref,
            &Path::new("spec").child("claimRef"),
        ));
        errs
    }
}
