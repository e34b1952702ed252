//! Every conformance case of `shared/research/spop-protocol.md` §4 (F1–F14, H1–H13, N1–N13,
//! R1–R4), plus fragmentation, pipelining, `-t`, health checks and shutdown, over real TCP
//! connections to the agent running in-process (`listener::serve` on 127.0.0.1:0).
//!
//! Inputs are built with `support::wire` (a hand-written encoder, independent of the codec);
//! the expected answers are exact bytes. For a refusal the test checks the AGENT-DISCONNECT
//! bytes, that the agent then closes (EOF or reset), and that a connection opened beforehand
//! and a fresh one still work, i.e. the process is unaffected.
//!
//! Where §4 leaves a choice, the test pins the implementation's choice (documented in
//! `src/connection.rs`) and says so.

mod support;

use bytes::Bytes;
use spoa_mirror::config::SpopConfig;
use spoa_mirror::handler::NotifyHandler;
use spoa_mirror::spop::{Arg, Capabilities, Message, TypedData};
use spoa_mirror::stats::{get, Stats};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::agent::{Client, InProcessAgent};
use support::hex;
use support::wire::*;

/// The original's defaults: `-m 16384` (HAProxy offers 16380, so 16380 is negotiated) and no
/// capability unless -c names one (our `--original-capabilities`), so the bytes are the
/// original's. Our default differs only in accepting pipelining: `default_hello_differs_only_in_pipelining`.
fn cfg() -> SpopConfig {
    SpopConfig {
        max_frame_size: 16384,
        capabilities: Capabilities::default(),
        ..SpopConfig::default()
    }
}

fn caps(pipelining: bool, r#async: bool, fragmentation: bool) -> Capabilities {
    Capabilities {
        fragmentation,
        pipelining,
        r#async,
    }
}

fn with_caps(c: Capabilities) -> SpopConfig {
    SpopConfig {
        capabilities: c,
        ..cfg()
    }
}

fn msg(name: &'static str, args: Vec<(&'static str, TypedData)>) -> Message {
    Message {
        name: Bytes::from_static(name.as_bytes()),
        args: args
            .into_iter()
            .map(|(n, value)| Arg {
                name: Bytes::from_static(n.as_bytes()),
                value,
            })
            .collect(),
    }
}

fn s(v: &'static [u8]) -> TypedData {
    TypedData::String(Bytes::from_static(v))
}

fn bin(v: &[u8]) -> TypedData {
    TypedData::Binary(Bytes::copy_from_slice(v))
}

/// The messages `wire::mirror_message(path)` decodes to.
fn mirror_decoded(path: &'static str) -> Message {
    msg(
        "mirror",
        vec![
            ("arg_method", s(b"GET")),
            ("arg_path", s(path.as_bytes())),
            ("arg_ver", s(b"1.1")),
            ("arg_hdrs", bin(b"\x04host\x0bexample.com\x00\x00")),
            ("arg_body", bin(b"")),
        ],
    )
}

/// The core check of a refusal: `bad` on a fresh connection (after a handshake when
/// `handshake`) is answered by exactly AGENT-DISCONNECT `code`, then the agent closes; a
/// connection opened before and one opened after still work.
async fn assert_refused(agent: &InProcessAgent, handshake: bool, bad: &[u8], code: u32) {
    let mut witness = agent.ready("pipelining").await;
    let mut c = if handshake {
        agent.ready("").await
    } else {
        agent.connect().await
    };
    c.send(bad).await;
    c.assert_disconnect(code).await;
    witness
        .send(&notify(9, 1, &mirror_message("/witness")))
        .await;
    assert_eq!(witness.frame_hex().await, hex(&ack(9, 1)));
    agent.assert_serving().await;
}

/// `assert_refused` on an agent of its own, with the default test config.
async fn refused(handshake: bool, bad: &[u8], code: u32) {
    let agent = InProcessAgent::start(cfg()).await;
    assert_refused(&agent, handshake, bad, code).await;
    assert!(get(&agent.stats.protocol_errors_total) >= 1);
}

/// A NOTIFY's first bytes with the given raw payload after the header.
fn notify_raw(payload: &[u8]) -> Vec<u8> {
    frame(T_NOTIFY, FIN, 1, 1, payload)
}

// ===================================================================== F: framing / codec

/// F1: a whole conversation one byte per write gets the same answers as in one write, and
/// several frames in one write are all processed, in order.
#[tokio::test]
async fn f1_byte_at_a_time_and_many_frames_per_write() {
    let agent = InProcessAgent::start(cfg()).await;
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 256) as u8).collect();
    let big = message(
        b"mirror",
        &[
            (b"arg_method", string(b"POST")),
            (b"arg_body", binary(&body)),
        ],
    );
    let conversation = [
        haproxy_hello(16380, "pipelining,async"),
        notify(0, 1, &mirror_message("/one")),
        notify(2, 1, &big),
        notify(667690, 1, &mirror_message("/three")),
        haproxy_disconnect(0, "normal"),
    ]
    .concat();
    let expected = vec![
        hex(&agent_hello(16380, "")),
        hex(&ack(0, 1)),
        hex(&ack(2, 1)),
        hex(&ack(667690, 1)),
        hex(&agent_disconnect(0)),
    ];

    let mut slow = agent.connect().await;
    slow.send_bytewise(&conversation).await;
    assert_eq!(slow.frames_hex(5).await, expected);
    slow.assert_closed().await;
    let slow_messages = agent.recorder.wait_for(3).await;

    let mut fast = agent.connect().await;
    fast.send(&conversation).await;
    assert_eq!(fast.frames_hex(5).await, expected);
    fast.assert_closed().await;
    let all = agent.recorder.wait_for(6).await;
    assert_eq!(&all[3..], &slow_messages[..], "same messages either way");
    assert_eq!(all[0], vec![mirror_decoded("/one")]);
    assert_eq!(all[1][0].arg(b"arg_body"), Some(&bin(&body)));
    assert_eq!(get(&agent.stats.protocol_errors_total), 0);
}

/// F2: EOF in mid-prefix or mid-frame: nothing is answered, the connection is closed, and
/// the process carries on.
#[tokio::test]
async fn f2_close_mid_prefix_and_mid_frame() {
    let agent = InProcessAgent::start(cfg()).await;
    let whole = notify(1, 1, &mirror_message("/cut"));
    for cut in [1, 3, 4, 6, whole.len() - 1] {
        let mut c = agent.ready("").await;
        c.send(&whole[..cut]).await;
        c.shutdown_write().await;
        c.assert_closed().await;
    }
    // Also before the handshake.
    let mut c = agent.connect().await;
    c.send(&haproxy_hello(16380, "")[..10]).await;
    c.shutdown_write().await;
    c.assert_closed().await;
    agent.wait_counter(|s| &s.connections_active, 0).await;
    assert_eq!(agent.recorder.len(), 0);
    agent.assert_serving().await;
}

