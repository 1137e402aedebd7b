//! Packet-level tests: frames built independently (etherparse, hand-written bytes) go in, and the emitted frames
//! are compared byte for byte with independently built expectations; checksums are verified with a reference
//! implementation written here, not the crate's.

mod control;
mod firewall;
mod forwarding;
mod fuzz;
mod host_services;
mod nat_lb;

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, Ipv6Header, PacketBuilder};
use ironnet_vni::Vni;

use crate::api::CreateInterface;
use crate::batch::{Batch, Verdict};
use crate::config::DataplaneConfig;
use crate::dataplane::Dataplane;
use crate::port::{MacAddr, PortConfig, PortId, PortKind};

pub(crate) const ROUTER_MAC: MacAddr = MacAddr([0x02, 0xee, 0, 0, 0, 1]);
pub(crate) const PF0_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xf0]);
pub(crate) const PF1_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xf1]);
pub(crate) const VF_MACS: [MacAddr; 3] = [
    MacAddr([0x02, 0, 0, 0, 0, 0x10]),
    MacAddr([0x02, 0, 0, 0, 0, 0x11]),
    MacAddr([0x02, 0, 0, 0, 0, 0x12]),
];
pub(crate) const VM_MACS: [MacAddr; 3] = [
    MacAddr([0x52, 0x54, 0, 0, 0, 1]),
    MacAddr([0x52, 0x54, 0, 0, 0, 2]),
    MacAddr([0x52, 0x54, 0, 0, 0, 3]),
];
pub(crate) const VNI: Option<Vni> = Some(ironnet_vni::vni!(100));
pub(crate) const SEC: u64 = 1_000_000_000;

pub(crate) fn host() -> Ipv6Addr {
    "fc00:1::1".parse().unwrap()
}
pub(crate) fn router6() -> Ipv6Addr {
    "fc00:2::1".parse().unwrap()
}
pub(crate) fn vm_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 1)
}
pub(crate) fn vm_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 1)
}

/// A dataplane with pf0, pf1, vf0..vf2 and interfaces vm0 (vf0), vm1 (vf1) in VNI 100 with learned MACs.
pub(crate) struct Env {
    pub(crate) dp: Dataplane,
    pub(crate) pf: [PortId; 2],
    pub(crate) vf: [PortId; 3],
    pub(crate) underlay: [Ipv6Addr; 2],
    pub(crate) now: u64,
}

pub(crate) fn config() -> DataplaneConfig {
    let mut c = DataplaneConfig::new(host());
    c.router_mac = ROUTER_MAC;
    c.underlay_seed = 1;
    c
}

impl Env {
    pub(crate) fn new() -> Self {
        Self::with_config(config())
    }

    pub(crate) fn with_config(c: DataplaneConfig) -> Self {
        let mut dp = Dataplane::new(c).unwrap();
        let pf0 = dp
            .add_port(PortConfig {
                kind: PortKind::Pf,
                mac: PF0_MAC,
                name: "pf0".into(),
            })
            .unwrap();
        let pf1 = dp
            .add_port(PortConfig {
                kind: PortKind::Pf,
                mac: PF1_MAC,
                name: "pf1".into(),
            })
            .unwrap();
        let vf: Vec<PortId> = (0..3)
            .map(|i| {
                dp.add_port(PortConfig {
                    kind: PortKind::Vf,
                    mac: VF_MACS[i],
                    name: format!("vf{i}"),
                })
                .unwrap()
            })
            .collect();
        dp.initialize();
        let mut underlay = [Ipv6Addr::UNSPECIFIED; 2];
        for i in 0..2 {
            underlay[i] = dp
                .create_interface(CreateInterface {
                    id: format!("vm{i}"),
                    vni: VNI,
                    ipv4: Some(vm_ip(i)),
                    ipv6: Some(vm_ip6(i)),
                    port: vf[i],
                    pxe: None,
                    hostname: None,
                    preferred_underlay: None,
                })
                .unwrap();
        }
        let mut env = Env {
            dp,
            pf: [pf0, pf1],
            vf: [vf[0], vf[1], vf[2]],
            underlay,
            now: SEC,
        };
        for i in 0..2 {
            env.learn_mac(i);
        }
        env
    }

