//! ironcore NetworkInterface ⇄ apinet NetworkInterface over [`crate::networkinterface`]: claims the apinet
//! interface named by `spec.providerID` and the VirtualIP it references, pushes public IPs and prefixes down
//! and mirrors state, IPs, prefixes and the virtual IP back.

use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_api::networking::{NetworkInterface, VirtualIP};
use ironnet_runtime::cache::{IndexedStore, index_key, indexed_reflector};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use ironnet_runtime::events::{Occurrence, reason};
use ironnet_runtime::informer::BY_TARGET_UID;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use super::{
    Ctx, RETRY_AFTER, ReconcileError, Stop, allocated_prefix, ensure_finalizer, is_not_found, patch_status,
    remove_finalizer, source_of, stopped, to_value,
};
use crate::meta::{Source, finalizers};
use crate::networkinterface::{
    ClaimAction, ClaimState, apinet_spec_patch, claim_action, desired_status, label_mirror_patch,
    label_release_patch, public_ips, status_patch,
};
use crate::origin;
use crate::provider_id::NetworkInterfaceId;

/// The name of the VirtualIP an ironcore interface uses (`virtualIPRef.name`, or its own name when
/// ephemeral), if any.
pub fn virtual_ip_name(nic: &Value) -> Option<String> {
    let vip = nic.pointer("/spec/virtualIP").filter(|v| !v.is_null())?;
    if let Some(name) = vip.pointer("/virtualIPRef/name").and_then(Value::as_str) {
        return Some(name.to_owned());
    }
    vip.get("ephemeral").filter(|e| !e.is_null()).and_then(|_| {
        nic.pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// The NetworkInterface controller's view of the cluster: the shared context plus indexed caches, each fed by
/// the watch that also triggers this controller, so a reconcile never reads a cache older than its trigger.
struct NicCtx {
    base: Arc<Ctx>,
    /// apinet interfaces by `claimer:/<source uid>` and `uid:/<uid>`.
    apinet_nics: IndexedStore<apinet::NetworkInterface>,
    /// VirtualIPs by `target:<namespace>/<interface uid>`.
    vips: IndexedStore<VirtualIP>,
}

impl std::ops::Deref for NicCtx {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.base
    }
}

fn nic_keys(nic: &NetworkInterface) -> Vec<String> {
    let mut keys: Vec<String> = selected_uid(&nic.spec.provider_id)
        .map(|uid| index_key("provider", None, &uid))
        .into_iter()
        .collect();
    if let Some(vip) = virtual_ip_name(&to_value(nic)) {
        keys.push(index_key("vip", nic.namespace().as_deref(), &vip));
    }
    keys
}

fn apinet_nic_keys(nic: &apinet::NetworkInterface) -> Vec<String> {
    let mut keys: Vec<String> = nic
        .labels()
        .get(&origin::NETWORK_INTERFACE.uid_label())
        .map(|uid| index_key("claimer", None, uid))
        .into_iter()
        .collect();
    keys.extend(nic.uid().map(|uid| index_key("uid", None, &uid)));
    keys
}

/// The apinet interface UID named by the provider ID (an unparsable ID selects nothing).
fn selected_uid(provider_id: &str) -> Option<String> {
    provider_id.parse::<NetworkInterfaceId>().ok().map(|id| id.uid)
}

/// An apinet interface claimed by the source after [`claim_apinet`].
enum Claimed {
    /// Adopted just now; the object as the API server returned it, the desired spec and labels included.
    Adopted(Value),
    /// Already claimed; the cached object (at least as new as whatever triggered this reconcile; writes
    /// derived from it carry its resourceVersion, so a stale copy only costs a conflict and a retry).
    Kept(Value),
}

/// Deep-merges JSON merge patch `other` into `into` (objects key by key, anything else replaced).
fn merge_into(into: &mut Value, other: Value) {
    match (into, other) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge_into(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The spec and label changes the claimed apinet interface `apinet_nic` (JSON) needs, as one merge patch.
fn desired_apinet_patch(apinet_nic: &Value, desired: &DesiredApinet) -> Option<Value> {
    let spec = apinet_nic.get("spec").cloned().unwrap_or_else(|| json!({}));
    let metadata = apinet_nic.get("metadata").cloned().unwrap_or_default();
    let parts = [
        apinet_spec_patch(&spec, desired.public_ips.clone(), desired.prefixes.clone()),
        label_mirror_patch(&desired.labels, &metadata),
    ];
    parts.into_iter().flatten().reduce(|mut a, b| {
        merge_into(&mut a, b);
        a
    })
}

/// What the claimed apinet interface should carry besides the claim: public IPs, prefixes, mirrored labels.
struct DesiredApinet {
    public_ips: Vec<Value>,
    prefixes: Vec<String>,
    labels: std::collections::BTreeMap<String, String>,
}

/// Claims or releases one apinet interface; returns how it is claimed by `source` afterwards, if it is.
///
/// An adoption writes the claim, the spec and the mirrored labels in one patch (with the cached
/// resourceVersion as precondition), so a newly attached interface costs one write, not three.
async fn claim_apinet(
    api: &Api<apinet::NetworkInterface>,
    nic: &apinet::NetworkInterface,
    source: &Source,
    selected: Option<&str>,
    deleting: bool,
    desired: Option<&DesiredApinet>,
) -> Result<Option<Claimed>, ReconcileError> {
    let o = origin::NETWORK_INTERFACE;
    let state = match nic.labels().get(&o.uid_label()) {
        None => ClaimState::Free,
        Some(uid) if *uid == source.uid => ClaimState::Mine,
        Some(_) => ClaimState::Taken,
    };
    let selects = selected.is_some() && nic.uid().as_deref() == selected;
    let action = claim_action(
        state,
        selects,
        deleting,
        nic.metadata.deletion_timestamp.is_some(),
    );
    let patch = match action {
        ClaimAction::Keep => return Ok(Some(Claimed::Kept(to_value(nic)))),
        ClaimAction::Ignore => return Ok(None),
        ClaimAction::Adopt => {
            let data = source.origin_data();
            let mut patch = json!({ "metadata": { "resourceVersion": nic.resource_version(), "labels": o.labels(&data), "annotations": o.annotations(&data) } });
            if let Some(extra) = desired.and_then(|d| desired_apinet_patch(&to_value(nic), d)) {
                merge_into(&mut patch, extra);
            }
            patch
        }
        ClaimAction::Release => {
            let mut patch = json!({
                "metadata": {
                    "resourceVersion": nic.resource_version(),
                    "labels": { o.uid_label(): null, o.namespace_label(): null },
                    "annotations": { o.name_annotation(): null },
                },
                "spec": { "publicIPs": null, "prefixes": null },
            });
            // The release patch of the mirrored labels is relative to `metadata`.
            merge_into(
                &mut patch["metadata"],
                label_release_patch(&to_value(&nic.metadata)),
            );
            patch
        }
    };
    let updated = api
        .patch(&nic.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok((action == ClaimAction::Adopt).then(|| Claimed::Adopted(to_value(&updated))))
}

/// Claims (or releases) VirtualIPs for the interface: the one it wants and every one bound to it; returns
/// the claimed one.
///
/// The candidates come from the cache; every write carries the cached resourceVersion, so a stale entry
/// fails with a conflict and the reconcile runs again instead of overwriting a newer binding.
async fn claim_vips(
    ctx: &NicCtx,
    source: &Source,
    wanted: Option<&str>,
    deleting: bool,
) -> Result<Option<VirtualIP>, ReconcileError> {
    let api: Api<VirtualIP> = Api::namespaced(ctx.ironcore.clone(), &source.namespace);
    ctx.vips.wait_ready().await;
    let mut candidates = ctx
        .vips
        .indexed(&index_key(BY_TARGET_UID, Some(&source.namespace), &source.uid));
    if let Some(w) = wanted.and_then(|w| ctx.vips.get(Some(&source.namespace), w))
        && !candidates.iter().any(|c| c.uid() == w.uid())
    {
        candidates.push(w);
    }
    let mut claimed = None;
    for vip in candidates {
        let target = vip.spec.target_ref.as_ref();
        let state = match target {
            None => ClaimState::Free,
            Some(t) if t.uid == source.uid => ClaimState::Mine,
            Some(_) => ClaimState::Taken,
        };
        let selects = wanted == Some(vip.name_any().as_str());
        let action = claim_action(
            state,
            selects,
            deleting,
            vip.metadata.deletion_timestamp.is_some(),
        );
        let target_ref = match action {
            ClaimAction::Keep => {
                claimed = Some(VirtualIP::clone(&vip));
                continue;
            }
            ClaimAction::Ignore => continue,
            ClaimAction::Adopt => json!({ "name": source.name, "uid": source.uid }),
            ClaimAction::Release => Value::Null,
        };
        let patch = json!({ "metadata": { "resourceVersion": vip.resource_version() }, "spec": { "targetRef": target_ref } });
        let updated = api
            .patch(&vip.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        if action == ClaimAction::Adopt {
            claimed = Some(updated);
        }
    }
    Ok(claimed)
}

/// The prefixes of the interface: literal values, or the Allocated ipam Prefix `<nic>-<i>` for ephemeral ones.
async fn prefixes(ctx: &Ctx, nic: &Value, source: &Source) -> Result<Vec<String>, ReconcileError> {
    let mut out = Vec::new();
    for (i, p) in nic
        .pointer("/spec/prefixes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(v) = p.get("value").and_then(Value::as_str) {
            out.push(v.to_owned());
        } else if p.get("ephemeral").is_some_and(|e| !e.is_null())
            && let Some(prefix) =
                allocated_prefix(ctx, &source.namespace, &format!("{}-{i}", source.name)).await?
        {
            out.push(prefix);
        }
    }
    Ok(out)
}

/// The apinet interfaces the claim can concern: those claimed by `source` (by origin label) and the one whose
/// UID the provider ID names, wherever it is (upstream selects by UID alone).
///
/// They come from the cache; claims and releases carry the cached resourceVersion, so a stale entry fails
/// with a conflict and the reconcile runs again.
async fn claim_candidates(
    ctx: &NicCtx,
    source: &Source,
    provider_id: &str,
) -> Vec<Arc<apinet::NetworkInterface>> {
    ctx.apinet_nics.wait_ready().await;
    let mut candidates = ctx.apinet_nics.indexed(&index_key("claimer", None, &source.uid));
    if let Ok(id) = provider_id.parse::<NetworkInterfaceId>() {
        for named in ctx.apinet_nics.indexed(&index_key("uid", None, &id.uid)) {
            if !candidates.iter().any(|c| c.uid() == named.uid()) {
                candidates.push(named);
            }
        }
    }
    candidates
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn reconcile(nic: Arc<NetworkInterface>, ctx: Arc<NicCtx>) -> Result<Action, ReconcileError> {
    if super::ignored(ctx.watch_filter.as_deref(), nic.as_ref()) {
        return Ok(Action::await_change());
    }
    let source = source_of(nic.as_ref())?;
    let api: Api<NetworkInterface> = Api::namespaced(ctx.ironcore.clone(), &source.namespace);
    let apinet_nics: Api<apinet::NetworkInterface> = ctx.apinet_api();
    let deleting = nic.metadata.deletion_timestamp.is_some();
    if deleting
        && !nic
            .finalizers()
            .iter()
            .any(|f| f == finalizers::NETWORK_INTERFACE)
    {
        return Ok(Action::await_change());
    }
    if !deleting {
        // The finalizer's own event brings another reconcile; carrying on now saves the claim a round trip.
        ensure_finalizer(&api, &nic, finalizers::NETWORK_INTERFACE).await?;
    }
    let v = to_value(nic.as_ref());
    let vip = claim_vips(&ctx, &source, virtual_ip_name(&v).as_deref(), deleting).await?;
    let desired = if deleting {
        None
    } else {
        let vip_addresses: Vec<IpAddr> = vip
            .as_ref()
            .and_then(|vip| {
                to_value(vip)
                    .pointer("/status/ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
            })
            .into_iter()
            .collect();
        Some(DesiredApinet {
            public_ips: public_ips(&vip_addresses),
            prefixes: prefixes(&ctx, &v, &source).await?,
            labels: nic.labels().clone(),
        })
    };
    let selected = selected_uid(&nic.spec.provider_id);
    let mut claimed = None;
    for candidate in claim_candidates(&ctx, &source, &nic.spec.provider_id).await {
        let outcome = claim_apinet(
            &apinet_nics,
            &candidate,
            &source,
            selected.as_deref(),
            deleting,
            desired.as_ref(),
        )
        .await?;
        if outcome.is_some() {
            claimed = outcome;
        }
    }
    let Some(desired) = desired else {
        remove_finalizer(&api, &nic, finalizers::NETWORK_INTERFACE).await?;
        return Ok(Action::await_change());
    };
    let current_status = nic.status.as_ref().map(to_value).unwrap_or_else(|| json!({}));
    let adopted = matches!(claimed, Some(Claimed::Adopted(_)));
    let apinet_nic = match claimed {
        Some(Claimed::Adopted(updated) | Claimed::Kept(updated)) => Some(updated),
        None => None,
    };
    let Some(mut apinet_nic) = apinet_nic else {
        if let Some(patch) = status_patch(&current_status, &desired_status(None), &now()) {
            patch_status(&api, &nic, &patch).await?;
        }
        return Ok(Action::await_change());
    };
    if let Some(mut patch) = desired_apinet_patch(&apinet_nic, &desired) {
        patch["metadata"]["resourceVersion"] = apinet_nic["metadata"]["resourceVersion"].clone();
        let name = apinet_nic
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match apinet_nics
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => apinet_nic = to_value(&updated),
            Err(e) if is_not_found(&e) => return Ok(Action::requeue(RETRY_AFTER)),
            Err(e) => return Err(e.into()),
        }
    }
    if adopted {
        ctx.events
            .record(nic.as_ref(), placed_occurrence(&apinet_nic))
            .await;
    }
    if let Some(patch) = status_patch(&current_status, &desired_status(Some(&apinet_nic)), &now()) {
        patch_status(&api, &nic, &patch).await?;
        // Addresses once per change (a stale cache repeats the same status write); readiness every time.
        for occurrence in status_occurrences(&patch, &apinet_nic) {
            if occurrence.reason == reason::ADDRESS_ALLOCATED {
                ctx.events.record_change(nic.as_ref(), occurrence).await;
            } else {
                ctx.events.record(nic.as_ref(), occurrence).await;
            }
        }
    }
    Ok(Action::await_change())
}

/// The node an apinet interface (JSON) is on, for messages.
fn node_of(apinet_nic: &Value) -> &str {
    apinet_nic
        .pointer("/spec/nodeRef/name")
        .and_then(Value::as_str)
        .unwrap_or("<none>")
}

/// The Event of binding the ironcore interface to the apinet interface `apinet_nic` (JSON).
fn placed_occurrence(apinet_nic: &Value) -> Occurrence {
    let at = |p: &str| apinet_nic.pointer(p).and_then(Value::as_str).unwrap_or_default();
    Occurrence::normal(
        reason::PLACED,
        "Bind",
        format!(
            "Bound to network interface {}/{} on node {}",
            at("/metadata/namespace"),
            at("/metadata/name"),
            node_of(apinet_nic)
        ),
    )
}

/// The Events a status patch of the ironcore interface stands for: `Ready` when it turns Available, and
/// `AddressAllocated` when it gets IPs or a public IP.
fn status_occurrences(patch: &Value, apinet_nic: &Value) -> Vec<Occurrence> {
    let status = &patch["status"];
    let mut out = Vec::new();
    if status.get("state").and_then(Value::as_str) == Some("Available") {
        out.push(Occurrence::normal(
            reason::READY,
            "Realize",
            format!("Ready on node {}", node_of(apinet_nic)),
        ));
    }
    let ips: Vec<&str> = status
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut parts = Vec::new();
    if !ips.is_empty() {
        parts.push(format!("IPs {}", ips.join(", ")));
    }
    if let Some(vip) = status.get("virtualIP").and_then(Value::as_str) {
        parts.push(format!("public IP {vip}"));
    }
    if !parts.is_empty() {
        out.push(Occurrence::normal(
            reason::ADDRESS_ALLOCATED,
            "Allocate",
            format!("Assigned {}", parts.join(" and ")),
        ));
    }
    out
}

/// The ironcore interfaces an apinet interface event concerns: its claimer, or (while unclaimed) the
/// interfaces whose provider ID names it.
fn nics_for_apinet(
    nics: &IndexedStore<NetworkInterface>,
    apinet_nic: &apinet::NetworkInterface,
) -> Vec<ObjectRef<NetworkInterface>> {
    let o = origin::NETWORK_INTERFACE;
    if let Some(data) = o.data_of(apinet_nic.labels(), apinet_nic.annotations()) {
        return vec![ObjectRef::new(&data.name).within(&data.namespace)];
    }
    let Some(uid) = apinet_nic.uid() else {
        return Vec::new();
    };
    nics.indexed(&index_key("provider", None, &uid))
        .iter()
        .map(|n| ObjectRef::from_obj(n.as_ref()))
        .collect()
}

/// The ironcore interfaces a VirtualIP event concerns: its target, and interfaces that want it.
fn nics_for_vip(nics: &IndexedStore<NetworkInterface>, vip: &VirtualIP) -> Vec<ObjectRef<NetworkInterface>> {
    let ns = vip.namespace();
    let mut refs: Vec<ObjectRef<NetworkInterface>> = nics
        .indexed(&index_key("vip", ns.as_deref(), &vip.name_any()))
        .iter()
        .map(|n| ObjectRef::from_obj(n.as_ref()))
        .collect();
    if let (Some(t), Some(ns)) = (&vip.spec.target_ref, &ns) {
        refs.push(ObjectRef::new(&t.name).within(ns));
    }
    refs
}

/// Runs the NetworkInterface controller until `stop` fires.
pub async fn run(ctx: Arc<Ctx>, stop: Stop) {
    let wc = watcher::Config::default();
    let (nics, nic_events) = indexed_reflector(
        nic_keys,
        watcher(Api::<NetworkInterface>::all(ctx.ironcore.clone()), wc.clone()).default_backoff(),
    );
    let (apinet_nics, apinet_events) = indexed_reflector(
        apinet_nic_keys,
        watcher(ctx.apinet_api::<apinet::NetworkInterface>(), wc.clone()).default_backoff(),
    );
    // VirtualIPs come indexed by target UID (`BY_TARGET_UID`), shared with the VirtualIP controller.
    let vip_informer = ctx.ironcore_informers.get::<VirtualIP>();
    let (vips, vip_events) = (vip_informer.store(), vip_informer.subscribe());
    let concurrency = ctx.concurrency;
    let (n1, n2) = (nics.clone(), nics.clone());
    // ironcore interfaces are indexed by `provider:/<apinet uid>` and `vip:<namespace>/<VirtualIP name>` for
    // the mappers below.
    Controller::for_stream(nic_events, nics.reader())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .watches_stream(apinet_events, move |n| nics_for_apinet(&n1, &n))
        .watches_stream(vip_events, move |vip| nics_for_vip(&n2, &vip))
        .graceful_shutdown_on(stopped(stop))
        .run(
            ironnet_runtime::metrics::instrument("apinetlet-networkinterface", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(NicCtx {
                base: ctx,
                apinet_nics,
                vips,
            }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_ip_names() {
        let by_ref =
            json!({"metadata": {"name": "nic"}, "spec": {"virtualIP": {"virtualIPRef": {"name": "vip"}}}});
        assert_eq!(virtual_ip_name(&by_ref).as_deref(), Some("vip"));
        let ephemeral = json!({"metadata": {"name": "nic"}, "spec": {"virtualIP": {"ephemeral": {}}}});
        assert_eq!(virtual_ip_name(&ephemeral).as_deref(), Some("nic"));
        assert_eq!(
            virtual_ip_name(&json!({"metadata": {"name": "nic"}, "spec": {}})),
            None
        );
        assert_eq!(
            selected_uid("ironcore-net://ns/name/node-1/u-1").as_deref(),
            Some("u-1")
        );
        assert_eq!(selected_uid("garbage"), None);
    }

    #[test]
    fn status_changes_become_ready_and_address_events() {
        let apinet_nic = json!({"metadata": {"namespace": "apinet", "name": "web-1"}, "spec": {"nodeRef": {"name": "node-1"}}});
        let notes = |patch: Value| -> Vec<(String, String)> {
            status_occurrences(&patch, &apinet_nic)
                .into_iter()
                .map(|o| (o.reason, o.note))
                .collect()
        };
        assert_eq!(
            notes(json!({"status": {"state": "Available", "ips": ["10.0.0.1"], "virtualIP": "192.0.2.1"}})),
            [
                ("Ready".to_owned(), "Ready on node node-1".to_owned()),
                (
                    "AddressAllocated".to_owned(),
                    "Assigned IPs 10.0.0.1 and public IP 192.0.2.1".to_owned()
                ),
            ]
        );
        // Turning Pending, or losing addresses, records nothing.
        assert!(notes(json!({"status": {"state": "Pending", "ips": null, "virtualIP": null}})).is_empty());
        assert_eq!(
            placed_occurrence(&apinet_nic).note,
            "Bound to network interface apinet/web-1 on node node-1"
        );
    }
}
