//! Formatted printer columns: the Table cells upstream's table convertors render differently from a plain
//! JSONPath value — placeholders for empty values, comma-joined lists, label selectors in their string form
//! and composed claim references (upstream ironcore `internal/registry/networking` and ironcore-net's
//! registry).
//!
//! The CRDs keep their `additionalPrinterColumns` (names, types, JSONPaths) for discovery and for clients
//! that render a CRD themselves; an API server asks [`cell`] first and falls back to the JSONPath.

use serde_json::Value;

/// The placeholder of an empty cell (kubectl's `<none>`).
pub const NONE: &str = "<none>";
/// The placeholder upstream's networking VirtualIP, LoadBalancer and NATGateway columns print when empty.
pub const NONE_WORD: &str = "None";
/// The placeholder of a LoadBalancerRouting without destination IPs.
pub const UNSET: &str = "<unset>";
/// The placeholder of a Network without state.
pub const UNKNOWN: &str = "<unknown>";
/// How many destination IPs the LoadBalancerRouting `Targets` column lists before ` + N more`.
pub const MAX_TARGETS: usize = 3;

/// The formatted cell of printer column `column` of a `group`/`kind` object, or `None` when the column is
/// rendered from its JSONPath as is (every column of `networking.metalnet.ironcore.dev`, and plain columns).
pub fn cell(group: &str, kind: &str, column: &str, obj: &Value) -> Option<String> {
    match group {
        "networking.ironcore.dev" => networking_cell(kind, column, obj),
        "core.apinet.ironcore.dev" => apinet_cell(kind, column, obj),
        _ => None,
    }
}

fn networking_cell(kind: &str, column: &str, obj: &Value) -> Option<String> {
    Some(match (kind, column) {
        ("Network", "State") => or(string_at(obj, "/status/state"), UNKNOWN),
        ("NetworkInterface", "Machine") => or(string_at(obj, "/spec/machineRef/name"), NONE),
        ("NetworkInterface", "IPs") => or(join(strings_at(obj, "/status/ips")), NONE),
        ("NetworkInterface", "Prefixes") => or(join(strings_at(obj, "/status/prefixes")), NONE),
        ("NetworkInterface", "VirtualIP") => or(string_at(obj, "/status/virtualIP"), NONE),
        ("VirtualIP", "ExternalIP") => or(string_at(obj, "/status/ip"), NONE_WORD),
        ("LoadBalancer" | "NATGateway", "IPs") => or(join(strings_at(obj, "/status/ips")), NONE_WORD),
        ("LoadBalancerRouting", "Targets") => {
            let ips = field_of_each(obj, "/destinations", "/ip");
            or(join_limited(&ips, MAX_TARGETS), UNSET)
        }
        ("NetworkPolicy", "Nic-Selector") => {
            format_label_selector(obj.pointer("/spec/networkInterfaceSelector"))
        }
        _ => return None,
    })
}

fn apinet_cell(kind: &str, column: &str, obj: &Value) -> Option<String> {
    Some(match (kind, column) {
        ("NetworkID" | "IPAddress", "ClaimRef") => claim_ref(obj.pointer("/spec/claimRef"), true),
        ("IP", "ClaimRef") => claim_ref(obj.pointer("/spec/claimRef"), false),
        ("LoadBalancer" | "NATGateway", "IPs") => or(join(field_of_each(obj, "/spec/ips", "/ip")), NONE),
        ("NetworkInterface", "IPs") => or(join(strings_at(obj, "/spec/ips")), NONE),
        ("NetworkInterface", "Prefixes") => or(join(strings_at(obj, "/spec/prefixes")), NONE),
        ("NetworkInterface", "PublicIPs") => or(join(field_of_each(obj, "/spec/publicIPs", "/ip")), NONE),
        ("Instance", "IPs") => or(join(strings_at(obj, "/spec/ips")), NONE),
        ("NetworkPolicy", "Nic-Selector") => {
            format_label_selector(obj.pointer("/spec/networkInterfaceSelector"))
        }
        ("NATGatewayAutoscaler", "PublicIPs") => {
            let n = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            format!("{}/{}", n("/spec/minPublicIPs"), n("/spec/maxPublicIPs"))
        }
        _ => return None,
    })
}

/// `<resource>.<group> <namespace>/<name>` (klog's object reference; no `<namespace>/` when empty or when
/// the claim cannot name one), or [`NONE`] when nothing claims the object.
fn claim_ref(claim: Option<&Value>, with_namespace: bool) -> String {
    let Some(claim) = claim else { return NONE.into() };
    let s = |k: &str| claim.get(k).and_then(Value::as_str).unwrap_or("");
    if s("name").is_empty() {
        return NONE.into();
    }
    let object = match s("namespace") {
        ns if with_namespace && !ns.is_empty() => format!("{ns}/{}", s("name")),
        _ => s("name").to_owned(),
    };
    format!("{}.{} {object}", s("resource"), s("group"))
}

