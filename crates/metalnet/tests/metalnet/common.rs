//! The test environment: the real API server on an embedded store, a real `ironnet dpservice` in TAP mode on a
//! loopback port, a real metalbond server on 127.0.0.1 (random port) with a second client standing for the
//! other hypervisors and the router, and metalnet itself. Needs root (dpservice creates the TAP devices; they get
//! names unique to this test and disappear when the service stops).
#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ironnet_api::metalnet::{LoadBalancer, Network, NetworkInterface};
use ironnet_dpservice::RunningService;
use ironnet_dpservice::config::{DpServiceArgs, PortSpec};
use ironnet_metalbond::MetalBond;
use ironnet_metalnet::MetalnetArgs;
use ironnet_metalnet::dp::Dp;
use ironnet_registry::{AllocationConfig, IroncoreApiServer};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use ironnet_vni::{Vni, vni};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The namespace of the tests.
pub const NS: &str = "default";
/// The node metalnet runs as.
pub const NODE: &str = "node-a";
/// Host underlay of the dpservice.
pub const HOST_UNDERLAY: &str = "fc00:1::1";
/// Underlay of the router announcing the default route.
pub const ROUTER: &str = "fc00:ff::1";
/// The public VNI.
pub const PUBLIC_VNI: Vni = vni!(100);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Fast metalbond timers: one wire second is 100 ms, reconnects after 100-200 ms.
pub fn mb_config() -> ironnet_metalbond::Config {
    ironnet_metalbond::Config {
        keepalive_interval: 3,
        time_unit: Duration::from_millis(100),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(200),
        ..ironnet_metalbond::Config::default()
    }
}

/// A running environment; dropping it stops everything (TAPs included).
pub struct Env {
    /// Client of the API server.
    pub client: kube::Client,
    /// A dpservice client for assertions.
    pub dp: Dp,
    /// dpservice's flags (to restart it identically).
    pub dp_args: DpServiceArgs,
    /// The gRPC address dpservice listens on.
    pub dp_addr: SocketAddr,
    /// The running dpservice.
    pub service: Option<RunningService>,
    /// The metalbond server.
    pub mb_server: MetalBond,
    /// Its address.
    pub mb_addr: SocketAddr,
    /// Another metalbond client: the other hypervisors and the router.
    pub other: MetalBond,
    /// metalnet's flags.
    pub args: MetalnetArgs,
    /// Stops the running metalnet.
    metalnet: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    _server: IroncoreApiServer,
    pub dir: tempfile::TempDir,
}

/// The TAP (netdev) names of the VM ports metalnet may use.
pub fn tap_names(args: &DpServiceArgs) -> Vec<String> {
    args.vfs.iter().map(|v| v.tap.clone()).collect()
}

pub async fn start_dpservice(args: &DpServiceArgs, addr: SocketAddr) -> RunningService {
    // The port may still be in TIME_WAIT use after a restart; retry binding for a moment.
    let listener = poll("dpservice port free", || async {
        tokio::net::TcpListener::bind(addr).await.ok()
    })
    .await;
    RunningService::start(args, listener)
        .await
        .expect("dpservice starts (needs root)")
}

impl Env {
    /// Everything up and metalnet running.
    pub async fn start() -> Env {
        let env = Env::prepare().await;
        env.with_metalnet().await
    }

    /// Everything up except metalnet.
    pub async fn prepare() -> Env {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{:x}{n}", std::process::id() % 0xfffff);
        let vfs: Vec<PortSpec> = (0..3)
            .map(|i| PortSpec::parse(&format!("mn{tag}v{i},device=net_tap{}", i + 2)).unwrap())
            .collect();
        let dp_args = DpServiceArgs {
            pf0: PortSpec::parse(&format!("mn{tag}p")).unwrap(),
            pf1: None,
            vfs,
            ipv6: HOST_UNDERLAY.parse().unwrap(),
            router_mac: None,
            grpc_port: 1337,
            dhcp_mtu: 1500,
            dhcp_dns: vec![],
            dhcpv6_dns: vec![],
            flow_timeout: 30,
            wcmp: 100,
            enable_ipv6_overlay: false,
            no_firewall_enforcement: false,
            max_vm_ports: 126,
            telemetry: Default::default(),
        };
        let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dp_addr = free.local_addr().unwrap();
        drop(free);
        let service = start_dpservice(&dp_args, dp_addr).await;
        let dp = Dp::lazy(&format!("http://{dp_addr}")).unwrap();

        let mb_server = MetalBond::new(mb_config()).unwrap();
        let mb_addr = mb_server
            .start_server("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let other = MetalBond::new(mb_config()).unwrap();
        other.add_peer(&mb_addr.to_string()).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).unwrap();
        let server = ironnet_registry::build(Arc::new(store), &AllocationConfig::default(), |b| b)
            .await
            .unwrap();
        let client = kube::Client::new(server.server.router(), "default");

        let mut args = MetalnetArgs::new(NODE, dir.path().join("metalnet"));
        args.dp_service_address = dp_addr.to_string();
        args.metalbond_peers = vec![mb_addr.to_string()];
        args.public_vni = PUBLIC_VNI;
        args.enable_ipv6 = true;
        args.tapdevice_mod = true;
        args.tap_devices = dp_args
            .vfs
            .iter()
            .map(|v| ironnet_metalnet::claims::Device::parse(&format!("{}={}", v.tap, v.device)).unwrap())
            .collect();
        Env {
            client,
            dp,
            dp_args,
            dp_addr,
            service: Some(service),
            mb_server,
            mb_addr,
            other,
            args,
            metalnet: None,
            _server: server,
            dir,
        }
    }

