//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: the header view and the message types the pipeline uses.

use super::{Field, ParseError, Rest, checksum, get_u16, set_u16};

/// Byte ranges of the ICMP/ICMPv6 header fields (the same layout for both).
pub mod field {
    use super::{Field, Rest};
    /// Message type.
    pub const TYPE: usize = 0;
    /// Message code.
    pub const CODE: usize = 1;
    /// Checksum (ICMP: over the message; ICMPv6: also over the IPv6 pseudo header).
    pub const CHECKSUM: Field = 2..4;
    /// Echo request/reply identifier.
    pub const ECHO_IDENT: Field = 4..6;
    /// Echo request/reply sequence number.
    pub const ECHO_SEQNO: Field = 6..8;
    /// The body after the 8-byte header (for errors: the embedded original packet).
    pub const BODY: Rest = 8..;
}

/// ICMP echo reply.
pub const V4_ECHO_REPLY: u8 = 0;
/// ICMP destination unreachable.
pub const V4_DEST_UNREACH: u8 = 3;
/// ICMP echo request.
pub const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv6 echo request.
pub const V6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const V6_ECHO_REPLY: u8 = 129;
/// ICMPv6 router solicitation.
pub const V6_ROUTER_SOLICIT: u8 = 133;
/// ICMPv6 router advertisement.
pub const V6_ROUTER_ADVERT: u8 = 134;
/// ICMPv6 neighbour solicitation.
pub const V6_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 neighbour advertisement.
pub const V6_NEIGHBOR_ADVERT: u8 = 136;
/// Minimal ICMP header length (type, code, checksum, 4 bytes rest-of-header).
pub const HEADER_LEN: usize = field::BODY.start;

/// A view of an ICMP or ICMPv6 message; `new_checked` guarantees the 8-byte header.
#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier.
    #[inline]
    pub fn echo_id(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Everything after the 8-byte header (for errors: the embedded original packet).
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY]
    }

    /// Whether the checksum verifies; `pseudo` is the pseudo-header sum for ICMPv6 and 0 for ICMP.
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the message type without touching the checksum.
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t;
    }

    /// Sets the message code without touching the checksum.
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Sets the echo identifier without touching the checksum.
    #[inline]
    pub fn set_echo_id(&mut self, id: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT, id);
    }

    /// Sets the echo sequence number without touching the checksum.
    pub fn set_echo_seq(&mut self, seq: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_SEQNO, seq);
    }

    /// Changes the message type, updating the checksum incrementally (type and code form one 16-bit word).
    #[inline]
    pub fn set_msg_type_update(&mut self, t: u8) {
        let old = get_u16(self.buffer.as_ref(), field::TYPE..field::CODE + 1);
        self.set_msg_type(t);
        let new = get_u16(self.buffer.as_ref(), field::TYPE..field::CODE + 1);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Changes the echo identifier, updating the checksum incrementally.
    #[inline]
    pub fn set_echo_id_update(&mut self, id: u16) {
        let old = self.echo_id();
        if old == id {
            return;
        }
        self.set_echo_id(id);
        let c = checksum::update16(self.checksum(), old, id);
        self.set_checksum(c);
    }

    /// Recomputes the checksum over the whole buffer; `pseudo` is the pseudo-header sum for ICMPv6, 0 for ICMP.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo));
        self.set_checksum(c);
    }

    /// The body, mutable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY]
    }
}