    /// Teaches the dataplane VM i's MAC with an ARP reply from the VM.
    pub(crate) fn learn_mac(&mut self, i: usize) {
        let mut f = eth_hdr(VF_MACS[i], VM_MACS[i], 0x0806);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&VM_MACS[i].0);
        f.extend_from_slice(&vm_ip(i).octets());
        f.extend_from_slice(&VF_MACS[i].0);
        f.extend_from_slice(&[169, 254, 0, 1]);
        let (v, _) = self.run(self.vf[i], &f);
        assert_eq!(v, Verdict::Drop(crate::stats::DropReason::Consumed));
    }

    /// Processes one frame; returns its verdict and the resulting bytes.
    pub(crate) fn run(&mut self, port: PortId, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let mut b = Batch::with_capacity(1);
        b.push(port, frame);
        self.dp.process(self.now, &mut b);
        let p = &b.packets()[0];
        (p.verdict(), p.data().to_vec())
    }

    pub(crate) fn default_route(&mut self) {
        self.dp
            .create_route(
                VNI,
                crate::api::Route {
                    prefix: "0.0.0.0/0".parse().unwrap(),
                    nexthop_vni: VNI,
                    nexthop: router6(),
                },
            )
            .unwrap();
    }
}

pub(crate) fn eth_hdr(dst: MacAddr, src: MacAddr, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4/UDP packet (no Ethernet) built by etherparse.
pub(crate) fn ip4_udp(src: Ipv4Addr, dst: Ipv4Addr, sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src.octets(), dst.octets(), 64)
        .udp(sp, dp)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// An IPv4/TCP packet with SYN (and ACK if `ack`) built by etherparse.
pub(crate) fn ip4_tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sp: u16,
    dp: u16,
    syn: bool,
    ack: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ipv4(src.octets(), dst.octets(), 64).tcp(sp, dp, 1000, 64000);
    let b = if syn { b.syn() } else { b };
    let b = if ack { b.ack(1) } else { b };
    b.write(&mut v, payload).unwrap();
    v
}

/// An IPv4 ICMP echo request (or reply) built by etherparse.
pub(crate) fn ip4_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, reply: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ipv4(src.octets(), dst.octets(), 64);
    if reply {
        b.icmpv4_echo_reply(id, 7).write(&mut v, b"pingdata").unwrap();
    } else {
        b.icmpv4_echo_request(id, 7).write(&mut v, b"pingdata").unwrap();
    }
    v
}

/// An IPv6/UDP packet built by etherparse.
pub(crate) fn ip6_udp(src: Ipv6Addr, dst: Ipv6Addr, sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
        .udp(sp, dp)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Ethernet + `ip`.
pub(crate) fn frame(dst: MacAddr, src: MacAddr, ip: &[u8]) -> Vec<u8> {
    let et = if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
    let mut f = eth_hdr(dst, src, et);
    f.extend_from_slice(ip);
    f
}

/// Ethernet + IPv6 (hop limit 64) tunnel + `inner`, built with etherparse's IPv6 header.
pub(crate) fn tunnel(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    inner: &[u8],
) -> Vec<u8> {
    let nh = if inner[0] >> 4 == 6 {
        IpNumber(41)
    } else {
        IpNumber(4)
    };
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: inner.len() as u16,
        next_header: nh,
        hop_limit: 64,
        source: src.octets(),
        destination: dst.octets(),
    };
    let mut f = eth_hdr(dst_mac, src_mac, 0x86dd);
    h.write(&mut f).unwrap();
    f.extend_from_slice(inner);
    f
}

/// Reference one's-complement checksum (independent of the crate's implementation).
pub(crate) fn ref_checksum(chunks: &[&[u8]]) -> u16 {
    let mut all = Vec::new();
    for c in chunks {
        all.extend_from_slice(c);
    }
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut s: u64 = 0;
    for w in all.chunks(2) {
        s += (u64::from(w[0]) << 8) | u64::from(w[1]);
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Asserts that the IPv4 packet `ip` has correct header and L4 checksums and consistent lengths.
pub(crate) fn assert_ipv4_valid(ip: &[u8]) {
    let hl = usize::from(ip[0] & 0xf) * 4;
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        ip.len(),
        "total length"
    );
    assert_eq!(ref_checksum(&[&ip[..hl]]), 0, "IPv4 header checksum");
    let l4 = &ip[hl..];
    let proto = ip[9];
    let pseudo = [&ip[12..20], &[0, proto], &(l4.len() as u16).to_be_bytes()].concat();
    match proto {
        6 | 17 => assert_eq!(ref_checksum(&[&pseudo, l4]), 0, "L4 checksum"),
        1 => assert_eq!(ref_checksum(&[l4]), 0, "ICMP checksum"),
        _ => {}
    }
}

/// Asserts that the IPv6 packet `ip` has a correct L4 checksum and consistent length.
pub(crate) fn assert_ipv6_valid(ip: &[u8]) {
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[4], ip[5]])) + 40,
        ip.len(),
        "payload length"
    );
    let nh = ip[6];
    let l4 = &ip[40..];
    if matches!(nh, 6 | 17 | 58) {
        let pseudo = [&ip[8..40], &(l4.len() as u32).to_be_bytes()[..], &[0, 0, 0, nh]].concat();
        assert_eq!(ref_checksum(&[&pseudo, l4]), 0, "L4 checksum");
    }
}
