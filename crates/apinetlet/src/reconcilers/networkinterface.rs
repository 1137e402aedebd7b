//! ironcore NetworkInterface ⇄ apinet NetworkInterface (§5.7) over [`crate::networkinterface`]: claims the
//! apinet interface named by `spec.providerID` and the VirtualIP it references, pushes public IPs and prefixes
//! down and mirrors state, IPs, prefixes and the virtual IP back.

use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::apinet;
use ironnet_api::networking::{NetworkInterface, VirtualIP};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
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

/// The apinet interface UID named by the provider ID (an unparsable ID selects nothing).
fn selected_uid(provider_id: &str) -> Option<String> {
    provider_id.parse::<NetworkInterfaceId>().ok().map(|id| id.uid)
}

/// Claims or releases one apinet interface; returns whether it is claimed by `source` afterwards.
async fn claim_apinet(
    api: &Api<apinet::NetworkInterface>,
    nic: &apinet::NetworkInterface,
    source: &Source,
    selected: Option<&str>,
    deleting: bool,
) -> Result<bool, ReconcileError> {
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
        ClaimAction::Keep => return Ok(true),
        ClaimAction::Ignore => return Ok(false),
        ClaimAction::Adopt => {
            let data = source.origin_data();
            json!({ "metadata": { "resourceVersion": nic.resource_version(), "labels": o.labels(&data), "annotations": o.annotations(&data) } })
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
            let unmirror = label_release_patch(&to_value(&nic.metadata));
            for part in ["labels", "annotations"] {
                if let Some(fields) = unmirror.get(part).and_then(Value::as_object) {
                    for (k, v) in fields {
                        patch["metadata"][part][k] = v.clone();
                    }
                }
            }
            patch
        }
    };
    api.patch(&nic.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(action == ClaimAction::Adopt)
}

