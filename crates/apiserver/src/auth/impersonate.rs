//! Impersonation (kube-apiserver's impersonation filter): `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` make a request act as
//! another user, if the requestor may `impersonate` each of them.

use std::collections::BTreeMap;

use http::Method;

use super::{ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, Attributes, Authorizer, Decision, UserInfo};
use crate::ApiError;

/// The header naming the user to act as.
pub const IMPERSONATE_USER: &str = "impersonate-user";
/// The header (repeatable) naming a group to act in.
pub const IMPERSONATE_GROUP: &str = "impersonate-group";
/// The header naming the uid to act as.
pub const IMPERSONATE_UID: &str = "impersonate-uid";
/// The prefix of headers naming an extra attribute (`Impersonate-Extra-<key>: <value>`).
pub const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";

/// The prefix of service account user names.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// One thing the requestor asks to impersonate, in the order kube checks them.
#[derive(Debug)]
enum Request {
    User(String),
    ServiceAccount { namespace: String, name: String },
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

/// The user a request acts as: `None` without impersonation headers, the impersonated user if
/// `authorizer` (none: everything is allowed) lets `requestor` impersonate every requested
/// user, group, uid and extra value, else kube-apiserver's 403 for the first one refused.
pub async fn impersonate(
    request: &http::request::Parts,
    requestor: &UserInfo,
    authorizer: Option<&dyn Authorizer>,
) -> Result<Option<UserInfo>, ApiError> {
    let requests = requests(&request.headers)?;
    if requests.is_empty() {
        return Ok(None);
    }
    let groups_given = requests.iter().any(|r| matches!(r, Request::Group(_)));
    let mut name = String::new();
    let mut uid = String::new();
    let mut groups = Vec::new();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in requests {
        let mut attrs = Attributes::for_path(requestor.clone(), &Method::GET, request.uri.path());
        attrs.verb = "impersonate".into();
        attrs.resource_request = true;
        attrs.api_version = "v1".into();
        match r {
            Request::User(user) => {
                attrs.resource = "users".into();
                attrs.name = user.clone();
                name = user;
            }
            Request::ServiceAccount { namespace, name: sa } => {
                attrs.resource = "serviceaccounts".into();
                attrs.namespace = namespace.clone();
                attrs.name = sa.clone();
                name = format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{sa}");
                // A service account's groups are fixed; kube adds them unless groups are given.
                if !groups_given {
                    groups.push("system:serviceaccounts".to_owned());
                    groups.push(format!("system:serviceaccounts:{namespace}"));
                }
            }
            Request::Group(group) => {
                attrs.resource = "groups".into();
                attrs.name = group.clone();
                groups.push(group);
            }
            Request::Extra { key, value } => {
                attrs.api_group = "authentication.k8s.io".into();
                attrs.resource = "userextras".into();
                attrs.subresource = key.clone();
                attrs.name = value.clone();
                extra.entry(key).or_default().push(value);
            }
            Request::Uid(id) => {
                attrs.api_group = "authentication.k8s.io".into();
                attrs.resource = "uids".into();
                attrs.name = id.clone();
                uid = id;
            }
        }
        if let Some(authorizer) = authorizer {
            match authorizer.authorize(&attrs).await {
                Decision::Allow(_) => {}
                Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                    return Err(super::forbidden(&attrs, &reason));
                }
            }
        }
    }
    if name == ANONYMOUS {
        if !groups.iter().any(|g| g == ALL_UNAUTHENTICATED) {
            groups.push(ALL_UNAUTHENTICATED.to_owned());
        }
    } else if !groups
        .iter()
        .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
    {
        groups.push(ALL_AUTHENTICATED.to_owned());
    }
    Ok(Some(UserInfo {
        name,
        uid,
        groups,
        extra,
    }))
}

/// The impersonation requests of `headers`; groups, extras or a uid without a user are refused
/// (kube-apiserver answers them as an internal error, with this message).
fn requests(headers: &http::HeaderMap) -> Result<Vec<Request>, ApiError> {
    let mut out = Vec::new();
    let text = |v: &http::HeaderValue| {
        v.to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::bad_request("impersonation headers must be ASCII"))
    };
    let user = headers.get(IMPERSONATE_USER).map(text).transpose()?;
    let has_user = user.as_deref().is_some_and(|u| !u.is_empty());
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        match user
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)
            .and_then(|rest| rest.split_once(':'))
        {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                out.push(Request::ServiceAccount {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                });
            }
            _ => out.push(Request::User(user)),
        }
    }
    for v in headers.get_all(IMPERSONATE_GROUP) {
        out.push(Request::Group(text(v)?));
    }
    let mut extras: Vec<(String, String)> = Vec::new();
    for (header, value) in headers {
        if let Some(key) = header.as_str().strip_prefix(IMPERSONATE_EXTRA_PREFIX) {
            extras.push((unescape_extra_key(key), text(value)?));
        }
    }
    extras.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(
        extras
            .into_iter()
            .map(|(key, value)| Request::Extra { key, value }),
    );
    if let Some(uid) = headers.get(IMPERSONATE_UID) {
        out.push(Request::Uid(text(uid)?));
    }
    if !has_user && !out.is_empty() {
        let what: Vec<String> = out
            .iter()
            .map(|r| match r {
                Request::Group(g) => format!("group {g:?}"),
                Request::Extra { key, value } => format!("extra {key:?}={value:?}"),
                Request::Uid(u) => format!("uid {u:?}"),
                Request::User(_) | Request::ServiceAccount { .. } => unreachable!("no user given"),
            })
            .collect();
        return Err(ApiError::internal(format!(
            "requested [{}] without impersonating a user",
            what.join(", ")
        )));
    }
    Ok(out)
}

/// An extra key as sent in a header name: lower-case, with characters outside the header-name
/// alphabet percent-encoded (kube's `unescapeExtraKey`).
fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(hex) = key.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/api/v1/namespaces");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn without_an_authorizer_every_request_is_honoured() {
        let alice = UserInfo {
            name: "alice".into(),
            ..Default::default()
        };
        assert_eq!(impersonate(&parts(&[]), &alice, None).await.unwrap(), None);
        let bob = impersonate(
            &parts(&[
                ("Impersonate-User", "bob"),
                ("Impersonate-Group", "dev"),
                ("Impersonate-Group", "ops"),
                ("Impersonate-Extra-Scopes", "view"),
                ("Impersonate-Extra-example.com%2fteam", "a"),
                ("Impersonate-Uid", "u-1"),
            ]),
            &alice,
            None,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(bob.name, "bob");
        assert_eq!(bob.uid, "u-1");
        assert_eq!(bob.groups, vec!["dev", "ops", ALL_AUTHENTICATED]);
        assert_eq!(bob.extra["scopes"], vec!["view"]);
        assert_eq!(bob.extra["example.com/team"], vec!["a"]);

        let sa = impersonate(
            &parts(&[("Impersonate-User", "system:serviceaccount:ns:robot")]),
            &alice,
            None,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            sa.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                ALL_AUTHENTICATED
            ]
        );
        let anon = impersonate(&parts(&[("Impersonate-User", ANONYMOUS)]), &alice, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(anon.groups, vec![ALL_UNAUTHENTICATED]);
    }

    #[tokio::test]
    async fn groups_without_a_user_are_refused() {
        let err = impersonate(
            &parts(&[("Impersonate-Group", "dev")]),
            &UserInfo::default(),
            None,
        )
        .await
        .unwrap_err();
        let status = err.to_status();
        assert_eq!(status["code"], 500);
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("requested [group \"dev\"] without impersonating a user"),
            "{status}"
        );
    }
}
