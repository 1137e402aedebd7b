//! UDP (RFC 768) and TCP (RFC 9293) headers.

use super::checksum;
use super::{ParseError, be16, put16};

/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Length of a TCP header without options.
pub const TCP_MIN_HEADER_LEN: usize = 20;
/// Offset of the UDP checksum field.
pub const UDP_CHECKSUM_AT: usize = 6;
/// Offset of the TCP checksum field.
pub const TCP_CHECKSUM_AT: usize = 16;

/// TCP flag FIN.
pub const TCP_FIN: u8 = 0x01;
/// TCP flag SYN.
pub const TCP_SYN: u8 = 0x02;
/// TCP flag RST.
pub const TCP_RST: u8 = 0x04;
/// TCP flag ACK.
pub const TCP_ACK: u8 = 0x10;

/// A view of a UDP datagram; `new_checked` guarantees the 8-byte header.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer`; fails if it cannot hold the header or the length field exceeds it.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < UDP_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let l = usize::from(be16(b, 4));
        if l < UDP_HEADER_LEN || l > b.len() {
            return Err(ParseError::Malformed);
        }
        Ok(UdpPacket { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// The datagram payload (up to the length field).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[UDP_HEADER_LEN..usize::from(be16(b, 4))]
    }
}

/// A view of a TCP segment; `new_checked` guarantees the header (data offset ≥ 5, within the buffer).
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps and validates `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < TCP_MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let off = usize::from(b[12] >> 4) * 4;
        if off < TCP_MIN_HEADER_LEN || off > b.len() {
            return Err(ParseError::Malformed);
        }
        Ok(TcpPacket { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// The flag byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }
}

/// Writes an L4 checksum over `segment` (checksum field at `at`, zeroed first) with the pseudo-header sum
/// `pseudo`. UDP's "no checksum" value 0 is sent as 0xffff.
pub fn fill_checksum(segment: &mut [u8], at: usize, pseudo: u32, udp: bool) {
    put16(segment, at, 0);
    let mut c = checksum::finish(checksum::sum(segment, pseudo));
    if udp && c == 0 {
        c = 0xffff;
    }
    put16(segment, at, c);
}

/// Writes a UDP header (`src`, `dst`, length = `segment.len()`) and its checksum into `segment`.
pub fn emit_udp(segment: &mut [u8], src: u16, dst: u16, pseudo_without_len: u32) {
    let len = segment.len() as u16;
    put16(segment, 0, src);
    put16(segment, 2, dst);
    put16(segment, 4, len);
    fill_checksum(
        segment,
        UDP_CHECKSUM_AT,
        pseudo_without_len + u32::from(len),
        true,
    );
}
