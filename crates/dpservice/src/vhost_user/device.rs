//! The virtio-net device state a vhost-user frontend (QEMU) configures: negotiated features,
//! the guest's memory table and the virtqueues (a receive and a transmit queue per queue pair). The vhost-user protocol itself (message
//! framing, fd passing, replies) is rust-vmm's `vhost` crate ([`vhost::vhost_user`]); this type
//! answers its requests, as upstream `vhost-user-backend`'s handler does, but without an event
//! thread of its own: the dataplane worker polls the kick fds and reads the rings itself.

use std::fs::File;
use std::io::{self, Write};

use vhost::VhostUserMemoryRegionBase;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig, VhostUserSharedMsg,
    VhostUserSingleMemoryRegion, VhostUserVirtioFeatures, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{Error, GpuBackend, Result, VhostUserBackendReqHandlerMut};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MQ, VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap};

/// Index of the receive queue (device → guest) of queue pair `pair` (virtio-net numbers the
/// queues receiveq1, transmitq1, receiveq2, …).
pub const fn rx_queue(pair: usize) -> usize {
    2 * pair
}
/// Index of the transmit queue (guest → device) of queue pair `pair`.
pub const fn tx_queue(pair: usize) -> usize {
    2 * pair + 1
}
/// Largest ring the frontend may configure (QEMU's `rx_queue_size`/`tx_queue_size` maximum).
pub const MAX_QUEUE_SIZE: u16 = 1024;
/// Size of `struct virtio_net_hdr_v1` (with `num_buffers`): with `VIRTIO_F_VERSION_1` every
/// frame in either direction starts with it.
pub const NET_HDR_LEN: usize = 12;
/// Memory regions QEMU may add one by one (`VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS` is not
/// offered, so this only answers GET_MAX_MEM_SLOTS).
const MAX_MEM_SLOTS: u64 = 32;

/// The virtio features the port offers: virtio 1.0, indirect descriptors, event-index
/// notification suppression, checksum and TSO offload in both directions, mergeable receive
/// buffers, multi-queue (`VIRTIO_NET_F_MQ`: QEMU passes it to the guest only for a device
/// with `mq=on`, and keeps the control queue that selects the queue pairs itself), and `VHOST_USER_F_PROTOCOL_FEATURES` (QEMU refuses to start a vhost-user net device
/// whose backend lacks it: its `vhost_user_set_vring_enable` fails with EINVAL, and QEMU 7.2's
/// `vhost_net_start` gives up, "unable to start vhost net: 22").
pub fn offered_features() -> u64 {
    [
        VIRTIO_F_VERSION_1,
        VIRTIO_RING_F_INDIRECT_DESC,
        VIRTIO_RING_F_EVENT_IDX,
        VIRTIO_NET_F_CSUM,
        VIRTIO_NET_F_GUEST_CSUM,
        VIRTIO_NET_F_GUEST_TSO4,
        VIRTIO_NET_F_GUEST_TSO6,
        VIRTIO_NET_F_HOST_TSO4,
        VIRTIO_NET_F_HOST_TSO6,
        VIRTIO_NET_F_MRG_RXBUF,
        VIRTIO_NET_F_MQ,
    ]
    .into_iter()
    .fold(VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits(), |acc, bit| {
        acc | 1u64 << bit
    })
}

/// One virtqueue and its eventfds.
#[derive(Debug)]
pub struct Vring {
    /// The split ring in guest memory (addresses, size, next avail/used indices).
    pub queue: Queue,
    /// Signalled by the guest when it adds buffers (if it has not suppressed kicks).
    pub kick: Option<File>,
    /// Signalled by us to interrupt the guest.
    pub call: Option<File>,
    /// Started: the frontend sent the kick fd and has not stopped the ring with GET_VRING_BASE.
    pub started: bool,
    /// Enabled: by SET_FEATURES, then toggled by SET_VRING_ENABLE.
    pub enabled: bool,
    /// What the frontend's last SET_VRING_ENABLE said since the ring last stopped, if any.
    requested: Option<bool>,
}

impl Vring {
    fn new() -> Self {
        Vring {
            // MAX_QUEUE_SIZE is a power of two, which is all Queue::new checks.
            queue: Queue::new(MAX_QUEUE_SIZE).unwrap_or_else(|_| unreachable!("valid queue size")),
            kick: None,
            call: None,
            started: false,
            enabled: false,
            requested: None,
        }
    }

    /// Whether the dataplane may move buffers on this ring.
    pub fn active(&self) -> bool {
        self.started && self.enabled && self.queue.ready()
    }