/// F3: declared lengths 0–6 can hold no header: status 4, at once, before and after the
/// handshake (no stall waiting for bytes that will never be a frame).
#[tokio::test]
async fn f3_lengths_below_seven() {
    let agent = InProcessAgent::start(cfg()).await;
    for len in 0u32..7 {
        assert_refused(&agent, false, &len.to_be_bytes(), 4).await;
        // With the declared bytes present, too.
        let mut bad = len.to_be_bytes().to_vec();
        bad.extend(std::iter::repeat(0x03).take(len as usize));
        assert_refused(&agent, true, &bad, 4).await;
    }
}

/// F4: a frame longer than the negotiated max-frame-size is refused with status 3 as soon as
/// its length is read; a frame of exactly that size is fine.
#[tokio::test]
async fn f4_frame_larger_than_negotiated_size() {
    let agent = InProcessAgent::start(cfg()).await;
    // Negotiated min(16384, 16380) = 16380.
    let mut c = agent.ready("").await;
    c.send(&notify_of_len(1, 1, 16380)).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    assert_refused(&agent, true, &notify_of_len(1, 1, 16381), 3).await;
    // Only the prefix, without the body: refused without waiting for it.
    assert_refused(&agent, true, &16381u32.to_be_bytes(), 3).await;

    // An agent with `-m 1024` negotiates 1024 with HAProxy's 16380.
    let small = InProcessAgent::start(SpopConfig {
        max_frame_size: 1024,
        ..cfg()
    })
    .await;
    let mut c = small.connect().await;
    c.send(&haproxy_hello(16380, "")).await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(1024, "")));
    c.send(&notify_of_len(3, 1, 1024)).await;
    assert_eq!(c.frame_hex().await, hex(&ack(3, 1)));
    c.send(&notify_of_len(5, 1, 1025)).await;
    c.assert_disconnect(3).await;
    // Before the handshake the agent's own limit applies.
    assert_refused(&small, false, &1025u32.to_be_bytes(), 3).await;
}

/// F4 / "frame too big before allocation": a declared length of 0x7fffffff is refused with
/// status 3 immediately, without the body ever being sent.
#[tokio::test]
async fn f4_huge_declared_length_refused_immediately() {
    let agent = InProcessAgent::start(cfg()).await;
    assert_refused(&agent, true, &[0x7f, 0xff, 0xff, 0xff], 3).await;
    assert_refused(&agent, false, &[0x7f, 0xff, 0xff, 0xff], 3).await;
    assert_refused(&agent, true, &[0xff, 0xff, 0xff, 0xff], 3).await;
}

/// F5: an HTTP request or a TLS ClientHello on the SPOP port reads as a huge length: refused
/// by the length cap (status 3, the implementation's choice of reaction), nothing allocated.
#[tokio::test]
async fn f5_non_spop_bytes() {
    let agent = InProcessAgent::start(cfg()).await;
    assert_refused(&agent, false, b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n", 3).await;
    assert_refused(&agent, false, &unhex_tls(), 3).await;
}

fn unhex_tls() -> Vec<u8> {
    // Start of a TLS 1.2 ClientHello record: 16 03 01 <len> 01 ...
    support::unhex("160301020001000200030300000000000000000000000000000000000000000000000000")
}

/// F6: a varint cut short inside stream-id, frame-id or a KV: status 4.
#[tokio::test]
async fn f6_truncated_varints() {
    let agent = InProcessAgent::start(cfg()).await;
    // Frame length 7: type, flags, then sid = f0 f0 (continues past the end).
    let sid = [&7u32.to_be_bytes()[..], &[T_NOTIFY, 0, 0, 0, 1, 0xf0, 0xf0]].concat();
    assert_refused(&agent, true, &sid, 4).await;
    let fid = [&7u32.to_be_bytes()[..], &[T_NOTIFY, 0, 0, 0, 1, 0x01, 0xf0]].concat();
    assert_refused(&agent, true, &fid, 4).await;
    // In a HELLO KV: max-frame-size UINT32 whose varint stops at the end of the frame.
    let hello = hello_from(&[
        kv("supported-versions", string(b"2.0")),
        [lstr(b"max-frame-size"), vec![0x03, 0xfc, 0xf0]].concat(),
    ]);
    assert_refused(&agent, false, &hello, 4).await;
    // In a NOTIFY: an argument name length that is cut.
    let n = notify_raw(&[lstr(b"mirror"), vec![1, 0xf5]].concat());
    assert_refused(&agent, true, &n, 4).await;
}

/// F7: an 11-byte varint and a 10-byte one above 2^64−1: status 4, no panic.
#[tokio::test]
async fn f7_overlong_varints() {
    let agent = InProcessAgent::start(cfg()).await;
    let eleven = support::unhex("f0808080808080808080 00");
    let overflow = support::unhex("fff0fefefefefefefe0f");
    for v in [&eleven, &overflow] {
        // As stream-id.
        let mut payload = vec![T_NOTIFY, 0, 0, 0, 1];
        payload.extend_from_slice(v);
        payload.push(1);
        let f = [&(payload.len() as u32).to_be_bytes()[..], &payload].concat();
        assert_refused(&agent, true, &f, 4).await;
        // As an INT64 argument.
        let n = notify_raw(&message(b"m", &[(b"x", [vec![0x04], v.clone()].concat())]));
        assert_refused(&agent, true, &n, 4).await;
        // As a STRING length.
        let n = notify_raw(&message(b"m", &[(b"x", [vec![0x08], v.clone()].concat())]));
        assert_refused(&agent, true, &n, 4).await;
    }
}

/// F8: the boundary varints of §1.4 as stream-id / frame-id (echoed exactly in the ACK), as
/// integer values and as string lengths (decoded exactly).
#[tokio::test]
async fn f8_boundary_varints() {
    let agent = InProcessAgent::start(cfg()).await;
    let values = [
        0u64,
        239,
        240,
        2287,
        2288,
        264431,
        264432,
        33818863,
        33818864,
        16380,
        u32::MAX as u64,
        u64::MAX,
    ];
    let mut c = agent.ready("pipelining").await;
    let mut burst = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        let fid = values[values.len() - 1 - i];
        burst.extend(notify(
            v,
            fid,
            &message(b"ints", &[(b"u64", uint64(v)), (b"i64", int64(v as i64))]),
        ));
    }
    c.send(&burst).await;
    for (i, &v) in values.iter().enumerate() {
        let fid = values[values.len() - 1 - i];
        assert_eq!(c.frame_hex().await, hex(&ack(v, fid)), "sid {v} fid {fid}");
    }
    let got = agent.recorder.wait_for(values.len()).await;
    for (messages, &v) in got.iter().zip(&values) {
        assert_eq!(
            messages,
            &vec![msg(
                "ints",
                vec![
                    ("u64", TypedData::Uint64(v)),
                    ("i64", TypedData::Int64(v as i64))
                ]
            )]
        );
    }
    // String lengths across the 1/2/3-byte boundaries.
    for len in [239usize, 240, 2287, 2288, 10000] {
        let data = vec![b'z'; len];
        c.send(&notify(1, 1, &message(b"s", &[(b"v", binary(&data))])))
            .await;
        assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
        let n = agent.recorder.len();
        let got = agent.recorder.wait_for(n).await;
        assert_eq!(
            got.last().unwrap()[0].args[0].value,
            bin(&data),
            "len {len}"
        );
    }
}

