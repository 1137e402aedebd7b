//! The metalbond wire format: a 4-byte header followed by a proto3 payload.
//!
//! ```text
//!  byte 0     : version = 1
//!  bytes 1..2 : payload length, big-endian u16 (header excluded), at most 1188
//!  byte 3     : message type 1=HELLO 2=KEEPALIVE 3=SUBSCRIBE 4=UNSUBSCRIBE 5=UPDATE
//!  bytes 4..  : protobuf payload
//! ```
//!
//! [`FrameView`] is a zero-copy view of one complete frame in a buffer; [`Message`] is the parsed representation.
//! [`MessageCodec`] implements tokio-util's `Decoder`/`Encoder`, buffering incoming bytes so that a message split
//! across TCP reads (or many messages coalesced into one read) is handled, unlike upstream's Go reader.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ipnet::IpNet;
use prost::Message as _;

use crate::pb;
use crate::route::{NextHop, NextHopType, Route, RouteFault, Vni};

/// The only protocol version.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 4;
/// Largest payload a sender may produce (1220-byte messages fit a 1280 MTU with IPv6 + TCP headers).
pub const MAX_PAYLOAD: usize = 1188;
/// Largest complete frame.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;

/// Errors decoding or encoding a frame. Any decode error is fatal for the session that produced it.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The header's version byte is not 1.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The header announces a payload longer than [`MAX_PAYLOAD`].
    #[error("payload length {0} exceeds the maximum of {MAX_PAYLOAD} bytes")]
    TooLong(usize),
    /// The header's message type is not one of 1..=5.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A KEEPALIVE frame carried a payload.
    #[error("KEEPALIVE with a {0}-byte payload")]
    KeepalivePayload(usize),
    /// The payload is not valid protobuf for its message type.
    #[error("undecodable {kind} payload: {source}")]
    Protobuf {
        /// The message type.
        kind: MessageType,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// The payload decoded but its content is invalid (bad address length, enum value, ...).
    #[error("invalid {kind} message: {reason}")]
    Invalid {
        /// The message type.
        kind: MessageType,
        /// What is wrong.
        reason: &'static str,
    },
    /// The UPDATE decoded but its route is one no correct peer sends (VNI out of range, host bits, inverted NAT
    /// range, family mismatch): the session is closed and nothing is stored.
    #[error("refused UPDATE: {0}")]
    Refused(#[from] RouteFault),
    /// The connection failed while reading or writing.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The message type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1: session parameters.
    Hello,
    /// 2: liveness, empty payload.
    Keepalive,
    /// 3: start receiving a VNI's routes.
    Subscribe,
    /// 4: stop receiving a VNI's routes.
    Unsubscribe,
    /// 5: add or remove one route.
    Update,
}

impl MessageType {
    /// The header byte for this type.
    pub fn wire_value(self) -> u8 {
        match self {
            Self::Hello => 1,
            Self::Keepalive => 2,
            Self::Subscribe => 3,
            Self::Unsubscribe => 4,
            Self::Update => 5,
        }
    }

    /// The type for a header byte, `None` for unknown values.
    pub fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Hello),
            2 => Some(Self::Keepalive),
            3 => Some(Self::Subscribe),
            4 => Some(Self::Unsubscribe),
            5 => Some(Self::Update),
            _ => None,
        }
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hello => "HELLO",
            Self::Keepalive => "KEEPALIVE",
            Self::Subscribe => "SUBSCRIBE",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::Update => "UPDATE",
        })
    }
}

/// Whether an UPDATE adds or removes its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Wire value 0.
    Add,
    /// Wire value 1.
    Remove,
}

/// One parsed metalbond message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Session opening: the sender's keepalive interval in seconds and whether it is a server.
    Hello {
        /// Keepalive interval in (wire) seconds; must be ≥ 1.
        keepalive_interval: u32,
        /// Set by servers in their reply.
        is_server: bool,
    },
    /// Liveness (client-originated, echoed by the server).
    Keepalive,
    /// Subscribe to a VNI.
    Subscribe(Vni),
    /// Unsubscribe from a VNI.
    Unsubscribe(Vni),
    /// Add or remove a route.
    Update(Action, Route),
}

