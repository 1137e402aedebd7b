//! The gRPC API against a real in-process server on a loopback port, through the generated
//! tonic client: every RPC with valid and invalid requests, checking gRPC codes, messages and
//! dpservice business codes (gRPC status codes for malformed requests; business errors as `Status{code, message}` with gRPC OK, as dpservice's `dpdkironcore.v1` service). Needs root (the service creates TAP devices; they
//! get names unique to this test process and disappear when the service stops).

use std::sync::atomic::{AtomicU32, Ordering};

use ironnet_dpservice::RunningService;
use ironnet_dpservice::config::{DpServiceArgs, PortSpec};
use ironnet_dpservice::proto::dpd_kironcore_client::DpdKironcoreClient;
use ironnet_dpservice::proto::{self, IpVersion};
use tonic::Code;
use tonic::transport::Channel;

const HOST_UNDERLAY: &str = "fc00:1::1";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A service with one uplink and three VM ports, and a client connected to it.
struct Harness {
    service: Option<RunningService>,
    client: DpdKironcoreClient<Channel>,
    taps: Vec<String>,
}

impl Harness {
    async fn start() -> Harness {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{:x}{n}", std::process::id() % 0xfffff);
        let pf = format!("gp{tag}");
        let vfs: Vec<String> = (0..3).map(|i| format!("gv{tag}{i}")).collect();
        let args = DpServiceArgs {
            pf0: PortSpec::parse(&pf).unwrap(),
            pf1: None,
            vfs: vfs
                .iter()
                .enumerate()
                .map(|(i, v)| PortSpec::parse(&format!("{v},device=net_tap{i}")).unwrap())
                .collect(),
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
            max_vm_ports: ironnet_dataplane::config::MAX_VFS,
            telemetry: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = RunningService::start(&args, listener)
            .await
            .expect("service starts (needs root)");
        let client = DpdKironcoreClient::connect(format!("http://{}", service.local_addr()))
            .await
            .unwrap();
        let mut taps = vfs;
        taps.push(pf);
        Harness {
            service: Some(service),
            client,
            taps,
        }
    }

    async fn initialized() -> Harness {
        let mut h = Harness::start().await;
        let r = h
            .client
            .initialize(proto::InitializeRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_success(&r.status);
        h
    }

    /// An initialized service with interface `vm1` (VNI 100, 10.0.0.1, on `net_tap0`), and a client.
    async fn with_vm1() -> (Harness, DpdKironcoreClient<Channel>) {
        let h = Harness::initialized().await;
        let mut c = h.client.clone();
        assert_success(
            &c.create_interface(iface("vm1", 100, "10.0.0.1", "::", "net_tap0"))
                .await
                .unwrap()
                .into_inner()
                .status,
        );
        (h, c)
    }

    async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.shutdown().await;
        }
        for t in &self.taps {
            assert!(
                !std::path::Path::new(&format!("/sys/class/net/{t}")).exists(),
                "{t} removed on shutdown"
            );
        }
    }
}

fn assert_success(s: &Option<proto::Status>) {
    assert_eq!(
        s.as_ref().map(|s| (s.code, s.message.as_str())),
        Some((0, "Success"))
    );
}

fn assert_code(s: &Option<proto::Status>, code: u32, name: &str) {
    assert_eq!(
        s.as_ref().map(|s| (s.code, s.message.as_str())),
        Some((code, name))
    );
}

fn invalid<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, msg: &str) {
    let e = r.expect_err("INVALID_ARGUMENT expected");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, msg));
}

fn v4(s: &str) -> Option<proto::IpAddress> {
    Some(proto::IpAddress {
        ipver: IpVersion::Ipv4 as i32,
        address: s.into(),
    })
}

fn v6(s: &str) -> Option<proto::IpAddress> {
    Some(proto::IpAddress {
        ipver: IpVersion::Ipv6 as i32,
        address: s.into(),
    })
}

fn pfx(ip: Option<proto::IpAddress>, length: u32) -> Option<proto::Prefix> {
    Some(proto::Prefix {
        ip,
        length,
        underlay_route: vec![],
    })
}

fn iface(id: &str, vni: u32, ip4: &str, ip6: &str, device: &str) -> proto::CreateInterfaceRequest {
    proto::CreateInterfaceRequest {
        interface_id: id.into(),
        vni,
        ipv4_config: Some(proto::IpConfig {
            primary_address: ip4.into(),
        }),
        ipv6_config: Some(proto::IpConfig {
            primary_address: ip6.into(),
        }),
        device_name: device.into(),
        ..Default::default()
    }
}

fn in_host_prefix(underlay: &[u8]) -> std::net::Ipv6Addr {
    let addr: std::net::Ipv6Addr = std::str::from_utf8(underlay).unwrap().parse().unwrap();
    let host: std::net::Ipv6Addr = HOST_UNDERLAY.parse().unwrap();
    assert_eq!(
        addr.octets()[..8],
        host.octets()[..8],
        "underlay {addr} in the host /64"
    );
    addr
}

