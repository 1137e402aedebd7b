//! Ethernet II frames.

use super::{Field, ParseError, Rest, get_6, get_u16, set_u16};
use crate::port::MacAddr;

/// Byte ranges of the Ethernet II header fields.
pub mod field {
    use super::{Field, Rest};
    /// Destination MAC address.
    pub const DESTINATION: Field = 0..6;
    /// Source MAC address.
    pub const SOURCE: Field = 6..12;
    /// EtherType (or, with an 802.1Q tag, the tag protocol identifier 0x8100).
    pub const ETHERTYPE: Field = 12..14;
    /// The payload.
    pub const PAYLOAD: Rest = 14..;
}

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of an IEEE 802.1Q tag (tag control information and the inner EtherType).
pub const VLAN_TAG_LEN: usize = 4;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an IEEE 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking its length; accessors panic if it is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer`; fails if it cannot hold the header.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        MacAddr(get_6(self.buffer.as_ref(), field::DESTINATION))
    }

    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        MacAddr(get_6(self.buffer.as_ref(), field::SOURCE))
    }

    /// EtherType.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// Where the network-layer header starts and its EtherType, looking through at most one 802.1Q tag; `None`
    /// if the frame ends inside the tag.
    #[inline]
    pub fn network_layer(&self) -> Option<(usize, u16)> {
        let ethertype = self.ethertype();
        if ethertype != ETHERTYPE_VLAN {
            return Some((HEADER_LEN, ethertype));
        }
        // The tag (TCI, then the inner EtherType) sits where the payload would start.
        let inner = HEADER_LEN + VLAN_TAG_LEN;
        let b = self.buffer.as_ref().get(..inner)?;
        Some((inner, u16::from_be_bytes([b[inner - 2], b[inner - 1]])))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&m.0);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&m.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, t: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }

    /// The bytes after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A parsed Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// EtherType.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Parses the header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(f: &EthernetFrame<T>) -> Self {
        EthernetRepr {
            dst: f.dst(),
            src: f.src(),
            ethertype: f.ethertype(),
        }
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out` (which must be at least that long).
    pub fn emit(&self, out: &mut [u8]) {
        write_header(out, self.dst, self.src, self.ethertype);
    }
}

/// Writes an Ethernet header into `out[..14]`.
#[inline]
pub fn write_header(out: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    let mut f = EthernetFrame::new_unchecked(out);
    f.set_dst(dst);
    f.set_src(src);
    f.set_ethertype(ethertype);
}