impl Message {
    /// This message's type byte.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Hello { .. } => MessageType::Hello,
            Self::Keepalive => MessageType::Keepalive,
            Self::Subscribe(_) => MessageType::Subscribe,
            Self::Unsubscribe(_) => MessageType::Unsubscribe,
            Self::Update(..) => MessageType::Update,
        }
    }

    /// Appends the complete frame (header + payload) to `dst`.
    ///
    /// Produces exactly the bytes upstream's Go implementation produces (proto3 field order, zero values omitted).
    /// On error nothing is appended.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), CodecError> {
        let payload_len = match self {
            Self::Hello {
                keepalive_interval,
                is_server,
            } => pb::Hello {
                keepalive_interval: *keepalive_interval,
                is_server: *is_server,
            }
            .encoded_len(),
            Self::Keepalive => 0,
            Self::Subscribe(vni) | Self::Unsubscribe(vni) => {
                pb::Subscription { vni: vni.get() }.encoded_len()
            }
            Self::Update(action, route) => update_to_pb(*action, route).encoded_len(),
        };
        if payload_len > MAX_PAYLOAD {
            return Err(CodecError::TooLong(payload_len));
        }
        dst.reserve(HEADER_LEN + payload_len);
        dst.put_u8(VERSION);
        // Truncation impossible: payload_len <= MAX_PAYLOAD < u16::MAX (checked above).
        #[allow(clippy::cast_possible_truncation)]
        let wire_len = payload_len as u16;
        dst.put_u16(wire_len);
        dst.put_u8(self.message_type().wire_value());
        match self {
            Self::Hello {
                keepalive_interval,
                is_server,
            } => pb::Hello {
                keepalive_interval: *keepalive_interval,
                is_server: *is_server,
            }
            .encode_raw(dst),
            Self::Keepalive => {}
            Self::Subscribe(vni) | Self::Unsubscribe(vni) => {
                pb::Subscription { vni: vni.get() }.encode_raw(dst)
            }
            Self::Update(action, route) => update_to_pb(*action, route).encode_raw(dst),
        }
        Ok(())
    }

    /// The complete frame as one buffer (what is handed to the socket in one write).
    pub fn to_frame(&self) -> Result<Bytes, CodecError> {
        let mut buf = BytesMut::with_capacity(64);
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Parses the payload of a frame whose header has already been validated.
    pub fn decode(kind: MessageType, payload: &[u8]) -> Result<Self, CodecError> {
        let pb_err = |source| CodecError::Protobuf { kind, source };
        match kind {
            MessageType::Hello => {
                let hello = pb::Hello::decode(payload).map_err(pb_err)?;
                Ok(Self::Hello {
                    keepalive_interval: hello.keepalive_interval,
                    is_server: hello.is_server,
                })
            }
            MessageType::Keepalive if payload.is_empty() => Ok(Self::Keepalive),
            MessageType::Keepalive => Err(CodecError::KeepalivePayload(payload.len())),
            MessageType::Subscribe => Ok(Self::Subscribe(subscription_vni(kind, payload)?)),
            MessageType::Unsubscribe => Ok(Self::Unsubscribe(subscription_vni(kind, payload)?)),
            MessageType::Update => update_from_pb(pb::Update::decode(payload).map_err(pb_err)?),
        }
    }
}

/// The VNI of a SUBSCRIBE or UNSUBSCRIBE: no route can exist in VNI 0 or beyond 24 bits, so a peer asking for one
/// has confused its numbers (upstream records the subscription and never sends anything for it).
fn subscription_vni(kind: MessageType, payload: &[u8]) -> Result<Vni, CodecError> {
    let vni = pb::Subscription::decode(payload)
        .map_err(|source| CodecError::Protobuf { kind, source })?
        .vni;
    Vni::new(vni).map_err(|_| CodecError::Invalid {
        kind,
        reason: "VNI outside 1..=16777215",
    })
}

fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn update_to_pb(action: Action, route: &Route) -> pb::Update {
    let hop = &route.next_hop;
    let (from, to) = hop.nat_ports();
    pb::Update {
        action: match action {
            Action::Add => pb::Action::Add as i32,
            Action::Remove => pb::Action::Remove as i32,
        },
        vni: route.vni.get(),
        destination: Some(pb::Destination {
            ip_version: match route.destination {
                IpNet::V4(_) => pb::IpVersion::IPv4 as i32,
                IpNet::V6(_) => pb::IpVersion::IPv6 as i32,
            },
            prefix: addr_bytes(route.destination.addr()),
            prefix_length: u32::from(route.destination.prefix_len()),
        }),
        next_hop: Some(pb::NextHop {
            target_address: addr_bytes(hop.target()),
            target_vni: Vni::to_wire(hop.target_vni()),
            r#type: hop.kind().wire_value(),
            nat_port_range_from: u32::from(from),
            nat_port_range_to: u32::from(to),
        }),
    }
}

fn addr_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    }
}

fn update_from_pb(update: pb::Update) -> Result<Message, CodecError> {
    let invalid = |reason| CodecError::Invalid {
        kind: MessageType::Update,
        reason,
    };
    let action = match update.action {
        0 => Action::Add,
        1 => Action::Remove,
        _ => return Err(invalid("unknown action")),
    };
    let dest = update.destination.ok_or_else(|| invalid("missing destination"))?;
    let prefix_addr =
        addr_from_bytes(&dest.prefix).ok_or_else(|| invalid("destination prefix is not 4 or 16 bytes"))?;
    // The family follows from the address length, as in upstream; the `ipVersion` tag must agree with it, since a
    // peer that tags a 4-byte address IPv6 has mixed up two routes (upstream ignores the tag).
    let (family, max_len, tag) = match prefix_addr {
        IpAddr::V4(_) => ("IPv4", 32u8, pb::IpVersion::IPv4 as i32),
        IpAddr::V6(_) => ("IPv6", 128u8, pb::IpVersion::IPv6 as i32),
    };
    if dest.ip_version != tag {
        return Err(CodecError::Refused(RouteFault::FamilyMismatch {
            tagged: pb::IpVersion::try_from(dest.ip_version)
                .map_or_else(|_| format!("ipVersion {}", dest.ip_version), |v| format!("{v:?}")),
            address_bytes: dest.prefix.len(),
        }));
    }
    let too_long = RouteFault::PrefixTooLong {
        family,
        len: dest.prefix_length,
        max: max_len,
    };
    let prefix_len = u8::try_from(dest.prefix_length)
        .ok()
        .filter(|l| *l <= max_len)
        .ok_or(too_long)?;
    let destination =
        IpNet::new(prefix_addr, prefix_len).map_err(|_| invalid("prefix length out of range"))?;
    let hop = update.next_hop.ok_or_else(|| invalid("missing next hop"))?;
    let target =
        addr_from_bytes(&hop.target_address).ok_or_else(|| invalid("target address is not 4 or 16 bytes"))?;
    let kind = NextHopType::from_wire(hop.r#type).ok_or_else(|| invalid("unknown next hop type"))?;
    let from = u16::try_from(hop.nat_port_range_from).map_err(|_| invalid("NAT port out of range"))?;
    let to = u16::try_from(hop.nat_port_range_to).map_err(|_| invalid("NAT port out of range"))?;
    // The VNIs are checked here, after the destination and next hop decoded, so that a frame with several faults
    // reports the same first one as before the type existed.
    let vni = Vni::new(update.vni).map_err(|_| RouteFault::VniOutOfRange(update.vni))?;
    let target_vni =
        Vni::from_wire(hop.target_vni).map_err(|_| RouteFault::TargetVniOutOfRange(hop.target_vni))?;
    let next_hop = NextHop::from_parts(target, target_vni, kind, from, to);
    let route = Route::new(vni, destination, next_hop);
    route.validate()?;
    Ok(Message::Update(action, route))
}

/// A zero-copy view of one complete, header-validated frame at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    kind: MessageType,
    payload: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// Looks at the start of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed, an error as soon as the header is invalid (without waiting
    /// for the payload), or the view of the first complete frame.
    pub fn parse(buf: &'a [u8]) -> Result<Option<Self>, CodecError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            // Fail fast on a wrong version even before the header is complete.
            return match buf.first() {
                Some(&v) if v != VERSION => Err(CodecError::Version(v)),
                _ => Ok(None),
            };
        };
        if header[0] != VERSION {
            return Err(CodecError::Version(header[0]));
        }
        let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
        if len > MAX_PAYLOAD {
            return Err(CodecError::TooLong(len));
        }
        let kind = MessageType::from_wire(header[3]).ok_or(CodecError::UnknownType(header[3]))?;
        Ok(buf
            .get(HEADER_LEN..HEADER_LEN + len)
            .map(|payload| Self { kind, payload }))
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        self.kind
    }

    /// The protobuf payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Header plus payload length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Parses the payload.
    pub fn message(&self) -> Result<Message, CodecError> {
        Message::decode(self.kind, self.payload)
    }
}

