use super::*;
use proptest::prelude::*;

// The tests build frames byte by byte, independently of the views under test.
const ETH_P_IPV4: u16 = ETHERTYPE_IPV4;
const ETH_P_IPV6: u16 = ETHERTYPE_IPV6;
const IPPROTO_TCP: u8 = PROTO_TCP;

fn csum_sum(data: &[u8]) -> u32 {
    sum(data, 0)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

const MSS: usize = 1448;

/// An Ethernet + IPv4/IPv6 + TCP (with 12 bytes of timestamp options) frame carrying `payload`,
/// with a correct IPv4 header checksum and, in the TCP checksum field, the pseudo-header sum a
/// VM leaves there with `NEEDS_CSUM`.
fn tcp_frame(v6: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let l3 = 14;
    if v6 {
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, IPPROTO_TCP, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, IPPROTO_TCP, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 3]);
    }
    let l4 = f.len();
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&7u32.to_be_bytes());
    f.extend_from_slice(&[0x80, flags, 0x01, 0xf6, 0, 0, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend_from_slice(payload);
    let t = TcpLayout {
        l3,
        l4,
        payload: l4 + 32,
        v4: !v6,
    };
    let n = f.len();
    if v6 {
        put16(&mut f, l3 + 4, (n - l3 - 40) as u16);
    } else {
        put16(&mut f, l3 + 2, (n - l3) as u16);
        let c = finish(csum_sum(&f[l3..l4]));
        put16(&mut f, l3 + 10, c);
    }
    let pseudo = pseudo_sum(&f, t, f.len() - l4);
    put16(&mut f, l4 + 16, !finish(pseudo));
    f
}

fn gso_hdr(v6: bool, frame: &[u8]) -> VnetHdr {
    let l4 = if v6 { 54 } else { 34 };
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: (l4 + 32).min(frame.len()) as u16,
        gso_size: MSS as u16,
        csum_start: l4 as u16,
        csum_offset: 16,
    }
}

fn layout_of(frame: &[u8]) -> TcpLayout {
    let v6 = be16(frame, 12) == ETH_P_IPV6;
    tcp_layout(frame, if v6 { 54 } else { 34 }).expect("TCP frame")
}

fn payload_of(v: usize) -> Vec<u8> {
    (0..v).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn vnet_header_round_trips_little_endian() {
    let h = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 66,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let b = h.to_bytes();
    assert_eq!(&b[..6], &[1, 1, 66, 0, 0xa8, 0x05]);
    assert_eq!(VnetHdr::parse(&b), Some(h));
    assert_eq!(VnetHdr::parse(&b[..9]), None);
}

proptest! {
    #[test]
    fn segments_then_coalesces_back(v6 in any::<bool>(), len in 1usize..20_000, seq in any::<u32>(), psh in any::<bool>()) {
        let payload = payload_of(len);
        let flags = TCP_ACK | if psh { TCP_PSH } else { 0 };
        let mut frame = tcp_frame(v6, seq, flags, &payload);
        let hdr = gso_hdr(v6, &frame);
        let mut segments = Vec::new();
        segment(hdr, &mut frame, |s| segments.push(s.to_vec())).unwrap();
        prop_assert_eq!(segments.len(), len.div_ceil(MSS).max(1));
        let mut joined = Vec::new();
        for (k, s) in segments.iter().enumerate() {
            let t = layout_of(s);
            let last = k + 1 == segments.len();
            prop_assert!(s.len() - t.payload <= MSS);
            prop_assert!(last || s.len() - t.payload == MSS);
            prop_assert_eq!(be32(s, t.l4 + 4), seq.wrapping_add((k * MSS) as u32));
            prop_assert_eq!(s[t.l4 + 13], if last { flags } else { TCP_ACK });
            prop_assert_eq!(ip_len(s, t), s.len() - t.l3);
            prop_assert!(segment_checksum_ok(s, t), "TCP checksum of segment {}", k);
            if !v6 {
                prop_assert_eq!(finish(csum_sum(&s[t.l3..t.l4])), 0, "IPv4 header checksum");
                prop_assert_eq!(be16(s, t.l3 + 4), 0x1234u16.wrapping_add(k as u16));
            }
            joined.extend_from_slice(&s[t.payload..]);
        }
        prop_assert_eq!(&joined, &payload);

        // The receiving side merges them into one super-frame again (if there is any payload).
        let mut gro = Coalescer::new();
        for s in &segments {
            prop_assert!(gro.push(s), "segment refused");
        }
        let out = gro.flush().to_vec();
        let h = VnetHdr::parse(&out).unwrap();
        let mut merged = out[VNET_HDR_LEN..].to_vec();
        let t = layout_of(&merged);
        prop_assert_eq!(&merged[t.payload..], &payload[..]);
        prop_assert_eq!(be32(&merged, t.l4 + 4), seq);
        prop_assert_eq!(merged[t.l4 + 13], flags);
        prop_assert_eq!(ip_len(&merged, t), merged.len() - t.l3);
        if segments.len() == 1 {
            prop_assert_eq!(h, VnetHdr::default());
            prop_assert_eq!(&merged, &segments[0]);
        } else {
            prop_assert_eq!(h.gso_type, if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
            prop_assert_eq!(usize::from(h.gso_size), MSS);
            prop_assert_eq!(usize::from(h.hdr_len), t.payload);
            // What the VM's kernel does with the partial checksum gives a valid one.
            prop_assert!(complete_checksum(&mut merged, h.csum_start.into(), h.csum_offset.into()));
            prop_assert!(segment_checksum_ok(&merged, t));
        }
    }
}

#[test]
fn completes_a_partial_udp_checksum() {
    // IPv4/UDP from 10.0.0.1:5353 to 10.0.0.3:53 with payload "hello".
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 33, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 3]);
    f.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 13, 0, 0]);
    f.extend_from_slice(b"hello");
    let pseudo = pseudo_v4([10, 0, 0, 1], [10, 0, 0, 3], 17, 13);
    put16(&mut f, 40, !finish(pseudo));
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    let mut out = Vec::new();
    segment(hdr, &mut f, |s| out = s.to_vec()).unwrap();
    assert_ne!(be16(&out, 40), 0);
    assert_eq!(finish(pseudo + csum_sum(&out[34..])), 0);
    // An offset outside the frame is refused rather than written.
    let bad = VnetHdr {
        csum_start: 40,
        csum_offset: 6,
        ..hdr
    };
    assert_eq!(
        segment(bad, &mut out.clone(), |_| ()),
        Err(OffloadError::Malformed)
    );
}

