//! Real QEMU guests (KVM, or TCG where KVM cannot run them: [`accel`]) on vhost-user ports: Debian's QEMU, the `linux-image-cloud-amd64` kernel and a
//! busybox initramfs built here (nothing downloaded). The guest's serial console is QEMU's
//! stdin/stdout; the test types shell commands and waits for markers in the output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kernel modules the guest loads, with their dependencies from `modules.dep` (absent ones are
/// built in).
const MODULES: &[&str] = &["virtio_pci", "virtio_net"];

/// Busybox applets linked in the initramfs.
const APPLETS: &[&str] = &[
    "sh", "mount", "insmod", "ip", "udhcpc", "ping", "nc", "echo", "cat", "sleep", "seq", "wc", "head", "dd",
    "kill", "timeout", "sync", "poweroff", "true", "uname", "grep", "pidof",
];

/// How QEMU runs the guests' CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM (`-enable-kvm -cpu host`), with MSI-X interrupts.
    Kvm,
    /// QEMU's TCG emulation (`-accel tcg -cpu max`): slow, but needs no hypervisor support.
    /// The NIC gets no MSI-X vectors (`vectors=0`, legacy INTx): with MSI-X QEMU 7.2 wires a
    /// vhost device's guest notifiers through KVM irqfds even under TCG and crashes in
    /// `msix_set_vector_notifiers`.
    Tcg,
}

/// The accelerator the guests use: `IRONNET_GUEST_ACCEL=kvm|tcg` if set; otherwise KVM where
/// `/dev/kvm` runs an unmodified guest kernel, TCG elsewhere.
///
/// A `/dev/kvm` provided by PVM (module `kvm_pvm`, a pagetable-based nested hypervisor without
/// VMX, as in some cloud sandboxes) runs only guest kernels built for PVM: Debian's kernel stops
/// in its decompressor with "KVM internal error. Suberror: 1 … emulation failure" (on
/// `lock cmpxchg16b`), and Debian ships no PVM guest kernel. There the guests run under TCG.
pub fn accel() -> Accel {
    match std::env::var("IRONNET_GUEST_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        Ok(other) => panic!("IRONNET_GUEST_ACCEL={other}: expected kvm or tcg"),
        Err(_) => {}
    }
    if Path::new("/dev/kvm").exists() && !Path::new("/sys/module/kvm_pvm").exists() {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

impl Accel {
    /// How much longer than under KVM guest-side work takes (boot, DHCP, commands).
    pub fn slowdown(self) -> u32 {
        match self {
            Accel::Kvm => 1,
            Accel::Tcg => 4,
        }
    }
}

/// Whether the host kernel offers vhost-net (`/dev/vhost-net`), the kernel's in-kernel
/// virtio-net backend for TAP-attached guests.
pub fn vhost_net_available() -> bool {
    Path::new("/dev/vhost-net").exists()
}

/// A kernel and an initramfs to boot guests from.
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Where QEMU's stderr of each guest goes (`<name>.qemu.log`).
    pub dir: PathBuf,
}

fn find_kernel() -> (PathBuf, String) {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .expect("/boot")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64"))
        })
        .collect();
    kernels.sort();
    let kernel = kernels
        .pop()
        .expect("a /boot/vmlinuz-*-cloud-amd64 (Debian's linux-image-cloud-amd64; scripts/test installs it)");
    let version = kernel.file_name().unwrap().to_str().unwrap()["vmlinuz-".len()..].to_owned();
    (kernel, version)
}

