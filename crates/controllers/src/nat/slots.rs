//! NAT port-slot arithmetic, as upstream ironcore-net's NATGateway controller (`internal/controllers`) cuts
//! ports.
//!
//! Each NAT IP offers the ephemeral ports `1024..=65535` (64512 ports). A gateway with
//! `portsPerNetworkInterface = ppn` cuts them into `64512 / ppn` slots; slot `s` is the range
//! `[1024 + s·ppn, 1024 + s·ppn + ppn − 1]`.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The first port handed out to NAT slots.
pub const FIRST_PORT: u32 = 1024;
/// The last port handed out to NAT slots.
pub const LAST_PORT: u32 = 65535;
/// The number of ports per NAT IP (`LAST_PORT - FIRST_PORT + 1`).
pub const PORTS_PER_IP: u32 = LAST_PORT - FIRST_PORT + 1;

/// Invalid slot layout input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlotError {
    /// `portsPerNetworkInterface` outside `1..=64512`.
    #[error("portsPerNetworkInterface must be between 1 and {PORTS_PER_IP}, got {0}")]
    PortsPerInterfaceOutOfRange(i64),
}

/// How the NAT port space of one IP is cut into per-interface slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    ports_per_interface: u32,
}

impl SlotLayout {
    /// A layout of `ports_per_interface`-sized slots.
    ///
    /// Errors unless `1 <= ports_per_interface <= 64512` (upstream divides by zero on 0).
    pub fn new(ports_per_interface: i64) -> Result<Self, SlotError> {
        if !(1..=i64::from(PORTS_PER_IP)).contains(&ports_per_interface) {
            return Err(SlotError::PortsPerInterfaceOutOfRange(ports_per_interface));
        }
        Ok(SlotLayout {
            ports_per_interface: ports_per_interface as u32,
        })
    }

    /// Ports in each slot.
    pub fn ports_per_interface(&self) -> u32 {
        self.ports_per_interface
    }

    /// Slots per NAT IP (`64512 / ppn`, rounded down).
    pub fn slots_per_ip(&self) -> u32 {
        PORTS_PER_IP / self.ports_per_interface
    }

    /// The inclusive port range of `slot`, or `None` if the slot does not exist.
    pub fn range(&self, slot: u32) -> Option<(u16, u16)> {
        if slot >= self.slots_per_ip() {
            return None;
        }
        let port = FIRST_PORT + slot * self.ports_per_interface;
        let end = port + self.ports_per_interface - 1;
        Some((port as u16, end as u16))
    }

    /// The slot whose range is exactly `[port, end_port]`, or `None` when the section is not a slot of this layout.
    ///
    /// Unlike upstream, a 1-port layout has valid slots (`port == end_port`).
    pub fn slot_of(&self, port: i64, end_port: i64) -> Option<u32> {
        let ppn = i64::from(self.ports_per_interface);
        if port < i64::from(FIRST_PORT) || end_port > i64::from(LAST_PORT) || end_port != port + ppn - 1 {
            return None;
        }
        let offset = port - i64::from(FIRST_PORT);
        if offset % ppn != 0 {
            return None;
        }
        let slot = (offset / ppn) as u32;
        (slot < self.slots_per_ip()).then_some(slot)
    }
}

/// Slot occupancy for a set of NAT IPs.
///
/// `take_next_free` is deterministic: the lowest IP with a free slot, then its lowest free slot
/// (upstream picks an arbitrary IP in Go map order).
#[derive(Clone, Debug)]
pub struct SlotPool {
    layout: SlotLayout,
    used: BTreeMap<IpAddr, Vec<u64>>,
    used_count: u64,
}

impl SlotPool {
    /// An empty pool over `ips` (duplicates are merged).
    pub fn new(layout: SlotLayout, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        let words = layout.slots_per_ip().div_ceil(64) as usize;
        let used = ips.into_iter().map(|ip| (ip, vec![0u64; words])).collect();
        SlotPool {
            layout,
            used,
            used_count: 0,
        }
    }

    /// The layout of this pool.
    pub fn layout(&self) -> SlotLayout {
        self.layout
    }

    /// Marks `slot` on `ip` used. Returns false (and changes nothing) if the IP is not in the pool, the
    /// slot does not exist or it is already used.
    pub fn take(&mut self, ip: IpAddr, slot: u32) -> bool {
        if slot >= self.layout.slots_per_ip() {
            return false;
        }
        let Some(bits) = self.used.get_mut(&ip) else {
            return false;
        };
        let (w, b) = ((slot / 64) as usize, slot % 64);
        if bits[w] & (1 << b) != 0 {
            return false;
        }
        bits[w] |= 1 << b;
        self.used_count += 1;
        true
    }

