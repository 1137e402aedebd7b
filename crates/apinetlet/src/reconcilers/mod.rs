//! kube-rs reconcilers: thin shells that read the ironcore object (and what it references), call the pure
//! mapping of this crate, apply the apinet objects and write only the status that differs.
//!
//! Every reconciler follows the skeleton of upstream ironcore-net's apinetlet controllers
//! (`apinetlet/controllers`): a deleting source deletes its apinet object and drops the finalizer once that
//! object is gone; a live source first gets the finalizer, then the apinet object is server-side applied
//! (force, field manager [`FIELD_MANAGER`]) and the status is mirrored back. Apinet objects whose source
//! vanished without the finalizer flow are handled by [`gc`].

pub mod gc;
pub mod loadbalancer;
pub mod natgateway;
pub mod network;
pub mod networkinterface;
pub mod networkpolicy;
pub mod virtualip;

pub(crate) use ironnet_runtime::finalizer::{delete_gone, ensure_finalizer, remove_finalizer};
use std::fmt::Debug;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::meta::{FIELD_MANAGER, Source};
use crate::origin::Origin;
use ironnet_runtime::events::{EventRecorder, Occurrence, reason};
pub(crate) use ironnet_runtime::reconcile::{
    CONFLICT_RETRY, Pool, RETRY_AFTER, ReconcileError, is_conflict, is_not_found,
};

/// Delay before checking again whether a deleted apinet object is gone (its own finalizers may hold it).
pub(crate) const DELETE_RECHECK: Duration = Duration::from_millis(500);

/// What every apinetlet reconciler needs.
#[derive(Clone)]
pub struct Ctx {
    /// Client of the ironcore (`networking.ironcore.dev`) API server.
    pub ironcore: Client,
    /// Client of the apinet (`core.apinet.ironcore.dev`) API server.
    pub apinet: Client,
    /// The apinet namespace every derived object lives in.
    pub namespace: String,
    /// Whether LoadBalancer instances get node affinity to the routing destinations' nodes.
    pub node_affinity_aware: bool,
    /// Whether ironcore Network `status.peerings` is left alone.
    pub network_peering_disabled: bool,
    /// Maximum concurrent reconciles per controller.
    pub concurrency: u16,
    /// `--watch-filter`: only ironcore objects whose `common.ironcore.dev/watch-filter` label has this value.
    pub watch_filter: Option<String>,
    /// One watch per ironcore kind for all of apinetlet's controllers (Networks and VirtualIPs are read by
    /// several), through `ironcore`.
    pub ironcore_informers: ironnet_runtime::informer::Informers,
    /// One watch per apinet kind apinetlet derives, in [`Ctx::namespace`], through `apinet`: the triggers of
    /// the controllers and the cache [`apply_changed`] checks.
    pub apinet_informers: ironnet_runtime::informer::Informers,
    /// The apinet applies made, to skip those that cannot change anything ([`apply_changed`]).
    pub applied: ironnet_runtime::applied::AppliedBodies,
    /// Records Events on the ironcore objects, as [`EVENT_REPORTER`], through `ironcore`.
    pub events: EventRecorder,
}

/// The reporting controller of apinetlet's Events (`kubectl describe`'s "From").
pub const EVENT_REPORTER: &str = "apinetlet";

/// Records a Warning `PoolExhausted` on `obj` if `err` says an allocation pool is exhausted (the API server
/// allocates in admission, so the failed apply of the apinet object is where apinetlet learns it); returns
/// `err` for the reconcile to fail with. `family` names the address family for public IPs.
pub(crate) async fn note_exhaustion<K>(
    ctx: &Ctx,
    obj: &K,
    err: ReconcileError,
    family: &str,
) -> ReconcileError
where
    K: Resource<DynamicType = ()>,
{
    let note = match err.exhausted_pool() {
        Some(Pool::PublicIps) => format!(
            "Cannot allocate a public {family} address: the {family} public IP address pool is exhausted (all IP addresses are already allocated); retrying until one is released"
        ),
        Some(Pool::NetworkIds) => "Cannot allocate a network ID: the network ID (VNI) pool is exhausted (all IDs are allocated); retrying until one is released".to_owned(),
        None => return err,
    };
    ctx.events
        .record(obj, Occurrence::warning(reason::POOL_EXHAUSTED, "Allocate", note))
        .await;
    err
}