#[test]
fn refuses_unoffered_gso_types_and_inconsistent_headers() {
    let mut f = tcp_frame(false, 1, TCP_ACK, &payload_of(4000));
    let udp = VnetHdr {
        gso_type: 5,
        ..gso_hdr(false, &f)
    };
    assert_eq!(segment(udp, &mut f, |_| ()), Err(OffloadError::UnsupportedGso));
    let wrong_family = VnetHdr {
        gso_type: GSO_TCPV6,
        ..gso_hdr(false, &f)
    };
    assert_eq!(
        segment(wrong_family, &mut f, |_| ()),
        Err(OffloadError::Malformed)
    );
    let zero_mss = VnetHdr {
        gso_size: 0,
        ..gso_hdr(false, &f)
    };
    assert_eq!(segment(zero_mss, &mut f, |_| ()), Err(OffloadError::Malformed));
}

/// A super-frame as long as the worker's receive buffer allows (64 KiB + 64 bytes of frame) with an MSS that
/// leaves it in one piece: that segment's IP length does not fit the 16-bit field, so it is refused rather than
/// sent with a wrapped length.
#[test]
fn refuses_a_segment_whose_ip_length_does_not_fit() {
    for v6 in [false, true] {
        let hl = if v6 { 86 } else { 66 };
        let mut f = tcp_frame(v6, 1, TCP_ACK, &payload_of(65_536 + 64 - hl));
        let one_segment = VnetHdr {
            gso_size: u16::MAX,
            ..gso_hdr(v6, &f)
        };
        let mut emitted = 0;
        assert_eq!(
            segment(one_segment, &mut f, |_| emitted += 1),
            Err(OffloadError::Malformed),
            "v6={v6}"
        );
        assert_eq!(emitted, 0, "v6={v6}");
        // The largest segment that fits is still cut and sent.
        let fits = if v6 { 65_535 + 40 } else { 65_535 };
        let mut f = tcp_frame(v6, 1, TCP_ACK, &payload_of(14 + fits - hl));
        let mut lens = Vec::new();
        segment(
            VnetHdr {
                gso_size: u16::MAX,
                ..gso_hdr(v6, &f)
            },
            &mut f,
            |s| lens.push(s.len()),
        )
        .expect("a segment whose IP length fits");
        assert_eq!(lens, vec![14 + fits], "v6={v6}");
    }
}

fn segments_of(seq: u32, len: usize) -> Vec<Vec<u8>> {
    let mut frame = tcp_frame(false, seq, TCP_ACK, &payload_of(len));
    let hdr = gso_hdr(false, &frame);
    let mut out = Vec::new();
    segment(hdr, &mut frame, |s| out.push(s.to_vec())).unwrap();
    out
}

#[test]
fn coalescer_stops_at_gaps_bad_checksums_other_flows_and_control_flags() {
    let segs = segments_of(1000, 3 * MSS);
    let mut gro = Coalescer::new();

    // A sequence gap: the third segment does not continue the first.
    assert!(gro.push(&segs[0]));
    assert!(!gro.push(&segs[2]));
    let single = gro.flush().to_vec();
    assert_eq!(VnetHdr::parse(&single), Some(VnetHdr::default()));
    assert_eq!(&single[VNET_HDR_LEN..], &segs[0][..]);
    assert!(!gro.is_pending());

    // A corrupted payload byte: not merged (and not started), so the VM's stack sees the bad
    // checksum itself.
    let mut bad = segs[1].clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(gro.push(&segs[0]));
    assert!(!gro.push(&bad));
    gro.flush();
    assert!(!gro.push(&bad));

    // Another flow (different source port).
    let mut other = segs[1].clone();
    other[34] ^= 1;
    assert!(gro.push(&segs[0]));
    assert!(!gro.push(&other));
    gro.flush();

    // SYN/FIN/RST segments never merge.
    for flags in [0x02, TCP_ACK | TCP_FIN, TCP_ACK | 0x04] {
        let f = tcp_frame(false, 5, flags, &payload_of(10));
        let mut f2 = f.clone();
        let t = layout_of(&f2);
        fix_segment(&mut f2, t);
        assert!(!gro.push(&f2), "flags {flags:#x}");
    }

    // A short segment closes the super-frame.
    let short = segments_of(1000 + 3 * MSS as u32, 100);
    assert!(gro.push(&segs[0]));
    assert!(gro.push(&segs[1]));
    assert!(gro.push(&segs[2]));
    assert!(gro.push(&short[0]));
    let next = segments_of(1000 + 3 * MSS as u32 + 100, MSS);
    assert!(!gro.push(&next[0]));
    let out = gro.flush().to_vec();
    let h = VnetHdr::parse(&out).unwrap();
    assert_eq!(h.gso_type, GSO_TCPV4);
    assert_eq!(out.len(), VNET_HDR_LEN + 66 + 3 * MSS + 100);
}