    /// Takes the lowest free slot on the lowest IP that has one.
    pub fn take_next_free(&mut self) -> Option<(IpAddr, u32)> {
        let slots = self.layout.slots_per_ip();
        let found = self.used.iter().find_map(|(ip, bits)| {
            bits.iter().enumerate().find_map(|(w, word)| {
                let free = !word;
                if free == 0 {
                    return None;
                }
                let slot = w as u32 * 64 + free.trailing_zeros();
                (slot < slots).then_some((*ip, slot))
            })
        });
        if let Some((ip, slot)) = found {
            let taken = self.take(ip, slot);
            debug_assert!(taken);
        }
        found
    }

    /// Number of used slots over all IPs.
    pub fn used(&self) -> u64 {
        self.used_count
    }

    /// Total slots over all IPs.
    pub fn capacity(&self) -> u64 {
        self.used.len() as u64 * u64::from(self.layout.slots_per_ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn upstream_examples() {
        let l64 = SlotLayout::new(64).unwrap();
        assert_eq!(l64.slots_per_ip(), 1008);
        assert_eq!(l64.range(0), Some((1024, 1087)));
        assert_eq!(l64.range(1007), Some((65472, 65535)));
        assert_eq!(l64.range(1008), None);
        assert_eq!(SlotLayout::new(2048).unwrap().slots_per_ip(), 31);
        assert_eq!(SlotLayout::new(64512).unwrap().slots_per_ip(), 1);
        assert_eq!(SlotLayout::new(64512).unwrap().range(0), Some((1024, 65535)));
    }

    #[test]
    fn invalid_ports_per_interface_is_an_error() {
        for bad in [0, -1, 64513, i64::MAX, i64::MIN] {
            assert_eq!(
                SlotLayout::new(bad),
                Err(SlotError::PortsPerInterfaceOutOfRange(bad))
            );
        }
    }

    #[test]
    fn one_port_slots_are_valid() {
        let l = SlotLayout::new(1).unwrap();
        assert_eq!(l.slots_per_ip(), 64512);
        assert_eq!(l.slot_of(1024, 1024), Some(0));
        assert_eq!(l.slot_of(65535, 65535), Some(64511));
    }

    #[test]
    fn sections_that_are_not_slots_are_rejected() {
        let l = SlotLayout::new(64).unwrap();
        assert_eq!(l.slot_of(1024, 1087), Some(0));
        assert_eq!(l.slot_of(1088, 1151), Some(1));
        assert_eq!(l.slot_of(1023, 1086), None);
        assert_eq!(l.slot_of(1025, 1088), None);
        assert_eq!(l.slot_of(1024, 1086), None);
        assert_eq!(l.slot_of(65472, 65536), None);
        // 2048 leaves a tail (64512 = 31·2048 + 1024) that is not a slot.
        let l = SlotLayout::new(2048).unwrap();
        assert_eq!(l.slot_of(1024 + 31 * 2048, 1024 + 32 * 2048 - 1), None);
    }

    #[test]
    fn pool_fills_lowest_ip_first_and_reports_exhaustion() {
        let l = SlotLayout::new(32768).unwrap();
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let mut pool = SlotPool::new(l, [a, b]);
        assert_eq!(pool.capacity(), 2);
        assert_eq!(pool.take_next_free(), Some((b, 0)));
        assert_eq!(pool.take_next_free(), Some((a, 0)));
        assert_eq!(pool.take_next_free(), None);
        assert_eq!(pool.used(), 2);
        assert!(!pool.take(a, 0));
    }

    proptest! {
        #[test]
        fn range_and_slot_of_are_inverse(ppn in 1i64..=64512, slot in 0u32..70000) {
            let l = SlotLayout::new(ppn).unwrap();
            match l.range(slot) {
                Some((p, e)) => {
                    prop_assert!(p >= 1024 && e >= p);
                    prop_assert_eq!(i64::from(e) - i64::from(p) + 1, ppn);
                    prop_assert_eq!(l.slot_of(p.into(), e.into()), Some(slot));
                }
                None => prop_assert!(slot >= l.slots_per_ip()),
            }
        }

        #[test]
        fn slot_of_never_panics_and_is_consistent(ppn in 1i64..=64512, port in any::<i64>(), end in any::<i64>()) {
            let l = SlotLayout::new(ppn).unwrap();
            if let Some(s) = l.slot_of(port, end) {
                prop_assert_eq!(l.range(s), Some((port as u16, end as u16)));
            }
        }

        #[test]
        fn pool_hands_out_each_slot_once(ppn_exp in 8u32..=15, n_ips in 1usize..4) {
            let l = SlotLayout::new(1 << ppn_exp).unwrap();
            let ips: Vec<IpAddr> = (0..n_ips).map(|i| IpAddr::from([192, 0, 2, i as u8])).collect();
            let mut pool = SlotPool::new(l, ips);
            let mut seen = std::collections::BTreeSet::new();
            while let Some(x) = pool.take_next_free() {
                prop_assert!(seen.insert(x));
            }
            prop_assert_eq!(seen.len() as u64, pool.capacity());
            prop_assert_eq!(pool.used(), pool.capacity());
        }
    }
}
