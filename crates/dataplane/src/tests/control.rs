//! Control-plane semantics and dpservice error codes.

use super::*;
use crate::api::{CreateLoadBalancer, L4Proto, LbPort, NeighborNat, Route, VniType};
use crate::error::DpError;

fn iface(id: &str, port: PortId, ip: [u8; 4]) -> CreateInterface {
    CreateInterface {
        id: id.into(),
        vni: VNI,
        ipv4: Some(Ipv4Addr::from(ip)),
        ipv6: None,
        port,
        pxe: None,
        hostname: None,
        preferred_underlay: None,
    }
}

#[test]
fn interface_errors() {
    let mut env = Env::new();
    assert_eq!(
        env.dp.create_interface(iface("vm0", env.vf[2], [10, 0, 0, 9])),
        Err(DpError::VmHandle)
    );
    assert_eq!(
        env.dp.create_interface(iface("x", env.vf[0], [10, 0, 0, 9])),
        Err(DpError::AlreadyExists)
    );
    assert_eq!(
        env.dp.create_interface(iface("x", env.pf[0], [10, 0, 0, 9])),
        Err(DpError::NotFound)
    );
    assert_eq!(
        env.dp.create_interface(iface("x", PortId(77), [10, 0, 0, 9])),
        Err(DpError::NotFound)
    );
    assert_eq!(
        env.dp.create_interface(iface("x", env.vf[2], [10, 0, 0, 1])),
        Err(DpError::RouteExists)
    );
    // The failed attempt left nothing behind.
    assert_eq!(env.dp.list_interfaces().len(), 2);
    let mut bad = iface("x", env.vf[2], [10, 0, 0, 9]);
    bad.preferred_underlay = Some("fc00:1::d000:0:0:1".parse().unwrap());
    assert_eq!(env.dp.create_interface(bad.clone()), Err(DpError::VnfInsert));
    bad.preferred_underlay = Some("fc00:1::d000:8000:0:1".parse().unwrap());
    assert_eq!(
        env.dp.create_interface(bad),
        Ok("fc00:1::d000:8000:0:1".parse().unwrap())
    );
    assert_eq!(env.dp.get_interface("x").unwrap().port, env.vf[2]);
    assert_eq!(env.dp.delete_interface("x"), Ok(()));
    assert_eq!(env.dp.delete_interface("x"), Err(DpError::NotFound));
    assert_eq!(env.dp.get_interface("x"), Err(DpError::NotFound));
    let u = env.dp.get_interface("vm0").unwrap().underlay.octets();
    assert_eq!((u[8], u[9], u[10]), (0xd0, 0, 0));
}

#[test]
fn route_errors_and_listing() {
    let mut env = Env::new();
    let r = |p: &str| Route {
        prefix: p.parse().unwrap(),
        nexthop_vni: Some(ironnet_vni::vni!(200)),
        nexthop: router6(),
    };
    assert_eq!(env.dp.create_route(VNI, r("192.168.0.0/16")), Ok(()));
    assert_eq!(
        env.dp.create_route(VNI, r("192.168.255.255/16")),
        Err(DpError::RouteExists)
    );
    assert_eq!(
        env.dp
            .create_route(Some(ironnet_vni::vni!(7)), r("192.168.0.0/16")),
        Err(DpError::NoVni)
    );
    assert_eq!(env.dp.create_route(VNI, r("fd99::/64")), Ok(()));
    let listed = env.dp.list_routes(VNI).unwrap();
    assert_eq!(listed.len(), 2, "external routes only, IPv4 and IPv6");
    assert_eq!(listed[0].route, r("192.168.0.0/16"));
    assert_eq!(env.dp.list_routes(None).unwrap().len(), 2);
    assert_eq!(
        env.dp.list_routes(Some(ironnet_vni::vni!(5))),
        Err(DpError::NoVni)
    );
    assert_eq!(
        env.dp.delete_route(VNI, "10.0.0.1/32".parse().unwrap()),
        Err(DpError::RouteBadPort)
    );
    assert_eq!(
        env.dp.delete_route(VNI, "10.9.0.0/16".parse().unwrap()),
        Err(DpError::RouteNotFound)
    );
    assert_eq!(
        env.dp.delete_route(VNI, "192.168.0.0/16".parse().unwrap()),
        Ok(())
    );
    assert_eq!(env.dp.check_vni_in_use(VNI, VniType::Ipv4), Ok(true));
    assert_eq!(
        env.dp.check_vni_in_use(Some(ironnet_vni::vni!(5)), VniType::Ipv6),
        Ok(false)
    );
    assert_eq!(
        env.dp.check_vni_in_use(VNI, VniType::Both),
        Err(DpError::WrongType)
    );
}

