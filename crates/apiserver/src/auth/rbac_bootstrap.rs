//! The bootstrap roles and bindings, reconciled at every start as kube-apiserver's RBAC
//! post-start hook does (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`): missing objects are
//! created, missing rules and subjects added; objects annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` are left alone.
//!
//! Besides kube's `cluster-admin`, `system:discovery`, `system:basic-user`,
//! `system:public-info-viewer` and the tenant roles `admin`, `edit` and `view`, each ironnet
//! component gets a ClusterRole named after its user (see [`super::identities`]) with what its
//! controllers read and write. Node agents are authorized by the Node authorizer, not by a role.

use serde_json::{Value, json};

use super::identities::{APINETLET_USER, CONTROLLER_MANAGER_USER, METALNETLET_USER, SIMULATED_NODE_USER};
use super::rbac::{GROUP, PolicyRule};
use super::{ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, SYSTEM_MASTERS};
use crate::error::ApiError;
use crate::handlers::write::Part;
use crate::server::Server;

/// The tenant API group (ironcore networking).
const NETWORKING: &str = "networking.ironcore.dev";
/// The ironcore-net API group.
const APINET: &str = "core.apinet.ironcore.dev";
/// The metalnet API group.
const METALNET: &str = "networking.metalnet.ironcore.dev";
/// The ironcore IPAM API group (`Prefix`), which ironnet may or may not serve.
const IPAM: &str = "ipam.ironcore.dev";
const READ: &[&str] = &["get", "list", "watch"];
const READ_WRITE: &[&str] = &["get", "list", "watch", "update", "patch"];
const ALL_BUT_COLLECTION: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete"];
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// A bootstrap ClusterRole: its name and rules.
#[derive(Clone, Debug)]
pub struct BootstrapRole {
    /// The ClusterRole's name.
    pub name: &'static str,
    /// Its rules.
    pub rules: Vec<PolicyRule>,
    /// The subjects of the ClusterRoleBinding of the same name: `(kind, name)`; none: unbound.
    pub bound_to: Vec<(&'static str, &'static str)>,
}

/// What every component writes besides its own kinds: Events (both APIs) and, for leader
/// election, Leases.
fn component_basics() -> Vec<PolicyRule> {
    vec![
        PolicyRule::resources(
            &["create", "update", "patch"],
            &["", "events.k8s.io"],
            &["events"],
        ),
        PolicyRule::resources(
            &["get", "list", "watch", "create", "update", "patch"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
    ]
}

fn with_basics(mut rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    rules.extend(component_basics());
    rules
}

/// Read access to the tenant API for `view`.
fn view_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::resources(READ, &[NETWORKING], &["*"]),
        PolicyRule::resources(READ, &[""], &["events", "namespaces"]),
        PolicyRule::resources(READ, &["events.k8s.io"], &["events"]),
    ]
}

