//! Role-based access control as kube-apiserver has it (`plugin/pkg/auth/authorizer/rbac`):
//! policy rules, subjects, the rule index kept current from the store, the authorizer, the rule
//! listing of `SelfSubjectRulesReview`, and the coverage check that prevents privilege escalation.
//!
//! Every request is decided from memory: [`Rbac`] mirrors the four RBAC kinds by watching the
//! store, so authorizing costs a read lock and a walk over the bindings that apply, never a store
//! read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Attributes, Authorizer, Decision, SYSTEM_MASTERS, UserInfo};

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";
/// The store key prefix of every RBAC object.
pub(crate) const KEY_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// One rule of a Role or ClusterRole (`rbac/v1.PolicyRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs (`get`, `list`, ..., or `*`).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups (`""` is the core group, `*` all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource` or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names the rule is limited to (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/apis/*`), for cluster roles only.
    #[serde(default, rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    /// A resource rule.
    pub fn resources(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        PolicyRule {
            verbs: strings(verbs),
            api_groups: strings(groups),
            resources: strings(resources),
            ..Default::default()
        }
    }

    /// A non-resource rule.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Self {
        PolicyRule {
            verbs: strings(verbs),
            non_resource_urls: strings(urls),
            ..Default::default()
        }
    }

    /// The same rule limited to `names`.
    pub fn named(mut self, names: &[&str]) -> Self {
        self.resource_names = strings(names);
        self
    }

    /// Whether this rule allows `attrs` (kube's `RuleAllows`).
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !verb_matches(&self.verbs, &attrs.verb) {
            return false;
        }
        if !attrs.resource_request {
            return self.non_resource_urls.iter().any(|u| url_matches(u, &attrs.path));
        }
        let combined;
        let resource = if attrs.subresource.is_empty() {
            attrs.resource.as_str()
        } else {
            combined = format!("{}/{}", attrs.resource, attrs.subresource);
            combined.as_str()
        };
        self.api_groups.iter().any(|g| g == "*" || *g == attrs.api_group)
            && resource_matches(&self.resources, resource, &attrs.subresource)
            && (self.resource_names.is_empty() || self.resource_names.contains(&attrs.name))
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}

fn verb_matches(verbs: &[String], verb: &str) -> bool {
    verbs.iter().any(|v| v == "*" || v == verb)
}

/// kube's `ResourceMatches`: `*`, an exact `resource[/subresource]`, or `*/subresource`.
fn resource_matches(rule: &[String], combined: &str, subresource: &str) -> bool {
    rule.iter().any(|r| {
        r == "*" || r == combined || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// kube's `NonResourceURLMatches`: `*`, exact, or a prefix ending in `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Who a binding grants its role to (`rbac/v1.Subject`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// The user, group or service account name.
    pub name: String,
    /// The service account's namespace (defaults to a RoleBinding's own).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `rbac.authorization.k8s.io` for users and groups, empty for service accounts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
}

impl Subject {
    /// kube's `appliesToUser`. `binding_namespace` is the RoleBinding's namespace (empty for a
    /// ClusterRoleBinding), the default namespace of a service account subject.
    fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.in_group(&self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                user.name
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    .is_some_and(|(n, name)| n == ns && name == self.name)
            }
            _ => false,
        }
    }
}

/// The role a binding grants (`rbac/v1.RoleRef`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// Always `rbac.authorization.k8s.io`.
    #[serde(default)]
    pub api_group: String,
    /// `Role` or `ClusterRole`.
    #[serde(default)]
    pub kind: String,
    /// The role's name.
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug)]
struct Binding {
    name: String,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// The RBAC objects of the store, by kind and name.
#[derive(Default)]
struct Index {
    roles: HashMap<String, HashMap<String, Arc<[PolicyRule]>>>,
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    role_bindings: HashMap<String, BTreeMap<String, Binding>>,
    cluster_role_bindings: BTreeMap<String, Binding>,
}

/// Where a store key points: `(plural, namespace, name)`.
fn parse_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let mut parts = rest.split('/');
    let plural = parts.next()?;
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => Some((plural, "", name)),
        (Some(ns), Some(name), None) => Some((plural, ns, name)),
        _ => None,
    }
}

