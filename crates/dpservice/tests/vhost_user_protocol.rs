//! A vhost-user port driven over its real socket by rust-vmm's vhost-user *frontend* (the role
//! QEMU plays), with the guest's memory in a shared file and the driver side of the virtqueues
//! written by the test: the frontend negotiates features, hands over the memory table, rings
//! and eventfds; the "guest" transmits an ARP request for the gateway 169.254.0.1 and the
//! dataplane's answer arrives in the receive queue, with an interrupt. Then the frontend
//! disconnects and a second one (a restarted QEMU) sets the device up again and gets its
//! answer too. Runs where KVM guests cannot (no QEMU involved); needs root for the uplink TAP.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::start_vhost_user_host;
use ironnet_dpservice::vhost_user::device::NET_HDR_LEN;
use vhost::vhost_user::Frontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Address, Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

const MEM: usize = 0x10_0000;
const QSIZE: u16 = 16;
/// Per queue q: descriptor table, avail ring, used ring at these offsets + q * 0x4000.
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
const RX_BUFS: u64 = 0x1_0000;
const TX_BUF: u64 = 0x2_0000;
const F_WRITE: u16 = 2;
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

struct Driver {
    mem: GuestMemoryMmap,
    frontend: Frontend,
    kicks: [EventFd; 2],
    calls: [EventFd; 2],
    tx_next: u16,
}

fn ring(q: u64, off: u64) -> u64 {
    q * 0x4000 + off
}

impl Driver {
    /// Connects to `socket` and sets the device up as QEMU does when the guest driver starts it.
    fn connect(socket: &std::path::Path, file: &File, extra_features: u64) -> Driver {
        let region = MmapRegion::from_file(FileOffset::new(file.try_clone().unwrap(), 0), MEM).unwrap();
        let region = GuestRegionMmap::new(region, GuestAddress(0)).unwrap();
        let info = VhostUserMemoryRegionInfo::from_guest_region(&region).unwrap();
        let host_base = info.userspace_addr;
        let mem = GuestMemoryMmap::from_regions(vec![region]).unwrap();
        // A fresh guest: zeroed rings.
        mem.write_slice(&vec![0u8; 0x8000], GuestAddress(0)).unwrap();

        let frontend = Frontend::connect(socket, 2).expect("connect to the vhost-user socket");
        frontend.set_owner().unwrap();
        let offered = frontend.get_features().unwrap();
        let wanted = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MRG_RXBUF | extra_features;
        assert_eq!(
            offered & wanted,
            wanted,
            "virtio 1.0 and mergeable buffers offered: {offered:#x}"
        );
        frontend.set_features(wanted).unwrap();
        frontend.set_mem_table(&[info]).unwrap();
        let kicks = [
            EventFd::new(EFD_NONBLOCK).unwrap(),
            EventFd::new(EFD_NONBLOCK).unwrap(),
        ];
        let calls = [
            EventFd::new(EFD_NONBLOCK).unwrap(),
            EventFd::new(EFD_NONBLOCK).unwrap(),
        ];
        for q in 0..2usize {
            let qa = q as u64;
            frontend.set_vring_num(q, QSIZE).unwrap();
            frontend
                .set_vring_addr(
                    q,
                    &VringConfigData {
                        queue_max_size: QSIZE,
                        queue_size: QSIZE,
                        flags: 0,
                        desc_table_addr: host_base + ring(qa, DESC),
                        used_ring_addr: host_base + ring(qa, USED),
                        avail_ring_addr: host_base + ring(qa, AVAIL),
                        log_addr: None,
                    },
                )
                .unwrap();
            frontend.set_vring_base(q, 0).unwrap();
            frontend.set_vring_call(q, &calls[q]).unwrap();
            frontend.set_vring_kick(q, &kicks[q]).unwrap();
        }
        let d = Driver {
            mem,
            frontend,
            kicks,
            calls,
            tx_next: 0,
        };
        // Four receive buffers of 2 KiB.
        for i in 0..4u16 {
            d.desc(0, i, RX_BUFS + 0x800 * u64::from(i), 0x800, F_WRITE);
        }
        d.publish(0, &[0, 1, 2, 3]);
        d
    }

    fn desc(&self, q: u64, i: u16, addr: u64, len: u32, flags: u16) {
        let at = GuestAddress(ring(q, DESC) + 16 * u64::from(i));
        self.mem.write_obj(addr, at).unwrap();
        self.mem.write_obj(len, at.unchecked_add(8)).unwrap();
        self.mem.write_obj(flags, at.unchecked_add(12)).unwrap();
        self.mem.write_obj(0u16, at.unchecked_add(14)).unwrap();
    }

    fn publish(&self, q: u64, heads: &[u16]) {
        let idx_at = GuestAddress(ring(q, AVAIL) + 2);
        let idx: u16 = self.mem.read_obj(idx_at).unwrap();
        for (k, h) in heads.iter().enumerate() {
            let slot = (usize::from(idx) + k) % usize::from(QSIZE);
            self.mem
                .write_obj(*h, GuestAddress(ring(q, AVAIL) + 4 + 2 * slot as u64))
                .unwrap();
        }
        self.mem
            .write_obj(idx.wrapping_add(heads.len() as u16), idx_at)
            .unwrap();
    }

