//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::checksum;
use super::{ParseError, be16, put16};

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Protocol number ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Protocol number TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number UDP.
pub const PROTO_UDP: u8 = 17;

/// A view of an IPv4 packet. `new_checked` guarantees version 4, IHL ≥ 5 and
/// `header_len ≤ total_len ≤ buffer.len()`; bytes after `total_len` (Ethernet padding) are not part of the packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps and validates `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(ParseError::Malformed);
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        let total = usize::from(be16(b, 2));
        if hl < MIN_HEADER_LEN || total < hl {
            return Err(ParseError::Malformed);
        }
        if total > b.len() {
            return Err(ParseError::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }

    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), 2))
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    /// Protocol.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }

    /// Whether this is a non-first fragment (fragment offset ≠ 0): it has no L4 header.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & 0x1fff != 0
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 10)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// The L4 payload (up to `total_len`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Rewrites the source address, updating the header checksum incrementally.
    #[inline]
    pub fn set_src_update(&mut self, a: Ipv4Addr) {
        let b = self.buffer.as_mut();
        let old = [b[12], b[13], b[14], b[15]];
        b[12..16].copy_from_slice(&a.octets());
        let c = checksum::update32(be16(b, 10), old, a.octets());
        put16(b, 10, c);
    }

    /// Rewrites the destination address, updating the header checksum incrementally.
    #[inline]
    pub fn set_dst_update(&mut self, a: Ipv4Addr) {
        let b = self.buffer.as_mut();
        let old = [b[16], b[17], b[18], b[19]];
        b[16..20].copy_from_slice(&a.octets());
        let c = checksum::update32(be16(b, 10), old, a.octets());
        put16(b, 10, c);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        put16(b, 10, 0);
        let c = checksum::checksum(&b[..hl]);
        put16(b, 10, c);
    }

    /// The L4 payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// A parsed IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Parses a checked view (options are skipped).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Self {
        Ipv4Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len(),
            ttl: p.ttl(),
        }
    }

    /// Writes a 20-byte header (id 0, DF clear, TOS 0) with a correct checksum into `out[..20]`.
    /// `payload_len` must be ≤ 65515.
    pub fn emit(&self, out: &mut [u8]) {
        out[0] = 0x45;
        out[1] = 0;
        put16(out, 2, (MIN_HEADER_LEN + self.payload_len) as u16);
        put16(out, 4, 0);
        put16(out, 6, 0);
        out[8] = self.ttl;
        out[9] = self.protocol;
        put16(out, 10, 0);
        out[12..16].copy_from_slice(&self.src.octets());
        out[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(&out[..MIN_HEADER_LEN]);
        put16(out, 10, c);
    }
}