/// Records a Normal `AddressAllocated` on `obj` saying it got `addresses` (nothing when there are none), once
/// per change: a reconcile that ran on a cache not yet showing the status it wrote writes the same status
/// again, which is no new allocation.
pub(crate) async fn note_allocated<K>(ctx: &Ctx, obj: &K, what: &str, addresses: &[String])
where
    K: Resource<DynamicType = ()>,
{
    if addresses.is_empty() {
        return;
    }
    let note = format!("Allocated {what} {}", addresses.join(", "));
    ctx.events
        .record_change(
            obj,
            Occurrence::normal(reason::ADDRESS_ALLOCATED, "Allocate", note),
        )
        .await;
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The clients carry no useful state to print.
        f.debug_struct("Ctx")
            .field("namespace", &self.namespace)
            .field("node_affinity_aware", &self.node_affinity_aware)
            .field("network_peering_disabled", &self.network_peering_disabled)
            .field("concurrency", &self.concurrency)
            .field("watch_filter", &self.watch_filter)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// A namespaced apinet API in the apinet namespace.
    pub fn apinet_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.apinet.clone(), &self.namespace)
    }
}

/// Label naming the controller instance an ironcore object is meant for (`--watch-filter`).
pub const WATCH_FILTER_LABEL: &str = "common.ironcore.dev/watch-filter";
/// Label marking an ironcore object as managed by something else; apinetlet leaves it alone.
pub const MANAGED_BY_LABEL: &str = "common.ironcore.dev/managed-by";

/// Whether apinetlet ignores `obj` (upstream's watch predicates): it is externally managed, or a watch filter is
/// set and the object's watch-filter label does not carry it.
pub fn ignored(watch_filter: Option<&str>, obj: &impl Resource) -> bool {
    let labels = obj.meta().labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(MANAGED_BY_LABEL).is_some()
        || watch_filter.is_some_and(|f| !f.is_empty() && label(WATCH_FILTER_LABEL) != Some(f))
}

/// The source view (namespace, name, uid) of an ironcore object.
pub(crate) fn source_of<K: Resource>(obj: &K) -> Result<Source, ReconcileError> {
    Ok(Source {
        namespace: obj
            .meta()
            .namespace
            .clone()
            .ok_or(ReconcileError::MissingMetadata("namespace"))?,
        name: obj
            .meta()
            .name
            .clone()
            .ok_or(ReconcileError::MissingMetadata("name"))?,
        uid: obj
            .meta()
            .uid
            .clone()
            .ok_or(ReconcileError::MissingMetadata("uid"))?,
    })
}

/// The deletion half of the skeleton: delete the apinet object, drop the finalizer once it is gone.
pub(crate) async fn finalize<K, A>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
    apinet: &Api<A>,
) -> Result<kube::runtime::controller::Action, ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    A: Resource + Clone + DeserializeOwned + Debug,
{
    use kube::runtime::controller::Action;
    if !obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(Action::await_change());
    }
    let uid = obj.meta().uid.clone().unwrap_or_default();
    if !delete_gone(apinet, &uid).await? {
        return Ok(Action::requeue(DELETE_RECHECK));
    }
    remove_finalizer(api, obj, finalizer).await?;
    Ok(Action::await_change())
}

/// Server-side applies `body` (force, apinetlet's field manager) and returns the applied object.
pub(crate) async fn apply<K>(api: &Api<K>, name: &str, body: &Value) -> Result<K, ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    Ok(api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?)
}

/// Server-side applies `body` to the apinet object `name` of [`Ctx::namespace`] unless the cached object
/// shows that the apply would change nothing (see [`ironnet_runtime::applied`]); returns the object either way.
pub(crate) async fn apply_changed<K>(ctx: &Ctx, name: &str, body: &Value) -> Result<K, ReconcileError>
where
    K: ironnet_runtime::informer::Informed + Serialize,
{
    let cached = ctx
        .apinet_informers
        .get::<K>()
        .store()
        .get(Some(&ctx.namespace), name);
    if let Some(live) = cached.filter(|live| ctx.applied.unchanged(live.as_ref(), body)) {
        return Ok(live.as_ref().clone());
    }
    let applied = apply(&ctx.apinet_api::<K>(), name, body).await?;
    ctx.applied.record(&applied, body);
    Ok(applied)
}

/// The apinet objects of kind `K` as a trigger stream (from [`Ctx::apinet_informers`]).
pub(crate) fn apinet_events<K>(ctx: &Ctx) -> ironnet_runtime::informer::Subscription<K>
where
    K: ironnet_runtime::informer::Informed,
{
    ctx.apinet_informers.get::<K>().subscribe()
}

