//! The garbage collector: deletes dependents whose owners are gone (background), deletes the
//! dependents of owners deleted in the foreground before releasing them, and orphans dependents
//! for `propagationPolicy: Orphan`.
//!
//! It keeps an index owner-uid → dependent keys, built from one list of `/registry/` and kept
//! current by a watch. Only objects with `ownerReferences` take memory.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use ironnet_store::{EventKind, ListOptions, Revision};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::handlers::decode_stored;
use crate::handlers::delete::{DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation};
use crate::handlers::write::Part;
use crate::meta;
use crate::registry::RegisteredKind;
use crate::server::Server;

/// Owner → dependents index.
#[derive(Debug, Default)]
pub(crate) struct GcIndex {
    ready: bool,
    by_owner: HashMap<String, HashSet<String>>,
    owners_of: HashMap<String, Vec<String>>,
}

impl GcIndex {
    fn set(&mut self, key: &str, owners: Vec<String>) {
        self.remove(key);
        if owners.is_empty() {
            return;
        }
        for o in &owners {
            self.by_owner.entry(o.clone()).or_default().insert(key.to_owned());
        }
        self.owners_of.insert(key.to_owned(), owners);
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.owners_of.remove(key) {
            for o in old {
                if let Some(set) = self.by_owner.get_mut(&o) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_owner.remove(&o);
                    }
                }
            }
        }
    }

    fn dependents(&self, uid: &str) -> Vec<String> {
        self.by_owner
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the index knows of objects owned by `uid`.
pub(crate) async fn has_dependents(server: &Server, uid: &str) -> Result<bool, ApiError> {
    Ok(server
        .gc_index
        .lock()
        .by_owner
        .get(uid)
        .is_some_and(|s| !s.is_empty()))
}

/// Work items.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Work {
    /// Check a dependent's owners.
    Dependent(String),
    /// Process an owner that is being deleted with the orphan or foreground finalizer.
    Owner(String),
}

