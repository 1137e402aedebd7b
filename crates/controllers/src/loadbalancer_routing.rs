//! LoadBalancer → LoadBalancerRouting destinations (upstream ironcore's `loadbalancer` controller,
//! `internal/controllers/networking`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::selector::{LabelMatcher, SelectorError};

/// The routing-relevant part of a NetworkInterface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingInterfaceView {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.networkRef.name`.
    pub network: String,
    /// `spec.providerID`.
    pub provider_id: String,
    /// `status.state == Available`.
    pub available: bool,
    /// `status.ips`.
    pub ips: Vec<IpAddr>,
}

/// A LoadBalancerRouting destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The interface IP.
    pub ip: IpAddr,
    /// UID of the interface.
    pub uid: String,
    /// Name of the interface.
    pub name: String,
    /// `spec.providerID` of the interface.
    pub provider_id: String,
}

/// The destinations of a LoadBalancer on `network` with `selector`: one per IP of every Available interface on
/// the same network whose labels match, ordered by interface name.
///
/// Returns `Ok(None)` when the LoadBalancer has no selector: routing is then managed externally and the
/// existing LoadBalancerRouting must be left alone.
pub fn destinations(
    network: &str,
    selector: Option<&LabelSelector>,
    interfaces: &[RoutingInterfaceView],
) -> Result<Option<Vec<Destination>>, SelectorError> {
    let Some(selector) = selector else { return Ok(None) };
    let matcher = LabelMatcher::new(Some(selector))?;
    let mut selected: Vec<&RoutingInterfaceView> = interfaces
        .iter()
        .filter(|n| n.available && n.network == network && matcher.matches(&n.labels))
        .collect();
    selected.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(
        selected
            .into_iter()
            .flat_map(|n| {
                n.ips.iter().map(|ip| Destination {
                    ip: *ip,
                    uid: n.uid.clone(),
                    name: n.name.clone(),
                    provider_id: n.provider_id.clone(),
                })
            })
            .collect(),
    ))
}

/// The LoadBalancers (by index in `lbs`) to re-reconcile when an interface changes from `old` to `new` labels
/// on `network`: every LB on that network whose selector matches either label set.
///
/// LBs without a selector are skipped (upstream stops at the first one and misses the rest); LBs with an invalid
/// selector are skipped too.
pub fn affected_load_balancers<'a>(
    network: &str,
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
    lbs: impl IntoIterator<Item = (&'a str, Option<&'a LabelSelector>)>,
) -> Vec<usize> {
    lbs.into_iter()
        .enumerate()
        .filter(|(_, (lb_network, sel))| *lb_network == network && sel.is_some())
        .filter(|(_, (_, sel))| {
            LabelMatcher::new(*sel)
                .is_ok_and(|m| old.is_some_and(|l| m.matches(l)) || new.is_some_and(|l| m.matches(l)))
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::labels;

    fn nic(name: &str, l: BTreeMap<String, String>, available: bool) -> RoutingInterfaceView {
        RoutingInterfaceView {
            name: name.into(),
            uid: format!("{name}-uid"),
            labels: l,
            network: "net".into(),
            provider_id: "my://provider-id".into(),
            available,
            ips: vec!["10.0.0.1".parse().unwrap()],
        }
    }

    fn foo_bar() -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels([("foo", "bar")])),
            ..Default::default()
        }
    }

    #[test]
    fn conformance_j1_to_j3() {
        let sel = foo_bar();
        assert_eq!(destinations("net", Some(&sel), &[]).unwrap(), Some(vec![]));
        let available = nic("nic", labels([("foo", "bar")]), true);
        assert_eq!(
            destinations("net", Some(&sel), std::slice::from_ref(&available))
                .unwrap()
                .unwrap(),
            vec![Destination {
                ip: "10.0.0.1".parse().unwrap(),
                uid: "nic-uid".into(),
                name: "nic".into(),
                provider_id: "my://provider-id".into(),
            }]
        );
        assert_eq!(
            destinations("net", Some(&sel), &[nic("nic", labels([]), true)]).unwrap(),
            Some(vec![])
        );
        assert_eq!(
            destinations("net", Some(&sel), &[nic("nic", labels([("foo", "bar")]), false)]).unwrap(),
            Some(vec![])
        );
        assert_eq!(
            destinations("other", Some(&sel), &[available]).unwrap(),
            Some(vec![])
        );
        assert_eq!(destinations("net", None, &[]).unwrap(), None);
    }

    #[test]
    fn interface_changes_reach_every_selecting_lb() {
        let sel = foo_bar();
        let lbs = [
            ("net", None),
            ("net", Some(&sel)),
            ("other", Some(&sel)),
            ("net", Some(&sel)),
        ];
        let old = labels([("foo", "bar")]);
        let new = labels([]);
        assert_eq!(
            affected_load_balancers("net", Some(&old), Some(&new), lbs),
            [1, 3]
        );
        assert!(affected_load_balancers("net", None, Some(&new), lbs).is_empty());
    }
}
