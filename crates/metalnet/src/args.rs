//! Command-line flags of metalnet: upstream's (metalnet `cmd/main.go`) plus what ironnet needs to find the TAP
//! ports of `ironnet dpservice` and the API server.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use ironnet_vni::{Vni, vni};

use crate::claims::Device;

/// Upstream's fixed TAP-mode interface names (`dtapvf_0..dtapvf_3`). dpservice's TAP ports `net_tap0`/`net_tap1`
/// are the uplinks, so `dtapvf_N` is the dpservice device `net_tap<N+2>`.
pub const UPSTREAM_TAP_DEVICES: [&str; 4] = [
    "dtapvf_0=net_tap2",
    "dtapvf_1=net_tap3",
    "dtapvf_2=net_tap4",
    "dtapvf_3=net_tap5",
];

/// `ironnet metalnet` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MetalnetArgs {
    /// Only objects whose `spec.nodeName` equals this are handled. Default: the host name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// dpservice gRPC address (plain text), `HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:1337")]
    pub dp_service_address: String,
    /// A metalbond server, `HOST:PORT` (e.g. `[::1]:4711`); repeatable (HA).
    #[arg(long = "metalbond-peer")]
    pub metalbond_peers: Vec<String>,
    /// The metalbond pseudo-VNI of public addresses (VIPs, NAT IPs, public LBs, routable IPv6; routers announce
    /// the default route there).
    #[arg(long, default_value = "100", value_parser = Vni::parse_flag)]
    pub public_vni: Vni,
    /// Underlay address of the default router, used until (and unless) a router announces `0.0.0.0/0` in the
    /// public VNI; the announcement wins.
    #[arg(long)]
    pub router_address: Option<Ipv6Addr>,
    /// Accept IPv6 interface IPs and load balancers and install `::/0` default routes.
    #[arg(long)]
    pub enable_ipv6: bool,
    /// TAP mode (testing, ironcore-in-a-box): interfaces are TAP ports of dpservice, reported as
    /// `status.tapDevice`.
    #[arg(long)]
    pub tapdevice_mod: bool,
    /// A TAP port metalnet may hand to interfaces, `NAME[=DEVICE]`: `NAME` is the TAP netdev (reported in
    /// `status.tapDevice.name`), `DEVICE` the dpservice device name passed to CreateInterface (default: `NAME`).
    /// Repeatable. With `--tapdevice-mod` and none given: upstream's `dtapvf_0..3` = `net_tap2..5`. Start
    /// `ironnet dpservice` with one `--vf NAME,device=DEVICE` per entry.
    #[arg(long = "tap-device", value_parser = parse_device)]
    pub tap_devices: Vec<Device>,
    /// Directory of metalnet's state (interface claims in `netfns/claims`).
    #[arg(long, default_value = "/var/lib/metalnet")]
    pub metalnet_dir: PathBuf,
    /// Underlay network preferred for load balancer targets: targets whose underlay lies outside are ignored.
    #[arg(long)]
    pub prefer_network: Option<IpNet>,
    /// Kubeconfig of the API server serving `networking.metalnet.ironcore.dev`; default: in-cluster or
    /// `$KUBECONFIG`.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Only objects in this namespace; default: all namespaces.
    #[arg(long)]
    pub namespace: Option<String>,
    /// PEM certificate chain presented to the metalbond servers: enables mutual TLS with them (beyond upstream,
    /// which speaks plain TCP). Needs `--metalbond-tls-key` and `--metalbond-tls-ca`.
    #[arg(long, requires_all = ["metalbond_tls_key", "metalbond_tls_ca"])]
    pub metalbond_tls_cert: Option<PathBuf>,
    /// PEM private key of `--metalbond-tls-cert`.
    #[arg(long, requires_all = ["metalbond_tls_cert", "metalbond_tls_ca"])]
    pub metalbond_tls_key: Option<PathBuf>,
    /// PEM CA bundle the metalbond servers' certificates must chain to.
    #[arg(long, requires_all = ["metalbond_tls_cert", "metalbond_tls_key"])]
    pub metalbond_tls_ca: Option<PathBuf>,
    /// Metrics (controllers, metalbond) and health endpoints (ready: API server reachable, metalbond servers
    /// ESTABLISHED).
    #[command(flatten)]
    pub telemetry: ironnet_telemetry::TelemetryArgs,
}

fn parse_device(s: &str) -> Result<Device, String> {
    Device::parse(s).ok_or_else(|| format!("invalid TAP device {s:?}: expected NAME[=DEVICE]"))
}

impl MetalnetArgs {
    /// Defaults for `node_name` with no peers, TAP mode off: what a test starts from.
    pub fn new(node_name: impl Into<String>, metalnet_dir: impl AsRef<Path>) -> Self {
        MetalnetArgs {
            node_name: Some(node_name.into()),
            dp_service_address: "127.0.0.1:1337".into(),
            metalbond_peers: Vec::new(),
            public_vni: vni!(100),
            router_address: None,
            enable_ipv6: false,
            tapdevice_mod: false,
            tap_devices: Vec::new(),
            metalnet_dir: metalnet_dir.as_ref().to_owned(),
            prefer_network: None,
            kubeconfig: None,
            namespace: None,
            metalbond_tls_cert: None,
            metalbond_tls_key: None,
            metalbond_tls_ca: None,
            telemetry: Default::default(),
        }
    }

