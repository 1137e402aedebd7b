//! Software offloads at the VM-facing TAP ports: the `virtio_net_hdr` that `IFF_VNET_HDR` puts in
//! front of every frame, checksum completion, TCP segmentation (software TSO) of the super-frames a
//! VM hands over, and TCP coalescing (software GRO) of the segments the pipeline sends to a VM.
//!
//! The VM's kernel sees a TAP with checksum and TSO offload, so its TCP stack sends frames of up to
//! 64 KiB with a partial checksum; one `read` then carries ~45 segments instead of one. The
//! pipeline, the underlay and the remote host see ordinary, fully checksummed segments of the size
//! the VM chose (`gso_size`): an IPv6 IP-in-IP underlay cannot carry a virtio GSO type, and the
//! pure pipeline (`Dataplane::process`) is unchanged. On the way to a VM, consecutive segments of
//! one TCP flow are merged again into one frame with a GSO header, so the VM's stack handles one
//! large frame per write, as behind a NIC doing GRO.
//!
//! Everything here is pure (slices in, slices out) so it is tested without TAP devices.

use std::ops::Range;

use ironnet_dataplane::packet::checksum::{finish, pseudo_v4, pseudo_v6, sum};
use ironnet_dataplane::packet::ether::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetFrame};
use ironnet_dataplane::packet::ipv4::{self, Ipv4Packet, PROTO_TCP};
use ironnet_dataplane::packet::ipv6::{self, Ipv6Packet};
use ironnet_dataplane::packet::l4::{
    TCP_ACK, TCP_CWR, TCP_FIN, TCP_MIN_HEADER_LEN, TCP_PSH, TcpPacket, tcp_field,
};

/// Size of `struct virtio_net_hdr` (no `num_buffers`: the TAP's default vnet header size).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` to the end is still to be done;
/// the field at `csum_start + csum_offset` holds the pseudo-header sum.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN` (flag bit on `gso_type`).
pub const GSO_ECN: u8 = 0x80;

/// Largest header (Ethernet + VLAN + IP with options/extensions + TCP with options) that
/// segmentation copies in front of every segment.
const MAX_HDR: usize = 256;

/// `struct virtio_net_hdr`, little-endian on the wire (the TAP is switched to little-endian
/// headers with `TUNSETVNETLE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Length of the headers in front of the TCP payload.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS).
    pub gso_size: u16,
    /// Where the checksummed range starts (the L4 header).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the first [`VNET_HDR_LEN`] bytes; `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// The wire form.
    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

/// Completes a partial checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`): sums `frame[start..]`, whose
/// checksum field at `start + offset` already holds the pseudo-header sum, and stores the result
/// there. Returns false (frame untouched) if the offsets do not fit the frame.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start + offset;
    if field + 2 > frame.len() {
        return false;
    }
    let c = finish(sum(&frame[start..], 0));
    // A computed 0 is sent as 0xffff (equivalent for TCP, required for UDP, where 0 means "no
    // checksum").
    frame[field..field + 2].copy_from_slice(&if c == 0 { 0xffff_u16 } else { c }.to_be_bytes());
    true
}

/// Where the IP header starts and which IP version the frame carries (Ethernet, optionally one
/// VLAN tag).
fn l3(frame: &[u8]) -> Option<(usize, u16)> {
    EthernetFrame::new_checked(frame).ok()?.network_layer()
}

/// Offsets of a TCP frame: IP header, TCP header, payload.
#[derive(Debug, Clone, Copy)]
struct TcpLayout {
    l3: usize,
    l4: usize,
    payload: usize,
    v4: bool,
}

