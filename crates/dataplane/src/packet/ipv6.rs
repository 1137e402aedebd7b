//! IPv6 headers (RFC 8200). Extension headers are not parsed (like dpservice): the next-header field of the fixed
//! header names the payload.

use std::net::Ipv6Addr;

use super::{Field, ParseError, Rest, get_16, get_u16, set_u16};

/// Byte ranges of the fixed IPv6 header fields.
pub mod field {
    use super::{Field, Rest};
    /// Version (4 bits), traffic class (8 bits) and flow label (20 bits).
    pub const VER_TC_FLOW: Field = 0..4;
    /// Payload length.
    pub const LENGTH: Field = 4..6;
    /// Next header.
    pub const NXT_HDR: usize = 6;
    /// Hop limit.
    pub const HOP_LIMIT: usize = 7;
    /// Source address.
    pub const SRC_ADDR: Field = 8..24;
    /// Destination address.
    pub const DST_ADDR: Field = 24..40;
    /// The payload.
    pub const PAYLOAD: Rest = 40..;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
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
    /// Wraps `buffer` without validating it; accessors panic on a buffer shorter than the field they read.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps and validates `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let p = Ipv6Packet::new_unchecked(b);
        if p.version() != 6 {
            return Err(ParseError::Malformed);
        }
        if HEADER_LEN + p.payload_len() > b.len() {
            return Err(ParseError::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// IP version (6 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class.
    // Truncation intended: the cast drops the version nibble above the traffic class.
    #[allow(clippy::cast_possible_truncation)]
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.buffer.as_ref(), field::VER_TC_FLOW.start..2) >> 4) as u8
    }

    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Payload length field.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(get_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address bytes.
    #[inline]
    pub fn src_octets(&self) -> [u8; 16] {
        get_16(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address bytes.
    #[inline]
    pub fn dst_octets(&self) -> [u8; 16] {
        get_16(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_octets())
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_octets())
    }

    /// The payload (up to `payload_len`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label (only its low 20 bits are used).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the payload length field.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Sets the source address (IPv6 has no header checksum; an L4 checksum covering it is the caller's).
    #[inline]
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
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
        let mut p = Ipv6Packet::new_unchecked(out);
        p.set_version_tc_flow(0, 0);
        // Truncation impossible: the contract bounds `payload_len` to the 16-bit field.
        #[allow(clippy::cast_possible_truncation)]
        let payload_len = self.payload_len as u16;
        p.set_payload_len(payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src(self.src);
        p.set_dst(self.dst);
    }
}
