//! UDP (RFC 768) and TCP (RFC 9293) headers.

use super::checksum;
use super::{Field, ParseError, get_4, get_u16, set_u16};

/// Byte ranges of the UDP header fields.
pub mod udp_field {
    use super::Field;
    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Length of header and payload.
    pub const LENGTH: Field = 4..6;
    /// Checksum (0: none sent, IPv4 only).
    pub const CHECKSUM: Field = 6..8;
}

/// Byte ranges of the TCP header fields.
pub mod tcp_field {
    use super::Field;
    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Sequence number.
    pub const SEQ_NUM: Field = 4..8;
    /// Acknowledgment number.
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in 32-bit words (high nibble) and reserved bits.
    pub const DATA_OFFSET: usize = 12;
    /// Flags (CWR ECE URG ACK PSH RST SYN FIN).
    pub const FLAGS: usize = 13;
    /// Receive window.
    pub const WIN_SIZE: Field = 14..16;
    /// Checksum.
    pub const CHECKSUM: Field = 16..18;
    /// Urgent pointer.
    pub const URGENT: Field = 18..20;
}

/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = udp_field::CHECKSUM.end;
/// Length of a TCP header without options.
pub const TCP_MIN_HEADER_LEN: usize = tcp_field::URGENT.end;
/// Offset of the UDP checksum field.
pub const UDP_CHECKSUM_AT: usize = udp_field::CHECKSUM.start;
/// Offset of the TCP checksum field.
pub const TCP_CHECKSUM_AT: usize = tcp_field::CHECKSUM.start;

/// TCP flag FIN.
pub const TCP_FIN: u8 = 0x01;
/// TCP flag SYN.
pub const TCP_SYN: u8 = 0x02;
/// TCP flag RST.
pub const TCP_RST: u8 = 0x04;
/// TCP flag PSH.
pub const TCP_PSH: u8 = 0x08;
/// TCP flag ACK.
pub const TCP_ACK: u8 = 0x10;
/// TCP flag CWR.
pub const TCP_CWR: u8 = 0x80;

/// A view of a UDP datagram; `new_checked` guarantees the 8-byte header.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it; accessors panic if it is shorter than the field they touch.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer`; fails if it cannot hold the header or the length field exceeds it.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < UDP_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let l = usize::from(get_u16(b, udp_field::LENGTH));
        if l < UDP_HEADER_LEN || l > b.len() {
            return Err(ParseError::Malformed);
        }
        Ok(UdpPacket { buffer })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), udp_field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), udp_field::DST_PORT)
    }

    /// Length field (header and payload).
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), udp_field::LENGTH)
    }

    /// Whether the length field is 0 (never true for a checked view: the header alone is 8 bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checksum field (0: the sender computed none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), udp_field::CHECKSUM)
    }

    /// The datagram payload (up to the length field).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[UDP_HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port without touching the checksum.
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        set_u16(self.buffer.as_mut(), udp_field::SRC_PORT, p);
    }

    /// Sets the destination port without touching the checksum.
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        set_u16(self.buffer.as_mut(), udp_field::DST_PORT, p);
    }

    /// Sets the length field without touching the checksum.
    pub fn set_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), udp_field::LENGTH, len);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), udp_field::CHECKSUM, c);
    }

    /// Changes the source port, updating a present checksum incrementally.
    #[inline]
    pub fn set_src_port_update(&mut self, p: u16) {
        let old = self.src_port();
        if old != p {
            self.set_src_port(p);
            self.update_checksum(old, p);
        }
    }

    /// Changes the destination port, updating a present checksum incrementally.
    #[inline]
    pub fn set_dst_port_update(&mut self, p: u16) {
        let old = self.dst_port();
        if old != p {
            self.set_dst_port(p);
            self.update_checksum(old, p);
        }
    }

    /// Updates a present checksum for an IPv4 address of the pseudo header that changed from `old` to `new`.
    #[inline]
    pub fn update_checksum_for_addr(&mut self, old: [u8; 4], new: [u8; 4]) {
        let c = self.checksum();
        if old == new || c == 0 {
            return;
        }
        self.set_checksum(udp_nonzero(checksum::update32(c, old, new)));
    }

    #[inline]
    fn update_checksum(&mut self, old: u16, new: u16) {
        let c = self.checksum();
        // 0 means the sender computed no checksum; it stays absent.
        if c != 0 {
            self.set_checksum(udp_nonzero(checksum::update16(c, old, new)));
        }
    }

    /// Recomputes the checksum over the whole buffer with the pseudo-header sum `pseudo` (a computed 0 is sent as
    /// 0xffff, since 0 means "no checksum").
    pub fn fill_checksum(&mut self, pseudo: u32) {
        fill_checksum(self.buffer.as_mut(), UDP_CHECKSUM_AT, pseudo, true);
    }
}

