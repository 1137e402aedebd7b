//! The Node authorizer and NodeRestriction admission (kube's `plugin/pkg/auth/authorizer/node`
//! and `plugin/pkg/admission/noderestriction`), for the objects a node agent (metalnet) uses.
//!
//! A node agent authenticates as `system:node:<node>` in `system:nodes`. It may:
//! - read and watch the metalnet NetworkInterfaces and LoadBalancers bound to its node
//!   (`spec.nodeName`): `get` of one it is bound to, `list`/`watch` only with the field selector
//!   `spec.nodeName=<node>` (as kube's Node authorizer allows pods only with
//!   `spec.nodeName=<node>`), and update/patch them and their status;
//! - read, watch and patch metalnet Networks (shared by every node; it keeps its own finalizer
//!   and the peering status there), never create or delete them;
//! - get, create, update and delete its own core/v1 Node, list/watch it with
//!   `metadata.name=<node>`;
//! - write Events (kube's static node rules).
//!
//! Everything else is left to RBAC, whose bootstrap roles grant nodes nothing more (no tenant
//! object is readable). NodeRestriction then checks the objects written: a node cannot create or
//! rename a Node other than its own, move an interface or load balancer to another node, or
//! change a Network beyond its own finalizer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use ironnet_store::Store;
use parking_lot::RwLock;
use serde_json::Value;

use super::identities::{NODES_GROUP, node_name};
use super::mirror::Mirror;
use super::rbac::PolicyRule;
use super::{Attributes, Authorizer, Decision, UserInfo};
use crate::definition::{PrinterColumn, ResourceDefinition};
use crate::error::ApiError;
use crate::strategy::{AdmissionContext, SideEffects, Strategy};

/// The metalnet API group.
pub const METALNET_GROUP: &str = "networking.metalnet.ironcore.dev";
/// The store key prefix of the metalnet objects the Node authorizer indexes.
pub(crate) const KEY_PREFIX: &str = "/registry/networking.metalnet.ironcore.dev/";
const BOUND_KINDS: [&str; 2] = ["networkinterfaces", "loadbalancers"];

/// The node a user is the agent of: `system:node:<node>` in `system:nodes`.
pub fn node_of(user: &UserInfo) -> Option<&str> {
    if !user.in_group(NODES_GROUP) {
        return None;
    }
    node_name(&user.name)
}

/// Which node each metalnet NetworkInterface and LoadBalancer is bound to, mirrored from the store.
#[derive(Default)]
pub struct NodeGraph {
    /// `(plural, namespace, name)` → `spec.nodeName`.
    bound: RwLock<HashMap<(String, String, String), String>>,
}

impl std::fmt::Debug for NodeGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeGraph").finish_non_exhaustive()
    }
}

impl NodeGraph {
    /// An empty graph.
    pub fn new() -> Self {
        NodeGraph::default()
    }

    /// Applies a batch of store changes (`None`: deleted); `reset` drops everything first.
    pub(crate) fn apply(&self, reset: bool, changes: &[(String, Option<Value>)]) {
        let mut bound = self.bound.write();
        if reset {
            bound.clear();
        }
        for (key, obj) in changes {
            let Some(rest) = key.strip_prefix(KEY_PREFIX) else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            let [plural, ns, name] = parts[..] else {
                continue;
            };
            if !BOUND_KINDS.contains(&plural) {
                continue;
            }
            let id = (plural.to_owned(), ns.to_owned(), name.to_owned());
            match obj
                .as_ref()
                .and_then(|o| o.pointer("/spec/nodeName"))
                .and_then(Value::as_str)
            {
                Some(node) => {
                    bound.insert(id, node.to_owned());
                }
                None => {
                    bound.remove(&id);
                }
            }
        }
    }

