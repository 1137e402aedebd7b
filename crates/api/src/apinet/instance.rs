//! `Instance` (`core.apinet.ironcore.dev`): one LoadBalancer instance, scheduled onto a Node; plus the instance
//! template, affinity and topology types shared with LoadBalancer and DaemonSet.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP as Address, LocalObjectReference};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule, meta};

use super::LocalNodeReference;
use super::loadbalancer::{LoadBalancerPort, LoadBalancerType, validate_ports};

/// The type of an Instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum InstanceType {
    /// A LoadBalancer instance.
    LoadBalancer,
}

/// A node selector requirement operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NodeSelectorOperator {
    /// The value is in `values`.
    In,
    /// The value is not in `values`.
    NotIn,
    /// The key exists.
    Exists,
    /// The key does not exist.
    DoesNotExist,
    /// The value is greater than the single element of `values`.
    Gt,
    /// The value is less than the single element of `values`.
    Lt,
}

/// A requirement on a Node label or field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSelectorRequirement {
    /// The label key or field name (e.g. `metadata.name`).
    pub key: String,
    /// The operator.
    pub operator: NodeSelectorOperator,
    /// The values; required for In/NotIn (non-empty) and Gt/Lt (one integer), forbidden otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A set of requirements that must all hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    /// Requirements on Node labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// Requirements on Node fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// Selects Nodes: any of the terms must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    /// The terms, ORed.
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// Node affinity of an Instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    /// Nodes the Instance must be scheduled on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

/// An anti-affinity term: no two matching Instances in the same topology domain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceAffinityTerm {
    /// Selects the Instances the term applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// The Node label that defines a topology domain.
    #[serde(default)]
    pub topology_key: String,
}

/// Anti-affinity between Instances.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceAntiAffinity {
    /// Terms that must hold at scheduling time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_during_scheduling_ignored_during_execution: Vec<InstanceAffinityTerm>,
}

/// Scheduling constraints of an Instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    /// Constraints on the Node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    /// Constraints between Instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_anti_affinity: Option<InstanceAntiAffinity>,
}

/// What to do when a spread constraint cannot be satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum UnsatisfiableConstraintAction {
    /// Do not schedule.
    DoNotSchedule,
    /// Schedule anyway, preferring less skew.
    ScheduleAnyway,
}

/// Spread matching Instances evenly across topology domains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadConstraint {
    /// Maximum allowed difference of matching Instances between domains; at least 1.
    pub max_skew: i32,
    /// The Node label that defines a topology domain.
    pub topology_key: String,
    /// What to do when the constraint cannot be satisfied.
    pub when_unsatisfiable: UnsatisfiableConstraintAction,
    /// Selects the Instances counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

/// The desired state of an Instance.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "core.apinet.ironcore.dev",
    version = "v1alpha1",
    kind = "Instance",
    plural = "instances",
    namespaced,
    status = "InstanceStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"LBType","type":"string","jsonPath":".spec.loadBalancerType"}"#,
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.networkRef.name"}"#,
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".spec.ips"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.nodeRef.name",
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    /// Type of the Instance; only `LoadBalancer`. Immutable.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<InstanceType>,
    /// For LoadBalancer instances: the LoadBalancer's type. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_type: Option<LoadBalancerType>,
    /// The Network of the Instance. Immutable.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The IPs served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Address>,
    /// For LoadBalancer instances: the ports forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_ports: Vec<LoadBalancerPort>,
    /// Scheduling constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Spread constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// The Node the Instance is scheduled on; set once by the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ref: Option<LocalNodeReference>,
}

/// The observed state of an Instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The IPs realised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Address>,
    /// Used by metalnetlet to name the metalnet objects of the Instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

/// An Instance to create: metadata and spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceTemplate {
    /// Metadata of the created Instances (labels must match the owner's selector).
    #[serde(default, skip_serializing_if = "crate::networking::ipam::is_empty_meta")]
    pub metadata: ObjectMeta,
    /// Spec of the created Instances.
    #[serde(default)]
    pub spec: InstanceSpec,
}

