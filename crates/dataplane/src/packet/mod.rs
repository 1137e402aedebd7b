//! Zero-copy header views over frame buffers, their parsed representations, and checksum helpers.
//!
//! Views (`*Packet<T>`) wrap a byte buffer and read or write fields in place; `new_checked` validates that the
//! buffer holds the fixed header and that length fields are consistent, so accessors never panic afterwards.
//! Representations (`*Repr`) are plain structs for building frames in host services and tests.

pub mod arp;
pub mod checksum;
pub mod ether;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod l4;

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
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
