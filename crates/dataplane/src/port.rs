//! Ports: the uplinks (PF) and VM-facing ports (VF) a dataplane forwards between.

use std::fmt;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The raw bytes.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Identifies a port registered with [`crate::Dataplane::add_port`]. Ids are dense indexes, assigned in
/// registration order starting at 0, and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl PortId {
    /// The id as an index into per-port arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The id of the registered port at index `i` of the dataplane's port list.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) const fn of_registered(i: usize) -> PortId {
        // Truncation impossible: `Dataplane::add_port` registers a port only if its index fits a `u16`.
        PortId(i as u16)
    }
}

/// What a port connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// Physical function: an uplink to the IPv6 underlay. At most two (pf0, pf1), in registration order.
    Pf,
    /// Virtual function: the port of one VM NIC. Carries plain Ethernet with overlay addresses.
    Vf,
}

/// Static description of a port, given once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// PF or VF.
    pub kind: PortKind,
    /// The port's own MAC (TAP/representor MAC): source MAC of every frame the dataplane sends on it.
    pub mac: MacAddr,
    /// The device name reported to clients (dpservice's `device_name`, e.g. `net_tap2`).
    pub name: String,
}

/// Runtime view of a registered port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// The port's id.
    pub id: PortId,
    /// Static configuration.
    pub config: PortConfig,
    /// For VFs: the VM's MAC as currently known (a guess equal to the port MAC until learned).
    pub vm_mac: MacAddr,
    /// For VFs: the id of the interface bound to the port, if any.
    pub interface: Option<String>,
}
