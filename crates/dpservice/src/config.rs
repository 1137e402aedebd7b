//! Command-line configuration of the service, modelled on dpservice's options (`dpservice-bin [EAL] -- [options]`), plus
//! the TAP-specific port options ironnet needs because it creates its ports itself.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::tap::{MAX_IFNAME_LEN, parse_mac};

/// Why a port specification or the configuration as a whole was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A `--vf` / `--pfN` value could not be parsed.
    #[error("invalid port specification {spec:?}: {reason}")]
    BadPortSpec {
        /// The offending value.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two ports share a TAP name, MAC or device name.
    #[error("duplicate {what} {value:?}")]
    Duplicate {
        /// `TAP name`, `MAC` or `device name`.
        what: &'static str,
        /// The duplicated value.
        value: String,
    },
}

/// One port: the TAP netdev name (or, for a vhost-user port, the socket path), the port's own
/// MAC (source of frames the dataplane sends), the MAC of the netdev (the VM's NIC or the
/// router's interface), and for VFs the device name clients pass in
/// `CreateInterface.device_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// TAP netdev name; for a vhost-user port the socket path.
    pub tap: String,
    /// The socket a VM's vhost-user frontend connects to, for a `vhost-user:PATH` port; `None`
    /// for a TAP.
    pub vhost_user: Option<std::path::PathBuf>,
    /// The dataplane's own MAC on this port.
    pub mac: [u8; 6],
    /// The MAC given to the TAP netdev (the peer: VM NIC or underlay router).
    pub peer_mac: [u8; 6],
    /// Name under which gRPC clients address the port.
    pub device: String,
    /// Queue pairs a vhost-user port offers its frontend (`queues=N`, like QEMU's
    /// `-netdev vhost-user,queues=N`); always 1 for a TAP.
    pub queue_pairs: usize,
}

/// Queue pairs a vhost-user port offers unless `queues=N` says otherwise.
pub const DEFAULT_VHOST_USER_QUEUE_PAIRS: usize = 1;
/// Most queue pairs a vhost-user port offers: one worker thread serves all of a port's queues,
/// so more pairs than this only cost memory and polling.
pub const MAX_VHOST_USER_QUEUE_PAIRS: usize = 16;

/// A deterministic, locally administered MAC pair derived from a TAP name, so that ports are
/// stable across restarts without configuration: own `02:..`, peer `06:..`.
fn derived_macs(name: &str) -> ([u8; 6], [u8; 6]) {
    // FNV-1a: tiny, stable, and good enough to spread names over 40 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    (
        [0x02, b[0], b[1], b[2], b[3], b[4]],
        [0x06, b[0], b[1], b[2], b[3], b[4]],
    )
}