fn rules_of(obj: &Value) -> Arc<[PolicyRule]> {
    obj.get("rules")
        .cloned()
        .and_then(|r| serde_json::from_value::<Vec<PolicyRule>>(r).ok())
        .unwrap_or_default()
        .into()
}

fn binding_of(name: &str, obj: &Value) -> Binding {
    Binding {
        name: name.to_owned(),
        role_ref: obj
            .get("roleRef")
            .cloned()
            .and_then(|r| serde_json::from_value(r).ok())
            .unwrap_or_default(),
        subjects: obj
            .get("subjects")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default(),
    }
}

impl Index {
    fn apply(&mut self, key: &str, obj: Option<&Value>) {
        let Some((plural, ns, name)) = parse_key(key) else {
            return;
        };
        match (plural, obj) {
            ("roles", Some(o)) => {
                self.roles
                    .entry(ns.to_owned())
                    .or_default()
                    .insert(name.to_owned(), rules_of(o));
            }
            ("roles", None) => {
                if let Some(m) = self.roles.get_mut(ns) {
                    m.remove(name);
                }
            }
            ("clusterroles", Some(o)) => {
                self.cluster_roles.insert(name.to_owned(), rules_of(o));
            }
            ("clusterroles", None) => {
                self.cluster_roles.remove(name);
            }
            ("rolebindings", Some(o)) => {
                self.role_bindings
                    .entry(ns.to_owned())
                    .or_default()
                    .insert(name.to_owned(), binding_of(name, o));
            }
            ("rolebindings", None) => {
                if let Some(m) = self.role_bindings.get_mut(ns) {
                    m.remove(name);
                }
            }
            ("clusterrolebindings", Some(o)) => {
                self.cluster_role_bindings
                    .insert(name.to_owned(), binding_of(name, o));
            }
            ("clusterrolebindings", None) => {
                self.cluster_role_bindings.remove(name);
            }
            _ => {}
        }
    }