/// F9: a STRING/BINARY length beyond the end of the payload: status 4.
#[tokio::test]
async fn f9_string_longer_than_payload() {
    let agent = InProcessAgent::start(cfg()).await;
    let n = notify_raw(
        &[
            lstr(b"m"),
            vec![1],
            lstr(b"x"),
            vec![0x08, 0x05],
            b"ab".to_vec(),
        ]
        .concat(),
    );
    assert_refused(&agent, true, &n, 4).await;
    let n = notify_raw(&[lstr(b"m"), vec![1], lstr(b"x"), vec![0x09], varint(1 << 40)].concat());
    assert_refused(&agent, true, &n, 4).await;
    // A message name longer than the payload.
    assert_refused(&agent, true, &notify_raw(&[0x20, b'm']), 4).await;
}

/// F10: typed data of the reserved types 10–15: status 4 (their length is unknown).
#[tokio::test]
async fn f10_reserved_data_types() {
    let agent = InProcessAgent::start(cfg()).await;
    for t in 10u8..=15 {
        let n = notify_raw(&message(b"m", &[(b"x", vec![t, 0, 0, 0])]));
        assert_refused(&agent, true, &n, 4).await;
    }
    // In a HELLO too.
    let hello = hello_from(&[
        kv("supported-versions", string(b"2.0")),
        kv("max-frame-size", uint32(16380)),
        kv("capabilities", string(b"")),
        kv("x", vec![0x0a]),
    ]);
    assert_refused(&agent, false, &hello, 4).await;
}

/// F11: NB-ARGS larger than the arguments present, and stray bytes after the last item:
/// status 4.
#[tokio::test]
async fn f11_trailing_or_missing_items() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut short = message(b"m", &[(b"a", null()), (b"b", null())]);
    short[2] = 3; // NB-ARGS 3, two present
    assert_refused(&agent, true, &notify_raw(&short), 4).await;
    let trailing = [mirror_message("/t"), vec![0x01]].concat();
    assert_refused(&agent, true, &notify_raw(&trailing), 4).await;
    let hello = [
        kv("supported-versions", string(b"2.0")),
        kv("max-frame-size", uint32(16380)),
        kv("capabilities", string(b"")),
        vec![0x03, b'a'],
    ];
    assert_refused(&agent, false, &hello_from(&hello), 4).await;
}

/// F12: reserved flag bits are ignored, on HELLO and on NOTIFY.
#[tokio::test]
async fn f12_reserved_flags_ignored() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.connect().await;
    let items = [
        kv("supported-versions", string(b"2.0")),
        kv("max-frame-size", uint32(16380)),
        kv("capabilities", string(b"")),
    ]
    .concat();
    c.send(&frame(T_HAPROXY_HELLO, 0xfffffff0 | FIN, 0, 0, &items))
        .await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(16380, "")));
    c.send(&frame(
        T_NOTIFY,
        0x80000000 | 0x104 | FIN,
        3,
        1,
        &mirror_message("/f"),
    ))
    .await;
    // The ACK carries FIN only, whatever the NOTIFY had.
    assert_eq!(c.frame_hex().await, hex(&ack(3, 1)));
    assert_eq!(
        agent.recorder.wait_for(1).await[0],
        vec![mirror_decoded("/f")]
    );
}

/// F13: BOOL 0x11 true, 0x01 false, 0x31 true (spec: bit 0 of the flags nibble).
#[tokio::test]
async fn f13_bool_encodings() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    let m = message(
        b"b",
        &[(b"t", vec![0x11]), (b"f", vec![0x01]), (b"x", vec![0x31])],
    );
    c.send(&notify(1, 1, &m)).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    assert_eq!(
        agent.recorder.wait_for(1).await[0],
        vec![msg(
            "b",
            vec![
                ("t", TypedData::Bool(true)),
                ("f", TypedData::Bool(false)),
                ("x", TypedData::Bool(true)),
            ]
        )]
    );
    // `healthcheck` written as 0x31 is true as well: one AGENT-HELLO, then close.
    let mut h = agent.connect().await;
    let mut hc = healthcheck_hello();
    let last = hc.len() - 1;
    hc[last] = 0x31;
    h.send(&hc).await;
    assert_eq!(h.frame_hex().await, hex(&agent_hello(16380, "")));
    h.assert_closed().await;
}

/// F14: STRING with invalid UTF-8, an embedded NUL, or zero length: kept as raw bytes.
#[tokio::test]
async fn f14_strings_are_raw_bytes() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    let m = message(
        b"\xffname",
        &[
            (b"bad", string(b"\xc3\x28\xff")),
            (b"nul", string(b"a\x00b")),
            (b"empty", string(b"")),
            (b"\x00", binary(b"")),
        ],
    );
    c.send(&notify(1, 1, &m)).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    let got = agent.recorder.wait_for(1).await;
    let m = &got[0][0];
    assert_eq!(&m.name[..], b"\xffname");
    let values: Vec<(&[u8], &TypedData)> = m.args.iter().map(|a| (&a.name[..], &a.value)).collect();
    assert_eq!(
        values,
        vec![
            (&b"bad"[..], &s(b"\xc3\x28\xff")),
            (&b"nul"[..], &s(b"a\x00b")),
            (&b"empty"[..], &s(b"")),
            (&b"\x00"[..], &bin(b"")),
        ]
    );
}

// ============================================================================ H: handshake

/// H1: the first frame is not a HAPROXY-HELLO: status 4, nothing processed.
#[tokio::test]
async fn h1_first_frame_not_hello() {
    let agent = InProcessAgent::start(cfg()).await;
    let firsts = [
        notify(1, 1, &mirror_message("/early")),
        ack(1, 1),
        frame(T_UNSET, FIN, 1, 1, b"xx"),
        agent_hello(16380, ""),
        agent_disconnect(0),
        frame(200, FIN, 0, 0, &[]),
    ];
    for f in firsts {
        assert_refused(&agent, false, &f, 4).await;
    }
    // Nothing of the refused connections reached the handler (only witness NOTIFYs did).
    let early = s(b"/early");
    assert!(agent
        .recorder
        .all()
        .iter()
        .flatten()
        .all(|m| m.arg(b"arg_path") != Some(&early)));
}

/// N11 says HAPROXY-DISCONNECT is answered "at any time" (SPOE §3.2.8: "If an error occurs,
/// at anytime, from the HAProxy side, a HAPROXY-DISCONNECT frame is sent ... HAProxy will
/// wait an AGENT-DISCONNECT frame in reply"), so before the HELLO too: status 0, close.
#[tokio::test]
async fn h1_n11_disconnect_before_hello_is_answered_normally() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.connect().await;
    c.send(&haproxy_disconnect(2, "a timeout occurred")).await;
    c.assert_disconnect(0).await;
    agent.assert_serving().await;
}

/// H2: no `supported-versions`: status 5.
#[tokio::test]
async fn h2_no_supported_versions() {
    let hello = hello_from(&[
        kv("max-frame-size", uint32(16380)),
        kv("capabilities", string(b"")),
    ]);
    refused(false, &hello, 5).await;
}

