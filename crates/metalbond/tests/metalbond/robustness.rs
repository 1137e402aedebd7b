//! Bad input: the decoder never panics on arbitrary bytes, and a bad frame closes only the session that sent it.

use crate::common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use ironnet_metalbond::{Action, CodecError, Message, MessageCodec, NextHop, NextHopType, Route, pb};
use ironnet_vni::{Vni, vni};
use proptest::prelude::*;
use prost::Message as _;
use tokio_util::codec::Decoder;

/// Feeds `bytes` to a decoder in `chunks`, as a connection would; returns the messages decoded before the first
/// error and whether an error occurred.
fn decode_stream(bytes: &[u8], chunks: &[usize]) -> (Vec<Message>, bool) {
    let mut codec = MessageCodec;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

const MAX_VNI: u32 = Vni::MAX.get();

/// Routes that pass [`Route::validate`]: the ones a correct peer sends.
fn arb_route() -> impl Strategy<Value = Route> {
    (
        1..=MAX_VNI,
        any::<[u8; 4]>(),
        0u8..=32,
        any::<[u8; 16]>(),
        0u8..3,
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(vni, p, len, hop, kind, a, b)| {
            let dest = ipnet::IpNet::new(std::net::IpAddr::from(p), len).unwrap().trunc();
            let target = std::net::IpAddr::from(hop);
            let next_hop = match kind {
                0 => NextHop::standard(target),
                1 => NextHop::load_balancer_target(target),
                _ => NextHop::nat(target, a.min(b), a.max(b).max(1)).unwrap_or(NextHop::standard(target)),
            };
            Route::new(Vni::new(vni).unwrap(), dest, next_hop)
        })
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (1u32..1000, any::<bool>()).prop_map(|(k, s)| Message::Hello {
            keepalive_interval: k,
            is_server: s
        }),
        Just(Message::Keepalive),
        (1..=MAX_VNI).prop_map(|v| Message::Subscribe(Vni::new(v).unwrap())),
        (1..=MAX_VNI).prop_map(|v| Message::Unsubscribe(Vni::new(v).unwrap())),
        (any::<bool>(), arb_route())
            .prop_map(|(add, r)| Message::Update(if add { Action::Add } else { Action::Remove }, r)),
    ]
}

/// Raw UPDATE contents around every boundary the validation checks.
fn arb_raw_update() -> impl Strategy<Value = pb::Update> {
    let vni = prop_oneof![
        Just(0u32),
        Just(1),
        Just(MAX_VNI),
        Just(MAX_VNI + 1),
        any::<u32>()
    ];
    let addr = prop_oneof![
        prop::collection::vec(any::<u8>(), 4),
        prop::collection::vec(any::<u8>(), 16),
        prop::collection::vec(any::<u8>(), 0..20),
        // Network addresses, so that host-bit-free prefixes are common.
        (0u8..=255).prop_map(|b| vec![b, 0, 0, 0]),
        Just(vec![0u8; 16]),
    ];
    let ports = prop_oneof![
        Just(0u32),
        Just(1024),
        Just(2048),
        Just(65535),
        Just(65536),
        any::<u32>()
    ];
    (
        0i32..3,
        vni.clone(),
        (0i32..3, addr, 0u32..140),
        (
            prop::collection::vec(any::<u8>(), 4..=4),
            vni,
            0i32..4,
            ports.clone(),
            ports,
        ),
    )
        .prop_map(
            |(action, vni, (ip_version, prefix, prefix_length), (target, target_vni, kind, from, to))| {
                pb::Update {
                    action,
                    vni,
                    destination: Some(pb::Destination {
                        ip_version,
                        prefix,
                        prefix_length,
                    }),
                    next_hop: Some(pb::NextHop {
                        target_address: target,
                        target_vni,
                        r#type: kind,
                        nat_port_range_from: from,
                        nat_port_range_to: to,
                    }),
                }
            },
        )
}