impl PortSpec {
    /// Parses `NAME[,mac=MAC][,peer-mac=MAC][,device=NAME]` (a TAP) or
    /// `vhost-user:PATH[,mac=MAC][,peer-mac=MAC][,device=NAME][,queues=N]` (a vhost-user socket
    /// at the absolute `PATH`, offering `N` queue pairs, 1 to [`MAX_VHOST_USER_QUEUE_PAIRS`],
    /// default [`DEFAULT_VHOST_USER_QUEUE_PAIRS`]). Unset MACs are derived from the name (the path); the device name
    /// defaults to the TAP name, or to the socket file's name without extension.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::BadPortSpec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = spec.split(',');
        let tap = parts.next().unwrap_or_default().to_owned();
        let vhost_user = match tap.strip_prefix(VHOST_USER_PREFIX) {
            Some(path) => Some(vhost_user_path(path).ok_or_else(|| bad(VHOST_USER_PATH_RULE))?),
            None if tap.is_empty() || tap.len() > MAX_IFNAME_LEN || tap.contains('=') => {
                return Err(bad("the TAP name must be 1..=15 characters and come first"));
            }
            None => None,
        };
        let (mut mac, mut peer_mac) = derived_macs(&tap);
        let mut device = match &vhost_user {
            Some(path) => path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned(),
            None => tap.clone(),
        };
        let mut queue_pairs = if vhost_user.is_some() {
            DEFAULT_VHOST_USER_QUEUE_PAIRS
        } else {
            1
        };
        for part in parts {
            let (key, value) = part.split_once('=').ok_or_else(|| bad("options are key=value"))?;
            let parse_unicast = |v: &str| {
                parse_mac(v)
                    .filter(|m| m[0] & 1 == 0 && *m != [0; 6])
                    .ok_or_else(|| bad("bad unicast MAC"))
            };
            match key {
                "mac" => mac = parse_unicast(value)?,
                "peer-mac" => peer_mac = parse_unicast(value)?,
                "device" if !value.is_empty() && value.len() <= crate::validate::MAX_ID_LEN => {
                    device = value.to_owned()
                }
                "device" => return Err(bad("device name must be 1..=63 characters")),
                "queues" if vhost_user.is_none() => {
                    return Err(bad("queues applies to vhost-user ports only"));
                }
                "queues" => {
                    queue_pairs = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_VHOST_USER_QUEUE_PAIRS).contains(n))
                        .ok_or_else(|| bad(VHOST_USER_QUEUES_RULE))?
                }
                _ => return Err(bad("unknown option (mac, peer-mac, device, queues)")),
            }
        }
        if mac == peer_mac {
            return Err(bad("mac and peer-mac must differ"));
        }
        if device.is_empty() || device.len() > crate::validate::MAX_ID_LEN {
            return Err(bad("device name must be 1..=63 characters"));
        }
        Ok(PortSpec {
            tap,
            vhost_user,
            mac,
            peer_mac,
            device,
            queue_pairs,
        })
    }
}

/// Prefix of a `--vf` value naming a vhost-user socket instead of a TAP.
pub const VHOST_USER_PREFIX: &str = "vhost-user:";
const VHOST_USER_QUEUES_RULE: &str = "queues (queue pairs of a vhost-user port) must be 1..=16";
const VHOST_USER_PATH_RULE: &str =
    "a vhost-user socket path must be absolute, at most 107 bytes, without ',' and name a file";

/// A socket path the service can bind: absolute, fits `sun_path` (108 bytes with the NUL),
/// names a file.
fn vhost_user_path(path: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(path);
    (p.is_absolute() && path.len() <= 107 && !path.contains('\0') && p.file_name().is_some())
        .then(|| p.to_owned())
}

fn parse_port(s: &str) -> Result<PortSpec, String> {
    PortSpec::parse(s).map_err(|e| e.to_string())
}

fn parse_mac_arg(s: &str) -> Result<[u8; 6], String> {
    parse_mac(s).ok_or_else(|| format!("invalid MAC {s:?}"))
}

/// `ironnet dpservice` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DpServiceArgs {
    /// First uplink: `NAME[,mac=MAC][,peer-mac=MAC]` (the TAP towards the underlay router).
    #[arg(long, value_parser = parse_port)]
    pub pf0: PortSpec,
    /// Optional second uplink, same syntax as --pf0.
    #[arg(long, value_parser = parse_port)]
    pub pf1: Option<PortSpec>,
    /// A VM port: a TAP `NAME[,mac=MAC][,peer-mac=MAC][,device=NAME]` or a vhost-user socket
    /// `vhost-user:PATH[,…]` a QEMU guest connects to; repeatable, in port order.
    #[arg(long = "vf", value_parser = parse_port)]
    pub vfs: Vec<PortSpec>,
    /// Host underlay IPv6 address; its /64 prefixes every generated underlay address.
    #[arg(long)]
    pub ipv6: Ipv6Addr,
    /// MAC of the underlay router (destination of encapsulated frames). Default: pf0's peer MAC,
    /// i.e. whatever owns the kernel side of the pf0 TAP.
    #[arg(long, value_parser = parse_mac_arg)]
    pub router_mac: Option<[u8; 6]>,
    /// gRPC listen port (on [::]).
    #[arg(long, default_value_t = 1337, value_parser = clap::value_parser!(u16).range(1024..=65535))]
    pub grpc_port: u16,
    /// DHCP option 26 (MTU), 68..=1500.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(68..=1500))]
    pub dhcp_mtu: u16,
    /// DHCP DNS server (option 6); repeatable.
    #[arg(long)]
    pub dhcp_dns: Vec<Ipv4Addr>,
    /// DHCPv6 DNS server (option 23); repeatable.
    #[arg(long)]
    pub dhcpv6_dns: Vec<Ipv6Addr>,
    /// Idle timeout of flows other than established TCP, in seconds (1..=300).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub flow_timeout: u64,
    /// Share of IPv4 egress flows sent via pf0, in percent (0..=100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub wcmp: u8,
    /// Answer neighbour/router solicitations and send router advertisements on VM ports.
    #[arg(long)]
    pub enable_ipv6_overlay: bool,
    /// Compute firewall verdicts but never drop (dpservice's behaviour).
    #[arg(long)]
    pub no_firewall_enforcement: bool,
    /// How many VM ports may be configured (1..=1024). dpservice's 126 is its SmartNIC's number of
    /// virtual functions; software ports have no such bound.
    #[arg(long, default_value_t = ironnet_dataplane::config::MAX_VFS)]
    pub max_vm_ports: usize,
    /// `--metrics-bind-address` (dataplane metrics on `/metrics`) and `--health-probe-bind-address`
    /// (`/healthz`, `/livez`, `/readyz`); both off by default.
    #[command(flatten)]
    pub telemetry: ironnet_telemetry::TelemetryArgs,
}

