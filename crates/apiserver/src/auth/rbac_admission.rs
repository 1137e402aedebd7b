//! Validation and privilege-escalation prevention of the RBAC kinds, as kube-apiserver's
//! `pkg/apis/rbac/validation` and `pkg/registry/rbac` have them: a user can only create or change
//! a role granting permissions it holds itself (or with the `escalate` verb on the role), and
//! only bind a role whose permissions it holds (or with the `bind` verb on the role).

use std::sync::Arc;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use serde_json::Value;

use super::rbac::{GROUP, PolicyRule, Rbac, RoleRef, Subject, describe_rule};
use super::{Attributes, UserInfo};
use crate::error::{ApiError, GroupResource};
use crate::strategy::{AdmissionContext, SideEffects, Strategy};

fn rules(obj: &Value) -> Result<Vec<PolicyRule>, String> {
    match obj.get("rules") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(r) => serde_json::from_value(r.clone()).map_err(|e| e.to_string()),
    }
}

/// kube's `ValidatePolicyRule`.
fn validate_rules(obj: &Value, namespaced: bool) -> ErrorList {
    let mut errs = ErrorList::new();
    let path = Path::new("rules");
    let rules = match rules(obj) {
        Ok(r) => r,
        Err(e) => {
            errs.push(FieldError::type_invalid(
                &path,
                obj.get("rules").cloned().unwrap_or_default(),
                e,
            ));
            return errs;
        }
    };
    for (i, rule) in rules.iter().enumerate() {
        let p = path.index(i);
        if rule.verbs.is_empty() {
            errs.push(FieldError::required(
                &p.child("verbs"),
                "verbs must contain at least one value",
            ));
        }
        if !rule.non_resource_urls.is_empty() {
            let urls = serde_json::to_value(&rule.non_resource_urls).unwrap_or_default();
            if namespaced {
                errs.push(FieldError::invalid(
                    &p.child("nonResourceURLs"),
                    urls.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !rule.api_groups.is_empty() || !rule.resources.is_empty() || !rule.resource_names.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if rule.api_groups.is_empty() {
            errs.push(FieldError::required(
                &p.child("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if rule.resources.is_empty() {
            errs.push(FieldError::required(
                &p.child("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

fn role_ref(obj: &Value) -> RoleRef {
    obj.get("roleRef")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default()
}

fn subjects(obj: &Value) -> Result<Vec<Subject>, String> {
    match obj.get("subjects") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(s) => serde_json::from_value(s.clone()).map_err(|e| e.to_string()),
    }
}

/// kube's `ValidateRoleBinding`/`ValidateClusterRoleBinding`.
fn validate_binding(obj: &Value, namespaced: bool) -> ErrorList {
    let mut errs = ErrorList::new();
    let rr_path = Path::new("roleRef");
    let rr = role_ref(obj);
    if rr.api_group != GROUP {
        errs.push(FieldError::not_supported(
            &rr_path.child("apiGroup"),
            rr.api_group.as_str(),
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&rr.kind.as_str()) {
        errs.push(FieldError::not_supported(
            &rr_path.child("kind"),
            rr.kind.as_str(),
            kinds,
        ));
    }
    if rr.name.is_empty() {
        errs.push(FieldError::required(&rr_path.child("name"), ""));
    } else {
        errs.extend(crate::meta::validate_path_segment_name(
            &rr.name,
            &rr_path.child("name"),
        ));
    }
    let s_path = Path::new("subjects");
    let subjects = match subjects(obj) {
        Ok(s) => s,
        Err(e) => {
            errs.push(FieldError::type_invalid(
                &s_path,
                obj.get("subjects").cloned().unwrap_or_default(),
                e,
            ));
            return errs;
        }
    };
    for (i, s) in subjects.iter().enumerate() {
        let p = s_path.index(i);
        if s.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !s.name.is_empty() && !crate::meta::is_dns1123_subdomain(&s.name) {
                    errs.push(FieldError::invalid(
                        &p.child("name"),
                        s.name.as_str(),
                        "must be a valid service account name",
                    ));
                }
                if !s.api_group.is_empty() {
                    errs.push(FieldError::not_supported(
                        &p.child("apiGroup"),
                        s.api_group.as_str(),
                        &[""],
                    ));
                }
                if !namespaced && s.namespace.is_empty() {
                    errs.push(FieldError::required(&p.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if s.api_group != GROUP {
                    errs.push(FieldError::not_supported(
                        &p.child("apiGroup"),
                        s.api_group.as_str(),
                        &[GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p.child("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

/// The request's user, when escalation checks apply to it: RBAC is on and the write comes from a
/// request (the server's own writes, such as the bootstrap roles, are exempt).
fn checked_user(rbac: &Rbac, ctx: &AdmissionContext) -> Option<UserInfo> {
    if !rbac.enabled() {
        return None;
    }
    ctx.user().filter(|u| !u.in_group(super::SYSTEM_MASTERS)).cloned()
}

/// Whether RBAC allows `verb` (`escalate` or `bind`) on the role `name` of `resource`.
fn special_verb(
    rbac: &Rbac,
    user: &UserInfo,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    let attrs = Attributes {
        user: user.clone(),
        verb: verb.into(),
        resource_request: true,
        api_group: GROUP.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: String::new(),
        namespace: namespace.into(),
        name: name.into(),
        path: String::new(),
        field_selector: String::new(),
    };
    rbac.allows(&attrs).is_some()
}

/// kube's escalation error.
fn escalation(gr: &GroupResource, name: &str, user: &UserInfo, missing: &[PolicyRule]) -> ApiError {
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let rules: Vec<String> = missing.iter().map(describe_rule).collect();
    ApiError::forbidden(
        gr,
        name,
        &format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            groups.join(" "),
            rules.join("\n")
        ),
    )
}

/// Role and ClusterRole.
pub(crate) struct RoleStrategy {
    pub(crate) rbac: Arc<Rbac>,
    pub(crate) namespaced: bool,
}

impl RoleStrategy {
    fn gr(&self) -> GroupResource {
        GroupResource::new(GROUP, if self.namespaced { "roles" } else { "clusterroles" })
    }

    fn check(&self, ctx: &AdmissionContext, obj: &Value) -> Result<(), ApiError> {
        let Some(user) = checked_user(&self.rbac, ctx) else {
            return Ok(());
        };
        let ns = crate::meta::meta_str(obj, "namespace");
        let name = crate::meta::name(obj);
        let resource = if self.namespaced { "roles" } else { "clusterroles" };
        if special_verb(&self.rbac, &user, "escalate", resource, ns, name) {
            return Ok(());
        }
        let requested = rules(obj).unwrap_or_default();
        let missing = self.rbac.not_held(&user, ns, &requested);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(escalation(&self.gr(), name, &user, &missing))
        }
    }
}

#[async_trait::async_trait]
impl Strategy for RoleStrategy {
    fn validate_create(&self, obj: &Value) -> ErrorList {
        validate_rules(obj, self.namespaced)
    }

    fn validate_update(&self, new: &Value, _old: &Value) -> ErrorList {
        validate_rules(new, self.namespaced)
    }

    async fn admit_create(&self, ctx: &AdmissionContext, obj: &mut Value) -> Result<SideEffects, ApiError> {
        self.check(ctx, obj)?;
        Ok(SideEffects::none())
    }

    async fn admit_update(
        &self,
        ctx: &AdmissionContext,
        new: &mut Value,
        old: &Value,
    ) -> Result<SideEffects, ApiError> {
        // Unchanged rules grant nothing new (labels, annotations, finalizers may change).
        if new.get("rules") != old.get("rules") {
            self.check(ctx, new)?;
        }
        Ok(SideEffects::none())
    }
}

/// RoleBinding and ClusterRoleBinding.
pub(crate) struct BindingStrategy {
    pub(crate) rbac: Arc<Rbac>,
    pub(crate) namespaced: bool,
}

impl BindingStrategy {
    fn gr(&self) -> GroupResource {
        GroupResource::new(
            GROUP,
            if self.namespaced {
                "rolebindings"
            } else {
                "clusterrolebindings"
            },
        )
    }

    fn check(&self, ctx: &AdmissionContext, obj: &Value) -> Result<(), ApiError> {
        let Some(user) = checked_user(&self.rbac, ctx) else {
            return Ok(());
        };
        let ns = crate::meta::meta_str(obj, "namespace");
        let name = crate::meta::name(obj);
        let rr = role_ref(obj);
        let resource = if rr.kind == "Role" {
            "roles"
        } else {
            "clusterroles"
        };
        if special_verb(&self.rbac, &user, "bind", resource, ns, &rr.name) {
            return Ok(());
        }
        let Some(rules) = self.rbac.role_rules(ns, &rr) else {
            let what = if rr.kind == "Role" { "role" } else { "clusterrole" };
            return Err(ApiError::forbidden(
                &self.gr(),
                name,
                &format!("{what}.{GROUP} {:?} not found", rr.name),
            ));
        };
        let missing = self.rbac.not_held(&user, ns, &rules);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(escalation(&self.gr(), name, &user, &missing))
        }
    }
}

#[async_trait::async_trait]
impl Strategy for BindingStrategy {
    fn validate_create(&self, obj: &Value) -> ErrorList {
        validate_binding(obj, self.namespaced)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        let mut errs = validate_binding(new, self.namespaced);
        if new.get("roleRef") != old.get("roleRef") {
            errs.push(FieldError::invalid(
                &Path::new("roleRef"),
                new.get("roleRef").cloned().unwrap_or_default(),
                "cannot change roleRef",
            ));
        }
        errs
    }

    async fn admit_create(&self, ctx: &AdmissionContext, obj: &mut Value) -> Result<SideEffects, ApiError> {
        self.check(ctx, obj)?;
        Ok(SideEffects::none())
    }

    async fn admit_update(
        &self,
        ctx: &AdmissionContext,
        new: &mut Value,
        old: &Value,
    ) -> Result<SideEffects, ApiError> {
        if new.get("subjects") != old.get("subjects") {
            self.check(ctx, new)?;
        }
        Ok(SideEffects::none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_are_validated_as_kube_does() {
        let errs = validate_rules(
            &json!({"rules": [
                {"apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"], "nonResourceURLs": ["/x"]},
                {"verbs": ["get"], "resources": ["pods"]},
                {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "nonResourceURLs": ["/x"]}
            ]}),
            true,
        );
        let text: Vec<String> = errs.iter().map(FieldError::to_string).collect();
        assert_eq!(text.len(), 5, "{text:?}");
        assert!(text[0].contains("rules[0].verbs: Required value"), "{text:?}");
        assert!(
            text[1].contains("namespaced rules cannot apply to non-resource URLs"),
            "{text:?}"
        );
        assert!(text[2].contains("rules[2].apiGroups: Required value"), "{text:?}");
        assert!(
            text[4].contains("rules cannot apply to both regular resources and non-resource URLs"),
            "{text:?}"
        );
        assert!(
            validate_rules(
                &json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}),
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn bindings_are_validated_as_kube_does() {
        let ok = json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "apiGroup": GROUP, "name": "alice"}, {"kind": "ServiceAccount", "name": "sa"}]});
        assert!(validate_binding(&ok, true).is_empty());
        let errs = validate_binding(&ok, false);
        let text: Vec<String> = errs.iter().map(FieldError::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].contains("roleRef.kind: Unsupported value: \"Role\""),
            "{text:?}"
        );
        assert!(
            text[1].contains("subjects[1].namespace: Required value"),
            "{text:?}"
        );
        let bad = json!({"roleRef": {"apiGroup": "x", "kind": "ClusterRole", "name": ""},
            "subjects": [{"kind": "Robot", "name": "r2"}]});
        let text: Vec<String> = validate_binding(&bad, true)
            .iter()
            .map(FieldError::to_string)
            .collect();
        assert!(
            text[0].contains("roleRef.apiGroup: Unsupported value: \"x\""),
            "{text:?}"
        );
        assert!(text[1].contains("roleRef.name: Required value"), "{text:?}");
        assert!(
            text[2].contains("subjects[0].kind: Unsupported value: \"Robot\""),
            "{text:?}"
        );
    }
}