    /// Starts metalnet with `self.args`.
    pub async fn with_metalnet(mut self) -> Env {
        self.start_metalnet();
        self
    }

    /// Starts metalnet (in the background) with `self.args`.
    pub fn start_metalnet(&mut self) {
        let (tx, mut rx) = watch::channel(false);
        let args = self.args.clone();
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            ironnet_metalnet::run_with(args, client, mb_config(), async move {
                let _ = rx.wait_for(|v| *v).await;
            })
            .await
            .expect("metalnet runs");
        });
        self.metalnet = Some((tx, task));
    }

    /// Stops metalnet and waits until it has.
    pub async fn stop_metalnet(&mut self) {
        if let Some((tx, task)) = self.metalnet.take() {
            let _ = tx.send(true);
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("metalnet stops")
                .unwrap();
        }
    }

    /// Stops dpservice (its TAPs go away).
    pub async fn stop_dpservice(&mut self) {
        if let Some(s) = self.service.take() {
            s.shutdown().await;
        }
    }

    /// Starts dpservice again with the same flags and port: a fresh, uninitialized process.
    pub async fn restart_dpservice(&mut self) {
        self.stop_dpservice().await;
        self.service = Some(start_dpservice(&self.dp_args, self.dp_addr).await);
    }

    /// The router announces the default route in the public VNI.
    pub fn announce_router(&self) {
        self.other.subscribe(PUBLIC_VNI).ok();
        self.other
            .announce(ironnet_metalbond::Route::new(
                PUBLIC_VNI,
                "0.0.0.0/0".parse().unwrap(),
                ironnet_metalbond::NextHop::standard(ROUTER.parse().unwrap()),
            ))
            .unwrap();
    }

    pub fn networks(&self) -> Api<Network> {
        Api::namespaced(self.client.clone(), NS)
    }
    pub fn interfaces(&self) -> Api<NetworkInterface> {
        Api::namespaced(self.client.clone(), NS)
    }
    pub fn load_balancers(&self) -> Api<LoadBalancer> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Creates a Network with VNI `vni` peering `peers`.
    pub async fn network(&self, name: &str, vni: i32, peers: &[i32]) -> Network {
        let net: Network = serde_json::from_value(json!({
            "apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": "Network",
            "metadata": {"name": name}, "spec": {"id": vni, "peeredIDs": peers},
        }))
        .unwrap();
        self.networks()
            .create(&PostParams::default(), &net)
            .await
            .unwrap()
    }

    /// Creates a NetworkInterface on this node from a spec (networkRef, ips, ... as JSON).
    pub async fn interface(&self, name: &str, spec: Value) -> NetworkInterface {
        self.interface_on(name, NODE, spec).await
    }

    /// Creates a NetworkInterface on `node`.
    pub async fn interface_on(&self, name: &str, node: &str, mut spec: Value) -> NetworkInterface {
        spec["nodeName"] = json!(node);
        if spec.get("ipFamilies").is_none() {
            let fams: Vec<&str> = spec["ips"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    if i.as_str().unwrap().contains(':') {
                        "IPv6"
                    } else {
                        "IPv4"
                    }
                })
                .collect();
            spec["ipFamilies"] = json!(fams);
        }
        let nic: NetworkInterface = serde_json::from_value(json!({
            "apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": "NetworkInterface",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        self.interfaces()
            .create(&PostParams::default(), &nic)
            .await
            .unwrap()
    }

    /// Creates a LoadBalancer on this node.
    pub async fn load_balancer(
        &self,
        name: &str,
        network: &str,
        type_: &str,
        ip: &str,
        ports: Value,
    ) -> LoadBalancer {
        let lb: LoadBalancer = serde_json::from_value(json!({
            "apiVersion": "networking.metalnet.ironcore.dev/v1alpha1", "kind": "LoadBalancer",
            "metadata": {"name": name},
            "spec": {"networkRef": {"name": network}, "type": type_, "ip": ip, "ports": ports, "nodeName": NODE},
        }))
        .unwrap();
        self.load_balancers()
            .create(&PostParams::default(), &lb)
            .await
            .unwrap()
    }

    /// Merge-patches the spec of an interface.
    pub async fn patch_interface(&self, name: &str, spec: Value) {
        self.interfaces()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await
            .unwrap();
    }

    /// Waits until the interface's status has `state: Ready` and satisfies `f`; returns it.
    pub async fn ready_interface(
        &self,
        name: &str,
        f: impl Fn(&NetworkInterface) -> bool,
    ) -> NetworkInterface {
        let api = self.interfaces();
        poll(&format!("interface {name} ready"), || async {
            api.get_opt(name).await.unwrap().filter(|n| {
                n.status.as_ref().and_then(|s| s.state) == Some(ironnet_api::metalnet::ObjectState::Ready)
                    && f(n)
            })
        })
        .await
    }

    /// Deletes an object of kind `K` by name and waits until it is gone.
    pub async fn delete<K>(&self, api: &Api<K>, name: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.delete(name, &DeleteParams::default()).await.unwrap();
        poll(&format!("{name} gone"), || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }

    /// The UID of an object.
    pub fn uid<K: kube::Resource>(obj: &K) -> String {
        obj.meta().uid.clone().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((tx, task)) = self.metalnet.take() {
            let _ = tx.send(true);
            task.abort();
        }
        self.mb_server.shutdown();
        self.other.shutdown();
        // Dropping the service stops its worker and removes the TAPs.
    }
}

/// Polls `f` every 20 ms until it returns `Some`, for at most 30 s.
pub async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// An IP address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
