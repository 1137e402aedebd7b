//! Who is asking, and may they: the seams between the server and its authenticators and
//! authorizers, as kube-apiserver has them.
//!
//! Every request is first authenticated ([`Authenticator`]) into a [`UserInfo`], then described
//! as [`Attributes`] (verb, API group, resource, namespace, name, or a non-resource path) and
//! authorized ([`Authorizer`]). A server built without an authenticator treats every request as
//! [`UserInfo::unsecured_admin`] and one built without an authorizer allows everything: that is
//! how in-process tests and the explicit plain-HTTP loopback mode run.

pub mod identities;
pub mod impersonate;
pub(crate) mod mirror;
pub mod node;
pub mod rbac;
pub(crate) mod rbac_admission;
pub mod rbac_bootstrap;
pub(crate) mod review;
pub mod signed;
pub mod token;
pub mod union;
pub mod x509;

use std::collections::BTreeMap;

use http::Method;

use crate::request::{Query, ResourcePath};

/// The group every authenticated user is in.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user name of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group that is allowed everything (kube's `system:masters`).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// An authenticated identity (kube's `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`alice`, `system:node:hv-1`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// A unique id, if the authenticator knows one.
    pub uid: String,
    /// Groups, including [`ALL_AUTHENTICATED`] for authenticated users.
    pub groups: Vec<String>,
    /// Extra attributes (kube's `user.Info.GetExtra`).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The identity of requests on a server without authentication: a member of
    /// [`SYSTEM_MASTERS`], as kube-apiserver's old insecure port was.
    pub fn unsecured_admin() -> Self {
        UserInfo {
            name: "system:admin".into(),
            uid: String::new(),
            groups: vec![SYSTEM_MASTERS.into(), ALL_AUTHENTICATED.into()],
            extra: BTreeMap::new(),
        }
    }

    /// The identity of a request without credentials.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS.into(),
            uid: String::new(),
            groups: vec![ALL_UNAUTHENTICATED.into()],
            extra: BTreeMap::new(),
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The outcome of authenticating one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// The request carries valid credentials of this user.
    User(UserInfo),
    /// The request carries no credentials at all.
    NoCredentials,
    /// The request carries credentials that are invalid (unknown token, expired or untrusted
    /// certificate); the reason is logged, never sent to the client.
    Rejected(String),
}

/// Identifies the user of a request from its headers and connection (kube's
/// `authenticator.Request`). The TLS layer puts the client's verified certificate chain into the
/// request's extensions before the authenticator runs.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates one request. Must not block: token and certificate checks are local.
    fn authenticate(&self, request: &http::request::Parts) -> Authentication;
}

/// What a request wants to do, as an authorizer sees it (kube's `authorizer.Attributes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection` for
    /// resources; the lower-case HTTP method for non-resource paths.
    pub verb: String,
    /// Whether this is a request about a resource (otherwise about [`Attributes::path`]).
    pub resource_request: bool,
    /// The API group (empty for the core group).
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The resource (plural), e.g. `networks`.
    pub resource: String,
    /// The subresource, e.g. `status`.
    pub subresource: String,
    /// The namespace (empty for cluster-scoped resources and all-namespace lists).
    pub namespace: String,
    /// The object's name (empty for collections).
    pub name: String,
    /// The URL path.
    pub path: String,
    /// The request's `fieldSelector` (for list and watch), which the Node authorizer requires to
    /// pin a node agent's lists to its node (kube's `GetFieldSelector`).
    pub field_selector: String,
}

