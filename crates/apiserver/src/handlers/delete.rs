//! DELETE and DELETECOLLECTION: preconditions, finalizers and propagation policies.

use std::sync::Arc;

use http::StatusCode;
use ironnet_store::{Compare, Op};
use serde_json::{Value, json};

use super::decode_stored;
use super::read::Selectors;
use super::write::{Commit, blocking_finalizers};
use crate::error::{ApiError, GroupResource};
use crate::meta;
use crate::registry::RegisteredKind;
use crate::server::{Call, Reply, Server};

/// The finalizer that makes an owner wait for its dependents (foreground deletion).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer that makes the garbage collector orphan dependents before the owner goes.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now; the garbage collector deletes dependents afterwards.
    Background,
    /// Delete dependents first, then the owner.
    Foreground,
    /// Remove the owner reference from dependents, then delete the owner.
    Orphan,
}

/// Parsed `DeleteOptions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeleteOptions {
    pub(crate) propagation: Propagation,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) dry_run: bool,
}

impl DeleteOptions {
    /// From the body (`DeleteOptions` JSON, may be empty) and query parameters.
    pub(crate) fn parse(call: &Call) -> Result<Self, ApiError> {
        let body: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            crate::body::decode_delete_options(call.content_type.as_deref(), &call.body)?
        };
        let q = &call.query;
        let policy = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or(q.get("propagationPolicy"))
            .unwrap_or("");
        let orphan =
            body.get("orphanDependents")
                .and_then(Value::as_bool)
                .or(match q.get("orphanDependents") {
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    _ => None,
                });
        let propagation = match (policy, orphan) {
            ("Foreground", _) => Propagation::Foreground,
            ("Orphan", _) => Propagation::Orphan,
            ("Background", _) => Propagation::Background,
            ("", Some(true)) => Propagation::Orphan,
            ("", _) => Propagation::Background,
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        let pre = body.get("preconditions");
        let s = |k: &str| {
            pre.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mut dry_run = q.dry_run()?;
        if let Some(d) = body.get("dryRun").and_then(Value::as_array) {
            for v in d {
                match v.as_str() {
                    Some("All") => dry_run = true,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "dryRun: Unsupported value: {other:?}: supported values: \"All\""
                        )));
                    }
                }
            }
        }
        Ok(DeleteOptions {
            propagation,
            uid: s("uid"),
            resource_version: s("resourceVersion"),
            dry_run,
        })
    }

    /// Background deletion without preconditions.
    pub(crate) fn background() -> Self {
        DeleteOptions {
            propagation: Propagation::Background,
            uid: None,
            resource_version: None,
            dry_run: false,
        }
    }
}

/// The outcome of a delete.
pub(crate) enum Deleted {
    /// Removed from the store; the last state.
    Gone(Value),
    /// Marked for deletion, waiting for finalizers.
    Pending(Value),
}