    fn used_idx(&self, q: u64) -> u16 {
        self.mem.read_obj(GuestAddress(ring(q, USED) + 2)).unwrap()
    }

    /// The guest transmits `frame` (behind an empty virtio-net header) and kicks.
    fn transmit(&mut self, frame: &[u8]) {
        let mut bytes = vec![0u8; NET_HDR_LEN];
        bytes.extend_from_slice(frame);
        let head = self.tx_next % QSIZE;
        self.tx_next += 1;
        let addr = TX_BUF + 0x800 * u64::from(head);
        self.mem.write_slice(&bytes, GuestAddress(addr)).unwrap();
        self.desc(1, head, addr, bytes.len() as u32, 0);
        self.publish(1, &[head]);
        self.kicks[1].write(1).unwrap();
    }

    /// Waits (up to 5 s) for the next received frame; returns it and whether the receive
    /// queue raised an interrupt for it (waiting up to 1 s for one if `expect_interrupt`).
    fn receive(&self, seen: u16, expect_interrupt: bool) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut interrupted = false;
        while self.used_idx(0) == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no frame on the receive queue within 5 s");
            // An interrupt wakes us at once; with event index only the first reply raises one,
            // so look at the used ring again at least every 10 ms.
            interrupted |= self.wait_interrupt(left.min(Duration::from_millis(10)));
        }
        if expect_interrupt && !interrupted {
            interrupted = self.wait_interrupt(Duration::from_secs(1));
        }
        let at = ring(0, USED) + 4 + 8 * u64::from(seen % QSIZE);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        let mut buf = vec![0u8; len as usize];
        self.mem
            .read_slice(&mut buf, GuestAddress(RX_BUFS + 0x800 * u64::from(id)))
            .unwrap();
        assert_eq!(u16::from_le_bytes([buf[10], buf[11]]), 1, "num_buffers");
        (buf.split_off(NET_HDR_LEN), interrupted)
    }

    /// Waits up to `timeout` for the receive queue's call eventfd and consumes it.
    fn wait_interrupt(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.calls[0].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        self.calls[0].read().is_ok()
    }
}

fn arp_request(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[169, 254, 0, 1]);
    f
}

fn check_arp_reply(frame: &[u8], mac: [u8; 6], ip: [u8; 4], gw_mac: [u8; 6]) {
    assert_eq!(&frame[0..6], &mac, "to the guest");
    assert_eq!(&frame[6..12], &gw_mac, "from the port's own MAC");
    assert_eq!(&frame[12..14], &[0x08, 0x06], "ARP");
    assert_eq!(&frame[20..22], &[0, 2], "a reply");
    assert_eq!(&frame[22..28], &gw_mac);
    assert_eq!(&frame[28..32], &[169, 254, 0, 1]);
    assert_eq!(&frame[32..38], &mac);
    assert_eq!(&frame[38..42], &ip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vhost_user_frontend_gets_answers_and_reconnects() {
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let topo = common::Topology::new();
    let dir = topo.dir.path().to_owned();
    let mut host = start_vhost_user_host(&format!("p{tag}"), 'a', "fc00:a::1", &dir, 1).await;
    host.vm("vm0", 100, "10.0.0.1", 0).await;
    let socket = host.vfs[0].vhost_user.clone().unwrap();
    let gw_mac = host.vfs[0].mac;
    let guest_mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let guest_ip = [10, 0, 0, 1];

    let file = tempfile::tempfile_in("/dev/shm").unwrap();
    file.set_len(MEM as u64).unwrap();
    let arp = arp_request(guest_mac, guest_ip);
    let run = |file: &File, extra_features: u64| {
        let socket = socket.clone();
        let file = file.try_clone().unwrap();
        let arp = arp.clone();
        std::thread::spawn(move || {
            let mut d = Driver::connect(&socket, &file, extra_features);
            for k in 0..3u16 {
                d.transmit(&arp);
                let (reply, interrupted) = d.receive(k, extra_features == 0);
                // Without event index every batch that delivered a frame interrupts the guest.
                assert!(interrupted || extra_features != 0, "an interrupt for reply {k}");
                check_arp_reply(&reply, guest_mac, guest_ip, gw_mac);
            }
            // The transmitted chains came back used.
            assert_eq!(d.used_idx(1), 3);
            drop(d.frontend);
        })
    };
    run(&file, 0).join().expect("first frontend");
    // A restarted QEMU: new connection, device set up from scratch, rings from index 0 again;
    // this one negotiates event-index notification suppression (the avail ring's used_event
    // is 0 and never advanced, so only the first reply asks for an interrupt; the others are
    // found by looking at the used ring, as a polling driver would).
    run(&file, VIRTIO_RING_F_EVENT_IDX)
        .join()
        .expect("second frontend after a reconnect");
    host.service.shutdown().await;
    drop(topo);
}
