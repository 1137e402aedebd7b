//! ironcore Network → apinet Network; provider ID, state and peering status back (upstream
//! ironcore-net's apinetlet Network controller, `apinetlet/controllers`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::meta::{APINET_API_VERSION, Source, derived_metadata};
use crate::origin;
use crate::provider_id::NetworkId;

/// A `spec.peerings[].prefixes[]` entry of an ironcore Network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeeringPrefix {
    /// Name.
    pub name: String,
    /// Literal `prefix`, if set.
    pub prefix: Option<String>,
    /// `prefixRef.name`, if set.
    pub prefix_ref: Option<String>,
}

/// A `spec.peerings[]` entry of an ironcore Network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peering {
    /// Peering name.
    pub name: String,
    /// `networkRef.namespace` (empty = own namespace).
    pub namespace: String,
    /// `networkRef.name`.
    pub network: String,
    /// Exposed prefixes.
    pub prefixes: Vec<PeeringPrefix>,
}

/// A `spec.incomingPeerings[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRef {
    /// Namespace (empty = own namespace).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (the peer's apinet Network name).
    pub uid: String,
}

/// The ironcore Network being mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkView {
    /// The source object.
    pub source: Source,
    /// `spec.peerings`.
    pub peerings: Vec<Peering>,
    /// `spec.incomingPeerings`.
    pub incoming: Vec<ClaimRef>,
}

/// A translated apinet peering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApinetPeering {
    /// The ironcore peering name.
    pub name: String,
    /// The peer's VNI.
    pub id: String,
    /// `(name, prefix)` pairs exposed to the peer.
    pub prefixes: Vec<(String, String)>,
}

/// The apinet peerings of `network`: one per incoming peering whose peer apinet Network exists
/// (`peer_id(uid)` gives its VNI) and that matches one of the Network's own peerings.
///
/// Prefixes come from literal `prefix` values or from ipam Prefixes (`allocated_prefix(name)` returns the
/// prefix of an Allocated Prefix in the Network's namespace); unresolvable ones are skipped. Unlike upstream, a
/// missing peer skips only that peer instead of every later one.
pub fn apinet_peerings(
    network: &NetworkView,
    peer_id: impl Fn(&str) -> Option<String>,
    allocated_prefix: impl Fn(&str) -> Option<String>,
) -> Vec<ApinetPeering> {
    let own_ns = &network.source.namespace;
    let resolve = |ns: &str| {
        if ns.is_empty() {
            own_ns.clone()
        } else {
            ns.to_owned()
        }
    };
    network
        .incoming
        .iter()
        .filter_map(|claim| {
            let id = peer_id(&claim.uid)?;
            let claim_ns = resolve(&claim.namespace);
            let peering = network
                .peerings
                .iter()
                .find(|p| resolve(&p.namespace) == claim_ns && p.network == claim.name)?;
            let prefixes = peering
                .prefixes
                .iter()
                .filter_map(|p| {
                    let prefix = match (&p.prefix, &p.prefix_ref) {
                        (Some(lit), _) => Some(lit.clone()),
                        (None, Some(r)) => allocated_prefix(r),
                        (None, None) => None,
                    }?;
                    Some((p.name.clone(), prefix))
                })
                .collect();
            Some(ApinetPeering {
                name: peering.name.clone(),
                id,
                prefixes,
            })
        })
        .collect()
}

fn peerings_json(peerings: &[ApinetPeering]) -> Value {
    Value::Array(
        peerings
            .iter()
            .map(|p| {
                let mut v = json!({ "name": p.name, "id": p.id });
                if !p.prefixes.is_empty() {
                    v["prefixes"] = p
                        .prefixes
                        .iter()
                        .map(|(name, prefix)| json!({"name": name, "prefix": prefix}))
                        .collect();
                }
                v
            })
            .collect(),
    )
}

/// The apply body of the apinet Network for `network` (the VNI is left to the API server).
pub fn desired_network(apinet_namespace: &str, network: &NetworkView, peerings: &[ApinetPeering]) -> Value {
    let mut spec = json!({});
    if !peerings.is_empty() {
        spec["peerings"] = peerings_json(peerings);
    }
    json!({
        "apiVersion": APINET_API_VERSION,
        "kind": "Network",
        "metadata": derived_metadata(apinet_namespace, origin::NETWORK, &network.source),
        "spec": spec,
    })
}

/// The ironcore `spec.providerID` of a Network realised as apinet Network `name`/`uid` with VNI `id`.
pub fn provider_id(apinet_namespace: &str, name: &str, id: &str, uid: &str) -> String {
    NetworkId {
        namespace: apinet_namespace.into(),
        name: name.into(),
        id: id.into(),
        uid: uid.into(),
    }
    .to_string()
}

