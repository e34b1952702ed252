//! The fuzz oracles: one function per decoder, each feeding arbitrary bytes to the real code of
//! the `spoa_mirror` library and asserting what must hold for every input (no panic, and where
//! a decode succeeds, a property of its result: round trips, bounds, where a request goes).
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, `#[path]` include) and by the
//! stable replay test `tests/fuzz_corpus.rs`, so a corpus file means the same thing to both.

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use spoa_mirror::mirror::{self, Base, Notes};
use spoa_mirror::spop::{
    AgentHello, Arg, Capabilities, Disconnect, Frame, FrameDecoder, HaproxyHello, Kv, Message,
    Reader, TypedData, LENGTH_PREFIX, MIN_FRAME_SIZE,
};

/// An oracle: panics when its property does not hold for the input.
pub type Oracle = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Oracle)] = &[
    ("frame", frame),
    ("hello", hello),
    ("notify", notify),
    ("hdrs_bin", hdrs_bin),
    ("hdrs_text", hdrs_text),
    ("request", request),
];

/// Frame bytes after the length prefix: `Frame::decode`; a frame that decodes re-encodes to
/// bytes that decode to the same frame, with a correct length prefix. The same bytes with a
/// length prefix also go through the stream `FrameDecoder`.
pub fn frame(data: &[u8]) {
    if let Ok(decoded) = Frame::decode(Bytes::copy_from_slice(data)) {
        let mut out = BytesMut::new();
        decoded.encode(&mut out);
        let body = out.split_off(LENGTH_PREFIX);
        assert_eq!(
            out.as_ref(),
            (body.len() as u32).to_be_bytes(),
            "length prefix of the re-encoded frame"
        );
        let again = Frame::decode(body.freeze()).expect("a re-encoded frame decodes");
        assert_eq!(
            again, decoded,
            "decode -> encode -> decode changed the frame"
        );
    }

    // As a stream: cut frames off a buffer until it needs more or refuses.
    let mut buf = BytesMut::from(data);
    let decoder = FrameDecoder::new(MIN_FRAME_SIZE * 4);
    for _ in 0..64 {
        match decoder.decode(&mut buf) {
            Ok(Some(f)) => {
                assert!(f.len() <= decoder.max_frame_size() as usize);
                let _ = Frame::decode(f);
            }
            Ok(None) | Err(_) => break,
        }
    }
}

/// A HAPROXY-HELLO payload (KV list): `HaproxyHello::from_kv`, then the negotiation; the
/// agreed frame size stays within both sides' limits and the AGENT-HELLO round-trips.
pub fn hello(data: &[u8]) {
    let Ok(items) = Kv::decode_list(&mut Reader::new(Bytes::copy_from_slice(data))) else {
        return;
    };
    let _ = Disconnect::from_kv(&items);
    let Ok(theirs) = HaproxyHello::from_kv(&items) else {
        return;
    };
    assert!(theirs.max_frame_size >= MIN_FRAME_SIZE);
    for ours_max in [MIN_FRAME_SIZE, 16_380, 1 << 20, u32::MAX] {
        let ours = Capabilities {
            fragmentation: true,
            pipelining: true,
            r#async: true,
        };
        let agreed = AgentHello::negotiate(&theirs, ours_max, ours);
        assert!(agreed.max_frame_size <= ours_max.max(MIN_FRAME_SIZE));
        assert!(agreed.max_frame_size <= theirs.max_frame_size);
        assert!(agreed.max_frame_size >= MIN_FRAME_SIZE);
        assert_eq!(AgentHello::from_kv(&agreed.to_kv()), Some(agreed));
    }
}

/// A NOTIFY payload (messages with typed arguments): `Message::decode_list`; what decodes
/// re-encodes to the same messages. The bytes are also read as a run of typed data.
pub fn notify(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(messages) = Message::decode_list(&mut Reader::new(bytes.clone())) {
        let mut out = BytesMut::new();
        Message::encode_list(&messages, &mut out);
        let again = Message::decode_list(&mut Reader::new(out.freeze()))
            .expect("re-encoded messages decode");
        assert_eq!(
            again, messages,
            "decode -> encode -> decode changed the messages"
        );
    }
    let mut r = Reader::new(bytes);
    for _ in 0..1024 {
        if r.is_empty() || TypedData::decode(&mut r).is_err() {
            break;
        }
    }
}

