//! The hypervisor lab of `ironnet up --hypervisors N`: real dataplanes, node agents and route reflectors as
//! processes of this binary, joined by an IPv6 underlay, with an "internet" behind a border router.
//!
//! ```text
//!  hv-1: ironnet dpservice (TAP ports) + ironnet metalnet ─┐ pf TAP
//!  hv-2: ironnet dpservice (TAP ports) + ironnet metalnet ─┤ pf TAP      <prefix>-router (IPv6 forwarding,
//!  gateway: ironnet dpservice + ironnet internet-gateway ──┘ pf TAP        one /64 per dataplane)
//!            └─ port TAP → <prefix>-internet (198.51.100.1)
//!  ironnet metalbond server ×2 (127.0.0.1), every metalnet and the gateway peer with both
//! ```
//!
//! The control traffic (API server, metalbond, dpservice gRPC) runs on loopback; the data traffic runs only
//! through the TAP devices, which are moved into namespaces the lab creates: each dataplane's uplink into the
//! router namespace, the gateway's port into the internet namespace, and each VM port into its VM's namespace
//! (`ironnet vm create`). A real deployment differs only in where the processes run. Everything is removed when
//! the lab stops, and a lab left behind by a killed run is removed at the next start.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ironnet_dpservice::config::PortSpec;
use ironnet_dpservice::tap::format_mac;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use tokio::process::{Child, Command};

use crate::netns;

/// The partition every lab hypervisor belongs to (the apinet Nodes are `lab.hv-N`).
pub const PARTITION: &str = "lab";
/// The public VNI of the lab (upstream's default).
pub const PUBLIC_VNI: u32 = 100;
/// The internet side's address: TEST-NET-2 (RFC 5737), never routed outside the lab.
pub const INTERNET_ADDRESS: &str = "198.51.100.1";
/// Longest lab prefix: TAP names are `<prefix><hv><v|p><n>` and must fit Linux's 15 characters.
const MAX_PREFIX_LEN: usize = 7;

/// How the lab is laid out.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of hypervisors (1..=16).
    pub hypervisors: usize,
    /// VM ports per hypervisor (1..=1024).
    pub ports: usize,
    /// Prefix of every namespace and TAP device, so that several labs can run side by side.
    pub prefix: String,
    /// Where logs, metalnet's claims and the VM records live.
    pub data_dir: PathBuf,
    /// The admin kubeconfig of the API server the node agents talk to.
    pub kubeconfig: PathBuf,
    /// Each hypervisor's own kubeconfig (its node identity) by node name; a hypervisor without
    /// one uses `kubeconfig`.
    pub node_kubeconfigs: std::collections::HashMap<String, PathBuf>,
}

impl LabConfig {
    /// Checks the limits above.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=16).contains(&self.hypervisors) {
            bail!("--hypervisors must be 1..=16");
        }
        // dpservice's 126 is its SmartNIC's number of VFs; the lab's TAP ports are bounded only by the
        // dataplane's software port limit (their names fit IFNAMSIZ with the longest prefix).
        let max = ironnet_dataplane::config::MAX_SOFTWARE_VM_PORTS;
        if !(1..=max).contains(&self.ports) {
            bail!("--ports-per-hypervisor must be 1..={max}");
        }
        if self.prefix.is_empty()
            || self.prefix.len() > MAX_PREFIX_LEN
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            bail!("--lab-prefix must be 1..={MAX_PREFIX_LEN} lowercase letters or digits");
        }
        Ok(())
    }

    /// The router namespace.
    pub fn router_ns(&self) -> String {
        format!("{}-router", self.prefix)
    }

    /// The internet namespace.
    pub fn internet_ns(&self) -> String {
        format!("{}-internet", self.prefix)
    }

    /// Where `ironnet vm create` records the VMs of this lab (read by `ironnet vm delete` and the lab's cleanup).
    pub fn vm_dir(&self) -> PathBuf {
        vm_dir(&self.data_dir)
    }
}

/// Where VM records live under a data dir.
pub fn vm_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("vms")
}

/// The name of hypervisor `i` (1-based), its metalnet Node.
pub fn hypervisor_name(i: usize) -> String {
    format!("hv-{i}")
}

/// One dataplane of the lab.
#[derive(Debug, Clone)]
struct Dataplane {
    name: String,
    underlay: Ipv6Addr,
    prefix: String,
    grpc_port: u16,
    uplink: PortSpec,
    ports: Vec<PortSpec>,
}

