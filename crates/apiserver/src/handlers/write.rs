//! CREATE and UPDATE, and the optimistic-concurrency update loop every mutation goes through.

use std::sync::Arc;

use http::StatusCode;
use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use ironnet_store::{Compare, Op, Txn, TxnOutcome};
use serde_json::Value;

use super::{decode_stored, encode_for_store, object_rv};
use crate::error::{ApiError, GroupResource};
use crate::meta;
use crate::registry::RegisteredKind;
use crate::server::{Call, Reply, Server};
use crate::strategy::{AdmissionContext, SideEffects};

/// Which part of an object an update may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The main resource: everything except `status` when the status subresource is enabled.
    Main,
    /// The `/status` subresource: only `status`.
    Status,
}

/// The outcome of an update.
pub(crate) struct Updated {
    pub(crate) object: Value,
}

fn gr(kind: &RegisteredKind) -> GroupResource {
    GroupResource::new(&kind.def.group, &kind.def.plural)
}

/// Finalizers that block removal: `metadata.finalizers`, plus `spec.finalizers` for namespaces.
pub(crate) fn blocking_finalizers(kind: &RegisteredKind, obj: &Value) -> usize {
    let mut n = meta::finalizers(obj).len();
    if kind.def.group.is_empty() && kind.def.plural == "namespaces" {
        n += obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
    }
    n
}

impl Server {
    pub(crate) fn admission(&self, dry_run: bool) -> AdmissionContext {
        AdmissionContext::new(self.store.clone(), self.registry.clone(), dry_run)
            .with_clock(self.clock.clone())
    }

    /// Runs a transaction of the object's own compare/op plus side effects. `Ok(None)`: the
    /// object's own compare failed; `Err` with retry: a side-effect compare failed.
    pub(crate) async fn commit(&self, own: Compare, op: Op, side: &SideEffects) -> Result<Commit, ApiError> {
        let own_rev = own.mod_revision;
        let mut compares = vec![own];
        compares.extend(side.compares.iter().cloned());
        let mut ops = vec![op];
        ops.extend(side.ops.iter().cloned());
        match self.store.txn(Txn { compares, ops }).await? {
            TxnOutcome::Succeeded { revision, .. } => Ok(Commit::Done(revision)),
            TxnOutcome::Failed { current } => {
                let own_now = current.first().cloned().flatten().map_or(0, |kv| kv.mod_revision);
                if own_now != own_rev {
                    Ok(Commit::ObjectChanged)
                } else if side.retryable {
                    Ok(Commit::SideEffectChanged)
                } else {
                    Err(ApiError::conflict(
                        &GroupResource::default(),
                        "",
                        "a related object changed concurrently; please retry",
                    ))
                }
            }
        }
    }

