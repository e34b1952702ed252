//! Golden bytes for every SPOP frame type, both directions (issue 2, "How it is checked").
//!
//! Sources of truth, none of them the codec under test: the byte vectors of
//! `shared/research/spop-protocol.md` §1.4 and §1.13 (copied from HAProxy's sources and
//! issue logs, or computed and cross-checked there), the 362 frames of the real captures under
//! `tests/data/captures/`, and the hand-written builder in `support::wire`. Each vector is decoded,
//! its fields are checked, and it is encoded back and compared byte for byte.

mod support;

use bytes::{Bytes, BytesMut};
use spoa_mirror::spop::{
    varint, Action, AgentHello, Arg, Capabilities, Disconnect, Error, Flags, Frame, FrameDecoder,
    FrameHeader, FrameType, HaproxyHello, Kv, Message, Payload, Reader, Status, TypedData,
    VarScope,
};
use std::net::Ipv4Addr;
use support::{captures, hex, unhex, wire};

/// Splits one whole frame (length prefix included) off `bytes` with the stream decoder and
/// decodes it; asserts nothing is left over.
fn decode(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let body = FrameDecoder::new(u32::MAX)
        .decode(&mut buf)
        .expect("valid length prefix")
        .expect("a whole frame");
    assert!(buf.is_empty(), "bytes left after the frame");
    Frame::decode(body).expect("frame decodes")
}

fn decode_hex(h: &str) -> Frame {
    decode(&unhex(h))
}

fn encode(frame: &Frame) -> String {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    hex(&out)
}