/// Merge-patches the status subresource of `obj`.
pub(crate) async fn patch_status<K>(api: &Api<K>, obj: &K, patch: &Value) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api
        .patch_status(&obj.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The ironcore Networks as a trigger stream for objects that only need a Network's UID (their apinet
/// network name): a Network's status, finalizer and provider-ID updates do not pass; its creation, its
/// deletion, a new incarnation under the same name and every object of a (re-)list do.
pub(crate) fn network_uid_changes(
    ctx: &Ctx,
) -> ironnet_runtime::informer::Subscription<ironnet_api::networking::Network> {
    ctx.ironcore_informers
        .get::<ironnet_api::networking::Network>()
        .subscribe_filtered(|n| ironnet_runtime::cache::hash_of(&n.metadata.uid))
}

/// Maps an apinet object to the ironcore object its `origin` metadata names (`EnqueueRequestByOrigin`).
pub(crate) fn by_origin<A, I>(
    origin: Origin,
) -> impl Fn(A) -> Option<ObjectRef<I>> + Send + Sync + Clone + 'static
where
    A: Resource,
    I: Resource<DynamicType = ()>,
{
    move |obj: A| {
        let data = origin.data_of(obj.labels(), obj.annotations())?;
        Some(ObjectRef::new(&data.name).within(&data.namespace))
    }
}

/// The apinet network name of an ironcore `networkRef`: the referenced Network's UID, or `None` if it does
/// not exist (the reconcile then stops until the Network appears).
pub(crate) async fn apinet_network_name(
    ctx: &Ctx,
    namespace: &str,
    network: &str,
) -> Result<Option<String>, ReconcileError> {
    // From the shared cache: every caller also watches [`network_uid_changes`], so a Network the cache does not
    // show yet brings the caller back once it does.
    let networks = ctx
        .ironcore_informers
        .get::<ironnet_api::networking::Network>()
        .store();
    Ok(networks
        .get(Some(namespace), network)
        .and_then(|n| n.metadata.uid.clone()))
}

/// The ipam `Prefix` kind (`ipam.ironcore.dev/v1alpha1`), read dynamically: `ironnet` may not serve it.
fn prefix_resource() -> ApiResource {
    ApiResource {
        group: "ipam.ironcore.dev".into(),
        version: "v1alpha1".into(),
        api_version: "ipam.ironcore.dev/v1alpha1".into(),
        kind: "Prefix".into(),
        plural: "prefixes".into(),
    }
}

/// `spec.prefix` of ipam Prefix `namespace/name` if it exists and is `Allocated`. A server that does not serve
/// ipam Prefixes answers NotFound, which is the same as "not allocated".
pub(crate) async fn allocated_prefix(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, ReconcileError> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.ironcore.clone(), namespace, &prefix_resource());
    let obj = match api.get(name).await {
        Ok(o) => o,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let allocated = obj.data.pointer("/status/phase").and_then(Value::as_str) == Some("Allocated");
    Ok(allocated
        .then(|| {
            obj.data
                .pointer("/spec/prefix")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten())
}

/// The JSON form of a typed object (every API type serializes).
pub(crate) fn to_value<T: Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// The stop signal every controller of one apinetlet run shares.
pub type Stop = tokio::sync::watch::Receiver<bool>;

/// A future resolving once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(mut stop: Stop) {
    let _ = stop.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::networking::Network;

    fn labelled(labels: &[(&str, &str)]) -> Network {
        let mut n = Network::new("n", Default::default());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    }

    #[test]
    fn watch_predicates() {
        assert!(!ignored(None, &labelled(&[])));
        assert!(ignored(None, &labelled(&[(MANAGED_BY_LABEL, "x")])));
        assert!(ignored(Some("a"), &labelled(&[])));
        assert!(ignored(Some("a"), &labelled(&[(WATCH_FILTER_LABEL, "b")])));
        assert!(!ignored(Some("a"), &labelled(&[(WATCH_FILTER_LABEL, "a")])));
        assert!(ignored(
            Some("a"),
            &labelled(&[(WATCH_FILTER_LABEL, "a"), (MANAGED_BY_LABEL, "x")])
        ));
        // An empty filter value filters nothing, as upstream's predicate.
        assert!(!ignored(Some(""), &labelled(&[])));
    }
}
