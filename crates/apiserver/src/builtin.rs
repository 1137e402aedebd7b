//! Kinds the server itself serves: core/v1 Namespace, Node and Event, events.k8s.io/v1 Event,
//! coordination.k8s.io/v1 Lease, the `rbac.authorization.k8s.io/v1` kinds, and the review kinds
//! of `authorization.k8s.io/v1` and `authentication.k8s.io/v1` (answered, never stored).

use std::sync::Arc;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use serde_json::{Value, json};

use crate::auth::rbac::{self, Rbac};
use crate::auth::rbac_admission::{BindingStrategy, RoleStrategy};
use crate::auth::review;
use crate::definition::{PrinterColumn, ResourceDefinition, Scope};
use crate::events::{EventStrategy, EventVersion};
use crate::registry::Registry;
use crate::strategy::{DefaultStrategy, Strategy};

fn column(name: &str, type_: &str, path: &str, priority: i32) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority,
        json_path: path.into(),
    }
}

/// Namespaces: `spec.finalizers: [kubernetes]` and `status.phase: Active` by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn default(&self, obj: &mut Value) {
        if obj.pointer("/spec/finalizers").is_none() && !crate::meta::is_deleting(obj) {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        if obj.pointer("/status/phase").is_none() {
            obj["status"] = json!({"phase": "Active"});
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        // Finalizers in spec may only be removed by the namespace controller once it is terminating.
        let f = |o: &Value| o.pointer("/spec/finalizers").cloned().unwrap_or(Value::Null);
        if f(new) != f(old) && !crate::meta::is_deleting(old) {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("finalizers"),
                "may only be changed while the namespace is terminating",
            ));
        }
        errs
    }
}

fn definition(group: &str, kind: &str, plural: &str, scope: Scope) -> ResourceDefinition {
    ResourceDefinition::new(group, "v1", kind, plural, scope).expect("built-in definitions are valid")
}

/// Registers the built-in kinds, with RBAC escalation checks off (tests of other kinds).
#[cfg(test)]
pub(crate) fn register_builtins(registry: &mut Registry) {
    register_builtins_with(registry, &Arc::new(Rbac::new()));
}

/// Registers the built-in kinds; the RBAC kinds' admission checks escalation against `rbac`.
pub(crate) fn register_builtins_with(registry: &mut Registry, rbac: &Arc<Rbac>) {
    let mut ns = definition("", "Namespace", "namespaces", Scope::Cluster);
    ns.short_names = vec!["ns".into()];
    ns.status_subresource = true;
    ns.printer_columns = vec![
        column("Status", "string", ".status.phase", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    ns.schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"finalizers": {"type": "array", "items": {"type": "string"}}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    }});

    // metalnetlet reads the Nodes of the metalnet cluster (and puts its finalizer on them); metalnet agents
    // register their node here. Spec and status are kept as given: the server does not act on them.
    let mut node = definition("", "Node", "nodes", Scope::Cluster);
    node.short_names = vec!["no".into()];
    node.status_subresource = true;
    node.strategic_merge_patch = true;
    node.printer_columns = vec![
        column(
            "Status",
            "string",
            ".status.conditions[?(@.type==\"Ready\")].status",
            0,
        ),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    node.schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    }});

    let mut core_event = definition("", "Event", "events", Scope::Namespaced);
    core_event.short_names = vec!["ev".into()];
    core_event.strategic_merge_patch = true;
    core_event.printer_columns = vec![
        column("Last Seen", "date", ".lastTimestamp", 0),
        column("Type", "string", ".type", 0),
        column("Reason", "string", ".reason", 0),
        column("Object", "string", ".involvedObject.name", 0),
        column("Message", "string", ".message", 0),
    ];
    core_event.selectable_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ]
    .iter()
    .map(|f| format!(".{f}"))
    .collect();

    let mut new_event = definition("events.k8s.io", "Event", "events", Scope::Namespaced);
    new_event.short_names = vec!["ev".into()];
    new_event.strategic_merge_patch = true;
    new_event.printer_columns = vec![
        column("Type", "string", ".type", 0),
        column("Reason", "string", ".reason", 0),
        column("Object", "string", ".regarding.name", 0),
        column("Note", "string", ".note", 0),
    ];
    // kube-apiserver's field labels for events.k8s.io/v1 (its conversion maps them onto core's).
    new_event.selectable_fields = [
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reportingController",
        "reason",
        "type",
    ]
    .iter()
    .map(|f| format!(".{f}"))
    .collect();

    let mut lease = definition("coordination.k8s.io", "Lease", "leases", Scope::Namespaced);
    lease.strategic_merge_patch = true;
    lease.printer_columns = vec![
        column("Holder", "string", ".spec.holderIdentity", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    lease.schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "holderIdentity": {"type": "string", "nullable": true},
            "leaseDurationSeconds": {"type": "integer", "nullable": true},
            "acquireTime": {"type": "string", "nullable": true},
            "renewTime": {"type": "string", "nullable": true},
            "leaseTransitions": {"type": "integer", "nullable": true},
            "strategy": {"type": "string", "nullable": true},
            "preferredHolder": {"type": "string", "nullable": true}
        }}
    }});

    let node_strategy = crate::auth::node::restrict(&node, Arc::new(DefaultStrategy));
    let defaults: [(ResourceDefinition, Arc<dyn Strategy>); 5] = [
        (ns, Arc::new(NamespaceStrategy)),
        (node, node_strategy),
        (core_event, Arc::new(EventStrategy::new(EventVersion::Core))),
        (new_event, Arc::new(EventStrategy::new(EventVersion::Events))),
        (lease, Arc::new(DefaultStrategy)),
    ];
    for (def, strategy) in defaults {
        registry
            .register(def, strategy)
            .expect("built-in kinds are registered once");
    }
    register_rbac(registry, rbac);
    register_reviews(registry);
}

