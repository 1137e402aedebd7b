//! Finalizers and deletions as every ironnet reconciler does them.
//!
//! A finalizer list is written with a merge patch guarded by the object's resourceVersion, so a concurrent
//! change of the list (another controller adding its own finalizer) is never overwritten: the write fails with a
//! conflict instead, which [`crate::error_policy`] retries after [`crate::reconcile::CONFLICT_RETRY`] with the
//! fresh object. An object that is gone needs no finalizer change, so NotFound is success.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::reconcile::is_not_found;

/// Writes `finalizers` as `obj`'s whole finalizer list, guarded by its resourceVersion (see the module
/// documentation); NotFound is success.
pub async fn write_finalizers<K>(api: &Api<K>, obj: &K, finalizers: Vec<String>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch =
        json!({ "metadata": { "resourceVersion": obj.meta().resource_version, "finalizers": finalizers } });
    match api
        .patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Adds `finalizer` to `obj` if missing. Returns whether it had to be added; the caller then waits for the
/// update event (as upstream controllers requeue) instead of acting on the stale object.
pub async fn ensure_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(false);
    }
    let mut f = obj.finalizers().to_vec();
    f.push(finalizer.to_owned());
    write_finalizers(api, obj, f).await?;
    Ok(true)
}

/// Removes `finalizer` from `obj` if present.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if !obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let f = obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    write_finalizers(api, obj, f).await
}

/// Deletes object `name`; returns whether it is gone (NotFound before the request, or deleted at once rather
/// than marked for deletion behind finalizers).
pub async fn delete_gone<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &Default::default()).await {
        Ok(either) => Ok(either.is_right()),
        Err(e) if is_not_found(&e) => Ok(true),
        Err(e) => Err(e),
    }
}
