//! `ironnet internet-gateway`: the border router of a lab, standing for the internet.
//!
//! In an IronCore deployment the routers between the hypervisors and the internet run a metalbond client that
//! announces the default route `0.0.0.0/0` in the public VNI and installs every public address the hypervisors
//! announce (VirtualIPs, NAT IPs, public load balancer IPs) as a route towards the announcing hypervisor. This
//! command does the same with one `ironnet dpservice` as the router's dataplane: one of its ports leads to the
//! "internet" (a network namespace with the address `--address`), which is an interface in the public VNI, so
//!
//! - a tenant VM's packet to the internet follows its VNI's default route to this interface's underlay address
//!   and leaves through the port, unchanged (the hypervisor has already translated its source);
//! - a packet from the internet to a public address is routed by longest prefix match in the public VNI to the
//!   underlay address the hypervisor announced for it.
//!
//! It waits for dpservice and metalbond instead of failing when they are not up yet.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ipnet::IpNet;
use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use ironnet_dpservice::proto::{self, IpVersion};
use ironnet_metalbond::{MetalBond, NextHop, NextHopType, Route, RouteEvent, Vni};
use tonic::transport::Channel;

/// dpservice status codes the gateway handles (dpservice `include/dp_error.h`).
mod code {
    pub const NOT_FOUND: u32 = 201;
    pub const ALREADY_EXISTS: u32 = 202;
    pub const ROUTE_EXISTS: u32 = 301;
    pub const ROUTE_NOT_FOUND: u32 = 302;
    pub const NO_VNI: u32 = 206;
}

/// The interface ID of the internet port in the gateway's dpservice.
const INTERFACE_ID: &str = "internet";

/// Arguments of `ironnet internet-gateway`.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// gRPC address of the gateway's own dpservice.
    #[arg(long, default_value = "127.0.0.1:1337")]
    pub dp_service_address: String,
    /// A metalbond server (repeat for HA).
    #[arg(long = "metalbond-peer", required = true)]
    pub metalbond_peers: Vec<String>,
    /// The public VNI (metalbond's pseudo-VNI of public addresses).
    #[arg(long, default_value = "100", value_parser = Vni::parse_flag)]
    pub public_vni: Vni,
    /// dpservice device name of the port that leads to the internet.
    #[arg(long)]
    pub device: String,
    /// IPv4 address of the internet side (handed out by the port's DHCP).
    #[arg(long, default_value = "198.51.100.1")]
    pub address: Ipv4Addr,
}

/// Runs the gateway until `shutdown` completes.
pub async fn run(
    args: GatewayArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut dp = connect(&args.dp_service_address).await?;
    let underlay = ensure_interface(&mut dp, &args).await?;
    tracing::info!(%underlay, address = %args.address, "internet interface ready");

    let mb = MetalBond::new(ironnet_metalbond::Config {
        keepalive_interval: 3,
        ..Default::default()
    })?;
    for peer in &args.metalbond_peers {
        mb.add_peer(peer)
            .with_context(|| format!("metalbond peer {peer}"))?;
    }
    let (snapshot, mut events) = mb.route_events_with_snapshot();
    mb.subscribe(args.public_vni)?;
    let default_route = Route::new(
        args.public_vni,
        IpNet::V4(ipnet::Ipv4Net::default()),
        NextHop::standard(IpAddr::V6(underlay)),
    );
    mb.announce(default_route)?;

    let mut routes = PublicRoutes::new(args.public_vni, underlay);
    for route in snapshot {
        routes.added(&mut dp, &route).await;
    }
    let uuid = dataplane_uuid(&mut dp).await?;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            event = events.recv() => match event {
                Some(RouteEvent::Added(route)) => routes.added(&mut dp, &route).await,
                Some(RouteEvent::Removed(route)) => routes.removed(&mut dp, &route).await,
                None => break Ok(()),
            },
            // A restarted dataplane has lost the interface and every route: start over from scratch (the
            // lab restarts this command), rather than keep a table that no longer matches it.
            _ = check.tick() => match dataplane_uuid(&mut dp).await {
                Ok(now) if now == uuid => {}
                Ok(_) => break Err(anyhow::anyhow!("dpservice restarted")),
                Err(e) => break Err(e.context("dpservice went away")),
            },
        }
    };
    mb.shutdown();
    result
}

