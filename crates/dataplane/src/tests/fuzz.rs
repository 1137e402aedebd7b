//! Property test: arbitrary frames on arbitrary ports never panic, every frame gets a verdict, and every drop is
//! counted exactly once. Inputs mix pure noise with mutated valid frames so the deep pipeline stages are reached.

use proptest::prelude::*;

use super::*;
use crate::api::{CreateLoadBalancer, L4Proto, LbPort, NeighborNat};

fn seeds(env: &Env) -> Vec<(PortId, Vec<u8>)> {
    let remote = Ipv4Addr::new(8, 8, 8, 8);
    let lb = env.dp.get_loadbalancer("lb").unwrap().underlay;
    let nat = env.dp.get_nat("vm0").unwrap();
    vec![
        (
            env.vf[0],
            frame(VF_MACS[0], VM_MACS[0], &ip4_udp(vm_ip(0), vm_ip(1), 1, 2, b"abc")),
        ),
        (
            env.vf[0],
            frame(
                VF_MACS[0],
                VM_MACS[0],
                &ip4_tcp(vm_ip(0), remote, 3, 4, true, false, b""),
            ),
        ),
        (
            env.vf[0],
            frame(VF_MACS[0], VM_MACS[0], &ip4_echo(vm_ip(0), remote, 9, false)),
        ),
        (
            env.vf[1],
            frame(
                VF_MACS[1],
                VM_MACS[1],
                &ip6_udp(vm_ip6(1), vm_ip6(0), 546, 547, &[1, 0, 0, 1]),
            ),
        ),
        (
            env.vf[1],
            frame(
                VF_MACS[1],
                VM_MACS[1],
                &ip4_udp(vm_ip(1), Ipv4Addr::BROADCAST, 68, 67, &[1; 260]),
            ),
        ),
        (
            env.pf[0],
            tunnel(
                PF0_MAC,
                ROUTER_MAC,
                router6(),
                env.underlay[0],
                &ip4_udp(remote, vm_ip(0), 5, 6, b"x"),
            ),
        ),
        (
            env.pf[0],
            tunnel(
                PF0_MAC,
                ROUTER_MAC,
                router6(),
                nat.underlay,
                &ip4_echo(remote, nat.ip, 1, false),
            ),
        ),
        (
            env.pf[0],
            tunnel(
                PF0_MAC,
                ROUTER_MAC,
                router6(),
                nat.underlay,
                &ip4_udp(remote, nat.ip, 5, 1500, b"x"),
            ),
        ),
        (
            env.pf[1],
            tunnel(
                PF1_MAC,
                ROUTER_MAC,
                router6(),
                lb,
                &ip4_tcp(remote, Ipv4Addr::new(45, 9, 9, 9), 7, 80, true, false, b""),
            ),
        ),
    ]
}

fn fuzz_env() -> Env {
    let mut c = config();
    c.enable_ipv6_overlay = true;
    let mut env = Env::with_config(c);
    env.default_route();
    env.dp
        .create_nat("vm0", "45.8.8.8".parse().unwrap(), 1000, 1010, None)
        .unwrap();
    env.dp
        .create_vip("vm1", "45.8.8.9".parse().unwrap(), None)
        .unwrap();
    env.dp
        .create_neighbor_nat(NeighborNat {
            nat_ip: "45.8.8.8".parse().unwrap(),
            vni: VNI,
            min_port: 1500,
            max_port: 1600,
            underlay: router6(),
        })
        .unwrap();
    env.dp
        .create_loadbalancer(CreateLoadBalancer {
            id: "lb".into(),
            vni: VNI,
            ip: "45.9.9.9".parse().unwrap(),
            ports: vec![LbPort {
                protocol: L4Proto::Tcp,
                port: 80,
            }],
            preferred_underlay: None,
        })
        .unwrap();
    env.dp.create_lb_target("lb", router6().into()).unwrap();
    env
}

#[derive(Debug, Clone)]
enum Input {
    Noise(u16, Vec<u8>),
    Mutated {
        seed: usize,
        flips: Vec<(usize, u8)>,
        cut: Option<usize>,
    },
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (0u16..8, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(p, b)| Input::Noise(p, b)),
        (
            0usize..9,
            proptest::collection::vec((0usize..400, any::<u8>()), 0..6),
            proptest::option::of(0usize..400)
        )
            .prop_map(|(seed, flips, cut)| Input::Mutated { seed, flips, cut }),
    ]
}

/// Cases per run; raise with `PROPTEST_CASES` for longer fuzzing sessions.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic_and_drops_are_counted(inputs in proptest::collection::vec(input(), 1..24)) {
        let mut env = fuzz_env();
        let seeds = seeds(&env);
        let mut batch = Batch::with_capacity(8);
        for i in &inputs {
            match i {
                Input::Noise(p, b) => batch.push(PortId(*p), b),
                Input::Mutated { seed, flips, cut } => {
                    let (port, mut f) = seeds[*seed].clone();
                    for (at, v) in flips {
                        if let Some(b) = f.get_mut(*at) { *b ^= *v; }
                    }
                    if let Some(c) = cut { f.truncate(*c); }
                    batch.push(port, &f);
                }
            }
        }
        let before = env.dp.stats().dropped_total();
        env.dp.process(env.now, &mut batch);
        let mut drops = 0;
        for p in batch.packets() {
            match p.verdict() {
                Verdict::Pending => prop_assert!(false, "unprocessed packet"),
                Verdict::Drop(_) => drops += 1,
                Verdict::Tx(port) => {
                    prop_assert!(port.index() < 5);
                    let d = p.data();
                    prop_assert!(d.len() >= 14);
                    // Everything emitted towards an uplink is a well-formed tunnel packet.
                    if port == env.pf[0] || port == env.pf[1] {
                        prop_assert_eq!(&d[12..14], &[0x86, 0xdd]);
                        prop_assert_eq!(usize::from(u16::from_be_bytes([d[18], d[19]])) + 54, d.len());
                        prop_assert_eq!(d[21], 64);
                    }
                }
            }
        }
        prop_assert_eq!(env.dp.stats().dropped_total() - before, drops);
        env.now += 100 * SEC;
        env.dp.tick(env.now);
    }
}
