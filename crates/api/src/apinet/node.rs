//! `Node` (cluster-scoped): a dataplane node, mirrored by metalnetlet as `<partition>.<node>`; identity is the
//! name plus topology labels.

use ironnet_apimachinery::field::ErrorList;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::ApiKind;
use crate::validation::NameRule;

/// The (empty) desired state of a Node.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "Node",
    plural = "nodes",
    status = "NodeStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct NodeSpec {}

/// The (empty) observed state of a Node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeStatus {}

impl ApiKind for Node {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    const NAMESPACED: bool = false;
    /// Validates a new Node: metadata (DNS subdomain name, cluster-scoped).
    fn validate_create(&self) -> ErrorList {
        self.validate_meta_create()
    }
    /// Validates an update: metadata.
    fn validate_update(&self, old: &Self) -> ErrorList {
        self.validate_meta_update(old)
    }
}