fn hello_versions(v: &[u8]) -> Vec<u8> {
    hello_from(&[
        kv("supported-versions", string(v)),
        kv("max-frame-size", uint32(16380)),
        kv("capabilities", string(b"")),
    ])
}

/// H3: only "1.0", or nothing parsable: status 8.
#[tokio::test]
async fn h3_unsupported_versions() {
    let agent = InProcessAgent::start(cfg()).await;
    for v in [&b"1.0"[..], b"abc", b"", b"3.0", b"2", b"2.x", b"1.0, 3.1"] {
        assert_refused(&agent, false, &hello_versions(v), 8).await;
    }
}

/// H4: any 2.x announcement covers 2.0; spaces ignored; higher majors ignored; the agent
/// answers version "2.0".
#[tokio::test]
async fn h4_version_lists_covering_2_0() {
    let agent = InProcessAgent::start(cfg()).await;
    for v in [&b" 2.0 , 1.5"[..], b"2.0,3.0", b"2.1", b"3.0,2.0", b"2.999"] {
        let mut c = agent.connect().await;
        c.send(&hello_versions(v)).await;
        assert_eq!(
            c.frame_hex().await,
            hex(&agent_hello(16380, "")),
            "versions {:?}",
            String::from_utf8_lossy(v)
        );
    }
}

/// H5: no `max-frame-size`: status 6; below 256: status 9; 256 itself is fine.
#[tokio::test]
async fn h5_max_frame_size_missing_or_too_small() {
    let agent = InProcessAgent::start(cfg()).await;
    let missing = hello_from(&[
        kv("supported-versions", string(b"2.0")),
        kv("capabilities", string(b"")),
    ]);
    assert_refused(&agent, false, &missing, 6).await;
    for small in [0u32, 1, 255] {
        let hello = hello_from(&[
            kv("supported-versions", string(b"2.0")),
            kv("max-frame-size", uint32(small)),
            kv("capabilities", string(b"")),
        ]);
        assert_refused(&agent, false, &hello, 9).await;
    }
    let mut c = agent.connect().await;
    c.send(&haproxy_hello(256, "")).await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(256, "")));
    c.send(&notify_of_len(1, 1, 256)).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    c.send(&notify_of_len(1, 1, 257)).await;
    c.assert_disconnect(3).await;
}

/// H6: `max-frame-size` as INT32, INT64 or UINT64 is accepted like UINT32.
#[tokio::test]
async fn h6_max_frame_size_any_integer_type() {
    let agent = InProcessAgent::start(cfg()).await;
    for typed in [int32(16000), int64(16000), uint64(16000), uint32(16000)] {
        let mut c = agent.connect().await;
        c.send(&hello_from(&[
            kv("supported-versions", string(b"2.0")),
            kv("max-frame-size", typed.clone()),
            kv("capabilities", string(b"")),
        ]))
        .await;
        assert_eq!(c.frame_hex().await, hex(&agent_hello(16000, "")));
    }
}

/// H7: no `capabilities`: the implementation accepts it as "" (the §4 recommendation).
#[tokio::test]
async fn h7_missing_capabilities_read_as_empty() {
    let agent = InProcessAgent::start(with_caps(caps(true, true, false))).await;
    let mut c = agent.connect().await;
    c.send(&hello_from(&[
        kv("supported-versions", string(b"2.0")),
        kv("max-frame-size", uint32(16380)),
    ]))
    .await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(16380, "")));
    c.send(&notify(1, 1, &mirror_message("/h7"))).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
}

/// H8: the capability list is comma-separated with optional spaces; "pipeliningX" is not
/// pipelining; unknown names are ignored. Only what both sides want is answered.
#[tokio::test]
async fn h8_capability_parsing() {
    let both = InProcessAgent::start(with_caps(caps(true, true, false))).await;
    let none = InProcessAgent::start(cfg()).await;
    let cases = [
        ("", "", ""),
        ("pipelining", "pipelining", ""),
        ("pipelining,async", "pipelining,async", ""),
        (" pipelining , foo", "pipelining", ""),
        ("pipeliningX", "", ""),
        ("foo,async", "async", ""),
        ("fragmentation", "", ""),
    ];
    for (offered, answered_both, answered_none) in cases {
        for (agent, want) in [(&both, answered_both), (&none, answered_none)] {
            let mut c = agent.connect().await;
            c.send(&haproxy_hello(16380, offered)).await;
            assert_eq!(
                c.frame_hex().await,
                hex(&agent_hello(16380, want)),
                "HAProxy offers {offered:?}"
            );
        }
    }
}

/// H9: a health-check HELLO gets exactly one AGENT-HELLO (58 bytes for mfs 16380, caps ""),
/// nothing else, then EOF.
#[tokio::test]
async fn h9_healthcheck() {
    // With capabilities enabled too: a health check never negotiates any (HAProxy offers "").
    let agent = InProcessAgent::start(with_caps(caps(true, true, false))).await;
    let mut c = agent.connect().await;
    c.send(&healthcheck_hello()).await;
    let reply = c.frame().await.expect("AGENT-HELLO");
    assert_eq!(reply.len(), 58);
    assert_eq!(
        hex(&reply),
        "00000036650000000100000776657273696f6e0803322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c69746965730800"
    );
    c.assert_closed().await;
    assert_eq!(get(&agent.stats.healthchecks_total), 1);
    assert_eq!(get(&agent.stats.protocol_errors_total), 0);
    // Data after the health-check HELLO is never looked at.
    let mut c = agent.connect().await;
    c.send(&[healthcheck_hello(), notify(1, 1, &mirror_message("/no"))].concat())
        .await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(16380, "")));
    c.assert_closed().await;
    assert_eq!(agent.recorder.len(), 0);
}

/// H10: unknown keys are skipped, whatever their type; for a repeated key the last value
/// wins (the implementation's choice; §4 allows it).
#[tokio::test]
async fn h10_unknown_and_duplicate_keys() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.connect().await;
    c.send(&hello_from(&[
        kv("x-unknown", ipv6(Ipv6Addr::LOCALHOST.octets())),
        kv("supported-versions", string(b"1.0")),
        kv("max-frame-size", uint32(1000)),
        kv("capabilities", string(b"")),
        kv("engine-id", binary(b"\x00\x01")),
        kv("y", null()),
        kv("max-frame-size", uint32(2000)),
        kv("supported-versions", string(b"2.0")),
        kv("z", ipv4(Ipv4Addr::LOCALHOST.octets())),
    ]))
    .await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(2000, "")));
}

/// H11: a HELLO with stream-id or frame-id ≠ 0: status 4; without FIN: status 10.
#[tokio::test]
async fn h11_hello_ids_and_fin() {
    let agent = InProcessAgent::start(cfg()).await;
    let items = [
        kv("supported-versions", string(b"2.0")),
        kv("max-frame-size", uint32(16380)),
        kv("capabilities", string(b"")),
    ]
    .concat();
    assert_refused(&agent, false, &frame(T_HAPROXY_HELLO, FIN, 1, 0, &items), 4).await;
    assert_refused(&agent, false, &frame(T_HAPROXY_HELLO, FIN, 0, 1, &items), 4).await;
    assert_refused(&agent, false, &frame(T_HAPROXY_HELLO, 0, 0, 0, &items), 10).await;
}