fn validate_requirement(req: &NodeSelectorRequirement, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if req.key.is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    }
    let values = path.child("values");
    match req.operator {
        NodeSelectorOperator::In | NodeSelectorOperator::NotIn if req.values.is_empty() => {
            errs.push(FieldError::required(
                &values,
                "must be specified when `operator` is 'In' or 'NotIn'",
            ));
        }
        NodeSelectorOperator::Exists | NodeSelectorOperator::DoesNotExist if !req.values.is_empty() => {
            errs.push(FieldError::forbidden(
                &values,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ));
        }
        NodeSelectorOperator::Gt | NodeSelectorOperator::Lt
            if req.values.len() != 1 || req.values[0].parse::<i64>().is_err() =>
        {
            errs.push(FieldError::required(
                &values,
                "must be specified single value when `operator` is 'Lt' or 'Gt'",
            ));
        }
        _ => {}
    }
    errs
}

fn validate_affinity(affinity: &Affinity, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(sel) = affinity
        .node_affinity
        .as_ref()
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
    {
        let p = path
            .child("nodeAffinity")
            .child("requiredDuringSchedulingIgnoredDuringExecution")
            .child("nodeSelectorTerms");
        for (i, term) in sel.node_selector_terms.iter().enumerate() {
            for (j, r) in term.match_expressions.iter().enumerate() {
                errs.extend(validate_requirement(
                    r,
                    &p.index(i).child("matchExpressions").index(j),
                ));
            }
            for (j, r) in term.match_fields.iter().enumerate() {
                errs.extend(validate_requirement(r, &p.index(i).child("matchFields").index(j)));
            }
        }
    }
    if let Some(anti) = &affinity.instance_anti_affinity {
        let p = path
            .child("instanceAntiAffinity")
            .child("requiredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in anti
            .required_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            if term.topology_key.is_empty() {
                errs.push(FieldError::required(
                    &p.index(i).child("topologyKey"),
                    "can not be empty",
                ));
            }
            if let Some(sel) = &term.label_selector {
                errs.extend(meta::validate_label_selector(
                    sel,
                    &p.index(i).child("labelSelector"),
                ));
            }
        }
    }
    errs
}

/// Validates an Instance spec at `path`.
pub fn validate_spec(spec: &InstanceSpec, path: &Path) -> ErrorList {
    let mut errs = validation::required_enum(&spec.type_, &path.child("type"), "must specify type");
    if spec.type_ == Some(InstanceType::LoadBalancer) {
        errs.extend(validation::required_enum(
            &spec.load_balancer_type,
            &path.child("loadBalancerType"),
            "must specify load balancer type",
        ));
    }
    if !spec.network_ref.name.is_empty() {
        errs.extend(validation::label(
            &path.child("networkRef").child("name"),
            &spec.network_ref.name,
        ));
    }
    errs.extend(validate_ports(
        &spec.load_balancer_ports,
        &path.child("loadBalancerPorts"),
    ));
    if let Some(a) = &spec.affinity {
        errs.extend(validate_affinity(a, &path.child("affinity")));
    }
    for (i, c) in spec.topology_spread_constraints.iter().enumerate() {
        let p = path.child("topologySpreadConstraints").index(i);
        if c.max_skew < 1 {
            errs.push(FieldError::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                "must be greater than zero",
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(&p.child("topologyKey"), "can not be empty"));
        }
    }
    if let Some(node) = &spec.node_ref {
        errs.extend(validation::subdomain(
            &path.child("nodeRef").child("name"),
            &node.name,
        ));
    }
    errs
}

impl ApiKind for Instance {
    const NAME_RULE: NameRule = NameRule::Label;
    /// Validates a new Instance: metadata (DNS label name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `type`, `loadBalancerType`, `networkRef` immutable; `nodeRef` may only go from unset
    /// to a value.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.type_,
            &old.spec.type_,
            &spec.child("type"),
        ));
        errs.extend(validation::immutable(
            &self.spec.load_balancer_type,
            &old.spec.load_balancer_type,
            &spec.child("loadBalancerType"),
        ));
        errs.extend(validation::immutable(
            &self.spec.network_ref,
            &old.spec.network_ref,
            &spec.child("networkRef"),
        ));
        if old.spec.node_ref.is_some() {
            errs.extend(validation::immutable(
                &self.spec.node_ref,
                &old.spec.node_ref,
                &spec.child("nodeRef"),
            ));
        }
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
