//! ARP for Ethernet/IPv4 (RFC 826).

use std::net::Ipv4Addr;

use super::{ParseError, be16, put16};
use crate::port::MacAddr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Opcode request.
pub const OP_REQUEST: u16 = 1;
/// Opcode reply.
pub const OP_REPLY: u16 = 2;

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
        if b.len() < PACKET_LEN {
            return Err(ParseError::Truncated);
        }
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(ParseError::Malformed);
        }
        let mac = |at: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[at..at + 6]);
            MacAddr(m)
        };
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Ok(ArpRepr {
            op: be16(b, 6),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        })
    }

    /// Writes the packet into `out[..28]`.
    pub fn emit(&self, out: &mut [u8]) {
        put16(out, 0, 1);
        put16(out, 2, 0x0800);
        out[4] = 6;
        out[5] = 4;
        put16(out, 6, self.op);
        out[8..14].copy_from_slice(&self.sha.0);
        out[14..18].copy_from_slice(&self.spa.octets());
        out[18..24].copy_from_slice(&self.tha.0);
        out[24..28].copy_from_slice(&self.tpa.octets());
    }
}