impl Dataplane {
    fn new(lab: &LabConfig, tag: &str, index: u16, ports: usize, grpc_port: u16) -> anyhow::Result<Self> {
        let uplink = PortSpec::parse(&format!("{}{tag}p", lab.prefix))?;
        let ports = (0..ports)
            .map(|n| PortSpec::parse(&format!("{}{tag}v{n}", lab.prefix)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Dataplane {
            name: tag.to_owned(),
            underlay: Ipv6Addr::new(0xfd00, 0xee, index, 0, 0, 0, 0, 1),
            prefix: format!("fd00:ee:{index:x}::/64"),
            grpc_port,
            uplink,
            ports,
        })
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "dpservice".to_owned(),
            "--ipv6".to_owned(),
            self.underlay.to_string(),
            "--pf0".to_owned(),
            self.uplink.tap.clone(),
            "--grpc-port".to_owned(),
            self.grpc_port.to_string(),
            "--max-vm-ports".to_owned(),
            self.ports.len().max(1).to_string(),
        ];
        for p in &self.ports {
            args.push("--vf".to_owned());
            args.push(p.tap.clone());
        }
        args
    }
}

/// One process of the lab and how to start it again.
#[derive(Debug)]
struct Process {
    name: String,
    args: Vec<String>,
    child: Child,
    /// For a dataplane: its layout and its position among the uplinks (for the router's neighbour entry).
    dataplane: Option<(Dataplane, usize)>,
    started: Instant,
    restarts: u32,
}

/// How often the lab restarts one process before it gives up on it (a process that cannot start at all).
const MAX_RESTARTS: u32 = 10;

/// A running lab. Dropping it kills its processes; [`Lab::stop`] also removes its namespaces.
///
/// Like a node's init system (or Kubernetes for a DaemonSet), the lab restarts a process that exits
/// ([`Lab::supervise`]); a restarted dataplane gets its uplink and its VMs' ports plugged back in.
#[derive(Debug)]
pub struct Lab {
    config: LabConfig,
    children: Vec<Process>,
    /// The metalbond servers' addresses.
    pub metalbond: Vec<String>,
    /// Each hypervisor's name and dpservice gRPC address.
    pub hypervisors: Vec<(String, String)>,
    /// Each process's name and the loopback address serving its `/metrics` and health probes.
    pub telemetry: Vec<(String, String)>,
}

/// How many ports below the kernel's ephemeral range [`free_port`] picks from.
const LAB_PORTS: u16 = 12_000;

/// The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), 32768 if unreadable.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free TCP port on loopback for a child to listen on, bound and released here: the child binds it a moment
/// later.
///
/// Picked at random below the kernel's ephemeral range. A port the kernel hands out for `bind(…:0)` could be
/// handed to any other process in the moment between its release here and the child's bind (on a busy machine,
/// such as a test run, that made a dataplane fail to start now and then); ports below the range are only ever
/// taken by someone asking for them.
fn free_port() -> anyhow::Result<u16> {
    let top = ephemeral_start();
    let bottom = top.saturating_sub(LAB_PORTS).max(1024);
    let span = u64::from(top.max(bottom + 1) - bottom);
    for attempt in 0..256u64 {
        // RandomState's keys are random per process and differ per instance: random enough to spread labs.
        let draw = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), attempt);
        let port = bottom + u16::try_from(draw % span).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `port` on loopback.
async fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Lab {
    /// Builds the lab and starts every process. Needs root (namespaces, TAP devices). `client` talks to the API
    /// server that `config.kubeconfig` names; the hypervisors are registered there as core/v1 Nodes.
    pub async fn start(config: LabConfig, client: kube::Client) -> anyhow::Result<Lab> {
        config.validate()?;
        // /proc/self belongs to the effective user.
        if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) != 0 {
            bail!("--hypervisors needs root: it creates network namespaces and TAP devices");
        }
        let logs = config.data_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut lab = Lab {
            config,
            children: Vec::new(),
            metalbond: Vec::new(),
            hypervisors: Vec::new(),
            telemetry: Vec::new(),
        };
        match lab.build(client).await {
            Ok(()) => Ok(lab),
            Err(e) => {
                lab.stop().await;
                Err(e)
            }
        }
    }

    async fn build(&mut self, client: kube::Client) -> anyhow::Result<()> {
        let config = self.config.clone();
        let lab = self;
        lab.remove_namespaces().await;
        netns::create(&config.router_ns()).await?;
        netns::in_ns(
            &config.router_ns(),
            &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        )
        .await?;
        netns::create(&config.internet_ns()).await?;

        for _ in 0..2 {
            let port = free_port()?;
            let address = format!("127.0.0.1:{port}");
            let name = format!("metalbond-{}", lab.metalbond.len() + 1);
            let telemetry = lab.telemetry_address(&name)?;
            lab.spawn(
                &name,
                &[
                    "metalbond",
                    "server",
                    "--listen",
                    &address,
                    "--keepalive",
                    "3",
                    "--metrics-bind-address",
                    &telemetry,
                    "--health-probe-bind-address",
                    &telemetry,
                ],
                None,
            )?;
            wait_for_port(port, Duration::from_secs(10)).await?;
            lab.metalbond.push(address);
        }

        let gateway = Dataplane::new(&config, "g", 0xff, 1, free_port()?)?;
        let mut hypervisors = Vec::new();
        for i in 1..=config.hypervisors {
            let index = u16::try_from(i).context("hypervisor index")?;
            hypervisors.push(Dataplane::new(
                &config,
                &i.to_string(),
                index,
                config.ports,
                free_port()?,
            )?);
        }
        // A dataplane of an earlier lab with this prefix may still be exiting: the kernel unregisters its TAP
        // devices one by one (hundreds take seconds), and a name reused meanwhile vanishes under the new lab.
        let names: Vec<&str> = std::iter::once(&gateway)
            .chain(&hypervisors)
            .flat_map(|dp| std::iter::once(&dp.uplink).chain(&dp.ports))
            .map(|p| p.tap.as_str())
            .collect();
        netns::wait_until_links_gone(&names, Duration::from_secs(60))
            .await
            .with_context(|| {
                format!(
                    "TAP devices of another lab with prefix {:?} remain",
                    config.prefix
                )
            })?;
        for (k, dp) in std::iter::once(&gateway).chain(&hypervisors).enumerate() {
            let mut args: Vec<String> = dp.args();
            let telemetry = lab.telemetry_address(&format!("dpservice-{}", dp.name))?;
            for flag in ["--metrics-bind-address", "--health-probe-bind-address"] {
                args.push(flag.to_owned());
                args.push(telemetry.clone());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            lab.spawn(
                &format!("dpservice-{}", dp.name),
                &args,
                Some((dp.clone(), k + 1)),
            )?;
            lab.wait_for_dataplane(dp).await?;
            wait_for_port(dp.grpc_port, Duration::from_secs(20)).await?;
            lab.join_underlay(dp, k + 1).await?;
        }
        netns::move_link(&gateway.ports[0].tap, &config.internet_ns()).await?;

        let gw_address = format!("127.0.0.1:{}", gateway.grpc_port);
        let mut gw_args = vec![
            "internet-gateway",
            "--dp-service-address",
            &gw_address,
            "--device",
            &gateway.ports[0].device,
            "--address",
            INTERNET_ADDRESS,
        ];
        for mb in &lab.metalbond {
            gw_args.extend(["--metalbond-peer", mb.as_str()]);
        }
        let gw_args: Vec<String> = gw_args.iter().map(|s| (*s).to_owned()).collect();
        let gw_args: Vec<&str> = gw_args.iter().map(String::as_str).collect();
        lab.spawn("internet-gateway", &gw_args, None)?;
        let leased = netns::dhcp(
            &config.internet_ns(),
            &gateway.ports[0].tap,
            &config.data_dir.join("dhcp"),
        )
        .await
        .context("the internet namespace's DHCP lease")?;
        tracing::info!(%leased, "internet namespace is up");

        let nodes: Api<Node> = Api::all(client);
        for (i, dp) in hypervisors.iter().enumerate() {
            let name = hypervisor_name(i + 1);
            register_node(&nodes, &name).await?;
            let dp_address = format!("127.0.0.1:{}", dp.grpc_port);
            let metalnet_dir = config.data_dir.join("metalnet").join(&name);
            let kubeconfig = config
                .node_kubeconfigs
                .get(&name)
                .unwrap_or(&config.kubeconfig)
                .display()
                .to_string();
            let metalnet_dir = metalnet_dir.display().to_string();
            let public_vni = PUBLIC_VNI.to_string();
            let mut args = vec![
                "metalnet".to_owned(),
                "--kubeconfig".to_owned(),
                kubeconfig,
                "--node-name".to_owned(),
                name.clone(),
                "--dp-service-address".to_owned(),
                dp_address.clone(),
                "--public-vni".to_owned(),
                public_vni,
                "--tapdevice-mod".to_owned(),
                "--metalnet-dir".to_owned(),
                metalnet_dir,
            ];
            for mb in &lab.metalbond {
                args.push("--metalbond-peer".to_owned());
                args.push(mb.clone());
            }
            for p in &dp.ports {
                args.push("--tap-device".to_owned());
                args.push(p.device.clone());
            }
            let telemetry = lab.telemetry_address(&format!("metalnet-{name}"))?;
            for flag in ["--metrics-bind-address", "--health-probe-bind-address"] {
                args.push(flag.to_owned());
                args.push(telemetry.clone());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            lab.spawn(&format!("metalnet-{name}"), &args, None)?;
            lab.hypervisors.push((name, dp_address));
        }
        Ok(())
    }

    /// A loopback address for process `name`'s metrics and health probes (one listener serves both), noted in
    /// [`Lab::telemetry`].
    fn telemetry_address(&mut self, name: &str) -> anyhow::Result<String> {
        let address = format!("127.0.0.1:{}", free_port()?);
        self.telemetry.push((name.to_owned(), address.clone()));
        Ok(address)
    }

    /// Starts `ironnet ARGS…` with its output appended to `<data-dir>/logs/<name>.log`.
    fn start_process(&self, name: &str, args: &[String]) -> anyhow::Result<Child> {
        let exe = std::env::current_exe().context("locating the ironnet binary")?;
        let log_path = self.config.data_dir.join("logs").join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))
    }

    /// Waits until the dataplane just started for `dp` has created its uplink (at most 20 s); fails at once,
    /// with the first error it logged, if the process exits first.
    async fn wait_for_dataplane(&mut self, dp: &Dataplane) -> anyhow::Result<()> {
        let name = format!("dpservice-{}", dp.name);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !netns::link_exists(&dp.uplink.tap) {
            let exited = self
                .children
                .iter_mut()
                .find(|p| p.name == name)
                .and_then(|p| p.child.try_wait().ok().flatten());
            if let Some(status) = exited {
                let log = self.config.data_dir.join("logs").join(format!("{name}.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                // The error and its causes, without the backtrace that follows them.
                let error: Vec<&str> = text
                    .lines()
                    .skip_while(|l| !l.starts_with("Error:"))
                    .take_while(|l| !l.trim_start().starts_with("Stack backtrace:"))
                    .take(8)
                    .collect();
                bail!(
                    "{name} exited ({status}) before creating its ports: {}",
                    error.join(" ")
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!("link {} did not appear within 20s", dp.uplink.tap);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Starts a process of the lab; `dataplane` says which dataplane it is, if it is one.
    fn spawn(
        &mut self,
        name: &str,
        args: &[&str],
        dataplane: Option<(Dataplane, usize)>,
    ) -> anyhow::Result<()> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let child = self.start_process(name, &args)?;
        self.children.push(Process {
            name: name.to_owned(),
            args,
            child,
            dataplane,
            started: Instant::now(),
            restarts: 0,
        });
        Ok(())
    }

    /// Moves `dp`'s uplink into the router namespace and routes its underlay /64 to it through a static
    /// neighbour (the dataplane, like dpservice, does not answer neighbour solicitations on its uplink).
    async fn join_underlay(&self, dp: &Dataplane, k: usize) -> anyhow::Result<()> {
        let router = self.config.router_ns();
        let tap = dp.uplink.tap.as_str();
        netns::move_link(tap, &router).await?;
        // Room for the 40-byte outer IPv6 header around 1500-byte VM packets, as on dpservice's underlays.
        netns::in_ns(&router, &["ip", "link", "set", tap, "mtu", "9000"]).await?;
        let gw = format!("fe80::{k:x}");
        let mac = format_mac(dp.uplink.mac);
        netns::in_ns(
            &router,
            &[
                "ip",
                "-6",
                "neigh",
                "add",
                &gw,
                "lladdr",
                &mac,
                "nud",
                "permanent",
                "dev",
                tap,
            ],
        )
        .await?;
        netns::in_ns(
            &router,
            &["ip", "-6", "route", "add", &dp.prefix, "via", &gw, "dev", tap],
        )
        .await?;
        Ok(())
    }

    /// Restarts every process that exited (at most once a second each, and [`MAX_RESTARTS`] times in all); a
    /// restarted dataplane's uplink goes back into the router namespace and its ports back to their VMs (the
    /// internet namespace, or the VMs `ironnet vm` recorded). Returns one line per restart for the operator.
    pub async fn supervise(&mut self) -> Vec<String> {
        let mut done = Vec::new();
        for i in 0..self.children.len() {
            let status = match self.children[i].child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) | Err(_) => continue,
            };
            let p = &self.children[i];
            if p.restarts >= MAX_RESTARTS || p.started.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let (name, args, dataplane) = (p.name.clone(), p.args.clone(), p.dataplane.clone());
            let child = match self.start_process(&name, &args) {
                Ok(c) => c,
                Err(e) => {
                    done.push(format!(
                        "{name} exited ({status}) and could not be restarted: {e:#}"
                    ));
                    continue;
                }
            };
            let p = &mut self.children[i];
            p.child = child;
            p.started = Instant::now();
            p.restarts += 1;
            let restarts = p.restarts;
            let mut line =
                format!("{name} exited ({status}); restarted (restart {restarts} of {MAX_RESTARTS})");
            if let Some((dp, k)) = dataplane
                && let Err(e) = self.replug(&dp, k).await
            {
                line.push_str(&format!("; its ports could not be plugged back: {e:#}"));
            }
            done.push(line);
        }
        done
    }

    /// Plugs a restarted dataplane back in: its uplink into the router namespace, its ports to their VMs.
    async fn replug(&self, dp: &Dataplane, k: usize) -> anyhow::Result<()> {
        netns::wait_for_link(&dp.uplink.tap, Duration::from_secs(20)).await?;
        wait_for_port(dp.grpc_port, Duration::from_secs(20)).await?;
        self.join_underlay(dp, k).await?;
        let dhcp_dir = self.config.data_dir.join("dhcp");
        if dp.name == "g" {
            netns::move_link(&dp.ports[0].tap, &self.config.internet_ns()).await?;
            netns::dhcp(&self.config.internet_ns(), &dp.ports[0].tap, &dhcp_dir).await?;
            return Ok(());
        }
        for vm in crate::vm_cmd::recorded(&self.config.vm_dir()) {
            if !dp.ports.iter().any(|p| p.tap == vm.tap) {
                continue;
            }
            netns::move_link(&vm.tap, &vm.netns).await?;
            netns::dhcp(&vm.netns, &vm.tap, &dhcp_dir).await?;
        }
        Ok(())
    }

    /// The lab's configuration.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// Deletes the lab's namespaces and the VM namespaces recorded by `ironnet vm create`.
    async fn remove_namespaces(&self) {
        for vm in crate::vm_cmd::recorded(&self.config.vm_dir()) {
            netns::delete(&vm.netns).await;
            let _ = std::fs::remove_file(self.config.vm_dir().join(format!("{}.json", vm.name)));
        }
        netns::delete(&self.config.internet_ns()).await;
        netns::delete(&self.config.router_ns()).await;
    }

    /// Stops every process (node agents first, so that none sees its dataplane vanish) and removes the
    /// namespaces.
    pub async fn stop(&mut self) {
        let mut children = std::mem::take(&mut self.children);
        children.reverse();
        for p in &mut children {
            let _ = p.child.start_kill();
            // A dataplane's exit unregisters every TAP device it owns, which takes seconds for hundreds.
            if tokio::time::timeout(Duration::from_secs(60), p.child.wait())
                .await
                .is_err()
            {
                tracing::warn!(process = %p.name, "did not exit after SIGKILL within 60 s");
            }
        }
        self.remove_namespaces().await;
    }
}

/// Registers hypervisor `name` as a core/v1 Node of the metalnet cluster (metalnetlet maps it to the apinet
/// Node `lab.<name>`).
async fn register_node(nodes: &Api<Node>, name: &str) -> anyhow::Result<()> {
    let node = Node {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("registering Node {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_lie_below_the_ephemeral_range_and_can_be_bound() {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let top: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(ephemeral_start(), top);
        for _ in 0..20 {
            let port = free_port().unwrap();
            assert!(
                (top.saturating_sub(LAB_PORTS).max(1024)..top).contains(&port),
                "{port} outside the lab's ports below {top}"
            );
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