    /// The rules of the role a binding in `namespace` refers to (`None`: it does not exist).
    fn role_rules(&self, namespace: &str, role_ref: &RoleRef) -> Option<&Arc<[PolicyRule]>> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            "Role" if !namespace.is_empty() => self.roles.get(namespace)?.get(&role_ref.name),
            _ => None,
        }
    }

    /// Visits every rule that applies to `user` in `namespace` (cluster-wide bindings, then the
    /// namespace's), kube's `VisitRulesFor`; the visitor returns `true` to stop. The second
    /// argument describes where the rule comes from.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        visitor: &mut dyn FnMut(&PolicyRule, &dyn Fn() -> String) -> bool,
    ) {
        for b in self.cluster_role_bindings.values() {
            let Some(subject) = b.subjects.iter().find(|s| s.applies_to(user, "")) else {
                continue;
            };
            let Some(rules) = self.role_rules("", &b.role_ref) else {
                continue;
            };
            let source = || {
                format!(
                    "ClusterRoleBinding \"{}\" of {} \"{}\" to {} \"{}\"",
                    b.name, b.role_ref.kind, b.role_ref.name, subject.kind, subject.name
                )
            };
            for rule in rules.iter() {
                if visitor(rule, &source) {
                    return;
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        let Some(bindings) = self.role_bindings.get(namespace) else {
            return;
        };
        for b in bindings.values() {
            let Some(subject) = b.subjects.iter().find(|s| s.applies_to(user, namespace)) else {
                continue;
            };
            let Some(rules) = self.role_rules(namespace, &b.role_ref) else {
                continue;
            };
            let source = || {
                format!(
                    "RoleBinding \"{}/{}\" of {} \"{}\" to {} \"{}\"",
                    b.name, namespace, b.role_ref.kind, b.role_ref.name, subject.kind, subject.name
                )
            };
            for rule in rules.iter() {
                if visitor(rule, &source) {
                    return;
                }
            }
        }
    }
}

/// The in-memory RBAC state and authorizer. Shared by the authorizer, the review endpoints and
/// the RBAC kinds' admission (escalation checks); fed by [`super::mirror`] from the store.
#[derive(Default)]
pub struct Rbac {
    index: RwLock<Index>,
    /// Whether RBAC authorization is on: only then are escalation checks enforced.
    enabled: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Rbac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rbac").finish_non_exhaustive()
    }
}

impl Rbac {
    /// An empty, disabled RBAC state.
    pub fn new() -> Self {
        Rbac::default()
    }

    /// Whether RBAC authorization is on.
    pub fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn enable(&self) {
        self.enabled.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Applies a batch of store changes (`None`: deleted); `reset` drops everything first.
    pub(crate) fn apply(&self, reset: bool, changes: &[(String, Option<Value>)]) {
        let mut index = self.index.write();
        if reset {
            *index = Index::default();
        }
        for (key, obj) in changes {
            index.apply(key, obj.as_ref());
        }
    }

    /// Whether RBAC alone (plus `system:masters`) allows `attrs`, and the rule's origin.
    pub fn allows(&self, attrs: &Attributes) -> Option<String> {
        if attrs.user.in_group(SYSTEM_MASTERS) {
            return Some(format!("member of group \"{SYSTEM_MASTERS}\""));
        }
        let mut found = None;
        self.index
            .read()
            .visit(&attrs.user, &attrs.namespace, &mut |rule, source| {
                if rule.allows(attrs) {
                    found = Some(source());
                    true
                } else {
                    false
                }
            });
        found
    }

    /// Every rule that applies to `user` in `namespace` (kube's `RulesFor`), for
    /// `SelfSubjectRulesReview` and escalation checks.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        if user.in_group(SYSTEM_MASTERS) {
            rules.push(PolicyRule::resources(&["*"], &["*"], &["*"]));
            rules.push(PolicyRule::urls(&["*"], &["*"]));
            return rules;
        }
        self.index.read().visit(user, namespace, &mut |rule, _| {
            rules.push(rule.clone());
            false
        });
        rules
    }

    /// The rules of the role a binding in `namespace` refers to, if it exists.
    pub fn role_rules(&self, namespace: &str, role_ref: &RoleRef) -> Option<Vec<PolicyRule>> {
        self.index
            .read()
            .role_rules(namespace, role_ref)
            .map(|r| r.to_vec())
    }

    /// The rules of `requested` that `user` does not hold in `namespace` (kube's
    /// `ConfirmNoEscalation`): each rule is broken into single verb/group/resource/name
    /// permissions, and each must be allowed by a rule the user holds. Empty: no escalation.
    pub fn not_held(&self, user: &UserInfo, namespace: &str, requested: &[PolicyRule]) -> Vec<PolicyRule> {
        if user.in_group(SYSTEM_MASTERS) {
            return Vec::new();
        }
        let held = self.rules_for(user, namespace);
        let mut missing = Vec::new();
        for rule in requested {
            for atom in break_down(rule) {
                let attrs = atom_attributes(user, namespace, &atom);
                // A wildcard in the requested rule is only covered by the same wildcard, which
                // matching the wildcard as a literal value does.
                if !held.iter().any(|h| h.allows(&attrs)) && !missing.contains(&atom) {
                    missing.push(atom);
                }
            }
        }
        missing
    }
}

/// A rule split into rules of one verb, one group, one resource and at most one name each.
fn break_down(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(PolicyRule::urls(&[verb], &[url]));
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let one = PolicyRule::resources(&[verb], &[group], &[resource]);
                if rule.resource_names.is_empty() {
                    out.push(one);
                } else {
                    for name in &rule.resource_names {
                        out.push(one.clone().named(&[name]));
                    }
                }
            }
        }
    }
    out
}

