//! Kinds the server itself serves: core/v1 Namespace, Node and Event, events.k8s.io/v1 Event and
//! coordination.k8s.io/v1 Lease.

use std::sync::Arc;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use serde_json::{Value, json};

use crate::definition::{PrinterColumn, ResourceDefinition, Scope};
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

/// Registers the built-in kinds.
pub(crate) fn register_builtins(registry: &mut Registry) {
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
    new_event.selectable_fields = [
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
        "regarding.uid",
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

    let defaults: [(ResourceDefinition, Arc<dyn Strategy>); 5] = [
        (ns, Arc::new(NamespaceStrategy)),
        (node, Arc::new(DefaultStrategy)),
        (core_event, Arc::new(DefaultStrategy)),
        (new_event, Arc::new(DefaultStrategy)),
        (lease, Arc::new(DefaultStrategy)),
    ];
    for (def, strategy) in defaults {
        registry
            .register(def, strategy)
            .expect("built-in kinds are registered once");
    }
}