/// The acceptance rule written out independently of the decoder: what a correct peer can send.
fn acceptable(u: &pb::Update) -> bool {
    let (dest, hop) = (u.destination.as_ref().unwrap(), u.next_hop.as_ref().unwrap());
    let (tag, max_len) = match dest.prefix.len() {
        4 => (0, 32),
        16 => (1, 128),
        _ => return false,
    };
    let host_bits_clear = dest.prefix_length <= max_len && {
        let mut bits = dest
            .prefix
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1));
        bits.nth(dest.prefix_length as usize)
            .is_none_or(|first| first == 0 && bits.all(|b| b == 0))
    };
    let nat = hop.r#type == 1;
    let ports_fit = hop.nat_port_range_from <= 65535 && hop.nat_port_range_to <= 65535;
    u.action <= 1
        && (1..=MAX_VNI).contains(&u.vni)
        && hop.target_vni <= MAX_VNI
        && hop.r#type <= 2
        && dest.ip_version == tag
        && host_bits_clear
        && ports_fit
        && (!nat || hop.nat_port_range_from <= hop.nat_port_range_to)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000),
        ..ProptestConfig::default()
    })]

    /// Decoding plus validation accepts exactly the UPDATEs the independent rule accepts, and an accepted UPDATE
    /// carries exactly the fields sent; a refused one is an error, never a panic.
    #[test]
    fn decoder_accepts_exactly_the_valid_updates(u in arb_raw_update()) {
        let payload = u.encode_to_vec();
        prop_assume!(payload.len() <= 1188);
        let mut frame = vec![1, (payload.len() >> 8) as u8, payload.len() as u8, 5];
        frame.extend_from_slice(&payload);
        let decoded = MessageCodec.decode(&mut BytesMut::from(frame.as_slice()));
        prop_assert_eq!(decoded.is_ok(), acceptable(&u), "{:?} -> {:?}", u, decoded);
        match decoded {
            Ok(Some(Message::Update(action, route))) => {
                prop_assert_eq!(action == Action::Remove, u.action == 1);
                prop_assert_eq!(route.vni.get(), u.vni);
                prop_assert_eq!(route.validate(), Ok(()));
                let dest = u.destination.as_ref().unwrap();
                prop_assert_eq!(u32::from(route.destination.prefix_len()), dest.prefix_length);
                let hop = u.next_hop.as_ref().unwrap();
                prop_assert_eq!(Vni::to_wire(route.next_hop.target_vni()), hop.target_vni);
                prop_assert_eq!(route.next_hop.kind().wire_value(), hop.r#type);
                if route.next_hop.kind() == NextHopType::Nat {
                    let (from, to) = route.next_hop.nat_ports();
                    prop_assert_eq!((u32::from(from), u32::from(to)), (hop.nat_port_range_from, hop.nat_port_range_to));
                }
            }
            Ok(other) => prop_assert!(false, "decoded {:?}", other),
            Err(CodecError::Refused(_) | CodecError::Invalid { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error kind {:?}", e),
        }
    }
}

proptest! {
    // 3,000 cases per property in the regular suite; PROPTEST_CASES=N runs longer fuzzing sessions.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000),
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes in arbitrary chunks: no panic, and what decodes before an error is a prefix of what the
    /// same bytes decode to in one piece.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512),
                                   chunks in prop::collection::vec(1usize..64, 1..8)) {
        let (whole, whole_err) = decode_stream(&bytes, &[usize::MAX]);
        let (split, split_err) = decode_stream(&bytes, &chunks);
        prop_assert_eq!(whole_err, split_err);
        prop_assert_eq!(whole, split);
    }

    /// Valid streams decode to exactly the messages sent, however the bytes are split.
    #[test]
    fn valid_streams_survive_any_split(msgs in prop::collection::vec(arb_message(), 0..20),
                                       chunks in prop::collection::vec(1usize..40, 1..8)) {
        let mut stream = BytesMut::new();
        for m in &msgs {
            m.encode(&mut stream).unwrap();
        }
        let (out, err) = decode_stream(&stream, &chunks);
        prop_assert!(!err);
        prop_assert_eq!(out, msgs);
    }

    /// Valid frames with corrupted bytes: never a panic (an error or a different valid message is fine).
    #[test]
    fn corrupted_frames_never_panic(msg in arb_message(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut frame = msg.to_frame().unwrap().to_vec();
        for (pos, val) in flips {
            let i = pos % frame.len();
            frame[i] = val;
        }
        let _ = decode_stream(&frame, &[3]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_closes_only_that_session() {
    let (srv, addr) = server_with_keepalive(50).await;
    let good = client(&[&addr]).await;
    good.subscribe(vni!(1)).unwrap();
    let announcer = client(&[&addr]).await;
    let bad_frames: [&[u8]; 7] = [
        &[2, 0, 0, 2],                         // version 2
        &[1, 0x04, 0xa5, 5],                   // payload 1189 > 1188
        &[1, 0, 0, 6],                         // unknown type
        &[1, 0, 2, 5, 0xff, 0xff],             // undecodable protobuf
        &[1, 0, 1, 2, 0],                      // KEEPALIVE with payload
        &[1, 0, 4, 5, 0x1a, 0x02, 0x12, 0x01], // UPDATE with a malformed destination
        &[1, 0, 2, 1, 8, 1],                   // second HELLO
    ];
    for (i, bad) in bad_frames.iter().enumerate() {
        let mut raw = RawPeer::connect(&addr).await;
        raw.handshake_as_client(50).await;
        raw.send_raw(bad).await;
        assert!(
            raw.closed_within(SOON).await,
            "bad frame {i} did not close the session"
        );
        let r = Route::new(
            vni!(1),
            format!("10.1.0.{i}/32").parse().unwrap(),
            NextHop::standard("fc00::1".parse().unwrap()),
        );
        announcer.announce(r).unwrap();
        eventually("the good client keeps receiving", || good.has_route(&r)).await;
    }
    // A HELLO with keepalive 0 before the session starts is refused too.
    let mut raw = RawPeer::connect(&addr).await;
    raw.send(&Message::Hello {
        keepalive_interval: 0,
        is_server: false,
    })
    .await;
    assert!(raw.closed_within(SOON).await);
    consistently("good sessions stay up", Duration::from_millis(200), || {
        established_peers(&srv).len() == 2
    })
    .await;
    srv.shutdown();
}
