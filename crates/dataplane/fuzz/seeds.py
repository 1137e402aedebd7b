#!/usr/bin/env python3
"""Writes a seed corpus (valid frames in the fuzz target's record format) to corpus/process/."""
import ipaddress, os, struct

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def ip4(src, dst, proto, l4):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                    ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4

def udp(sp, dp, payload=b"x"):
    return struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload

def tcp(sp, dp, flags=0x02):
    return struct.pack("!HHIIBBHHH", sp, dp, 1, 0, 0x50, flags, 1000, 0, 0)

def echo(ident):
    m = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"ping"
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]

def eth(payload, et=0x0800):
    return b"\x02\0\0\0\0\x02" + b"\x52\x54\0\0\0\x01" + struct.pack("!H", et) + payload

def tunnel(dst, inner):
    h = struct.pack("!IHBB16s16s", 0x60000000, len(inner), 4, 64,
                    ipaddress.IPv6Address("fc00:2::1").packed, ipaddress.IPv6Address(dst).packed)
    return eth(h + inner, 0x86dd)

frames = {
    "vm_to_vm": (2, eth(ip4("10.0.0.1", "10.0.0.2", 17, udp(1000, 80)))),
    "vm_out_nat": (2, eth(ip4("10.0.0.1", "8.8.8.8", 6, tcp(1000, 443)))),
    "vm_echo": (2, eth(ip4("10.0.0.1", "8.8.8.8", 1, echo(7)))),
    "arp": (2, eth(struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x52\x54\0\0\0\x01",
                               ipaddress.IPv4Address("10.0.0.1").packed, b"\0" * 6,
                               ipaddress.IPv4Address("169.254.0.1").packed), 0x0806)),
    "decap": (0, tunnel("fc00:1::d000:8000:0:1", ip4("8.8.8.8", "10.0.0.1", 17, udp(53, 1000)))),
    "nat_in": (0, tunnel("fc00:1::d000:8000:0:11", ip4("8.8.8.8", "45.0.0.1", 17, udp(53, 105)))),
    "nat_relay": (0, tunnel("fc00:1::d000:8000:0:11", ip4("8.8.8.8", "45.0.0.1", 17, udp(53, 250)))),
    "vip_in": (1, tunnel("fc00:1::d000:8000:0:12", ip4("8.8.8.8", "45.0.0.2", 6, tcp(5, 22)))),
    "lb": (0, tunnel("fc00:1::d000:8000:0:13", ip4("8.8.8.8", "45.0.0.3", 6, tcp(5, 80)))),
}
os.makedirs("corpus/process", exist_ok=True)
for name, (port, f) in frames.items():
    with open(f"corpus/process/seed_{name}", "wb") as out:
        out.write(bytes([port]) + f)
