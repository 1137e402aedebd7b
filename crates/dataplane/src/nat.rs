//! NAT gateway port allocation (dpservice's `snat` graph node, `src/nodes`): per-socket port maps and the
//! per-destination overload set.
//!
//! A VM socket (VNI, VM IP, port/identifier, protocol) keeps one NAT port for all its flows; a NAT port may be
//! shared by sockets talking to different destinations, because the reply key (destination → NAT IP:port) stays
//! unique.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};

use ironnet_vni::Vni;

/// A VM-side socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketKey {
    /// VNI of the interface.
    pub vni: Option<Vni>,
    /// VM address (IPv6 for NAT64).
    pub vm_ip: IpAddr,
    /// VM port or ICMP identifier.
    pub vm_port: u16,
    /// IP protocol.
    pub proto: u8,
}

/// One allocated (NAT port, destination) use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The socket.
    pub socket: SocketKey,
    /// NAT IP.
    pub nat_ip: Ipv4Addr,
    /// NAT port.
    pub nat_port: u16,
    /// Remote address.
    pub dst_ip: Ipv4Addr,
    /// Remote port (0 for ICMP).
    pub dst_port: u16,
}

#[derive(Debug, Clone, Copy)]
struct PortMapEntry {
    nat_ip: Ipv4Addr,
    nat_port: u16,
    refs: u32,
}

/// Port maps and overload keys of all local NATs.
#[derive(Debug, Default)]
pub struct NatPorts {
    portmap: HashMap<SocketKey, PortMapEntry, foldhash::fast::RandomState>,
    overload: HashSet<(Ipv4Addr, u16, Ipv4Addr, u16, u8), foldhash::fast::RandomState>,
}

impl NatPorts {
    /// Allocates a NAT port for a new flow of `socket` to (`dst_ip`, `dst_port`) within `[min, max)`, reusing the
    /// socket's port when it is free for this destination. `None` when the range is exhausted for this
    /// destination. `min < max` is guaranteed by the control plane.
    pub fn allocate(
        &mut self,
        socket: SocketKey,
        nat_ip: Ipv4Addr,
        min: u16,
        max: u16,
        dst_ip: Ipv4Addr,
        dst_port: u16,
    ) -> Option<Binding> {
        if let Some(e) = self.portmap.get_mut(&socket) {
            if e.nat_ip == nat_ip
                && self
                    .overload
                    .insert((nat_ip, e.nat_port, dst_ip, dst_port, socket.proto))
            {
                e.refs += 1;
                return Some(Binding {
                    socket,
                    nat_ip,
                    nat_port: e.nat_port,
                    dst_ip,
                    dst_port,
                });
            }
            return None;
        }
        let range = u32::from(max - min);
        // Truncation impossible: a remainder modulo `range` (≤ 65535) fits both `u32` and `u16`.
        #[allow(clippy::cast_possible_truncation)]
        let h = (foldhash::fast::FixedState::with_seed(0x5eed).hash_one(socket) % u64::from(range)) as u32;
        for p in 0..range {
            #[allow(clippy::cast_possible_truncation)]
            let port = min + ((h + p) % range) as u16;
            if self
                .overload
                .insert((nat_ip, port, dst_ip, dst_port, socket.proto))
            {
                self.portmap.insert(
                    socket,
                    PortMapEntry {
                        nat_ip,
                        nat_port: port,
                        refs: 1,
                    },
                );
                return Some(Binding {
                    socket,
                    nat_ip,
                    nat_port: port,
                    dst_ip,
                    dst_port,
                });
            }
        }
        None
    }

    /// Releases a binding returned by [`NatPorts::allocate`]; the socket's port map goes with its last flow.
    pub fn release(&mut self, b: &Binding) {
        self.overload
            .remove(&(b.nat_ip, b.nat_port, b.dst_ip, b.dst_port, b.socket.proto));
        if let Some(e) = self.portmap.get_mut(&b.socket) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                self.portmap.remove(&b.socket);
            }
        }
    }

    /// NAT ports in use, per (VNI, VM address, NAT IP): the number of VM sockets holding a port, which is what
    /// dpservice's telemetry reports as used ports. One pass over the port map, for metrics at scrape time.
    pub fn usage(&self) -> HashMap<(Option<Vni>, IpAddr, Ipv4Addr), u64> {
        let mut out = HashMap::new();
        for (socket, e) in &self.portmap {
            *out.entry((socket.vni, socket.vm_ip, e.nat_ip)).or_insert(0) += 1;
        }
        out
    }

    /// Number of sockets currently holding a NAT port of `nat_ip`.
    pub fn used_ports(&self, nat_ip: Ipv4Addr) -> usize {
        self.portmap.values().filter(|e| e.nat_ip == nat_ip).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(port: u16) -> SocketKey {
        SocketKey {
            vni: Some(ironnet_vni::vni!(1)),
            vm_ip: Ipv4Addr::new(10, 0, 0, 1).into(),
            vm_port: port,
            proto: 17,
        }
    }

    #[test]
    fn socket_keeps_its_port_and_ranges_exhaust() {
        let nat = Ipv4Addr::new(1, 2, 3, 4);
        let d1 = Ipv4Addr::new(8, 8, 8, 8);
        let d2 = Ipv4Addr::new(9, 9, 9, 9);
        let mut n = NatPorts::default();
        let a = n.allocate(sock(1000), nat, 100, 102, d1, 53).unwrap();
        let b = n.allocate(sock(1000), nat, 100, 102, d2, 53).unwrap();
        assert_eq!(a.nat_port, b.nat_port);
        assert!((100..102).contains(&a.nat_port));
        let c = n.allocate(sock(1001), nat, 100, 102, d1, 53).unwrap();
        assert_ne!(c.nat_port, a.nat_port);
        // Both ports used towards d1: a third socket cannot reach d1:53, but another destination port works.
        assert_eq!(n.allocate(sock(1002), nat, 100, 102, d1, 53), None);
        assert!(n.allocate(sock(1002), nat, 100, 102, d1, 54).is_some());
        n.release(&a);
        n.release(&b);
        assert!(n.allocate(sock(1003), nat, 100, 102, d1, 53).is_some());
        assert_eq!(n.used_ports(nat), 3);
        let vm: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        assert_eq!(
            n.usage(),
            HashMap::from([((Some(ironnet_vni::vni!(1)), vm, nat), 3)])
        );
    }
}
