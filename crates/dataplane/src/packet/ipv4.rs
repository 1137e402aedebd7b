//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::checksum;
use super::{Field, ParseError, get_4, get_u16, set_u16};

/// Byte ranges of the IPv4 header fields.
pub mod field {
    use super::Field;
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN.
    pub const DSCP_ECN: usize = 1;
    /// Total length of the packet (header and payload).
    pub const LENGTH: Field = 2..4;
    /// Identification.
    pub const IDENT: Field = 4..6;
    /// Flags (high three bits) and fragment offset.
    pub const FLG_OFF: Field = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Field = 10..12;
    /// Source address.
    pub const SRC_ADDR: Field = 12..16;
    /// Destination address.
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = field::DST_ADDR.end;
/// Protocol number ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Protocol number TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number UDP.
pub const PROTO_UDP: u8 = 17;
/// The fragment-offset bits of [`field::FLG_OFF`].
const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;
/// The more-fragments flag and fragment-offset bits of [`field::FLG_OFF`]: any of them set means a fragment.
const FRAGMENT_MASK: u16 = 0x3fff;

/// A view of an IPv4 packet. `new_checked` guarantees version 4, IHL ≥ 5 and
/// `header_len ≤ total_len ≤ buffer.len()`; bytes after `total_len` (Ethernet padding) are not part of the packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without validating it: for a packet already validated, or a truncated one (the embedded
    /// packet of an ICMP error) whose caller checks the length of each field it reads. Accessors panic on a buffer
    /// shorter than the field they read.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps and validates `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let p = Ipv4Packet::new_unchecked(b);
        if p.version() != 4 {
            return Err(ParseError::Malformed);
        }
        let (hl, total) = (p.header_len(), p.total_len());
        if hl < MIN_HEADER_LEN || total < hl {
            return Err(ParseError::Malformed);
        }
        if total > b.len() {
            return Err(ParseError::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// IP version (4 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(get_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Whether this is a non-first fragment (fragment offset ≠ 0): it has no L4 header.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAGMENT_OFFSET_MASK != 0
    }

    /// Whether this is any fragment of a larger datagram (more-fragments set or an offset).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAGMENT_MASK != 0
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address bytes.
    #[inline]
    pub fn src_octets(&self) -> [u8; 4] {
        get_4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address bytes.
    #[inline]
    pub fn dst_octets(&self) -> [u8; 4] {
        get_4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_octets())
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_octets())
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
    /// Sets the version to 4 and the header length (a multiple of 4, at most 60 bytes).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len.is_multiple_of(4) && (MIN_HEADER_LEN..=60).contains(&header_len));
        // Truncation impossible: `header_len / 4` is at most 15 by the contract above, so it fits the low nibble.
        #[allow(clippy::cast_possible_truncation)]
        let ihl = (header_len / 4) as u8 & 0x0f;
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ihl;
    }

    /// Sets DSCP and ECN.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length field (the header checksum is not updated).
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification (the header checksum is not updated).
    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, id);
    }

    /// Sets flags and fragment offset (the header checksum is not updated).
    pub fn set_flags_and_fragment_offset(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Sets the time to live (the header checksum is not updated).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol (the header checksum is not updated).
    pub fn set_protocol(&mut self, proto: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = proto;
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Sets the source address without touching the checksum (for building a header, or swapping the addresses,
    /// which keeps every checksum).
    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address without touching the checksum.
    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Rewrites the source address, updating the header checksum incrementally; returns the previous address
    /// (for the L4 pseudo-header update, see [`super::l4::L4Checksum::update_addr`]).
    #[inline]
    pub fn set_src_update(&mut self, a: Ipv4Addr) -> [u8; 4] {
        self.set_addr_update(field::SRC_ADDR, a.octets())
    }

    /// Rewrites the destination address, updating the header checksum incrementally; returns the previous
    /// address.
    #[inline]
    pub fn set_dst_update(&mut self, a: Ipv4Addr) -> [u8; 4] {
        self.set_addr_update(field::DST_ADDR, a.octets())
    }

    #[inline]
    fn set_addr_update(&mut self, f: Field, new: [u8; 4]) -> [u8; 4] {
        let b = self.buffer.as_mut();
        let old = get_4(b, f.clone());
        if old != new {
            b[f].copy_from_slice(&new);
            let c = checksum::update32(get_u16(b, field::CHECKSUM), old, new);
            set_u16(b, field::CHECKSUM, c);
        }
        old
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
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
    #[inline]
    pub fn emit(&self, out: &mut [u8]) {
        let mut p = Ipv4Packet::new_unchecked(out);
        p.set_version_and_header_len(MIN_HEADER_LEN);
        p.set_dscp_ecn(0);
        // Truncation impossible: the contract bounds `payload_len` so the total fits the 16-bit field.
        #[allow(clippy::cast_possible_truncation)]
        let total_len = (MIN_HEADER_LEN + self.payload_len) as u16;
        p.set_total_len(total_len);
        p.set_ident(0);
        p.set_flags_and_fragment_offset(0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src(self.src);
        p.set_dst(self.dst);
        p.fill_checksum();
    }
}
