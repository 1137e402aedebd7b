//! `Node` (cluster-scoped): a dataplane node, mirrored by metalnetlet as `<partition>.<node>`; identity is the
//! name plus topology labels.

use ironnet_apimachinery::field::ErrorList;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::ApiKind;
use crate::validation::{self, NameRule, meta};

/// The (empty) desired state of a Node.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
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

/// Validates a new Node: metadata (DNS subdomain name, cluster-scoped).
pub fn validate_create(node: &Node) -> ErrorList {
    meta::validate_object_meta(&node.metadata, false, NameRule::Subdomain)
}

/// Validates an update: metadata.
pub fn validate_update(new: &Node, old: &Node) -> ErrorList {
    meta::validate_object_meta_update(&new.metadata, &old.metadata, false, NameRule::Subdomain)
}

/// Validates a `/status` update: metadata, and the spec unchanged.
pub fn validate_status_update(new: &Node, old: &Node) -> ErrorList {
    let mut errs = validate_update(new, old);
    errs.extend(validation::spec_unchanged_on_status(&new.spec, &old.spec));
    errs
}

impl ApiKind for Node {
    fn validate_create(&self) -> ErrorList {
        validate_create(self)
    }
    fn validate_update(&self, old: &Self) -> ErrorList {
        validate_update(self, old)
    }
    fn validate_status_update(&self, old: &Self) -> ErrorList {
        validate_status_update(self, old)
    }
}
