//! "Delete gone": metalnet objects whose origin names an apinet object that no longer exists (or is another
//! incarnation with a different UID) are deleted.
//!
//! The finalizers make this the exception (a source removed while metalnetlet was not running, or its finalizer
//! removed by hand); upstream does the same from the NotFound branch of each reconcile, which kube-rs does not
//! call for a vanished object, so here one controller per metalnet kind watches the derived objects instead.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_runtime::ReconcileError;
use ironnet_runtime::cache::IndexedStore;
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use ironnet_runtime::informer::Informer;
use ironnet_runtime::origin::{self, Origin};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{Ctx, Stop, delete_gone, stopped};

struct GcCtx<A: Resource<DynamicType = ()> + 'static> {
    ctx: Arc<Ctx>,
    origin: Origin,
    /// The sources as metalnetlet's cache shows them: a source found there needs no fresh read.
    sources: IndexedStore<A>,
}

async fn reconcile<M, A>(obj: Arc<M>, gc: Arc<GcCtx<A>>) -> Result<Action, ReconcileError>
where
    M: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    A: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let Some(data) = gc.origin.data_of(obj.labels(), obj.annotations()) else {
        return Ok(Action::await_change());
    };
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cached = gc.sources.get(Some(&data.namespace), &data.name);
    if origin::source_exists_cached::<A>(cached.as_deref(), gc.ctx.apinet.clone(), &data).await? {
        return Ok(Action::await_change());
    }
    tracing::info!(kind = %M::kind(&()), name = %obj.name_any(), source = %data.name, "deleting metalnet object of a vanished source");
    delete_gone(&gc.ctx.metalnet_api::<M>(), &obj.name_any()).await?;
    Ok(Action::await_change())
}

/// Runs the orphan collector for metalnet kind `M` derived from apinet kind `A` by `origin`, over the
/// informer `objects` (with `sources`, the cache of `A`), until `stop` fires.
///
/// Only the origin of an object matters, so updates that keep it are not reconciled (the status updates of a
/// live object would each cost a fresh read of its source); creations, deletions and re-lists are.
pub async fn run<M, A>(
    ctx: Arc<Ctx>,
    objects: Informer<M>,
    sources: IndexedStore<A>,
    origin: Origin,
    stop: Stop,
) where
    M: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    A: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let stream = objects.subscribe_filtered(move |o: &M| {
        ironnet_runtime::cache::hash_of(&origin.data_of(o.labels(), o.annotations()))
    });
    Controller::for_stream(stream, objects.store().reader())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency))
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument(
                &format!("metalnetlet-gc-{}", M::kind(&()).to_lowercase()),
                reconcile::<M, A>,
            ),
            ironnet_runtime::error_policy,
            Arc::new(GcCtx { ctx, origin, sources }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