/// `req.hdrs_bin`: `mirror::parse_hdrs_bin`; a block that parses, re-encoded, parses to the
/// same list.
pub fn hdrs_bin(data: &[u8]) {
    let Ok(headers) = mirror::parse_hdrs_bin(&Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut block = Vec::new();
    for (name, value) in &headers {
        put_lstr(&mut block, name.as_str().as_bytes());
        put_lstr(&mut block, value.as_bytes());
    }
    block.extend_from_slice(&[0, 0]);
    let again = mirror::parse_hdrs_bin(&Bytes::from(block)).expect("re-encoded hdrs_bin parses");
    assert_eq!(again, headers);
}

/// `req.hdrs`: `mirror::parse_hdrs_text`; a block that parses, re-written as
/// `name: value CRLF ... CRLF`, parses to the same list.
pub fn hdrs_text(data: &[u8]) {
    let Ok(headers) = mirror::parse_hdrs_text(&Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut block = Vec::new();
    for (name, value) in &headers {
        assert!(!value.as_bytes().starts_with(b" ") && !value.as_bytes().ends_with(b" "));
        block.extend_from_slice(name.as_str().as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"\r\n");
    let again = mirror::parse_hdrs_text(&Bytes::from(block)).expect("re-written hdrs parses");
    assert_eq!(again, headers);
}

/// Mirror URLs the built requests are checked against (with and without a path prefix).
const BASES: &[&str] = &["http://127.0.0.1:8080", "https://mirror.test/pre/fix/"];

/// Request building: the bytes are a NOTIFY payload whose messages go through `mirror::parse`
/// and the request builder; or, when the first byte is `0xFF`, the five `mirror` arguments
/// (method, path, version, headers, body) separated by `0xFE`, headers as hdrs_bin when the
/// second byte is even, as text otherwise. A built request always goes to the `-u` host,
/// whatever its target or Host header says.
pub fn request(data: &[u8]) {
    if let Some((&0xFF, rest)) = data.split_first() {
        let mut fields = rest.split(|&b| b == 0xFE).map(Bytes::copy_from_slice);
        let mut next = || fields.next().unwrap_or_default();
        let (method, path, version, hdrs, body) = (next(), next(), next(), next(), next());
        let hdrs = if rest.get(1).is_some_and(|b| b % 2 == 0) {
            TypedData::Binary(hdrs)
        } else {
            TypedData::String(hdrs)
        };
        let arg = |name: &'static str, value| Arg {
            name: Bytes::from_static(name.as_bytes()),
            value,
        };
        let message = Message {
            name: Bytes::from_static(b"mirror"),
            args: vec![
                arg("arg_method", TypedData::String(method)),
                arg("arg_path", TypedData::String(path)),
                arg("arg_ver", TypedData::String(version)),
                arg("arg_hdrs", hdrs),
                arg("arg_body", TypedData::Binary(body)),
            ],
        };
        build_and_check(&message);
    } else if let Ok(messages) =
        Message::decode_list(&mut Reader::new(Bytes::copy_from_slice(data)))
    {
        for m in &messages {
            build_and_check(m);
        }
    }
}

fn build_and_check(message: &Message) {
    let mut notes = Notes::default();
    let Ok(req) = mirror::parse(message, &mut notes) else {
        return;
    };
    // The body never grows and its length is what Content-Length says.
    let lengths: Vec<&HeaderValue> = req
        .headers
        .iter()
        .filter(|(n, _)| n == http::header::CONTENT_LENGTH)
        .map(|(_, v)| v)
        .collect();
    assert!(lengths.len() <= 1, "more than one Content-Length forwarded");
    if let Some(v) = lengths.first() {
        assert_eq!(v.as_bytes(), req.body.len().to_string().as_bytes());
    }
    assert!(req.size() >= req.body.len());
    for url in BASES {
        let base = Base::from_uri(&url.parse().expect("static URL")).expect("static base");
        let Ok(built) = mirror::build_request(&req, &base, &[]) else {
            continue;
        };
        assert_eq!(built.uri().scheme(), Some(&base.scheme), "scheme");
        assert_eq!(
            built.uri().authority(),
            Some(&base.authority),
            "the request would connect to another host than -u's"
        );
        let path = built.uri().path();
        assert!(
            path.starts_with(&base.prefix) || path == "*",
            "path {path:?} lost the -u prefix {:?}",
            base.prefix
        );
    }
}

fn put_lstr(out: &mut Vec<u8>, s: &[u8]) {
    let mut buf = BytesMut::new();
    spoa_mirror::spop::varint::encode(s.len() as u64, &mut buf);
    out.extend_from_slice(&buf);
    out.extend_from_slice(s);
}
