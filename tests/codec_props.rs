//! Property tests of the pure SPOP codec (issue 2: "arbitrary bytes never panic the decoder;
//! decode → encode → decode is the identity for every frame type").
//!
//! Each property runs 2000 cases by default so the suite stays fast. For a longer hunt:
//! `PROPTEST_CASES=200000 cargo test --release --test codec_props`.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use spoa_mirror::spop::{
    varint, Action, AgentHello, Arg, Capabilities, Disconnect, Flags, Frame, FrameDecoder,
    FrameHeader, FrameType, HaproxyHello, Kv, Message, Payload, Reader, TypedData, VarScope,
    MIN_FRAME_SIZE,
};
use std::net::{Ipv4Addr, Ipv6Addr};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// --- strategies ---------------------------------------------------------------------------

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn typed_data() -> impl Strategy<Value = TypedData> {
    prop_oneof![
        Just(TypedData::Null),
        any::<bool>().prop_map(TypedData::Bool),
        any::<i32>().prop_map(TypedData::Int32),
        any::<u32>().prop_map(TypedData::Uint32),
        any::<i64>().prop_map(TypedData::Int64),
        any::<u64>().prop_map(TypedData::Uint64),
        any::<[u8; 4]>().prop_map(|a| TypedData::Ipv4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| TypedData::Ipv6(Ipv6Addr::from(a))),
        bytes(300).prop_map(TypedData::String),
        bytes(300).prop_map(TypedData::Binary),
    ]
}

/// KV names: the HELLO/DISCONNECT keys often, arbitrary non-empty bytes otherwise.
fn kv_name() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        prop::sample::select(vec![
            "supported-versions",
            "max-frame-size",
            "capabilities",
            "engine-id",
            "healthcheck",
            "status-code",
            "message",
            "version",
        ])
        .prop_map(|k| Bytes::from_static(k.as_bytes())),
        prop::collection::vec(any::<u8>(), 1..20).prop_map(Bytes::from),
    ]
}

fn kv() -> impl Strategy<Value = Kv> {
    (kv_name(), typed_data()).prop_map(|(name, value)| Kv { name, value })
}

fn message() -> impl Strategy<Value = Message> {
    (
        bytes(20),
        prop::collection::vec(
            (bytes(12), typed_data()).prop_map(|(name, value)| Arg { name, value }),
            0..8,
        ),
    )
        .prop_map(|(name, args)| Message { name, args })
}

fn scope() -> impl Strategy<Value = VarScope> {
    prop_oneof![
        Just(VarScope::Proc),
        Just(VarScope::Sess),
        Just(VarScope::Txn),
        Just(VarScope::Req),
        Just(VarScope::Res),
        // 0..=4 decode to the named scopes, so `Other` only round-trips above them.
        (5u8..=255).prop_map(VarScope::Other),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (scope(), bytes(20), typed_data()).prop_map(|(scope, name, value)| Action::SetVar {
            scope,
            name,
            value
        }),
        (scope(), bytes(20)).prop_map(|(scope, name)| Action::UnsetVar { scope, name }),
    ]
}

fn header(frame_type: FrameType) -> impl Strategy<Value = FrameHeader> {
    (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(move |(flags, sid, fid)| FrameHeader {
        frame_type,
        flags: Flags(flags),
        stream_id: sid,
        frame_id: fid,
    })
}

/// A frame of any type with a payload of the matching kind.
fn frame() -> impl Strategy<Value = Frame> {
    let kv_types = prop::sample::select(vec![
        FrameType::HaproxyHello,
        FrameType::HaproxyDisconnect,
        FrameType::AgentHello,
        FrameType::AgentDisconnect,
    ]);
    let unknown = any::<u8>()
        .prop_filter("an undefined type", |b| !matches!(b, 0..=3 | 101..=103))
        .prop_map(FrameType::Unknown);
    prop_oneof![
        kv_types
            .prop_flat_map(|t| (header(t), prop::collection::vec(kv(), 0..8)))
            .prop_map(|(header, items)| Frame {
                header,
                payload: Payload::KvList(items)
            }),
        (
            header(FrameType::Notify),
            prop::collection::vec(message(), 0..4)
        )
            .prop_map(|(header, messages)| Frame {
                header,
                payload: Payload::Messages(messages)
            }),
        (
            header(FrameType::Ack),
            prop::collection::vec(action(), 0..6)
        )
            .prop_map(|(header, actions)| Frame {
                header,
                payload: Payload::Actions(actions)
            }),
        (
            prop_oneof![Just(FrameType::Unset), unknown].prop_flat_map(header),
            bytes(200)
        )
            .prop_map(|(header, raw)| Frame {
                header,
                payload: Payload::Raw(raw)
            }),
    ]
}

// --- helpers ------------------------------------------------------------------------------

fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out
}

/// Strips the length prefix with the stream decoder and decodes the frame.
fn decode_whole(buf: &[u8]) -> Frame {
    let mut buf = BytesMut::from(buf);
    let body = FrameDecoder::new(u32::MAX)
        .decode(&mut buf)
        .expect("length prefix")
        .expect("whole frame");
    assert!(buf.is_empty());
    Frame::decode(body).expect("an encoded frame decodes")
}

/// For bytes that happen to decode: encode → decode gives the same value again.
fn assert_reencodes(frame: &Frame) {
    let again = decode_whole(&encode(frame));
    assert_eq!(&again, frame);
}