/// The layout of a TCP frame whose TCP header starts at `l4` (`None` if it is not IPv4/IPv6 with
/// TCP there, or the headers do not fit). For IPv4 the header length must reach exactly `l4`.
fn tcp_layout(frame: &[u8], l4: usize) -> Option<TcpLayout> {
    let (l3, ethertype) = l3(frame)?;
    let v4 = match ethertype {
        ETHERTYPE_IPV4 => {
            let ip = frame.get(l3..).filter(|b| b.len() > ipv4::field::PROTOCOL)?;
            let ip = Ipv4Packet::new_unchecked(ip);
            if ip.version() != 4
                || ip.header_len() < ipv4::MIN_HEADER_LEN
                || l3 + ip.header_len() != l4
                || ip.protocol() != PROTO_TCP
            {
                return None;
            }
            true
        }
        ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_unchecked(frame.get(l3..).filter(|b| !b.is_empty())?);
            if ip.version() != 6 || l4 < l3 + ipv6::HEADER_LEN {
                return None;
            }
            false
        }
        _ => return None,
    };
    let tcp = frame.get(l4..).filter(|b| b.len() > tcp_field::DATA_OFFSET)?;
    let thl = TcpPacket::new_unchecked(tcp).header_len();
    let payload = l4 + thl;
    if thl < TCP_MIN_HEADER_LEN || payload > frame.len() || payload > MAX_HDR {
        return None;
    }
    Some(TcpLayout { l3, l4, payload, v4 })
}

/// Sets the IP length field of a frame of `frame_len` bytes (IPv4: total length, and the header
/// checksum recomputed; IPv6: payload length) whose IP header starts at `t.l3`.
// Truncation impossible: callers bound the IP length to its 16-bit field (`segment` refuses larger segments, the
// coalescer merges up to `MAX_MERGED_IP` and takes only segments whose IP length field matches their size).
#[allow(clippy::cast_possible_truncation)]
fn set_ip_len(ip: &mut [u8], t: TcpLayout, frame_len: usize) {
    if t.v4 {
        let mut ip = Ipv4Packet::new_unchecked(ip);
        ip.set_total_len((frame_len - t.l3) as u16);
        ip.fill_checksum();
    } else {
        Ipv6Packet::new_unchecked(ip).set_payload_len((frame_len - t.l3 - ipv6::HEADER_LEN) as u16);
    }
}

/// Rewrites the IP length fields, the IPv4 header checksum and the full TCP checksum of one
/// segment whose headers are at `seg[..layout.payload]`.
fn fix_segment(seg: &mut [u8], t: TcpLayout) {
    let len = seg.len();
    set_ip_len(&mut seg[t.l3..], t, len);
    let pseudo = pseudo_sum(seg, t, len - t.l4);
    TcpPacket::new_unchecked(&mut seg[t.l4..]).fill_checksum(pseudo);
}

/// The TCP pseudo-header sum of a frame with layout `t` whose TCP segment is `l4_len` bytes, which must fit the IP
/// length field (as for [`set_ip_len`]).
// Truncation impossible: `l4_len` is part of an IP datagram whose length fits its 16-bit field (the callers').
#[allow(clippy::cast_possible_truncation)]
fn pseudo_sum(frame: &[u8], t: TcpLayout, l4_len: usize) -> u32 {
    if t.v4 {
        let ip = Ipv4Packet::new_unchecked(&frame[t.l3..]);
        pseudo_v4(ip.src_octets(), ip.dst_octets(), PROTO_TCP, l4_len as u16)
    } else {
        let ip = Ipv6Packet::new_unchecked(&frame[t.l3..]);
        pseudo_v6(ip.src_octets(), ip.dst_octets(), PROTO_TCP, l4_len as u32)
    }
}

/// Why a frame from a VM was not handed to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// A GSO type this port did not offer (only TCPv4/TCPv6 are enabled).
    UnsupportedGso,
    /// The headers do not match the GSO request (not TCP, offsets out of the frame, MSS 0).
    Malformed,
}

