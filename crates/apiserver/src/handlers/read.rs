//! GET of one object and LIST with selectors, pagination and resourceVersion semantics.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use ironnet_store::{ListOptions, Revision, StoreError};
use serde_json::{Value, json};

use super::{decode_stored, include_object};
use crate::definition::ResourceDefinition;
use crate::error::ApiError;
use crate::request::{Output, Query};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::{Call, Reply, Server};
use crate::table::{TableConvertor, partial_object_metadata};

/// Parsed label and field selectors of a list, watch or deletecollection.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selectors {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` (400 on errors).
    pub(crate) fn parse(def: &ResourceDefinition, q: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut allowed = vec!["metadata.name".to_owned()];
        if def.namespaced() {
            allowed.push("metadata.namespace".to_owned());
        }
        allowed.extend(
            def.selectable_fields
                .iter()
                .map(|f| f.trim_start_matches('.').to_owned()),
        );
        let fields = FieldSelector::parse(
            q.get("fieldSelector").unwrap_or(""),
            |f| def.is_selectable(f),
            &allowed,
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Selectors { labels, fields })
    }

    /// Whether the selectors select every object (no label and no field requirement).
    pub(crate) fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `obj` matches both selectors.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj.pointer("/metadata/labels")) && self.fields.matches(obj)
    }

    /// The narrowest store prefix for `def` in `namespace`: the object's key when the name is pinned.
    pub(crate) fn prefix(&self, def: &ResourceDefinition, namespace: Option<&str>) -> String {
        match self.fields.exact_name() {
            Some(name) if namespace.is_some() || !def.namespaced() => def.key(namespace, name),
            _ => def.namespace_prefix(namespace),
        }
    }
}

/// A decoded continue token: the revision of the first page and the last key returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    pub(crate) revision: Revision,
    pub(crate) start_after: String,
}

impl ContinueToken {
    pub(crate) fn encode(&self) -> String {
        STANDARD.encode(
            json!({"v": "meta.k8s.io/v1", "rv": self.revision, "start": self.start_after}).to_string(),
        )
    }

    pub(crate) fn decode(s: &str, prefix: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::bad_request(format!("continue key is not valid: {s:?}"));
        let bytes = STANDARD.decode(s).map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let revision = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
        let start_after = v.get("start").and_then(Value::as_str).ok_or_else(bad)?.to_owned();
        if !start_after.starts_with(prefix) {
            return Err(bad());
        }
        Ok(ContinueToken {
            revision,
            start_after,
        })
    }
}

/// The result of listing.
pub(crate) struct Listed {
    pub(crate) items: Vec<Value>,
    pub(crate) revision: Revision,
    pub(crate) continue_token: Option<String>,
}