/// Every bootstrap role.
pub fn roles() -> Vec<BootstrapRole> {
    let edit_verbs = &["create", "update", "patch", "delete", "deletecollection"];
    let mut edit = view_rules();
    edit.push(PolicyRule::resources(edit_verbs, &[NETWORKING], &["*"]));
    let mut admin = edit.clone();
    admin.push(PolicyRule::resources(
        &[
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        ],
        &[GROUP],
        &["roles", "rolebindings"],
    ));
    admin.push(PolicyRule::resources(
        &["create"],
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
    ));
    vec![
        BootstrapRole {
            name: "cluster-admin",
            rules: vec![
                PolicyRule::resources(&["*"], &["*"], &["*"]),
                PolicyRule::urls(&["*"], &["*"]),
            ],
            bound_to: vec![("Group", SYSTEM_MASTERS)],
        },
        BootstrapRole {
            name: "system:discovery",
            rules: vec![PolicyRule::urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/openapi",
                    "/openapi/*",
                    "/version",
                    "/version/",
                ],
            )],
            bound_to: vec![("Group", ALL_AUTHENTICATED)],
        },
        BootstrapRole {
            name: "system:basic-user",
            rules: vec![
                PolicyRule::resources(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                PolicyRule::resources(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
            bound_to: vec![("Group", ALL_AUTHENTICATED)],
        },
        BootstrapRole {
            name: "system:public-info-viewer",
            rules: vec![PolicyRule::urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
            bound_to: vec![("Group", ALL_AUTHENTICATED), ("Group", ALL_UNAUTHENTICATED)],
        },
        BootstrapRole {
            name: "admin",
            rules: admin,
            bound_to: vec![],
        },
        BootstrapRole {
            name: "edit",
            rules: edit,
            bound_to: vec![],
        },
        BootstrapRole {
            name: "view",
            rules: view_rules(),
            bound_to: vec![],
        },
        // The ironcore networking controllers (LB routing, ephemeral VIPs and prefixes, peering,
        // protection, release) and the ironcore-net controllers (NAT, LB instances, scheduler,
        // daemon sets, policy rules, allocation GC) create, patch and delete objects of both
        // groups and write their status; the ephemeral prefix controller owns ipam Prefixes.
        BootstrapRole {
            name: CONTROLLER_MANAGER_USER,
            rules: with_basics(vec![
                PolicyRule::resources(ALL_BUT_COLLECTION, &[NETWORKING], &["*"]),
                PolicyRule::resources(ALL_BUT_COLLECTION, &[APINET], &["*"]),
                PolicyRule::resources(ALL_BUT_COLLECTION, &[IPAM], &["prefixes"]),
            ]),
            bound_to: vec![("User", CONTROLLER_MANAGER_USER)],
        },
        // apinetlet mirrors tenant objects into ironcore-net: it reads the tenant kinds and
        // writes their finalizers and status, owns the ironcore-net objects, and creates the
        // ironcore-net namespace it works in; it reads ipam Prefixes for prefix sources.
        BootstrapRole {
            name: APINETLET_USER,
            rules: with_basics(vec![
                PolicyRule::resources(READ_WRITE, &[NETWORKING], &["*"]),
                PolicyRule::resources(ALL_BUT_COLLECTION, &[APINET], &["*"]),
                PolicyRule::resources(&["get", "create"], &[""], &["namespaces"]),
                PolicyRule::resources(READ, &[IPAM], &["prefixes"]),
            ]),
            bound_to: vec![("User", APINETLET_USER)],
        },
        // metalnetlet realises ironcore-net objects as metalnet objects per node (server-side
        // apply, delete), registers ironcore-net Nodes for the metalnet cluster's Nodes (keeping
        // its finalizer on those) and writes status back.
        BootstrapRole {
            name: METALNETLET_USER,
            rules: with_basics(vec![
                PolicyRule::resources(ALL_BUT_COLLECTION, &[APINET], &["*"]),
                PolicyRule::resources(ALL_BUT_COLLECTION, &[METALNET], &["*"]),
                PolicyRule::resources(READ_WRITE, &[""], &["nodes"]),
            ]),
            bound_to: vec![("User", METALNETLET_USER)],
        },
        // The simulated node realises what is placed on its node by writing ironcore-net status.
        BootstrapRole {
            name: SIMULATED_NODE_USER,
            rules: with_basics(vec![PolicyRule::resources(READ_WRITE, &[APINET], &["*"])]),
            bound_to: vec![("User", SIMULATED_NODE_USER)],
        },
    ]
}

fn role_object(role: &BootstrapRole) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "ClusterRole",
        "metadata": {
            "name": role.name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"},
        },
        "rules": role.rules,
    })
}

fn subjects(role: &BootstrapRole) -> Vec<Value> {
    role.bound_to
        .iter()
        .map(|(kind, name)| json!({"kind": kind, "apiGroup": GROUP, "name": name}))
        .collect()
}

fn binding_object(role: &BootstrapRole) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": role.name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role.name},
        "subjects": subjects(role),
    })
}

/// Appends to `current[field]` every element of `wanted` it lacks; whether anything was added.
fn add_missing(current: &mut Value, field: &str, wanted: &[Value]) -> bool {
    let list = current
        .as_object_mut()
        .map(|o| o.entry(field).or_insert_with(|| json!([])));
    let Some(Value::Array(list)) = list else {
        return false;
    };
    let mut changed = false;
    for w in wanted {
        if !list.contains(w) {
            list.push(w.clone());
            changed = true;
        }
    }
    changed
}

impl Server {
    /// Creates or completes the bootstrap roles and bindings; returns the highest store revision
    /// written (0: nothing changed).
    pub(crate) async fn reconcile_bootstrap_roles(&self) -> Result<u64, ApiError> {
        let mut revision = 0;
        for role in roles() {
            let rules: Vec<Value> = role
                .rules
                .iter()
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .collect();
            revision = revision.max(
                self.reconcile_one("clusterroles", role_object(&role), "rules", &rules)
                    .await?,
            );
            if !role.bound_to.is_empty() {
                let subjects = subjects(&role);
                revision = revision.max(
                    self.reconcile_one(
                        "clusterrolebindings",
                        binding_object(&role),
                        "subjects",
                        &subjects,
                    )
                    .await?,
                );
            }
        }
        Ok(revision)
    }

