//! VNI and public-address pools: the allocation indexes behind NetworkID and IPAddress claims.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use rand::Rng;

use ironnet_vni::Vni;

use super::IdBitmap;

/// Prefixes with more addresses than this are indexed sparsely (a set of taken offsets) instead of
/// with a bitmap, so that an IPv6 /64 pool costs memory per allocated address, not per address.
const BITMAP_LIMIT: u128 = 1 << 24;

/// Errors of pool construction and allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The VNI range is unusable.
    #[error("invalid VNI range [{min}, {max}]: {reason}")]
    InvalidVniRange {
        /// Configured minimum.
        min: u32,
        /// Configured maximum.
        max: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Every VNI in the range is allocated.
    #[error("all IDs are allocated")]
    VnisExhausted,
    /// A requested VNI lies outside the range.
    #[error("the provided ID is not in range")]
    VniOutOfRange,
    /// No prefix of the requested family is configured.
    #[error("cannot allocate IPs of family {0}")]
    NoPrefixForFamily(IpFamily),
    /// Every address of the family is allocated.
    #[error("all IP addresses are already allocated")]
    AddressesExhausted,
    /// A requested address lies outside every prefix.
    #[error("the provided IP is not in range")]
    AddressOutOfRange,
}

/// An IP family, spelled as in the API (`IPv4`, `IPv6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            IpFamily::IPv4
        } else {
            IpFamily::IPv6
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::IPv4 => "IPv4",
            IpFamily::IPv6 => "IPv6",
        }
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated VNI range `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VniRange {
    min: Vni,
    max: Vni,
}

impl VniRange {
    /// ironcore-net's defaults: `--min-vni 200 --max-vni 16777215`.
    pub const DEFAULT: VniRange = VniRange {
        min: ironnet_vni::vni!(200),
        max: Vni::MAX,
    };

    /// Validates a range: `1 ≤ min < max ≤ 2²⁴−1`.
    pub fn new(min: u32, max: u32) -> Result<Self, PoolError> {
        let invalid = |reason| PoolError::InvalidVniRange { min, max, reason };
        if max == 0 {
            return Err(invalid("max must be greater than 0"));
        }
        if min >= max {
            return Err(invalid("min must be less than max"));
        }
        let max_vni = Vni::new(max).map_err(|_| invalid("max must fit in 24 bits (16777215)"))?;
        // VNI 0 is no network: metalbond refuses routes in it and metalnet Networks start at 1.
        let min_vni = Vni::new(min).map_err(|_| invalid("min must be at least 1"))?;
        Ok(VniRange {
            min: min_vni,
            max: max_vni,
        })
    }

    /// The smallest allocatable VNI.
    pub fn min(&self) -> Vni {
        self.min
    }

    /// The largest allocatable VNI.
    pub fn max(&self) -> Vni {
        self.max
    }

    /// Whether `vni` lies in the range.
    pub fn contains(&self, vni: Vni) -> bool {
        (self.min..=self.max).contains(&vni)
    }

    /// The position of `vni` in the range (0 for `min`), `None` outside it.
    fn offset(&self, vni: Vni) -> Option<u64> {
        self.contains(vni).then(|| u64::from(vni.get() - self.min.get()))
    }
}

/// Which VNIs of a range are taken, with a random-start next-free search.
#[derive(Debug, Clone)]
pub struct VniPool {
    range: VniRange,
    taken: IdBitmap,
}

impl VniPool {
    /// An empty pool over `range`.
    pub fn new(range: VniRange) -> Self {
        let len = u64::from(range.max.get() - range.min.get()) + 1;
        VniPool {
            range,
            taken: IdBitmap::new(len),
        }
    }

    /// The pool's range.
    pub fn range(&self) -> VniRange {
        self.range
    }

    /// How many VNIs the range holds.
    pub fn size(&self) -> u64 {
        self.taken.len()
    }

    /// How many VNIs of the range are taken.
    pub fn taken(&self) -> u64 {
        self.taken.count()
    }

    /// Records `vni` as taken; VNIs outside the range are ignored. Returns whether it was free.
    pub fn mark_taken(&mut self, vni: Vni) -> bool {
        self.range.offset(vni).is_some_and(|o| self.taken.insert(o))
    }

    /// Records `vni` as free again. Returns whether it was taken.
    pub fn release(&mut self, vni: Vni) -> bool {
        self.range.offset(vni).is_some_and(|o| self.taken.remove(o))
    }

    /// Whether `vni` is taken (VNIs outside the range count as not allocatable).
    pub fn is_taken(&self, vni: Vni) -> bool {
        self.range.offset(vni).is_none_or(|o| self.taken.contains(o))
    }

    /// Proposes a free VNI, searching upward from a random start with wrap-around, so that
    /// concurrent allocators rarely propose the same one.
    pub fn propose(&self, rng: &mut impl Rng) -> Result<Vni, PoolError> {
        let start = rng.random_range(0..self.taken.len());
        self.taken
            .next_free(start)
            // Every offset of the bitmap lies in the range, so the sum is a VNI of it.
            .and_then(|offset| Vni::new(self.range.min.get() + offset as u32).ok())
            .ok_or(PoolError::VnisExhausted)
    }
}

/// The taken offsets of one prefix.
#[derive(Debug, Clone)]
enum Taken {
    Dense(IdBitmap),
    Sparse(BTreeSet<u128>),
}

/// One configured prefix and the offsets taken in it.
#[derive(Debug, Clone)]
struct Segment {
    prefix: IpNet,
    base: u128,
    size: u128,
    taken: Taken,
    count: u128,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(family: IpFamily, value: u128) -> IpAddr {
    match family {
        IpFamily::IPv4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpFamily::IPv6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

impl Segment {
    fn new(prefix: IpNet) -> Self {
        let prefix = prefix.trunc();
        let host_bits = u32::from(prefix.max_prefix_len() - prefix.prefix_len());
        // Every address of the prefix is allocatable, network and broadcast addresses included
        // (as upstream), and /31, /32, /127 and /128 hold 2 or 1 addresses (upstream: none).
        let size = if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        };
        let taken = if size <= BITMAP_LIMIT {
            Taken::Dense(IdBitmap::new(size as u64))
        } else {
            Taken::Sparse(BTreeSet::new())
        };
        Segment {
            base: to_u128(prefix.network()),
            prefix,
            size,
            taken,
            count: 0,
        }
    }

    fn family(&self) -> IpFamily {
        IpFamily::of(self.prefix.network())
    }

    fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        (IpFamily::of(ip) == self.family() && self.prefix.contains(&ip)).then(|| to_u128(ip) - self.base)
    }

    fn is_full(&self) -> bool {
        self.count == self.size
    }

    fn insert(&mut self, offset: u128) -> bool {
        let inserted = match &mut self.taken {
            Taken::Dense(b) => b.insert(offset as u64),
            Taken::Sparse(s) => s.insert(offset),
        };
        self.count += u128::from(inserted);
        inserted
    }

    fn remove(&mut self, offset: u128) -> bool {
        let removed = match &mut self.taken {
            Taken::Dense(b) => b.remove(offset as u64),
            Taken::Sparse(s) => s.remove(&offset),
        };
        self.count -= u128::from(removed);
        removed
    }

    fn contains(&self, offset: u128) -> bool {
        match &self.taken {
            Taken::Dense(b) => b.contains(offset as u64),
            Taken::Sparse(s) => s.contains(&offset),
        }
    }

    /// A free offset at or after `start` (wrapping), if any.
    fn next_free(&self, start: u128) -> Option<u128> {
        if self.is_full() {
            return None;
        }
        match &self.taken {
            Taken::Dense(b) => b.next_free(start as u64).map(u128::from),
            Taken::Sparse(s) => {
                // The set is tiny relative to the segment, so the run of taken offsets starting at
                // `start` is short; walk it.
                let mut candidate = start;
                for &taken in s.range(start..) {
                    if taken != candidate {
                        break;
                    }
                    candidate = candidate.checked_add(1)?;
                }
                if candidate < self.size {
                    return Some(candidate);
                }
                let mut candidate = 0;
                for &taken in s.iter() {
                    if taken != candidate {
                        break;
                    }
                    candidate += 1;
                }
                (candidate < self.size).then_some(candidate)
            }
        }
    }
}

/// The public address pools (`--public-prefix`), with which addresses are taken.
#[derive(Debug, Clone, Default)]
pub struct AddressPool {
    segments: Vec<Segment>,
}

impl AddressPool {
    /// A pool over `prefixes`, in order (the order in which allocation tries them).
    pub fn new(prefixes: impl IntoIterator<Item = IpNet>) -> Self {
        AddressPool {
            segments: prefixes.into_iter().map(Segment::new).collect(),
        }
    }

    /// The configured prefixes, host bits cleared.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.segments.iter().map(|s| s.prefix)
    }

    /// Per configured prefix, in order: how many of its addresses are taken and how many it holds.
    pub fn usage(&self) -> impl Iterator<Item = (IpNet, u128, u128)> + '_ {
        self.segments.iter().map(|s| (s.prefix, s.count, s.size))
    }

    /// Whether some prefix of `family` is configured.
    pub fn has_family(&self, family: IpFamily) -> bool {
        self.segments.iter().any(|s| s.family() == family)
    }

    /// Whether `ip` lies in a configured prefix.
    pub fn in_range(&self, ip: IpAddr) -> bool {
        self.segments.iter().any(|s| s.offset_of(ip).is_some())
    }

    /// Records `ip` as taken; addresses outside every prefix are ignored. Returns whether it was free.
    pub fn mark_taken(&mut self, ip: IpAddr) -> bool {
        for segment in &mut self.segments {
            if let Some(offset) = segment.offset_of(ip) {
                return segment.insert(offset);
            }
        }
        false
    }

    /// Records `ip` as free again. Returns whether it was taken.
    pub fn release(&mut self, ip: IpAddr) -> bool {
        for segment in &mut self.segments {
            if let Some(offset) = segment.offset_of(ip) {
                return segment.remove(offset);
            }
        }
        false
    }

    /// Whether `ip` is taken.
    pub fn is_taken(&self, ip: IpAddr) -> bool {
        self.segments
            .iter()
            .any(|s| s.offset_of(ip).is_some_and(|o| s.contains(o)))
    }

    /// Proposes a free address of `family`: prefixes in order, each searched from a random offset
    /// upward with wrap-around.
    pub fn propose(&self, family: IpFamily, rng: &mut impl Rng) -> Result<IpAddr, PoolError> {
        if !self.has_family(family) {
            return Err(PoolError::NoPrefixForFamily(family));
        }
        for segment in self.segments.iter().filter(|s| s.family() == family) {
            let start = if segment.size == u128::MAX {
                rng.random::<u128>()
            } else {
                rng.random_range(0..segment.size)
            };
            if let Some(offset) = segment.next_free(start) {
                return Ok(from_u128(family, segment.base + offset));
            }
        }
        Err(PoolError::AddressesExhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_vni::vni;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn vni_range_validation_matches_upstream_rules() {
        assert!(VniRange::new(200, 16_777_215).is_ok());
        assert!(VniRange::new(0, 0).is_err());
        assert!(VniRange::new(5, 5).is_err());
        assert!(VniRange::new(6, 5).is_err());
        assert!(VniRange::new(1, 1 << 24).is_err());
        assert_eq!(VniRange::DEFAULT.min(), vni!(200));
    }

    #[test]
    fn vni_range_starts_at_one() {
        assert_eq!(
            VniRange::new(0, 5).unwrap_err().to_string(),
            "invalid VNI range [0, 5]: min must be at least 1"
        );
        assert_eq!(VniRange::new(1, 5).map(|r| r.min()), Ok(vni!(1)));
    }

    #[test]
    fn vni_pool_hands_out_every_vni_once() {
        let range = VniRange::new(200, 299).unwrap();
        let mut pool = VniPool::new(range);
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = BTreeSet::new();
        for _ in 0..100 {
            let vni = pool.propose(&mut rng).unwrap();
            assert!(range.contains(vni));
            assert!(pool.mark_taken(vni));
            assert!(seen.insert(vni));
        }
        assert_eq!(pool.propose(&mut rng), Err(PoolError::VnisExhausted));
        assert!(pool.release(vni!(250)));
        assert_eq!(pool.propose(&mut rng), Ok(vni!(250)));
        assert!(!pool.mark_taken(vni!(199)), "outside the range");
        assert!(pool.is_taken(vni!(199)));
    }

    #[test]
    fn a_slash_29_yields_eight_addresses_including_network_and_broadcast() {
        let mut pool = AddressPool::new([net("192.0.2.8/29")]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut got = BTreeSet::new();
        for _ in 0..8 {
            let ip = pool.propose(IpFamily::IPv4, &mut rng).unwrap();
            assert!(pool.mark_taken(ip));
            got.insert(ip);
        }
        assert!(got.contains(&"192.0.2.8".parse::<IpAddr>().unwrap()));
        assert!(got.contains(&"192.0.2.15".parse::<IpAddr>().unwrap()));
        assert_eq!(
            pool.propose(IpFamily::IPv4, &mut rng),
            Err(PoolError::AddressesExhausted)
        );
    }

    #[test]
    fn single_address_prefixes_are_allocatable() {
        let mut pool = AddressPool::new([net("198.51.100.7/32"), net("2001:db8::1/128")]);
        let mut rng = StdRng::seed_from_u64(1);
        let v4 = pool.propose(IpFamily::IPv4, &mut rng).unwrap();
        assert_eq!(v4, "198.51.100.7".parse::<IpAddr>().unwrap());
        pool.mark_taken(v4);
        assert_eq!(
            pool.propose(IpFamily::IPv4, &mut rng),
            Err(PoolError::AddressesExhausted)
        );
        assert_eq!(
            pool.propose(IpFamily::IPv6, &mut rng).unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn families_and_prefix_order() {
        let mut pool = AddressPool::new([net("192.0.2.0/31"), net("198.51.100.0/30")]);
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(
            pool.propose(IpFamily::IPv6, &mut rng),
            Err(PoolError::NoPrefixForFamily(IpFamily::IPv6))
        );
        for _ in 0..2 {
            let ip = pool.propose(IpFamily::IPv4, &mut rng).unwrap();
            assert!(net("192.0.2.0/31").contains(&ip), "first prefix first");
            pool.mark_taken(ip);
        }
        let ip = pool.propose(IpFamily::IPv4, &mut rng).unwrap();
        assert!(net("198.51.100.0/30").contains(&ip));
        assert!(!pool.in_range("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn huge_ipv6_prefixes_are_sparse_and_wrap() {
        let mut pool = AddressPool::new([net("2001:db8::/64")]);
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..1000 {
            let ip = pool.propose(IpFamily::IPv6, &mut rng).unwrap();
            assert!(pool.mark_taken(ip));
        }
        // The last address taken: the search wraps to the first free one.
        let last: IpAddr = "2001:db8::ffff:ffff:ffff:ffff".parse().unwrap();
        pool.mark_taken(last);
        let seg = &pool.segments[0];
        assert_eq!(seg.next_free(u64::MAX as u128).map(|o| o < seg.size), Some(true));
    }
}
