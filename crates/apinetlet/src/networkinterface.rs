//! ironcore NetworkInterface ⇄ apinet NetworkInterface: claiming, public IPs / prefixes / NAT down, status up
//! (upstream ironcore-net's apinetlet NetworkInterface controller, `apinetlet/controllers`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{Value, json};

/// Annotation on a claimed apinet NetworkInterface naming the tenant labels apinetlet mirrored onto it (comma
/// separated), so that a label removed from the tenant object is removed from the apinet one too.
pub const MIRRORED_LABELS_ANNOTATION: &str = "apinetlet.ironcore.dev/mirrored-labels";

/// Labels apinetlet never mirrors: its own origin labels.
fn mirrorable(key: &str) -> bool {
    !key.starts_with("apinetlet.ironcore.dev/")
}

/// The metadata merge patch that makes a claimed apinet NetworkInterface carry the tenant NetworkInterface's
/// labels, or `None` when it already does.
///
/// NetworkPolicies select apinet NetworkInterfaces by label. Upstream leaves labelling to the provider that
/// creates them; mirroring the tenant's labels makes a policy written against the tenant's NetworkInterfaces
/// select them, and follow label changes. Labels that others set on the apinet object and that were never
/// mirrored are left alone.
pub fn label_mirror_patch(
    tenant_labels: &BTreeMap<String, String>,
    apinet_metadata: &Value,
) -> Option<Value> {
    let current =
        |k: &str| apinet_metadata.pointer(&format!("/labels/{}", k.replace('~', "~0").replace('/', "~1")));
    let previous: BTreeSet<&str> = apinet_metadata
        .pointer(&format!(
            "/annotations/{}",
            MIRRORED_LABELS_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .map(|s| s.split(',').filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    let desired: BTreeMap<&str, &str> = tenant_labels
        .iter()
        .filter(|(k, _)| mirrorable(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut labels = serde_json::Map::new();
    for (k, v) in &desired {
        if current(k).and_then(Value::as_str) != Some(*v) {
            labels.insert((*k).to_owned(), json!(v));
        }
    }
    for k in previous.iter().filter(|k| !desired.contains_key(*k)) {
        labels.insert((*k).to_owned(), Value::Null);
    }
    let keys = desired.keys().copied().collect::<Vec<_>>().join(",");
    let annotation_current = previous.iter().copied().collect::<Vec<_>>().join(",");
    if labels.is_empty() && keys == annotation_current {
        return None;
    }
    let annotation = if keys.is_empty() { Value::Null } else { json!(keys) };
    Some(
        json!({ "metadata": { "labels": labels, "annotations": { MIRRORED_LABELS_ANNOTATION: annotation } } }),
    )
}

/// The metadata merge patch that removes every mirrored label (and the bookkeeping annotation) when the
/// apinet NetworkInterface is released.
pub fn label_release_patch(apinet_metadata: &Value) -> Value {
    label_mirror_patch(&BTreeMap::new(), apinet_metadata)
        .and_then(|p| p.get("metadata").cloned())
        .unwrap_or_else(|| json!({}))
}

/// Who holds a claimable object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimState {
    /// Nobody.
    Free,
    /// The reconciled ironcore NetworkInterface.
    Mine,
    /// Someone else.
    Taken,
}

/// What to do with a claimable object (ironcore `claimmanager` semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimAction {
    /// Claim it.
    Adopt,
    /// Give it up.
    Release,
    /// It stays claimed by us.
    Keep,
    /// Leave it alone.
    Ignore,
}

/// The claim action for an object in `state` that the claimer `selects` (or not).
pub fn claim_action(
    state: ClaimState,
    selects: bool,
    claimer_deleting: bool,
    object_deleting: bool,
) -> ClaimAction {
    match state {
        ClaimState::Taken => ClaimAction::Ignore,
        ClaimState::Mine if selects && !claimer_deleting => ClaimAction::Keep,
        ClaimState::Mine => ClaimAction::Release,
        ClaimState::Free if selects && !claimer_deleting && !object_deleting => ClaimAction::Adopt,
        ClaimState::Free => ClaimAction::Ignore,
    }
}

/// The public IP entries of the apinet NetworkInterface for the claimed VirtualIPs' addresses.
pub fn public_ips(vip_addresses: &[IpAddr]) -> Vec<Value> {
    vip_addresses
        .iter()
        .map(|ip| {
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            json!({ "name": ip.to_string(), "ipFamily": family, "ip": ip.to_string() })
        })
        .collect()
}

/// `spec.natGateways` without the entries of families that now have a public IP.
pub fn nat_gateways_without_public_families(nat_gateways: &[Value], public: &[Value]) -> Vec<Value> {
    let families: Vec<&str> = public
        .iter()
        .filter_map(|p| p.get("ipFamily").and_then(Value::as_str))
        .collect();
    nat_gateways
        .iter()
        .filter(|n| {
            n.get("ipFamily")
                .and_then(Value::as_str)
                .is_none_or(|f| !families.contains(&f))
        })
        .cloned()
        .collect()
}

/// The merge patch bringing an apinet NetworkInterface spec to the desired public IPs, prefixes and NAT
/// entries, or `None` if nothing differs.
pub fn apinet_spec_patch(current_spec: &Value, public: Vec<Value>, prefixes: Vec<String>) -> Option<Value> {
    let current_nats: Vec<Value> = current_spec
        .get("natGateways")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let nats = nat_gateways_without_public_families(&current_nats, &public);
    let list = |key: &str| {
        current_spec
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let cur_public: Vec<Value> = list("publicIPs")
        .into_iter()
        .map(|p| json!({ "name": p.get("name"), "ipFamily": p.get("ipFamily"), "ip": p.get("ip") }))
        .collect();
    let prefixes: Vec<Value> = prefixes.into_iter().map(Value::String).collect();
    let mut patch = json!({});
    if cur_public != public {
        patch["publicIPs"] = json!(public);
    }
    if list("prefixes") != prefixes {
        patch["prefixes"] = json!(prefixes);
    }
    if current_nats != nats {
        patch["natGateways"] = json!(nats);
    }
    patch
        .as_object()
        .is_some_and(|o| !o.is_empty())
        .then(|| json!({ "spec": patch }))
}

/// The ironcore state for an apinet interface state (`Ready` → `Available`, `Error` → `Error`, anything else
/// → `Pending`).
pub fn ironcore_state(apinet_state: Option<&str>) -> &'static str {
    match apinet_state {
        Some("Ready") => "Available",
        Some("Error") => "Error",
        _ => "Pending",
    }
}

/// The desired ironcore NetworkInterface status from the apinet interface (`None`: not created yet → Pending
/// with no addresses). `virtualIP` is the first IPv4 of the apinet `status.publicIPs`.
pub fn desired_status(apinet: Option<&Value>) -> Value {
    let Some(nic) = apinet else {
        return json!({ "state": "Pending", "ips": null, "prefixes": null, "virtualIP": null });
    };
    let state = ironcore_state(nic.pointer("/status/state").and_then(Value::as_str));
    let vip = nic
        .pointer("/status/publicIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().and_then(|s| s.parse::<IpAddr>().ok()))
        .find(IpAddr::is_ipv4)
        .map(|ip| ip.to_string());
    let or_null = |v: Option<&Value>| {
        v.filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            .cloned()
            .unwrap_or(Value::Null)
    };
    json!({
        "state": state,
        "ips": or_null(nic.pointer("/spec/ips")),
        "prefixes": or_null(nic.pointer("/spec/prefixes")),
        "virtualIP": vip,
    })
}

/// The ironcore status merge patch, or `None` if `current` already matches `desired`. A state change also sets
/// `lastStateTransitionTime` to `now` (RFC 3339).
pub fn status_patch(current: &Value, desired: &Value, now: &str) -> Option<Value> {
    let mut patch = json!({});
    for key in ["state", "ips", "prefixes", "virtualIP"] {
        let cur = current
            .get(key)
            .filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
        let want = desired.get(key).filter(|v| !v.is_null());
        if cur != want {
            patch[key] = want.cloned().unwrap_or(Value::Null);
        }
    }
    if patch.get("state").is_some() {
        patch["lastStateTransitionTime"] = json!(now);
    }
    patch
        .as_object()
        .is_some_and(|o| !o.is_empty())
        .then(|| json!({ "status": patch }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_actions_follow_claimmanager() {
        use ClaimAction::*;
        use ClaimState::*;
        assert_eq!(claim_action(Free, true, false, false), Adopt);
        assert_eq!(claim_action(Free, true, false, true), Ignore);
        assert_eq!(claim_action(Free, false, false, false), Ignore);
        assert_eq!(claim_action(Mine, true, false, false), Keep);
        assert_eq!(claim_action(Mine, false, false, false), Release);
        assert_eq!(claim_action(Mine, true, true, false), Release);
        assert_eq!(claim_action(Taken, true, false, false), Ignore);
    }

    #[test]
    fn conformance_public_ip_patch_drops_nat_of_that_family() {
        let vip: IpAddr = "10.0.0.5".parse().unwrap();
        let current = json!({"ips": ["192.168.178.1"], "natGateways": [{"ipFamily": "IPv4", "claimRef": {"name": "gw", "uid": "u"}}]});
        let patch = apinet_spec_patch(&current, public_ips(&[vip]), vec![]).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"publicIPs": [{"name": "10.0.0.5", "ipFamily": "IPv4", "ip": "10.0.0.5"}], "natGateways": []}})
        );
        let applied = json!({"publicIPs": [{"name": "10.0.0.5", "ipFamily": "IPv4", "ip": "10.0.0.5"}]});
        assert_eq!(apinet_spec_patch(&applied, public_ips(&[vip]), vec![]), None);
    }

    #[test]
    fn status_mapping_and_no_op_detection() {
        assert_eq!(desired_status(None)["state"], "Pending");
        let nic = json!({"spec": {"ips": ["192.168.178.1"]}, "status": {"state": "Ready", "publicIPs": ["2001:db8::1", "10.0.0.5"]}});
        let want = desired_status(Some(&nic));
        assert_eq!(
            want,
            json!({"state": "Available", "ips": ["192.168.178.1"], "prefixes": null, "virtualIP": "10.0.0.5"})
        );
        let patch = status_patch(&json!({"state": "Pending"}), &want, "2026-11-23T00:00:00Z").unwrap();
        assert_eq!(patch["status"]["lastStateTransitionTime"], "2026-11-23T00:00:00Z");
        let current = json!({"state": "Available", "ips": ["192.168.178.1"], "virtualIP": "10.0.0.5", "lastStateTransitionTime": "x"});
        assert_eq!(status_patch(&current, &want, "now"), None);
        assert_eq!(ironcore_state(Some("Error")), "Error");
        assert_eq!(ironcore_state(Some("Weird")), "Pending");
    }

    #[test]
    fn tenant_labels_are_mirrored_and_follow_changes() {
        let tenant: BTreeMap<String, String> = [
            ("app".to_owned(), "web".to_owned()),
            ("apinetlet.ironcore.dev/x".to_owned(), "no".to_owned()),
        ]
        .into();
        let fresh = json!({"labels": {"apinetlet.ironcore.dev/networkinterface-uid": "u", "team": "infra"}});
        assert_eq!(
            label_mirror_patch(&tenant, &fresh),
            Some(
                json!({"metadata": {"labels": {"app": "web"}, "annotations": {MIRRORED_LABELS_ANNOTATION: "app"}}})
            )
        );
        let mirrored = json!({"labels": {"app": "web", "team": "infra"},
                              "annotations": {MIRRORED_LABELS_ANNOTATION: "app"}});
        assert_eq!(label_mirror_patch(&tenant, &mirrored), None);
        // The tenant drops `app`: removed from the apinet object; `team` (never mirrored) stays.
        assert_eq!(
            label_mirror_patch(&BTreeMap::new(), &mirrored),
            Some(
                json!({"metadata": {"labels": {"app": null}, "annotations": {MIRRORED_LABELS_ANNOTATION: null}}})
            )
        );
        assert_eq!(
            label_release_patch(&mirrored),
            json!({"labels": {"app": null}, "annotations": {MIRRORED_LABELS_ANNOTATION: null}})
        );
    }
}