/// Which revision to read a list at.
fn list_revision(q: &Query, current: Revision, has_limit: bool) -> Result<Option<Revision>, ApiError> {
    let rv = q.get("resourceVersion").unwrap_or("");
    let rv_match = q.get("resourceVersionMatch").unwrap_or("");
    if rv.is_empty() {
        if !rv_match.is_empty() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        return Ok(None);
    }
    let n: Revision = rv.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resourceVersion {rv:?}: must be a decimal integer"
        ))
    })?;
    match rv_match {
        "Exact" => {
            if n == 0 {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            Ok(Some(n))
        }
        "NotOlderThan" | "" => {
            if n > current {
                return Err(ApiError::too_large_resource_version(n, current));
            }
            // Legacy semantics: an explicit RV with a limit and no match is an exact read.
            if rv_match.is_empty() && has_limit && n != 0 {
                Ok(Some(n))
            } else {
                Ok(None)
            }
        }
        other => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

impl Server {
    /// GET one object.
    pub(crate) async fn get(&self, call: &Call) -> Result<Reply, ApiError> {
        let name = call.name.as_deref().unwrap_or_default();
        let key = call.def().key(call.namespace.as_deref(), name);
        if let Some(rv) = call
            .query
            .get("resourceVersion")
            .filter(|r| !r.is_empty() && *r != "0")
        {
            let n: Revision = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
            let current = self.store.current_revision().await?;
            if n > current {
                return Err(ApiError::too_large_resource_version(n, current));
            }
        }
        let kv = self
            .store
            .get(&key, None)
            .await?
            .ok_or_else(|| ApiError::not_found(&call.gr(), name))?;
        let obj = decode_stored(&kv)?;
        Ok(Reply::new(StatusCode::OK, self.render_object(call, obj)?))
    }

    /// Lists objects of `def` matching `sel`, honouring limit/continue/resourceVersion in `q`.
    pub(crate) async fn list_objects(
        &self,
        def: &ResourceDefinition,
        namespace: Option<&str>,
        sel: &Selectors,
        q: &Query,
    ) -> Result<Listed, ApiError> {
        let prefix = sel.prefix(def, namespace);
        let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let (mut revision, mut start_after) = match q.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                if q.get("resourceVersion").is_some_and(|r| !r.is_empty()) {
                    return Err(ApiError::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let t = ContinueToken::decode(token, &def.namespace_prefix(namespace))?;
                (Some(t.revision), Some(t.start_after))
            }
            None => {
                let current = self.store.current_revision().await?;
                (list_revision(q, current, limit.is_some())?, None)
            }
        };
        let continuing = start_after.is_some();
        let mut items = Vec::new();
        let page_size = limit.map(|l| l.max(64));
        loop {
            let page = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        limit: page_size,
                        start_after: start_after.clone(),
                    },
                )
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if continuing => ApiError::continue_expired(),
                    other => ApiError::from(other),
                })?;
            revision = Some(page.revision);
            let n = page.items.len();
            for (i, kv) in page.items.iter().enumerate() {
                let obj = decode_stored(kv)?;
                start_after = Some(kv.key.clone());
                if sel.matches(&obj) {
                    items.push(obj);
                    if limit.is_some_and(|l| items.len() >= l) {
                        let more = page.more || i + 1 < n;
                        let token = more.then(|| {
                            ContinueToken {
                                revision: page.revision,
                                start_after: kv.key.clone(),
                            }
                            .encode()
                        });
                        return Ok(Listed {
                            items,
                            revision: page.revision,
                            continue_token: token,
                        });
                    }
                }
            }
            if !page.more {
                return Ok(Listed {
                    items,
                    revision: page.revision,
                    continue_token: None,
                });
            }
        }
    }

    /// LIST.
    pub(crate) async fn list(&self, call: &Call) -> Result<Reply, ApiError> {
        let def = call.def();
        let sel = Selectors::parse(def, &call.query)?;
        if call.query.get("sendInitialEvents").is_some() {
            return Err(ApiError::bad_request("sendInitialEvents is forbidden for list"));
        }
        let listed = self
            .list_objects(def, call.namespace.as_deref(), &sel, &call.query)
            .await?;
        let mut list_meta = json!({"resourceVersion": listed.revision.to_string()});
        if let Some(c) = &listed.continue_token {
            list_meta["continue"] = Value::String(c.clone());
        }
        let body = match call.output {
            Output::Table => TableConvertor::for_kind(&call.kind).table(
                &listed.items,
                list_meta,
                include_object(call)?,
                true,
                self.clock.now(),
            ),
            Output::PartialMetadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta,
                "items": listed.items.iter().map(partial_object_metadata).collect::<Vec<_>>(),
            }),
            _ => json!({
                "kind": def.list_kind,
                "apiVersion": def.api_version(),
                "metadata": list_meta,
                "items": listed.items,
            }),
        };
        Ok(Reply::new(StatusCode::OK, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = ContinueToken {
            revision: 42,
            start_after: "/registry/g/ws/default/a".into(),
        };
        let s = t.encode();
        assert_eq!(ContinueToken::decode(&s, "/registry/g/ws/").unwrap(), t);
        assert!(ContinueToken::decode(&s, "/registry/other/").is_err());
        assert!(ContinueToken::decode("!!", "/").is_err());
    }

    #[test]
    fn resource_version_semantics() {
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(list_revision(&q(""), 10, false).unwrap(), None);
        assert_eq!(list_revision(&q("resourceVersion=0"), 10, true).unwrap(), None);
        assert_eq!(
            list_revision(&q("resourceVersion=5&resourceVersionMatch=Exact"), 10, false).unwrap(),
            Some(5)
        );
        assert_eq!(
            list_revision(
                &q("resourceVersion=5&resourceVersionMatch=NotOlderThan"),
                10,
                true
            )
            .unwrap(),
            None
        );
        assert_eq!(list_revision(&q("resourceVersion=5"), 10, true).unwrap(), Some(5));
        assert_eq!(
            list_revision(&q("resourceVersion=11"), 10, false)
                .unwrap_err()
                .code,
            504
        );
        assert_eq!(
            list_revision(&q("resourceVersionMatch=Exact"), 10, false)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            list_revision(&q("resourceVersion=0&resourceVersionMatch=Exact"), 10, false)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            list_revision(&q("resourceVersion=x"), 10, false)
                .unwrap_err()
                .code,
            400
        );
    }
}