/// Runs the garbage collector until the task is aborted.
pub(crate) async fn run(server: Arc<Server>) {
    loop {
        if let Err(e) = run_once(&server).await {
            tracing::warn!(error = %e, "garbage collector restarting");
        }
        server.gc_index.lock().ready = false;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

async fn run_once(server: &Arc<Server>) -> Result<(), ApiError> {
    let mut work = BTreeSet::new();
    let revision = initial_scan(server, &mut work).await?;
    let mut stream = server.store.watch("/registry/", revision).await?;
    let mut resync = tokio::time::interval(server.config.resync_interval);
    resync.tick().await;
    loop {
        process(server, &mut work).await;
        tokio::select! {
            item = stream.next() => {
                let Some(item) = item else { return Ok(()) };
                let resp = item?;
                for ev in resp.events {
                    observe(server, ev, &mut work);
                }
            }
            _ = resync.tick() => {
                let deps: Vec<String> = server.gc_index.lock().owners_of.keys().cloned().collect();
                work.extend(deps.into_iter().map(Work::Dependent));
            }
        }
    }
}

async fn initial_scan(server: &Server, work: &mut BTreeSet<Work>) -> Result<Revision, ApiError> {
    let mut index = GcIndex::default();
    let mut start_after = None;
    let mut revision = None;
    loop {
        let page = server
            .store
            .list(
                "/registry/",
                ListOptions {
                    revision,
                    limit: Some(1000),
                    start_after: start_after.clone(),
                },
            )
            .await?;
        revision = Some(page.revision);
        for kv in &page.items {
            let Ok(obj) = decode_stored(kv) else { continue };
            let owners = owner_uids(&obj);
            if !owners.is_empty() {
                work.insert(Work::Dependent(kv.key.clone()));
            }
            index.set(&kv.key, owners);
            let f = meta::finalizers(&obj);
            if meta::is_deleting(&obj)
                && f.iter()
                    .any(|f| f == FOREGROUND_FINALIZER || f == ORPHAN_FINALIZER)
            {
                work.insert(Work::Owner(kv.key.clone()));
            }
            start_after = Some(kv.key.clone());
        }
        if !page.more {
            break;
        }
    }
    index.ready = true;
    *server.gc_index.lock() = index;
    Ok(revision.unwrap_or(0))
}

/// The metadata the collector looks at, decoded without building the rest of the object: every write in
/// the cluster passes through [`observe`], and a full decode (twice, with the previous version) made the
/// collector a visible share of the API server's CPU.
#[derive(serde::Deserialize, Default)]
struct GcMeta {
    #[serde(default)]
    metadata: GcMetadata,
}

impl GcMetadata {
    fn owner_references(&self) -> &[GcOwner] {
        self.owner_references.as_deref().unwrap_or_default()
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GcMetadata {
    // `Option`: a stored `null` must decode as well as an absent field.
    #[serde(default)]
    owner_references: Option<Vec<GcOwner>>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
    #[serde(default)]
    deletion_timestamp: Option<String>,
}

#[derive(serde::Deserialize)]
struct GcOwner {
    #[serde(default)]
    uid: Option<String>,
}

impl GcMeta {
    fn decode(kv: &ironnet_store::KeyValue) -> Option<GcMeta> {
        serde_json::from_slice(&kv.value).ok()
    }

    fn owners(&self) -> Vec<String> {
        self.metadata
            .owner_references()
            .iter()
            .filter_map(|o| o.uid.clone())
            .collect()
    }
}

fn observe(server: &Server, ev: ironnet_store::Event, work: &mut BTreeSet<Work>) {
    let key = ev.kv.key.clone();
    match ev.kind {
        EventKind::Put => {
            let Some(obj) = GcMeta::decode(&ev.kv) else { return };
            let owners = obj.owners();
            if !owners.is_empty() {
                let prev_owners = ev.prev.as_ref().and_then(GcMeta::decode).map(|p| p.owners());
                if prev_owners.as_ref() != Some(&owners) {
                    work.insert(Work::Dependent(key.clone()));
                }
            }
            server.gc_index.lock().set(&key, owners);
            if obj.metadata.deletion_timestamp.is_some()
                && obj
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FOREGROUND_FINALIZER || f == ORPHAN_FINALIZER)
            {
                work.insert(Work::Owner(key));
            }
        }
        EventKind::Delete => {
            let prev = ev.prev.as_ref().and_then(|p| decode_stored(p).ok());
            let mut index = server.gc_index.lock();
            index.remove(&key);
            if let Some(prev) = prev {
                let uid = meta::meta_str(&prev, "uid");
                for d in index.dependents(uid) {
                    work.insert(Work::Dependent(d));
                }
                // Owners waiting in the foreground for this dependent get another look.
                for o in owner_uids(&prev) {
                    if let Some(owner_key) = server.foreground_owners.lock().get(&o) {
                        work.insert(Work::Owner(owner_key.clone()));
                    }
                }
            }
        }
    }
}

async fn process(server: &Server, work: &mut BTreeSet<Work>) {
    while let Some(item) = work.pop_first() {
        let result = match &item {
            Work::Dependent(key) => check_dependent(server, key).await,
            Work::Owner(key) => process_owner(server, key).await,
        };
        if let Err(e) = result
            && e.code != 404
        {
            tracing::debug!(?item, error = %e, "garbage collection step failed");
        }
    }
}

/// Splits a store key into (kind, namespace, name).
fn resolve_key(server: &Server, key: &str) -> Option<(Arc<RegisteredKind>, Option<String>, String)> {
    let kind = server
        .registry
        .kinds()
        .find(|k| key.starts_with(&k.def.key_prefix()))?
        .clone();
    let rest = &key[kind.def.key_prefix().len()..];
    if kind.def.namespaced() {
        let (ns, name) = rest.split_once('/')?;
        Some((kind, Some(ns.to_owned()), name.to_owned()))
    } else {
        Some((kind, None, rest.to_owned()))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum OwnerState {
    Gone,
    DeletingInForeground,
    Present,
}

async fn owner_state(
    server: &Server,
    owner_ref: &Value,
    namespace: Option<&str>,
) -> Result<OwnerState, ApiError> {
    let api_version = owner_ref.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind_name = owner_ref.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = owner_ref.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = owner_ref.get("uid").and_then(Value::as_str).unwrap_or("");
    let Some(kind) = server.registry.by_kind(group, kind_name) else {
        // An owner of a kind this server does not serve cannot be checked; keep the dependent.
        return Ok(OwnerState::Present);
    };
    let ns = if kind.def.namespaced() { namespace } else { None };
    let Some(kv) = server.store.get(&kind.def.key(ns, name), None).await? else {
        return Ok(OwnerState::Gone);
    };
    let owner = decode_stored(&kv)?;
    if meta::meta_str(&owner, "uid") != uid {
        return Ok(OwnerState::Gone);
    }
    if meta::is_deleting(&owner) && meta::finalizers(&owner).iter().any(|f| f == FOREGROUND_FINALIZER) {
        return Ok(OwnerState::DeletingInForeground);
    }
    Ok(OwnerState::Present)
}

async fn check_dependent(server: &Server, key: &str) -> Result<(), ApiError> {
    let Some((kind, ns, name)) = resolve_key(server, key) else {
        return Ok(());
    };
    let Some(kv) = server.store.get(key, None).await? else {
        return Ok(());
    };
    let obj = decode_stored(&kv)?;
    let refs = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if refs.is_empty() {
        return Ok(());
    }
    let mut gone = Vec::new();
    let mut foreground = false;
    let mut present = 0;
    for r in &refs {
        match owner_state(server, r, ns.as_deref()).await? {
            OwnerState::Gone => gone.push(r.get("uid").cloned().unwrap_or(Value::Null)),
            OwnerState::DeletingInForeground => foreground = true,
            OwnerState::Present => present += 1,
        }
    }
    if present == 0 && (foreground || !gone.is_empty()) {
        if meta::is_deleting(&obj) {
            return Ok(());
        }
        let mut opts = DeleteOptions::background();
        if foreground {
            opts.propagation = Propagation::Foreground;
        }
        server.delete_object(&kind, ns.as_deref(), &name, &opts).await?;
    } else if !gone.is_empty() {
        let mut mutate = |cur: &Value| -> Result<Value, ApiError> {
            let mut new = cur.clone();
            if let Some(a) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                a.retain(|r| !gone.contains(r.get("uid").unwrap_or(&Value::Null)));
            }
            Ok(new)
        };
        server
            .update_object(&kind, ns.as_deref(), &name, Part::Main, false, None, &mut mutate)
            .await?;
    }
    Ok(())
}

async fn remove_finalizer(
    server: &Server,
    kind: &Arc<RegisteredKind>,
    ns: Option<&str>,
    name: &str,
    f: &str,
) -> Result<(), ApiError> {
    let mut mutate = |cur: &Value| -> Result<Value, ApiError> {
        let mut new = cur.clone();
        let remaining: Vec<String> = meta::finalizers(cur).into_iter().filter(|x| x != f).collect();
        meta::metadata_mut(&mut new).insert("finalizers".into(), json!(remaining));
        Ok(new)
    };
    server
        .update_object(kind, ns, name, Part::Main, false, None, &mut mutate)
        .await
        .map(|_| ())
}

async fn process_owner(server: &Server, key: &str) -> Result<(), ApiError> {
    let Some((kind, ns, name)) = resolve_key(server, key) else {
        return Ok(());
    };
    let Some(kv) = server.store.get(key, None).await? else {
        return Ok(());
    };
    let owner = decode_stored(&kv)?;
    let uid = meta::meta_str(&owner, "uid").to_owned();
    let finalizers = meta::finalizers(&owner);
    if !meta::is_deleting(&owner) {
        return Ok(());
    }
    let dependents = server.gc_index.lock().dependents(&uid);
    if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
        for d in &dependents {
            let Some((dk, dns, dname)) = resolve_key(server, d) else {
                continue;
            };
            let mut mutate = |cur: &Value| -> Result<Value, ApiError> {
                let mut new = cur.clone();
                if let Some(a) = new
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    a.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                }
                Ok(new)
            };
            match server
                .update_object(&dk, dns.as_deref(), &dname, Part::Main, false, None, &mut mutate)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        remove_finalizer(server, &kind, ns.as_deref(), &name, ORPHAN_FINALIZER).await?;
    } else if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
        server
            .foreground_owners
            .lock()
            .insert(uid.clone(), key.to_owned());
        let mut blocking = 0;
        for d in &dependents {
            let Some((dk, dns, dname)) = resolve_key(server, d) else {
                continue;
            };
            let Some(dkv) = server.store.get(d, None).await? else {
                continue;
            };
            let dep = decode_stored(&dkv)?;
            let blocks = dep
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|r| {
                    r.get("uid").and_then(Value::as_str) == Some(uid.as_str())
                        && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                });
            if blocks {
                blocking += 1;
            }
            if !meta::is_deleting(&dep) {
                let mut opts = DeleteOptions::background();
                opts.propagation = Propagation::Foreground;
                match server.delete_object(&dk, dns.as_deref(), &dname, &opts).await {
                    Ok(crate::handlers::delete::Deleted::Gone(_)) if blocks => blocking -= 1,
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {
                        if blocks {
                            blocking -= 1;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if blocking == 0 {
            server.foreground_owners.lock().remove(&uid);
            remove_finalizer(server, &kind, ns.as_deref(), &name, FOREGROUND_FINALIZER).await?;
        }
    }
    Ok(())
}
