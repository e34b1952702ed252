//! SPOP bytes built by hand, independently of `spoa_mirror::spop`: the varint, typed data,
//! KV items, messages, and whole frames (length prefix included), plus the exact frames the
//! agent is expected to answer with.
//!
//! Every function returns a `Vec<u8>` so that tests can splice, truncate and corrupt them.

/// Frame types (SPOE §3.2.2).
pub const T_UNSET: u8 = 0;
pub const T_HAPROXY_HELLO: u8 = 1;
pub const T_HAPROXY_DISCONNECT: u8 = 2;
pub const T_NOTIFY: u8 = 3;
pub const T_AGENT_HELLO: u8 = 101;
pub const T_AGENT_DISCONNECT: u8 = 102;
pub const T_ACK: u8 = 103;

/// Frame flags.
pub const FIN: u32 = 1;
pub const ABORT: u32 = 2;

/// The status codes of SPOE §3.5 with the reason texts HAProxy's `spop_err_reasons` uses
/// (mux_spop.c) and the agent sends.
pub const STATUS_TEXTS: [(u32, &str); 15] = [
    (0, "normal"),
    (1, "I/O error"),
    (2, "a timeout occurred"),
    (3, "frame is too big"),
    (4, "invalid frame received"),
    (5, "version value not found"),
    (6, "max-frame-size value not found"),
    (7, "capabilities value not found"),
    (8, "unsupported version"),
    (9, "max-frame-size too big or too small"),
    (10, "fragmentation not supported"),
    (11, "invalid interlaced frames"),
    (12, "frame-id not found"),
    (13, "resource allocation error"),
    (99, "an unknown error occurred"),
];

/// The reason text of a status code.
pub fn status_text(code: u32) -> &'static str {
    STATUS_TEXTS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no text for status {code}"))
}

/// HAProxy's varint, written from the prose of spop-protocol.md §1.4.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if v < 240 {
        out.push(v as u8);
        return out;
    }
    out.push(0xF0 | (v & 0x0F) as u8);
    v = (v - 240) >> 4;
    while v >= 128 {
        out.push(0x80 | (v & 0x7F) as u8);
        v = (v - 128) >> 7;
    }
    out.push(v as u8);
    out
}