fn kv_list(frame: &Frame) -> &[Kv] {
    match &frame.payload {
        Payload::KvList(items) => items,
        other => panic!("expected a KV-LIST, got {other:?}"),
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn assert_header(frame: &Frame, frame_type: FrameType, flags: u32, sid: u64, fid: u64) {
    assert_eq!(
        frame.header,
        FrameHeader {
            frame_type,
            flags: Flags(flags),
            stream_id: sid,
            frame_id: fid,
        }
    );
}

/// Decodes, checks the round trip, returns the frame for field checks.
fn round_trip(h: &str) -> Frame {
    let frame = decode_hex(h);
    assert_eq!(encode(&frame), h, "re-encoding {frame:?}");
    frame
}

// --- §1.4 varint table ------------------------------------------------------------------

const VARINT_TABLE: &[(u64, &str)] = &[
    (0, "00"),
    (239, "ef"),
    (240, "f000"),
    (2287, "ff7f"),
    (2288, "f08000"),
    (264431, "ffff7f"),
    (264432, "f0808000"),
    (33818863, "ffffff7f"),
    (33818864, "f080808000"),
    (16380, "fcf006"),
    (4294967295, "fff0fefe7e"),
    (u64::MAX, "fff0fefefefefefefe0e"),
];

#[test]
fn varint_boundary_table() {
    for &(value, bytes) in VARINT_TABLE {
        let mut out = Vec::new();
        varint::encode(value, &mut out);
        assert_eq!(hex(&out), bytes, "encode {value}");
        assert_eq!(hex(&wire::varint(value)), bytes, "test builder {value}");
        assert_eq!(varint::encoded_len(value), out.len());
        assert_eq!(varint::decode(&unhex(bytes)), Ok((value, out.len())));
    }
    // Malformed: truncated, 11 bytes, 10 bytes above u64::MAX.
    assert_eq!(
        varint::decode(&unhex("f0")),
        Err(Error::UnexpectedEnd("varint"))
    );
    assert_eq!(
        varint::decode(&unhex("f080808080808080808000")),
        Err(Error::VarintOverflow)
    );
    assert_eq!(
        varint::decode(&unhex("fff0fefefefefefefe0f")),
        Err(Error::VarintOverflow)
    );
}

// --- HAPROXY-HELLO ----------------------------------------------------------------------

/// 3.1+ `option spop-check` HELLO, 82 bytes (§1.13, [TCHK]).
const HEALTHCHECK_HELLO: &str = "0000004e0100000001000012737570706f727465642d76657273696f6e730803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c697469657308000b6865616c7468636865636b11";
/// ≤3.0 HELLO, 133 bytes, caps "pipelining,async" and an engine-id (§1.13, spoa-mirror#12).
const LEGACY_HELLO: &str = "000000810100000001000012737570706f727465642d76657273696f6e730803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c69746965730810706970656c696e696e672c6173796e6309656e67696e652d6964082463306633393765662d373930392d343066362d613238372d326532663239636435323838";

#[test]
fn haproxy_hello_healthcheck() {
    assert_eq!(unhex(HEALTHCHECK_HELLO).len(), 82);
    assert_eq!(hex(&wire::healthcheck_hello()), HEALTHCHECK_HELLO);
    let frame = round_trip(HEALTHCHECK_HELLO);
    assert_header(&frame, FrameType::HaproxyHello, 1, 0, 0);
    assert_eq!(
        kv_list(&frame),
        &[
            Kv::new("supported-versions", TypedData::String(b("2.0"))),
            Kv::new("max-frame-size", TypedData::Uint32(16380)),
            Kv::new("capabilities", TypedData::String(Bytes::new())),
            Kv::new("healthcheck", TypedData::Bool(true)),
        ]
    );
    let hello = HaproxyHello::from_kv(kv_list(&frame)).expect("valid HELLO");
    assert_eq!(
        hello,
        HaproxyHello {
            max_frame_size: 16380,
            capabilities: Capabilities::default(),
            engine_id: None,
            healthcheck: true,
        }
    );
    // And back from the typed value.
    let again = Frame {
        header: FrameHeader::fin(FrameType::HaproxyHello, 0, 0),
        payload: Payload::KvList(hello.to_kv()),
    };
    assert_eq!(encode(&again), HEALTHCHECK_HELLO);
}

#[test]
fn haproxy_hello_legacy_with_engine_id() {
    assert_eq!(unhex(LEGACY_HELLO).len(), 133);
    let frame = round_trip(LEGACY_HELLO);
    assert_header(&frame, FrameType::HaproxyHello, 1, 0, 0);
    let hello = HaproxyHello::from_kv(kv_list(&frame)).expect("valid HELLO");
    assert_eq!(hello.max_frame_size, 16380);
    assert_eq!(
        hello.capabilities,
        Capabilities {
            fragmentation: false,
            pipelining: true,
            r#async: true,
        }
    );
    assert_eq!(
        hello.engine_id,
        Some(b("c0f397ef-7909-40f6-a287-2e2f29cd5288"))
    );
    assert!(!hello.healthcheck);
    let again = Frame {
        header: FrameHeader::fin(FrameType::HaproxyHello, 0, 0),
        payload: Payload::KvList(hello.to_kv()),
    };
    assert_eq!(encode(&again), LEGACY_HELLO);
}

// --- AGENT-HELLO ------------------------------------------------------------------------

/// The AGENT-HELLO HAProxy's own spop-check test accepts: version 2.0, mfs 16380, caps "".
const AGENT_HELLO_EMPTY: &str = "00000036650000000100000776657273696f6e0803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c69746965730800";
const AGENT_HELLO_PIPELINING: &str = "00000040650000000100000776657273696f6e0803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c6974696573080a706970656c696e696e67";

#[test]
fn agent_hello_for_healthcheck() {
    assert_eq!(unhex(AGENT_HELLO_EMPTY).len(), 58);
    let frame = round_trip(AGENT_HELLO_EMPTY);
    assert_header(&frame, FrameType::AgentHello, 1, 0, 0);
    assert_eq!(
        AgentHello::from_kv(kv_list(&frame)),
        Some(AgentHello {
            max_frame_size: 16380,
            capabilities: Capabilities::default(),
        })
    );
    // What the agent builds for the health-check HELLO with `-m 16384` and no `-c`.
    let hello = HaproxyHello::from_kv(kv_list(&decode_hex(HEALTHCHECK_HELLO))).unwrap();
    let reply = AgentHello::negotiate(&hello, 16384, Capabilities::default());
    let built = Frame {
        header: FrameHeader::fin(FrameType::AgentHello, 0, 0),
        payload: Payload::KvList(reply.to_kv()),
    };
    assert_eq!(encode(&built), AGENT_HELLO_EMPTY);
    assert_eq!(hex(&wire::agent_hello(16380, "")), AGENT_HELLO_EMPTY);
}

#[test]
fn agent_hello_with_pipelining() {
    let frame = round_trip(AGENT_HELLO_PIPELINING);
    assert_header(&frame, FrameType::AgentHello, 1, 0, 0);
    let hello = HaproxyHello::from_kv(kv_list(&decode_hex(LEGACY_HELLO))).unwrap();
    let ours = Capabilities {
        pipelining: true,
        ..Capabilities::default()
    };
    let reply = AgentHello::negotiate(&hello, 1 << 20, ours);
    let built = Frame {
        header: FrameHeader::fin(FrameType::AgentHello, 0, 0),
        payload: Payload::KvList(reply.to_kv()),
    };
    assert_eq!(encode(&built), AGENT_HELLO_PIPELINING);
}

#[test]
fn agent_hello_vectors_haproxy_rejects() {
    // HAProxy's spop-check test feeds these to the checker; the codec must see what is wrong.
    assert_eq!(
        FrameDecoder::new(16380).check(&unhex("00000000")),
        Err(Error::FrameTooShort(0))
    );
    let no_fin = round_trip("0000000765000000000000");
    assert_header(&no_fin, FrameType::AgentHello, 0, 0, 0);
    assert!(!no_fin.header.flags.fin());
    assert_eq!(AgentHello::from_kv(kv_list(&no_fin)), None);
}

#[test]
fn agent_hello_from_captures_with_async() {
    // 2.x `concurrent`: `-c pipelining -c async` answered "pipelining,async" (70 bytes).
    let h = hex(&wire::agent_hello(16380, "pipelining,async"));
    let frame = round_trip(&h);
    let reply = AgentHello::from_kv(kv_list(&frame)).unwrap();
    assert!(reply.capabilities.pipelining && reply.capabilities.r#async);
    let hello = HaproxyHello::from_kv(kv_list(&decode_hex(LEGACY_HELLO))).unwrap();
    let ours = Capabilities {
        pipelining: true,
        r#async: true,
        fragmentation: false,
    };
    let built = AgentHello::negotiate(&hello, 16384, ours);
    assert_eq!(built, reply);
}

// --- NOTIFY -------------------------------------------------------------------------------

const NOTIFY_MIRROR: &str = "0000007703000000010101066d6972726f72050a6172675f6d6574686f640804504f5354086172675f7061746808022f78076172675f7665720803312e31086172675f68647273092504686f73740b6578616d706c652e636f6d0a757365722d6167656e74066375726c2f380000086172675f626f647909027b7d";
/// LIST-OF-MESSAGES only (no frame header), from haproxy-go's benchmark (§1.13).
const MESSAGES_WITH_NULLS: &str = "06766572696679050c636f6f6b69655f76616c7565001064657374696e6174696f6e5f686f7374080d69702e62616269656c2e636f6d0b71756572795f76616c75650009736f757263655f6970060a0900010866726f6e74656e64082067656e66726f6e74656e645f36303031302d64646f735f62616269656c5f6970";

fn arg(name: &'static str, value: TypedData) -> Arg {
    Arg {
        name: b(name),
        value,
    }
}

#[test]
fn notify_mirror_message() {
    let frame = round_trip(NOTIFY_MIRROR);
    assert_header(&frame, FrameType::Notify, 1, 1, 1);
    let expected = Message {
        name: b("mirror"),
        args: vec![
            arg("arg_method", TypedData::String(b("POST"))),
            arg("arg_path", TypedData::String(b("/x"))),
            arg("arg_ver", TypedData::String(b("1.1"))),
            arg(
                "arg_hdrs",
                TypedData::Binary(Bytes::from_static(
                    b"\x04host\x0bexample.com\x0auser-agent\x06curl/8\x00\x00",
                )),
            ),
            arg("arg_body", TypedData::Binary(b("{}"))),
        ],
    };
    assert_eq!(frame.payload, Payload::Messages(vec![expected.clone()]));
    assert_eq!(expected.arg(b"arg_body"), Some(&TypedData::Binary(b("{}"))));
    let built = Frame {
        header: FrameHeader::fin(FrameType::Notify, 1, 1),
        payload: Payload::Messages(vec![expected]),
    };
    assert_eq!(encode(&built), NOTIFY_MIRROR);
}

#[test]
fn notify_payload_with_null_args() {
    let mut r = Reader::new(Bytes::from(unhex(MESSAGES_WITH_NULLS)));
    let messages = Message::decode_list(&mut r).expect("decodes");
    assert!(r.is_empty());
    assert_eq!(
        messages,
        vec![Message {
            name: b("verify"),
            args: vec![
                arg("cookie_value", TypedData::Null),
                arg("destination_host", TypedData::String(b("ip.babiel.com"))),
                arg("query_value", TypedData::Null),
                arg("source_ip", TypedData::Ipv4(Ipv4Addr::new(10, 9, 0, 1))),
                arg(
                    "frontend",
                    TypedData::String(b("genfrontend_60010-ddos_babiel_ip"))
                ),
            ],
        }]
    );
    let mut out = Vec::new();
    Message::encode_list(&messages, &mut out);
    assert_eq!(hex(&out), MESSAGES_WITH_NULLS);
}

#[test]
fn notify_with_every_type_unnamed_and_repeated_args() {
    // Built by the independent test encoder, decoded by the codec, encoded back.
    let payload = [
        wire::message(
            b"all",
            &[
                (b"", wire::null()),
                (b"", wire::boolean(true)),
                (b"b", wire::boolean(false)),
                (b"i32", wire::int32(-7)),
                (b"u32", wire::uint32(u32::MAX)),
                (b"i64", wire::int64(i64::MIN)),
                (b"u64", wire::uint64(u64::MAX)),
                (b"v4", wire::ipv4([127, 0, 0, 1])),
                (
                    b"v6",
                    wire::ipv6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                ),
                (b"s", wire::string(b"\xff\x00")),
                (b"s", wire::binary(&[7u8; 300])),
            ],
        ),
        wire::message(b"", &[]),
    ]
    .concat();
    let bytes = wire::notify(667690, 2147483647, &payload);
    let frame = round_trip(&hex(&bytes));
    assert_header(&frame, FrameType::Notify, 1, 667690, 2147483647);
    let Payload::Messages(messages) = &frame.payload else {
        panic!("messages")
    };
    assert_eq!(messages.len(), 2);
    let values: Vec<(&[u8], &TypedData)> = messages[0]
        .args
        .iter()
        .map(|a| (&a.name[..], &a.value))
        .collect();
    assert_eq!(values.len(), 11);
    assert_eq!(values[0], (&b""[..], &TypedData::Null));
    assert_eq!(values[1], (&b""[..], &TypedData::Bool(true)));
    assert_eq!(values[3].1, &TypedData::Int32(-7));
    assert_eq!(values[4].1, &TypedData::Uint32(u32::MAX));
    assert_eq!(values[5].1, &TypedData::Int64(i64::MIN));
    assert_eq!(values[6].1, &TypedData::Uint64(u64::MAX));
    assert_eq!(values[9].0, b"s");
    assert_eq!(values[10].0, b"s");
    assert_eq!(
        values[9].1,
        &TypedData::String(Bytes::from_static(b"\xff\x00"))
    );
    assert_eq!(
        values[10].1,
        &TypedData::Binary(Bytes::from(vec![7u8; 300]))
    );
    assert_eq!(
        messages[1],
        Message {
            name: Bytes::new(),
            args: vec![]
        }
    );
}

#[test]
fn notify_empty_payload() {
    // N5: HAProxy 3.1/3.2 could send a NOTIFY with no message.
    let frame = round_trip("0000000703000000010101");
    assert_header(&frame, FrameType::Notify, 1, 1, 1);
    assert_eq!(frame.payload, Payload::Messages(vec![]));
}

// --- ACK ----------------------------------------------------------------------------------

#[test]
fn ack_empty() {
    for (h, sid, fid) in [
        ("0000000767000000010101", 1, 1),
        ("000000086700000001fc0301", 300, 1),
        ("0000000767000000010001", 0, 1), // ≤3.0 stream 0 (spoa-mirror#13)
    ] {
        let frame = round_trip(h);
        assert_header(&frame, FrameType::Ack, 1, sid, fid);
        assert_eq!(frame.payload, Payload::Actions(vec![]));
        let built = Frame {
            header: FrameHeader::fin(FrameType::Ack, sid, fid),
            payload: Payload::Actions(vec![]),
        };
        assert_eq!(encode(&built), h);
        assert_eq!(hex(&wire::ack(sid, fid)), h);
    }
}

#[test]
fn ack_set_var() {
    let h = "0000001467000000010101010302086d6972726f72656411";
    let frame = round_trip(h);
    assert_header(&frame, FrameType::Ack, 1, 1, 1);
    let action = Action::SetVar {
        scope: VarScope::Txn,
        name: b("mirrored"),
        value: TypedData::Bool(true),
    };
    assert_eq!(frame.payload, Payload::Actions(vec![action.clone()]));
    let built = Frame {
        header: FrameHeader::fin(FrameType::Ack, 1, 1),
        payload: Payload::Actions(vec![action]),
    };
    assert_eq!(encode(&built), h);
}

#[test]
fn ack_unset_var() {
    let h = "0000000c670000000101010202020178";
    let frame = round_trip(h);
    let action = Action::UnsetVar {
        scope: VarScope::Txn,
        name: b("x"),
    };
    assert_eq!(frame.payload, Payload::Actions(vec![action.clone()]));
    let built = Frame {
        header: FrameHeader::fin(FrameType::Ack, 1, 1),
        payload: Payload::Actions(vec![action]),
    };
    assert_eq!(encode(&built), h);
}

#[test]
fn ack_with_every_scope_and_several_actions() {
    let scopes = [
        (0u8, VarScope::Proc),
        (1, VarScope::Sess),
        (2, VarScope::Txn),
        (3, VarScope::Req),
        (4, VarScope::Res),
    ];
    let mut payload = Vec::new();
    let mut actions = Vec::new();
    for (byte, scope) in scopes {
        payload.extend([1, 3, byte]);
        payload.extend(wire::lstr(b"v"));
        payload.extend(wire::int64(-1));
        actions.push(Action::SetVar {
            scope,
            name: b("v"),
            value: TypedData::Int64(-1),
        });
        payload.extend([2, 2, byte]);
        payload.extend(wire::lstr(b"w"));
        actions.push(Action::UnsetVar {
            scope,
            name: b("w"),
        });
    }
    let h = hex(&wire::frame(wire::T_ACK, wire::FIN, 3, 1, &payload));
    let frame = round_trip(&h);
    assert_eq!(frame.payload, Payload::Actions(actions));
}

// --- UNSET (fragment continuation) ---------------------------------------------------------

#[test]
fn unset_frames() {
    // A middle fragment (no FIN), a last one (FIN), and HAProxy's abort (FIN|ABORT, empty).
    for (h, flags, raw) in [
        ("0000000b0000000000050161626364", 0u32, &b"abcd"[..]),
        ("0000000b0000000001050161626364", 1, &b"abcd"[..]),
        ("0000000700000000030501", 3, &b""[..]),
    ] {
        assert_eq!(hex(&wire::frame(wire::T_UNSET, flags, 5, 1, raw)), h);
        let frame = round_trip(h);
        assert_header(&frame, FrameType::Unset, flags, 5, 1);
        assert_eq!(frame.payload, Payload::Raw(Bytes::copy_from_slice(raw)));
        assert_eq!(frame.header.flags.fin(), flags & 1 != 0);
        assert_eq!(frame.header.flags.abort(), flags & 2 != 0);
    }
}

// --- DISCONNECT ----------------------------------------------------------------------------

/// Every status code, its text, and the exact AGENT-DISCONNECT frame (computed with a separate
/// Python encoder; code 0 is also the §1.13 vector).
const STATUS_TABLE: [(u32, &str, &str); 15] = [
    (0, "normal", "00000025660000000100000b7374617475732d636f64650300076d65737361676508066e6f726d616c"),
    (1, "I/O error", "00000028660000000100000b7374617475732d636f64650301076d6573736167650809492f4f206572726f72"),
    (2, "a timeout occurred", "00000031660000000100000b7374617475732d636f64650302076d6573736167650812612074696d656f7574206f63637572726564"),
    (3, "frame is too big", "0000002f660000000100000b7374617475732d636f64650303076d65737361676508106672616d6520697320746f6f20626967"),
    (4, "invalid frame received", "00000035660000000100000b7374617475732d636f64650304076d6573736167650816696e76616c6964206672616d65207265636569766564"),
    (5, "version value not found", "00000036660000000100000b7374617475732d636f64650305076d657373616765081776657273696f6e2076616c7565206e6f7420666f756e64"),
    (6, "max-frame-size value not found", "0000003d660000000100000b7374617475732d636f64650306076d657373616765081e6d61782d6672616d652d73697a652076616c7565206e6f7420666f756e64"),
    (7, "capabilities value not found", "0000003b660000000100000b7374617475732d636f64650307076d657373616765081c6361706162696c69746965732076616c7565206e6f7420666f756e64"),
    (8, "unsupported version", "00000032660000000100000b7374617475732d636f64650308076d6573736167650813756e737570706f727465642076657273696f6e"),
    (9, "max-frame-size too big or too small", "00000042660000000100000b7374617475732d636f64650309076d65737361676508236d61782d6672616d652d73697a6520746f6f20626967206f7220746f6f20736d616c6c"),
    (10, "fragmentation not supported", "0000003a660000000100000b7374617475732d636f6465030a076d657373616765081b667261676d656e746174696f6e206e6f7420737570706f72746564"),
    (11, "invalid interlaced frames", "00000038660000000100000b7374617475732d636f6465030b076d6573736167650819696e76616c696420696e7465726c61636564206672616d6573"),
    (12, "frame-id not found", "00000031660000000100000b7374617475732d636f6465030c076d65737361676508126672616d652d6964206e6f7420666f756e64"),
    (13, "resource allocation error", "00000038660000000100000b7374617475732d636f6465030d076d65737361676508197265736f7572636520616c6c6f636174696f6e206572726f72"),
    (99, "an unknown error occurred", "00000038660000000100000b7374617475732d636f64650363076d6573736167650819616e20756e6b6e6f776e206572726f72206f63637572726564"),
];

#[test]
fn status_codes_texts_and_agent_disconnect_frames() {
    assert_eq!(Status::ALL.len(), STATUS_TABLE.len());
    for (status, (code, text, frame_hex)) in Status::ALL.iter().zip(STATUS_TABLE) {
        assert_eq!(status.code(), code);
        assert_eq!(Status::from_code(code), *status);
        assert_eq!(status.reason(), text, "text of status {code}");
        assert_eq!(wire::status_text(code), text);
        assert_eq!(status.to_string(), format!("{code} ({text})"));
        // Encode.
        let built = Frame {
            header: FrameHeader::fin(FrameType::AgentDisconnect, 0, 0),
            payload: Payload::KvList(Disconnect::new(*status).to_kv()),
        };
        assert_eq!(encode(&built), frame_hex, "AGENT-DISCONNECT {code}");
        assert_eq!(hex(&wire::agent_disconnect(code)), frame_hex);
        // Decode.
        let frame = round_trip(frame_hex);
        assert_header(&frame, FrameType::AgentDisconnect, 1, 0, 0);
        assert_eq!(
            Disconnect::from_kv(kv_list(&frame)),
            Disconnect {
                status: *status,
                message: Bytes::from_static(text.as_bytes()),
            }
        );
    }
    // Codes nobody defined survive as `Other`, with the generic text.
    assert_eq!(Status::from_code(14), Status::Other(14));
    assert_eq!(Status::Other(14).code(), 14);
    assert_eq!(Status::from_code(256).reason(), "an unknown error occurred");
}

#[test]
fn haproxy_disconnect_vectors() {
    // §1.13 (spoa-mirror#17): status 1 "I/O error".
    let h =
        "00000028020000000100000b7374617475732d636f64650301076d6573736167650809492f4f206572726f72";
    let frame = round_trip(h);
    assert_header(&frame, FrameType::HaproxyDisconnect, 1, 0, 0);
    assert_eq!(
        Disconnect::from_kv(kv_list(&frame)),
        Disconnect {
            status: Status::IoError,
            message: b("I/O error")
        }
    );
    assert_eq!(hex(&wire::haproxy_disconnect(1, "I/O error")), h);
    // Every code in the HAProxy direction too.
    for (code, text, _) in STATUS_TABLE {
        let bytes = wire::haproxy_disconnect(code, text);
        let frame = round_trip(&hex(&bytes));
        let d = Disconnect::from_kv(kv_list(&frame));
        assert_eq!((d.status.code(), &d.message[..]), (code, text.as_bytes()));
        let built = Frame {
            header: FrameHeader::fin(FrameType::HaproxyDisconnect, 0, 0),
            payload: Payload::KvList(d.to_kv()),
        };
        assert_eq!(encode(&built), hex(&bytes));
    }
    // A DISCONNECT without status-code reads as 99.
    let frame = round_trip(&hex(&wire::frame(
        wire::T_HAPROXY_DISCONNECT,
        wire::FIN,
        0,
        0,
        &wire::kv("message", wire::string(b"x")),
    )));
    assert_eq!(Disconnect::from_kv(kv_list(&frame)).status, Status::Unknown);
}

// --- the captures -------------------------------------------------------------------------

#[test]
fn every_captured_frame_round_trips() {
    let mut frames = 0;
    let mut types = std::collections::BTreeSet::new();
    for capture in captures::load_all(&captures::dir()) {
        for event in &capture.events {
            let captures::Event::Frame {
                from_haproxy,
                bytes,
                summary,
                ..
            } = event
            else {
                continue;
            };
            let frame = decode(bytes);
            assert_eq!(
                encode(&frame),
                hex(bytes),
                "{}: re-encoding {summary}",
                capture.name
            );
            // The reference decoder's summary starts with the type name and the ids.
            let name = frame.header.frame_type.name();
            let ids = format!(
                "sid={} fid={}",
                frame.header.stream_id, frame.header.frame_id
            );
            assert!(
                summary.starts_with(name) && summary.contains(&ids),
                "{}: decoded {name} {ids}, reference says {summary}",
                capture.name
            );
            let from_agent = matches!(
                frame.header.frame_type,
                FrameType::AgentHello | FrameType::AgentDisconnect | FrameType::Ack
            );
            assert_eq!(*from_haproxy, !from_agent, "{}: direction", capture.name);
            match frame.header.frame_type {
                FrameType::HaproxyHello => {
                    HaproxyHello::from_kv(kv_list(&frame)).expect("captured HELLO is valid");
                }
                FrameType::AgentHello => {
                    AgentHello::from_kv(kv_list(&frame)).expect("captured AGENT-HELLO is valid");
                }
                _ => {}
            }
            types.insert(name);
            frames += 1;
        }
    }
    // README: "All 362 frames".
    assert_eq!(frames, 362);
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "ACK",
            "AGENT-DISCONNECT",
            "AGENT-HELLO",
            "HAPROXY-DISCONNECT",
            "HAPROXY-HELLO",
            "NOTIFY"
        ]
    );
}
