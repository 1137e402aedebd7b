//! The ring operations against a fake guest memory (`GuestMemoryMmap` over anonymous memory):
//! frames in both directions byte for byte, mergeable buffers, running out of buffers, and a
//! fuzz of arbitrary descriptor tables, rings and frames through the transmit path (as the port
//! runs it, including segmentation) and the receive path: no panic, no write outside the
//! buffers, every consumed chain returned.

use proptest::prelude::*;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::offload::{self, VnetHdr};

const MEM: usize = 0x10_0000;
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
const DATA: u64 = 0x1_0000;
const SIZE: u16 = 16;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

fn setup() -> (GuestMemoryMmap, Queue) {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    let mut q = Queue::new(256).unwrap();
    q.set_size(SIZE);
    q.try_set_desc_table_address(GuestAddress(DESC)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(AVAIL)).unwrap();
    q.try_set_used_ring_address(GuestAddress(USED)).unwrap();
    q.set_ready(true);
    (mem, q)
}

fn desc(mem: &GuestMemoryMmap, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let at = GuestAddress(DESC + 16 * u64::from(i));
    mem.write_obj(addr, at).unwrap();
    mem.write_obj(len, at.unchecked_add(8)).unwrap();
    mem.write_obj(flags, at.unchecked_add(12)).unwrap();
    mem.write_obj(next, at.unchecked_add(14)).unwrap();
}

/// Makes `heads` available (appended after the current avail index).
fn publish(mem: &GuestMemoryMmap, heads: &[u16]) {
    let idx: u16 = mem.read_obj(GuestAddress(AVAIL + 2)).unwrap();
    for (k, h) in heads.iter().enumerate() {
        let slot = (idx as usize + k) % SIZE as usize;
        mem.write_obj(*h, GuestAddress(AVAIL + 4 + 2 * slot as u64))
            .unwrap();
    }
    mem.write_obj(idx.wrapping_add(heads.len() as u16), GuestAddress(AVAIL + 2))
        .unwrap();
}