/// H12: a second HAPROXY-HELLO on an established connection: status 4.
#[tokio::test]
async fn h12_second_hello() {
    refused(true, &haproxy_hello(16380, ""), 4).await;
}

/// H13: the answer is version "2.0", max-frame-size = min(ours, HAProxy's), the negotiated
/// capabilities, FIN only and ids 0 (all in the exact bytes), and it leaves in one write.
#[tokio::test]
async fn h13_answer_content_and_single_write() {
    for (ours, theirs, want) in [
        (16384u32, 16380u32, 16380u32),
        (1024, 16380, 1024),
        (16384, 1 << 20, 16384),
        (256, 16380, 256),
        (u32::MAX, u32::MAX, u32::MAX),
    ] {
        let agent = InProcessAgent::start(SpopConfig {
            max_frame_size: ours,
            ..cfg()
        })
        .await;
        let mut c = agent.connect().await;
        c.send(&haproxy_hello(theirs, "pipelining")).await;
        // One read returns the whole frame: it was not written in pieces.
        let first = c.read_once().await;
        assert_eq!(
            hex(&first),
            hex(&agent_hello(want, "")),
            "ours {ours}, HAProxy {theirs}"
        );
    }
}

/// Our default (issue 14) accepts the pipelining HAProxy offers: the AGENT-HELLO is the
/// original's, byte for byte, except for the capabilities value. A health check, or a HAProxy
/// that offers nothing, gets exactly the original's bytes.
#[tokio::test]
async fn default_hello_differs_only_in_pipelining() {
    let ours = SpopConfig {
        max_frame_size: 16384,
        ..SpopConfig::default()
    };
    assert!(ours.capabilities.pipelining);
    for (offered, want) in [
        ("pipelining,async", "pipelining"),
        ("pipelining", "pipelining"),
        ("async", ""),
        ("", ""),
    ] {
        let agent = InProcessAgent::start(ours.clone()).await;
        let mut c = agent.connect().await;
        c.send(&haproxy_hello(16380, offered)).await;
        assert_eq!(
            hex(&c.read_once().await),
            hex(&agent_hello(16380, want)),
            "HAProxy offers {offered:?}"
        );
    }
    let agent = InProcessAgent::start(ours).await;
    let mut c = agent.connect().await;
    c.send(&healthcheck_hello()).await;
    assert_eq!(hex(&c.read_once().await), hex(&agent_hello(16380, "")));
}

// ========================================================================= N: NOTIFY / ACK

/// N1: stream-id 0 (≤3.0's first stream), frame-id 1: ACK `sid 0 fid 1`.
#[tokio::test]
async fn n1_stream_id_zero() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("pipelining,async").await;
    c.send(&notify(0, 1, &mirror_message("/zero"))).await;
    assert_eq!(c.frame_hex().await, "0000000767000000010001");
}

/// `--ack-noop`: the ACK carries one unset-var of an unused txn variable, so HAProxy 3.1
/// releases without the empty-ACK fix wake up at once.
#[tokio::test]
async fn ack_noop_carries_one_unset_var() {
    let mut c = SpopConfig {
        ack_noop: true,
        ..cfg()
    };
    c.capabilities.pipelining = true;
    let agent = InProcessAgent::start(c).await;
    let mut conn = agent.ready("pipelining").await;
    conn.send(&notify(3, 1, &mirror_message("/noop"))).await;
    // 67 | FIN | sid 3 | fid 1 | unset-var (02), 2 args, scope txn (02), name "spoa_mirror_noop"
    assert_eq!(
        conn.frame_hex().await,
        "0000001b670000000103010202021073706f615f6d6972726f725f6e6f6f70"
    );
}

/// N2: large ids are echoed exactly.
#[tokio::test]
async fn n2_large_ids_echoed() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    for (sid, fid) in [
        (667690u64, 1u64),
        (2147483647, 2147483647),
        (u64::MAX, 240),
        (1, u64::MAX),
    ] {
        c.send(&notify(sid, fid, &mirror_message("/big"))).await;
        assert_eq!(c.frame_hex().await, hex(&ack(sid, fid)));
    }
}

/// N3 / pipelining: 20 NOTIFYs in flight with odd stream ids 1..39 (3.1+ style, frame-id 1)
/// get 20 ACKs with the right ids; arbitrary interleaved uniq_ids (≤3.0 style) too.
#[tokio::test]
async fn n3_pipelining_twenty_streams() {
    let agent = InProcessAgent::start(with_caps(caps(true, false, false))).await;
    let mut c = agent.connect().await;
    // HAProxy 3.2's HELLO: caps "pipelining".
    c.send(&haproxy_hello(16380, "pipelining")).await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(16380, "pipelining")));
    let sids: Vec<u64> = (1..40).step_by(2).collect();
    assert_eq!(sids.len(), 20);
    let burst: Vec<u8> = sids
        .iter()
        .flat_map(|&sid| notify(sid, 1, &mirror_message("/p")))
        .collect();
    c.send(&burst).await;
    let mut got = c.frames_hex(20).await;
    let mut want: Vec<String> = sids.iter().map(|&sid| hex(&ack(sid, 1))).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(agent.recorder.wait_for(20).await.len(), 20);

    let uniq = [5u64, 0, 667690, 3, 1, 2, 4096];
    let burst: Vec<u8> = uniq
        .iter()
        .flat_map(|&sid| notify(sid, 1, &mirror_message("/u")))
        .collect();
    c.send(&burst).await;
    let mut got = c.frames_hex(uniq.len()).await;
    let mut want: Vec<String> = uniq.iter().map(|&sid| hex(&ack(sid, 1))).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// N4: on a connection without pipelining, a second NOTIFY arrives while the first ACK is
/// still held (by `-t` here): both are handled and ACKed.
#[tokio::test]
async fn n4_second_notify_while_ack_pending() {
    let delay = Duration::from_millis(300);
    let agent = InProcessAgent::start(SpopConfig {
        processing_delay: delay,
        ..cfg()
    })
    .await;
    let mut c = agent.ready("").await;
    let start = Instant::now();
    c.send(&notify(1, 1, &mirror_message("/a"))).await;
    c.send(&notify(3, 1, &mirror_message("/b"))).await;
    assert_eq!(
        c.frames_hex(2).await,
        vec![hex(&ack(1, 1)), hex(&ack(3, 1))]
    );
    assert!(start.elapsed() >= delay);
}

/// N5: a NOTIFY with no message is ACKed normally (the handler gets an empty list).
#[tokio::test]
async fn n5_empty_notify() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    c.send(&notify(1, 1, &[])).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    assert_eq!(agent.recorder.wait_for(1).await, vec![vec![]]);
}