impl Attributes {
    /// The attributes of a resource request, with the verb derived as kube-apiserver's
    /// `RequestInfoFactory` does (GET of a collection is `list`, or `watch` with `watch=true`;
    /// DELETE of a collection is `deletecollection`). A create's name is empty.
    pub fn for_resource(
        user: UserInfo,
        method: &Method,
        resource: &ResourcePath,
        query: &Query,
        path: &str,
    ) -> Self {
        let collection = resource.name.is_none();
        let verb = match *method {
            Method::GET | Method::HEAD if collection => {
                if query.flag("watch").unwrap_or(false) {
                    "watch"
                } else {
                    "list"
                }
            }
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if collection => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        Attributes {
            user,
            verb: if verb.is_empty() {
                method.as_str().to_ascii_lowercase()
            } else {
                verb.to_owned()
            },
            resource_request: true,
            api_group: resource.group.clone(),
            api_version: resource.version.clone(),
            resource: resource.plural.clone(),
            subresource: resource.subresource.clone().unwrap_or_default(),
            namespace: resource.namespace.clone().unwrap_or_default(),
            name: resource.name.clone().unwrap_or_default(),
            path: path.to_owned(),
            field_selector: query.get("fieldSelector").unwrap_or_default().to_owned(),
        }
    }

    /// The attributes of a request for a non-resource path (discovery, OpenAPI, health, version).
    pub fn for_path(user: UserInfo, method: &Method, path: &str) -> Self {
        Attributes {
            user,
            verb: method.as_str().to_ascii_lowercase(),
            resource_request: false,
            api_group: String::new(),
            api_version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
            path: path.to_owned(),
            field_selector: String::new(),
        }
    }
}

/// An authorizer's answer (kube's `authorizer.Decision` plus its reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the reason names the rule (for audit and SubjectAccessReview).
    Allow(String),
    /// Explicitly denied; no further authorizer is asked.
    Deny(String),
    /// This authorizer does not decide; the next one is asked (denied if none is left).
    NoOpinion(String),
}

/// Decides whether a request may proceed (kube's `authorizer.Authorizer`).
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Authorizes `attrs`.
    async fn authorize(&self, attrs: &Attributes) -> Decision;
}

tokio::task_local! {
    /// The user of the request being served, for admission that depends on who asks.
    static REQUEST_USER: std::cell::RefCell<Option<UserInfo>>;
}

/// Runs `fut` (the handling of one request) with a slot for its user, which
/// [`set_request_user`] fills once the request is authenticated.
pub(crate) async fn with_request_scope<F: std::future::Future>(fut: F) -> F::Output {
    REQUEST_USER.scope(std::cell::RefCell::new(None), fut).await
}

/// Records the authenticated user of the request being served.
pub(crate) fn set_request_user(user: &UserInfo) {
    let _ = REQUEST_USER.try_with(|slot| *slot.borrow_mut() = Some(user.clone()));
}

/// The user of the request being served; `None` for the server's own work (bootstrap, garbage
/// collection, namespace cleanup).
pub(crate) fn request_user() -> Option<UserInfo> {
    REQUEST_USER.try_with(|slot| slot.borrow().clone()).ok().flatten()
}

/// The running Node and RBAC authorizers (see [`crate::ApiServerBuilder::rbac_authorization`]).
pub(crate) struct NodeRbac {
    /// `first` (if any), then the Node authorizer, then RBAC.
    pub(crate) authorizer: std::sync::Arc<dyn Authorizer>,
    /// The RBAC cache's progress, to wait for the bootstrap roles.
    pub(crate) rbac_mirror: mirror::Mirror,
    /// The watches keeping the caches current.
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Loads the RBAC objects and the node bindings of metalnet objects from `store`, keeps them
/// current, and returns the authorizer chain deciding from them.
pub(crate) async fn start_node_rbac(
    store: std::sync::Arc<dyn ironnet_store::Store>,
    rbac: std::sync::Arc<rbac::Rbac>,
    first: Option<std::sync::Arc<dyn Authorizer>>,
) -> Result<NodeRbac, crate::ApiError> {
    use std::sync::Arc;
    let sink = rbac.clone();
    let (rbac_mirror, rbac_task) = mirror::start(
        store.clone(),
        rbac::KEY_PREFIX.to_owned(),
        Arc::new(move |reset, changes| sink.apply(reset, changes)),
    )
    .await?;
    let graph = Arc::new(node::NodeGraph::new());
    let sink = graph.clone();
    let (graph_mirror, graph_task) = mirror::start(
        store.clone(),
        node::KEY_PREFIX.to_owned(),
        Arc::new(move |reset, changes| sink.apply(reset, changes)),
    )
    .await?;
    rbac.enable();
    let mut chain: Vec<Arc<dyn Authorizer>> = first.into_iter().collect();
    chain.push(Arc::new(node::NodeAuthorizer::new(
        graph,
        Some((graph_mirror, store)),
    )));
    chain.push(Arc::new(rbac::RbacAuthorizer(rbac)));
    Ok(NodeRbac {
        authorizer: Arc::new(Chain(chain)),
        rbac_mirror,
        tasks: vec![rbac_task, graph_task],
    })
}

/// Asks authorizers in turn (kube's union authorizer): the first `Allow` or `Deny` decides;
/// if every one has no opinion the request is denied with their reasons.
pub struct Chain(pub Vec<std::sync::Arc<dyn Authorizer>>);

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("authorizers", &self.0.len())
            .finish()
    }
}

