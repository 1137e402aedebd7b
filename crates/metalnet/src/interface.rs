//! The NetworkInterface decisions: what dpservice interface, VIP, NAT and prefixes a NetworkInterface wants, and
//! what to change to get there. Pure.
//!
//! Upstream metalnet (`controllers/networkinterface_controller.go`) creates an interface once and never applies
//! later changes of its IPs or VNI; here an interface whose identity (VNI, IPs, device, hostname) differs from
//! the spec is deleted and created again, and a changed VIP or NAT range is replaced.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_api::metalnet::NetworkInterfaceSpec;
use ironnet_vni::Vni;

use crate::dp::{DpInterface, Nat, NewInterface};

/// Why a NetworkInterface cannot be realised as specified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInterface {
    /// IPv6 without `--enable-ipv6`.
    #[error("IPv6 address {0} but IPv6 is not enabled on this node")]
    Ipv6Disabled(IpAddr),
    /// Two IPs of one family.
    #[error("more than one {0} address")]
    DuplicateFamily(&'static str),
    /// No IP at all.
    #[error("no IP address")]
    NoAddress,
    /// Public rate above total rate.
    #[error("metering public rate {public} exceeds total rate {total}")]
    Metering {
        /// Total rate.
        total: u64,
        /// Public rate.
        public: u64,
    },
    /// A VIP or NAT IP that is not IPv4 (dpservice supports IPv4 only).
    #[error("{0} must be an IPv4 address")]
    NotIpv4(&'static str),
    /// A NAT port range dpservice cannot hold.
    #[error("NAT port range {0}..{1} is invalid")]
    NatRange(i32, i32),
}

/// The interface a NetworkInterface wants in dpservice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedInterface {
    /// CreateInterface arguments.
    pub new: NewInterface,
    /// VIP.
    pub vip: Option<IpAddr>,
    /// NAT as `(ip, min_port, max_port)`.
    pub nat: Option<(IpAddr, u32, u32)>,
    /// Alias prefixes (host bits cleared).
    pub prefixes: BTreeSet<IpNet>,
    /// Load balancer target prefixes (host bits cleared).
    pub lb_prefixes: BTreeSet<IpNet>,
}

fn net(p: &ironnet_api::common::IPPrefix) -> Option<IpNet> {
    IpNet::new(p.addr(), p.len()).ok().map(|n| n.trunc())
}

/// The dpservice view of a NetworkInterface spec on network `vni`, interface ID `uid`, device `device`.
pub fn wanted_interface(
    spec: &NetworkInterfaceSpec,
    uid: &str,
    vni: Vni,
    device: &str,
    enable_ipv6: bool,
) -> Result<WantedInterface, InvalidInterface> {
    let mut ipv4: Option<Ipv4Addr> = None;
    let mut ipv6: Option<Ipv6Addr> = None;
    for ip in &spec.ips {
        match ip.addr() {
            IpAddr::V4(a) if ipv4.replace(a).is_some() => {
                return Err(InvalidInterface::DuplicateFamily("IPv4"));
            }
            IpAddr::V6(a) if !enable_ipv6 => return Err(InvalidInterface::Ipv6Disabled(IpAddr::V6(a))),
            IpAddr::V6(a) if ipv6.replace(a).is_some() => {
                return Err(InvalidInterface::DuplicateFamily("IPv6"));
            }
            _ => {}
        }
    }
    if ipv4.is_none() && ipv6.is_none() {
        return Err(InvalidInterface::NoAddress);
    }
    let (total, public) = spec.metering_rate.as_ref().map_or((0, 0), |m| {
        (m.total_rate.unwrap_or(0), m.public_rate.unwrap_or(0))
    });
    if total != 0 && public > total {
        return Err(InvalidInterface::Metering { total, public });
    }
    let vip = match spec.virtual_ip.as_ref().map(|v| v.addr()) {
        Some(IpAddr::V6(_)) => return Err(InvalidInterface::NotIpv4("virtualIP")),
        v => v,
    };
    let nat = match &spec.nat {
        None => None,
        Some(n) => {
            let ip = n.ip.as_ref().map(|i| i.addr());
            let ip = match ip {
                Some(ip @ IpAddr::V4(_)) => ip,
                _ => return Err(InvalidInterface::NotIpv4("nat.ip")),
            };
            match (u32::try_from(n.port), u32::try_from(n.end_port)) {
                (Ok(lo), Ok(hi)) if lo < hi && hi <= 65535 => Some((ip, lo, hi)),
                _ => return Err(InvalidInterface::NatRange(n.port, n.end_port)),
            }
        }
    };
    Ok(WantedInterface {
        new: NewInterface {
            id: uid.to_owned(),
            vni,
            ipv4,
            ipv6,
            device: device.to_owned(),
            total_rate: total,
            public_rate: public,
            hostname: spec.hostname.clone().unwrap_or_default(),
        },
        vip,
        nat,
        prefixes: spec.prefixes.iter().filter_map(net).collect(),
        lb_prefixes: spec.load_balancer_targets.iter().filter_map(net).collect(),
    })
}