/// `<varint length><bytes>`: KV names, message names, STRING/BINARY data.
pub fn lstr(bytes: &[u8]) -> Vec<u8> {
    let mut out = varint(bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

// --- typed data (SPOE §3.1): type in the low nibble, flags in the high nibble

pub fn null() -> Vec<u8> {
    vec![0x00]
}
pub fn boolean(v: bool) -> Vec<u8> {
    vec![if v { 0x11 } else { 0x01 }]
}
pub fn int32(v: i32) -> Vec<u8> {
    [vec![0x02], varint(i64::from(v) as u64)].concat()
}
pub fn uint32(v: u32) -> Vec<u8> {
    [vec![0x03], varint(u64::from(v))].concat()
}
pub fn int64(v: i64) -> Vec<u8> {
    [vec![0x04], varint(v as u64)].concat()
}
pub fn uint64(v: u64) -> Vec<u8> {
    [vec![0x05], varint(v)].concat()
}
pub fn ipv4(a: [u8; 4]) -> Vec<u8> {
    [&[0x06][..], &a[..]].concat()
}
pub fn ipv6(a: [u8; 16]) -> Vec<u8> {
    [&[0x07][..], &a[..]].concat()
}
pub fn string(s: &[u8]) -> Vec<u8> {
    [vec![0x08], lstr(s)].concat()
}
pub fn binary(s: &[u8]) -> Vec<u8> {
    [vec![0x09], lstr(s)].concat()
}

/// One KV item: a name without type byte, then an already encoded typed value.
pub fn kv(name: &str, typed: Vec<u8>) -> Vec<u8> {
    [lstr(name.as_bytes()), typed].concat()
}

/// One message of a LIST-OF-MESSAGES: name, NB-ARGS, then the args as (name, typed value).
pub fn message(name: &[u8], args: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut out = lstr(name);
    out.push(u8::try_from(args.len()).expect("at most 255 args"));
    for (arg, value) in args {
        out.extend(lstr(arg));
        out.extend_from_slice(value);
    }
    out
}

/// A whole frame: `<length:u32be><type><flags:u32be><sid><fid><payload>`.
pub fn frame(frame_type: u8, flags: u32, sid: u64, fid: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![frame_type];
    body.extend_from_slice(&flags.to_be_bytes());
    body.extend(varint(sid));
    body.extend(varint(fid));
    body.extend_from_slice(payload);
    let mut out = u32::try_from(body.len())
        .expect("frame fits u32")
        .to_be_bytes()
        .to_vec();
    out.extend(body);
    out
}

/// HAPROXY-HELLO the way HAProxy ≤ 3.0 sends it: versions "2.0", a max-frame-size, the
/// capabilities, and an engine-id.
pub fn haproxy_hello(max_frame_size: u32, capabilities: &str) -> Vec<u8> {
    hello_from(&[
        kv("supported-versions", string(b"2.0")),
        kv("max-frame-size", uint32(max_frame_size)),
        kv("capabilities", string(capabilities.as_bytes())),
        kv("engine-id", string(b"0f3b7a2e-5d1c-4e8a-9b6f-2c4d8e1a7f30")),
    ])
}

/// A HAPROXY-HELLO frame (FIN, sid 0, fid 0) with exactly these KV items.
pub fn hello_from(items: &[Vec<u8>]) -> Vec<u8> {
    frame(T_HAPROXY_HELLO, FIN, 0, 0, &items.concat())
}

/// HAProxy 3.1+'s hard-coded `option spop-check` HELLO (82 bytes, spop-protocol.md §1.7).
pub fn healthcheck_hello() -> Vec<u8> {
    hello_from(&[
        kv("supported-versions", string(b"2.0")),
        kv("max-frame-size", uint32(16380)),
        kv("capabilities", string(b"")),
        kv("healthcheck", boolean(true)),
    ])
}

/// The AGENT-HELLO the agent must answer: version "2.0", the negotiated size and capabilities.
pub fn agent_hello(max_frame_size: u32, capabilities: &str) -> Vec<u8> {
    frame(
        T_AGENT_HELLO,
        FIN,
        0,
        0,
        &[
            kv("version", string(b"2.0")),
            kv("max-frame-size", uint32(max_frame_size)),
            kv("capabilities", string(capabilities.as_bytes())),
        ]
        .concat(),
    )
}

/// A NOTIFY with FIN and this LIST-OF-MESSAGES payload.
pub fn notify(sid: u64, fid: u64, payload: &[u8]) -> Vec<u8> {
    frame(T_NOTIFY, FIN, sid, fid, payload)
}

/// A small, valid `mirror` message like the ones HAProxy sends (GET, no body).
pub fn mirror_message(path: &str) -> Vec<u8> {
    message(
        b"mirror",
        &[
            (b"arg_method", string(b"GET")),
            (b"arg_path", string(path.as_bytes())),
            (b"arg_ver", string(b"1.1")),
            (b"arg_hdrs", binary(b"\x04host\x0bexample.com\x00\x00")),
            (b"arg_body", binary(b"")),
        ],
    )
}

/// A NOTIFY whose frame (length prefix excluded) is exactly `len` bytes: one message `m`
/// with one unnamed BINARY argument padded to fit.
pub fn notify_of_len(sid: u64, fid: u64, len: usize) -> Vec<u8> {
    let header = 1 + 4 + varint(sid).len() + varint(fid).len();
    // payload = lstr("m") (2) + NB-ARGS (1) + lstr("") (1) + type (1) + lstr(data)
    let fixed = header + 2 + 1 + 1 + 1;
    let mut data_len = len.checked_sub(fixed + 1).expect("len too small");
    while data_len > 0 && fixed + varint(data_len as u64).len() + data_len > len {
        data_len -= 1;
    }
    let out = notify(
        sid,
        fid,
        &message(b"m", &[(b"", binary(&vec![0xAB; data_len]))]),
    );
    assert_eq!(out.len() - 4, len, "could not pad a NOTIFY to {len} bytes");
    out
}

/// The empty ACK echoing a NOTIFY's ids.
pub fn ack(sid: u64, fid: u64) -> Vec<u8> {
    frame(T_ACK, FIN, sid, fid, &[])
}

/// AGENT-DISCONNECT with a status code and its reason text.
pub fn agent_disconnect(code: u32) -> Vec<u8> {
    disconnect(T_AGENT_DISCONNECT, code, status_text(code))
}

/// HAPROXY-DISCONNECT with a status code and a message.
pub fn haproxy_disconnect(code: u32, message: &str) -> Vec<u8> {
    disconnect(T_HAPROXY_DISCONNECT, code, message)
}

fn disconnect(frame_type: u8, code: u32, message: &str) -> Vec<u8> {
    frame(
        frame_type,
        FIN,
        0,
        0,
        &[
            kv("status-code", uint32(code)),
            kv("message", string(message.as_bytes())),
        ]
        .concat(),
    )
}