    /// Interrupts the guest (writes the call eventfd).
    pub fn signal(&self) {
        if let Some(mut call) = self.call.as_ref() {
            // A full eventfd counter (EAGAIN) still means "pending interrupt", which is all
            // the guest needs; other errors mean the frontend went away.
            let _ = call.write(&1u64.to_ne_bytes());
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    vmm_addr: u64,
    size: u64,
    gpa: u64,
}

/// The device state behind one vhost-user socket. Reset to its initial state when the frontend
/// disconnects, so that the next frontend (a restarted QEMU) starts from scratch.
#[derive(Debug)]
pub struct NetDevice {
    /// The guest's memory as mapped from the frontend's memory table.
    pub mem: Option<GuestMemoryMmap>,
    mappings: Vec<Mapping>,
    /// Receive and transmit queue of each pair, at [`rx_queue`] and [`tx_queue`].
    pub vrings: Vec<Vring>,
    queue_pairs: usize,
    /// Features the driver accepted (SET_FEATURES).
    pub acked_features: u64,
    acked_protocol_features: u64,
}

impl NetDevice {
    /// A device with `queue_pairs` queue pairs (at least one) no frontend has configured yet.
    pub fn new(queue_pairs: usize) -> Self {
        let queue_pairs = queue_pairs.max(1);
        NetDevice {
            mem: None,
            mappings: Vec::new(),
            vrings: (0..2 * queue_pairs).map(|_| Vring::new()).collect(),
            queue_pairs,
            acked_features: 0,
            acked_protocol_features: 0,
        }
    }

    /// The queue pairs offered (answered to GET_QUEUE_NUM).
    pub fn queue_pairs(&self) -> usize {
        self.queue_pairs
    }

    /// Whether the driver accepted virtio feature bit `bit`.
    pub fn has_feature(&self, bit: u32) -> bool {
        self.acked_features & (1u64 << bit) != 0
    }

    fn vring(&mut self, index: u32) -> Result<&mut Vring> {
        self.vrings.get_mut(index as usize).ok_or(Error::InvalidParam)
    }

    fn vmm_va_to_gpa(&self, va: u64) -> Result<u64> {
        self.mappings
            .iter()
            .find(|m| va >= m.vmm_addr && va - m.vmm_addr < m.size)
            .map(|m| va - m.vmm_addr + m.gpa)
            .ok_or(Error::InvalidParam)
    }

    fn map_region(region: &VhostUserMemoryRegion, file: File) -> Result<(GuestRegionMmap, Mapping)> {
        let guest = GuestRegionMmap::new(region.mmap_region(file)?, GuestAddress(region.guest_phys_addr))
            .ok_or_else(|| Error::ReqHandlerError(io::ErrorKind::InvalidInput.into()))?;
        let mapping = Mapping {
            vmm_addr: region.user_addr,
            size: region.memory_size,
            gpa: region.guest_phys_addr,
        };
        Ok((guest, mapping))
    }
}

fn unsupported<T>(what: &'static str) -> Result<T> {
    Err(Error::InvalidOperation(what))
}

impl VhostUserBackendReqHandlerMut for NetDevice {
    fn set_owner(&mut self) -> Result<()> {
        // QEMU sets up each queue pair as a vhost device of its own on the one connection, and
        // each sends SET_OWNER; the connection is the owner either way (as in DPDK's vhost).
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        *self = NetDevice::new(self.queue_pairs);
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        for v in &mut self.vrings {
            v.enabled = false;
        }
        self.acked_features = 0;
        Ok(())
    }

    fn get_features(&mut self) -> Result<u64> {
        Ok(offered_features())
    }

    fn set_features(&mut self, features: u64) -> Result<()> {
        if features & !offered_features() != 0 {
            return Err(Error::InvalidParam);
        }
        self.acked_features = features;
        // Rings run once started: without VHOST_USER_F_PROTOCOL_FEATURES that is the protocol's
        // rule ("Ring states"); with it they would start disabled until SET_VRING_ENABLE, but
        // QEMU 7.2 (`vhost_net_start`) sends its SET_VRING_ENABLE before SET_FEATURES, and the
        // `vhost` crate refuses an enable before the feature is acked without passing it on, so
        // waiting for it would leave the port dead. A later SET_VRING_ENABLE 0 still disables.
        // With several queue pairs QEMU sends SET_FEATURES once per pair, possibly after it
        // disabled the pairs the guest does not use: a ring keeps what SET_VRING_ENABLE said.
        let event_idx = self.has_feature(VIRTIO_RING_F_EVENT_IDX);
        for v in &mut self.vrings {
            v.enabled = v.requested.unwrap_or(true);
            v.queue.set_event_idx(event_idx);
        }
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        postcopy_listening: Option<bool>,
    ) -> Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        if postcopy_listening.is_some() {
            return unsupported("postcopy");
        }
        let mut regions = Vec::with_capacity(ctx.len());
        let mut mappings = Vec::with_capacity(ctx.len());
        for (region, file) in ctx.iter().zip(files) {
            let (guest, mapping) = Self::map_region(region, file)?;
            regions.push(guest);
            mappings.push(mapping);
        }
        let mem = GuestMemoryMmap::from_regions(regions)
            .map_err(|e| Error::ReqHandlerError(io::Error::other(e)))?;
        self.mem = Some(mem);
        self.mappings = mappings;
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        let v = self.vring(index)?;
        let size = u16::try_from(num).map_err(|_| Error::InvalidParam)?;
        v.queue.try_set_size(size).map_err(|_| Error::InvalidParam)
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> Result<()> {
        let desc = self.vmm_va_to_gpa(descriptor)?;
        let avail = self.vmm_va_to_gpa(available)?;
        let used = self.vmm_va_to_gpa(used)?;
        let mem = self.mem.clone();
        let v = self.vring(index)?;
        let q = &mut v.queue;
        q.try_set_desc_table_address(GuestAddress(desc))
            .and_then(|()| q.try_set_avail_ring_address(GuestAddress(avail)))
            .and_then(|()| q.try_set_used_ring_address(GuestAddress(used)))
            .map_err(|_| Error::InvalidParam)?;
        // SET_VRING_BASE restores only the avail index; the used index is the guest's (after a
        // guest driver reset it is 0 again), as libvhost-user does.
        if let Some(mem) = mem {
            let used_idx = q
                .used_idx(&mem, std::sync::atomic::Ordering::Acquire)
                .map_err(|_| Error::InvalidParam)?;
            q.set_next_used(used_idx.0);
        }
        Ok(())
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        let v = self.vring(index)?;
        // A split ring's avail index is 16 bits; a larger base (a packed ring's wrap counter, which
        // is not offered) is refused rather than truncated.
        let base = u16::try_from(base).map_err(|_| Error::InvalidParam)?;
        v.queue.set_next_avail(base);
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        let v = self.vring(index)?;
        // "stop ring upon receiving VHOST_USER_GET_VRING_BASE"
        v.started = false;
        v.requested = None;
        v.queue.set_ready(false);
        v.kick = None;
        v.call = None;
        Ok(VhostUserVringState::new(index, u32::from(v.queue.next_avail())))
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        let v = self.vring(u32::from(index))?;
        // A ring starts when its kick fd arrives.
        v.started = fd.is_some();
        v.queue.set_ready(fd.is_some());
        v.kick = fd;
        Ok(())
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        self.vring(u32::from(index))?.call = fd;
        Ok(())
    }

    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        // We never report ring errors; the fd is closed right away.
        self.vring(u32::from(index)).map(|_| ())
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        Ok(VhostUserProtocolFeatures::REPLY_ACK | VhostUserProtocolFeatures::MQ)
    }

    fn set_protocol_features(&mut self, features: u64) -> Result<()> {
        self.acked_protocol_features = features;
        Ok(())
    }

    fn get_queue_num(&mut self) -> Result<u64> {
        // Queue pairs, as QEMU's vhost-user netdev reads it (net/vhost-user.c `vhost_user_start`
        // refuses its `queues=N` above the answer: "you are asking more queues than supported")
        // and DPDK's vhost answers it. rust-vmm's frontend takes it as a ring count instead.
        Ok(self.queue_pairs as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        if self.acked_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() == 0 {
            return Err(Error::InactiveFeature(VhostUserVirtioFeatures::PROTOCOL_FEATURES));
        }
        let v = self.vring(index)?;
        v.enabled = enable;
        v.requested = Some(enable);
        Ok(())
    }

    fn get_config(&mut self, _offset: u32, _size: u32, _flags: VhostUserConfigFlags) -> Result<Vec<u8>> {
        // VHOST_USER_PROTOCOL_F_CONFIG is not offered: QEMU keeps virtio-net's config space.
        unsupported("config space")
    }

    fn set_config(&mut self, _offset: u32, _buf: &[u8], _flags: VhostUserConfigFlags) -> Result<()> {
        unsupported("config space")
    }

    fn set_gpu_socket(&mut self, _gpu_backend: GpuBackend) -> Result<()> {
        unsupported("gpu socket")
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> Result<File> {
        unsupported("shared objects")
    }

    fn get_inflight_fd(&mut self, _inflight: &VhostUserInflight) -> Result<(VhostUserInflight, File)> {
        unsupported("inflight tracking")
    }

    fn set_inflight_fd(&mut self, _inflight: &VhostUserInflight, _file: File) -> Result<()> {
        unsupported("inflight tracking")
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        Ok(MAX_MEM_SLOTS)
    }

    fn add_mem_region(
        &mut self,
        _region: &VhostUserSingleMemoryRegion,
        _fd: File,
        _postcopy_listening: Option<bool>,
    ) -> Result<Option<VhostUserMemoryRegionBase>> {
        unsupported("memory slots")
    }

    fn remove_mem_region(&mut self, _region: &VhostUserSingleMemoryRegion) -> Result<()> {
        unsupported("memory slots")
    }

    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> Result<Option<File>> {
        unsupported("device state migration")
    }

    fn check_device_state(&mut self) -> Result<()> {
        unsupported("device state migration")
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        unsupported("shared memory regions")
    }

    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> Result<()> {
        unsupported("dirty page logging")
    }
}