/// N6: unknown message names, unnamed args, duplicate arg names, NULL args and every type
/// reach the handler unchanged and in order.
#[tokio::test]
async fn n6_messages_kept_in_order() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let payload = [
        message(b"unknown-message", &[(b"", null()), (b"", boolean(false))]),
        message(
            b"mirror",
            &[
                (b"dup", int32(-5)),
                (b"dup", uint32(7)),
                (b"", int64(-1)),
                (b"u64", uint64(1 << 40)),
                (b"src", ipv4([10, 0, 0, 1])),
                (b"dst", ipv6(v6.octets())),
                (b"arg_method", string(b"PUT")),
                (b"arg_body", null()),
            ],
        ),
        message(b"mirror", &[]),
    ]
    .concat();
    c.send(&notify(1, 1, &payload)).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    let got = agent.recorder.wait_for(1).await;
    assert_eq!(
        got[0],
        vec![
            msg(
                "unknown-message",
                vec![("", TypedData::Null), ("", TypedData::Bool(false))]
            ),
            msg(
                "mirror",
                vec![
                    ("dup", TypedData::Int32(-5)),
                    ("dup", TypedData::Uint32(7)),
                    ("", TypedData::Int64(-1)),
                    ("u64", TypedData::Uint64(1 << 40)),
                    ("src", TypedData::Ipv4(Ipv4Addr::new(10, 0, 0, 1))),
                    ("dst", TypedData::Ipv6(v6)),
                    ("arg_method", s(b"PUT")),
                    ("arg_body", TypedData::Null),
                ]
            ),
            msg("mirror", vec![]),
        ]
    );
}

/// N7 / N8: malformed hdrs_bin (no terminator, garbage after it, NULL instead of BINARY) and
/// a truncated body are the mirror's business: at the SPOP level they are still ACKed and
/// handed over byte for byte.
#[tokio::test]
async fn n7_n8_odd_arguments_still_acked() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    let hdrs = [
        &b"\x04host\x01a"[..],                  // no terminator
        b"\x04host\x01a\x00\x00garbage",        // garbage after it
        b"\x01x\x00\x01x\x00\x01x\x00\x00\x00", // duplicates with empty values
    ];
    for (i, h) in hdrs.iter().enumerate() {
        c.send(&notify(
            i as u64,
            1,
            &message(
                b"mirror",
                &[(b"arg_hdrs", binary(h)), (b"arg_body", binary(b"{"))],
            ),
        ))
        .await;
        assert_eq!(c.frame_hex().await, hex(&ack(i as u64, 1)));
    }
    c.send(&notify(9, 1, &message(b"mirror", &[(b"arg_hdrs", null())])))
        .await;
    assert_eq!(c.frame_hex().await, hex(&ack(9, 1)));
    let got = agent.recorder.wait_for(4).await;
    for (i, h) in hdrs.iter().enumerate() {
        assert_eq!(got[i][0].arg(b"arg_hdrs"), Some(&bin(h)));
    }
    assert_eq!(got[3][0].arg(b"arg_hdrs"), Some(&TypedData::Null));
}

/// N9 (no fragmentation negotiated): a NOTIFY without FIN: status 10.
#[tokio::test]
async fn n9_notify_without_fin_unsupported() {
    let f = frame(T_NOTIFY, 0, 1, 1, &mirror_message("/frag"));
    refused(true, &f, 10).await;
}

/// N10: an UNSET frame with no fragmented NOTIFY in progress: status 11 (the
/// implementation's choice of the two §4 allows), with and without fragmentation.
#[tokio::test]
async fn n10_unset_without_fragment() {
    refused(true, &frame(T_UNSET, FIN, 1, 1, b"abc"), 11).await;
    let agent = InProcessAgent::start(with_caps(caps(false, false, true))).await;
    assert_refused(&agent, true, &frame(T_UNSET, FIN, 1, 1, b"abc"), 11).await;
    assert_refused(&agent, true, &frame(T_UNSET, 0, 1, 1, b"abc"), 11).await;
}

/// N11: HAPROXY-DISCONNECT (routine codes 0/1/2 and an error code) is answered with
/// AGENT-DISCONNECT 0, then the agent closes; ACKs still held by `-t` are dropped.
#[tokio::test]
async fn n11_haproxy_disconnect() {
    let agent = InProcessAgent::start(cfg()).await;
    for (code, text) in [
        (0u32, "normal"),
        (1, "I/O error"),
        (2, "a timeout occurred"),
        (4, "invalid frame received"),
        (99, "an unknown error occurred"),
    ] {
        let mut c = agent.ready("").await;
        c.send(&haproxy_disconnect(code, text)).await;
        c.assert_disconnect(0).await;
    }
    // Frames after the DISCONNECT in the same write are not processed.
    let mut c = agent.ready("").await;
    c.send(
        &[
            haproxy_disconnect(0, "normal"),
            notify(1, 1, &mirror_message("/late")),
        ]
        .concat(),
    )
    .await;
    c.assert_disconnect(0).await;
    assert_eq!(agent.recorder.len(), 0);
    assert_eq!(get(&agent.stats.protocol_errors_total), 0);

    let delayed = InProcessAgent::start(SpopConfig {
        processing_delay: Duration::from_secs(5),
        ..cfg()
    })
    .await;
    let mut c = delayed.ready("pipelining").await;
    c.send(
        &[
            notify(1, 1, &mirror_message("/pending")),
            haproxy_disconnect(0, "normal"),
        ]
        .concat(),
    )
    .await;
    // No ACK for the pending NOTIFY: only the DISCONNECT, then close.
    c.assert_disconnect(0).await;
}

/// N12: agent frame types (101–103) and undefined types from HAProxy: status 4 (the
/// implementation's choice; §4 allows skipping too).
#[tokio::test]
async fn n12_unexpected_frame_types() {
    let agent = InProcessAgent::start(cfg()).await;
    for t in [
        4u8,
        50,
        100,
        T_AGENT_HELLO,
        T_AGENT_DISCONNECT,
        T_ACK,
        104,
        200,
        255,
    ] {
        assert_refused(&agent, true, &frame(t, FIN, 1, 1, &[]), 4).await;
    }
}

/// N13: ACK = FIN only, the NOTIFY's ids, an empty action list, one frame per NOTIFY.
#[tokio::test]
async fn n13_ack_encoding() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    c.send(&notify(300, 1, &mirror_message("/n13"))).await;
    let got = c.frame().await.unwrap();
    assert_eq!(hex(&got), "000000086700000001fc0301");
    assert_eq!(got[4], T_ACK);
    assert_eq!(&got[5..9], &[0, 0, 0, 1]);
    assert_eq!(get(&agent.stats.ack_total), 1);
    assert_eq!(get(&agent.stats.notify_total), 1);
}

// ==================================================================== R: resources / lifecycle

/// R1: a burst of new connections (HAProxy reload) is accepted and served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_connection_burst() {
    let agent = Arc::new(InProcessAgent::start(cfg()).await);
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let agent = agent.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = agent.ready("pipelining,async").await;
            c.send(&notify(i, 1, &mirror_message("/burst"))).await;
            assert_eq!(c.frame_hex().await, hex(&ack(i, 1)));
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.expect("client task"));
    }
    assert_eq!(get(&agent.stats.connections_total), 200);
    agent.wait_counter(|s| &s.connections_active, 200).await;
    drop(clients);
    agent.wait_counter(|s| &s.connections_active, 0).await;
}