/// Turns one frame read from a TAP with a vnet header into the frames the pipeline sees, calling
/// `emit` for each: a frame without offload as is; a partial checksum completed; a GSO
/// super-frame cut into `gso_size` segments with their own IP lengths, IPv4 ids, sequence
/// numbers, flags and checksums, exactly as the VM's NIC would put them on the wire.
///
/// `frame` is modified in place: each segment's headers are written over the tail of the
/// previous segment's payload (already passed to `emit`), so every byte is copied once, by
/// `emit`.
pub fn segment(hdr: VnetHdr, frame: &mut [u8], mut emit: impl FnMut(&[u8])) -> Result<(), OffloadError> {
    let gso = hdr.gso_type & !GSO_ECN;
    if gso == GSO_NONE {
        if hdr.flags & F_NEEDS_CSUM != 0
            && !complete_checksum(frame, hdr.csum_start.into(), hdr.csum_offset.into())
        {
            return Err(OffloadError::Malformed);
        }
        emit(frame);
        return Ok(());
    }
    if gso != GSO_TCPV4 && gso != GSO_TCPV6 {
        return Err(OffloadError::UnsupportedGso);
    }
    let t = tcp_layout(frame, hdr.csum_start.into()).ok_or(OffloadError::Malformed)?;
    if t.v4 != (gso == GSO_TCPV4) {
        return Err(OffloadError::Malformed);
    }
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(OffloadError::Malformed);
    }
    let hl = t.payload;
    // Every segment's IP length must fit its 16-bit field (IPv6: the payload length after the fixed header); a
    // super-frame that fills the receive buffer, with an MSS that keeps it whole, would otherwise get a wrapped one.
    let largest_ip = (hl + mss).min(frame.len()) - t.l3;
    let ip_limit = usize::from(u16::MAX) + if t.v4 { 0 } else { ipv6::HEADER_LEN };
    if largest_ip > ip_limit {
        return Err(OffloadError::Malformed);
    }
    let total = frame.len() - hl;
    let mut template = [0u8; MAX_HDR];
    template[..hl].copy_from_slice(&frame[..hl]);
    let (seq0, flags0) = {
        let tcp = TcpPacket::new_unchecked(&template[t.l4..hl]);
        (tcp.seq_number(), tcp.flags())
    };
    let id0 = if t.v4 {
        Ipv4Packet::new_unchecked(&template[t.l3..t.l4]).ident()
    } else {
        0
    };
    let count = total.div_ceil(mss).max(1);
    for k in 0..count {
        let start = hl + k * mss;
        let end = (start + mss).min(frame.len());
        let seg = &mut frame[start - hl..end];
        if k > 0 {
            seg[..hl].copy_from_slice(&template[..hl]);
        }
        // Truncation intended: sequence numbers count modulo 2^32.
        #[allow(clippy::cast_possible_truncation)]
        let off = (k * mss) as u32;
        let mut flags = flags0;
        if k + 1 < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if k > 0 {
            flags &= !TCP_CWR;
        }
        {
            let mut tcp = TcpPacket::new_unchecked(&mut seg[t.l4..]);
            tcp.set_seq_number(seq0.wrapping_add(off));
            tcp.set_flags(flags);
        }
        if t.v4 {
            // Truncation intended: IPv4 ids count modulo 2^16, as the kernel's GSO does.
            #[allow(clippy::cast_possible_truncation)]
            let id = id0.wrapping_add(k as u16);
            Ipv4Packet::new_unchecked(&mut seg[t.l3..]).set_ident(id);
        }
        fix_segment(seg, t);
        emit(seg);
    }
    Ok(())
}

/// Merges consecutive in-order segments of one TCP flow into one super-frame with a GSO vnet
/// header (software GRO) for a VM-facing TAP.
///
/// A segment joins the pending super-frame if it continues it exactly: same Ethernet/IP/TCP
/// headers except the IP length/id/checksum and the sequence number, the next sequence number,
/// only ACK (plus PSH on the last one) set, and a payload no larger than the first one's (which
/// becomes `gso_size`). Its TCP checksum is verified first, because the merged frame is handed
/// over with a partial checksum, which the VM's stack trusts. Anything else is passed through
/// alone with an empty vnet header, so the VM's stack checks it as usual.
#[derive(Debug)]
pub struct Coalescer {
    buf: Vec<u8>,
    /// Pending super-frame: `buf[VNET_HDR_LEN..VNET_HDR_LEN + len]`, 0 if none.
    len: usize,
    layout: Option<TcpLayout>,
    mss: usize,
    segments: usize,
    next_seq: u32,
    /// The pending frame's last segment was shorter than `mss` or had PSH: nothing may follow.
    closed: bool,
}

