//! Zero-copy header views over frame buffers, their parsed representations, and checksum helpers.
//!
//! Views (`*Packet<T>`) wrap a byte buffer and read or write fields in place; `new_checked` validates that the
//! buffer holds the fixed header and that length fields are consistent, so accessors never panic afterwards.
//! Representations (`*Repr`) are plain structs for building frames in host services and tests.
//!
//! The layout follows smoltcp's `wire` module: every view names its header fields as byte ranges in a `field`
//! module (`ipv4::field::SRC_ADDR` is `12..16`), and reads and writes only through those names. Setters live on
//! `T: AsMut<[u8]>`; the ones the NAT rewrite uses update checksums incrementally (RFC 1624) so a rewrite costs a
//! few additions instead of a pass over the packet. `new_checked` validates a buffer; `new_unchecked` wraps one the
//! caller has already validated (the pipeline parses each packet once and then rewrites it through unchecked views),
//! and its accessors panic on a buffer too short for the field they touch.

pub mod arp;
pub mod checksum;
pub mod ether;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod l4;

/// A header field: the byte range it occupies, relative to the start of its header.
pub type Field = core::ops::Range<usize>;
/// Everything from a byte offset on (a header's payload or options).
pub type Rest = core::ops::RangeFrom<usize>;

/// Why a header view rejected a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The buffer is shorter than the header or than a length field claims.
    #[error("truncated header")]
    Truncated,
    /// A field has a value the view cannot interpret (IP version, IHL, ARP hardware type, ...).
    #[error("malformed header")]
    Malformed,
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    // One range check for both bytes (indexing each byte checks twice; this is on every packet's path).
    let w = &b[at..at + 2];
    u16::from_be_bytes([w[0], w[1]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The big-endian 16-bit value of a two-byte field.
#[inline]
pub(crate) fn get_u16(b: &[u8], f: Field) -> u16 {
    be16(b, f.start)
}

/// Writes a big-endian 16-bit value into a two-byte field.
#[inline]
pub(crate) fn set_u16(b: &mut [u8], f: Field, v: u16) {
    put16(b, f.start, v);
}

/// The bytes of a four-byte field.
#[inline]
pub(crate) fn get_4(b: &[u8], f: Field) -> [u8; 4] {
    let w = &b[f.start..f.start + 4];
    [w[0], w[1], w[2], w[3]]
}

/// The bytes of a sixteen-byte field.
#[inline]
pub(crate) fn get_16(b: &[u8], f: Field) -> [u8; 16] {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[f.start..f.start + 16]);
    o
}

/// The bytes of a six-byte (MAC address) field.
#[inline]
pub(crate) fn get_6(b: &[u8], f: Field) -> [u8; 6] {
    let mut o = [0u8; 6];
    o.copy_from_slice(&b[f.start..f.start + 6]);
    o
}

#[cfg(test)]
// Tests build frames from small literal lengths; the truncation lint guards the code under test.
#[allow(clippy::cast_possible_truncation)]
mod view_props;
#[cfg(test)]
mod wire_tests;

#[cfg(test)]
mod tests {
    use super::ParseError;
    use super::ipv4::{Ipv4Packet, Ipv4Repr};
    use super::ipv6::{Ipv6Packet, Ipv6Repr};
    use super::l4::{TcpPacket, UdpPacket};

    #[test]
    fn views_reject_inconsistent_lengths() {
        let repr = Ipv4Repr {
            src: [10, 0, 0, 1].into(),
            dst: [10, 0, 0, 2].into(),
            protocol: 17,
            payload_len: 8,
            ttl: 64,
        };
        let mut b = vec![0u8; 28];
        repr.emit(&mut b);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), repr);
        assert_eq!(
            Ipv4Packet::new_checked(&b[..27]).unwrap_err(),
            ParseError::Truncated
        );
        let mut bad = b.clone();
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            ParseError::Malformed
        );
        bad[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            ParseError::Malformed
        );

        let r6 = Ipv6Repr {
            src: "fc00::1".parse().unwrap(),
            dst: "fc00::2".parse().unwrap(),
            next_header: 4,
            payload_len: 4,
            hop_limit: 64,
        };
        let mut b6 = vec![0u8; 44];
        r6.emit(&mut b6);
        assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b6[..]).unwrap()), r6);
        assert_eq!(
            Ipv6Packet::new_checked(&b6[..43]).unwrap_err(),
            ParseError::Truncated
        );

        assert!(UdpPacket::new_checked(&[0u8, 1, 0, 2, 0, 8, 0, 0][..]).is_ok());
        assert!(
            UdpPacket::new_checked(&[0u8, 1, 0, 2, 0, 9, 0, 0][..]).is_err(),
            "length beyond buffer"
        );
        assert!(
            UdpPacket::new_checked(&[0u8, 1, 0, 2, 0, 7, 0, 0][..]).is_err(),
            "length below header"
        );
        let mut tcp = [0u8; 20];
        tcp[12] = 0x60;
        assert!(
            TcpPacket::new_checked(&tcp[..]).is_err(),
            "data offset beyond buffer"
        );
        tcp[12] = 0x50;
        assert!(TcpPacket::new_checked(&tcp[..]).is_ok());
    }
}