/// tokio-util codec for metalbond frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct MessageCodec;

impl tokio_util::codec::Decoder for MessageCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(frame) = FrameView::parse(src)? else {
            // Reserve for the rest of the frame to avoid many small reallocations.
            src.reserve(MAX_FRAME.saturating_sub(src.len()));
            return Ok(None);
        };
        let len = frame.frame_len();
        let msg = frame.message();
        src.advance(len);
        msg.map(Some)
    }
}

impl tokio_util::codec::Encoder<&Message> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Vni;
    use ironnet_vni::vni;
    use tokio_util::codec::Decoder;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn example_update() -> (Message, Vec<u8>) {
        let target: Ipv6Addr = "fc00:1::d0".parse().unwrap();
        let route = Route::new(
            vni!(100),
            "10.0.0.1/32".parse().unwrap(),
            NextHop::standard(IpAddr::V6(target)),
        );
        let mut bytes = hex("01 00 20 05 10 64 1a 08 12 04 0a 00 00 01 18 20 22 12 0a 10");
        bytes.extend_from_slice(&target.octets());
        (Message::Update(Action::Add, route), bytes)
    }

    fn examples() -> Vec<(Message, Vec<u8>)> {
        vec![
            (
                Message::Hello {
                    keepalive_interval: 3,
                    is_server: false,
                },
                hex("01 00 02 01 08 03"),
            ),
            (
                Message::Hello {
                    keepalive_interval: 3,
                    is_server: true,
                },
                hex("01 00 04 01 08 03 10 01"),
            ),
            (Message::Keepalive, hex("01 00 00 02")),
            (Message::Subscribe(vni!(100)), hex("01 00 02 03 08 64")),
            (Message::Unsubscribe(vni!(100)), hex("01 00 02 04 08 64")),
            example_update(),
        ]
    }

    #[test]
    fn spec_examples_encode_byte_exact() {
        for (msg, bytes) in examples() {
            assert_eq!(msg.to_frame().unwrap().as_ref(), bytes.as_slice(), "{msg:?}");
        }
    }

    #[test]
    fn spec_examples_decode() {
        for (msg, bytes) in examples() {
            let mut buf = BytesMut::from(bytes.as_slice());
            assert_eq!(MessageCodec.decode(&mut buf).unwrap(), Some(msg));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn nat_and_lb_round_trip() {
        let target: IpAddr = "fc00::5".parse().unwrap();
        for hop in [
            NextHop::nat(target, 1024, 2048).unwrap(),
            NextHop::load_balancer_target(target).with_target_vni(vni!(7)),
            NextHop::standard("192.0.2.1".parse().unwrap()),
        ] {
            for dest in ["10.1.2.0/24", "2001:db8::/64", "0.0.0.0/0", "::/0"] {
                let msg = Message::Update(Action::Remove, Route::new(Vni::MAX, dest.parse().unwrap(), hop));
                let frame = msg.to_frame().unwrap();
                let mut buf = BytesMut::from(frame.as_ref());
                assert_eq!(MessageCodec.decode(&mut buf).unwrap(), Some(msg));
            }
        }
    }

    #[test]
    fn nat_ports_are_sent_only_for_nat() {
        let target: IpAddr = "fc00::5".parse().unwrap();
        let nat = Message::Update(
            Action::Add,
            Route::new(
                vni!(1),
                "1.1.1.1/32".parse().unwrap(),
                NextHop::nat(target, 1, 2).unwrap(),
            ),
        );
        let frame = nat.to_frame().unwrap();
        // ... 18 01 (type NAT) 20 01 (from) 28 02 (to) at the end.
        assert!(frame.ends_with(&hex("18 01 20 01 28 02")));
    }

    #[test]
    fn stream_split_at_every_boundary() {
        let msgs: Vec<Message> = examples().into_iter().map(|(m, _)| m).collect();
        let mut stream = BytesMut::new();
        for m in &msgs {
            m.encode(&mut stream).unwrap();
        }
        let stream = stream.freeze();
        // Every single split point, then every pair of split points (three chunks).
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut codec = MessageCodec;
                let mut buf = BytesMut::new();
                let mut out = Vec::new();
                for chunk in [&stream[..a], &stream[a..b], &stream[b..]] {
                    buf.extend_from_slice(chunk);
                    while let Some(m) = codec.decode(&mut buf).unwrap() {
                        out.push(m);
                    }
                }
                assert_eq!(out, msgs, "split at {a}/{b}");
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn bad_headers_are_rejected_early() {
        assert!(matches!(FrameView::parse(&[2]), Err(CodecError::Version(2))));
        assert!(matches!(
            FrameView::parse(&[1, 0x04, 0xa5, 5]),
            Err(CodecError::TooLong(1189))
        ));
        assert!(matches!(
            FrameView::parse(&[1, 0, 0, 9]),
            Err(CodecError::UnknownType(9))
        ));
        assert!(matches!(
            FrameView::parse(&[1, 0, 0, 0]),
            Err(CodecError::UnknownType(0))
        ));
        assert!(FrameView::parse(&[1, 0, 4, 5, 0]).unwrap().is_none());
        let mut buf = BytesMut::from(&[1u8, 0, 1, 2, 0][..]);
        assert!(matches!(
            MessageCodec.decode(&mut buf),
            Err(CodecError::KeepalivePayload(1))
        ));
    }

    #[test]
    fn invalid_update_contents_are_rejected() {
        let base = update_to_pb(Action::Add, &example_update().0.route().unwrap());
        let mut cases = Vec::new();
        let mut u = base.clone();
        u.destination.as_mut().unwrap().prefix = vec![1, 2, 3];
        cases.push(u);
        let mut u = base.clone();
        u.next_hop.as_mut().unwrap().target_address.clear();
        cases.push(u);
        let mut u = base.clone();
        u.next_hop.as_mut().unwrap().r#type = 3;
        cases.push(u);
        let mut u = base.clone();
        u.action = 2;
        cases.push(u);
        let mut u = base.clone();
        u.next_hop = None;
        cases.push(u);
        let mut u = base.clone();
        u.next_hop.as_mut().unwrap().r#type = 1;
        u.next_hop.as_mut().unwrap().nat_port_range_to = 65536;
        cases.push(u);
        for case in cases {
            let payload = case.encode_to_vec();
            assert!(
                matches!(
                    Message::decode(MessageType::Update, &payload),
                    Err(CodecError::Invalid { .. })
                ),
                "{case:?}"
            );
        }
        assert!(matches!(
            Message::decode(MessageType::Hello, &[0xff]),
            Err(CodecError::Protobuf { .. })
        ));
    }

    /// Decodes one complete frame given as hex and returns the refusal, if any.
    fn refusal(frame_hex: &str) -> Option<RouteFault> {
        let mut buf = BytesMut::from(hex(frame_hex).as_slice());
        match MessageCodec.decode(&mut buf) {
            Err(CodecError::Refused(fault)) => Some(fault),
            Ok(Some(_)) => None,
            other => panic!("expected a decoded or refused UPDATE, got {other:?}"),
        }
    }

    // The frames below are the spec example (UPDATE ADD vni 100, 10.0.0.1/32 via fc00:1::d0) with one field changed;
    // every length byte is spelled out so that the bytes are exactly what a peer would send.
    const HOP: &str = "22 12 0a 10 fc 00 00 01 00 00 00 00 00 00 00 00 00 00 00 d0";

    #[test]
    fn the_unchanged_example_is_accepted() {
        assert_eq!(
            refusal(&format!("01 00 20 05 10 64 1a 08 12 04 0a 00 00 01 18 20 {HOP}")),
            None
        );
    }

    #[test]
    fn vni_zero_is_refused() {
        // No `10 ..` field: proto3 omits VNI 0.
        let fault = refusal(&format!("01 00 1e 05 1a 08 12 04 0a 00 00 01 18 20 {HOP}"));
        assert_eq!(fault, Some(RouteFault::VniOutOfRange(0)));
        assert_eq!(fault.unwrap().to_string(), "VNI 0 is outside 1..=16777215");
    }

    #[test]
    fn vni_above_24_bits_is_refused() {
        // VNI 16777216 = varint 80 80 80 08.
        let fault = refusal(&format!(
            "01 00 23 05 10 80 80 80 08 1a 08 12 04 0a 00 00 01 18 20 {HOP}"
        ));
        assert_eq!(fault, Some(RouteFault::VniOutOfRange(16_777_216)));
        // 16777215 (ff ff ff 07) is the largest VNI and passes.
        assert_eq!(
            refusal(&format!(
                "01 00 23 05 10 ff ff ff 07 1a 08 12 04 0a 00 00 01 18 20 {HOP}"
            )),
            None
        );
    }

    #[test]
    fn target_vni_above_24_bits_is_refused() {
        // Next hop with targetVNI (field 2) 16777216.
        let hop = "22 17 0a 10 fc 00 00 01 00 00 00 00 00 00 00 00 00 00 00 d0 10 80 80 80 08";
        let fault = refusal(&format!("01 00 25 05 10 64 1a 08 12 04 0a 00 00 01 18 20 {hop}"));
        assert_eq!(fault, Some(RouteFault::TargetVniOutOfRange(16_777_216)));
    }

    #[test]
    fn host_bits_are_refused() {
        // 10.0.0.1/24 (prefix length 0x18).
        let fault = refusal(&format!("01 00 20 05 10 64 1a 08 12 04 0a 00 00 01 18 18 {HOP}"));
        assert_eq!(
            fault.as_ref().map(ToString::to_string).as_deref(),
            Some("destination 10.0.0.1/24 has host bits set (the network is 10.0.0.0/24)")
        );
    }

    #[test]
    fn inverted_nat_range_is_refused() {
        // type NAT (18 01), from 2048 (20 80 10), to 1024 (28 80 08).
        let hop = "22 1a 0a 10 fc 00 00 01 00 00 00 00 00 00 00 00 00 00 00 d0 18 01 20 80 10 28 80 08";
        let fault = refusal(&format!("01 00 28 05 10 64 1a 08 12 04 0a 00 00 01 18 20 {hop}"));
        assert_eq!(fault, Some(RouteFault::InvertedNatRange { from: 2048, to: 1024 }));
        // The same range the right way round is accepted.
        let hop = "22 1a 0a 10 fc 00 00 01 00 00 00 00 00 00 00 00 00 00 00 d0 18 01 20 80 08 28 80 10";
        assert_eq!(
            refusal(&format!("01 00 28 05 10 64 1a 08 12 04 0a 00 00 01 18 20 {hop}")),
            None
        );
    }

    #[test]
    fn family_tag_mismatch_is_refused() {
        // ipVersion IPv6 (08 01) on a 4-byte prefix.
        let fault = refusal(&format!(
            "01 00 22 05 10 64 1a 0a 08 01 12 04 0a 00 00 01 18 20 {HOP}"
        ));
        assert_eq!(
            fault,
            Some(RouteFault::FamilyMismatch {
                tagged: "IPv6".into(),
                address_bytes: 4
            })
        );
        // ipVersion IPv4 (omitted) on a 16-byte prefix 2001:db8::/64.
        let fault = refusal(&format!(
            "01 00 2c 05 10 64 1a 14 12 10 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00 18 40 {HOP}"
        ));
        assert_eq!(
            fault.map(|f| f.to_string()).as_deref(),
            Some("destination tagged IPv4 carries a 16-byte address")
        );
    }

    #[test]
    fn prefix_length_beyond_the_family_is_refused() {
        // 10.0.0.1/64 (prefix length 0x40).
        let fault = refusal(&format!("01 00 20 05 10 64 1a 08 12 04 0a 00 00 01 18 40 {HOP}"));
        assert_eq!(
            fault.map(|f| f.to_string()).as_deref(),
            Some("prefix length 64 exceeds 32 for an IPv4 destination")
        );
    }

    impl Message {
        fn route(&self) -> Option<Route> {
            match self {
                Message::Update(_, r) => Some(*r),
                _ => None,
            }
        }
    }
}