/// Per-partition peering states reported in apinet `status.peerings` (`partition → [(id, state)]`).
pub type PartitionPeerings = BTreeMap<String, Vec<(i64, String)>>;

/// The ironcore `status.peerings`: one entry per ironcore `spec.peerings` entry, in spec order.
///
/// A peering that became an apinet peering (both sides agreed) is `Error` if any partition reports Error,
/// `Ready` if at least one partition reports it and all reporting partitions say Ready, else `Pending`; Ready
/// entries carry the exposed prefixes. A peering the other side has not agreed to is `Pending`, so the tenant
/// sees every requested peering. (Upstream lists only translated peerings, one entry per partition, in random
/// map order, with duplicate names.)
pub fn status_peerings(spec: &[Peering], peerings: &[ApinetPeering], reported: &PartitionPeerings) -> Value {
    let translated = |p: &ApinetPeering| {
        let states: Vec<&str> = reported
            .values()
            .flatten()
            .filter(|(id, _)| id.to_string() == p.id)
            .map(|(_, s)| s.as_str())
            .collect();
        let state = if states.contains(&"Error") {
            "Error"
        } else if !states.is_empty() && states.iter().all(|s| *s == "Ready") {
            "Ready"
        } else {
            "Pending"
        };
        let mut v = json!({ "name": p.name, "state": state });
        if state == "Ready" && !p.prefixes.is_empty() {
            v["prefixes"] = p
                .prefixes
                .iter()
                .map(|(name, prefix)| json!({"name": name, "prefix": prefix}))
                .collect();
        }
        v
    };
    Value::Array(
        spec.iter()
            .map(|sp| match peerings.iter().find(|p| p.name == sp.name) {
                Some(p) => translated(p),
                None => json!({ "name": sp.name, "state": "Pending" }),
            })
            .collect(),
    )
}

