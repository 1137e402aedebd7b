//! Moving frames between the dataplane and a guest's virtio-net rings in shared memory.
//!
//! Pure functions over a [`Queue`] and the guest memory, so that they are tested and fuzzed
//! against a fake guest memory without QEMU. Every guest-controlled value (descriptor addresses,
//! lengths, chain links, indices) is checked by `virtio-queue` / `vm-memory` or here; a bad chain
//! is returned to the guest as used with length 0 and dropped, never a panic.

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::device::NET_HDR_LEN;

/// Descriptors per chain this side follows when writing; longer receive chains are used only up
/// to this many descriptors (Linux posts one descriptor per mergeable buffer, or ~18 pages
/// in "big packets" mode).
const MAX_RX_SEGMENTS: usize = 64;

/// What one transmit chain held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxChain {
    /// `len` bytes (header and frame) were copied into the buffer.
    Frame(usize),
    /// The chain was malformed (unreadable address, write-only descriptor, longer than the
    /// buffer, shorter than the header): it was returned to the guest and dropped.
    Dropped,
}

/// Pops the next transmit chain from `queue`, copies its readable descriptors (a
/// `virtio_net_hdr_v1` and the frame) into `buf`, and returns the chain to the guest as used.
/// `None` when the guest has posted nothing more.
pub fn pop_tx(queue: &mut Queue, mem: &GuestMemoryMmap, buf: &mut [u8]) -> Option<TxChain> {
    let chain = queue.pop_descriptor_chain(mem)?;
    let head = chain.head_index();
    let mut len = 0usize;
    let mut ok = true;
    for desc in chain {
        let n = desc.len() as usize;
        if desc.is_write_only() {
            // A transmit chain is device-readable only.
            ok = false;
            break;
        }
        let Some(dst) = buf.get_mut(len..len + n) else {
            ok = false;
            break;
        };
        if mem.read_slice(dst, desc.addr()).is_err() {
            ok = false;
            break;
        }
        len += n;
    }
    // If add_used fails the used ring address is bad; the guest's ring is broken either way.
    let _ = queue.add_used(mem, head, 0);
    Some(if ok && len >= NET_HDR_LEN {
        TxChain::Frame(len)
    } else {
        TxChain::Dropped
    })
}

/// Why a frame was not delivered to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxError {
    /// The guest has not posted enough receive buffers (the frame is dropped, like a NIC with
    /// a full ring).
    NoBuffers,
    /// A receive chain was malformed (read-only or unwritable descriptors): the chains popped
    /// for the frame were returned used with length 0 and the frame dropped.
    BadChain,
}

/// Where the frame's bytes go: the writable descriptors of the chains popped for it.
#[derive(Debug, Default)]
pub struct RxScratch {
    segs: Vec<(GuestAddress, usize)>,
    used: Vec<(u16, u32)>,
}

/// Writes `hdr` (the first 10 bytes of a `virtio_net_hdr`) and `frame` into the guest's receive
/// buffers. With `mergeable` (`VIRTIO_NET_F_MRG_RXBUF`) the frame may span several chains and
/// `num_buffers` says how many; otherwise it must fit one chain. The chains are marked used only
/// when the whole frame has been written; when buffers run out they are put back on the avail
/// ring unchanged, and a malformed chain is consumed with length 0 with the others.
pub fn push_rx(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    scratch: &mut RxScratch,
    mergeable: bool,
    hdr: &[u8; 10],
    frame: &[u8],
) -> Result<(), RxError> {
    let total = NET_HDR_LEN + frame.len();
    scratch.segs.clear();
    scratch.used.clear();
    let mut room = 0usize;
    while room < total {
        if !mergeable && !scratch.used.is_empty() {
            break;
        }
        let Some(chain) = queue.pop_descriptor_chain(mem) else {
            break;
        };
        let head = chain.head_index();
        let first = scratch.segs.len();
        let mut chain_room = 0usize;
        let mut bad = false;
        for desc in chain {
            if !desc.is_write_only() || scratch.segs.len() - first >= MAX_RX_SEGMENTS {
                bad = !desc.is_write_only();
                break;
            }
            let want = (total - room - chain_room).min(desc.len() as usize);
            if want > 0 {
                scratch.segs.push((desc.addr(), want));
                chain_room += want;
            }
        }
        // Truncation impossible: `chain_room` is at most `total`, a frame of at most 64 KiB plus the
        // 12-byte header.
        #[allow(clippy::cast_possible_truncation)]
        scratch.used.push((head, chain_room as u32));
        if bad || chain_room == 0 {
            return fail_written(queue, mem, scratch);
        }
        room += chain_room;
    }
    if room < total {
        return_unused(queue, scratch);
        return Err(RxError::NoBuffers);
    }
    // Truncation impossible: one used element per popped chain, and a split ring holds at most
    // 32768 descriptors.
    #[allow(clippy::cast_possible_truncation)]
    let num_buffers = (scratch.used.len() as u16).to_le_bytes();
    let header: [u8; NET_HDR_LEN] = {
        let mut h = [0u8; NET_HDR_LEN];
        h[..10].copy_from_slice(hdr);
        h[10..].copy_from_slice(&num_buffers);
        h
    };
    // Each segment takes the next `len` bytes of header+frame: header bytes first (the header
    // may be split over descriptors), then frame bytes.
    let mut pos = 0usize;
    for &(addr, len) in &scratch.segs {
        let (seg_start, seg_end) = (pos, pos + len);
        pos = seg_end;
        if seg_start < NET_HDR_LEN {
            let part = &header[seg_start..seg_end.min(NET_HDR_LEN)];
            if mem.write_slice(part, addr).is_err() {
                return fail_written(queue, mem, scratch);
            }
        }
        let frame_from = seg_start.max(NET_HDR_LEN);
        if frame_from < seg_end {
            let Some(dst) = addr.checked_add((frame_from - seg_start) as u64) else {
                return fail_written(queue, mem, scratch);
            };
            let part = &frame[frame_from - NET_HDR_LEN..seg_end - NET_HDR_LEN];
            if mem.write_slice(part, dst).is_err() {
                return fail_written(queue, mem, scratch);
            }
        }
    }
    for &(head, len) in &scratch.used {
        let _ = queue.add_used(mem, head, len);
    }
    Ok(())
}

/// Puts the popped but unwritten chains back on the avail ring (in reverse pop order).
fn return_unused(queue: &mut Queue, scratch: &RxScratch) {
    for _ in &scratch.used {
        queue.go_to_previous_position();
    }
}

/// A chain was malformed or a write into it failed (an address outside the guest's memory):
/// every chain popped for the frame is consumed with length 0, so the guest gets its buffers
/// back, and the frame is dropped.
fn fail_written(queue: &mut Queue, mem: &GuestMemoryMmap, scratch: &RxScratch) -> Result<(), RxError> {
    for &(head, _) in &scratch.used {
        let _ = queue.add_used(mem, head, 0);
    }
    Err(RxError::BadChain)
}

#[cfg(test)]
#[path = "rings_tests.rs"]
#[allow(clippy::cast_possible_truncation)]
mod tests;