/// Claims (or releases) the VirtualIPs of the interface's namespace; returns the claimed one.
async fn claim_vips(
    ctx: &Ctx,
    source: &Source,
    wanted: Option<&str>,
    deleting: bool,
) -> Result<Option<VirtualIP>, ReconcileError> {
    let api: Api<VirtualIP> = Api::namespaced(ctx.ironcore.clone(), &source.namespace);
    let mut claimed = None;
    for vip in api.list(&ListParams::default()).await? {
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
                claimed = Some(vip);
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

/// The apinet interfaces the claim can concern: those claimed by `source` (by origin label) and the one the
/// provider ID names. The named one is read by name; only if that object does not carry the provider ID's UID
/// (a stale name) are all interfaces listed, as upstream's UID-only selector would match it anywhere.
async fn claim_candidates(
    api: &Api<apinet::NetworkInterface>,
    source: &Source,
    provider_id: &str,
) -> Result<Vec<apinet::NetworkInterface>, ReconcileError> {
    let by_label = ListParams::default().labels(&format!(
        "{}={}",
        origin::NETWORK_INTERFACE.uid_label(),
        source.uid
    ));
    let mut candidates = api.list(&by_label).await?.items;
    let Ok(id) = provider_id.parse::<NetworkInterfaceId>() else {
        return Ok(candidates);
    };
    if candidates
        .iter()
        .any(|c| c.uid().as_deref() == Some(id.uid.as_str()))
    {
        return Ok(candidates);
    }
    match api.get_opt(&id.name).await? {
        Some(named) if named.uid().as_deref() == Some(id.uid.as_str()) => candidates.push(named),
        _ => {
            let all = api.list(&ListParams::default()).await?.items;
            candidates.extend(
                all.into_iter()
                    .filter(|c| c.uid().as_deref() == Some(id.uid.as_str())),
            );
        }
    }
    Ok(candidates)
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn reconcile(nic: Arc<NetworkInterface>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
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
    if !deleting && ensure_finalizer(&api, &nic, finalizers::NETWORK_INTERFACE).await? {
        return Ok(Action::await_change());
    }
    let v = to_value(nic.as_ref());
    let selected = selected_uid(&nic.spec.provider_id);
    let mut claimed = None;
    for candidate in claim_candidates(&apinet_nics, &source, &nic.spec.provider_id).await? {
        if claim_apinet(&apinet_nics, &candidate, &source, selected.as_deref(), deleting).await? {
            claimed = Some(candidate.name_any());
        }
    }
    let vip = claim_vips(&ctx, &source, virtual_ip_name(&v).as_deref(), deleting).await?;
    if deleting {
        remove_finalizer(&api, &nic, finalizers::NETWORK_INTERFACE).await?;
        return Ok(Action::await_change());
    }
    let current_status = nic.status.as_ref().map(to_value).unwrap_or_else(|| json!({}));
    // Read back the claimed interface: claiming patched it.
    let apinet_nic = match claimed {
        Some(name) => apinet_nics.get_opt(&name).await?.map(|n| to_value(&n)),
        None => None,
    };
    let Some(mut apinet_nic) = apinet_nic else {
        if let Some(patch) = status_patch(&current_status, &desired_status(None), &now()) {
            patch_status(&api, &nic, &patch).await?;
        }
        return Ok(Action::await_change());
    };
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
    let spec = apinet_nic.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(patch) = apinet_spec_patch(
        &spec,
        public_ips(&vip_addresses),
        prefixes(&ctx, &v, &source).await?,
    ) {
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
    let apinet_metadata = apinet_nic.get("metadata").cloned().unwrap_or_default();
    if let Some(patch) = label_mirror_patch(nic.labels(), &apinet_metadata) {
        let name = apinet_metadata["name"].as_str().unwrap_or_default().to_owned();
        match apinet_nics
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => apinet_nic = to_value(&updated),
            Err(e) if is_not_found(&e) => return Ok(Action::requeue(RETRY_AFTER)),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(patch) = status_patch(&current_status, &desired_status(Some(&apinet_nic)), &now()) {
        patch_status(&api, &nic, &patch).await?;
    }
    Ok(Action::await_change())
}

fn error_policy(nic: Arc<NetworkInterface>, err: &ReconcileError, _: Arc<Ctx>) -> Action {
    super::retry_after_error("NetworkInterface", &nic.name_any(), err)
}

/// The ironcore interfaces an apinet interface event concerns: its claimer, or (while unclaimed) the
/// interfaces whose provider ID names it.
fn nics_for_apinet(
    store: &Store<NetworkInterface>,
    apinet_nic: &apinet::NetworkInterface,
) -> Vec<ObjectRef<NetworkInterface>> {
    let o = origin::NETWORK_INTERFACE;
    if let Some(data) = o.data_of(apinet_nic.labels(), apinet_nic.annotations()) {
        return vec![ObjectRef::new(&data.name).within(&data.namespace)];
    }
    let uid = apinet_nic.uid();
    store
        .state()
        .iter()
        .filter(|n| uid.is_some() && selected_uid(&n.spec.provider_id) == uid)
        .map(|n| ObjectRef::from_obj(n.as_ref()))
        .collect()
}

/// The ironcore interfaces a VirtualIP event concerns: its target, and interfaces that want it.
fn nics_for_vip(store: &Store<NetworkInterface>, vip: &VirtualIP) -> Vec<ObjectRef<NetworkInterface>> {
    let ns = vip.namespace();
    let mut refs: Vec<ObjectRef<NetworkInterface>> = store
        .state()
        .iter()
        .filter(|n| {
            n.namespace() == ns
                && virtual_ip_name(&to_value(n.as_ref())).as_deref() == Some(vip.name_any().as_str())
        })
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
    let ctrl = Controller::new(Api::<NetworkInterface>::all(ctx.ironcore.clone()), wc.clone())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency));
    let (s1, s2) = (ctrl.store(), ctrl.store());
    ctrl.watches(
        ctx.apinet_api::<apinet::NetworkInterface>(),
        wc.clone(),
        move |n| nics_for_apinet(&s1, &n),
    )
    .watches(Api::<VirtualIP>::all(ctx.ironcore.clone()), wc, move |vip| {
        nics_for_vip(&s2, &vip)
    })
    .graceful_shutdown_on(stopped(stop))
    .run(reconcile, error_policy, ctx)
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
}