    /// Creates `obj` (already type-checked) in `namespace`.
    pub(crate) async fn create_object(
        &self,
        kind: &Arc<RegisteredKind>,
        namespace: Option<&str>,
        mut obj: Value,
        dry_run: bool,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        let def = &kind.def;
        {
            let m = meta::metadata_mut(&mut obj);
            if def.namespaced() {
                let ns = namespace.unwrap_or_default();
                match m.get("namespace").and_then(Value::as_str) {
                    None | Some("") => {
                        m.insert("namespace".into(), Value::String(ns.to_owned()));
                    }
                    Some(n) if n == ns => {}
                    Some(_) => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                }
            } else {
                m.remove("namespace");
            }
            if m.get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ApiError::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            m.remove("resourceVersion");
            let has_name = m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !has_name {
                match m
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    Some(base) => {
                        let n = meta::generate_name(base);
                        m.insert("name".into(), Value::String(n));
                    }
                    None => {
                        let errs: ErrorList = FieldError::required(
                            &Path::new("metadata").child("name"),
                            "name or generateName is required",
                        )
                        .into();
                        return Err(ApiError::invalid(&def.group, &def.kind, "", &errs));
                    }
                }
            }
            for f in meta::SERVER_OWNED {
                m.remove(*f);
            }
            m.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
            m.insert(
                "creationTimestamp".into(),
                Value::String(meta::format_time(self.clock.now())),
            );
            m.insert("generation".into(), Value::from(1));
        }
        if def.status_subresource
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        let name = meta::name(&obj).to_owned();
        kind.strategy.default(&mut obj);
        if let Some(m) = manager {
            crate::apply::record_update(&self.kind_schema(def), None, &mut obj, m, None, self.clock.now());
        }
        let mut errs = meta::validate_object_meta_of(def, &obj);
        errs.extend(ironnet_structured::validate_against_schema(&def.schema, &obj));
        if errs.is_empty() {
            errs.extend(kind.strategy.validate_create(&obj));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, &name, &errs));
        }
        if let Some(ns) = namespace.filter(|_| def.namespaced()) {
            self.check_namespace(ns, true).await?;
        }
        let key = def.key(namespace, &name);
        let ctx = self.admission(dry_run);
        for _ in 0..=self.config.max_admission_retries {
            let mut candidate = obj.clone();
            let side = kind.strategy.admit_create(&ctx, &mut candidate).await?;
            if dry_run {
                if self.store.get(&key, None).await?.is_some() {
                    return Err(ApiError::already_exists(&gr(kind), &name));
                }
                return Ok(candidate);
            }
            let bytes = encode_for_store(&candidate);
            let op = Op::Put {
                key: key.clone(),
                value: bytes,
            };
            match self
                .commit(
                    Compare {
                        key: key.clone(),
                        mod_revision: 0,
                    },
                    op,
                    &side,
                )
                .await?
            {
                Commit::Done(rev) => {
                    meta::set_resource_version(&mut candidate, rev);
                    return Ok(candidate);
                }
                Commit::ObjectChanged => return Err(ApiError::already_exists(&gr(kind), &name)),
                Commit::SideEffectChanged => continue,
            }
        }
        Err(ApiError::conflict(
            &gr(kind),
            &name,
            "admission retries exhausted; please retry",
        ))
    }

    /// POST.
    pub(crate) async fn create(&self, call: &Call) -> Result<Reply, ApiError> {
        if call.subresource.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let (obj, warnings) = self.decode_object_body(call)?;
        let dry_run = call.query.dry_run()?;
        let created = self
            .create_object(
                &call.kind,
                call.namespace.as_deref(),
                obj,
                dry_run,
                Some(&call.field_manager),
            )
            .await?;
        let mut reply = Reply::new(StatusCode::CREATED, self.render_object(call, created)?);
        reply.warnings = warnings;
        Ok(reply)
    }

    /// PUT.
    pub(crate) async fn update(&self, call: &Call) -> Result<Reply, ApiError> {
        let (obj, warnings) = self.decode_object_body(call)?;
        let name = call.name.clone().unwrap_or_default();
        let body_name = meta::name(&obj);
        if body_name.is_empty() {
            let errs: ErrorList =
                FieldError::required(&Path::new("metadata").child("name"), "name is required").into();
            return Err(ApiError::invalid(
                &call.def().group,
                &call.def().kind,
                &name,
                &errs,
            ));
        }
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let part = if call.is_status() {
            Part::Status
        } else {
            Part::Main
        };
        let dry_run = call.query.dry_run()?;
        let updated = self
            .update_object(
                &call.kind,
                call.namespace.as_deref(),
                &name,
                part,
                dry_run,
                Some(&call.field_manager),
                &mut |_cur| Ok(obj.clone()),
            )
            .await?;
        let mut reply = Reply::new(StatusCode::OK, self.render_object(call, updated.object)?);
        reply.warnings = warnings;
        Ok(reply)
    }

    /// The update loop: read, mutate, prepare, validate, skip no-ops, admit, commit; retried
    /// when the object changed underneath (an explicit resourceVersion in the mutated object
    /// turns that into 409 Conflict instead).
    pub(crate) async fn update_object(
        &self,
        kind: &Arc<RegisteredKind>,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        dry_run: bool,
        manager: Option<&str>,
        mutate: &mut (dyn FnMut(&Value) -> Result<Value, ApiError> + Send),
    ) -> Result<Updated, ApiError> {
        let def = &kind.def;
        let key = def.key(namespace, name);
        let ctx = self.admission(dry_run);
        for _ in 0..=(self.config.max_admission_retries * 4) {
            let kv = self
                .store
                .get(&key, None)
                .await?
                .ok_or_else(|| ApiError::not_found(&gr(kind), name))?;
            let current = decode_stored(&kv)?;
            let requested = mutate(&current)?;
            if let Some(rv) = object_rv(&requested)?
                && rv != kv.mod_revision
            {
                return Err(ApiError::conflict_modified(&gr(kind), name));
            }
            let req_uid = meta::meta_str(&requested, "uid");
            if !req_uid.is_empty() && req_uid != meta::meta_str(&current, "uid") {
                return Err(ApiError::conflict(
                    &gr(kind),
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {req_uid}, UID in object meta: {}",
                        meta::meta_str(&current, "uid")
                    ),
                ));
            }
            let mut new = self.prepare_update(kind, &current, requested, part)?;
            if let Some(m) = manager {
                let sub = (part == Part::Status).then_some("status");
                crate::apply::record_update(
                    &self.kind_schema(def),
                    Some(&current),
                    &mut new,
                    m,
                    sub,
                    self.clock.now(),
                );
            }
            let remove = meta::is_deleting(&new) && blocking_finalizers(kind, &new) == 0;
            let value = encode_for_store(&new);
            if !remove && value == kv.value {
                // No-op: no new revision, no event.
                return Ok(Updated { object: current });
            }
            let side = if remove {
                kind.strategy.admit_delete(&ctx, &current).await?
            } else {
                kind.strategy.admit_update(&ctx, &mut new, &current).await?
            };
            if dry_run {
                return Ok(Updated { object: new });
            }
            let op = if remove {
                Op::Delete { key: key.clone() }
            } else {
                Op::Put {
                    key: key.clone(),
                    value: encode_for_store(&new),
                }
            };
            let own = Compare {
                key: key.clone(),
                mod_revision: kv.mod_revision,
            };
            match self.commit(own, op, &side).await? {
                Commit::Done(rev) => {
                    meta::set_resource_version(&mut new, rev);
                    return Ok(Updated { object: new });
                }
                Commit::ObjectChanged | Commit::SideEffectChanged => continue,
            }
        }
        Err(ApiError::conflict(
            &gr(kind),
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// Merges a requested object onto the current one: server-owned fields, status vs main
    /// resource, generation, defaulting and validation.
    fn prepare_update(
        &self,
        kind: &RegisteredKind,
        current: &Value,
        requested: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let def = &kind.def;
        let name = meta::name(current).to_owned();
        let mut new = match part {
            Part::Status => {
                let mut n = current.clone();
                match requested.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                n
            }
            Part::Main => {
                let mut n = requested;
                if def.status_subresource {
                    match current.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(m) = n.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        if meta::name(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&new)
            )));
        }
        let ns = meta::meta_str(current, "namespace").to_owned();
        let new_ns = meta::meta_str(&new, "namespace");
        if def.namespaced() && !new_ns.is_empty() && new_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        {
            let m = meta::metadata_mut(&mut new);
            if def.namespaced() {
                m.insert("namespace".into(), Value::String(ns));
            }
            m.remove("resourceVersion");
            if !m.contains_key("managedFields")
                && let Some(mf) = current.pointer("/metadata/managedFields")
            {
                m.insert("managedFields".into(), mf.clone());
            }
        }
        meta::keep_server_owned(&mut new, current);
        // While deleting, finalizers may only be removed, never added (kube-apiserver's rule).
        if meta::is_deleting(current) {
            let old_f = meta::finalizers(current);
            if meta::finalizers(&new).iter().any(|f| !old_f.contains(f)) {
                let errs: ErrorList = FieldError::forbidden(
                    &Path::new("metadata").child("finalizers"),
                    "no new finalizers can be added if the object is being deleted",
                )
                .into();
                return Err(ApiError::invalid(&def.group, &def.kind, &name, &errs));
            }
        }
        if part == Part::Main {
            kind.strategy.default(&mut new);
        }
        let generation = meta::generation(current).max(1);
        let bumped = if meta::spec_changed(&new, current) {
            generation + 1
        } else {
            generation
        };
        meta::metadata_mut(&mut new).insert("generation".into(), Value::from(bumped));
        let mut errs = meta::validate_object_meta_of(def, &new);
        errs.extend(ironnet_structured::validate_against_schema(&def.schema, &new));
        if errs.is_empty() {
            errs.extend(match part {
                Part::Main => kind.strategy.validate_update(&new, current),
                Part::Status => kind.strategy.validate_status_update(&new, current),
            });
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, &name, &errs));
        }
        Ok(new)
    }
}

/// The result of [`Server::commit`].
pub(crate) enum Commit {
    Done(u64),
    ObjectChanged,
    SideEffectChanged,
}
