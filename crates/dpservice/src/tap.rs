//! Linux TAP devices as dataplane ports.
//!
//! The service creates every port itself: it opens `/dev/net/tun`, attaches a TAP netdev with
//! `TUNSETIFF` (`IFF_TAP | IFF_NO_PI`, so each read/write is exactly one Ethernet frame), sets
//! the netdev's MAC with `SIOCSIFHWADDR` and brings it up. The fd is non-blocking and owned by
//! [`TapDevice`]; the device is not persistent, so the kernel removes the netdev when the fd is
//! closed (on drop), even if the netdev has been moved into another network namespace.
//!
//! VM-facing ports are opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD` (checksum, TSO for IPv4
//! and IPv6): every read and write then starts with a 10-byte little-endian `virtio_net_hdr`
//! (see [`crate::offload`]), and the VM's stack hands over partially checksummed TCP
//! super-frames of up to 64 KiB instead of 1500-byte segments, as it does behind a virtio NIC.
//! The uplink ports carry plain frames. Every TAP gets a longer queue ([`TX_QUEUE_LEN`]) than
//! the kernel's default 500 frames, so a burst the worker has not read yet is not dropped.
//!
//! "Port up" towards the VM is modelled with the TAP carrier (`TUNSETCARRIER`), not the admin
//! state: the admin state belongs to whoever owns the netdev's namespace (moving a netdev to a VM
//! namespace takes it down), while the carrier is a property of the fd we keep.

use std::ffi::c_int;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Longest netdev name (IFNAMSIZ minus the terminating NUL).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Frames the kernel queues on a TAP for the worker to read (the netdev's `txqueuelen`).
pub const TX_QUEUE_LEN: c_int = 4096;

/// Why a TAP device could not be created or configured.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name is empty, too long, or contains `/`, whitespace or NUL.
    #[error("invalid TAP device name {0:?}")]
    InvalidName(String),
    /// The MAC is multicast or all-zero.
    #[error("invalid TAP MAC address {0}")]
    InvalidMac(String),
    /// A system call failed.
    #[error("{op} on TAP device {name}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The device name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits, `:` or `-` separated).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct (arrays and a union of integers/sockaddrs/pointers) for
    // which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

/// A control socket for netdev ioctls (SIOCSIFHWADDR, SIOCxIFFLAGS) that take an interface name.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory-safety preconditions; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One TAP netdev and the fd through which the dataplane sends and receives its frames.
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    name: String,
    mac: [u8; 6],
    vnet: bool,
}

