//! `networking.ironcore.dev` rules that need the store: whether a VirtualIP is still in use when it is
//! deleted, and the IPs of LoadBalancerRouting destinations that only name their NetworkInterface.

use ironnet_apiserver::error::ApiError;
use ironnet_apiserver::meta;
use ironnet_apiserver::strategy::AdmissionContext;
use serde_json::{Value, json};

/// The `networking.ironcore.dev` API group.
pub const NETWORKING_GROUP: &str = "networking.ironcore.dev";

/// The stored `networking.ironcore.dev` NetworkInterface `name` in `namespace`, if any.
async fn network_interface(
    ctx: &AdmissionContext,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let Some(kind) = ctx.registry().by_kind(NETWORKING_GROUP, "NetworkInterface") else {
        return Ok(None);
    };
    let Some(kv) = ctx
        .store()
        .get(&kind.def.key(Some(namespace), name), None)
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&kv.value)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("stored network interface {name} is corrupt: {e}")))
}

/// Whether the NetworkInterface `nic` is the one `target` (a `{name, uid}` reference) means: an empty UID
/// matches any interface of that name (upstream accepts references without UID).
fn is_target(nic: &Value, target: &Value) -> bool {
    let want = target.get("uid").and_then(Value::as_str).unwrap_or("");
    want.is_empty() || want == meta::meta_str(nic, "uid")
}

/// Whether the bound VirtualIP `vip` is in use, so that deleting it must be refused: the NetworkInterface its
/// `spec.targetRef` names exists (with that UID), is not being deleted, and still refers to it — through
/// `spec.virtualIP.virtualIPRef`, or as its ephemeral VirtualIP (same name, or controlled by the interface).
///
/// A stale binding does not block: when the interface is gone (the garbage collector deleting an ephemeral
/// VirtualIP after its interface, before the release controller cleared `targetRef`), being deleted
/// (foreground deletion, namespace deletion) or has moved on to another VirtualIP (the ephemeral controller
/// deleting the one it no longer wants).
pub async fn virtual_ip_in_use(ctx: &AdmissionContext, vip: &Value) -> Result<bool, ApiError> {
    let Some(target) = vip.pointer("/spec/targetRef").filter(|t| t.is_object()) else {
        return Ok(false);
    };
    let target_name = target.get("name").and_then(Value::as_str).unwrap_or("");
    let namespace = meta::meta_str(vip, "namespace");
    let Some(nic) = network_interface(ctx, namespace, target_name).await? else {
        return Ok(false);
    };
    if !is_target(&nic, target) || meta::is_deleting(&nic) {
        return Ok(false);
    }
    let name = meta::name(vip);
    let Some(source) = nic.pointer("/spec/virtualIP").filter(|s| s.is_object()) else {
        return Ok(false);
    };
    if source.pointer("/virtualIPRef/name").and_then(Value::as_str) == Some(name) {
        return Ok(true);
    }
    if source.get("ephemeral").is_some_and(|e| !e.is_null()) {
        let nic_uid = meta::meta_str(&nic, "uid");
        let controlled = vip
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| {
                r.get("controller").and_then(Value::as_bool) == Some(true)
                    && r.get("uid").and_then(Value::as_str) == Some(nic_uid)
            });
        return Ok(controlled || name == meta::name(&nic));
    }
    Ok(false)
}

/// The IPs of a NetworkInterface: its effective `status.ips`, else the literal `spec.ips[].value`.
fn interface_ips(nic: &Value) -> Vec<Value> {
    let strings = |v: Option<&Value>| -> Vec<Value> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| s.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
            .collect()
    };
    let status = strings(nic.pointer("/status/ips"));
    if !status.is_empty() {
        return status;
    }
    let values: Vec<Value> = nic
        .pointer("/spec/ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("value").cloned())
        .collect();
    strings(Some(&Value::Array(values)))
}

/// Fills in the IPs of LoadBalancerRouting destinations that name their NetworkInterface but carry no `ip`
/// (the legacy `{name, uid}` shape after defaulting, or a bare `targetRef`): one destination per IP of the
/// interface, with its UID and provider ID, like the LoadBalancer controller writes them. A destination whose
/// interface does not exist (or has another UID) or has no IP yet is kept as is; readers skip it.
pub async fn resolve_routing_destinations(ctx: &AdmissionContext, obj: &mut Value) -> Result<(), ApiError> {
    let unresolved = |d: &Value| {
        d.get("ip").is_none_or(Value::is_null) && d.get("targetRef").is_some_and(Value::is_object)
    };
    let namespace = meta::meta_str(obj, "namespace").to_owned();
    let Some(destinations) = obj.get_mut("destinations").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    if !destinations.iter().any(unresolved) {
        return Ok(());
    }
    let mut resolved = Vec::with_capacity(destinations.len());
    for d in destinations.drain(..) {
        if !unresolved(&d) {
            resolved.push(d);
            continue;
        }
        let target = &d["targetRef"];
        let name = target.get("name").and_then(Value::as_str).unwrap_or("");
        let nic = match network_interface(ctx, &namespace, name).await? {
            Some(nic) if is_target(&nic, target) => nic,
            _ => {
                resolved.push(d);
                continue;
            }
        };
        let ips = interface_ips(&nic);
        if ips.is_empty() {
            resolved.push(d);
            continue;
        }
        let provider_id = nic
            .pointer("/spec/providerID")
            .and_then(Value::as_str)
            .or_else(|| target.get("providerID").and_then(Value::as_str))
            .unwrap_or("");
        for ip in ips {
            resolved.push(json!({"ip": ip, "targetRef": {
                "uid": meta::meta_str(&nic, "uid"), "name": name, "providerID": provider_id}}));
        }
    }
    *destinations = resolved;
    Ok(())
}