#[test]
fn initialize_and_reset_keep_interface_and_alias_routes() {
    let mut env = Env::new();
    env.default_route();
    env.dp
        .create_prefix("vm1", "10.50.0.0/24".parse().unwrap(), None)
        .unwrap();
    env.dp
        .create_neighbor_nat(NeighborNat {
            nat_ip: Ipv4Addr::new(1, 1, 1, 1),
            vni: VNI,
            min_port: 1,
            max_port: 10,
            underlay: router6(),
        })
        .unwrap();
    env.dp.initialize();
    assert!(env.dp.list_routes(VNI).unwrap().is_empty());
    assert!(env.dp.list_neighbor_nats(None).unwrap().is_empty());
    // Alias prefix still routes to vm1.
    let ip = ip4_udp(vm_ip(0), Ipv4Addr::new(10, 50, 0, 9), 1, 2, b"x");
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip)).0,
        Verdict::Tx(env.vf[1])
    );
    env.default_route();
    assert_eq!(env.dp.reset_vni(VNI, VniType::Ipv4), Err(DpError::WrongType));
    assert_eq!(env.dp.reset_vni(VNI, VniType::Both), Ok(()));
    assert!(env.dp.list_routes(VNI).unwrap().is_empty());
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &ip)).0,
        Verdict::Tx(env.vf[1])
    );
    assert_eq!(
        env.dp.reset_vni(Some(ironnet_vni::vni!(999)), VniType::Both),
        Ok(())
    );
}

#[test]
fn prefix_vip_nat_errors() {
    let mut env = Env::new();
    assert_eq!(
        env.dp.create_prefix("nope", "10.9.0.0/24".parse().unwrap(), None),
        Err(DpError::NoVm)
    );
    env.dp
        .create_prefix("vm0", "10.9.0.0/24".parse().unwrap(), None)
        .unwrap();
    assert_eq!(
        env.dp.create_prefix("vm1", "10.9.0.7/24".parse().unwrap(), None),
        Err(DpError::RouteExists)
    );
    assert_eq!(
        env.dp.list_prefixes("vm0").unwrap()[0].prefix,
        "10.9.0.0/24".parse().unwrap()
    );
    assert_eq!(
        env.dp.delete_prefix("vm0", "10.8.0.0/24".parse().unwrap()),
        Err(DpError::RouteNotFound)
    );
    env.dp
        .delete_prefix("vm0", "10.9.0.0/24".parse().unwrap())
        .unwrap();
    env.dp
        .create_lb_prefix("vm0", "45.0.0.1/32".parse().unwrap(), None)
        .unwrap();
    assert_eq!(
        env.dp
            .create_lb_prefix("vm0", "45.0.0.1/32".parse().unwrap(), None),
        Err(DpError::AlreadyExists)
    );
    assert_eq!(
        env.dp.delete_lb_prefix("vm0", "45.0.0.2/32".parse().unwrap()),
        Err(DpError::NotFound)
    );

    assert_eq!(
        env.dp.create_vip("vm0", "fd00::9".parse().unwrap(), None),
        Err(DpError::BadIpVer)
    );
    assert_eq!(env.dp.get_vip("vm0"), Err(DpError::SnatNoData));
    env.dp
        .create_vip("vm0", "45.1.1.1".parse().unwrap(), None)
        .unwrap();
    assert_eq!(
        env.dp.create_vip("vm0", "45.1.1.2".parse().unwrap(), None),
        Err(DpError::SnatExists)
    );
    assert_eq!(
        env.dp.create_vip("vm1", "45.1.1.1".parse().unwrap(), None),
        Err(DpError::DnatExists)
    );
    assert_eq!(env.dp.delete_vip("vm1"), Err(DpError::SnatNoData));
    assert_eq!(env.dp.delete_vip("zz"), Err(DpError::NoVm));

    env.dp
        .create_nat("vm0", "45.2.2.2".parse().unwrap(), 10, 20, None)
        .unwrap();
    assert_eq!(
        env.dp
            .create_nat("vm0", "45.2.2.2".parse().unwrap(), 20, 30, None),
        Err(DpError::SnatExists)
    );
    assert_eq!(
        env.dp.create_nat("vm1", "fd00::1".parse().unwrap(), 20, 30, None),
        Err(DpError::BadIpVer)
    );
    env.dp
        .create_nat("vm1", "45.2.2.2".parse().unwrap(), 20, 30, None)
        .unwrap();
    assert_eq!(
        env.dp
            .list_local_nats(Some("45.2.2.2".parse().unwrap()))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        env.dp.list_local_nats(Some("fd00::1".parse().unwrap())),
        Err(DpError::BadIpVer)
    );
    env.dp.delete_nat("vm0").unwrap();
    assert_eq!(env.dp.get_nat("vm0"), Err(DpError::SnatNoData));
    assert_eq!(env.dp.get_nat("vm1").unwrap().min_port, 20);
    // Deleting the interface removes everything it owned.
    env.dp.delete_interface("vm1").unwrap();
    assert_eq!(env.dp.list_local_nats(None).unwrap().len(), 0);
}