proptest! {
    #![proptest_config(config())]

    // --- never panic

    #[test]
    fn frame_decode_never_panics(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(frame) = Frame::decode(Bytes::from(raw)) {
            assert_reencodes(&frame);
        }
    }

    /// Arbitrary bytes rarely form a frame; corrupting valid frames reaches deep into the
    /// payload decoders instead.
    #[test]
    fn corrupted_frames_never_panic(
        frame in frame(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let encoded = encode(&frame);
        let mut body = encoded[4..].to_vec();
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let cut = cut.index(body.len() + 1);
        for candidate in [&body[..], &body[..cut]] {
            if let Ok(decoded) = Frame::decode(Bytes::copy_from_slice(candidate)) {
                assert_reencodes(&decoded);
            }
            if let Ok((header, payload)) = Frame::decode_header(Bytes::copy_from_slice(candidate)) {
                for t in [FrameType::Notify, FrameType::Ack, FrameType::HaproxyHello, header.frame_type] {
                    let _ = Frame::decode_payload(t, payload.clone());
                }
            }
        }
    }

    #[test]
    fn decoder_check_never_panics(
        raw in prop::collection::vec(any::<u8>(), 0..64),
        max in prop_oneof![Just(0u32), Just(7), Just(256), Just(16380), any::<u32>()],
    ) {
        let d = FrameDecoder::new(max);
        match d.check(&raw) {
            Ok(Some(n)) => {
                prop_assert!(n >= 7 && n as u64 <= u64::from(max));
                prop_assert!(4 + n <= raw.len());
            }
            Ok(None) => {
                // Only ever "need more" while the prefix or the declared frame is incomplete.
                if let Some(prefix) = raw.get(..4) {
                    let len = u32::from_be_bytes(prefix.try_into().unwrap()) as usize;
                    prop_assert!(raw.len() < 4 + len);
                }
            }
            Err(_) => prop_assert!(raw.len() >= 4),
        }
    }

    #[test]
    fn varint_decode_never_panics_and_is_canonical(raw in prop::collection::vec(any::<u8>(), 0..16)) {
        if let Ok((value, len)) = varint::decode(&raw) {
            prop_assert!((1..=varint::MAX_LEN).contains(&len) && len <= raw.len());
            // No overlong forms: the value re-encodes to exactly the bytes it came from.
            let mut out = Vec::new();
            varint::encode(value, &mut out);
            prop_assert_eq!(&out[..], &raw[..len]);
        }
    }

    #[test]
    fn varint_round_trips(value in any::<u64>(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
        let mut out = Vec::new();
        varint::encode(value, &mut out);
        prop_assert_eq!(out.len(), varint::encoded_len(value));
        out.extend_from_slice(&tail);
        prop_assert_eq!(varint::decode(&out), Ok((value, varint::encoded_len(value))));
    }

    #[test]
    fn hello_validation_never_panics(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(items) = Kv::decode_list(&mut Reader::new(Bytes::from(raw))) {
            let _ = HaproxyHello::from_kv(&items);
            let _ = AgentHello::from_kv(&items);
            let _ = Disconnect::from_kv(&items);
        }
    }

    /// On KV lists made of the real keys with values of any type: a HELLO that validates
    /// negotiates a size within [256, min(ours, HAProxy's)] and only capabilities both want.
    #[test]
    fn hello_validation_on_plausible_kvs(
        items in prop::collection::vec(kv(), 0..10),
        ours in MIN_FRAME_SIZE..=u32::MAX,
        ours_caps in (any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let _ = Disconnect::from_kv(&items);
        let _ = AgentHello::from_kv(&items);
        if let Ok(hello) = HaproxyHello::from_kv(&items) {
            prop_assert!(hello.max_frame_size >= MIN_FRAME_SIZE);
            let caps = Capabilities { fragmentation: ours_caps.0, pipelining: ours_caps.1, r#async: ours_caps.2 };
            let reply = AgentHello::negotiate(&hello, ours, caps);
            prop_assert!(reply.max_frame_size >= MIN_FRAME_SIZE);
            prop_assert!(reply.max_frame_size <= ours.min(hello.max_frame_size));
            prop_assert!(!reply.capabilities.pipelining || (caps.pipelining && hello.capabilities.pipelining));
            prop_assert!(!reply.capabilities.r#async || (caps.r#async && hello.capabilities.r#async));
        }
    }

    // --- identity

    /// decode(encode(frame)) == frame for every frame type, with arbitrary typed data.
    #[test]
    fn encode_decode_identity(frame in frame()) {
        let encoded = encode(&frame);
        let declared = u32::from_be_bytes(encoded[..4].try_into().unwrap()) as usize;
        prop_assert_eq!(declared, encoded.len() - 4);
        let decoded = decode_whole(&encoded);
        prop_assert_eq!(&decoded, &frame);
        // And encoding is deterministic.
        prop_assert_eq!(encode(&decoded), encoded);
    }

    /// Frames written back to back and cut at arbitrary points come out of the stream
    /// decoder whole and in order (F1).
    #[test]
    fn stream_decoder_reassembles(
        frames in prop::collection::vec(frame(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(|f| encode(f).to_vec()).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort();
        let d = FrameDecoder::new(u32::MAX);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        for to in points {
            buf.extend_from_slice(&stream[from..to]);
            from = to;
            while let Some(body) = d.decode(&mut buf).expect("valid stream") {
                out.push(Frame::decode(body).expect("frame"));
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, frames);
    }
}
