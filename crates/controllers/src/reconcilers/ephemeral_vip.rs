//! NetworkInterface ephemeral VirtualIP reconciler over [`crate::ephemeral`] (upstream
//! ironcore's `networkinterfaceephemeralvirtualip`, `internal/controllers/networking`).

use std::sync::Arc;

use futures::StreamExt;
use ironnet_api::networking::{NetworkInterface, VirtualIP};
use ironnet_runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::ephemeral::{
    DesiredObject, EPHEMERAL_MANAGED_BY, EPHEMERAL_MANAGER, ExistingObject, plan_ephemeral,
};
use ironnet_runtime::cache::IndexedStore;
use ironnet_runtime::informer::Informers;
use ironnet_runtime::reconcile::{CONFLICT_RETRY, ReconcileError, is_conflict};

struct Ctx {
    client: Client,
    /// Every VirtualIP, fed by the watch that triggers this controller on VirtualIP events.
    vips: IndexedStore<VirtualIP>,
}

fn owner_ref(nic: &NetworkInterface) -> Value {
    json!({
        "apiVersion": NetworkInterface::api_version(&()),
        "kind": "NetworkInterface",
        "name": nic.name_any(),
        "uid": nic.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The VirtualIP a NetworkInterface's ephemeral template asks for, with whether the NIC should control it.
pub fn desired_vip(nic: &NetworkInterface) -> Option<(Value, bool)> {
    let v = serde_json::to_value(nic).ok()?;
    let template = v
        .pointer("/spec/virtualIP/ephemeral/virtualIPTemplate")
        .filter(|t| !t.is_null())?;
    let retain = template.pointer("/spec/reclaimPolicy").and_then(Value::as_str) == Some("Retain");
    let mut annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    annotations[EPHEMERAL_MANAGED_BY] = json!(EPHEMERAL_MANAGER);
    let mut metadata = json!({"name": nic.name_any(), "annotations": annotations});
    if let Some(labels) = template.pointer("/metadata/labels").filter(|l| l.is_object()) {
        metadata["labels"] = labels.clone();
    }
    if !retain {
        metadata["ownerReferences"] = json!([owner_ref(nic)]);
    }
    let spec = json!({
        "type": template.pointer("/spec/type"),
        "ipFamily": template.pointer("/spec/ipFamily"),
        "targetRef": {"name": nic.name_any(), "uid": nic.uid().unwrap_or_default()},
    });
    Some((
        json!({"apiVersion": VirtualIP::api_version(&()), "kind": "VirtualIP", "metadata": metadata, "spec": spec}),
        !retain,
    ))
}

fn existing_view(vip: &VirtualIP) -> ExistingObject {
    ExistingObject {
        name: vip.name_any(),
        controller_uid: vip
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone()),
        ephemeral_annotation: vip.annotations().get(EPHEMERAL_MANAGED_BY).map(String::as_str)
            == Some(EPHEMERAL_MANAGER),
        target_uid: vip.spec.target_ref.as_ref().map(|t| t.uid.clone()),
        deleting: vip.metadata.deletion_timestamp.is_some(),
    }
}

async fn reconcile(nic: Arc<NetworkInterface>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if nic.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = nic
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = nic.uid().unwrap_or_default();
    let api: Api<VirtualIP> = Api::namespaced(ctx.client.clone(), &ns);
    let desired = desired_vip(&nic);
    let want: Vec<DesiredObject> = desired
        .iter()
        .map(|(_, controlled)| DesiredObject {
            name: nic.name_any(),
            controlled: *controlled,
        })
        .collect();
    // The only VirtualIP an interface ever manages is named after it, so that one name is every candidate.
    // It is read from the cache (most interfaces have none, and this runs on every interface event): a stale
    // absence makes the create conflict and retry, and deletion and adoption read the object again.
    ctx.vips.wait_ready().await;
    let existing: Vec<ExistingObject> = ctx
        .vips
        .get(Some(&ns), &nic.name_any())
        .iter()
        .map(|v| existing_view(v))
        .collect();
    let plan = plan_ephemeral(&uid, &want, &existing);
    for name in &plan.delete {
        // A bound VirtualIP cannot be deleted (`virtualip::validate_delete`), so the managed VIP is unbound
        // from this interface first; a conflict rereads it.
        if let Some(vip) = api.get_opt(name).await?
            && vip.spec.target_ref.is_some()
        {
            let patch =
                json!({"metadata": {"resourceVersion": vip.resource_version()}, "spec": {"targetRef": null}});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_conflict(&e) => return Ok(Action::requeue(CONFLICT_RETRY)),
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in &plan.adopt {
        let Some(vip) = api.get_opt(name).await? else {
            continue;
        };
        let mut refs: Vec<Value> = vip
            .owner_references()
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect();
        refs.push(owner_ref(&nic));
        let patch = json!({"metadata": {"resourceVersion": vip.resource_version(), "ownerReferences": refs}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(CONFLICT_RETRY)),
            Err(e) => return Err(e.into()),
        }
    }
    for name in &plan.conflicts {
        tracing::info!(nic = %nic.name_any(), vip = %name, "virtual IP exists and is not managed by this interface; won't adopt");
    }
    if let (Some((body, _)), false) = (desired, plan.create.is_empty()) {
        let vip: VirtualIP = match serde_json::from_value(body) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(nic = %nic.name_any(), error = %e, "invalid ephemeral virtual IP template");
                return Ok(Action::await_change());
            }
        };
        match api.create(&PostParams::default(), &vip).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

/// Runs the ephemeral VirtualIP controller until `shutdown` resolves.
pub async fn run(
    informers: Informers,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = informers.client().clone();
    let (stop, trigger) = ironnet_runtime::shutdown::sync_shutdown(shutdown);
    let vips = informers.get::<VirtualIP>();
    let nics = informers.get::<NetworkInterface>();
    // A VirtualIP event re-reconciles the interface of the same name (ephemeral VIPs are named like their NIC).
    let controller = Controller::for_stream(nics.subscribe(), nics.store().reader())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .watches_stream(vips.subscribe(), |vip| {
            vip.namespace()
                .map(|ns| ObjectRef::<NetworkInterface>::new(&vip.name_any()).within(&ns))
        })
        .graceful_shutdown_on(stop)
        .run(
            ironnet_runtime::metrics::instrument("ephemeralvirtualip", reconcile),
            ironnet_runtime::error_policy,
            Arc::new(Ctx {
                client,
                vips: vips.store(),
            }),
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(controller, trigger);
}
