//! NATGateway → NATTable: which NetworkInterface gets which port slot on which NAT IP (upstream
//! ironcore-net's NATGateway controller, `internal/controllers`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::slots::{SlotError, SlotLayout, SlotPool};
use crate::net::Family;

/// The NAT gateway being reconciled.
#[derive(Clone, Debug)]
pub struct NatGatewayView {
    /// Name of the gateway.
    pub name: String,
    /// UID of the gateway.
    pub uid: String,
    /// The family the gateway translates.
    pub family: Family,
    /// The gateway's public IPs (`spec.ips[].ip` that are allocated).
    pub ips: Vec<IpAddr>,
    /// `spec.portsPerNetworkInterface`.
    pub ports_per_interface: i64,
}

/// A NAT claim on a NetworkInterface (`spec.natGateways[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatClaim {
    /// The family the claim is for.
    pub family: Family,
    /// Name of the claiming gateway.
    pub gateway_name: String,
    /// UID of the claiming gateway.
    pub gateway_uid: String,
}

/// A NetworkInterface in the gateway's network.
#[derive(Clone, Debug)]
pub struct NatInterfaceView {
    /// Name of the interface.
    pub name: String,
    /// UID of the interface.
    pub uid: String,
    /// `spec.nodeRef.name`.
    pub node: String,
    /// `spec.ips`.
    pub ips: Vec<IpAddr>,
    /// Families of `spec.publicIPs`.
    pub public_ip_families: Vec<Family>,
    /// `spec.natGateways`.
    pub nat_claims: Vec<NatClaim>,
    /// Whether the interface has a deletion timestamp.
    pub deleting: bool,
}

impl NatInterfaceView {
    fn internal_ip(&self, family: Family) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| Family::of(ip) == family)
    }

    /// Whether the interface needs NAT for `family`: it has an internal IP of that family and no public IP of it.
    pub fn needs_nat(&self, family: Family) -> bool {
        self.internal_ip(family).is_some() && !self.public_ip_families.contains(&family)
    }

    fn claim(&self, family: Family) -> Option<&NatClaim> {
        self.nat_claims.iter().find(|c| c.family == family)
    }
}

/// Where a NAT section points.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NatTarget {
    /// UID of the NetworkInterface.
    pub uid: String,
    /// Name of the NetworkInterface.
    pub name: String,
    /// Node of the NetworkInterface.
    pub node: String,
}

/// One NATTable section: the internal IP and the port range it owns on a NAT IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatSection {
    /// The interface's internal IP of the gateway's family.
    pub ip: IpAddr,
    /// First port.
    pub port: i64,
    /// Last port (inclusive).
    pub end_port: i64,
    /// The interface owning the range (absent sections are ignored).
    pub target: Option<NatTarget>,
}

/// One NAT IP of a NATTable with its sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatTableIp {
    /// The gateway's public IP.
    pub ip: IpAddr,
    /// Sections sorted by port.
    pub sections: Vec<NatSection>,
}

/// What the NATGateway reconciler has to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatPlan {
    /// The desired NATTable (IPs ascending, only IPs with sections).
    pub table: Vec<NatTableIp>,
    /// Interfaces (by name) that must get a claim `{family, gateway}` appended to `spec.natGateways`.
    /// The table already contains their sections; if a claim fails the reconciler must not write the table.
    pub claim: Vec<String>,
    /// Interfaces (by name) whose claim by this gateway must be removed from `spec.natGateways`.
    pub release: Vec<String>,
    /// `status.usedNATIPs`: number of used slots.
    pub used: i64,
    /// `status.requestedNATIPs`: number of interfaces that want NAT from this gateway.
    pub requested: i64,
}