impl Server {
    /// Deletes one object (or starts its graceful deletion when finalizers block it).
    pub(crate) async fn delete_object(
        &self,
        kind: &Arc<RegisteredKind>,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let def = &kind.def;
        let gr = GroupResource::new(&def.group, &def.plural);
        if def.group.is_empty()
            && def.plural == "namespaces"
            && self.config.immortal_namespaces.iter().any(|n| n == name)
        {
            // kube-apiserver's NamespaceLifecycle admission, dry runs included.
            return Err(ApiError::forbidden(
                &gr,
                name,
                "this namespace may not be deleted",
            ));
        }
        let key = def.key(namespace, name);
        let ctx = self.admission(opts.dry_run);
        for _ in 0..=(self.config.max_admission_retries * 4) {
            let kv = self
                .store
                .get(&key, None)
                .await?
                .ok_or_else(|| ApiError::not_found(&gr, name))?;
            let current = decode_stored(&kv)?;
            let uid = meta::meta_str(&current, "uid");
            if let Some(want) = &opts.uid
                && want != uid
            {
                return Err(ApiError::conflict(
                    &gr,
                    name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                ));
            }
            if let Some(want) = &opts.resource_version
                && *want != kv.mod_revision.to_string()
            {
                return Err(ApiError::conflict(
                    &gr,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
            if !meta::is_deleting(&current) {
                // A deletion already accepted is not judged again (finalizers may be releasing it).
                let errs = kind.strategy.validate_delete(&ctx, &current).await?;
                if !errs.is_empty() {
                    return Err(ApiError::invalid(&def.group, &def.kind, name, &errs));
                }
            }
            let mut finalizers = meta::finalizers(&current);
            let wanted = match opts.propagation {
                Propagation::Foreground => Some(FOREGROUND_FINALIZER),
                Propagation::Orphan => Some(ORPHAN_FINALIZER),
                Propagation::Background => None,
            };
            let is_namespace = def.group.is_empty() && def.plural == "namespaces";
            let mut marked = current.clone();
            if let Some(f) = wanted
                && !finalizers.iter().any(|x| x == f)
                && (blocking_finalizers(kind, &current) > 0
                    || self.has_dependents(&current).await?
                    || is_namespace)
            {
                finalizers.push(f.to_owned());
                meta::metadata_mut(&mut marked).insert("finalizers".into(), json!(finalizers));
            }
            if blocking_finalizers(kind, &marked) > 0 || is_namespace {
                // Graceful: mark and let finalizers (and the namespace controller) finish.
                if meta::is_deleting(&current) && marked == current {
                    return Ok(Deleted::Pending(current));
                }
                {
                    let m = meta::metadata_mut(&mut marked);
                    if !m.contains_key("deletionTimestamp") {
                        m.insert(
                            "deletionTimestamp".into(),
                            json!(meta::format_time(self.clock.now())),
                        );
                        m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    }
                }
                if is_namespace {
                    marked["status"] = json!({"phase": "Terminating"});
                }
                if opts.dry_run {
                    return Ok(Deleted::Pending(marked));
                }
                let op = Op::Put {
                    key: key.clone(),
                    value: super::encode_for_store(&marked),
                };
                match self
                    .commit(
                        Compare {
                            key: key.clone(),
                            mod_revision: kv.mod_revision,
                        },
                        op,
                        &Default::default(),
                    )
                    .await?
                {
                    Commit::Done(rev) => {
                        meta::set_resource_version(&mut marked, rev);
                        return Ok(Deleted::Pending(marked));
                    }
                    _ => continue,
                }
            }
            let side = kind.strategy.admit_delete(&ctx, &current).await?;
            if opts.dry_run {
                return Ok(Deleted::Gone(current));
            }
            let op = Op::Delete { key: key.clone() };
            match self
                .commit(
                    Compare {
                        key: key.clone(),
                        mod_revision: kv.mod_revision,
                    },
                    op,
                    &side,
                )
                .await?
            {
                Commit::Done(_) => return Ok(Deleted::Gone(current)),
                _ => continue,
            }
        }
        Err(ApiError::conflict(
            &gr,
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// Whether any object names `obj` as an owner (asks the garbage collector's index).
    async fn has_dependents(&self, obj: &Value) -> Result<bool, ApiError> {
        let uid = meta::meta_str(obj, "uid");
        Ok(!uid.is_empty() && crate::gc::has_dependents(self, uid).await?)
    }

    /// DELETE of one object: 200 with the object when removed, 202 when waiting for finalizers.
    pub(crate) async fn delete(&self, call: &Call) -> Result<Reply, ApiError> {
        if call.subresource.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let opts = DeleteOptions::parse(call)?;
        let name = call.name.clone().unwrap_or_default();
        Ok(
            match self
                .delete_object(&call.kind, call.namespace.as_deref(), &name, &opts)
                .await?
            {
                Deleted::Gone(obj) => Reply::new(StatusCode::OK, self.render_object(call, obj)?),
                Deleted::Pending(obj) => Reply::new(StatusCode::ACCEPTED, self.render_object(call, obj)?),
            },
        )
    }

    /// DELETECOLLECTION: deletes every matching object; returns the list of what was deleted, or
    /// the first 422 of an item whose deletion `Strategy::validate_delete` refused (the others
    /// are deleted all the same).
    pub(crate) async fn delete_collection(&self, call: &Call) -> Result<Reply, ApiError> {
        let def = call.def();
        if def.group.is_empty() && def.plural == "namespaces" {
            // As in kube-apiserver, namespaces are deleted one at a time.
            return Err(ApiError::method_not_allowed());
        }
        let sel = Selectors::parse(def, &call.query)?;
        let opts = DeleteOptions::parse(call)?;
        let mut q = call.query.clone();
        q.remove("limit");
        q.remove("continue");
        let listed = self
            .list_objects(def, call.namespace.as_deref(), &sel, &q)
            .await?;
        let mut items = Vec::new();
        let mut refused = None;
        for obj in listed.items {
            let ns = meta::meta_str(&obj, "namespace").to_owned();
            let ns = (!ns.is_empty()).then_some(ns);
            match self
                .delete_object(&call.kind, ns.as_deref(), meta::name(&obj), &opts)
                .await
            {
                Ok(Deleted::Gone(o) | Deleted::Pending(o)) => items.push(o),
                Err(e) if e.code == 404 => {}
                // Like kube-apiserver, the other items are still deleted; the first refusal is the answer.
                Err(e) if e.code == 422 => {
                    refused.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = refused {
            return Err(e);
        }
        let body = json!({
            "kind": def.list_kind, "apiVersion": def.api_version(),
            "metadata": {"resourceVersion": listed.revision.to_string()}, "items": items,
        });
        Ok(Reply::new(StatusCode::OK, body))
    }
}