fn used(mem: &GuestMemoryMmap) -> Vec<(u32, u32)> {
    let idx: u16 = mem.read_obj(GuestAddress(USED + 2)).unwrap();
    (0..idx)
        .map(|k| {
            let at = USED + 4 + 8 * u64::from(k % SIZE);
            (
                mem.read_obj(GuestAddress(at)).unwrap(),
                mem.read_obj(GuestAddress(at + 4)).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_transmit_chain_is_copied_whole_and_returned_used() {
    let (mem, mut q) = setup();
    let frame: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
    let mut bytes = vec![0u8; NET_HDR_LEN];
    bytes.extend_from_slice(&frame);
    // Header + 100 bytes in one descriptor, the rest in a second one.
    mem.write_slice(&bytes[..112], GuestAddress(DATA)).unwrap();
    mem.write_slice(&bytes[112..], GuestAddress(DATA + 0x1000))
        .unwrap();
    desc(&mem, 3, DATA, 112, F_NEXT, 7);
    desc(&mem, 7, DATA + 0x1000, (bytes.len() - 112) as u32, 0, 0);
    publish(&mem, &[3]);
    let mut buf = vec![0u8; 65_600];
    assert_eq!(pop_tx(&mut q, &mem, &mut buf), Some(TxChain::Frame(bytes.len())));
    assert_eq!(&buf[..bytes.len()], &bytes[..]);
    assert_eq!(used(&mem), vec![(3, 0)]);
    assert_eq!(pop_tx(&mut q, &mem, &mut buf), None, "ring empty");
}

#[test]
fn malformed_transmit_chains_are_dropped_but_returned() {
    let (mem, mut q) = setup();
    desc(&mem, 0, DATA, 64, F_WRITE, 0); // device-writable in a transmit queue
    desc(&mem, 1, DATA, 8, 0, 0); // shorter than the header
    desc(&mem, 2, DATA, 70_000, 0, 0); // longer than the buffer
    desc(&mem, 3, MEM as u64 - 10, 64, 0, 0); // outside guest memory
    publish(&mem, &[0, 1, 2, 3]);
    let mut buf = vec![0u8; 65_600];
    for _ in 0..4 {
        assert_eq!(pop_tx(&mut q, &mem, &mut buf), Some(TxChain::Dropped));
    }
    assert_eq!(used(&mem), vec![(0, 0), (1, 0), (2, 0), (3, 0)]);
}

#[test]
fn a_large_frame_spans_mergeable_buffers_with_num_buffers_set() {
    let (mem, mut q) = setup();
    for i in 0..3u16 {
        desc(&mem, i, DATA + 0x1000 * u64::from(i), 1000, F_WRITE, 0);
    }
    publish(&mem, &[0, 1, 2]);
    let frame: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
    let hdr = VnetHdr {
        flags: offload::F_NEEDS_CSUM,
        gso_type: offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    }
    .to_bytes();
    let mut scratch = RxScratch::default();
    push_rx(&mut q, &mem, &mut scratch, true, &hdr, &frame).unwrap();
    assert_eq!(used(&mem), vec![(0, 1000), (1, 1000), (2, 512)]);
    let mut got = Vec::new();
    for (i, len) in [(0u64, 1000usize), (1, 1000), (2, 512)] {
        let mut part = vec![0u8; len];
        mem.read_slice(&mut part, GuestAddress(DATA + 0x1000 * i))
            .unwrap();
        got.extend_from_slice(&part);
    }
    assert_eq!(&got[..10], &hdr);
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 3, "num_buffers");
    assert_eq!(&got[NET_HDR_LEN..], &frame[..]);
}

#[test]
fn without_enough_buffers_the_frame_is_dropped_and_the_buffers_stay_posted() {
    let (mem, mut q) = setup();
    desc(&mem, 0, DATA, 100, F_WRITE, 0);
    publish(&mem, &[0]);
    let mut scratch = RxScratch::default();
    let frame = [0xabu8; 500];
    for mergeable in [false, true] {
        assert_eq!(
            push_rx(&mut q, &mem, &mut scratch, mergeable, &[0; 10], &frame),
            Err(RxError::NoBuffers)
        );
        assert!(used(&mem).is_empty());
    }
    // The buffer is still there for a frame that fits.
    push_rx(&mut q, &mem, &mut scratch, false, &[0; 10], &frame[..60]).unwrap();
    assert_eq!(used(&mem), vec![(0, 72)]);
}

#[test]
fn a_read_only_receive_buffer_is_consumed_and_the_frame_dropped() {
    let (mem, mut q) = setup();
    desc(&mem, 0, DATA, 2000, 0, 0);
    publish(&mem, &[0]);
    let mut scratch = RxScratch::default();
    assert_eq!(
        push_rx(&mut q, &mem, &mut scratch, true, &[0; 10], &[1u8; 100]),
        Err(RxError::BadChain)
    );
    assert_eq!(used(&mem), vec![(0, 0)]);
}

/// One fuzz case: a descriptor table, the avail ring and the data area filled by the
/// strategy, then the transmit path as the port runs it and the receive path.
fn fuzz_case(table: &[u8], ring: &[u16], avail_idx: u16, data: &[u8], frame: &[u8], mergeable: bool) {
    let (mem, mut q) = setup();
    // Descriptor addresses mostly land in or near the data area, sometimes anywhere.
    let mut t = table.to_vec();
    for d in t.chunks_exact_mut(16) {
        if d[7] & 0x80 == 0 {
            let off = u64::from(u32::from_le_bytes([d[0], d[1], d[2], 0]));
            d[..8].copy_from_slice(&(DATA + off).to_le_bytes());
        }
        if d[11] & 0x80 == 0 {
            let len = u32::from(u16::from_le_bytes([d[8], d[9]]));
            d[8..12].copy_from_slice(&len.to_le_bytes());
        }
    }
    mem.write_slice(&t, GuestAddress(DESC)).unwrap();
    for (k, h) in ring.iter().enumerate() {
        mem.write_obj(*h, GuestAddress(AVAIL + 4 + 2 * k as u64)).unwrap();
    }
    mem.write_obj(avail_idx, GuestAddress(AVAIL + 2)).unwrap();
    mem.write_slice(data, GuestAddress(DATA)).unwrap();

    let mut buf = vec![0u8; 65_600];
    let mut segments = 0usize;
    for _ in 0..40 {
        match pop_tx(&mut q, &mem, &mut buf) {
            None => break,
            Some(TxChain::Dropped) => {}
            Some(TxChain::Frame(len)) => {
                assert!((NET_HDR_LEN..=buf.len()).contains(&len));
                let hdr = VnetHdr::parse(&buf[..len]).unwrap();
                let _ = offload::segment(hdr, &mut buf[NET_HDR_LEN..len], |seg| {
                    assert!(seg.len() <= len);
                    segments += 1;
                });
            }
        }
    }
    let mut scratch = RxScratch::default();
    for _ in 0..4 {
        let _ = push_rx(&mut q, &mem, &mut scratch, mergeable, &[0; 10], frame);
    }
    // Every used entry names a descriptor of the table and reports no more than the frame.
    for (id, len) in used(&mem) {
        assert!(id < u32::from(SIZE), "used id {id}");
        assert!(len as usize <= NET_HDR_LEN + frame.len().max(65_600));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("VHOST_USER_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)
    ))]
    #[test]
    fn arbitrary_rings_and_frames_never_panic(
        table in proptest::collection::vec(any::<u8>(), 16 * SIZE as usize),
        ring in proptest::collection::vec(0u16..24, SIZE as usize),
        avail_idx in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        frame in proptest::collection::vec(any::<u8>(), 0..9000),
        mergeable in any::<bool>(),
    ) {
        fuzz_case(&table, &ring, avail_idx, &data, &frame, mergeable);
    }
}