#[test]
fn load_balancer_errors() {
    let mut env = Env::new();
    let lb = |id: &str, ip: &str| CreateLoadBalancer {
        id: id.into(),
        vni: Some(ironnet_vni::vni!(300)),
        ip: ip.parse().unwrap(),
        ports: vec![LbPort {
            protocol: L4Proto::Udp,
            port: 53,
        }],
        preferred_underlay: None,
    };
    env.dp.create_loadbalancer(lb("a", "45.3.3.3")).unwrap();
    assert_eq!(
        env.dp
            .check_vni_in_use(Some(ironnet_vni::vni!(300)), VniType::Ipv4),
        Ok(true),
        "an LB keeps its VNI in use"
    );
    assert_eq!(
        env.dp.create_loadbalancer(lb("a", "45.3.3.4")),
        Err(DpError::AlreadyExists)
    );
    assert_eq!(
        env.dp.create_loadbalancer(lb("b", "45.3.3.3")),
        Err(DpError::AlreadyExists)
    );
    assert_eq!(
        env.dp.create_lb_target("zz", router6().into()),
        Err(DpError::NoLb)
    );
    assert_eq!(
        env.dp.create_lb_target("a", "1.2.3.4".parse().unwrap()),
        Err(DpError::BadIpVer)
    );
    for i in 0..64u16 {
        env.dp
            .create_lb_target("a", Ipv6Addr::new(0xfc00, 9, 0, 0, 0, 0, 0, i).into())
            .unwrap();
    }
    assert_eq!(
        env.dp
            .create_lb_target("a", Ipv6Addr::new(0xfc00, 9, 0, 0, 0, 0, 0, 1).into()),
        Err(DpError::AlreadyExists)
    );
    assert_eq!(
        env.dp
            .create_lb_target("a", Ipv6Addr::new(0xfc00, 9, 0, 0, 0, 0, 1, 1).into()),
        Err(DpError::BackIpAdd)
    );
    assert_eq!(env.dp.list_lb_targets(Some("a")).unwrap().len(), 64);
    assert_eq!(
        env.dp
            .delete_lb_target("a", Ipv6Addr::new(0xfc00, 9, 0, 0, 0, 0, 1, 1).into()),
        Err(DpError::NotFound)
    );
    assert_eq!(
        env.dp.get_loadbalancer("a").unwrap().ports,
        vec![LbPort {
            protocol: L4Proto::Udp,
            port: 53
        }]
    );
    assert_eq!(env.dp.list_loadbalancers().len(), 1);
    env.dp.delete_loadbalancer("a").unwrap();
    assert_eq!(env.dp.get_loadbalancer("a"), Err(DpError::NotFound));
    assert_eq!(
        env.dp
            .check_vni_in_use(Some(ironnet_vni::vni!(300)), VniType::Ipv4),
        Ok(false)
    );
}

#[test]
fn config_and_port_registration_are_validated() {
    let mut c = config();
    c.wcmp_percent = 120;
    assert!(Dataplane::new(c).is_err());
    let mut dp = Dataplane::new(config()).unwrap();
    let pf = |n: &str| PortConfig {
        kind: PortKind::Pf,
        mac: PF0_MAC,
        name: n.into(),
    };
    dp.add_port(pf("a")).unwrap();
    assert!(dp.add_port(pf("a")).is_err());
    dp.add_port(pf("b")).unwrap();
    assert!(dp.add_port(pf("c")).is_err());
    assert_eq!(dp.port_by_name("b"), Some(PortId(1)));
    assert!(!dp.is_initialized());
}

