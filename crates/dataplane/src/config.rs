//! Static dataplane configuration (dpservice's command line, `dpservice-bin [EAL] -- [options]`) and its
//! validation.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::port::MacAddr;

/// Why a [`DataplaneConfig`] or a port registration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The host underlay address is unspecified, multicast or loopback.
    #[error("host underlay address {0} is not a unicast address")]
    BadUnderlay(Ipv6Addr),
    /// `dhcp_mtu` outside 68..=1500.
    #[error("dhcp MTU {0} outside 68..=1500")]
    BadMtu(u16),
    /// `wcmp_percent` above 100.
    #[error("wcmp percentage {0} above 100")]
    BadWcmp(u8),
    /// `flow_timeout` outside 1..=300 s.
    #[error("flow timeout {0:?} outside 1..=300 s")]
    BadFlowTimeout(Duration),
    /// `max_vm_ports` outside 1..=[`MAX_SOFTWARE_VM_PORTS`].
    #[error("max VM ports {0} outside 1..={MAX_SOFTWARE_VM_PORTS}")]
    BadMaxVmPorts(usize),
    /// `max_flows` is zero or above 2^24.
    #[error("max flows {0} outside 1..=16777216")]
    BadMaxFlows(usize),
    /// A third PF, or more VFs than [`DataplaneConfig::max_vm_ports`].
    #[error("too many ports of this kind")]
    TooManyPorts,
    /// A port with this name is already registered.
    #[error("duplicate port name {0:?}")]
    DuplicatePortName(String),
}

/// Default maximum number of VM ports: dpservice's, the number of virtual functions of its SmartNIC (126).
pub const MAX_VFS: usize = 126;

/// Upper bound of [`DataplaneConfig::max_vm_ports`]. Software ports (TAP, vhost-user) are not virtual functions of
/// a NIC, so a hypervisor may serve more VMs than a SmartNIC has VFs; the bound keeps per-port state small.
pub const MAX_SOFTWARE_VM_PORTS: usize = 1024;

/// Configuration of a [`crate::Dataplane`]. Construct with [`DataplaneConfig::new`] and adjust fields; the
/// dataplane validates it in [`crate::Dataplane::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Host underlay address (`--ipv6`). Its /64 prefixes every generated underlay address; it is the outer source
    /// of relayed packets (LB forwarding, neighbour-NAT relay, echo replies).
    pub host_underlay: Ipv6Addr,
    /// DHCP option 26 (`--dhcp-mtu`), 68..=1500.
    pub dhcp_mtu: u16,
    /// DHCP option 6 servers (`--dhcp-dns`), in order; option omitted when empty.
    pub dhcp_dns: Vec<Ipv4Addr>,
    /// DHCPv6 option 23 servers (`--dhcpv6-dns`).
    pub dhcpv6_dns: Vec<Ipv6Addr>,
    /// Idle timeout of flows that are not established TCP (`--flow-timeout`, 1..=300 s, default 30 s).
    pub flow_timeout: Duration,
    /// Idle timeout of established TCP flows (dpservice: one day).
    pub tcp_established_timeout: Duration,
    /// Share of IPv4 egress flows sent to pf0, in percent (`--wcmp`, default 100).
    pub wcmp_percent: u8,
    /// Drop packets the firewall rejects (default true). `false` restores dpservice's "compute but never drop".
    pub enforce_firewall: bool,
    /// Answer ND/RS and send RA/NA (`--enable-ipv6-overlay`).
    pub enable_ipv6_overlay: bool,
    /// MAC of the underlay router (destination MAC of every encapsulated frame).
    pub router_mac: MacAddr,
    /// Seed of the underlay address generator (random byte and counter start, see
    /// [`crate::underlay::UnderlayGenerator`]); fixed in tests.
    pub underlay_seed: u64,
    /// Capacity of the connection-tracking table in flows (both directions of a flow count as one).
    pub max_flows: usize,
    /// How many VM ports (VFs) may be registered (`--max-vm-ports`, 1..=[`MAX_SOFTWARE_VM_PORTS`], default
    /// [`MAX_VFS`]).
    pub max_vm_ports: usize,
}

impl DataplaneConfig {
    /// Defaults matching dpservice's (MTU 1500, timeout 30 s, WCMP 100, no DNS), firewall enforced, IPv6 overlay
    /// off, router MAC zero, seed 0, one million flows.
    pub fn new(host_underlay: Ipv6Addr) -> Self {
        DataplaneConfig {
            host_underlay,
            dhcp_mtu: 1500,
            dhcp_dns: Vec::new(),
            dhcpv6_dns: Vec::new(),
            flow_timeout: Duration::from_secs(30),
            tcp_established_timeout: Duration::from_secs(86_400),
            wcmp_percent: 100,
            enforce_firewall: true,
            enable_ipv6_overlay: false,
            router_mac: MacAddr::default(),
            underlay_seed: 0,
            max_flows: 1 << 20,
            max_vm_ports: MAX_VFS,
        }
    }

    /// Checks every field's range; returns the first violation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let u = self.host_underlay;
        if u.is_unspecified() || u.is_multicast() || u.is_loopback() {
            return Err(ConfigError::BadUnderlay(u));
        }
        if !(68..=1500).contains(&self.dhcp_mtu) {
            return Err(ConfigError::BadMtu(self.dhcp_mtu));
        }
        if self.wcmp_percent > 100 {
            return Err(ConfigError::BadWcmp(self.wcmp_percent));
        }
        if self.flow_timeout < Duration::from_secs(1) || self.flow_timeout > Duration::from_secs(300) {
            return Err(ConfigError::BadFlowTimeout(self.flow_timeout));
        }
        if self.max_flows == 0 || self.max_flows > 1 << 24 {
            return Err(ConfigError::BadMaxFlows(self.max_flows));
        }
        if !(1..=MAX_SOFTWARE_VM_PORTS).contains(&self.max_vm_ports) {
            return Err(ConfigError::BadMaxVmPorts(self.max_vm_ports));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_out_of_range_fields() {
        let ok = DataplaneConfig::new("fc00:1::1".parse().unwrap());
        assert_eq!(ok.validate(), Ok(()));
        let mut c = ok.clone();
        c.dhcp_mtu = 67;
        assert_eq!(c.validate(), Err(ConfigError::BadMtu(67)));
        let mut c = ok.clone();
        c.max_vm_ports = 0;
        assert_eq!(c.validate(), Err(ConfigError::BadMaxVmPorts(0)));
        c.max_vm_ports = MAX_SOFTWARE_VM_PORTS + 1;
        assert_eq!(c.validate(), Err(ConfigError::BadMaxVmPorts(1025)));
        c.max_vm_ports = MAX_SOFTWARE_VM_PORTS;
        assert_eq!(c.validate(), Ok(()));
        let mut c = ok.clone();
        c.wcmp_percent = 101;
        assert_eq!(c.validate(), Err(ConfigError::BadWcmp(101)));
        let mut c = ok.clone();
        c.flow_timeout = Duration::from_secs(301);
        assert!(matches!(c.validate(), Err(ConfigError::BadFlowTimeout(_))));
        let c = DataplaneConfig::new(Ipv6Addr::UNSPECIFIED);
        assert!(matches!(c.validate(), Err(ConfigError::BadUnderlay(_))));
    }
}