impl TapDevice {
    /// Creates the TAP netdev `name` with MAC `mac`, sets it administratively up, and returns it
    /// with a non-blocking fd. The carrier starts as `carrier` (see [`TapDevice::set_carrier`]).
    ///
    /// Fails with [`TapError::InvalidName`] / [`TapError::InvalidMac`] before touching the system,
    /// and with [`TapError::Io`] if the name is taken or the caller lacks CAP_NET_ADMIN; on error
    /// nothing is left behind (the fd is closed, so the netdev disappears).
    ///
    /// With `offload`, the device is a VM-facing port with a vnet header and checksum/TSO offload
    /// (see the module documentation): use [`TapDevice::recv`] / [`TapDevice::send_vnet`] with
    /// the header in front of the frame.
    pub fn create(name: &str, mac: [u8; 6], carrier: bool, offload: bool) -> Result<Self, TapError> {
        if !valid_name(name) {
            return Err(TapError::InvalidName(name.to_owned()));
        }
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(TapError::InvalidMac(format_mac(mac)));
        }
        let io_err = |op: &'static str| {
            let name = name.to_owned();
            move |source: io::Error| TapError::Io { op, name, source }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(io_err("open /dev/net/tun"))?;
        let mut req = ifreq_for(name);
        let vnet = if offload { libc::IFF_VNET_HDR } else { 0 };
        // Truncation impossible: the IFF_* flags are below 0x8000 (the kernel's `ifr_flags` is a short).
        #[allow(clippy::cast_possible_truncation)]
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI | vnet) as libc::c_short;
        req.ifr_ifru.ifru_flags = flags;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` is a valid, initialised
        // ifreq that lives for the whole call, and the fd is a tun control fd.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(io_err("TUNSETIFF")(io::Error::last_os_error()));
        }
        let tap = TapDevice {
            file,
            name: name.to_owned(),
            mac,
            vnet: offload,
        };
        if offload {
            tap.enable_offload()?;
        }
        tap.set_tx_queue_len()?;
        tap.set_carrier(carrier)?;
        tap.set_mac(mac)?;
        tap.set_admin_up()?;
        Ok(tap)
    }

    /// Whether every frame read and written carries a `virtio_net_hdr` in front.
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    fn enable_offload(&self) -> Result<(), TapError> {
        let fd = self.file.as_raw_fd();
        let le: c_int = 1;
        // SAFETY: TUNSETVNETLE reads one `int` through the pointer, which points to a live local.
        if unsafe { libc::ioctl(fd, libc::TUNSETVNETLE, &le) } < 0 {
            return Err(self.io("TUNSETVNETLE", io::Error::last_os_error()));
        }
        // Truncation impossible: the vnet header is 10 bytes.
        #[allow(clippy::cast_possible_truncation)]
        let size = crate::offload::VNET_HDR_LEN as c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer, which points to a live
        // local.
        if unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &size) } < 0 {
            return Err(self.io("TUNSETVNETHDRSZ", io::Error::last_os_error()));
        }
        let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes the feature bits as the ioctl argument itself, no pointer.
        if unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(features)) } < 0 {
            return Err(self.io("TUNSETOFFLOAD", io::Error::last_os_error()));
        }
        Ok(())
    }

    fn set_tx_queue_len(&self) -> Result<(), TapError> {
        let sock = control_socket().map_err(|source| self.io("socket", source))?;
        let mut req = ifreq_for(&self.name);
        req.ifr_ifru.ifru_metric = TX_QUEUE_LEN;
        // SAFETY: SIOCSIFTXQLEN reads the `struct ifreq` we pass (its int member holds the
        // queue length); `req` is valid for the whole call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFTXQLEN, &mut req) };
        if rc < 0 {
            return Err(self.io("SIOCSIFTXQLEN", io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The netdev's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The netdev's MAC (the port's own MAC).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn set_mac(&self, mac: [u8; 6]) -> Result<(), TapError> {
        let sock = control_socket().map_err(|source| self.io("socket", source))?;
        let mut req = ifreq_for(&self.name);
        let mut sa_data = [0 as libc::c_char; 14];
        for (dst, src) in sa_data.iter_mut().zip(mac) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_hwaddr = libc::sockaddr {
            sa_family: libc::ARPHRD_ETHER,
            sa_data,
        };
        // SAFETY: SIOCSIFHWADDR reads a `struct ifreq` whose union holds a sockaddr; `req` is
        // valid for the whole call and the socket is an open AF_INET socket.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR, &mut req) };
        if rc < 0 {
            return Err(self.io("SIOCSIFHWADDR", io::Error::last_os_error()));
        }
        Ok(())
    }

    fn set_admin_up(&self) -> Result<(), TapError> {
        let sock = control_socket().map_err(|source| self.io("socket", source))?;
        let mut req = ifreq_for(&self.name);
        // SAFETY: SIOCGIFFLAGS writes the flags into the `struct ifreq` we pass, valid for the call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        if rc < 0 {
            return Err(self.io("SIOCGIFFLAGS", io::Error::last_os_error()));
        }
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel initialised the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        // Truncation impossible: IFF_UP is 1.
        #[allow(clippy::cast_possible_truncation)]
        let up = libc::IFF_UP as libc::c_short;
        req.ifr_ifru.ifru_flags = flags | up;
        // SAFETY: SIOCSIFFLAGS reads the `struct ifreq` we pass, valid for the whole call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) };
        if rc < 0 {
            return Err(self.io("SIOCSIFFLAGS", io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Sets the carrier the VM side sees: a VF port has carrier only while an interface is bound
    /// to it (dpservice starts the port on CreateInterface and stops it on DeleteInterface).
    pub fn set_carrier(&self, on: bool) -> Result<(), TapError> {
        let value: c_int = on.into();
        // SAFETY: TUNSETCARRIER reads one `int` through the pointer, which points to a live local.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETCARRIER, &value) };
        if rc < 0 {
            return Err(self.io("TUNSETCARRIER", io::Error::last_os_error()));
        }
        Ok(())
    }

    fn io(&self, op: &'static str, source: io::Error) -> TapError {
        TapError::Io {
            op,
            name: self.name.clone(),
            source,
        }
    }

    /// Reads one frame into `buf` (with its vnet header in front if [`TapDevice::vnet`]).
    /// Returns `Ok(None)` when no frame is queued. A frame longer than `buf` is truncated by the
    /// kernel.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match (&self.file).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one plain frame, with an empty vnet header in front if the device has one (the
    /// VM's stack then verifies the checksums itself). Returns `Ok(false)` when the device queue
    /// is full, like [`TapDevice::send_raw`].
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        if self.vnet {
            let hdr = [0u8; crate::offload::VNET_HDR_LEN];
            self.send_vnet(&hdr, frame)
        } else {
            self.send_raw(frame)
        }
    }

    /// Writes `hdr` (a vnet header) and `frame` as one frame with a single `writev`; only for a
    /// device with [`TapDevice::vnet`].
    pub fn send_vnet(&self, hdr: &[u8], frame: &[u8]) -> io::Result<bool> {
        match (&self.file).write_vectored(&[IoSlice::new(hdr), IoSlice::new(frame)]) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes one buffer as is (a frame, preceded by its vnet header if the device has one).
    /// Returns `Ok(false)` when the device queue is full and the frame was not
    /// sent (the caller drops it, like a NIC with a full TX ring). With no reader on the netdev
    /// side (carrier off or netdev down) the kernel may also discard the frame silently.
    pub fn send_raw(&self, frame: &[u8]) -> io::Result<bool> {
        match (&self.file).write(frame) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_round_trips_and_rejects_garbage() {
        let mac = [0x02, 0x00, 0xab, 0xcd, 0x01, 0xff];
        assert_eq!(parse_mac(&format_mac(mac)), Some(mac));
        assert_eq!(parse_mac("02-00-ab-cd-01-ff"), Some(mac));
        for bad in [
            "",
            "02:00:ab:cd:01",
            "02:00:ab:cd:01:ff:00",
            "02:00:ab:cd:01:fg",
            "2:00:ab:cd:01:ff",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn invalid_names_and_macs_are_rejected_before_any_syscall() {
        let mac = [0x02, 0, 0, 0, 0, 1];
        for name in ["", "a/b", "with space", "0123456789abcdef", ".."] {
            assert!(
                matches!(
                    TapDevice::create(name, mac, true, false),
                    Err(TapError::InvalidName(_))
                ),
                "{name}"
            );
        }
        assert!(matches!(
            TapDevice::create("ok0", [1, 0, 0, 0, 0, 1], true, true),
            Err(TapError::InvalidMac(_))
        ));
        assert!(matches!(
            TapDevice::create("ok0", [0; 6], true, true),
            Err(TapError::InvalidMac(_))
        ));
    }
}