/// UDP's "no checksum" value 0 is sent as 0xffff (the same value in one's complement).
#[inline]
fn udp_nonzero(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}

/// A view of a TCP segment; `new_checked` guarantees the header (data offset ≥ 5, within the buffer).
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking it: for a segment already validated, or the first bytes of one (the 8
    /// bytes an ICMP error embeds hold only the ports and the sequence number). Accessors panic on a buffer
    /// shorter than the field they touch.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps and validates `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < TCP_MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let off = TcpPacket::new_unchecked(b).header_len();
        if off < TCP_MIN_HEADER_LEN || off > b.len() {
            return Err(ParseError::Malformed);
        }
        Ok(TcpPacket { buffer })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), tcp_field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), tcp_field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        u32::from_be_bytes(get_4(self.buffer.as_ref(), tcp_field::SEQ_NUM))
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        u32::from_be_bytes(get_4(self.buffer.as_ref(), tcp_field::ACK_NUM))
    }

    /// Header length in bytes (data offset × 4, options included).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[tcp_field::DATA_OFFSET] >> 4) * 4
    }

    /// The flag byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[tcp_field::FLAGS]
    }

    /// Receive window.
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), tcp_field::WIN_SIZE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), tcp_field::CHECKSUM)
    }

    /// Whether the checksum verifies with the pseudo-header sum `pseudo`.
    #[inline]
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port without touching the checksum.
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        set_u16(self.buffer.as_mut(), tcp_field::SRC_PORT, p);
    }

    /// Sets the destination port without touching the checksum.
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        set_u16(self.buffer.as_mut(), tcp_field::DST_PORT, p);
    }

    /// Sets the sequence number without touching the checksum.
    #[inline]
    pub fn set_seq_number(&mut self, seq: u32) {
        self.buffer.as_mut()[tcp_field::SEQ_NUM].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the flag byte without touching the checksum.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[tcp_field::FLAGS] = flags;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), tcp_field::CHECKSUM, c);
    }

    /// Changes the source port, updating the checksum incrementally.
    #[inline]
    pub fn set_src_port_update(&mut self, p: u16) {
        let old = self.src_port();
        if old != p {
            self.set_src_port(p);
            let c = checksum::update16(self.checksum(), old, p);
            self.set_checksum(c);
        }
    }

    /// Changes the destination port, updating the checksum incrementally.
    #[inline]
    pub fn set_dst_port_update(&mut self, p: u16) {
        let old = self.dst_port();
        if old != p {
            self.set_dst_port(p);
            let c = checksum::update16(self.checksum(), old, p);
            self.set_checksum(c);
        }
    }

    /// Updates the checksum for an IPv4 address of the pseudo header that changed from `old` to `new`.
    #[inline]
    pub fn update_checksum_for_addr(&mut self, old: [u8; 4], new: [u8; 4]) {
        if old != new {
            let c = checksum::update32(self.checksum(), old, new);
            self.set_checksum(c);
        }
    }

    /// Recomputes the checksum over the whole buffer with the pseudo-header sum `pseudo`.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u32) {
        fill_checksum(self.buffer.as_mut(), TCP_CHECKSUM_AT, pseudo, false);
    }
}

/// Writes an L4 checksum over `segment` (checksum field at `at`, zeroed first) with the pseudo-header sum
/// `pseudo`. UDP's "no checksum" value 0 is sent as 0xffff.
pub fn fill_checksum(segment: &mut [u8], at: usize, pseudo: u32, udp: bool) {
    let field = at..at + 2;
    set_u16(segment, field.clone(), 0);
    let mut c = checksum::finish(checksum::sum(segment, pseudo));
    if udp {
        c = udp_nonzero(c);
    }
    set_u16(segment, field, c);
}

/// Writes a UDP header (`src`, `dst`, length = `segment.len()`) and its checksum into `segment`.
/// `segment` must be at most 65535 bytes long.
pub fn emit_udp(segment: &mut [u8], src: u16, dst: u16, pseudo_without_len: u32) {
    // Truncation impossible: the contract bounds the length to the 16-bit field.
    #[allow(clippy::cast_possible_truncation)]
    let len = segment.len() as u16;
    let mut u = UdpPacket::new_unchecked(segment);
    u.set_src_port(src);
    u.set_dst_port(dst);
    u.set_len(len);
    u.fill_checksum(pseudo_without_len + u32::from(len));
}
