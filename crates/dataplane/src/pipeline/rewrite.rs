//! In-place NAT rewrites of IPv4 packets with incremental checksum updates (RFC 1624), including the embedded
//! packet of ICMP errors.

use std::net::Ipv4Addr;

use super::parse::{IcmpKind, Parsed};
use crate::batch::Packet;
use crate::flow::Rewrite;
use crate::packet::checksum::{self, update16, update32};
use crate::packet::ipv4::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::packet::{be16, put16};

/// Applies `rw` to the IPv4 packet at `l3`. For ICMP errors the outer addresses and the embedded packet (whose
/// source is the outer destination and vice versa) are rewritten and the ICMP checksum recomputed.
pub(crate) fn apply_v4(pkt: &mut Packet, l3: usize, parsed: &Parsed, rw: &Rewrite) {
    if rw.src.is_none() && rw.dst.is_none() {
        return;
    }
    let l4 = parsed.l4 - l3;
    let proto = parsed.key.proto;
    let data = &mut pkt.data_mut()[l3..];
    match parsed.icmp {
        IcmpKind::Error { inner } => {
            let inner = inner - l3;
            if let Some((ip, _)) = rw.src {
                set_addr(data, 12, ip, None);
            }
            if let Some((ip, _)) = rw.dst {
                set_addr(data, 16, ip, None);
            }
            rewrite_embedded(data, inner, rw);
            let end = data.len();
            put16(data, l4 + 2, 0);
            let c = checksum::checksum(&data[l4..end]);
            put16(data, l4 + 2, c);
        }
        _ => {
            let l4csum = match proto {
                PROTO_TCP => Some((l4 + 16, false)),
                PROTO_UDP if be16(data, l4 + 6) != 0 => Some((l4 + 6, true)),
                _ => None,
            };
            if let Some((ip, port)) = rw.src {
                set_addr(data, 12, ip, l4csum);
                set_port(data, l4, proto, 0, port);
            }
            if let Some((ip, port)) = rw.dst {
                set_addr(data, 16, ip, l4csum);
                set_port(data, l4, proto, 2, port);
            }
        }
    }
}

/// Writes `ip` at `at` (12 = source, 16 = destination), updating the IP header checksum and, if given, the L4
/// checksum at `l4csum` (pseudo header).
#[inline]
fn set_addr(data: &mut [u8], at: usize, ip: Ipv4Addr, l4csum: Option<(usize, bool)>) {
    let w = &data[at..at + 4];
    let old = [w[0], w[1], w[2], w[3]];
    let new = ip.octets();
    if old == new {
        return;
    }
    data[at..at + 4].copy_from_slice(&new);
    let c = update32(be16(data, 10), old, new);
    put16(data, 10, c);
    if let Some((cat, udp)) = l4csum {
        let mut c = update32(be16(data, cat), old, new);
        if udp && c == 0 {
            c = 0xffff;
        }
        put16(data, cat, c);
    }
}

/// Writes the TCP/UDP port at `l4 + which` (0 source, 2 destination), or the ICMP echo identifier.
#[inline]
fn set_port(data: &mut [u8], l4: usize, proto: u8, which: usize, port: u16) {
    let (at, cat, udp) = match proto {
        PROTO_TCP => (l4 + which, l4 + 16, false),
        PROTO_UDP => (l4 + which, l4 + 6, true),
        PROTO_ICMP => (l4 + 4, l4 + 2, false),
        _ => return,
    };
    let old = be16(data, at);
    if old == port {
        return;
    }
    put16(data, at, port);
    let oc = be16(data, cat);
    if udp && oc == 0 {
        return;
    }
    let mut c = update16(oc, old, port);
    if udp && c == 0 {
        c = 0xffff;
    }
    put16(data, cat, c);
}

/// Rewrites the embedded packet of an ICMP error at `inner`: its source gets `rw.dst`, its destination `rw.src`.
/// The embedded L4 checksum is updated when the bytes are present.
fn rewrite_embedded(data: &mut [u8], inner: usize, rw: &Rewrite) {
    let hl = usize::from(data[inner] & 0x0f) * 4;
    let proto = data[inner + 9];
    let l4 = inner + hl;
    let avail = data.len() - l4;
    let l4csum = match proto {
        PROTO_TCP if avail >= 18 => Some((l4 + 16, false)),
        PROTO_UDP if be16(data, l4 + 6) != 0 => Some((l4 + 6, true)),
        _ => None,
    };
    let emb = &mut data[inner..];
    let rel = |x: Option<(usize, bool)>| x.map(|(a, u)| (a - inner, u));
    if let Some((ip, port)) = rw.dst {
        set_addr(emb, 12, ip, rel(l4csum));
        if proto != PROTO_ICMP || avail >= 8 {
            set_port_embedded(emb, hl, proto, 0, port, avail);
        }
    }
    if let Some((ip, port)) = rw.src {
        set_addr(emb, 16, ip, rel(l4csum));
        set_port_embedded(emb, hl, proto, 2, port, avail);
    }
}

fn set_port_embedded(emb: &mut [u8], l4: usize, proto: u8, which: usize, port: u16, avail: usize) {
    match proto {
        PROTO_TCP if avail < 18 => put16(emb, l4 + which, port),
        _ => set_port(emb, l4, proto, which, port),
    }
}
