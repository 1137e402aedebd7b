//! apinet Network → metalnet Network, and the peering states back (upstream ironcore-net
//! `metalnetlet/controllers/network_controller.go`).

use ironnet_api::apinet;
use ironnet_api::apinet::network::{NetworkPeeringState, NetworkPeeringStatus};
use ironnet_api::metalnet;
use ironnet_api::metalnet::ObjectState;
use ironnet_api::metalnet::network::PeeredPrefix;

/// The metalnet Network spec of `network`: its VNI, and unless `peering_disabled` the VNIs it peers with and,
/// for peerings that restrict them, the prefixes exported into each peer.
///
/// Errors name the malformed VNI (the network's own or a peer's).
pub fn metalnet_network_spec(
    network: &apinet::Network,
    peering_disabled: bool,
) -> Result<metalnet::NetworkSpec, String> {
    let vni = network
        .spec
        .vni()
        .map_err(|_| format!("invalid VNI {:?}", network.spec.id))?;
    let mut spec = metalnet::NetworkSpec {
        id: i32::from(vni),
        ..Default::default()
    };
    if peering_disabled {
        return Ok(spec);
    }
    for peering in &network.spec.peerings {
        let peer = peering
            .vni()
            .map(i32::from)
            .map_err(|_| format!("invalid VNI {:?} of peering {}", peering.id, peering.name))?;
        spec.peered_ids.push(peer);
        let prefixes: Vec<_> = peering.prefixes.iter().filter_map(|p| p.prefix.clone()).collect();
        if !prefixes.is_empty() {
            spec.peered_prefixes.push(PeeredPrefix { id: peer, prefixes });
        }
    }
    Ok(spec)
}

/// The apinet peering states (`status.peerings[<partition>]`) of what metalnet reports.
pub fn apinet_peerings(metalnet: Option<&metalnet::NetworkStatus>) -> Vec<NetworkPeeringStatus> {
    metalnet
        .map(|s| s.peerings.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| NetworkPeeringStatus {
            id: p.id,
            state: p.state.map(|s| match s {
                ObjectState::Ready => NetworkPeeringState::Ready,
                ObjectState::Pending => NetworkPeeringState::Pending,
                ObjectState::Error => NetworkPeeringState::Error,
            }),
        })
        .collect()
}

/// The merge patch setting `status.peerings[<partition>]` of `network` to `desired`, if that differs from what
/// it reports (an empty list and an absent entry are the same).
pub fn peering_status_patch(
    network: &apinet::Network,
    partition: &str,
    desired: &[NetworkPeeringStatus],
) -> Option<serde_json::Value> {
    let current = network
        .status
        .as_ref()
        .and_then(|s| s.peerings.get(partition))
        .map(Vec::as_slice)
        .unwrap_or_default();
    if current == desired {
        return None;
    }
    let value = if desired.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(desired).unwrap_or_default()
    };
    Some(serde_json::json!({ "status": { "peerings": { partition: value } } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::apinet::network::{NetworkPeering, PeeringPrefix};
    use serde_json::json;

    fn network(id: &str, peerings: Vec<NetworkPeering>) -> apinet::Network {
        apinet::Network::new(
            "n",
            apinet::NetworkSpec {
                id: id.into(),
                peerings,
            },
        )
    }

    fn peering(id: &str, prefixes: &[Option<&str>]) -> NetworkPeering {
        NetworkPeering {
            name: format!("to-{id}"),
            id: id.into(),
            prefixes: prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| PeeringPrefix {
                    name: format!("p{i}"),
                    prefix: p.map(|p| p.parse().unwrap()),
                })
                .collect(),
        }
    }

    #[test]
    fn spec_carries_peer_vnis_and_only_non_empty_prefix_lists() {
        let n = network(
            "100",
            vec![
                peering("200", &[Some("10.0.0.0/24"), None]),
                peering("300", &[None]),
            ],
        );
        let spec = metalnet_network_spec(&n, false).unwrap();
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"id": 100, "peeredIDs": [200, 300], "peeredPrefixes": [{"id": 200, "prefixes": ["10.0.0.0/24"]}]})
        );
        assert_eq!(
            serde_json::to_value(metalnet_network_spec(&n, true).unwrap()).unwrap(),
            json!({"id": 100})
        );
        assert!(metalnet_network_spec(&network("x", vec![]), false).is_err());
        assert!(metalnet_network_spec(&network("1", vec![peering("0x2", &[])]), false).is_err());
    }

    #[test]
    fn peering_states_are_written_only_when_they_differ() {
        let reported = metalnet::NetworkStatus {
            peerings: vec![metalnet::network::NetworkPeeringStatus {
                id: 200,
                state: Some(ObjectState::Ready),
            }],
        };
        let desired = apinet_peerings(Some(&reported));
        let mut n = network("100", vec![]);
        assert_eq!(
            peering_status_patch(&n, "p", &desired),
            Some(json!({"status": {"peerings": {"p": [{"id": 200, "state": "Ready"}]}}}))
        );
        n.status = Some(apinet::NetworkStatus {
            peerings: [("p".to_owned(), desired.clone())].into(),
        });
        assert_eq!(peering_status_patch(&n, "p", &desired), None);
        assert_eq!(
            peering_status_patch(&n, "p", &[]),
            Some(json!({"status": {"peerings": {"p": null}}}))
        );
        assert_eq!(peering_status_patch(&network("1", vec![]), "p", &[]), None);
    }
}