/// kube's `PolicyRule` as a structural schema (unknown fields are pruned, as kube's decoder drops them).
fn rule_schema() -> Value {
    let list = json!({"type": "array", "items": {"type": "string"}});
    json!({"type": "object", "properties": {
        "verbs": list, "apiGroups": list, "resources": list, "resourceNames": list, "nonResourceURLs": list
    }})
}

fn register_rbac(registry: &mut Registry, rbac: &Arc<Rbac>) {
    let string = json!({"type": "string"});
    let created = column("Created At", "date", ".metadata.creationTimestamp", 0);
    let mut role = definition(rbac::GROUP, "Role", "roles", Scope::Namespaced);
    role.schema = json!({"type": "object", "properties": {
        "rules": {"type": "array", "items": rule_schema()}
    }});
    role.printer_columns = vec![created.clone()];
    let mut cluster_role = definition(rbac::GROUP, "ClusterRole", "clusterroles", Scope::Cluster);
    cluster_role.schema = json!({"type": "object", "properties": {
        "rules": {"type": "array", "items": rule_schema()},
        "aggregationRule": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    }});
    cluster_role.printer_columns = vec![created];
    let binding_schema = json!({"type": "object", "properties": {
        "roleRef": {"type": "object", "properties": {"apiGroup": string, "kind": string, "name": string}},
        "subjects": {"type": "array", "items": {"type": "object", "properties": {
            "kind": string, "apiGroup": string, "name": string, "namespace": string
        }}}
    }});
    let binding_columns = vec![
        column("Role", "string", ".roleRef.name", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
        column("Users", "string", ".subjects[?(@.kind==\"User\")].name", 1),
        column("Groups", "string", ".subjects[?(@.kind==\"Group\")].name", 1),
        column(
            "ServiceAccounts",
            "string",
            ".subjects[?(@.kind==\"ServiceAccount\")].name",
            1,
        ),
    ];
    let mut binding = definition(rbac::GROUP, "RoleBinding", "rolebindings", Scope::Namespaced);
    binding.schema = binding_schema.clone();
    binding.printer_columns = binding_columns.clone();
    let mut cluster_binding = definition(
        rbac::GROUP,
        "ClusterRoleBinding",
        "clusterrolebindings",
        Scope::Cluster,
    );
    cluster_binding.schema = binding_schema;
    cluster_binding.printer_columns = binding_columns;
    let kinds: [(ResourceDefinition, Arc<dyn Strategy>); 4] = [
        (
            role,
            Arc::new(RoleStrategy {
                rbac: rbac.clone(),
                namespaced: true,
            }),
        ),
        (
            cluster_role,
            Arc::new(RoleStrategy {
                rbac: rbac.clone(),
                namespaced: false,
            }),
        ),
        (
            binding,
            Arc::new(BindingStrategy {
                rbac: rbac.clone(),
                namespaced: true,
            }),
        ),
        (
            cluster_binding,
            Arc::new(BindingStrategy {
                rbac: rbac.clone(),
                namespaced: false,
            }),
        ),
    ];
    for (def, strategy) in kinds {
        registry
            .register(def, strategy)
            .expect("built-in kinds are registered once");
    }
}

/// The review kinds: served for create only (see [`crate::auth::review`]), listed by discovery.
fn register_reviews(registry: &mut Registry) {
    let reviews = [
        (
            review::AUTHORIZATION_GROUP,
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            Scope::Cluster,
        ),
        (
            review::AUTHORIZATION_GROUP,
            "SubjectAccessReview",
            "subjectaccessreviews",
            Scope::Cluster,
        ),
        (
            review::AUTHORIZATION_GROUP,
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            Scope::Namespaced,
        ),
        (
            review::AUTHORIZATION_GROUP,
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            Scope::Cluster,
        ),
        (
            review::AUTHENTICATION_GROUP,
            "SelfSubjectReview",
            "selfsubjectreviews",
            Scope::Cluster,
        ),
    ];
    for (group, kind, plural, scope) in reviews {
        let mut def = definition(group, kind, plural, scope);
        def.schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        registry
            .register(def, Arc::new(DefaultStrategy))
            .expect("built-in kinds are registered once");
    }
}