fn atom_attributes(user: &UserInfo, namespace: &str, atom: &PolicyRule) -> Attributes {
    let first = |v: &[String]| v.first().cloned().unwrap_or_default();
    if !atom.non_resource_urls.is_empty() {
        let mut a = Attributes::for_path(user.clone(), &http::Method::GET, &first(&atom.non_resource_urls));
        a.verb = first(&atom.verbs);
        return a;
    }
    let resource = first(&atom.resources);
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r.to_owned(), s.to_owned()),
        None => (resource, String::new()),
    };
    Attributes {
        user: user.clone(),
        verb: first(&atom.verbs),
        resource_request: true,
        api_group: first(&atom.api_groups),
        api_version: String::new(),
        resource,
        subresource,
        namespace: namespace.to_owned(),
        name: first(&atom.resource_names),
        path: String::new(),
        field_selector: String::new(),
    }
}

/// Renders a rule as kube's escalation error does (`{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`).
pub fn describe_rule(rule: &PolicyRule) -> String {
    let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" ");
    let mut parts = Vec::new();
    if !rule.api_groups.is_empty() {
        parts.push(format!("APIGroups:[{}]", list(&rule.api_groups)));
    }
    if !rule.resources.is_empty() {
        parts.push(format!("Resources:[{}]", list(&rule.resources)));
    }
    if !rule.resource_names.is_empty() {
        parts.push(format!("ResourceNames:[{}]", list(&rule.resource_names)));
    }
    if !rule.non_resource_urls.is_empty() {
        parts.push(format!("NonResourceURLs:[{}]", list(&rule.non_resource_urls)));
    }
    parts.push(format!("Verbs:[{}]", list(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

/// The RBAC authorizer: allows what a bound role grants (kube's `RBACAuthorizer`), and
/// everything for `system:masters` (kube's privileged-group authorizer).
#[derive(Debug)]
pub struct RbacAuthorizer(pub Arc<Rbac>);

#[async_trait::async_trait]
impl Authorizer for RbacAuthorizer {
    async fn authorize(&self, attrs: &Attributes) -> Decision {
        match self.0.allows(attrs) {
            Some(source) => Decision::Allow(format!("RBAC: allowed by {source}")),
            None => Decision::NoOpinion(String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: strings(groups),
            ..Default::default()
        }
    }

    fn res(
        user: &UserInfo,
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: String::new(),
            field_selector: String::new(),
        }
    }

    #[test]
    fn rules_match_as_kube_does() {
        let alice = user("alice", &[]);
        let rule = PolicyRule::resources(&["get"], &[""], &["pods", "*/status"]);
        assert!(rule.allows(&res(&alice, "get", "", "pods", "", "ns", "x")));
        assert!(rule.allows(&res(&alice, "get", "", "nodes", "status", "", "x")));
        assert!(!rule.allows(&res(&alice, "get", "", "pods", "log", "ns", "x")));
        assert!(!rule.allows(&res(&alice, "list", "", "pods", "", "ns", "")));
        assert!(!rule.allows(&res(&alice, "get", "apps", "pods", "", "ns", "x")));
        let named = PolicyRule::resources(&["*"], &["*"], &["*"]).named(&["a"]);
        assert!(named.allows(&res(&alice, "delete", "x", "y", "", "ns", "a")));
        assert!(!named.allows(&res(&alice, "list", "x", "y", "", "ns", "")));
        let urls = PolicyRule::urls(&["get"], &["/apis/*", "/version"]);
        let path = |p: &str| Attributes::for_path(alice.clone(), &http::Method::GET, p);
        assert!(urls.allows(&path("/apis/foo/v1")));
        assert!(urls.allows(&path("/version")));
        assert!(!urls.allows(&path("/version/x")));
        assert!(!urls.allows(&path("/api")));
    }

    #[test]
    fn bindings_grant_roles_to_their_subjects_only() {
        let rbac = Rbac::new();
        rbac.apply(
            false,
            &[
                (
                    format!("{KEY_PREFIX}roles/team/reader"),
                    Some(json!({"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})),
                ),
                (
                    format!("{KEY_PREFIX}rolebindings/team/readers"),
                    Some(json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "reader"},
                        "subjects": [{"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "bot"}]})),
                ),
            ],
        );
        let dev = user("bob", &["devs"]);
        assert!(
            rbac.allows(&res(&dev, "get", "", "pods", "", "team", "p"))
                .is_some()
        );
        assert!(
            rbac.allows(&res(&dev, "get", "", "pods", "", "other", "p"))
                .is_none()
        );
        let bot = user("system:serviceaccount:team:bot", &[]);
        assert!(
            rbac.allows(&res(&bot, "get", "", "pods", "", "team", "p"))
                .is_some()
        );
        let other_bot = user("system:serviceaccount:other:bot", &[]);
        assert!(
            rbac.allows(&res(&other_bot, "get", "", "pods", "", "team", "p"))
                .is_none()
        );
        rbac.apply(false, &[(format!("{KEY_PREFIX}roles/team/reader"), None)]);
        assert!(
            rbac.allows(&res(&dev, "get", "", "pods", "", "team", "p"))
                .is_none()
        );
    }

    /// Decisions stay in the microseconds with many bindings: 200 ClusterRoleBindings and
    /// 1,000 RoleBindings in 100 namespaces, each to its own user. Prints the time per decision
    /// (run with `--release --nocapture` for the figure in docs/authorization.md).
    #[test]
    fn decisions_over_many_bindings() {
        let rbac = Rbac::new();
        let mut changes = vec![(
            format!("{KEY_PREFIX}clusterroles/lease-reader"),
            Some(json!({"rules": [
                {"verbs": ["get", "list", "watch"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]},
                {"verbs": ["create"], "apiGroups": ["events.k8s.io"], "resources": ["events"]}
            ]})),
        )];
        for i in 0..200 {
            changes.push((
                format!("{KEY_PREFIX}clusterrolebindings/crb-{i}"),
                Some(
                    json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "lease-reader"},
                    "subjects": [{"kind": "User", "name": format!("cluster-user-{i}")}]}),
                ),
            ));
        }
        for i in 0..1000 {
            changes.push((
                format!("{KEY_PREFIX}rolebindings/ns-{}/rb-{i}", i % 100),
                Some(
                    json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "lease-reader"},
                    "subjects": [{"kind": "User", "name": format!("user-{i}")}]}),
                ),
            ));
        }
        rbac.apply(true, &changes);
        let allowed = res(
            &user("user-999", &["system:authenticated"]),
            "list",
            "coordination.k8s.io",
            "leases",
            "",
            "ns-99",
            "",
        );
        let denied = res(
            &user("user-999", &["system:authenticated"]),
            "delete",
            "coordination.k8s.io",
            "leases",
            "",
            "ns-99",
            "x",
        );
        let cluster = res(
            &user("cluster-user-199", &[]),
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "ns-1",
            "x",
        );
        assert!(rbac.allows(&allowed).is_some());
        assert!(rbac.allows(&denied).is_none());
        assert!(rbac.allows(&cluster).is_some());
        let rounds = 20_000u32;
        for (what, attrs) in [("allowed", &allowed), ("denied", &denied), ("cluster", &cluster)] {
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(rbac.allows(std::hint::black_box(attrs)));
            }
            println!("rbac decision ({what}): {:?}", start.elapsed() / rounds);
        }
    }

    #[test]
    fn escalation_needs_every_permission() {
        let rbac = Rbac::new();
        rbac.apply(
            false,
            &[
                (
                    format!("{KEY_PREFIX}clusterroles/pods"),
                    Some(json!({"rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]})),
                ),
                (
                    format!("{KEY_PREFIX}clusterrolebindings/alice"),
                    Some(json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "pods"},
                        "subjects": [{"kind": "User", "name": "alice"}]})),
                ),
            ],
        );
        let alice = user("alice", &[]);
        let ok = [PolicyRule::resources(&["get"], &[""], &["pods"]).named(&["x"])];
        assert!(rbac.not_held(&alice, "ns", &ok).is_empty());
        let wild = [PolicyRule::resources(&["*"], &[""], &["pods"])];
        assert_eq!(
            rbac.not_held(&alice, "ns", &wild),
            vec![PolicyRule::resources(&["*"], &[""], &["pods"])]
        );
        assert_eq!(
            describe_rule(&wild[0]),
            "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"*\"]}"
        );
        let admin = user("root", &[SYSTEM_MASTERS]);
        assert!(rbac.not_held(&admin, "", &wild).is_empty());
    }
}