/// What to do with the dpservice interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceAction {
    /// None exists: create it.
    Create,
    /// It matches: keep it (and everything on it).
    Keep,
    /// It differs in VNI, IPs, device or hostname: delete it (with everything on it) and create it again.
    Recreate,
}

/// Compares the wanted interface with dpservice's. Metering is not compared: dpservice does not report it back.
pub fn plan_interface(want: &NewInterface, actual: Option<&DpInterface>) -> InterfaceAction {
    match actual {
        None => InterfaceAction::Create,
        Some(a)
            if a.vni == Some(want.vni)
                && a.ipv4 == want.ipv4
                && a.ipv6 == want.ipv6
                && a.device == want.device
                && a.hostname == want.hostname =>
        {
            InterfaceAction::Keep
        }
        Some(_) => InterfaceAction::Recreate,
    }
}

/// What to do with a single-valued attachment (VIP, NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleAction<T> {
    /// Nothing to do.
    Keep,
    /// Create it.
    Create(T),
    /// Delete it.
    Delete,
    /// Delete it and create this instead.
    Replace(T),
}

/// Plans a single-valued attachment: `same` says whether the programmed value is the wanted one.
pub fn plan_single<W: Copy, A>(
    want: Option<W>,
    actual: Option<&A>,
    same: impl Fn(&W, &A) -> bool,
) -> SingleAction<W> {
    match (want, actual) {
        (None, None) => SingleAction::Keep,
        (None, Some(_)) => SingleAction::Delete,
        (Some(w), None) => SingleAction::Create(w),
        (Some(w), Some(a)) if same(&w, a) => SingleAction::Keep,
        (Some(w), Some(_)) => SingleAction::Replace(w),
    }
}