#[async_trait::async_trait]
impl Authorizer for Chain {
    async fn authorize(&self, attrs: &Attributes) -> Decision {
        let mut reasons = Vec::new();
        for a in &self.0 {
            match a.authorize(attrs).await {
                Decision::NoOpinion(reason) => {
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
                decided => return decided,
            }
        }
        Decision::NoOpinion(reasons.join(", "))
    }
}

/// The paths a request without credentials may reach, as kube-apiserver's
/// `system:public-info-viewer` role allows them.
pub fn is_public_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
}

/// kube-apiserver's 401 answer (the reason is never told to the client).
pub fn unauthorized() -> crate::ApiError {
    crate::ApiError::unauthorized()
}

/// kube-apiserver's 403 answer for a denied request, e.g. `networks.core.apinet.ironcore.dev "x"
/// is forbidden: User "alice" cannot get resource "networks" in API group
/// "core.apinet.ironcore.dev" in the namespace "default"`, then `: <reason>` when the authorizer
/// gave one.
pub fn forbidden(attrs: &Attributes, reason: &str) -> crate::ApiError {
    let user = &attrs.user.name;
    if !attrs.resource_request {
        let mut message = format!(
            "forbidden: User \"{user}\" cannot {} path \"{}\"",
            attrs.verb, attrs.path
        );
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(reason);
        }
        return crate::ApiError::forbidden_message(message);
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    let mut why = format!(
        "User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        attrs.verb, attrs.api_group
    );
    if !reason.is_empty() {
        why.push_str(": ");
        why.push_str(reason);
    }
    crate::ApiError::forbidden(
        &crate::GroupResource::new(&attrs.api_group, &attrs.resource),
        &attrs.name,
        &why,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            groups: vec![ALL_AUTHENTICATED.into()],
            ..Default::default()
        }
    }

    fn resource(ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> ResourcePath {
        ResourcePath {
            group: "core.apinet.ironcore.dev".into(),
            version: "v1alpha1".into(),
            namespace: ns.map(Into::into),
            plural: "networks".into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn verbs_follow_kube_request_info() {
        let q = Query::parse(None);
        let w = Query::parse(Some("watch=true"));
        let cases = [
            (Method::GET, None, &q, "list"),
            (Method::GET, None, &w, "watch"),
            (Method::GET, Some("x"), &q, "get"),
            (Method::POST, None, &q, "create"),
            (Method::PUT, Some("x"), &q, "update"),
            (Method::PATCH, Some("x"), &q, "patch"),
            (Method::DELETE, Some("x"), &q, "delete"),
            (Method::DELETE, None, &q, "deletecollection"),
        ];
        for (method, name, query, verb) in cases {
            let a =
                Attributes::for_resource(alice(), &method, &resource(Some("ns"), name, None), query, "/p");
            assert_eq!(a.verb, verb, "{method} {name:?}");
        }
    }

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let q = Query::parse(None);
        let get = Attributes::for_resource(
            alice(),
            &Method::GET,
            &resource(Some("default"), Some("x"), None),
            &q,
            "/p",
        );
        assert_eq!(
            forbidden(&get, "").to_status()["message"],
            "networks.core.apinet.ironcore.dev \"x\" is forbidden: User \"alice\" cannot get resource \"networks\" in API group \"core.apinet.ironcore.dev\" in the namespace \"default\""
        );
        let status = Attributes::for_resource(
            alice(),
            &Method::PUT,
            &resource(None, Some("x"), Some("status")),
            &q,
            "/p",
        );
        assert_eq!(
            forbidden(&status, "no rule").to_status()["message"],
            "networks.core.apinet.ironcore.dev \"x\" is forbidden: User \"alice\" cannot update resource \"networks/status\" in API group \"core.apinet.ironcore.dev\" at the cluster scope: no rule"
        );
        let path = Attributes::for_path(alice(), &Method::GET, "/apis");
        assert_eq!(
            forbidden(&path, "").to_status()["message"],
            "forbidden: User \"alice\" cannot get path \"/apis\""
        );
        assert_eq!(forbidden(&path, "").to_status()["code"], 403);
        assert_eq!(unauthorized().to_status()["code"], 401);
        assert_eq!(unauthorized().to_status()["reason"], "Unauthorized");
    }
}
