//! ARP for Ethernet/IPv4 (RFC 826).

use std::net::Ipv4Addr;

use super::{Field, ParseError, get_4, get_6, get_u16, set_u16};
use crate::port::MacAddr;

/// Byte ranges of the fields of an Ethernet/IPv4 ARP packet (the address fields' positions follow from hardware
/// length 6 and protocol length 4, the only ones accepted).
pub mod field {
    use super::Field;
    /// Hardware type (1 = Ethernet).
    pub const HTYPE: Field = 0..2;
    /// Protocol type (0x0800 = IPv4).
    pub const PTYPE: Field = 2..4;
    /// Hardware address length.
    pub const HLEN: usize = 4;
    /// Protocol address length.
    pub const PLEN: usize = 5;
    /// Opcode.
    pub const OPER: Field = 6..8;
    /// Sender hardware address.
    pub const SHA: Field = 8..14;
    /// Sender protocol address.
    pub const SPA: Field = 14..18;
    /// Target hardware address.
    pub const THA: Field = 18..24;
    /// Target protocol address.
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Opcode request.
pub const OP_REQUEST: u16 = 1;
/// Opcode reply.
pub const OP_REPLY: u16 = 2;
/// Hardware type Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// A view of an Ethernet/IPv4 ARP packet; `new_checked` guarantees the 28 bytes and the Ethernet/IPv4 types and
/// lengths.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than [`PACKET_LEN`].
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps and validates `buffer`: only hardware type 1 / protocol 0x0800 with lengths 6/4 is accepted.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(ParseError::Truncated);
        }
        if get_u16(b, field::HTYPE) != HTYPE_ETHERNET
            || get_u16(b, field::PTYPE) != super::ether::ETHERTYPE_IPV4
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(ParseError::Malformed);
        }
        Ok(ArpPacket { buffer })
    }

    /// Opcode (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> MacAddr {
        MacAddr(get_6(self.buffer.as_ref(), field::SHA))
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_4(self.buffer.as_ref(), field::SPA))
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr(get_6(self.buffer.as_ref(), field::THA))
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_4(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed Ethernet/IPv4 type and length fields.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        set_u16(b, field::HTYPE, HTYPE_ETHERNET);
        set_u16(b, field::PTYPE, super::ether::ETHERTYPE_IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    /// Sets the opcode.
    pub fn set_operation(&mut self, op: u16) {
        set_u16(self.buffer.as_mut(), field::OPER, op);
    }

    /// Sets the sender hardware address.
    pub fn set_sender_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&m.0);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&m.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Opcode (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl ArpRepr {
    /// Parses `b`; only hardware type 1 / protocol 0x0800 with lengths 6/4 is accepted.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        let p = ArpPacket::new_checked(b)?;
        Ok(ArpRepr {
            op: p.operation(),
            sha: p.sender_hardware_addr(),
            spa: p.sender_protocol_addr(),
            tha: p.target_hardware_addr(),
            tpa: p.target_protocol_addr(),
        })
    }

    /// Writes the packet into `out[..28]`.
    pub fn emit(&self, out: &mut [u8]) {
        let mut p = ArpPacket::new_unchecked(out);
        p.set_ethernet_ipv4();
        p.set_operation(self.op);
        p.set_sender_hardware_addr(self.sha);
        p.set_sender_protocol_addr(self.spa);
        p.set_target_hardware_addr(self.tha);
        p.set_target_protocol_addr(self.tpa);
    }
}