    fn bound_to(&self, plural: &str, namespace: &str, name: &str) -> Option<String> {
        self.bound
            .read()
            .get(&(plural.to_owned(), namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

/// Whether a field selector restricts `field` to exactly `value` (one of its `,`-joined terms
/// is `field=value` or `field==value`).
fn selects(selector: &str, field: &str, value: &str) -> bool {
    selector.split(',').any(|term| {
        let term = term.trim();
        term.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')))
            .is_some_and(|v| v == value)
    })
}

/// kube's static node rules: what every node may do besides the objects of its node.
fn node_rules() -> [PolicyRule; 1] {
    [PolicyRule::resources(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )]
}

/// How long a request about an object not (yet) bound to the asking node waits for the graph to apply the
/// object's latest write before it is decided on the graph as it is.
pub(crate) const CATCH_UP: Duration = Duration::from_secs(2);

/// The Node authorizer (see the module documentation).
pub struct NodeAuthorizer {
    graph: Arc<NodeGraph>,
    /// How far the graph has applied the store's changes, and the store: the graph follows the store by a
    /// watch of its own, so a node agent that learned of an interface from its watch may ask about it before
    /// the graph has seen it.
    catch_up: Option<(Mirror, Arc<dyn Store>)>,
}

impl std::fmt::Debug for NodeAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAuthorizer").finish_non_exhaustive()
    }
}

impl NodeAuthorizer {
    /// An authorizer deciding from `graph`; `catch_up` (the graph's mirror and its store) lets a request about
    /// an object the graph does not bind to the node wait until the graph has applied that object's latest
    /// write (at most [`CATCH_UP`]).
    pub(crate) fn new(graph: Arc<NodeGraph>, catch_up: Option<(Mirror, Arc<dyn Store>)>) -> Self {
        NodeAuthorizer { graph, catch_up }
    }

    /// Whether `attrs` asks for one bound object by name, which the graph decides.
    fn names_bound_object(attrs: &Attributes) -> bool {
        attrs.resource_request
            && attrs.api_group == METALNET_GROUP
            && BOUND_KINDS.contains(&attrs.resource.as_str())
            && matches!(attrs.verb.as_str(), "get" | "update" | "patch")
    }

    /// Waits until the graph has applied the latest write of the object `attrs` names; `false` if there is
    /// none (nothing to wait for) or the graph did not get there in time.
    async fn caught_up(&self, attrs: &Attributes) -> bool {
        let Some((mirror, store)) = &self.catch_up else {
            return false;
        };
        let key = format!(
            "{KEY_PREFIX}{}/{}/{}",
            attrs.resource, attrs.namespace, attrs.name
        );
        match store.get(&key, None).await {
            Ok(Some(kv)) => mirror.wait_for(kv.mod_revision, CATCH_UP).await,
            _ => false,
        }
    }

    fn decide(&self, node: &str, attrs: &Attributes) -> Decision {
        let allow = || Decision::Allow(String::new());
        let no_relationship = || {
            Decision::NoOpinion(format!(
                "no relationship found between node '{node}' and this object"
            ))
        };
        if !attrs.resource_request {
            return Decision::NoOpinion(String::new());
        }
        let verb = attrs.verb.as_str();
        match (attrs.api_group.as_str(), attrs.resource.as_str()) {
            ("", "nodes") => {
                let own = match verb {
                    "list" | "watch" => selects(&attrs.field_selector, "metadata.name", node),
                    // The name of a create is in the body: NodeRestriction checks it.
                    "create" => attrs.subresource.is_empty(),
                    "get" | "update" | "patch" | "delete" => attrs.name == node,
                    _ => false,
                };
                if own {
                    allow()
                } else {
                    Decision::NoOpinion(format!("node '{node}' can only access its own Node object"))
                }
            }
            (METALNET_GROUP, "networks") => match verb {
                "get" | "list" | "watch" | "update" | "patch" => allow(),
                _ => no_relationship(),
            },
            (METALNET_GROUP, plural) if BOUND_KINDS.contains(&plural) => match verb {
                "list" | "watch" if selects(&attrs.field_selector, "spec.nodeName", node) => allow(),
                "list" | "watch" => Decision::NoOpinion(format!(
                    "can only list/watch {plural} with the field selector spec.nodeName={node}"
                )),
                "get" | "update" | "patch"
                    if self
                        .graph
                        .bound_to(plural, &attrs.namespace, &attrs.name)
                        .as_deref()
                        == Some(node) =>
                {
                    allow()
                }
                _ => no_relationship(),
            },
            _ if node_rules().iter().any(|r| r.allows(attrs)) => allow(),
            _ => Decision::NoOpinion(String::new()),
        }
    }
}

#[async_trait::async_trait]
impl Authorizer for NodeAuthorizer {
    async fn authorize(&self, attrs: &Attributes) -> Decision {
        let Some(node) = node_of(&attrs.user) else {
            return Decision::NoOpinion(String::new());
        };
        let decision = self.decide(node, attrs);
        if matches!(decision, Decision::NoOpinion(_))
            && Self::names_bound_object(attrs)
            && self.caught_up(attrs).await
        {
            return self.decide(node, attrs);
        }
        decision
    }
}

/// Wraps the strategy of a kind a node may write with NodeRestriction admission; other kinds'
/// strategies are returned as they are.
pub(crate) fn restrict(def: &ResourceDefinition, strategy: Arc<dyn Strategy>) -> Arc<dyn Strategy> {
    let restricted = match (def.group.as_str(), def.plural.as_str()) {
        ("", "nodes") => Restricted::Node,
        (METALNET_GROUP, "networks") => Restricted::Network,
        (METALNET_GROUP, p) if BOUND_KINDS.contains(&p) => Restricted::Bound,
        _ => return strategy,
    };
    Arc::new(NodeRestriction {
        inner: strategy,
        restricted,
        gr: crate::GroupResource::new(&def.group, &def.plural),
        kind: def.kind.clone(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restricted {
    Node,
    Network,
    Bound,
}

struct NodeRestriction {
    inner: Arc<dyn Strategy>,
    restricted: Restricted,
    gr: crate::GroupResource,
    kind: String,
}

fn node_name_of(obj: &Value) -> &str {
    obj.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The network finalizer metalnet keeps on a Network for its node.
fn network_finalizer(node: &str) -> String {
    format!("{METALNET_GROUP}/network-{node}")
}

impl NodeRestriction {
    fn forbidden(&self, node: &str, obj: &Value, why: &str) -> ApiError {
        ApiError::forbidden(
            &self.gr,
            crate::meta::name(obj),
            &format!("node \"{node}\" {why}"),
        )
    }

    fn check(&self, node: &str, new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        match self.restricted {
            Restricted::Node => {
                if crate::meta::name(new) != node {
                    return Err(self.forbidden(node, new, "is not allowed to modify node"));
                }
            }
            Restricted::Bound => {
                if node_name_of(new) != node {
                    return Err(self.forbidden(
                        node,
                        new,
                        &format!("is not allowed to bind objects to node \"{}\"", node_name_of(new)),
                    ));
                }
                if let Some(old) = old
                    && node_name_of(old) != node
                {
                    return Err(self.forbidden(
                        node,
                        new,
                        "is not allowed to modify objects of another node",
                    ));
                }
            }
            Restricted::Network => {
                let Some(old) = old else {
                    return Err(self.forbidden(node, new, "is not allowed to create networks"));
                };
                if new.get("spec") != old.get("spec")
                    || new.pointer("/metadata/labels") != old.pointer("/metadata/labels")
                    || new.pointer("/metadata/annotations") != old.pointer("/metadata/annotations")
                {
                    return Err(self.forbidden(
                        node,
                        new,
                        "may only change its own finalizer and the status of a network",
                    ));
                }
                let own = network_finalizer(node);
                let others = |o: &Value| {
                    crate::meta::finalizers(o)
                        .into_iter()
                        .filter(|f| *f != own)
                        .collect::<Vec<_>>()
                };
                if others(new) != others(old) {
                    return Err(self.forbidden(node, new, "may only change its own finalizer on a network"));
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Strategy for NodeRestriction {
    fn default(&self, obj: &mut Value) {
        self.inner.default(obj);
    }

    fn validate_create(&self, obj: &Value) -> ErrorList {
        self.inner.validate_create(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        self.inner.validate_update(new, old)
    }

    fn validate_status_update(&self, new: &Value, old: &Value) -> ErrorList {
        self.inner.validate_status_update(new, old)
    }

    async fn validate_delete(&self, ctx: &AdmissionContext, obj: &Value) -> Result<ErrorList, ApiError> {
        if let Some(node) = ctx.user().and_then(node_of)
            && self.restricted != Restricted::Node
        {
            let errs: ErrorList = FieldError::forbidden(
                &Path::new("metadata"),
                format!("node \"{node}\" is not allowed to delete {}", self.kind),
            )
            .into();
            return Ok(errs);
        }
        self.inner.validate_delete(ctx, obj).await
    }

    fn printer_cell(&self, column: &PrinterColumn, obj: &Value) -> Option<Value> {
        self.inner.printer_cell(column, obj)
    }

    async fn admit_create(&self, ctx: &AdmissionContext, obj: &mut Value) -> Result<SideEffects, ApiError> {
        if let Some(node) = ctx.user().and_then(node_of) {
            self.check(node, obj, None)?;
        }
        self.inner.admit_create(ctx, obj).await
    }

    async fn admit_update(
        &self,
        ctx: &AdmissionContext,
        new: &mut Value,
        old: &Value,
    ) -> Result<SideEffects, ApiError> {
        if let Some(node) = ctx.user().and_then(node_of) {
            self.check(node, new, Some(old))?;
        }
        self.inner.admit_update(ctx, new, old).await
    }

    async fn admit_delete(&self, ctx: &AdmissionContext, old: &Value) -> Result<SideEffects, ApiError> {
        self.inner.admit_delete(ctx, old).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_store::StoreExt;
    use serde_json::json;
    use std::sync::{Condvar, Mutex};

    fn patch_of(node: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo {
                name: format!("system:node:{node}"),
                groups: vec![NODES_GROUP.to_owned()],
                ..UserInfo::default()
            },
            verb: "patch".into(),
            resource_request: true,
            api_group: METALNET_GROUP.into(),
            api_version: "v1alpha1".into(),
            resource: "networkinterfaces".into(),
            subresource: String::new(),
            namespace: "default".into(),
            name: name.into(),
            path: String::new(),
            field_selector: String::new(),
        }
    }

    /// A node agent learns of a new interface from its own watch, which may run ahead of the graph's: its
    /// first request about the interface waits for the graph instead of being denied (metalnet got 70 such
    /// denials, each a retry later, in the 1,000-interface lab).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_about_a_new_interface_waits_for_the_graph_to_bind_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            ironnet_store::embedded::EmbeddedStore::open(dir.path().join("s.redb"), Default::default())
                .unwrap(),
        );
        let graph = Arc::new(NodeGraph::new());
        // Holds the graph's watch back: changes wait in the sink until the gate opens.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (held, sink) = (gate.clone(), graph.clone());
        let (mirror, task) = super::super::mirror::start(
            store.clone(),
            KEY_PREFIX.to_owned(),
            Arc::new(move |reset, changes| {
                let (open, opened) = &*held;
                let mut is_open = open.lock().unwrap();
                while !reset && !*is_open {
                    is_open = opened.wait(is_open).unwrap();
                }
                sink.apply(reset, changes);
            }),
        )
        .await
        .unwrap();
        let auth = NodeAuthorizer::new(graph, Some((mirror, store.clone())));
        let nic = json!({"spec": {"nodeName": "hv-1"}});
        store
            .put(
                &format!("{KEY_PREFIX}networkinterfaces/default/nic"),
                serde_json::to_vec(&nic).unwrap().into(),
            )
            .await
            .unwrap();

        let own = patch_of("hv-1", "nic");
        let asked = auth.authorize(&own);
        tokio::pin!(asked);
        assert!(futures::poll!(&mut asked).is_pending(), "waits for the graph");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        assert!(matches!(asked.await, Decision::Allow(_)));
        // Bound to another node, and absent: denied as before.
        assert!(matches!(
            auth.authorize(&patch_of("hv-2", "nic")).await,
            Decision::NoOpinion(_)
        ));
        assert!(matches!(
            auth.authorize(&patch_of("hv-1", "absent")).await,
            Decision::NoOpinion(_)
        ));
        task.abort();
    }

    #[test]
    fn field_selectors_must_pin_the_node() {
        assert!(selects("spec.nodeName=hv-1", "spec.nodeName", "hv-1"));
        assert!(selects(
            "metadata.namespace=x,spec.nodeName==hv-1",
            "spec.nodeName",
            "hv-1"
        ));
        assert!(!selects("spec.nodeName=hv-2", "spec.nodeName", "hv-1"));
        assert!(!selects("spec.nodeName!=hv-1", "spec.nodeName", "hv-1"));
        assert!(!selects("", "spec.nodeName", "hv-1"));
        assert!(!selects("spec.nodeName=hv-10", "spec.nodeName", "hv-1"));
    }
}
