//! ICMP (RFC 792) and ICMPv6 (RFC 4443) message types used by the pipeline.

use super::{ParseError, be16};

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
pub const HEADER_LEN: usize = 8;

/// A view of an ICMP or ICMPv6 message; `new_checked` guarantees the 8-byte header.
#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Echo identifier (bytes 4..6).
    pub fn echo_id(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Everything after the 8-byte header (for errors: the embedded original packet).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}