/// The dataplane's instance UUID (it changes when dpservice restarts).
async fn dataplane_uuid(dp: &mut DpdKironcoreClient<Channel>) -> anyhow::Result<String> {
    let r = dp
        .check_initialized(proto::CheckInitializedRequest {})
        .await
        .context("CheckInitialized")?
        .into_inner();
    Ok(r.uuid)
}

/// Connects to dpservice, retrying while it is not up, and initialises it if nobody has.
async fn connect(address: &str) -> anyhow::Result<DpdKironcoreClient<Channel>> {
    let url = format!("http://{address}");
    let mut delay = Duration::from_millis(100);
    loop {
        match DpdKironcoreClient::connect(url.clone()).await {
            Ok(mut client) => {
                // dpservice answers ABORTED ("not initialized") until a client has called Initialize.
                let initialized = match client.check_initialized(proto::CheckInitializedRequest {}).await {
                    Ok(r) => r.into_inner().status.is_none_or(|s| s.code == 0),
                    Err(s) if s.code() == tonic::Code::Aborted => false,
                    Err(s) => return Err(s).context("CheckInitialized"),
                };
                if !initialized {
                    client
                        .initialize(proto::InitializeRequest {})
                        .await
                        .context("Initialize")?;
                }
                return Ok(client);
            }
            Err(e) => {
                tracing::info!(%address, error = %e, "waiting for dpservice");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn status_code(status: Option<&proto::Status>) -> u32 {
    status.map_or(0, |s| s.code)
}

/// Creates the internet interface in the public VNI (or finds the one a previous run created) and returns its
/// underlay address.
async fn ensure_interface(
    dp: &mut DpdKironcoreClient<Channel>,
    args: &GatewayArgs,
) -> anyhow::Result<Ipv6Addr> {
    let existing = dp
        .get_interface(proto::GetInterfaceRequest {
            interface_id: INTERFACE_ID.into(),
        })
        .await?
        .into_inner();
    let underlay = match status_code(existing.status.as_ref()) {
        0 => existing.interface.map(|i| i.underlay_route).unwrap_or_default(),
        code::NOT_FOUND => {
            let created = dp
                .create_interface(proto::CreateInterfaceRequest {
                    interface_type: proto::InterfaceType::Virtual as i32,
                    interface_id: INTERFACE_ID.into(),
                    vni: args.public_vni.get(),
                    ipv4_config: Some(proto::IpConfig {
                        primary_address: args.address.to_string().into(),
                    }),
                    ipv6_config: Some(proto::IpConfig {
                        primary_address: "::".into(),
                    }),
                    device_name: args.device.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            match status_code(created.status.as_ref()) {
                0 | code::ALREADY_EXISTS => created.underlay_route,
                other => bail!("CreateInterface on {}: dpservice error {other}", args.device),
            }
        }
        other => bail!("GetInterface: dpservice error {other}"),
    };
    let text = String::from_utf8(underlay).context("underlay address is not text")?;
    text.parse().with_context(|| format!("underlay address {text:?}"))
}

fn ip_address(ip: IpAddr) -> proto::IpAddress {
    proto::IpAddress {
        ipver: match ip {
            IpAddr::V4(_) => IpVersion::Ipv4 as i32,
            IpAddr::V6(_) => IpVersion::Ipv6 as i32,
        },
        address: ip.to_string().into(),
    }
}

/// The public routes the gateway has learned and the one next hop per prefix it has installed.
///
/// Several hypervisors may announce one prefix (a public load balancer hosted on several nodes); the dataplane
/// takes one next hop per prefix, so the gateway installs the first and moves to another when it is withdrawn.
struct PublicRoutes {
    vni: Vni,
    own: Ipv6Addr,
    hops: BTreeMap<IpNet, BTreeSet<IpAddr>>,
    installed: BTreeMap<IpNet, IpAddr>,
}

impl PublicRoutes {
    fn new(vni: Vni, own: Ipv6Addr) -> Self {
        PublicRoutes {
            vni,
            own,
            hops: BTreeMap::new(),
            installed: BTreeMap::new(),
        }
    }

    /// Whether the gateway installs `route`: a standard public route to someone else (its own default route
    /// and other kinds of next hop are not for it).
    fn wanted(&self, route: &Route) -> bool {
        route.vni == self.vni
            && route.next_hop.kind() == NextHopType::Standard
            && route.next_hop.target() != IpAddr::V6(self.own)
            && route.destination.prefix_len() > 0
    }

    async fn added(&mut self, dp: &mut DpdKironcoreClient<Channel>, route: &Route) {
        if !self.wanted(route) {
            return;
        }
        let target = route.next_hop.target();
        self.hops.entry(route.destination).or_default().insert(target);
        if !self.installed.contains_key(&route.destination)
            && self.install(dp, route.destination, target).await
        {
            self.installed.insert(route.destination, target);
        }
    }

    async fn removed(&mut self, dp: &mut DpdKironcoreClient<Channel>, route: &Route) {
        if !self.wanted(route) {
            return;
        }
        let target = route.next_hop.target();
        if let Some(set) = self.hops.get_mut(&route.destination) {
            set.remove(&target);
        }
        if self.installed.get(&route.destination) != Some(&target) {
            return;
        }
        self.uninstall(dp, route.destination, target).await;
        self.installed.remove(&route.destination);
        let next = self
            .hops
            .get(&route.destination)
            .and_then(|s| s.iter().next().copied());
        match next {
            Some(other) => {
                if self.install(dp, route.destination, other).await {
                    self.installed.insert(route.destination, other);
                }
            }
            None => {
                self.hops.remove(&route.destination);
            }
        }
    }

    fn dp_route(&self, prefix: IpNet, target: IpAddr) -> proto::Route {
        proto::Route {
            prefix: Some(proto::Prefix {
                ip: Some(ip_address(prefix.addr())),
                length: u32::from(prefix.prefix_len()),
                underlay_route: Vec::new(),
            }),
            nexthop_vni: self.vni.get(),
            nexthop_address: Some(ip_address(target)),
            weight: 0,
        }
    }

    async fn install(&self, dp: &mut DpdKironcoreClient<Channel>, prefix: IpNet, target: IpAddr) -> bool {
        let request = proto::CreateRouteRequest {
            vni: self.vni.get(),
            route: Some(self.dp_route(prefix, target)),
        };
        match dp.create_route(request).await.map(|r| r.into_inner().status) {
            Ok(s) if matches!(status_code(s.as_ref()), 0 | code::ROUTE_EXISTS) => {
                tracing::info!(%prefix, %target, "public route installed");
                true
            }
            Ok(s) => {
                tracing::warn!(%prefix, %target, status = ?s, "public route refused");
                false
            }
            Err(e) => {
                tracing::warn!(%prefix, %target, error = %e, "public route not installed");
                false
            }
        }
    }

    async fn uninstall(&self, dp: &mut DpdKironcoreClient<Channel>, prefix: IpNet, target: IpAddr) {
        let request = proto::DeleteRouteRequest {
            vni: self.vni.get(),
            route: Some(self.dp_route(prefix, target)),
        };
        match dp.delete_route(request).await.map(|r| r.into_inner().status) {
            Ok(s) if matches!(status_code(s.as_ref()), 0 | code::ROUTE_NOT_FOUND | code::NO_VNI) => {
                tracing::info!(%prefix, %target, "public route removed");
            }
            Ok(s) => tracing::warn!(%prefix, %target, status = ?s, "public route not removed"),
            Err(e) => tracing::warn!(%prefix, %target, error = %e, "public route not removed"),
        }
    }
}