#[test]
fn dataplane_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Dataplane>();
}

/// When the last interface or load balancer of a VNI goes, its neighbour NATs and VIP/NAT address reservations go
/// with it (dpservice `src/dp_vni.c` frees them with the VNI's tables): deleting a purged neighbour NAT answers
/// NOT_FOUND and the former NAT IP can be a VIP again, which then translates traffic.
#[test]
fn the_last_user_of_a_vni_takes_its_neighbor_nats_and_reservations_along() {
    const OTHER_VNI: Option<Vni> = Some(ironnet_vni::vni!(7));
    let mut env = Env::new();
    let nat_ip = Ipv4Addr::new(45, 86, 9, 1);
    let neighbor = |vni| NeighborNat {
        nat_ip,
        vni,
        min_port: 3000,
        max_port: 4000,
        underlay: "fc00:2::d000:0:0:9".parse().unwrap(),
    };
    let vf2 = env.vf[2];
    let vm2 = |vni| CreateInterface {
        vni,
        ..iface("vm2", vf2, [10, 7, 0, 1])
    };
    // VNI 7: an interface with a NAT, a neighbour NAT of the same IP, and a load balancer.
    env.dp.create_interface(vm2(OTHER_VNI)).unwrap();
    env.dp.create_nat("vm2", nat_ip.into(), 1000, 2000, None).unwrap();
    env.dp.create_neighbor_nat(neighbor(OTHER_VNI)).unwrap();
    env.dp
        .create_loadbalancer(CreateLoadBalancer {
            id: "lb7".into(),
            vni: OTHER_VNI,
            ip: Ipv4Addr::new(45, 86, 9, 2).into(),
            ports: vec![LbPort {
                protocol: L4Proto::Tcp,
                port: 80,
            }],
            preferred_underlay: None,
        })
        .unwrap();
    // A neighbour NAT of the same IP in VNI 100, which keeps its users.
    env.dp
        .create_neighbor_nat(NeighborNat {
            min_port: 5000,
            max_port: 6000,
            ..neighbor(VNI)
        })
        .unwrap();
    // The NAT IP is reserved in VNI 7 while the VNI lives, also after the interface's own NAT went.
    env.dp.delete_interface("vm2").unwrap();
    assert_eq!(
        env.dp.list_neighbor_nats(None).unwrap().len(),
        2,
        "the LB still uses VNI 7"
    );
    env.dp.create_interface(vm2(OTHER_VNI)).unwrap();
    assert_eq!(
        env.dp.create_vip("vm2", nat_ip.into(), None),
        Err(DpError::DnatExists)
    );
    env.dp.delete_interface("vm2").unwrap();
    // The load balancer was the last user: VNI 7's neighbour NAT and reservations are gone, VNI 100's stays.
    env.dp.delete_loadbalancer("lb7").unwrap();
    assert_eq!(env.dp.check_vni_in_use(OTHER_VNI, VniType::Ipv4), Ok(false));
    assert_eq!(
        env.dp.list_neighbor_nats(None).unwrap(),
        vec![NeighborNat {
            min_port: 5000,
            max_port: 6000,
            ..neighbor(VNI)
        }]
    );
    assert_eq!(
        env.dp.delete_neighbor_nat(nat_ip.into(), OTHER_VNI, 3000, 4000),
        Err(DpError::NotFound)
    );
    // The former NAT IP is a VIP again in a new VNI 7, and inbound traffic to it reaches the VM.
    env.dp.create_interface(vm2(OTHER_VNI)).unwrap();
    let vip_ul = env.dp.create_vip("vm2", nat_ip.into(), None).unwrap();
    let remote = Ipv4Addr::new(8, 8, 8, 8);
    let (v, out) = env.run(
        env.pf[0],
        &tunnel(
            PF0_MAC,
            ROUTER_MAC,
            router6(),
            vip_ul,
            &ip4_udp(remote, nat_ip, 53, 4000, b"to the vip"),
        ),
    );
    assert_eq!(v, Verdict::Tx(vf2));
    // vf2's VM has not taught its MAC yet: the port's own MAC stands in for it.
    assert_eq!(
        out,
        frame(
            VF_MACS[2],
            VF_MACS[2],
            &ip4_udp(remote, Ipv4Addr::new(10, 7, 0, 1), 53, 4000, b"to the vip")
        )
    );
}