/// The status merge patch for an ironcore Network, or `None` when status is already as desired.
///
/// `peerings` is `None` when network peering is disabled (status.peerings is then left alone).
pub fn status_patch(current_status: &Value, peerings: Option<&Value>) -> Option<Value> {
    let mut patch = json!({});
    if current_status.get("state").and_then(Value::as_str) != Some("Available") {
        patch["state"] = json!("Available");
    }
    if let Some(p) = peerings {
        let empty = json!([]);
        let cur = current_status
            .get("peerings")
            .filter(|v| !v.is_null())
            .unwrap_or(&empty);
        if cur != p {
            patch["peerings"] = p.clone();
        }
    }
    (patch.as_object().is_some_and(|o| !o.is_empty())).then(|| json!({ "status": patch }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ns: &str, name: &str, peer: (&str, &str, &str), prefixes: Vec<PeeringPrefix>) -> NetworkView {
        NetworkView {
            source: Source {
                namespace: ns.into(),
                name: name.into(),
                uid: format!("{name}-uid"),
            },
            peerings: vec![Peering {
                name: "peering-1".into(),
                namespace: peer.0.into(),
                network: peer.1.into(),
                prefixes,
            }],
            incoming: vec![ClaimRef {
                namespace: peer.0.into(),
                name: peer.1.into(),
                uid: peer.2.into(),
            }],
        }
    }

    #[test]
    fn conformance_network_apply_and_provider_id() {
        let n = NetworkView {
            source: Source {
                namespace: "ns".into(),
                name: "net".into(),
                uid: "u1".into(),
            },
            peerings: vec![],
            incoming: vec![],
        };
        let body = desired_network("apinet", &n, &[]);
        assert_eq!(body["metadata"]["name"], "u1");
        assert_eq!(body["metadata"]["namespace"], "apinet");
        assert_eq!(
            body["metadata"]["labels"]["apinetlet.ironcore.dev/network-uid"],
            "u1"
        );
        assert_eq!(
            body["metadata"]["labels"]["apinetlet.ironcore.dev/network-namespace"],
            "ns"
        );
        assert_eq!(
            body["metadata"]["annotations"]["apinetlet.ironcore.dev/network-name"],
            "net"
        );
        assert_eq!(body["spec"], json!({}));
        assert_eq!(
            provider_id("apinet", "u1", "300", "au"),
            "ironcore-net://apinet/u1/300/au"
        );
    }

    #[test]
    fn conformance_cross_namespace_peering_without_prefixes() {
        let n = view("ns", "n1", ("ns1", "n2", "n2-uid"), vec![]);
        let p = apinet_peerings(&n, |uid| (uid == "n2-uid").then(|| "301".into()), |_| None);
        assert_eq!(
            p,
            [ApinetPeering {
                name: "peering-1".into(),
                id: "301".into(),
                prefixes: vec![]
            }]
        );
        assert_eq!(
            desired_network("apinet", &n, &p)["spec"],
            json!({"peerings": [{"name": "peering-1", "id": "301"}]})
        );
        let reported = PartitionPeerings::from([("partition1".into(), vec![(301, "Ready".into())])]);
        assert_eq!(
            status_peerings(&n.peerings, &p, &reported),
            json!([{"name": "peering-1", "state": "Ready"}])
        );
    }

    #[test]
    fn conformance_prefixes_literal_and_by_reference() {
        let by_ref = view(
            "ns",
            "n1",
            ("", "n2", "n2-uid"),
            vec![PeeringPrefix {
                name: "prefix-1".into(),
                prefix: None,
                prefix_ref: Some("pfx".into()),
            }],
        );
        let alloc = |name: &str| (name == "pfx").then(|| "10.0.0.0/24".to_string());
        let p = apinet_peerings(&by_ref, |_| Some("302".into()), alloc);
        assert_eq!(
            p[0].prefixes,
            [("prefix-1".to_string(), "10.0.0.0/24".to_string())]
        );
        // Not yet allocated: skipped.
        assert!(
            apinet_peerings(&by_ref, |_| Some("302".into()), |_| None)[0]
                .prefixes
                .is_empty()
        );
        let literal = view(
            "ns",
            "n2",
            ("", "n1", "n1-uid"),
            vec![PeeringPrefix {
                name: "prefix-2".into(),
                prefix: Some("192.168.178.20/32".into()),
                prefix_ref: None,
            }],
        );
        let p = apinet_peerings(&literal, |_| Some("300".into()), |_| None);
        let reported = PartitionPeerings::from([("p".into(), vec![(300, "Ready".into())])]);
        assert_eq!(
            status_peerings(&literal.peerings, &p, &reported),
            json!([{"name": "peering-1", "state": "Ready", "prefixes": [{"name": "prefix-2", "prefix": "192.168.178.20/32"}]}])
        );
    }

    #[test]
    fn requested_but_unagreed_peerings_are_pending() {
        let n = view("ns", "n1", ("ns", "n2", "n2-uid"), vec![]);
        // No claim from n2: nothing is translated, yet the tenant sees its wish as Pending.
        assert_eq!(
            status_peerings(&n.peerings, &[], &PartitionPeerings::new()),
            json!([{"name": "peering-1", "state": "Pending"}])
        );
    }

    #[test]
    fn missing_peers_skip_only_themselves() {
        let mut n = view("ns", "n1", ("", "n2", "n2-uid"), vec![]);
        n.peerings.push(Peering {
            name: "peering-2".into(),
            namespace: "".into(),
            network: "n3".into(),
            prefixes: vec![],
        });
        n.incoming.push(ClaimRef {
            namespace: "ns".into(),
            name: "n3".into(),
            uid: "n3-uid".into(),
        });
        let p = apinet_peerings(&n, |uid| (uid == "n3-uid").then(|| "303".into()), |_| None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "peering-2");
    }

    #[test]
    fn peering_states_aggregate_over_partitions() {
        let p = [ApinetPeering {
            name: "x".into(),
            id: "5".into(),
            prefixes: vec![],
        }];
        let st = |r: &[(&str, &str)]| {
            let reported: PartitionPeerings = r
                .iter()
                .map(|(part, s)| (part.to_string(), vec![(5, s.to_string())]))
                .collect();
            let spec = [Peering {
                name: "x".into(),
                namespace: "ns".into(),
                network: "peer".into(),
                prefixes: vec![],
            }];
            status_peerings(&spec, &p, &reported)[0]["state"].clone()
        };
        assert_eq!(st(&[]), "Pending");
        assert_eq!(st(&[("a", "Ready"), ("b", "Pending")]), "Pending");
        assert_eq!(st(&[("a", "Ready"), ("b", "Ready")]), "Ready");
        assert_eq!(st(&[("a", "Ready"), ("b", "Error")]), "Error");
    }

    #[test]
    fn status_is_written_only_when_it_differs() {
        let ready = json!([{"name": "x", "state": "Ready"}]);
        assert_eq!(
            status_patch(&json!({}), None),
            Some(json!({"status": {"state": "Available"}}))
        );
        assert_eq!(status_patch(&json!({"state": "Available"}), None), None);
        assert_eq!(
            status_patch(&json!({"state": "Available"}), Some(&json!([]))),
            None
        );
        assert_eq!(
            status_patch(&json!({"state": "Available"}), Some(&ready)),
            Some(json!({"status": {"peerings": ready.clone()}}))
        );
        assert_eq!(
            status_patch(
                &json!({"state": "Available", "peerings": ready.clone()}),
                Some(&ready)
            ),
            None
        );
    }
}
