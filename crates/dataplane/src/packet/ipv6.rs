//! IPv6 headers (RFC 8200). Extension headers are not parsed (like dpservice): the next-header field of the fixed
//! header names the payload.

use std::net::Ipv6Addr;

use super::{ParseError, be16, put16};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next header ICMPv6.
pub const NH_ICMPV6: u8 = 58;
/// Next header IPv4-in-IPv6.
pub const NH_IPV4: u8 = 4;
/// Next header IPv6-in-IPv6.
pub const NH_IPV6: u8 = 41;

/// A view of an IPv6 packet; `new_checked` guarantees version 6 and `40 + payload_len ≤ buffer.len()`.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps and validates `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(ParseError::Malformed);
        }
        if HEADER_LEN + usize::from(be16(b, 4)) > b.len() {
            return Err(ParseError::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// Payload length field.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), 4))
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[8..24]);
        Ipv6Addr::from(o)
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[24..40]);
        Ipv6Addr::from(o)
    }

    /// The payload (up to `payload_len`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the source address (IPv6 has no header checksum).
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&a.octets());
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let pl = self.payload_len();
        &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + pl]
    }
}

/// A parsed fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Parses a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Self {
        Ipv6Repr {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
        }
    }

    /// Writes the header (traffic class 0, flow label 0) into `out[..40]`. `payload_len` must be ≤ 65535.
    #[inline]
    pub fn emit(&self, out: &mut [u8]) {
        out[0] = 0x60;
        out[1] = 0;
        out[2] = 0;
        out[3] = 0;
        put16(out, 4, self.payload_len as u16);
        out[6] = self.next_header;
        out[7] = self.hop_limit;
        out[8..24].copy_from_slice(&self.src.octets());
        out[24..40].copy_from_slice(&self.dst.octets());
    }
}