    /// The metalbond TLS credentials of `--metalbond-tls-{cert,key,ca}`, `None` without them.
    pub fn metalbond_tls(&self) -> Result<Option<ironnet_metalbond::TlsConfig>, ironnet_metalbond::TlsError> {
        match (
            &self.metalbond_tls_cert,
            &self.metalbond_tls_key,
            &self.metalbond_tls_ca,
        ) {
            (Some(cert), Some(key), Some(ca)) => {
                ironnet_metalbond::TlsConfig::from_pem_files(cert, key, ca).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The node name: `--node-name`, else the kernel's host name.
    pub fn node(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default()
        })
    }

    /// The devices interfaces may be placed on. Only TAP mode is supported by ironnet's dpservice, so without
    /// `--tapdevice-mod` this is the `--tap-device` list as well (empty: no interface can be placed).
    pub fn devices(&self) -> Vec<Device> {
        if self.tap_devices.is_empty() && self.tapdevice_mod {
            UPSTREAM_TAP_DEVICES
                .iter()
                .filter_map(|s| Device::parse(s))
                .collect()
        } else {
            self.tap_devices.clone()
        }
    }

    /// The dpservice endpoint URI for tonic.
    pub fn dp_service_uri(&self) -> String {
        if self.dp_service_address.contains("://") {
            self.dp_service_address.clone()
        } else {
            format!("http://{}", self.dp_service_address)
        }
    }
}

/// A client for the API server: `--kubeconfig` if given, else kube's default (in-cluster, `$KUBECONFIG`).
pub async fn client(args: &MetalnetArgs) -> Result<kube::Client, kube::Error> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?
        }
        None => kube::Config::infer().await.map_err(kube::Error::InferConfig)?,
    };
    kube::Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: MetalnetArgs,
    }

    #[test]
    fn upstream_defaults() {
        let a = Cli::try_parse_from(["x", "--node-name", "n1"]).unwrap().args;
        assert_eq!(a.node(), "n1");
        assert_eq!(a.dp_service_address, "127.0.0.1:1337");
        assert_eq!(a.dp_service_uri(), "http://127.0.0.1:1337");
        assert_eq!(a.public_vni, vni!(100));
        assert_eq!(a.metalnet_dir, PathBuf::from("/var/lib/metalnet"));
        assert!(!a.enable_ipv6 && !a.tapdevice_mod);
        assert!(a.devices().is_empty());
    }

    #[test]
    fn every_flag_parses() {
        let a = Cli::try_parse_from([
            "x",
            "--node-name",
            "n1",
            "--dp-service-address",
            "[::1]:1400",
            "--metalbond-peer",
            "[::1]:4711",
            "--metalbond-peer",
            "[::2]:4711",
            "--public-vni",
            "7",
            "--router-address",
            "fc00::1",
            "--enable-ipv6",
            "--tapdevice-mod",
            "--metalnet-dir",
            "/tmp/m",
            "--prefer-network",
            "2001:db8::/52",
            "--namespace",
            "ns",
        ])
        .unwrap()
        .args;
        assert_eq!(a.metalbond_peers, ["[::1]:4711", "[::2]:4711"]);
        assert_eq!(a.public_vni, vni!(7));
        assert_eq!(a.router_address, Some("fc00::1".parse().unwrap()));
        assert_eq!(a.prefer_network, Some("2001:db8::/52".parse().unwrap()));
        let devices = a.devices();
        assert_eq!(devices.len(), 4, "upstream's TAP list in TAP mode");
        assert_eq!(
            (devices[0].name.as_str(), devices[0].device.as_str()),
            ("dtapvf_0", "net_tap2")
        );
        let b = Cli::try_parse_from([
            "x",
            "--tapdevice-mod",
            "--tap-device",
            "vm0=net_tap0",
            "--tap-device",
            "vm1",
        ])
        .unwrap()
        .args;
        let d = b.devices();
        assert_eq!(d.len(), 2);
        assert_eq!((d[1].name.as_str(), d[1].device.as_str()), ("vm1", "vm1"));
        assert!(Cli::try_parse_from(["x", "--tap-device", "=x"]).is_err());
        assert!(Cli::try_parse_from(["x", "--router-address", "10.0.0.1"]).is_err());
    }

    #[test]
    fn metalbond_tls_flags_come_as_a_set() {
        let a = Cli::try_parse_from([
            "x",
            "--metalbond-tls-cert",
            "/c.pem",
            "--metalbond-tls-key",
            "/k.pem",
            "--metalbond-tls-ca",
            "/ca.pem",
        ])
        .unwrap()
        .args;
        assert_eq!(a.metalbond_tls_ca, Some(PathBuf::from("/ca.pem")));
        // The files do not exist: loading names the first one.
        let err = a.metalbond_tls().unwrap_err().to_string();
        assert!(err.starts_with("certificate /c.pem: "), "{err}");
        let partial = Cli::try_parse_from(["x", "--metalbond-tls-cert", "/c.pem"]).unwrap_err();
        assert_eq!(partial.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(
            Cli::try_parse_from(["x"])
                .unwrap()
                .args
                .metalbond_tls()
                .unwrap()
                .is_none()
        );
    }
}
