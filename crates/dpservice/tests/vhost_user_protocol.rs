//! A vhost-user port driven over its real socket by rust-vmm's vhost-user *frontend* (the role
//! QEMU plays), with the guest's memory in a shared file and the driver side of the virtqueues
//! written by the test: the frontend negotiates features, hands over the memory table, rings
//! and eventfds; the "guest" transmits an ARP request for the gateway 169.254.0.1 and the
//! dataplane's answer arrives in the receive queue, with an interrupt. Then the frontend
//! disconnects and a second one (a restarted QEMU) sets the device up again and gets its
//! answer too. A second test negotiates two queue pairs: frames transmitted on the second
//! transmit queue are answered, answers land only on enabled receive queues and a flow's
//! frames on one of them, GET_QUEUE_NUM answers the configured pairs, and a `queues=` beyond
//! the maximum is refused. Runs where KVM guests cannot (no QEMU involved); needs root for the uplink TAP.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::start_vhost_user_host;
use ironnet_dpservice::config::PortSpec;
use ironnet_dpservice::vhost_user::device::NET_HDR_LEN;
use vhost::vhost_user::message::{VhostUserHeaderFlag, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Address, Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

const MEM: usize = 0x10_0000;
const QSIZE: u16 = 16;
/// Per queue q: descriptor table, avail ring, used ring at these offsets + q * 0x4000.
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
/// Receive buffers of receive queue q at RX_BUFS + q * 0x2000 (four of 2 KiB).
const RX_BUFS: u64 = 0x1_0000;
/// Transmit buffers of transmit queue q at TX_BUF + q * 0x8000.
const TX_BUF: u64 = 0x2_0000;
const F_WRITE: u16 = 2;
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
const VIRTIO_NET_F_MQ: u64 = 1 << 22;
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;

struct Driver {
    mem: GuestMemoryMmap,
    frontend: Frontend,
    kicks: Vec<EventFd>,
    calls: Vec<EventFd>,
    tx_next: Vec<u16>,
    /// Per queue: used entries already taken by [`Driver::try_next`].
    rx_seen: Vec<u16>,
}

fn ring(q: u64, off: u64) -> u64 {
    q * 0x4000 + off
}

impl Driver {
    /// Connects to `socket` and sets the device up as QEMU does when the guest driver starts it.
    fn connect(socket: &std::path::Path, file: &File, extra_features: u64) -> Driver {
        Self::connect_pairs(socket, file, extra_features, 1, |_| {})
    }

    /// [`Self::connect`] with `pairs` queue pairs; `negotiate` runs after SET_FEATURES (for
    /// protocol features).
    fn connect_pairs(
        socket: &std::path::Path,
        file: &File,
        extra_features: u64,
        pairs: usize,
        negotiate: impl FnOnce(&mut Frontend),
    ) -> Driver {
        let region = MmapRegion::from_file(FileOffset::new(file.try_clone().unwrap(), 0), MEM).unwrap();
        let region = GuestRegionMmap::new(region, GuestAddress(0)).unwrap();
        let info = VhostUserMemoryRegionInfo::from_guest_region(&region).unwrap();
        let host_base = info.userspace_addr;
        let mem = GuestMemoryMmap::from_regions(vec![region]).unwrap();
        // A fresh guest: zeroed rings.
        mem.write_slice(&vec![0u8; 0x1_0000], GuestAddress(0)).unwrap();

        let mut frontend =
            Frontend::connect(socket, 2 * pairs as u64).expect("connect to the vhost-user socket");
        frontend.set_owner().unwrap();
        let offered = frontend.get_features().unwrap();
        let wanted = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MRG_RXBUF | extra_features;
        assert_eq!(
            offered & wanted,
            wanted,
            "virtio 1.0 and mergeable buffers offered: {offered:#x}"
        );
        frontend.set_features(wanted).unwrap();
        negotiate(&mut frontend);
        frontend.set_mem_table(&[info]).unwrap();
        let kicks: Vec<EventFd> = (0..2 * pairs)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        let calls: Vec<EventFd> = (0..2 * pairs)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        for q in 0..2 * pairs {
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
            tx_next: vec![0; 2 * pairs],
            rx_seen: vec![0; 2 * pairs],
        };
        for pair in 0..pairs as u64 {
            d.post_rx_buffers(2 * pair);
        }
        d
    }

    /// Posts four receive buffers of 2 KiB on receive queue `q`.
    fn post_rx_buffers(&self, q: u64) {
        let base = self.used_idx(q);
        let heads: Vec<u16> = (0..4u16).map(|k| (base.wrapping_add(k)) % QSIZE).collect();
        for &i in &heads {
            self.desc(
                q,
                i,
                RX_BUFS + q * 0x2000 + 0x800 * u64::from(i % 4),
                0x800,
                F_WRITE,
            );
        }
        self.publish(q, &heads);
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
        self.transmit_on(1, frame)
    }

    /// [`Self::transmit`] on transmit queue `q`.
    fn transmit_on(&mut self, q: usize, frame: &[u8]) {
        let mut bytes = vec![0u8; NET_HDR_LEN];
        bytes.extend_from_slice(frame);
        let head = self.tx_next[q] % QSIZE;
        self.tx_next[q] += 1;
        let qa = q as u64;
        let addr = TX_BUF + qa * 0x8000 + 0x800 * u64::from(head);
        self.mem.write_slice(&bytes, GuestAddress(addr)).unwrap();
        self.desc(qa, head, addr, bytes.len() as u32, 0);
        self.publish(qa, &[head]);
        self.kicks[q].write(1).unwrap();
    }

    /// Waits (up to 5 s) for the next received frame; returns it and whether the receive
    /// queue raised an interrupt for it (waiting up to 1 s for one if `expect_interrupt`).
    fn receive(&self, seen: u16, expect_interrupt: bool) -> (Vec<u8>, bool) {
        self.receive_on(0, seen, expect_interrupt)
    }

    /// [`Self::receive`] on receive queue `q`.
    fn receive_on(&self, q: usize, seen: u16, expect_interrupt: bool) -> (Vec<u8>, bool) {
        let qa = q as u64;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut interrupted = false;
        while self.used_idx(qa) == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no frame on receive queue {q} within 5 s");
            // An interrupt wakes us at once; with event index only the first reply raises one,
            // so look at the used ring again at least every 10 ms.
            interrupted |= self.wait_interrupt(q, left.min(Duration::from_millis(10)));
        }
        if expect_interrupt && !interrupted {
            interrupted = self.wait_interrupt(q, Duration::from_secs(1));
        }
        let at = ring(qa, USED) + 4 + 8 * u64::from(seen % QSIZE);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        let mut buf = vec![0u8; len as usize];
        self.mem
            .read_slice(
                &mut buf,
                GuestAddress(RX_BUFS + qa * 0x2000 + 0x800 * u64::from(id % 4)),
            )
            .unwrap();
        assert_eq!(u16::from_le_bytes([buf[10], buf[11]]), 1, "num_buffers");
        (buf.split_off(NET_HDR_LEN), interrupted)
    }

    /// Takes the next frame receive queue `q` delivered, if any, and posts its buffer again.
    fn try_next(&mut self, q: usize) -> Option<Vec<u8>> {
        let qa = q as u64;
        let seen = self.rx_seen[q];
        if self.used_idx(qa) == seen {
            return None;
        }
        self.rx_seen[q] = seen.wrapping_add(1);
        let at = ring(qa, USED) + 4 + 8 * u64::from(seen % QSIZE);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        let mut buf = vec![0u8; len as usize];
        self.mem
            .read_slice(
                &mut buf,
                GuestAddress(RX_BUFS + qa * 0x2000 + 0x800 * u64::from(id % 4)),
            )
            .unwrap();
        self.publish(qa, &[id as u16]);
        Some(buf.split_off(NET_HDR_LEN))
    }

    /// Waits (up to 5 s) for the next ARP reply on receive queue `q`, skipping the dataplane's
    /// own ARP requests for the guest's address; returns it and whether queue `q` raised an
    /// interrupt meanwhile.
    fn next_arp_reply(&mut self, q: usize) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut interrupted = false;
        loop {
            while let Some(frame) = self.try_next(q) {
                if frame.get(20..22) == Some(&[0, 2]) {
                    return (
                        frame,
                        interrupted || self.wait_interrupt(q, Duration::from_secs(1)),
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "no ARP reply on receive queue {q} within 5 s; used indices {:?}",
                (0..self.kicks.len() as u64)
                    .map(|q| self.used_idx(q))
                    .collect::<Vec<_>>()
            );
            interrupted |= self.wait_interrupt(q, Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for receive queue `q`'s call eventfd and consumes it.
    fn wait_interrupt(&self, q: usize, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.calls[q].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        self.calls[q].read().is_ok()
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

/// Waits (up to 5 s) until receive queues 0 and 2 together delivered `replies` ARP replies;
/// returns how many frames (replies and the dataplane's own requests) each delivered.
fn count_until_replies(d: &mut Driver, replies: usize) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut frames, mut got) = ([0usize; 2], 0);
    while got < replies {
        assert!(Instant::now() < deadline, "{got} of {replies} replies within 5 s");
        for (slot, q) in [(0, 0usize), (1, 2)] {
            while let Some(frame) = d.try_next(q) {
                frames[slot] += 1;
                got += usize::from(frame.get(20..22) == Some(&[0, 2]));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (frames[0], frames[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_queue_pairs_carry_frames_on_enabled_queues_only() {
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let topo = common::Topology::new();
    let dir = topo.dir.path().to_owned();
    let socket = dir.join("vumq.sock");
    let vf = PortSpec::parse(&format!(
        "vhost-user:{},device=net_tap0,queues=2",
        socket.display()
    ))
    .unwrap();
    assert_eq!(vf.queue_pairs, 2);
    let mut host = common::start_host_with(&format!("q{tag}"), 'a', "fc00:a::1", vec![vf]).await;
    host.vm("vm0", 100, "10.0.0.1", 0).await;
    let gw_mac = host.vfs[0].mac;
    let guest_mac = [0x52, 0x54, 0, 0x12, 0x34, 0x57];
    let guest_ip = [10, 0, 0, 1];
    let arp = arp_request(guest_mac, guest_ip);

    let file = tempfile::tempfile_in("/dev/shm").unwrap();
    file.set_len(MEM as u64).unwrap();
    let frontend = std::thread::spawn(move || {
        let features = VIRTIO_NET_F_MQ | VHOST_USER_F_PROTOCOL_FEATURES;
        let mut d = Driver::connect_pairs(&socket, &file, features, 2, |f| {
            let offered = f.get_protocol_features().unwrap();
            assert!(offered.contains(VhostUserProtocolFeatures::MQ), "{offered:?}");
            f.set_protocol_features(VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK)
                .unwrap();
            // Every request waits for the backend's ack, so a SET_VRING_ENABLE has taken
            // effect before the next frame is kicked (QEMU negotiates REPLY_ACK for the same reason).
            f.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        });

        // Queue pair 1's receive queue disabled: every answer, to frames from either transmit
        // queue, arrives on receive queue 0 with an interrupt there and none on queue 2.
        d.frontend.set_vring_enable(2, false).unwrap();
        for (k, tx) in [3usize, 3, 1].into_iter().enumerate() {
            d.transmit_on(tx, &arp);
            let (reply, interrupted) = d.next_arp_reply(0);
            assert!(interrupted, "an interrupt on receive queue 0 for reply {k}");
            check_arp_reply(&reply, guest_mac, guest_ip, gw_mac);
        }
        assert_eq!(
            (d.used_idx(3), d.used_idx(1)),
            (2, 1),
            "transmitted chains returned used"
        );
        assert_eq!(d.used_idx(2), 0, "nothing on the disabled receive queue");
        assert!(
            d.calls[2].read().is_err(),
            "no interrupt on the disabled receive queue"
        );

        // Now only pair 1's receive queue is enabled: the answers move there.
        d.frontend.set_vring_enable(0, false).unwrap();
        d.frontend.set_vring_enable(2, true).unwrap();
        while d.try_next(0).is_some() {}
        let before = d.used_idx(0);
        for k in 0..2 {
            d.transmit_on(3, &arp);
            let (reply, interrupted) = d.next_arp_reply(2);
            assert!(interrupted, "an interrupt on receive queue 2 for reply {k}");
            check_arp_reply(&reply, guest_mac, guest_ip, gw_mac);
        }
        assert_eq!(
            d.used_idx(0),
            before,
            "nothing more on the disabled receive queue 0"
        );

        // Both enabled: the frames of one flow (ARP) all take one receive queue, whichever
        // transmit queue the requests came in on.
        d.frontend.set_vring_enable(0, true).unwrap();
        for tx in [1usize, 3, 1] {
            d.transmit_on(tx, &arp);
        }
        let (q0, q2) = count_until_replies(&mut d, 3);
        assert!(
            (q0 >= 3 && q2 == 0) || (q0 == 0 && q2 >= 3),
            "one flow's frames on one receive queue: {q0} frames on queue 0, {q2} on queue 2"
        );

        // GET_QUEUE_NUM answers the queue pairs of `queues=2` (last: the frontend then limits
        // its ring indices to the answer).
        assert_eq!(d.frontend.get_queue_num().unwrap(), 2);
        drop(d.frontend);
    });
    frontend.join().expect("two-queue-pair frontend");
    host.service.shutdown().await;
    drop(topo);
}

#[test]
fn more_queue_pairs_than_the_maximum_are_refused() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ironnet_dpservice::DpServiceArgs,
    }
    let err = Cli::try_parse_from([
        "dpservice",
        "--pf0",
        "up0",
        "--ipv6",
        "fc00:1::1",
        "--vf",
        "vhost-user:/run/ironnet/vm0.sock,queues=17",
    ])
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("queues (queue pairs of a vhost-user port) must be 1..=16"),
        "{msg}"
    );
    let ok = Cli::try_parse_from([
        "dpservice",
        "--pf0",
        "up0",
        "--ipv6",
        "fc00:1::1",
        "--vf",
        "vhost-user:/run/ironnet/vm0.sock,queues=16",
    ])
    .unwrap();
    assert_eq!(ok.args.vfs[0].queue_pairs, 16);
}