/// Whether a programmed NAT is the wanted `(ip, min, max)`.
pub fn same_nat(want: &(IpAddr, u32, u32), actual: &Nat) -> bool {
    *want == (actual.ip, actual.min_port, actual.max_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_api::common::{IPFamily, LocalObjectReference};
    use ironnet_api::metalnet::NATDetails;
    use ironnet_api::metalnet::networkinterface::MeteringParameters;
    use ironnet_vni::vni;

    fn spec(ips: &[&str]) -> NetworkInterfaceSpec {
        NetworkInterfaceSpec {
            network_ref: LocalObjectReference::new("net"),
            ip_families: ips
                .iter()
                .map(|i| {
                    if i.contains(':') {
                        IPFamily::IPv6
                    } else {
                        IPFamily::IPv4
                    }
                })
                .collect(),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    fn dp_iface(w: &NewInterface) -> DpInterface {
        DpInterface {
            id: w.id.clone(),
            vni: Some(w.vni),
            ipv4: w.ipv4,
            ipv6: w.ipv6,
            underlay: "fc00::1".parse().unwrap(),
            device: w.device.clone(),
            hostname: w.hostname.clone(),
        }
    }

    #[test]
    fn spec_to_interface() {
        let mut s = spec(&["10.0.0.1", "fd00::1"]);
        s.virtual_ip = Some("1.1.1.1".parse().unwrap());
        s.nat = Some(NATDetails {
            ip: Some("2.2.2.2".parse().unwrap()),
            port: 1000,
            end_port: 2000,
        });
        s.prefixes = vec!["10.1.0.5/24".parse().unwrap()];
        s.load_balancer_targets = vec!["10.9.0.1/32".parse().unwrap()];
        s.metering_rate = Some(MeteringParameters {
            total_rate: Some(100),
            public_rate: Some(10),
        });
        s.hostname = Some("vm".into());
        let w = wanted_interface(&s, "uid", vni!(7), "net_tap2", true).unwrap();
        assert_eq!(w.new.ipv4, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(w.new.ipv6, Some("fd00::1".parse().unwrap()));
        assert_eq!((w.new.total_rate, w.new.public_rate), (100, 10));
        assert_eq!(w.new.hostname, "vm");
        assert_eq!(w.nat, Some(("2.2.2.2".parse().unwrap(), 1000, 2000)));
        assert_eq!(
            w.prefixes.into_iter().collect::<Vec<_>>(),
            vec!["10.1.0.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(w.lb_prefixes.len(), 1);
    }

    #[test]
    fn invalid_specs() {
        assert_eq!(
            wanted_interface(&spec(&["fd00::1"]), "u", vni!(1), "d", false),
            Err(InvalidInterface::Ipv6Disabled("fd00::1".parse().unwrap()))
        );
        assert_eq!(
            wanted_interface(&spec(&["10.0.0.1", "10.0.0.2"]), "u", vni!(1), "d", false),
            Err(InvalidInterface::DuplicateFamily("IPv4"))
        );
        assert_eq!(
            wanted_interface(&spec(&[]), "u", vni!(1), "d", false),
            Err(InvalidInterface::NoAddress)
        );
        let mut s = spec(&["10.0.0.1"]);
        s.metering_rate = Some(MeteringParameters {
            total_rate: Some(10),
            public_rate: Some(20),
        });
        assert!(matches!(
            wanted_interface(&s, "u", vni!(1), "d", false),
            Err(InvalidInterface::Metering { .. })
        ));
        let mut s = spec(&["10.0.0.1"]);
        s.virtual_ip = Some("fd00::9".parse().unwrap());
        assert_eq!(
            wanted_interface(&s, "u", vni!(1), "d", true),
            Err(InvalidInterface::NotIpv4("virtualIP"))
        );
        let mut s = spec(&["10.0.0.1"]);
        s.nat = Some(NATDetails {
            ip: Some("2.2.2.2".parse().unwrap()),
            port: 2000,
            end_port: 2000,
        });
        assert_eq!(
            wanted_interface(&s, "u", vni!(1), "d", true),
            Err(InvalidInterface::NatRange(2000, 2000))
        );
    }

    #[test]
    fn interface_identity_changes_recreate() {
        let w = wanted_interface(&spec(&["10.0.0.1"]), "u", vni!(1), "net_tap2", false)
            .unwrap()
            .new;
        assert_eq!(plan_interface(&w, None), InterfaceAction::Create);
        let same = dp_iface(&w);
        assert_eq!(plan_interface(&w, Some(&same)), InterfaceAction::Keep);
        for change in [
            DpInterface {
                vni: Some(vni!(2)),
                ..same.clone()
            },
            DpInterface {
                ipv4: Some(Ipv4Addr::new(10, 0, 0, 9)),
                ..same.clone()
            },
            DpInterface {
                ipv6: Some("fd00::1".parse().unwrap()),
                ..same.clone()
            },
            DpInterface {
                device: "net_tap3".into(),
                ..same.clone()
            },
            DpInterface {
                hostname: "x".into(),
                ..same.clone()
            },
        ] {
            assert_eq!(
                plan_interface(&w, Some(&change)),
                InterfaceAction::Recreate,
                "{change:?}"
            );
        }
    }

    #[test]
    fn single_attachments() {
        let eq = |a: &u8, b: &u8| a == b;
        assert_eq!(plan_single::<u8, u8>(None, None, eq), SingleAction::Keep);
        assert_eq!(plan_single(None, Some(&1), eq), SingleAction::Delete);
        assert_eq!(plan_single(Some(1), None, eq), SingleAction::Create(1));
        assert_eq!(plan_single(Some(1), Some(&1), eq), SingleAction::Keep);
        assert_eq!(plan_single(Some(2), Some(&1), eq), SingleAction::Replace(2));
        let nat = Nat {
            ip: "2.2.2.2".parse().unwrap(),
            min_port: 1000,
            max_port: 2000,
            underlay: "fc00::1".parse().unwrap(),
            vni: None,
        };
        assert!(same_nat(&("2.2.2.2".parse().unwrap(), 1000, 2000), &nat));
        assert!(
            !same_nat(&("2.2.2.2".parse().unwrap(), 1000, 3000), &nat),
            "a changed range is applied"
        );
    }
}