/// R2: EOF without DISCONNECT (3.x idle close, end of a health check) is a normal close.
#[tokio::test]
async fn r2_eof_without_disconnect() {
    let agent = InProcessAgent::start(cfg()).await;
    let mut c = agent.ready("").await;
    c.send(&notify(1, 1, &mirror_message("/r2"))).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    c.shutdown_write().await;
    c.assert_closed().await;
    drop(agent.connect().await); // connect and vanish before HELLO
    agent.wait_counter(|s| &s.connections_active, 0).await;
    assert_eq!(get(&agent.stats.protocol_errors_total), 0);
}

/// A handler whose downstream is stuck: it offers each NOTIFY to a full bounded queue that
/// nobody reads, and drops it (what a stalled mirror looks like from the SPOP side).
struct Stalled {
    queue: std::sync::mpsc::SyncSender<Vec<Message>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl NotifyHandler for Stalled {
    fn handle(&self, notify: spoa_mirror::handler::Notify) {
        if self.queue.try_send(notify.messages).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// R3: the ACK never waits for the mirror: with the consumer stalled, 100 NOTIFYs are all
/// ACKed (the handler drops and counts what does not fit).
#[tokio::test]
async fn r3_stalled_consumer_does_not_delay_acks() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (queue, _never_read) = std::sync::mpsc::sync_channel(4);
    let handler = Arc::new(Stalled {
        queue,
        dropped: Default::default(),
    });
    let shutdown = tokio_util::sync::CancellationToken::new();
    let served = tokio::spawn(spoa_mirror::listener::serve(
        listener,
        cfg(),
        handler.clone(),
        Arc::new(Stats::default()),
        shutdown.clone(),
    ));
    let mut c = Client::connect(addr).await;
    c.send(&haproxy_hello(16380, "pipelining")).await;
    assert_eq!(c.frame_hex().await, hex(&agent_hello(16380, "")));
    for sid in 0..100u64 {
        c.send(&notify(sid, 1, &mirror_message("/stalled"))).await;
        assert_eq!(c.frame_hex().await, hex(&ack(sid, 1)));
    }
    assert_eq!(
        handler.dropped.load(std::sync::atomic::Ordering::Relaxed),
        96
    );
    shutdown.cancel();
    tokio::time::timeout(support::agent::WAIT, served)
        .await
        .unwrap()
        .unwrap();
}

/// R4: 20 pipelined streams on each of 10 connections, and one connection stuck in mid-frame:
/// no head-of-line blocking across streams or connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_many_streams_many_connections() {
    let agent = Arc::new(InProcessAgent::start(with_caps(caps(true, false, false))).await);
    let mut stuck = agent.ready("pipelining").await;
    let half = notify(1, 1, &mirror_message("/stuck"));
    stuck.send(&half[..half.len() / 2]).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let agent = agent.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = agent.connect().await;
            c.send(&haproxy_hello(16380, "pipelining")).await;
            assert_eq!(c.frame_hex().await, hex(&agent_hello(16380, "pipelining")));
            let burst: Vec<u8> = (1..40u64)
                .step_by(2)
                .flat_map(|sid| notify(sid, 1, &mirror_message("/r4")))
                .collect();
            c.send(&burst).await;
            let mut got = c.frames_hex(20).await;
            got.sort();
            let mut want: Vec<String> =
                (1..40u64).step_by(2).map(|sid| hex(&ack(sid, 1))).collect();
            want.sort();
            assert_eq!(got, want);
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    // The stuck one completes its frame late and is served as well.
    stuck.send(&half[half.len() / 2..]).await;
    assert_eq!(stuck.frame_hex().await, hex(&ack(1, 1)));
    assert_eq!(agent.recorder.wait_for(201).await.len(), 201);
}

// ============================================================ fragmentation (HAProxy ≤ 3.0)

fn frag_cfg() -> SpopConfig {
    SpopConfig {
        max_reassembled_size: 64 * 1024,
        ..with_caps(caps(false, false, true))
    }
}

/// A NOTIFY payload with a 2000-byte body, and the same split in three fragments whose cuts
/// fall inside the body value (as HAProxy splits).
fn fragmented_body() -> (Vec<u8>, Vec<Vec<u8>>) {
    let body: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let payload = message(
        b"mirror",
        &[
            (b"arg_method", string(b"POST")),
            (b"arg_path", string(b"/frag")),
            (b"arg_body", binary(&body)),
        ],
    );
    let cuts = [0, 700, 1500, payload.len()];
    let parts = cuts
        .windows(2)
        .map(|w| payload[w[0]..w[1]].to_vec())
        .collect();
    (payload, parts)
}

/// The agent announces fragmentation when allowed, and reassembles NOTIFY + UNSET
/// continuations split inside a value: the messages equal the unfragmented ones; one ACK,
/// only after the FIN fragment.
#[tokio::test]
async fn fragmentation_reassembles_split_values() {
    let agent = InProcessAgent::start(frag_cfg()).await;
    let mut c = agent.connect().await;
    c.send(&haproxy_hello(16380, "pipelining,async")).await;
    assert_eq!(
        c.frame_hex().await,
        hex(&agent_hello(16380, "fragmentation"))
    );

    let (whole, parts) = fragmented_body();
    c.send(&notify(4, 1, &whole)).await;
    assert_eq!(c.frame_hex().await, hex(&ack(4, 1)));

    // Fragment by fragment, one write each; then a whole NOTIFY as a marker: the first ACK
    // read must be the fragmented one's, so none came early.
    c.send(&frame(T_NOTIFY, 0, 5, 1, &parts[0])).await;
    c.send(&frame(T_UNSET, 0, 5, 1, &parts[1])).await;
    c.send(&frame(T_UNSET, FIN, 5, 1, &parts[2])).await;
    c.send(&notify(6, 1, &mirror_message("/after"))).await;
    assert_eq!(
        c.frames_hex(2).await,
        vec![hex(&ack(5, 1)), hex(&ack(6, 1))]
    );
    let got = agent.recorder.wait_for(3).await;
    assert_eq!(got[0], got[1], "reassembled == unfragmented");
    assert_eq!(got[2], vec![mirror_decoded("/after")]);
    assert_eq!(get(&agent.stats.notify_total), 3);

    // Empty middle fragments are fine as well.
    c.send(
        &[
            frame(T_NOTIFY, 0, 7, 2, &parts[0]),
            frame(T_UNSET, 0, 7, 2, &[]),
            frame(T_UNSET, 0, 7, 2, &parts[1]),
            frame(T_UNSET, FIN, 7, 2, &parts[2]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(c.frame_hex().await, hex(&ack(7, 2)));
    assert_eq!(agent.recorder.wait_for(4).await[3], got[0]);
}

/// An UNSET with FIN|ABORT drops the fragmented NOTIFY: no ACK, nothing handed over.
#[tokio::test]
async fn fragmentation_abort_drops_without_ack() {
    let agent = InProcessAgent::start(frag_cfg()).await;
    let mut c = agent.ready("pipelining,async").await;
    let (_, parts) = fragmented_body();
    c.send(
        &[
            frame(T_NOTIFY, 0, 9, 1, &parts[0]),
            frame(T_UNSET, 0, 9, 1, &parts[1]),
            frame(T_UNSET, FIN | ABORT, 9, 1, &[]),
            notify(11, 1, &mirror_message("/next")),
        ]
        .concat(),
    )
    .await;
    assert_eq!(c.frame_hex().await, hex(&ack(11, 1)));
    let got = agent.recorder.wait_for(1).await;
    assert_eq!(got, vec![vec![mirror_decoded("/next")]]);
    // After an abort a new fragmented NOTIFY may start.
    c.send(
        &[
            frame(T_NOTIFY, 0, 13, 1, &parts[0]),
            frame(T_UNSET, 0, 13, 1, &parts[1]),
            frame(T_UNSET, FIN, 13, 1, &parts[2]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(c.frame_hex().await, hex(&ack(13, 1)));
}

/// Interlaced frames during a fragmented NOTIFY: status 11 (UNSET of another stream or frame,
/// or a new NOTIFY).
#[tokio::test]
async fn fragmentation_interlaced_is_11() {
    let agent = InProcessAgent::start(frag_cfg()).await;
    let (_, parts) = fragmented_body();
    let start = frame(T_NOTIFY, 0, 1, 1, &parts[0]);
    for intruder in [
        frame(T_UNSET, 0, 3, 1, &parts[1]),
        frame(T_UNSET, FIN, 1, 2, &parts[1]),
        notify(3, 1, &mirror_message("/x")),
        frame(T_NOTIFY, 0, 3, 1, &parts[0]),
    ] {
        assert_refused(&agent, true, &[start.clone(), intruder].concat(), 11).await;
    }
}

/// A reassembled payload above `max_reassembled_size`: status 3; also when the first
/// fragment alone is over.
#[tokio::test]
async fn fragmentation_over_max_reassembled_size_is_3() {
    let agent = InProcessAgent::start(SpopConfig {
        max_reassembled_size: 1000,
        ..frag_cfg()
    })
    .await;
    let chunk = vec![0u8; 600];
    let bad = [
        frame(T_NOTIFY, 0, 1, 1, &chunk),
        frame(T_UNSET, FIN, 1, 1, &chunk),
    ]
    .concat();
    assert_refused(&agent, true, &bad, 3).await;
    assert_refused(&agent, true, &frame(T_NOTIFY, 0, 1, 1, &vec![0u8; 1001]), 3).await;
    // Up to the limit is fine.
    let m = message(b"m", &[(b"", binary(&vec![1u8; 900]))]);
    assert!(m.len() <= 1000);
    let mut c = agent.ready("").await;
    c.send(
        &[
            frame(T_NOTIFY, 0, 1, 1, &m[..500]),
            frame(T_UNSET, FIN, 1, 1, &m[500..]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
}

/// A reassembled payload that is not a valid LIST-OF-MESSAGES: status 4.
#[tokio::test]
async fn fragmentation_invalid_reassembled_payload_is_4() {
    let agent = InProcessAgent::start(frag_cfg()).await;
    let (whole, _) = fragmented_body();
    let bad = [
        frame(T_NOTIFY, 0, 1, 1, &whole[..100]),
        frame(T_UNSET, FIN, 1, 1, &whole[100..200]),
    ]
    .concat();
    assert_refused(&agent, true, &bad, 4).await;
}

// ================================================================== -t, timeouts, shutdown

/// `-t`: the ACK comes after the processing delay (measured: ordering, not performance).
#[tokio::test]
async fn processing_delay_holds_the_ack() {
    let delay = Duration::from_millis(250);
    let agent = InProcessAgent::start(SpopConfig {
        processing_delay: delay,
        ..with_caps(caps(true, false, false))
    })
    .await;
    let mut c = agent.ready("pipelining").await;
    let start = Instant::now();
    c.send(&notify(1, 1, &mirror_message("/slow"))).await;
    assert_eq!(c.frame_hex().await, hex(&ack(1, 1)));
    assert!(start.elapsed() >= delay, "ACK after {:?}", start.elapsed());
    assert_eq!(agent.recorder.wait_for(1).await.len(), 1);
    // Pipelined: several held at once, each at least `delay` after it arrived.
    let start = Instant::now();
    let burst: Vec<u8> = [3u64, 5, 7]
        .iter()
        .flat_map(|&sid| notify(sid, 1, &mirror_message("/slow")))
        .collect();
    c.send(&burst).await;
    let mut got = c.frames_hex(3).await;
    got.sort();
    let mut want = vec![hex(&ack(3, 1)), hex(&ack(5, 1)), hex(&ack(7, 1))];
    want.sort();
    assert_eq!(got, want);
    assert!(start.elapsed() >= delay);
}

/// A frame that started to arrive must complete within `frame_timeout`; an idle connection
/// is closed after `idle_timeout`: AGENT-DISCONNECT 2 (the implementation's additions).
#[tokio::test]
async fn frame_and_idle_timeouts() {
    let agent = InProcessAgent::start(SpopConfig {
        frame_timeout: Duration::from_millis(200),
        idle_timeout: Some(Duration::from_millis(400)),
        ..cfg()
    })
    .await;
    let mut c = agent.ready("").await;
    c.send(&notify(1, 1, &mirror_message("/x"))[..5]).await;
    c.assert_disconnect(2).await;
    let mut idle = agent.ready("").await;
    let start = Instant::now();
    idle.assert_disconnect(2).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
}

/// Shutdown: cancelling the token sends every open connection AGENT-DISCONNECT 0 "normal"
/// (after the ACKs `-t` still holds) and closes it; `serve()` returns; the port is closed.
#[tokio::test]
async fn shutdown_disconnects_everyone() {
    let mut agent = InProcessAgent::start(SpopConfig {
        processing_delay: Duration::from_secs(30),
        ..with_caps(caps(true, false, false))
    })
    .await;
    let mut idle = agent.ready("").await;
    let mut pipelined = agent.ready("pipelining").await;
    let mut before_hello = agent.connect().await;
    let mut half_frame = agent.ready("").await;
    pipelined
        .send(
            &[
                notify(1, 1, &mirror_message("/held")),
                notify(3, 1, &mirror_message("/held")),
            ]
            .concat(),
        )
        .await;
    half_frame.send(&[0, 0]).await;
    agent.wait_counter(|s| &s.notify_total, 2).await;
    agent.wait_counter(|s| &s.connections_active, 4).await;
    agent.stop().await;
    for c in [&mut idle, &mut before_hello, &mut half_frame] {
        c.assert_disconnect(0).await;
    }
    let mut held = pipelined.frames_hex(2).await;
    held.sort();
    assert_eq!(held, vec![hex(&ack(1, 1)), hex(&ack(3, 1))]);
    pipelined.assert_disconnect(0).await;
    assert!(tokio::net::TcpStream::connect(agent.addr).await.is_err());
    assert_eq!(get(&agent.stats.connections_active), 0);
}
