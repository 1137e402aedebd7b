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

use ironnet_dataplane::packet::checksum::{finish, pseudo_v4, pseudo_v6};

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
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_VLAN: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;

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

/// One's-complement sum of `data` as big-endian 16-bit words (odd trailing byte padded with
/// zero), folded to 16 bits, not complemented: the same value as the dataplane's
/// `checksum::sum(data, 0)` after folding, computed four bytes at a time.
///
/// The sum is byte-order independent (RFC 1071 §2(B)): adding native-endian words and reading
/// the folded result's bytes as big-endian gives the big-endian sum.
pub fn csum_sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        // At most 2^32 additions of < 2^32 each fit in a u64 without overflow; frames are far
        // smaller than 16 GiB.
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        acc += u64::from(u32::from_ne_bytes(last));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    u32::from(u16::from_be_bytes((acc as u16).to_ne_bytes()))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Completes a partial checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`): sums `frame[start..]`, whose
/// checksum field at `start + offset` already holds the pseudo-header sum, and stores the result
/// there. Returns false (frame untouched) if the offsets do not fit the frame.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start + offset;
    if field + 2 > frame.len() {
        return false;
    }
    let c = finish(csum_sum(&frame[start..]));
    // A computed 0 is sent as 0xffff (equivalent for TCP, required for UDP, where 0 means "no
    // checksum").
    put16(frame, field, if c == 0 { 0xffff } else { c });
    true
}

/// Where the IP header starts and which IP version the frame carries (Ethernet, optionally one
/// VLAN tag).
fn l3(frame: &[u8]) -> Option<(usize, u16)> {
    let mut at = 12;
    let mut ethertype = be16(frame.get(..14)?, at);
    if ethertype == ETH_P_VLAN {
        at += 4;
        ethertype = be16(frame.get(..at + 2)?, at);
    }
    Some((at + 2, ethertype))
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
        ETH_P_IPV4 => {
            let ihl = usize::from(*frame.get(l3)? & 0x0f) * 4;
            if frame[l3] >> 4 != 4 || ihl < 20 || l3 + ihl != l4 || frame.get(l3 + 9) != Some(&IPPROTO_TCP) {
                return None;
            }
            true
        }
        ETH_P_IPV6 => {
            if *frame.get(l3)? >> 4 != 6 || l4 < l3 + 40 {
                return None;
            }
            false
        }
        _ => return None,
    };
    let thl = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
    let payload = l4 + thl;
    if thl < 20 || payload > frame.len() || payload > MAX_HDR {
        return None;
    }
    Some(TcpLayout { l3, l4, payload, v4 })
}

/// Rewrites the IP length fields, the IPv4 header checksum and the full TCP checksum of one
/// segment whose headers are at `seg[..layout.payload]`.
fn fix_segment(seg: &mut [u8], t: TcpLayout) {
    let l4_len = seg.len() - t.l4;
    if t.v4 {
        put16(seg, t.l3 + 2, (seg.len() - t.l3) as u16);
        put16(seg, t.l3 + 10, 0);
        let c = finish(csum_sum(&seg[t.l3..t.l4]));
        put16(seg, t.l3 + 10, c);
    } else {
        put16(seg, t.l3 + 4, (seg.len() - t.l3 - 40) as u16);
    }
    put16(seg, t.l4 + 16, 0);
    let pseudo = pseudo_sum(seg, t, l4_len as u32);
    let c = finish(pseudo + csum_sum(&seg[t.l4..]));
    put16(seg, t.l4 + 16, c);
}

fn pseudo_sum(frame: &[u8], t: TcpLayout, l4_len: u32) -> u32 {
    if t.v4 {
        let a = |at: usize| -> [u8; 4] { frame[at..at + 4].try_into().unwrap_or_default() };
        pseudo_v4(a(t.l3 + 12), a(t.l3 + 16), IPPROTO_TCP, l4_len as u16)
    } else {
        let a = |at: usize| -> [u8; 16] { frame[at..at + 16].try_into().unwrap_or_default() };
        pseudo_v6(a(t.l3 + 8), a(t.l3 + 24), IPPROTO_TCP, l4_len)
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
    let total = frame.len() - hl;
    let mut template = [0u8; MAX_HDR];
    template[..hl].copy_from_slice(&frame[..hl]);
    let seq0 = u32::from_be_bytes(template[t.l4 + 4..t.l4 + 8].try_into().unwrap_or_default());
    let id0 = be16(&template, t.l3 + 4);
    let flags0 = template[t.l4 + 13];
    let count = total.div_ceil(mss).max(1);
    for k in 0..count {
        let start = hl + k * mss;
        let end = (start + mss).min(frame.len());
        let seg = &mut frame[start - hl..end];
        if k > 0 {
            seg[..hl].copy_from_slice(&template[..hl]);
        }
        let off = (k * mss) as u32;
        seg[t.l4 + 4..t.l4 + 8].copy_from_slice(&seq0.wrapping_add(off).to_be_bytes());
        let mut flags = flags0;
        if k + 1 < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if k > 0 {
            flags &= !TCP_CWR;
        }
        seg[t.l4 + 13] = flags;
        if t.v4 {
            put16(seg, t.l3 + 4, id0.wrapping_add(k as u16));
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
            || be32(frame, t.l4 + 4) != self.next_seq
            || !segment_checksum_ok(frame, t)
        {
            return false;
        }
        let flags = frame[t.l4 + 13];
        if flags & !TCP_PSH != TCP_ACK {
            return false;
        }
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + payload].copy_from_slice(&frame[t.payload..]);
        self.len += payload;
        self.segments += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        // The merged header carries the latest PSH.
        self.buf[VNET_HDR_LEN + t.l4 + 13] |= flags & TCP_PSH;
        self.closed = payload < self.mss || flags & TCP_PSH != 0;
        true
    }

    fn start(&mut self, frame: &[u8]) -> bool {
        let Some((l3, ethertype)) = l3(frame) else {
            return false;
        };
        let l4 = match ethertype {
            ETH_P_IPV4 => match frame.get(l3) {
                Some(b) => l3 + usize::from(b & 0x0f) * 4,
                None => return false,
            },
            // Only a plain IPv6 header directly followed by TCP; extension headers pass alone.
            ETH_P_IPV6 if frame.get(l3 + 6) == Some(&IPPROTO_TCP) => l3 + 40,
            _ => return false,
        };
        let Some(t) = tcp_layout(frame, l4) else {
            return false;
        };
        if frame.len() <= t.payload || frame.len() - t.l3 > MAX_MERGED_IP {
            return false;
        }
        let flags = frame[t.l4 + 13];
        if ip_len(frame, t) != frame.len() - t.l3
            || flags & !TCP_PSH != TCP_ACK
            || (t.v4 && be16(frame, t.l3 + 6) & 0x3fff != 0)
            || !segment_checksum_ok(frame, t)
        {
            return false;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + frame.len()].copy_from_slice(frame);
        self.len = frame.len();
        self.layout = Some(t);
        self.mss = frame.len() - t.payload;
        self.segments = 1;
        self.next_seq = be32(frame, t.l4 + 4).wrapping_add(self.mss as u32);
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
        let hdr = if self.segments == 1 {
            VnetHdr::default()
        } else {
            if t.v4 {
                put16(frame, t.l3 + 2, (len - t.l3) as u16);
                put16(frame, t.l3 + 10, 0);
                let c = finish(csum_sum(&frame[t.l3..t.l4]));
                put16(frame, t.l3 + 10, c);
            } else {
                put16(frame, t.l3 + 4, (len - t.l3 - 40) as u16);
            }
            // NEEDS_CSUM: the field holds the folded pseudo-header sum, not complemented.
            let pseudo = pseudo_sum(frame, t, (len - t.l4) as u32);
            put16(frame, t.l4 + 16, !finish(pseudo));
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if t.v4 { GSO_TCPV4 } else { GSO_TCPV6 },
                hdr_len: t.payload as u16,
                gso_size: self.mss as u16,
                csum_start: t.l4 as u16,
                csum_offset: 16,
            }
        };
        self.buf[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
        &self.buf[..VNET_HDR_LEN + len]
    }
}

/// The length the IP header claims. It must describe the frame exactly (no Ethernet padding, no
/// truncation) for a segment to be merged.
fn ip_len(frame: &[u8], t: TcpLayout) -> usize {
    if t.v4 {
        usize::from(be16(frame, t.l3 + 2))
    } else {
        usize::from(be16(frame, t.l3 + 4)) + 40
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Whether `frame` has the same headers as `pending` apart from what differs between segments of
/// one stream: IP total length, id and checksum, TCP sequence number, PSH and checksum.
fn same_flow(pending: &[u8], frame: &[u8], t: TcpLayout) -> bool {
    let h = t.payload;
    if frame.len() < h || pending.len() < h {
        return false;
    }
    let (a, b) = (&pending[..h], &frame[..h]);
    let ip_same = if t.v4 {
        // version..tos | flags/frag..protocol | addresses and options
        a[..t.l3 + 2] == b[..t.l3 + 2]
            && a[t.l3 + 6..t.l3 + 10] == b[t.l3 + 6..t.l3 + 10]
            && a[t.l3 + 12..t.l4] == b[t.l3 + 12..t.l4]
    } else {
        a[..t.l3 + 4] == b[..t.l3 + 4] && a[t.l3 + 6..t.l4] == b[t.l3 + 6..t.l4]
    };
    // TCP: ports | ack, data offset | window | urgent pointer and options (flags compared by
    // the caller).
    ip_same
        && a[t.l4..t.l4 + 4] == b[t.l4..t.l4 + 4]
        && a[t.l4 + 8..t.l4 + 13] == b[t.l4 + 8..t.l4 + 13]
        && a[t.l4 + 14..t.l4 + 16] == b[t.l4 + 14..t.l4 + 16]
        && a[t.l4 + 18..h] == b[t.l4 + 18..h]
}

fn segment_checksum_ok(frame: &[u8], t: TcpLayout) -> bool {
    let pseudo = pseudo_sum(frame, t, (frame.len() - t.l4) as u32);
    finish(pseudo + csum_sum(&frame[t.l4..])) == 0
}

#[cfg(test)]
#[path = "offload_tests.rs"]
mod tests;
