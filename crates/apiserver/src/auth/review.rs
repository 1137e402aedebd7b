//! The review endpoints: `authorization.k8s.io/v1` SelfSubjectAccessReview, SubjectAccessReview,
//! LocalSubjectAccessReview and SelfSubjectRulesReview, and `authentication.k8s.io/v1`
//! SelfSubjectReview. They are create-only and never stored: the answer is the posted object
//! with its `status` filled in, as kube-apiserver's `pkg/registry/authorization` does.
//! `kubectl auth can-i`, `kubectl auth can-i --list` and `kubectl auth whoami` use them.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{Value, json};

use super::rbac::PolicyRule;
use super::{Attributes, Decision, UserInfo};
use crate::definition::ResourceDefinition;
use crate::error::ApiError;
use crate::server::{Call, Reply, Server};

/// The authorization API group.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";
/// The authentication API group.
pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// Whether `def` is one of the review kinds (answered here rather than stored).
pub(crate) fn is_review(def: &ResourceDefinition) -> bool {
    def.group == AUTHORIZATION_GROUP || def.group == AUTHENTICATION_GROUP
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The attributes a review asks about (kube's `ResourceAttributesFrom`/`NonResourceAttributesFrom`).
fn review_attributes(user: UserInfo, spec: &Value) -> Result<Attributes, ApiError> {
    let res = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (res, non) {
        (Some(_), Some(_)) => Err(invalid_spec(
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid_spec(
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        (Some(r), None) => Ok(Attributes {
            user,
            verb: str_at(r, "/verb").to_owned(),
            resource_request: true,
            api_group: str_at(r, "/group").to_owned(),
            api_version: str_at(r, "/version").to_owned(),
            resource: str_at(r, "/resource").to_owned(),
            subresource: str_at(r, "/subresource").to_owned(),
            namespace: str_at(r, "/namespace").to_owned(),
            name: str_at(r, "/name").to_owned(),
            path: String::new(),
            field_selector: str_at(r, "/fieldSelector/rawSelector").to_owned(),
        }),
        (None, Some(n)) => {
            let mut a = Attributes::for_path(user, &http::Method::GET, str_at(n, "/path"));
            a.verb = str_at(n, "/verb").to_owned();
            Ok(a)
        }
    }
}

fn invalid_spec(detail: &str) -> ApiError {
    ApiError::bad_request(format!("spec: Invalid value: {detail}"))
}

fn user_from_spec(spec: &Value) -> UserInfo {
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    UserInfo {
        name: str_at(spec, "/user").to_owned(),
        uid: str_at(spec, "/uid").to_owned(),
        groups: strings_at(spec, "/groups"),
        extra,
    }
}

fn user_json(user: &UserInfo) -> Value {
    let mut u = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        u["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        u["extra"] = json!(user.extra);
    }
    u
}

impl Server {
    /// Decides `attrs` with the server's authorizer (everything is allowed without one).
    pub(crate) async fn decide(&self, attrs: &Attributes) -> Decision {
        match self.authorizer() {
            Some(a) => a.authorize(attrs).await,
            None => Decision::Allow("no authorizer: everything is allowed".into()),
        }
    }

    /// Answers a POST of a review kind.
    pub(crate) async fn review(&self, call: &Call, method: &http::Method) -> Result<Reply, ApiError> {
        if *method != http::Method::POST || call.name.is_some() || call.subresource.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let mut obj = self.review_body(call)?;
        let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
        let status = match call.def().plural.as_str() {
            "selfsubjectreviews" => json!({"userInfo": user_json(&call.user)}),
            "selfsubjectrulesreviews" => self.rules_review(&call.user, str_at(&spec, "/namespace")),
            plural => {
                let user = match plural {
                    "selfsubjectaccessreviews" => call.user.clone(),
                    _ => {
                        let u = user_from_spec(&spec);
                        if u.name.is_empty() && u.groups.is_empty() {
                            return Err(invalid_spec("at least one of user or group must be specified"));
                        }
                        u
                    }
                };
                let attrs = review_attributes(user, &spec)?;
                if plural == "localsubjectaccessreviews" {
                    let ns = call.namespace.as_deref().unwrap_or_default();
                    if !attrs.resource_request || attrs.namespace != ns {
                        return Err(ApiError::bad_request(format!(
                            "spec.resourceAttributes.namespace must match namespace: {ns}"
                        )));
                    }
                }
                match self.decide(&attrs).await {
                    Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
                    Decision::Deny(reason) => json!({"allowed": false, "denied": true, "reason": reason}),
                    Decision::NoOpinion(reason) => json!({"allowed": false, "reason": reason}),
                }
            }
        };
        let def = call.def();
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        if obj.get("metadata").is_none_or(|m| !m.is_object()) {
            obj["metadata"] = json!({});
        }
        if def.plural == "selfsubjectaccessreviews" || def.plural == "selfsubjectrulesreviews" {
            obj["spec"] = spec;
        }
        obj["status"] = status;
        Ok(Reply::new(StatusCode::CREATED, obj))
    }

    /// The posted review as JSON, in any media type a create accepts.
    fn review_body(&self, call: &Call) -> Result<Value, ApiError> {
        self.decode_object_body(call).map(|(obj, _warnings)| obj)
    }

    /// The status of a SelfSubjectRulesReview: the rules RBAC grants `user` in `namespace`.
    fn rules_review(&self, user: &UserInfo, namespace: &str) -> Value {
        let Some(rbac) = self.rbac() else {
            return json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            });
        };
        let rules = rbac.rules_for(user, namespace);
        let (urls, resources): (Vec<&PolicyRule>, Vec<&PolicyRule>) =
            rules.iter().partition(|r| !r.non_resource_urls.is_empty());
        let mut status = json!({
            "resourceRules": resources.iter().map(|r| json!({
                "verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources,
                "resourceNames": r.resource_names,
            })).collect::<Vec<_>>(),
            "nonResourceRules": urls.iter().map(|r| json!({
                "verbs": r.verbs, "nonResourceURLs": r.non_resource_urls,
            })).collect::<Vec<_>>(),
            "incomplete": false,
        });
        if super::node::node_of(user).is_some() {
            status["incomplete"] = json!(true);
            status["evaluationError"] = json!("node authorizer does not support user rule resolution");
        }
        status
    }
}