/// Largest merged IP datagram (the IPv4 total-length field and a GSO super-frame's limit).
const MAX_MERGED_IP: usize = 65535;

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    /// An empty coalescer with a buffer for one 64 KiB super-frame.
    pub fn new() -> Self {
        Coalescer {
            buf: vec![0; VNET_HDR_LEN + MAX_MERGED_IP + 64],
            len: 0,
            layout: None,
            mss: 0,
            segments: 0,
            next_seq: 0,
            closed: false,
        }
    }

    /// Whether a super-frame (or a single held segment) is pending.
    pub fn is_pending(&self) -> bool {
        self.len > 0
    }

    /// Offers `frame` (an Ethernet frame the pipeline sends to the VM). Returns true if it was
    /// taken into the pending super-frame; false if the caller must first [`Coalescer::flush`]
    /// the pending one (if any) and then offer it again or send it alone.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        if self.len == 0 {
            return self.start(frame);
        }
        let Some(t) = self.layout else { return false };
        if self.closed || frame.len() <= t.payload {
            return false;
        }
        let payload = frame.len() - t.payload;
        if ip_len(frame, t) != frame.len() - t.l3 {
            return false;
        }
        let pending = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.len];
        if payload > self.mss
            || self.len + payload - t.l3 > MAX_MERGED_IP
            || !same_flow(pending, frame, t)
            || tcp_at(frame, t).seq_number() != self.next_seq
            || !segment_checksum_ok(frame, t)
        {
            return false;
        }
        let flags = tcp_at(frame, t).flags();
        if flags & !TCP_PSH != TCP_ACK {
            return false;
        }
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + payload].copy_from_slice(&frame[t.payload..]);
        self.len += payload;
        self.segments += 1;
        // Truncation impossible: `payload` ≤ `mss`, which fits 16 bits (see `flush`).
        #[allow(clippy::cast_possible_truncation)]
        let payload_u32 = payload as u32;
        self.next_seq = self.next_seq.wrapping_add(payload_u32);
        // The merged header carries the latest PSH.
        self.buf[VNET_HDR_LEN + t.l4 + tcp_field::FLAGS] |= flags & TCP_PSH;
        self.closed = payload < self.mss || flags & TCP_PSH != 0;
        true
    }

    fn start(&mut self, frame: &[u8]) -> bool {
        let Some((l3, ethertype)) = l3(frame) else {
            return false;
        };
        let l4 = match ethertype {
            ETHERTYPE_IPV4 => match frame.get(l3..).filter(|b| !b.is_empty()) {
                Some(b) => l3 + Ipv4Packet::new_unchecked(b).header_len(),
                None => return false,
            },
            // Only a plain IPv6 header directly followed by TCP; extension headers pass alone.
            ETHERTYPE_IPV6 if frame.get(l3 + ipv6::field::NXT_HDR) == Some(&PROTO_TCP) => {
                l3 + ipv6::HEADER_LEN
            }
            _ => return false,
        };
        let Some(t) = tcp_layout(frame, l4) else {
            return false;
        };
        if frame.len() <= t.payload || frame.len() - t.l3 > MAX_MERGED_IP {
            return false;
        }
        let flags = tcp_at(frame, t).flags();
        if ip_len(frame, t) != frame.len() - t.l3
            || flags & !TCP_PSH != TCP_ACK
            || (t.v4 && Ipv4Packet::new_unchecked(&frame[t.l3..]).is_fragment())
            || !segment_checksum_ok(frame, t)
        {
            return false;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + frame.len()].copy_from_slice(frame);
        self.len = frame.len();
        self.layout = Some(t);
        self.mss = frame.len() - t.payload;
        self.segments = 1;
        // Truncation impossible: `mss` fits 16 bits (see `flush`).
        #[allow(clippy::cast_possible_truncation)]
        let mss_u32 = self.mss as u32;
        self.next_seq = tcp_at(frame, t).seq_number().wrapping_add(mss_u32);
        self.closed = flags & TCP_PSH != 0;
        true
    }

    /// Finishes the pending frame and returns it with its vnet header in front (empty if nothing
    /// is pending). A single segment goes out unchanged with an empty vnet header; a merged
    /// frame gets fixed IP lengths/checksum, a partial TCP checksum and a GSO header.
    pub fn flush(&mut self) -> &[u8] {
        let len = std::mem::take(&mut self.len);
        let Some(t) = self.layout.take() else {
            return &[];
        };
        if len == 0 {
            return &[];
        }
        let frame = &mut self.buf[VNET_HDR_LEN..VNET_HDR_LEN + len];
        // Truncation impossible: header offsets are below `MAX_HDR` (256), the checksum offset is 16, and `mss` is a
        // segment's payload whose IP length field matched its size (`start`), so it fits 16 bits.
        #[allow(clippy::cast_possible_truncation)]
        let hdr = if self.segments == 1 {
            VnetHdr::default()
        } else {
            set_ip_len(&mut frame[t.l3..], t, len);
            // NEEDS_CSUM: the field holds the folded pseudo-header sum, not complemented.
            let pseudo = pseudo_sum(frame, t, len - t.l4);
            TcpPacket::new_unchecked(&mut frame[t.l4..]).set_checksum(!finish(pseudo));
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if t.v4 { GSO_TCPV4 } else { GSO_TCPV6 },
                hdr_len: t.payload as u16,
                gso_size: self.mss as u16,
                csum_start: t.l4 as u16,
                csum_offset: tcp_field::CHECKSUM.start as u16,
            }
        };
        self.buf[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
        &self.buf[..VNET_HDR_LEN + len]
    }
}