fn copy_with_libs(root: &Path, binary: &str) {
    let copy = |src: &Path| {
        let dst = root.join(src.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    };
    copy(Path::new(binary));
    let out = Command::new("ldd").arg(binary).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libx.so => /lib/.../libx.so (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(p) = path {
            copy(Path::new(p));
        }
    }
}

impl GuestImage {
    /// Builds the initramfs in `dir`: static busybox, the virtio-net modules of the cloud
    /// kernel, iperf3 with its libraries, an `/init` that loads the modules and starts a shell
    /// on the console, and a udhcpc script that configures the lease like the dataplane's
    /// DHCP server intends (/32, gateway 169.254.0.1) and prints `LEASE <ip>`.
    pub fn build(dir: &Path) -> GuestImage {
        let (kernel, version) = find_kernel();
        let root = dir.join("initramfs");
        for d in ["bin", "dev", "proc", "sys", "tmp", "lib/modules", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox (Debian's busybox-static; scripts/test installs it)");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let moddir = PathBuf::from(format!("/lib/modules/{version}"));
        let dep = std::fs::read_to_string(moddir.join("modules.dep")).unwrap();
        // modules.dep: "path: dep1 dep2 …", dependencies listed last-loaded-first.
        let deps: std::collections::HashMap<&str, Vec<&str>> = dep
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(m, d)| (m, d.split_whitespace().collect()))
            .collect();
        fn load_order<'a>(
            m: &'a str,
            deps: &std::collections::HashMap<&'a str, Vec<&'a str>>,
            out: &mut Vec<&'a str>,
        ) {
            if out.contains(&m) {
                return;
            }
            for d in deps.get(m).into_iter().flatten().rev() {
                load_order(d, deps, out);
            }
            out.push(m);
        }
        let mut order = Vec::new();
        for m in MODULES {
            let suffix = format!("/{m}.ko");
            if let Some(path) = deps.keys().find(|p| p.ends_with(&suffix)) {
                load_order(path, &deps, &mut order);
            }
        }
        let mut loaded = Vec::new();
        for rel in order {
            let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
            std::fs::copy(moddir.join(rel), root.join("lib/modules").join(name)).unwrap();
            loaded.push(name.trim_end_matches(".ko").to_owned());
        }
        if Path::new("/usr/bin/iperf3").exists() {
            copy_with_libs(&root, "/usr/bin/iperf3");
        }
        let init = format!(
            "#!/bin/sh\n\
             export PATH=/bin:/usr/bin\n\
             mount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n\
             for m in {}; do insmod /lib/modules/$m.ko; done\n\
             ip link set lo up\nip link set eth0 up\n\
             echo @@BOOTED\n\
             exec sh\n",
            loaded.join(" ")
        );
        let dhcp = "#!/bin/sh\n\
                    case \"$1\" in bound|renew)\n\
                    ip addr flush dev $interface\n\
                    ip addr add $ip/32 dev $interface\n\
                    ip route add 169.254.0.0/16 dev $interface\n\
                    ip route add default via 169.254.0.1 dev $interface onlink\n\
                    echo LEASE $ip;;\n\
                    esac\n";
        for (name, text) in [("init", init.as_str()), ("bin/dhcp-script", dhcp)] {
            let p = root.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let initrd = dir.join("initramfs.cpio");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd {} && find . | cpio -o -H newc --quiet > {}",
                root.display(),
                initrd.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cpio (Debian's cpio): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        GuestImage {
            kernel,
            initrd,
            dir: dir.to_owned(),
        }
    }
}

/// What backs a guest's virtio-net device.
#[derive(Debug, Clone, Copy)]
pub enum Nic<'a> {
    /// A vhost-user socket (the dataplane) and the queue pairs to use (QEMU's `queues=N`;
    /// more than one turns on the device's `mq`).
    VhostUser(&'a Path, usize),
    /// A TAP device `ifname` that QEMU creates in namespace `netns`, with vhost-net if
    /// [`vhost_net_available`].
    Tap { netns: &'a str, ifname: &'a str },
}

/// A running guest. Drop kills QEMU.
pub struct Guest {
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    output: mpsc::Receiver<Vec<u8>>,
    /// Console output not consumed by a wait yet.
    pending: String,
    /// Everything the console printed (for failure messages).
    pub log: String,
    qemu_log: PathBuf,
    seq: u32,
    /// Timeouts are multiplied by this (see [`Accel::slowdown`]).
    slowdown: u32,
}

impl Guest {
    /// Boots a guest whose NIC (MAC `mac`) is a virtio-net device backed by the vhost-user
    /// socket `socket`, and waits until its shell is up.
    pub fn boot(image: &GuestImage, name: &str, socket: &Path, mac: &str) -> Guest {
        Self::boot_nic(image, name, Nic::VhostUser(socket, 1), mac)
    }

    /// Boots a guest with the given NIC backend and waits until its shell is up.
    pub fn boot_nic(image: &GuestImage, name: &str, nic: Nic<'_>, mac: &str) -> Guest {
        let mut cmd = match nic {
            Nic::VhostUser(..) => Command::new("qemu-system-x86_64"),
            Nic::Tap { netns, .. } => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, "qemu-system-x86_64"]);
                c
            }
        };
        let accel = accel();
        match accel {
            Accel::Kvm => cmd.args(["-enable-kvm", "-cpu", "host"]),
            Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
        };
        // One vCPU per queue pair: Linux's virtio-net runs min(vCPUs, queue pairs) pairs.
        let vcpus = match nic {
            Nic::VhostUser(_, queues) => queues.max(1),
            Nic::Tap { .. } => 1,
        };
        cmd.args(["-M", "pc", "-smp", &vcpus.to_string(), "-m", "256"])
            .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
            .args(["-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con"])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .args(["-append", "console=ttyS0 quiet panic=-1"])
            // vhost-user needs the guest's memory shared with the backend (memfd).
            .args(["-object", "memory-backend-memfd,id=mem,size=256M,share=on"])
            .args(["-numa", "node,memdev=mem"]);
        match nic {
            Nic::VhostUser(socket, queues) => {
                cmd.arg("-chardev")
                    .arg(format!("socket,id=vu,path={},reconnect=1", socket.display()))
                    .arg("-netdev")
                    .arg(format!("vhost-user,id=n0,chardev=vu,queues={queues}"));
            }
            Nic::Tap { ifname, .. } => {
                // vhost-net where the host kernel has it; QEMU's own virtio-net loop otherwise
                // (QEMU 7.2 aborts on `vhost=on` without /dev/vhost-net instead of falling back).
                let vhost = if vhost_net_available() { "on" } else { "off" };
                cmd.arg("-netdev").arg(format!(
                    "tap,id=n0,ifname={ifname},script=no,downscript=no,vhost={vhost}"
                ));
            }
        }
        let vectors = match accel {
            Accel::Kvm => "",
            Accel::Tcg => ",vectors=0",
        };
        let mq = match nic {
            Nic::VhostUser(_, queues) if queues > 1 => ",mq=on",
            _ => "",
        };
        cmd.args([
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac={mac},mrg_rxbuf=on{vectors}{mq}"),
        ]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(image.dir.join(format!("{name}.qemu.log"))).unwrap())
            .spawn()
            .expect("qemu-system-x86_64 (Debian's qemu-system-x86; scripts/test installs it)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut g = Guest {
            name: name.to_owned(),
            child,
            stdin,
            output: rx,
            pending: String::new(),
            log: String::new(),
            qemu_log: image.dir.join(format!("{name}.qemu.log")),
            seq: 0,
            slowdown: accel.slowdown(),
        };
        g.wait_for("@@BOOTED", Duration::from_secs(30));
        g
    }

    /// Waits until the console prints `marker`; returns the output before it (and consumes it).
    /// Under TCG the timeout is stretched by [`Accel::slowdown`].
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> String {
        let timeout = timeout * self.slowdown;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.pending.find(marker) {
                let before = self.pending[..at].to_owned();
                self.pending.drain(..at + marker.len());
                return before;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => {
                    let text = String::from_utf8_lossy(&chunk).replace('\r', "");
                    self.log.push_str(&text);
                    self.pending.push_str(&text);
                }
                Err(e) => panic!(
                    "guest {}: no {marker:?} ({}); console:\n{}\nQEMU ({:?}): {}",
                    self.name,
                    match e {
                        mpsc::RecvTimeoutError::Timeout => format!("not within {timeout:?}"),
                        mpsc::RecvTimeoutError::Disconnected => "QEMU closed the console".to_owned(),
                    },
                    self.log,
                    self.child.try_wait(),
                    std::fs::read_to_string(&self.qemu_log).unwrap_or_default()
                ),
            }
        }
    }

    /// Runs a shell command line in the guest and waits (up to `timeout`) for it to finish;
    /// returns its exit status and output. The end marker is assembled by the shell
    /// (`"@@""E…"`), so the terminal's echo of the command line never matches it.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> (i32, String) {
        self.seq += 1;
        let marker = format!("@@E{}:", self.seq);
        let line = format!("{cmd}; echo \"@@\"\"E{}:$?\"\n", self.seq);
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        let out = self.wait_for(&marker, timeout);
        let status = self.wait_for("\n", Duration::from_secs(5));
        (status.trim().parse().unwrap_or(-1), out)
    }

    /// Like [`Guest::run`], asserting success.
    pub fn ok(&mut self, cmd: &str, timeout: Duration) -> String {
        let (status, out) = self.run(cmd, timeout);
        assert_eq!(
            status,
            0,
            "guest {}: `{cmd}` failed:\n{out}\nQEMU: {}",
            self.name,
            std::fs::read_to_string(&self.qemu_log).unwrap_or_default()
        );
        out
    }

    /// Starts a command in the background (its output is discarded).
    pub fn spawn(&mut self, cmd: &str) {
        self.ok(&format!("({cmd} >/dev/null 2>&1 &)"), Duration::from_secs(5));
    }

    /// Starts a TCP server `cmd` in the background and waits until a socket listens on `port`
    /// (in the guest's /proc/net/tcp or tcp6), so a client started next finds it.
    /// A server of an earlier run still winding down is waited for first, so that the wait
    /// sees the new server's socket, not the old one's.
    pub fn spawn_server(&mut self, cmd: &str, port: u16) {
        // Local address ":PORT" (hex) with any remote address, state 0A (LISTEN).
        let listening =
            format!(":{port:04X} 00000000:0000 0A|:{port:04X} 00000000000000000000000000000000:0000 0A");
        self.ok(
            &format!("timeout 10 sh -c 'while grep -qE \"{listening}\" /proc/net/tcp /proc/net/tcp6; do sleep 0.1; done'"),
            Duration::from_secs(15),
        );
        self.spawn(cmd);
        self.ok(
            &format!("timeout 10 sh -c 'until grep -qE \"{listening}\" /proc/net/tcp /proc/net/tcp6; do sleep 0.1; done'"),
            Duration::from_secs(15),
        );
    }

    /// Gets an address by DHCP from the dataplane (udhcpc); returns the leased address.
    pub fn dhcp(&mut self) -> String {
        let out = self.ok(
            "udhcpc -i eth0 -s /bin/dhcp-script -q -f -n -t 10 -T 1",
            Duration::from_secs(30),
        );
        out.lines()
            .find_map(|l| l.strip_prefix("LEASE "))
            .unwrap_or_else(|| panic!("guest {}: no lease in {out}", self.name))
            .trim()
            .to_owned()
    }

    /// Whether `count` pings to `dst` get at least one answer.
    pub fn ping(&mut self, dst: &str, count: u32) -> bool {
        let (status, _) = self.run(
            &format!("ping -c {count} -i 0.2 -W 2 {dst}"),
            Duration::from_secs(u64::from(count) + 10),
        );
        status == 0
    }

    /// Kills QEMU and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
    }
}