fn carrier(tap: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{tap}/carrier"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn every_rpc_but_initialize_is_aborted_before_initialize() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    macro_rules! aborted {
        ($($call:ident($req:expr)),* $(,)?) => {$(
            let e = c.$call($req).await.expect_err(stringify!($call));
            assert_eq!((e.code(), e.message()), (Code::Aborted, "not initialized"), stringify!($call));
        )*};
    }
    aborted!(
        check_initialized(proto::CheckInitializedRequest {}),
        get_version(proto::GetVersionRequest::default()),
        list_interfaces(proto::ListInterfacesRequest {}),
        get_interface(proto::GetInterfaceRequest::default()),
        create_interface(proto::CreateInterfaceRequest::default()),
        delete_interface(proto::DeleteInterfaceRequest::default()),
        list_prefixes(proto::ListPrefixesRequest::default()),
        create_prefix(proto::CreatePrefixRequest::default()),
        delete_prefix(proto::DeletePrefixRequest::default()),
        list_load_balancer_prefixes(proto::ListLoadBalancerPrefixesRequest::default()),
        create_load_balancer_prefix(proto::CreateLoadBalancerPrefixRequest::default()),
        delete_load_balancer_prefix(proto::DeleteLoadBalancerPrefixRequest::default()),
        create_vip(proto::CreateVipRequest::default()),
        get_vip(proto::GetVipRequest::default()),
        delete_vip(proto::DeleteVipRequest::default()),
        create_load_balancer(proto::CreateLoadBalancerRequest::default()),
        get_load_balancer(proto::GetLoadBalancerRequest::default()),
        delete_load_balancer(proto::DeleteLoadBalancerRequest::default()),
        list_load_balancers(proto::ListLoadBalancersRequest {}),
        create_load_balancer_target(proto::CreateLoadBalancerTargetRequest::default()),
        list_load_balancer_targets(proto::ListLoadBalancerTargetsRequest::default()),
        delete_load_balancer_target(proto::DeleteLoadBalancerTargetRequest::default()),
        create_nat(proto::CreateNatRequest::default()),
        get_nat(proto::GetNatRequest::default()),
        delete_nat(proto::DeleteNatRequest::default()),
        list_local_nats(proto::ListLocalNatsRequest::default()),
        create_neighbor_nat(proto::CreateNeighborNatRequest::default()),
        delete_neighbor_nat(proto::DeleteNeighborNatRequest::default()),
        list_neighbor_nats(proto::ListNeighborNatsRequest::default()),
        list_routes(proto::ListRoutesRequest::default()),
        create_route(proto::CreateRouteRequest::default()),
        delete_route(proto::DeleteRouteRequest::default()),
        check_vni_in_use(proto::CheckVniInUseRequest::default()),
        reset_vni(proto::ResetVniRequest::default()),
        list_firewall_rules(proto::ListFirewallRulesRequest::default()),
        create_firewall_rule(proto::CreateFirewallRuleRequest::default()),
        get_firewall_rule(proto::GetFirewallRuleRequest::default()),
        delete_firewall_rule(proto::DeleteFirewallRuleRequest::default()),
        capture_start(proto::CaptureStartRequest::default()),
        capture_stop(proto::CaptureStopRequest {}),
        capture_status(proto::CaptureStatusRequest {}),
    );

    // Health is SERVING from the start.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        Channel::from_shared(format!("http://{}", h.service.as_ref().unwrap().local_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let s = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "dpdkironcore.v1.DPDKironcore".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        s.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let init = c
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_success(&init.status);
    assert_eq!(init.uuid, init.uuid.to_uppercase());
    assert!(uuid::Uuid::parse_str(&init.uuid).is_ok());
    let check = c
        .check_initialized(proto::CheckInitializedRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_success(&check.status);
    assert_eq!(check.uuid, init.uuid);
    // Initialize may be called again; the uuid stays (it identifies the process).
    assert_eq!(
        c.initialize(proto::InitializeRequest {})
            .await
            .unwrap()
            .into_inner()
            .uuid,
        init.uuid
    );

    let req = |p: &str, n: &str, v: &str| proto::GetVersionRequest {
        client_protocol: p.into(),
        client_name: n.into(),
        client_version: v.into(),
    };
    let ver = c.get_version(req("1", "test", "0.1")).await.unwrap().into_inner();
    assert_success(&ver.status);
    assert_eq!(ver.service_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(ver.service_protocol, env!("CARGO_PKG_VERSION"));
    invalid(
        c.get_version(req("", "test", "0.1")).await,
        "Invalid client_protocol",
    );
    invalid(c.get_version(req("1", "", "0.1")).await, "Invalid client_name");
    invalid(
        c.get_version(req("1", "test", "")).await,
        "Invalid client_version",
    );

    for e in [
        c.capture_start(proto::CaptureStartRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
        c.capture_stop(proto::CaptureStopRequest {})
            .await
            .map(|_| ())
            .unwrap_err(),
        c.capture_status(proto::CaptureStatusRequest {})
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::Unimplemented);
    }
    h.stop().await;
}

#[tokio::test]
async fn interfaces_lifecycle_and_errors() {
    let h = Harness::initialized().await;
    let mut c = h.client.clone();
    let vf0 = h.taps[0].clone();
    assert_eq!(
        carrier(&vf0),
        "0",
        "a VM port has no carrier before its interface exists"
    );

    let r = c
        .create_interface(iface("vm1", 100, "10.0.0.1", "fd00::1", "net_tap0"))
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    in_host_prefix(&r.underlay_route);
    assert_eq!(r.vf.as_ref().unwrap().name, vf0);
    assert_eq!(carrier(&vf0), "1", "the VM port comes up with its interface");

    // Business errors: OK + Status{code, NAME}.
    let r = c
        .create_interface(iface("vm1", 100, "10.0.0.2", "::", "net_tap1"))
        .await
        .unwrap()
        .into_inner();
    assert_code(&r.status, 402, "VM_HANDLE");
    let r = c
        .create_interface(iface("vm2", 100, "10.0.0.2", "::", "net_tap0"))
        .await
        .unwrap()
        .into_inner();
    assert_code(&r.status, 202, "ALREADY_EXISTS");
    let r = c
        .create_interface(iface("vm2", 100, "10.0.0.2", "::", "nope"))
        .await
        .unwrap()
        .into_inner();
    assert_code(&r.status, 201, "NOT_FOUND");
    assert!(r.underlay_route.is_empty() && r.vf.is_none());
    let r = c
        .create_interface(iface("vm2", 100, "10.0.0.1", "::", "net_tap1"))
        .await
        .unwrap()
        .into_inner();
    assert_code(&r.status, 301, "ROUTE_EXISTS");

    // Syntactic errors: INVALID_ARGUMENT.
    invalid(
        c.create_interface(iface("", 100, "10.0.0.2", "::", "net_tap1"))
            .await,
        "Invalid interface_id",
    );
    invalid(
        c.create_interface(iface("vm 2", 100, "10.0.0.2", "::", "net_tap1"))
            .await,
        "Invalid interface_id",
    );
    invalid(
        c.create_interface(iface("vm2", 1 << 24, "10.0.0.2", "::", "net_tap1"))
            .await,
        "VNI exceeds 24-bit range",
    );
    invalid(
        c.create_interface(iface("vm2", 100, "0.0.0.0", "::", "net_tap1"))
            .await,
        "Invalid ipv4_config.primary_address and ipv6_config.primary_address combination",
    );
    invalid(
        c.create_interface(iface("vm2", 100, "", "::", "net_tap1")).await,
        "Invalid ipv4_config.primary_address",
    );
    invalid(
        c.create_interface(iface("vm2", 100, "10.0.0.2", "x", "net_tap1"))
            .await,
        "Invalid ipv6_config.primary_address",
    );
    invalid(
        c.create_interface(iface("vm2", 100, "10.0.0.2", "::", "")).await,
        "Invalid device_name",
    );
    let mut bad_pref = iface("vm2", 100, "10.0.0.2", "::", "net_tap1");
    bad_pref.preferred_underlay_route = b"fc00:9::d000:8000:0:1".to_vec();
    invalid(
        c.create_interface(bad_pref).await,
        "Invalid preferred_underlay_route",
    );
    let mut long_host = iface("vm2", 100, "10.0.0.2", "::", "net_tap1");
    long_host.hostname = "h".repeat(64);
    invalid(c.create_interface(long_host).await, "Invalid hostname");

    // A preferred underlay is used as given.
    let mut pref = iface("vm2", 100, "10.0.0.2", "::", "net_tap1");
    pref.preferred_underlay_route = b"fc00:1::d000:8000:0:42".to_vec();
    pref.hostname = "vm-two".into();
    let r = c.create_interface(pref).await.unwrap().into_inner();
    assert_success(&r.status);
    assert_eq!(r.underlay_route, b"fc00:1::d000:8000:0:42");

    let got = c
        .get_interface(proto::GetInterfaceRequest {
            interface_id: "vm2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&got.status);
    let i = got.interface.unwrap();
    assert_eq!(
        (i.vni, i.primary_ipv4.as_slice(), i.primary_ipv6.as_slice()),
        (100, &b"10.0.0.2"[..], &b"::"[..])
    );
    assert_eq!((i.pci_name.as_str(), i.hostname.as_str()), ("net_tap1", "vm-two"));
    let r = c
        .get_interface(proto::GetInterfaceRequest {
            interface_id: "nope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_code(&r.status, 201, "NOT_FOUND");
    invalid(
        c.get_interface(proto::GetInterfaceRequest {
            interface_id: "".into(),
        })
        .await,
        "Invalid interface_id",
    );

    let list = c
        .list_interfaces(proto::ListInterfacesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_success(&list.status);
    let mut ids: Vec<_> = list
        .interfaces
        .iter()
        .map(|i| String::from_utf8(i.id.clone()).unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["vm1", "vm2"]);

    let r = c
        .delete_interface(proto::DeleteInterfaceRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    assert_eq!(carrier(&vf0), "0", "the VM port goes down with its interface");
    let r = c
        .delete_interface(proto::DeleteInterfaceRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_code(&r.status, 201, "NOT_FOUND");
    h.stop().await;
}

/// Prefixes and load-balancer prefixes on an interface: create, duplicates, unknown interface, malformed, list, delete.
#[tokio::test]
async fn prefixes_and_load_balancer_prefixes() {
    let (h, mut c) = Harness::with_vm1().await;
    let create = |id: &str, ip, len| proto::CreatePrefixRequest {
        interface_id: id.into(),
        prefix: pfx(ip, len),
        preferred_underlay_route: vec![],
    };
    let r = c
        .create_prefix(create("vm1", v4("10.1.0.0"), 24))
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    let underlay = in_host_prefix(&r.underlay_route);
    assert_code(
        &c.create_prefix(create("vm1", v4("10.1.0.0"), 24))
            .await
            .unwrap()
            .into_inner()
            .status,
        301,
        "ROUTE_EXISTS",
    );
    assert_code(
        &c.create_prefix(create("nope", v4("10.2.0.0"), 24))
            .await
            .unwrap()
            .into_inner()
            .status,
        205,
        "NO_VM",
    );
    invalid(
        c.create_prefix(create("vm1", v4("10.2.0.0"), 33)).await,
        "Invalid prefix.length",
    );
    invalid(
        c.create_prefix(create("vm1", v4("10.2.0.x"), 24)).await,
        "Invalid prefix.ip",
    );
    let list = c
        .list_prefixes(proto::ListPrefixesRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&list.status);
    assert_eq!(list.prefixes.len(), 1);
    assert_eq!(list.prefixes[0].ip.as_ref().unwrap().address, b"10.1.0.0");
    assert_eq!(list.prefixes[0].length, 24);
    assert_eq!(list.prefixes[0].underlay_route, underlay.to_string().into_bytes());
    let del = |id: &str, ip, len| proto::DeletePrefixRequest {
        interface_id: id.into(),
        prefix: pfx(ip, len),
    };
    assert_success(
        &c.delete_prefix(del("vm1", v4("10.1.0.0"), 24))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.delete_prefix(del("vm1", v4("10.1.0.0"), 24))
            .await
            .unwrap()
            .into_inner()
            .status,
        302,
        "ROUTE_NOT_FOUND",
    );

    // Load-balancer prefixes.
    let lbp = proto::CreateLoadBalancerPrefixRequest {
        interface_id: "vm1".into(),
        prefix: pfx(v4("10.9.9.9"), 32),
        preferred_underlay_route: vec![],
    };
    let r = c
        .create_load_balancer_prefix(lbp.clone())
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    in_host_prefix(&r.underlay_route);
    assert_code(
        &c.create_load_balancer_prefix(lbp)
            .await
            .unwrap()
            .into_inner()
            .status,
        202,
        "ALREADY_EXISTS",
    );
    let list = c
        .list_load_balancer_prefixes(proto::ListLoadBalancerPrefixesRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.prefixes.len(), 1);
    let d = proto::DeleteLoadBalancerPrefixRequest {
        interface_id: "vm1".into(),
        prefix: pfx(v4("10.9.9.9"), 32),
    };
    assert_success(
        &c.delete_load_balancer_prefix(d.clone())
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.delete_load_balancer_prefix(d)
            .await
            .unwrap()
            .into_inner()
            .status,
        201,
        "NOT_FOUND",
    );
    h.stop().await;
}

/// The VIP of an interface: get before create, create, duplicates, wrong IP version, unknown interface, malformed, get, delete.
#[tokio::test]
async fn vips() {
    let (h, mut c) = Harness::with_vm1().await;
    let vip = |id: &str, ip| proto::CreateVipRequest {
        interface_id: id.into(),
        vip_ip: ip,
        preferred_underlay_route: vec![],
    };
    let get = |id: &str| proto::GetVipRequest {
        interface_id: id.into(),
    };
    assert_code(
        &c.get_vip(get("vm1")).await.unwrap().into_inner().status,
        341,
        "SNAT_NO_DATA",
    );
    let r = c
        .create_vip(vip("vm1", v4("172.16.0.1")))
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    let vip_underlay = in_host_prefix(&r.underlay_route);
    assert_code(
        &c.create_vip(vip("vm1", v4("172.16.0.2")))
            .await
            .unwrap()
            .into_inner()
            .status,
        343,
        "SNAT_EXISTS",
    );
    assert_code(
        &c.create_vip(vip("vm1", v6("2001:db8::1")))
            .await
            .unwrap()
            .into_inner()
            .status,
        204,
        "BAD_IPVER",
    );
    assert_code(
        &c.create_vip(vip("nope", v4("172.16.0.2")))
            .await
            .unwrap()
            .into_inner()
            .status,
        205,
        "NO_VM",
    );
    invalid(c.create_vip(vip("vm1", None)).await, "Invalid vip_ip");
    invalid(c.create_vip(vip("vm1", v6("172.16.0.2"))).await, "Invalid vip_ip");
    let g = c.get_vip(get("vm1")).await.unwrap().into_inner();
    assert_success(&g.status);
    assert_eq!(g.vip_ip.unwrap().address, b"172.16.0.1");
    assert_eq!(g.underlay_route, vip_underlay.to_string().into_bytes());
    assert_success(
        &c.delete_vip(proto::DeleteVipRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status,
    );
    assert_code(
        &c.delete_vip(proto::DeleteVipRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status,
        341,
        "SNAT_NO_DATA",
    );
    h.stop().await;
}

/// Local NATs and neighbour NATs: port-range validation, create, duplicates, wrong IP version, get, list, delete.
#[tokio::test]
async fn nats_and_neighbor_nats() {
    let (h, mut c) = Harness::with_vm1().await;
    let nat = |id: &str, ip, min, max| proto::CreateNatRequest {
        interface_id: id.into(),
        nat_ip: ip,
        min_port: min,
        max_port: max,
        preferred_underlay_route: vec![],
    };
    invalid(
        c.create_nat(nat("vm1", v4("172.16.1.1"), 2000, 1000)).await,
        "Invalid port range",
    );
    invalid(
        c.create_nat(nat("vm1", v4("172.16.1.1"), 1000, 65536)).await,
        "Invalid port range",
    );
    let r = c
        .create_nat(nat("vm1", v4("172.16.1.1"), 1000, 2000))
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    in_host_prefix(&r.underlay_route);
    assert_code(
        &c.create_nat(nat("vm1", v4("172.16.1.1"), 3000, 4000))
            .await
            .unwrap()
            .into_inner()
            .status,
        343,
        "SNAT_EXISTS",
    );
    assert_code(
        &c.create_nat(nat("vm1", v6("2001:db8::1"), 3000, 4000))
            .await
            .unwrap()
            .into_inner()
            .status,
        204,
        "BAD_IPVER",
    );
    let g = c
        .get_nat(proto::GetNatRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&g.status);
    assert_eq!(
        (g.nat_ip.unwrap().address.as_slice(), g.min_port, g.max_port),
        (&b"172.16.1.1"[..], 1000, 2000)
    );
    let l = c
        .list_local_nats(proto::ListLocalNatsRequest {
            nat_ip: v4("0.0.0.0"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&l.status);
    assert_eq!(l.nat_entries.len(), 1);
    assert_eq!(l.nat_entries[0].nat_ip.as_ref().unwrap().address, b"10.0.0.1");
    assert_eq!(
        l.nat_entries[0].actual_nat_ip.as_ref().unwrap().address,
        b"172.16.1.1"
    );
    assert_eq!(l.nat_entries[0].vni, 100);

    let nn = |ip, min, max, ul: &str| proto::CreateNeighborNatRequest {
        nat_ip: ip,
        vni: 100,
        min_port: min,
        max_port: max,
        underlay_route: ul.into(),
    };
    assert_success(
        &c.create_neighbor_nat(nn(v4("172.16.1.1"), 3000, 4000, "fc00:2::d000:0:0:9"))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.create_neighbor_nat(nn(v4("172.16.1.1"), 3500, 4500, "fc00:2::d000:0:0:9"))
            .await
            .unwrap()
            .into_inner()
            .status,
        202,
        "ALREADY_EXISTS",
    );
    assert_code(
        &c.create_neighbor_nat(nn(v6("2001:db8::1"), 3000, 4000, "fc00:2::d000:0:0:9"))
            .await
            .unwrap()
            .into_inner()
            .status,
        204,
        "BAD_IPVER",
    );
    invalid(
        c.create_neighbor_nat(nn(v4("172.16.1.1"), 5000, 6000, "bogus"))
            .await,
        "Invalid underlay_route",
    );
    let l = c
        .list_neighbor_nats(proto::ListNeighborNatsRequest {
            nat_ip: v4("172.16.1.1"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.nat_entries.len(), 1);
    assert_eq!(l.nat_entries[0].underlay_route, b"fc00:2::d000:0:0:9");
    let dn = |min, max| proto::DeleteNeighborNatRequest {
        nat_ip: v4("172.16.1.1"),
        vni: 100,
        min_port: min,
        max_port: max,
    };
    assert_code(
        &c.delete_neighbor_nat(dn(3000, 3999))
            .await
            .unwrap()
            .into_inner()
            .status,
        201,
        "NOT_FOUND",
    );
    assert_success(
        &c.delete_neighbor_nat(dn(3000, 4000))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_success(
        &c.delete_nat(proto::DeleteNatRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status,
    );
    assert_code(
        &c.get_nat(proto::GetNatRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status,
        341,
        "SNAT_NO_DATA",
    );
    h.stop().await;
}

/// Routes of a VNI: create, overlapping prefix, wrong next-hop version, unknown VNI, malformed, list, delete.
#[tokio::test]
async fn routes() {
    let (h, mut c) = Harness::with_vm1().await;
    let route = |ip, len, nh| proto::CreateRouteRequest {
        vni: 100,
        route: Some(proto::Route {
            prefix: pfx(ip, len),
            nexthop_vni: 100,
            nexthop_address: nh,
            weight: 0,
        }),
    };
    assert_success(
        &c.create_route(route(v4("192.168.0.0"), 16, v6("fc00:2::1")))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.create_route(route(v4("192.168.3.4"), 16, v6("fc00:2::1")))
            .await
            .unwrap()
            .into_inner()
            .status,
        301,
        "ROUTE_EXISTS",
    );
    assert_code(
        &c.create_route(route(v4("192.169.0.0"), 16, v4("10.0.0.9")))
            .await
            .unwrap()
            .into_inner()
            .status,
        204,
        "BAD_IPVER",
    );
    let mut other_vni = route(v4("192.169.0.0"), 16, v6("fc00:2::1"));
    other_vni.vni = 999;
    assert_code(
        &c.create_route(other_vni).await.unwrap().into_inner().status,
        206,
        "NO_VNI",
    );
    invalid(
        c.create_route(proto::CreateRouteRequest {
            vni: 100,
            route: None,
        })
        .await,
        "Invalid route",
    );
    invalid(
        c.create_route(route(v4("192.169.0.0"), 40, v6("fc00:2::1")))
            .await,
        "Invalid route.prefix.length",
    );
    invalid(
        c.create_route(route(v4("192.169.0.0"), 16, None)).await,
        "Invalid route.nexthop_address",
    );
    let l = c
        .list_routes(proto::ListRoutesRequest { vni: 100 })
        .await
        .unwrap()
        .into_inner();
    assert_success(&l.status);
    assert_eq!(l.routes.len(), 1);
    let r0 = &l.routes[0];
    assert_eq!(
        r0.prefix.as_ref().unwrap().ip.as_ref().unwrap().address,
        b"192.168.0.0"
    );
    assert_eq!(r0.nexthop_address.as_ref().unwrap().address, b"fc00:2::1");
    assert_code(
        &c.list_routes(proto::ListRoutesRequest { vni: 999 })
            .await
            .unwrap()
            .into_inner()
            .status,
        206,
        "NO_VNI",
    );
    let del = |ip, len| proto::DeleteRouteRequest {
        vni: 100,
        route: Some(proto::Route {
            prefix: pfx(ip, len),
            ..Default::default()
        }),
    };
    assert_code(
        &c.delete_route(del(v4("10.0.0.1"), 32))
            .await
            .unwrap()
            .into_inner()
            .status,
        304,
        "ROUTE_BAD_PORT",
    );
    assert_success(
        &c.delete_route(del(v4("192.168.0.0"), 16))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.delete_route(del(v4("192.168.0.0"), 16))
            .await
            .unwrap()
            .into_inner()
            .status,
        302,
        "ROUTE_NOT_FOUND",
    );
    h.stop().await;
}

/// VNI in-use checks and resets: type mismatches, invalid types, reset.
#[tokio::test]
async fn vnis() {
    let (h, mut c) = Harness::with_vm1().await;
    let check = |vni, t: proto::VniType| proto::CheckVniInUseRequest {
        vni,
        r#type: t as i32,
    };
    let r = c
        .check_vni_in_use(check(100, proto::VniType::VniIpv4))
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    assert!(r.in_use);
    assert!(
        !c.check_vni_in_use(check(101, proto::VniType::VniIpv4))
            .await
            .unwrap()
            .into_inner()
            .in_use
    );
    assert_code(
        &c.check_vni_in_use(check(100, proto::VniType::VniBoth))
            .await
            .unwrap()
            .into_inner()
            .status,
        203,
        "WRONG_TYPE",
    );
    invalid(
        c.check_vni_in_use(proto::CheckVniInUseRequest { vni: 100, r#type: 7 })
            .await,
        "Invalid type",
    );
    let reset = |t: proto::VniType| proto::ResetVniRequest {
        vni: 100,
        r#type: t as i32,
    };
    assert_code(
        &c.reset_vni(reset(proto::VniType::VniIpv4))
            .await
            .unwrap()
            .into_inner()
            .status,
        203,
        "WRONG_TYPE",
    );
    assert_success(
        &c.reset_vni(reset(proto::VniType::VniBoth))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    h.stop().await;
}

/// Load balancers and their targets: create, duplicates, malformed, get, list, delete.
#[tokio::test]
async fn load_balancers() {
    let h = Harness::initialized().await;
    let mut c = h.client.clone();
    let port = |port, p: proto::Protocol| proto::LbPort {
        port,
        protocol: p as i32,
    };
    let lb = |id: &str, ip, ports: Vec<proto::LbPort>| proto::CreateLoadBalancerRequest {
        loadbalancer_id: id.into(),
        loadbalanced_ip: ip,
        vni: 100,
        loadbalanced_ports: ports,
        preferred_underlay_route: vec![],
    };
    let r = c
        .create_load_balancer(lb("lb1", v4("10.20.0.1"), vec![port(80, proto::Protocol::Tcp)]))
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    let lb_underlay = in_host_prefix(&r.underlay_route);
    assert_code(
        &c.create_load_balancer(lb("lb2", v4("10.20.0.1"), vec![]))
            .await
            .unwrap()
            .into_inner()
            .status,
        202,
        "ALREADY_EXISTS",
    );
    invalid(
        c.create_load_balancer(lb("", v4("10.20.0.2"), vec![])).await,
        "Invalid loadbalancer_id",
    );
    invalid(
        c.create_load_balancer(lb("lb3", v4("10.20.0.3"), vec![port(80, proto::Protocol::Icmp)]))
            .await,
        "Invalid loadbalanced_ports.protocol",
    );
    invalid(
        c.create_load_balancer(lb(
            "lb3",
            v4("10.20.0.3"),
            (1..=16).map(|p| port(p, proto::Protocol::Udp)).collect(),
        ))
        .await,
        "Too many loadbalanced_ports",
    );
    invalid(
        c.create_load_balancer(lb(
            "lb3",
            v4("10.20.0.3"),
            vec![port(53, proto::Protocol::Udp); 2],
        ))
        .await,
        "Duplicate loadbalanced_ports entry",
    );
    let g = c
        .get_load_balancer(proto::GetLoadBalancerRequest {
            loadbalancer_id: "lb1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&g.status);
    assert_eq!(g.loadbalanced_ip.unwrap().address, b"10.20.0.1");
    assert_eq!((g.vni, g.loadbalanced_ports.len()), (100, 1));
    assert_eq!(g.underlay_route, lb_underlay.to_string().into_bytes());
    assert_code(
        &c.get_load_balancer(proto::GetLoadBalancerRequest {
            loadbalancer_id: "x".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status,
        201,
        "NOT_FOUND",
    );
    let l = c
        .list_load_balancers(proto::ListLoadBalancersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.loadbalancers.len(), 1);
    assert_eq!(l.loadbalancers[0].id, b"lb1");

    let target = |id: &str, ip| proto::CreateLoadBalancerTargetRequest {
        loadbalancer_id: id.into(),
        target_ip: ip,
    };
    assert_success(
        &c.create_load_balancer_target(target("lb1", v6("fc00:2::d000:0:0:1")))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.create_load_balancer_target(target("lb1", v6("fc00:2::d000:0:0:1")))
            .await
            .unwrap()
            .into_inner()
            .status,
        202,
        "ALREADY_EXISTS",
    );
    assert_code(
        &c.create_load_balancer_target(target("lb1", v4("10.0.0.1")))
            .await
            .unwrap()
            .into_inner()
            .status,
        204,
        "BAD_IPVER",
    );
    assert_code(
        &c.create_load_balancer_target(target("nope", v6("fc00:2::1")))
            .await
            .unwrap()
            .into_inner()
            .status,
        422,
        "NO_LB",
    );
    let l = c
        .list_load_balancer_targets(proto::ListLoadBalancerTargetsRequest {
            loadbalancer_id: "lb1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&l.status);
    assert_eq!(l.target_ips, vec![v6("fc00:2::d000:0:0:1").unwrap()]);
    let all = c
        .list_load_balancer_targets(proto::ListLoadBalancerTargetsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.target_ips.len(), 1);
    let dt = |ip| proto::DeleteLoadBalancerTargetRequest {
        loadbalancer_id: "lb1".into(),
        target_ip: ip,
    };
    assert_success(
        &c.delete_load_balancer_target(dt(v6("fc00:2::d000:0:0:1")))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.delete_load_balancer_target(dt(v6("fc00:2::d000:0:0:1")))
            .await
            .unwrap()
            .into_inner()
            .status,
        201,
        "NOT_FOUND",
    );
    let dl = proto::DeleteLoadBalancerRequest {
        loadbalancer_id: "lb1".into(),
    };
    assert_success(
        &c.delete_load_balancer(dl.clone())
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.delete_load_balancer(dl).await.unwrap().into_inner().status,
        201,
        "NOT_FOUND",
    );
    h.stop().await;
}

/// Firewall rules of an interface: create, duplicates, drop rules, list, get, delete.
#[tokio::test]
async fn firewall_rules() {
    let (h, mut c) = Harness::with_vm1().await;
    use proto::protocol_filter::Filter;
    let rule = |id: &str, action: proto::FirewallAction| proto::FirewallRule {
        id: id.into(),
        direction: proto::TrafficDirection::Ingress as i32,
        action: action as i32,
        priority: 1000,
        source_prefix: pfx(v4("10.0.0.0"), 8),
        destination_prefix: pfx(v4("0.0.0.0"), 0),
        protocol_filter: Some(proto::ProtocolFilter {
            filter: Some(Filter::Tcp(proto::TcpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: 22,
                dst_port_upper: 22,
            })),
        }),
    };
    let create = |iface: &str, r| proto::CreateFirewallRuleRequest {
        interface_id: iface.into(),
        rule: Some(r),
    };
    let r = c
        .create_firewall_rule(create("vm1", rule("fw1", proto::FirewallAction::Accept)))
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    assert_eq!(r.rule_id, b"fw1");
    assert_code(
        &c.create_firewall_rule(create("vm1", rule("fw1", proto::FirewallAction::Accept)))
            .await
            .unwrap()
            .into_inner()
            .status,
        202,
        "ALREADY_EXISTS",
    );
    assert_code(
        &c.create_firewall_rule(create("nope", rule("fw2", proto::FirewallAction::Accept)))
            .await
            .unwrap()
            .into_inner()
            .status,
        205,
        "NO_VM",
    );
    // ironnet implements DROP rules (dpservice answers 441 NO_DROP_SUPPORT).
    assert_success(
        &c.create_firewall_rule(create("vm1", rule("fw2", proto::FirewallAction::Drop)))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    let mut bad = rule("fw3", proto::FirewallAction::Accept);
    bad.source_prefix = pfx(v4("10.0.0.0"), 33);
    invalid(
        c.create_firewall_rule(create("vm1", bad)).await,
        "Invalid rule.source_prefix.length",
    );
    invalid(
        c.create_firewall_rule(proto::CreateFirewallRuleRequest {
            interface_id: "vm1".into(),
            rule: None,
        })
        .await,
        "Invalid rule",
    );
    let g = c
        .get_firewall_rule(proto::GetFirewallRuleRequest {
            interface_id: "vm1".into(),
            rule_id: "fw1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&g.status);
    assert_eq!(g.rule, Some(rule("fw1", proto::FirewallAction::Accept)));
    let l = c
        .list_firewall_rules(proto::ListFirewallRulesRequest {
            interface_id: "vm1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        l.rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![b"fw1".to_vec(), b"fw2".to_vec()]
    );
    let d = proto::DeleteFirewallRuleRequest {
        interface_id: "vm1".into(),
        rule_id: "fw1".into(),
    };
    assert_success(
        &c.delete_firewall_rule(d.clone())
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_code(
        &c.delete_firewall_rule(d).await.unwrap().into_inner().status,
        201,
        "NOT_FOUND",
    );
    assert_code(
        &c.get_firewall_rule(proto::GetFirewallRuleRequest {
            interface_id: "vm1".into(),
            rule_id: "fw1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status,
        201,
        "NOT_FOUND",
    );
    h.stop().await;
}

/// When the last interface or load balancer of a VNI goes, the VNI's neighbour NATs and VIP/NAT address
/// reservations go with it, as in dpservice: deleting a purged neighbour NAT answers NOT_FOUND and the former NAT IP
/// can be a VirtualIP again.
#[tokio::test]
async fn the_last_user_of_a_vni_takes_its_neighbor_nats_and_reservations_along() {
    let mut h = Harness::initialized().await;
    let c = &mut h.client;
    let vni = 300;
    let nat_ip = "172.16.30.1";
    let create_vm = |id: &str| iface(id, vni, "10.30.0.1", "::", "net_tap0");
    assert_success(
        &c.create_interface(create_vm("vm1"))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    assert_success(
        &c.create_nat(proto::CreateNatRequest {
            interface_id: "vm1".into(),
            nat_ip: v4(nat_ip),
            min_port: 1000,
            max_port: 2000,
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .status,
    );
    let nn = proto::CreateNeighborNatRequest {
        nat_ip: v4(nat_ip),
        vni,
        min_port: 3000,
        max_port: 4000,
        underlay_route: "fc00:2::d000:0:0:9".into(),
    };
    assert_success(&c.create_neighbor_nat(nn).await.unwrap().into_inner().status);
    // A load balancer keeps the VNI in use after the interface goes: the neighbour NAT stays.
    assert_success(
        &c.create_load_balancer(proto::CreateLoadBalancerRequest {
            loadbalancer_id: "lb30".into(),
            loadbalanced_ip: v4("172.16.30.2"),
            vni,
            loadbalanced_ports: vec![proto::LbPort {
                port: 80,
                protocol: proto::Protocol::Tcp as i32,
            }],
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .status,
    );
    let delete_vm = |id: &str| proto::DeleteInterfaceRequest {
        interface_id: id.into(),
    };
    assert_success(
        &c.delete_interface(delete_vm("vm1"))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    let listed = |c: &mut DpdKironcoreClient<Channel>| {
        let mut c = c.clone();
        async move {
            c.list_neighbor_nats(proto::ListNeighborNatsRequest { nat_ip: v4(nat_ip) })
                .await
                .unwrap()
                .into_inner()
                .nat_entries
                .len()
        }
    };
    assert_eq!(listed(c).await, 1);
    // The last user goes: so do the VNI, its neighbour NAT and the NAT IP's reservation.
    assert_success(
        &c.delete_load_balancer(proto::DeleteLoadBalancerRequest {
            loadbalancer_id: "lb30".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status,
    );
    let in_use = c
        .check_vni_in_use(proto::CheckVniInUseRequest {
            vni,
            r#type: proto::VniType::VniIpv4 as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&in_use.status);
    assert!(!in_use.in_use);
    assert_eq!(listed(c).await, 0);
    assert_code(
        &c.delete_neighbor_nat(proto::DeleteNeighborNatRequest {
            nat_ip: v4(nat_ip),
            vni,
            min_port: 3000,
            max_port: 4000,
        })
        .await
        .unwrap()
        .into_inner()
        .status,
        201,
        "NOT_FOUND",
    );
    assert_success(
        &c.create_interface(create_vm("vm2"))
            .await
            .unwrap()
            .into_inner()
            .status,
    );
    let r = c
        .create_vip(proto::CreateVipRequest {
            interface_id: "vm2".into(),
            vip_ip: v4(nat_ip),
            preferred_underlay_route: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_success(&r.status);
    in_host_prefix(&r.underlay_route);
    h.stop().await;
}