    async fn reconcile_one(
        &self,
        plural: &str,
        obj: Value,
        field: &str,
        wanted: &[Value],
    ) -> Result<u64, ApiError> {
        let Some(kind) = self.registry.get(GROUP, "v1", plural).cloned() else {
            return Ok(0);
        };
        let name = crate::meta::name(&obj).to_owned();
        let rv = |o: &Value| {
            crate::meta::meta_str(o, "resourceVersion")
                .parse::<u64>()
                .unwrap_or(0)
        };
        match self.store.get(&kind.def.key(None, &name), None).await? {
            None => match self
                .create_object(&kind, None, obj, false, Some("ironnet-apiserver"))
                .await
            {
                Ok(created) => Ok(rv(&created)),
                Err(e) if e.reason == "AlreadyExists" => Ok(0),
                Err(e) => Err(e),
            },
            Some(_) => {
                let mut changed = false;
                let updated = self
                    .update_object(
                        &kind,
                        None,
                        &name,
                        Part::Main,
                        false,
                        Some("ironnet-apiserver"),
                        &mut |cur| {
                            let mut next = cur.clone();
                            let autoupdate = cur
                                .pointer(&format!(
                                    "/metadata/annotations/{}",
                                    AUTOUPDATE.replace('/', "~1")
                                ))
                                .and_then(Value::as_str);
                            changed = autoupdate != Some("false") && add_missing(&mut next, field, wanted);
                            Ok(next)
                        },
                    )
                    .await?;
                Ok(if changed { rv(&updated.object) } else { 0 })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::{KEY_PREFIX, Rbac};
    use crate::auth::{Attributes, UserInfo};

    fn loaded() -> Rbac {
        let rbac = Rbac::new();
        let mut changes = Vec::new();
        for role in roles() {
            changes.push((
                format!("{KEY_PREFIX}clusterroles/{}", role.name),
                Some(role_object(&role)),
            ));
            if !role.bound_to.is_empty() {
                changes.push((
                    format!("{KEY_PREFIX}clusterrolebindings/{}", role.name),
                    Some(binding_object(&role)),
                ));
            }
        }
        rbac.apply(true, &changes);
        rbac
    }

    fn can(rbac: &Rbac, user: &str, verb: &str, group: &str, resource: &str, sub: &str) -> bool {
        let attrs = Attributes {
            user: UserInfo {
                name: user.into(),
                groups: vec![ALL_AUTHENTICATED.into()],
                ..Default::default()
            },
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            api_version: "v1alpha1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "default".into(),
            name: "x".into(),
            path: String::new(),
            field_selector: String::new(),
        };
        rbac.allows(&attrs).is_some()
    }

    #[test]
    fn component_roles_grant_what_each_component_does_and_no_more() {
        let rbac = loaded();
        let cm = CONTROLLER_MANAGER_USER;
        assert!(can(&rbac, cm, "create", NETWORKING, "virtualips", ""));
        assert!(can(&rbac, cm, "patch", APINET, "natgateways", "status"));
        assert!(can(&rbac, cm, "delete", IPAM, "prefixes", ""));
        assert!(can(&rbac, cm, "update", "coordination.k8s.io", "leases", ""));
        assert!(!can(&rbac, cm, "get", METALNET, "networkinterfaces", ""));
        assert!(!can(&rbac, cm, "deletecollection", NETWORKING, "networks", ""));
        assert!(!can(&rbac, cm, "list", GROUP, "clusterroles", ""));

        assert!(can(
            &rbac,
            APINETLET_USER,
            "patch",
            NETWORKING,
            "networks",
            "status"
        ));
        assert!(!can(&rbac, APINETLET_USER, "delete", NETWORKING, "networks", ""));
        assert!(can(&rbac, APINETLET_USER, "create", APINET, "networks", ""));
        assert!(can(&rbac, APINETLET_USER, "create", "", "namespaces", ""));
        assert!(!can(&rbac, APINETLET_USER, "create", IPAM, "prefixes", ""));

        assert!(can(
            &rbac,
            METALNETLET_USER,
            "patch",
            METALNET,
            "networkinterfaces",
            ""
        ));
        assert!(can(&rbac, METALNETLET_USER, "patch", "", "nodes", ""));
        assert!(!can(&rbac, METALNETLET_USER, "get", NETWORKING, "networks", ""));

        assert!(can(
            &rbac,
            SIMULATED_NODE_USER,
            "patch",
            APINET,
            "networkinterfaces",
            "status"
        ));
        assert!(!can(
            &rbac,
            SIMULATED_NODE_USER,
            "create",
            APINET,
            "networkinterfaces",
            ""
        ));

        // A node agent gets nothing from RBAC beyond discovery and self reviews.
        let node = "system:node:hv-1";
        assert!(!can(&rbac, node, "get", METALNET, "networkinterfaces", ""));
        assert!(!can(&rbac, node, "get", NETWORKING, "networks", ""));
        assert!(can(
            &rbac,
            node,
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            ""
        ));
    }
}