/// Computes the NAT allocation for `gateway` from the current NATTable and the interfaces in its network.
///
/// Existing valid allocations of interfaces still claimed by the gateway are kept; new interfaces get the next
/// free slot (lowest IP, lowest slot) in name order; when slots run out, claimed-but-unallocated interfaces are
/// released so that another gateway (or a grown one) can serve them. Errors only on an invalid
/// `portsPerNetworkInterface`.
pub fn plan_nat(
    gateway: &NatGatewayView,
    current_table: &[NatTableIp],
    interfaces: &[NatInterfaceView],
) -> Result<NatPlan, SlotError> {
    let layout = SlotLayout::new(gateway.ports_per_interface)?;
    let gw_ips: BTreeSet<IpAddr> = gateway.ips.iter().copied().collect();
    // Detects slots listed twice in the current table.
    let mut listed = SlotPool::new(layout, gw_ips.iter().copied());

    // Existing allocations, keyed by interface UID; a slot listed twice goes to the first section.
    let mut existing: BTreeMap<&str, (IpAddr, u32)> = BTreeMap::new();
    for entry in current_table.iter().filter(|e| gw_ips.contains(&e.ip)) {
        for section in &entry.sections {
            let Some(target) = &section.target else { continue };
            let Some(slot) = layout.slot_of(section.port, section.end_port) else {
                continue;
            };
            if existing.contains_key(target.uid.as_str()) {
                continue;
            }
            if listed.take(entry.ip, slot) {
                existing.insert(target.uid.as_str(), (entry.ip, slot));
            }
        }
    }

    let mut sorted: Vec<&NatInterfaceView> = interfaces.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));

    let mut requested = 0i64;
    let mut allocated: Vec<(&NatInterfaceView, IpAddr, u32)> = Vec::new();
    let mut claimed_unallocated = Vec::new();
    let mut free = Vec::new();
    let mut release = Vec::new();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for nic in sorted {
        let wants = nic.needs_nat(gateway.family) && !nic.deleting;
        match nic.claim(gateway.family) {
            Some(c) if c.gateway_uid == gateway.uid => {
                if !wants {
                    release.push(nic.name.clone());
                    continue;
                }
                requested += 1;
                match existing.get(nic.uid.as_str()) {
                    Some(&(ip, slot)) => {
                        kept.insert(nic.uid.as_str());
                        allocated.push((nic, ip, slot));
                    }
                    None => claimed_unallocated.push(nic),
                }
            }
            Some(_) => {}
            None if wants => {
                requested += 1;
                free.push(nic);
            }
            None => {}
        }
    }

    // Slots of stale allocations (interface gone or released) go back to the pool.
    let mut pool = SlotPool::new(layout, gw_ips.iter().copied());
    for (_, ip, slot) in &allocated {
        pool.take(*ip, *slot);
    }

    let mut full = false;
    for nic in claimed_unallocated {
        if !full {
            if let Some((ip, slot)) = pool.take_next_free() {
                allocated.push((nic, ip, slot));
                continue;
            }
            full = true;
        }
        release.push(nic.name.clone());
    }
    let mut claim = Vec::new();
    if !full {
        for nic in free {
            let Some((ip, slot)) = pool.take_next_free() else {
                break;
            };
            allocated.push((nic, ip, slot));
            claim.push(nic.name.clone());
        }
    }

    let mut by_ip: BTreeMap<IpAddr, Vec<NatSection>> = BTreeMap::new();
    for (nic, ip, slot) in &allocated {
        let (port, end) = layout
            .range(*slot)
            .expect("slot comes from the pool of this layout");
        let internal = nic
            .internal_ip(gateway.family)
            .expect("allocated interfaces need NAT");
        by_ip.entry(*ip).or_default().push(NatSection {
            ip: internal,
            port: port.into(),
            end_port: end.into(),
            target: Some(NatTarget {
                uid: nic.uid.clone(),
                name: nic.name.clone(),
                node: nic.node.clone(),
            }),
        });
    }
    let table = by_ip
        .into_iter()
        .map(|(ip, mut sections)| {
            sections.sort_by_key(|s| s.port);
            NatTableIp { ip, sections }
        })
        .collect();
    release.sort();
    Ok(NatPlan {
        table,
        claim,
        release,
        used: pool.used() as i64,
        requested,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gw(ips: &[&str], ppn: i64) -> NatGatewayView {
        NatGatewayView {
            name: "gw".into(),
            uid: "gw-uid".into(),
            family: Family::V4,
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            ports_per_interface: ppn,
        }
    }

    fn nic(name: &str, ip: &str) -> NatInterfaceView {
        NatInterfaceView {
            name: name.into(),
            uid: format!("{name}-uid"),
            node: "my-node".into(),
            ips: vec![ip.parse().unwrap()],
            public_ip_families: vec![],
            nat_claims: vec![],
            deleting: false,
        }
    }

    fn claimed(mut n: NatInterfaceView, g: &NatGatewayView) -> NatInterfaceView {
        n.nat_claims.push(NatClaim {
            family: g.family,
            gateway_name: g.name.clone(),
            gateway_uid: g.uid.clone(),
        });
        n
    }

    #[test]
    fn conformance_single_interface_gets_first_slot() {
        let g = gw(&["10.0.0.17"], 64);
        let plan = plan_nat(&g, &[], &[nic("nic", "10.0.0.1")]).unwrap();
        assert_eq!(plan.claim, vec!["nic".to_string()]);
        assert_eq!(plan.requested, 1);
        assert_eq!(plan.used, 1);
        assert_eq!(
            plan.table,
            vec![NatTableIp {
                ip: "10.0.0.17".parse().unwrap(),
                sections: vec![NatSection {
                    ip: "10.0.0.1".parse().unwrap(),
                    port: 1024,
                    end_port: 1087,
                    target: Some(NatTarget {
                        uid: "nic-uid".into(),
                        name: "nic".into(),
                        node: "my-node".into()
                    }),
                }],
            }]
        );
    }

    #[test]
    fn interfaces_with_public_ip_or_other_family_or_other_claim_are_skipped() {
        let g = gw(&["10.0.0.17"], 64);
        let mut public = nic("public", "10.0.0.2");
        public.public_ip_families.push(Family::V4);
        let v6 = nic("v6", "2001:db8::1");
        let mut other = nic("other", "10.0.0.3");
        other.nat_claims.push(NatClaim {
            family: Family::V4,
            gateway_name: "gw2".into(),
            gateway_uid: "u2".into(),
        });
        let plan = plan_nat(&g, &[], &[public, v6, other]).unwrap();
        assert!(plan.table.is_empty() && plan.claim.is_empty() && plan.release.is_empty());
        assert_eq!(plan.requested, 0);
    }

    #[test]
    fn existing_allocations_are_kept_stable() {
        let g = gw(&["10.0.0.17"], 64);
        let first = plan_nat(&g, &[], &[nic("b", "10.0.0.2")]).unwrap();
        // "a" sorts before "b" but must not steal b's slot.
        let nics = [nic("a", "10.0.0.1"), claimed(nic("b", "10.0.0.2"), &g)];
        let second = plan_nat(&g, &first.table, &nics).unwrap();
        let b = second.table[0]
            .sections
            .iter()
            .find(|s| s.target.as_ref().unwrap().name == "b")
            .unwrap();
        assert_eq!((b.port, b.end_port), (1024, 1087));
        assert_eq!(second.claim, vec!["a".to_string()]);
        assert_eq!(second.used, 2);
    }

    #[test]
    fn released_interfaces_really_release_and_free_their_slot() {
        let g = gw(&["10.0.0.17"], 64);
        let first = plan_nat(&g, &[], &[nic("a", "10.0.0.1")]).unwrap();
        let mut a = claimed(nic("a", "10.0.0.1"), &g);
        a.public_ip_families.push(Family::V4);
        let plan = plan_nat(&g, &first.table, &[a]).unwrap();
        assert_eq!(plan.release, vec!["a".to_string()]);
        assert!(plan.table.is_empty());
        assert_eq!(plan.used, 0);
    }

    #[test]
    fn full_gateway_releases_unallocated_claims_and_counts_requests() {
        let g = gw(&["10.0.0.17"], 32768);
        let nics = [
            claimed(nic("a", "10.0.0.1"), &g),
            claimed(nic("b", "10.0.0.2"), &g),
            nic("c", "10.0.0.3"),
        ];
        let plan = plan_nat(&g, &[], &nics).unwrap();
        assert_eq!(plan.used, 1);
        assert_eq!(plan.requested, 3);
        assert_eq!(plan.release, vec!["b".to_string()]);
        assert!(plan.claim.is_empty());
    }

    #[test]
    fn table_entries_for_ips_the_gateway_lost_are_dropped() {
        let g = gw(&["10.0.0.17"], 64);
        let stale = vec![NatTableIp {
            ip: "10.0.0.99".parse().unwrap(),
            sections: vec![NatSection {
                ip: "10.0.0.1".parse().unwrap(),
                port: 1024,
                end_port: 1087,
                target: Some(NatTarget {
                    uid: "a-uid".into(),
                    name: "a".into(),
                    node: "n".into(),
                }),
            }],
        }];
        let plan = plan_nat(&g, &stale, &[claimed(nic("a", "10.0.0.1"), &g)]).unwrap();
        assert_eq!(plan.table[0].ip, "10.0.0.17".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn zero_ports_per_interface_is_an_error_not_a_panic() {
        assert!(plan_nat(&gw(&["10.0.0.17"], 0), &[], &[nic("a", "10.0.0.1")]).is_err());
    }

    proptest! {
        /// Whatever the input, no slot is handed out twice, no section escapes the port space and used ≤ capacity.
        #[test]
        fn no_slot_is_used_twice(
            ppn_exp in 10u32..=15,
            n_ips in 0usize..3,
            nics in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 0..80),
        ) {
            let g = NatGatewayView {
                name: "gw".into(), uid: "gw-uid".into(), family: Family::V4,
                ips: (0..n_ips).map(|i| IpAddr::from([192, 0, 2, i as u8])).collect(),
                ports_per_interface: 1 << ppn_exp,
            };
            let views: Vec<_> = nics.iter().enumerate().map(|(i, (is_claimed, public, deleting))| {
                let mut n = nic(&format!("n{i:03}"), &format!("10.0.{}.{}", i / 250, i % 250));
                if *is_claimed { n = claimed(n, &g); }
                if *public { n.public_ip_families.push(Family::V4); }
                n.deleting = *deleting;
                n
            }).collect();
            let first = plan_nat(&g, &[], &views).unwrap();
            let second = plan_nat(&g, &first.table, &views).unwrap();
            for plan in [&first, &second] {
                let mut seen = BTreeSet::new();
                for e in &plan.table {
                    for s in &e.sections {
                        prop_assert!(s.port >= 1024 && s.end_port <= 65535);
                        prop_assert!(seen.insert((e.ip, s.port)));
                    }
                }
                prop_assert_eq!(seen.len() as i64, plan.used);
                let cap = (n_ips as i64) * i64::from(64512 / (1u32 << ppn_exp));
                prop_assert!(plan.used <= cap);
                prop_assert!(plan.used <= plan.requested);
            }
        }
    }
}