fn string_at(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn strings_at(obj: &Value, pointer: &str) -> Vec<String> {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The string at `field` of every element of the list at `list` (elements without it are skipped).
fn field_of_each(obj: &Value, list: &str, field: &str) -> Vec<String> {
    obj.pointer(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer(field).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn or(s: String, placeholder: &str) -> String {
    if s.is_empty() { placeholder.to_owned() } else { s }
}

fn join(items: Vec<String>) -> String {
    items.join(",")
}

/// The first `max` items comma-joined, then ` + N more` for the rest: `a,b,c + 2 more`.
pub fn join_limited(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(",");
    }
    format!("{} + {} more", items[..max].join(","), items.len() - max)
}

/// A label selector in apimachinery's string form (`metav1.FormatLabelSelector`): requirements sorted by
/// key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-separated; [`NONE`] for an empty or absent
/// selector, `<error>` for one that is not valid.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return NONE.into();
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                return "<error>".into();
            };
            requirements.push((k.clone(), format!("{k}={v}")));
        }
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let mut values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_owned(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return "<error>".into(),
        };
        requirements.push((key.to_owned(), text));
    }
    // Stable: a key with both a label and expressions keeps the label first, as apimachinery does.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let text: Vec<String> = requirements.into_iter().map(|(_, t)| t).collect();
    or(text.join(","), NONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_list_three_then_count_the_rest() {
        let lbr = |ips: &[&str]| json!({"destinations": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()});
        let c = |o: &Value| cell("networking.ironcore.dev", "LoadBalancerRouting", "Targets", o);
        assert_eq!(c(&lbr(&[])).as_deref(), Some(UNSET));
        assert_eq!(
            c(&lbr(&["10.0.0.1", "10.0.0.2"])).as_deref(),
            Some("10.0.0.1,10.0.0.2")
        );
        assert_eq!(
            c(&lbr(&["a", "b", "c", "d", "e"])).as_deref(),
            Some("a,b,c + 2 more")
        );
        assert_eq!(c(&lbr(&["a", "b", "c"])).as_deref(), Some("a,b,c"));
    }

    #[test]
    fn claim_refs_are_resource_dot_group_and_object() {
        let nid = json!({"spec": {"claimRef": {"group": "core.apinet.ironcore.dev", "resource": "networks",
            "namespace": "default", "name": "tenant-a", "uid": "u"}}});
        assert_eq!(
            cell("core.apinet.ironcore.dev", "NetworkID", "ClaimRef", &nid).as_deref(),
            Some("networks.core.apinet.ironcore.dev default/tenant-a")
        );
        let cluster = json!({"spec": {"claimRef": {"group": "g", "resource": "rs", "name": "n"}}});
        assert_eq!(
            cell("core.apinet.ironcore.dev", "IPAddress", "ClaimRef", &cluster).as_deref(),
            Some("rs.g n")
        );
        let ip = json!({"spec": {"claimRef": {"group": "core.apinet.ironcore.dev", "resource": "loadbalancers",
            "name": "lb"}}});
        assert_eq!(
            cell("core.apinet.ironcore.dev", "IP", "ClaimRef", &ip).as_deref(),
            Some("loadbalancers.core.apinet.ironcore.dev lb")
        );
        assert_eq!(
            cell("core.apinet.ironcore.dev", "IP", "ClaimRef", &json!({"spec": {}})).as_deref(),
            Some(NONE)
        );
    }

    #[test]
    fn label_selectors_format_like_apimachinery() {
        assert_eq!(format_label_selector(None), NONE);
        assert_eq!(format_label_selector(Some(&json!({}))), NONE);
        let sel = json!({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
            {"key": "z", "operator": "In", "values": ["y", "x"]},
            {"key": "c", "operator": "DoesNotExist"},
            {"key": "d", "operator": "Exists"},
            {"key": "e", "operator": "NotIn", "values": ["v"]}]});
        assert_eq!(
            format_label_selector(Some(&sel)),
            "a=1,b=2,!c,d,e notin (v),z in (x,y)"
        );
        let bad = json!({"matchExpressions": [{"key": "k", "operator": "In"}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
    }

    #[test]
    fn empty_values_get_upstreams_placeholders() {
        let g = "networking.ironcore.dev";
        let empty = json!({"spec": {}, "status": {}});
        assert_eq!(
            cell(g, "VirtualIP", "ExternalIP", &empty).as_deref(),
            Some("None")
        );
        assert_eq!(cell(g, "LoadBalancer", "IPs", &empty).as_deref(), Some("None"));
        assert_eq!(
            cell(g, "NetworkInterface", "Machine", &empty).as_deref(),
            Some(NONE)
        );
        assert_eq!(cell(g, "Network", "State", &empty).as_deref(), Some(UNKNOWN));
        assert_eq!(cell(g, "Network", "ProviderID", &empty), None);
        let nic = json!({"status": {"ips": ["10.0.0.1", "fd00::1"]}});
        assert_eq!(
            cell(g, "NetworkInterface", "IPs", &nic).as_deref(),
            Some("10.0.0.1,fd00::1")
        );
        let scaler = json!({"spec": {"maxPublicIPs": 4}});
        assert_eq!(
            cell(
                "core.apinet.ironcore.dev",
                "NATGatewayAutoscaler",
                "PublicIPs",
                &scaler
            )
            .as_deref(),
            Some("0/4")
        );
        assert_eq!(
            cell("networking.metalnet.ironcore.dev", "Network", "Handle", &empty),
            None
        );
    }
}
