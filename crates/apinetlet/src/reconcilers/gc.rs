//! "Delete gone" (upstream ironcore-net's pattern over origin metadata, `utils/origin`): apinet objects whose
//! origin names an ironcore object that no longer exists (or is a different incarnation with another UID) are
//! deleted — or, for claimed NetworkInterfaces, released by stripping the origin metadata.
//!
//! The finalizers make this the exception (a source removed while apinetlet was not running, or its finalizer
//! removed by hand); a controller over the apinet kind catches both the initial list and later events.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_runtime::cache::hash_of;
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::PredicateConfig;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Ctx, ReconcileError, Stop, delete_gone, is_not_found, stopped};
use ironnet_runtime::origin::{self, Origin};

/// What happens to an orphaned apinet object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orphan {
    /// Delete it.
    Delete,
    /// Remove the origin labels and annotation (the object is not apinetlet's to delete).
    Release,
}

struct GcCtx {
    ctx: Arc<Ctx>,
    origin: Origin,
    orphan: Orphan,
}

async fn reconcile<A, I>(obj: Arc<A>, gc: Arc<GcCtx>) -> Result<Action, ReconcileError>
where
    A: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    I: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let Some(data) = gc.origin.data_of(obj.labels(), obj.annotations()) else {
        return Ok(Action::await_change());
    };
    if origin::source_exists::<I>(gc.ctx.ironcore.clone(), &data).await? {
        return Ok(Action::await_change());
    }
    let api: Api<A> = gc.ctx.apinet_api();
    match gc.orphan {
        Orphan::Delete => {
            tracing::info!(name = %obj.name_any(), source = %data.name, "deleting apinet object of a vanished source");
            delete_gone(&api, &obj.name_any()).await?;
        }
        Orphan::Release => {
            let patch = json!({
                "metadata": {
                    "labels": { gc.origin.uid_label(): null, gc.origin.namespace_label(): null },
                    "annotations": { gc.origin.name_annotation(): null },
                },
            });
            match api
                .patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::await_change())
}

/// Runs the orphan collector for apinet kind `A` derived from ironcore kind `I` until `stop` fires.
pub async fn run<A, I>(ctx: Arc<Ctx>, origin: Origin, orphan: Orphan, stop: Stop)
where
    A: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    I: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    // Only objects carrying the origin's UID label are of interest, and of those only their origin: the
    // status and spec updates of a live object (several per interface) would each cost a fresh read of
    // its source. A new process sees every object once, which catches sources removed meanwhile.
    let wc = watcher::Config::default().labels(&origin.uid_label());
    let api: Api<A> = ctx.apinet_api();
    let concurrency = ctx.concurrency;
    let (reader, writer) = reflector::store();
    let origin_of = move |o: &A| Some(hash_of(&origin.data_of(o.labels(), o.annotations())));
    let objects = reflector(writer, watcher(api, wc).default_backoff())
        .applied_objects()
        .predicate_filter(origin_of, PredicateConfig::default());
    Controller::for_stream(objects, reader)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument(
                &format!("apinetlet-gc-{}", A::kind(&()).to_lowercase()),
                reconcile::<A, I>,
            ),
            ironnet_runtime::error_policy,
            Arc::new(GcCtx { ctx, origin, orphan }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