/// The TCP header of a frame with layout `t`.
fn tcp_at(frame: &[u8], t: TcpLayout) -> TcpPacket<&[u8]> {
    TcpPacket::new_unchecked(&frame[t.l4..])
}

/// The length the IP header claims. It must describe the frame exactly (no Ethernet padding, no
/// truncation) for a segment to be merged.
fn ip_len(frame: &[u8], t: TcpLayout) -> usize {
    if t.v4 {
        Ipv4Packet::new_unchecked(&frame[t.l3..]).total_len()
    } else {
        Ipv6Packet::new_unchecked(&frame[t.l3..]).payload_len() + ipv6::HEADER_LEN
    }
}

/// Whether the bytes of `field` of the header at `base` are equal in `a` and `b`.
fn same(a: &[u8], b: &[u8], base: usize, field: Range<usize>) -> bool {
    let r = base + field.start..base + field.end;
    a[r.clone()] == b[r]
}

/// Whether `frame` has the same headers as `pending` apart from what differs between segments of
/// one stream: IP total length, id and checksum, TCP sequence number, PSH and checksum.
fn same_flow(pending: &[u8], frame: &[u8], t: TcpLayout) -> bool {
    let h = t.payload;
    if frame.len() < h || pending.len() < h {
        return false;
    }
    let (a, b) = (&pending[..h], &frame[..h]);
    let (ip_hl, tcp_hl) = (t.l4 - t.l3, h - t.l4);
    let ip_same = a[..t.l3] == b[..t.l3]
        && if t.v4 {
            use ipv4::field as f;
            same(a, b, t.l3, f::VER_IHL..f::DSCP_ECN + 1)
                && same(a, b, t.l3, f::FLG_OFF.start..f::PROTOCOL + 1)
                && same(a, b, t.l3, f::SRC_ADDR.start..ip_hl)
        } else {
            use ipv6::field as f;
            same(a, b, t.l3, f::VER_TC_FLOW) && same(a, b, t.l3, f::NXT_HDR..ip_hl)
        };
    // TCP: ports | ack, data offset | window | urgent pointer and options (flags compared by
    // the caller).
    use tcp_field as f;
    ip_same
        && same(a, b, t.l4, f::SRC_PORT.start..f::DST_PORT.end)
        && same(a, b, t.l4, f::ACK_NUM.start..f::FLAGS)
        && same(a, b, t.l4, f::WIN_SIZE)
        && same(a, b, t.l4, f::URGENT.start..tcp_hl)
}

fn segment_checksum_ok(frame: &[u8], t: TcpLayout) -> bool {
    let pseudo = pseudo_sum(frame, t, frame.len() - t.l4);
    tcp_at(frame, t).verify_checksum(pseudo)
}

#[cfg(test)]
#[path = "offload_tests.rs"]
// Tests build frames from literal lengths; the truncation lint guards the code under test.
#[allow(clippy::cast_possible_truncation)]
mod tests;