impl DpServiceArgs {
    /// Checks what clap cannot: names, MACs and device names are unique across all ports, and
    /// uplinks are TAPs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for pf in std::iter::once(&self.pf0).chain(&self.pf1) {
            if pf.vhost_user.is_some() {
                return Err(ConfigError::BadPortSpec {
                    spec: pf.tap.clone(),
                    reason: "an uplink must be a TAP, not a vhost-user socket".into(),
                });
            }
        }
        let ports: Vec<&PortSpec> = std::iter::once(&self.pf0)
            .chain(&self.pf1)
            .chain(&self.vfs)
            .collect();
        let mut names = std::collections::HashSet::new();
        let mut macs = std::collections::HashSet::new();
        let mut devices = std::collections::HashSet::new();
        for p in &ports {
            if !names.insert(p.tap.as_str()) {
                return Err(ConfigError::Duplicate {
                    what: "TAP name",
                    value: p.tap.clone(),
                });
            }
            for m in [p.mac, p.peer_mac] {
                if !macs.insert(m) {
                    return Err(ConfigError::Duplicate {
                        what: "MAC",
                        value: crate::tap::format_mac(m),
                    });
                }
            }
            if !devices.insert(p.device.as_str()) {
                return Err(ConfigError::Duplicate {
                    what: "device name",
                    value: p.device.clone(),
                });
            }
        }
        Ok(())
    }

    /// The flow timeout as a duration.
    pub fn flow_timeout(&self) -> Duration {
        Duration::from_secs(self.flow_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: DpServiceArgs,
    }

    #[test]
    fn port_specs() {
        let p = PortSpec::parse("vm1tap,mac=02:00:00:00:00:0a,device=net_tap2").unwrap();
        assert_eq!(p.tap, "vm1tap");
        assert_eq!(p.mac, [2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(p.device, "net_tap2");
        assert_eq!(p.peer_mac, derived_macs("vm1tap").1);
        let d = PortSpec::parse("pf0").unwrap();
        assert_eq!(d.device, "pf0");
        assert_ne!(d.mac, d.peer_mac);
        assert_eq!(d, PortSpec::parse("pf0").unwrap(), "derived MACs are stable");
        for bad in [
            "",
            "a234567890123456",
            "x,mac=01:00:00:00:00:01",
            "x,mac=zz",
            "x,foo=1",
            "x,device=",
            "x,mac",
            "x,mac=02:00:00:00:00:01,peer-mac=02:00:00:00:00:01",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vhost_user_port_specs() {
        let p = PortSpec::parse("vhost-user:/run/ironnet/vm0.sock,device=net_tap3").unwrap();
        assert_eq!(
            p.vhost_user.as_deref(),
            Some(std::path::Path::new("/run/ironnet/vm0.sock"))
        );
        assert_eq!(p.device, "net_tap3");
        assert_ne!(p.mac, p.peer_mac);
        let d = PortSpec::parse("vhost-user:/run/ironnet/vm1.sock").unwrap();
        assert_eq!(d.device, "vm1", "device defaults to the socket file's stem");
        assert_eq!(d.queue_pairs, DEFAULT_VHOST_USER_QUEUE_PAIRS);
        let mq = PortSpec::parse("vhost-user:/run/ironnet/vm2.sock,queues=16").unwrap();
        assert_eq!(mq.queue_pairs, MAX_VHOST_USER_QUEUE_PAIRS);
        for (spec, reason) in [
            (
                "vhost-user:/run/ironnet/vm2.sock,queues=17",
                VHOST_USER_QUEUES_RULE,
            ),
            (
                "vhost-user:/run/ironnet/vm2.sock,queues=0",
                VHOST_USER_QUEUES_RULE,
            ),
            (
                "vhost-user:/run/ironnet/vm2.sock,queues=two",
                VHOST_USER_QUEUES_RULE,
            ),
            ("tap0,queues=2", "queues applies to vhost-user ports only"),
        ] {
            match PortSpec::parse(spec) {
                Err(ConfigError::BadPortSpec { reason: r, .. }) => assert_eq!(r, reason, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
        assert_eq!(PortSpec::parse("tap0").unwrap().vhost_user, None);
        let long = format!("vhost-user:/{}", "x".repeat(107));
        for bad in [
            "vhost-user:",
            "vhost-user:relative.sock",
            "vhost-user:/",
            long.as_str(),
        ] {
            assert!(
                matches!(PortSpec::parse(bad), Err(ConfigError::BadPortSpec { .. })),
                "{bad}"
            );
        }
        let up =
            Cli::try_parse_from(["x", "--pf0", "vhost-user:/tmp/up.sock", "--ipv6", "fc00:1::1"]).unwrap();
        assert!(matches!(up.args.validate(), Err(ConfigError::BadPortSpec { .. })));
    }

    #[test]
    fn flags_parse_with_upstream_defaults_and_ranges() {
        let cli = Cli::try_parse_from([
            "x",
            "--pf0",
            "up0",
            "--ipv6",
            "fc00:1::1",
            "--vf",
            "v0",
            "--vf",
            "v1",
        ])
        .unwrap();
        let a = cli.args;
        assert_eq!(a.grpc_port, 1337);
        assert_eq!(a.dhcp_mtu, 1500);
        assert_eq!(a.flow_timeout(), Duration::from_secs(30));
        assert_eq!(a.wcmp, 100);
        assert_eq!(a.vfs.len(), 2);
        assert!(a.validate().is_ok());
        for bad in [
            vec!["x", "--pf0", "up0", "--ipv6", "fc00:1::1", "--dhcp-mtu", "67"],
            vec!["x", "--pf0", "up0", "--ipv6", "fc00:1::1", "--grpc-port", "80"],
            vec!["x", "--pf0", "up0", "--ipv6", "fc00:1::1", "--wcmp", "101"],
            vec!["x", "--pf0", "up0", "--ipv6", "fc00:1::1", "--flow-timeout", "0"],
            vec!["x", "--pf0", "up0", "--ipv6", "10.0.0.1"],
            vec!["x", "--ipv6", "fc00:1::1"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
        let dup = Cli::try_parse_from(["x", "--pf0", "up0", "--ipv6", "fc00:1::1", "--vf", "up0"]).unwrap();
        assert!(matches!(
            dup.args.validate(),
            Err(ConfigError::Duplicate { what: "TAP name", .. })
        ));
        let dup = Cli::try_parse_from([
            "x",
            "--pf0",
            "up0",
            "--ipv6",
            "fc00:1::1",
            "--vf",
            "a,device=d",
            "--vf",
            "b,device=d",
        ])
        .unwrap();
        assert!(matches!(
            dup.args.validate(),
            Err(ConfigError::Duplicate {
                what: "device name",
                ..
            })
        ));
    }
}
