//! Underlay addresses owned by this host and the VNF table that maps them to their meaning (dpservice's VNF
//! table: an inbound tunnel packet whose outer destination is not in it is dropped).

use std::collections::HashMap;
use std::net::Ipv6Addr;

use ipnet::IpNet;
use ironnet_vni::Vni;

use crate::error::DpError;
use crate::port::PortId;

/// What an underlay address of this host stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VnfKind {
    /// The interface's own IPs.
    InterfaceIp,
    /// A VIP (1:1 NAT) of an interface.
    Vip,
    /// The NAT IP of an interface.
    Nat,
    /// A load balancer.
    Lb,
    /// A load-balancer prefix (LB target served by a local VM, direct server return).
    LbAliasPrefix,
    /// A routed alias prefix of an interface.
    AliasPrefix,
}

/// One VNF table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vnf {
    /// The meaning.
    pub kind: VnfKind,
    /// The VNI the decapsulated packet belongs to.
    pub vni: Option<Vni>,
    /// The VF port (interface kinds) or `None` (load balancers).
    pub port: Option<PortId>,
    /// The alias prefix for [`VnfKind::AliasPrefix`] / [`VnfKind::LbAliasPrefix`].
    pub prefix: Option<IpNet>,
}

/// Generates underlay addresses in dpservice's layout: bytes 0–7 the host's /64, byte 8 `0xd0`, byte 9
/// subtype 0, byte 10 flags (0 here; `0x80` marks an externally generated address), byte 11 a random byte,
/// bytes 12–15 a big-endian counter that starts at a random value 0..=255.
#[derive(Debug, Clone)]
pub struct UnderlayGenerator {
    prefix: [u8; 8],
    random_byte: u8,
    counter: u32,
}

impl UnderlayGenerator {
    /// A generator for `host`'s /64 whose random parts derive deterministically from `seed`.
    pub fn new(host: Ipv6Addr, seed: u64) -> Self {
        let mut state = seed;
        let r1 = splitmix64(&mut state);
        let r2 = splitmix64(&mut state);
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&host.octets()[..8]);
        UnderlayGenerator {
            prefix,
            random_byte: r1.to_le_bytes()[0],
            counter: (r2 % 256) as u32,
        }
    }

    /// The next address; the counter wraps after 2^32 allocations.
    pub fn next_address(&mut self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o[..8].copy_from_slice(&self.prefix);
        o[8] = 0xd0;
        o[9] = 0;
        o[10] = 0;
        o[11] = self.random_byte;
        o[12..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        Ipv6Addr::from(o)
    }

    /// Whether `addr` is acceptable as an externally generated ("preferred") underlay: same /64 as the host and
    /// flags bit 0x80 set in byte 10.
    pub fn accepts_preferred(&self, addr: Ipv6Addr) -> bool {
        let o = addr.octets();
        o[..8] == self.prefix && o[10] & 0x80 != 0
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Underlay address → VNF. Each address is registered at most once.
#[derive(Debug, Default, Clone)]
pub struct VnfTable {
    entries: HashMap<Ipv6Addr, Vnf, foldhash::fast::RandomState>,
    /// Number of changes so far: flows cache decisions derived from this table and compare it to revalidate.
    generation: u64,
}

impl VnfTable {
    /// Registers `addr`; [`DpError::VnfInsert`] if it is taken.
    pub fn insert(&mut self, addr: Ipv6Addr, vnf: Vnf) -> Result<(), DpError> {
        if self.entries.contains_key(&addr) {
            return Err(DpError::VnfInsert);
        }
        self.entries.insert(addr, vnf);
        self.generation += 1;
        Ok(())
    }

    /// Removes `addr`, returning its entry.
    pub fn remove(&mut self, addr: &Ipv6Addr) -> Option<Vnf> {
        self.generation += 1;
        self.entries.remove(addr)
    }

    /// Number of changes made so far (increases with every insert and removal).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Looks up `addr`.
    #[inline]
    pub fn get(&self, addr: &Ipv6Addr) -> Option<&Vnf> {
        self.entries.get(addr)
    }

    /// Whether `addr` is registered.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        self.entries.contains_key(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_addresses_follow_the_upstream_layout() {
        let mut g = UnderlayGenerator::new("fc00:1::1".parse().unwrap(), 7);
        let a = g.next_address().octets();
        let b = g.next_address().octets();
        assert_eq!(&a[..8], &[0xfc, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(a[8], 0xd0);
        assert_eq!(a[9], 0);
        assert_eq!(a[10], 0);
        assert_eq!(a[11], b[11]);
        let ca = u32::from_be_bytes([a[12], a[13], a[14], a[15]]);
        let cb = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
        assert!(ca < 256);
        assert_eq!(cb, ca + 1);
        // Same seed, same sequence.
        let mut g2 = UnderlayGenerator::new("fc00:1::1".parse().unwrap(), 7);
        assert_eq!(g2.next_address().octets(), a);
    }

    #[test]
    fn preferred_underlay_needs_host_prefix_and_external_flag() {
        let g = UnderlayGenerator::new("fc00:1::1".parse().unwrap(), 0);
        assert!(g.accepts_preferred("fc00:1::d000:8000:0:5".parse().unwrap()));
        assert!(!g.accepts_preferred("fc00:1::d000:0:0:5".parse().unwrap()));
        assert!(!g.accepts_preferred("fc00:2::d000:8000:0:5".parse().unwrap()));
    }

    #[test]
    fn vnf_addresses_are_unique() {
        let mut t = VnfTable::default();
        let a: Ipv6Addr = "fc00::1".parse().unwrap();
        let v = Vnf {
            kind: VnfKind::Lb,
            vni: Some(ironnet_vni::vni!(1)),
            port: None,
            prefix: None,
        };
        assert_eq!(t.insert(a, v), Ok(()));
        assert_eq!(t.insert(a, v), Err(DpError::VnfInsert));
        assert_eq!(t.remove(&a), Some(v));
        assert!(!t.contains(&a));
    }
}
