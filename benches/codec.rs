//! Micro-benchmarks of the hot path: decode a NOTIFY, encode an ACK, parse `hdrs_bin`, turn a
//! message into a `MirrorRequest` and that into the `http::Request` hyper sends.
//!
//! Run with `cargo bench --bench codec`. Besides criterion's timings, the bench prints the heap
//! allocations each operation makes, counted by a wrapping global allocator.

mod support;
use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, Criterion};
use spoa_mirror::config::{HostPolicy, PolicyConfig, Rules, SampleKey, Sampling};
use spoa_mirror::mirror::{self, Base, Notes};
use spoa_mirror::spop::{
    Arg, Frame, FrameDecoder, FrameHeader, FrameType, Message, Payload, TypedData,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use support::hdrs_bin;

/// Counts allocations so the bench can report allocations per operation.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// hdrs_bin for a browser-like GET with 12 headers.
pub fn browser_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("host", "www.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://www.example.com/search?q=mirror"),
        (
            "cookie",
            "session=4f9a8c2e1b7d6a5f; theme=dark; consent=yes",
        ),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("priority", "u=0, i"),
    ]
}

fn string(s: &'static str) -> TypedData {
    TypedData::String(Bytes::from_static(s.as_bytes()))
}

fn arg(name: &'static str, value: TypedData) -> Arg {
    Arg {
        name: Bytes::from_static(name.as_bytes()),
        value,
    }
}

/// A whole NOTIFY frame (prefix included) with the documented `mirror` message.
pub fn notify_frame(
    method: &'static str,
    path: &'static str,
    headers: Bytes,
    body: Bytes,
) -> Bytes {
    let message = Message {
        name: Bytes::from_static(b"mirror"),
        args: vec![
            arg("arg_method", string(method)),
            arg("arg_path", string(path)),
            arg("arg_ver", string("1.1")),
            arg("arg_hdrs", TypedData::Binary(headers)),
            arg("arg_body", TypedData::Binary(body)),
        ],
    };
    let frame = Frame {
        header: FrameHeader::fin(FrameType::Notify, 1001, 1),
        payload: Payload::Messages(vec![message]),
    };
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    buf.freeze()
}

fn allocations_per_op(mut op: impl FnMut()) -> f64 {
    const N: u64 = 10_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..N {
        op();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64
}

fn bench_codec(c: &mut Criterion) {
    let get = notify_frame(
        "GET",
        "/search?q=mirror&page=2",
        hdrs_bin(&browser_headers()),
        Bytes::new(),
    );
    let mut post_headers = browser_headers();
    post_headers.truncate(6);
    post_headers.push(("content-type", "application/json"));
    post_headers.push(("content-length", "4096"));
    let post = notify_frame(
        "POST",
        "/api/v1/orders",
        hdrs_bin(&post_headers),
        Bytes::from(vec![b'x'; 4096]),
    );
    let decoder = FrameDecoder::new(1 << 20);

    let decode = |frame: &Bytes| {
        let mut buf = BytesMut::from(&frame[..]);
        let f = decoder
            .decode(&mut buf)
            .ok()
            .flatten()
            .expect("whole frame");
        black_box(Frame::decode(f).expect("valid NOTIFY"))
    };
    // Decoding alone, from a frame already cut out of the read buffer (what the connection does).
    let (get_frame, post_frame) = {
        let mut a = BytesMut::from(&get[..]);
        let mut b = BytesMut::from(&post[..]);
        (
            decoder.decode(&mut a).unwrap().unwrap(),
            decoder.decode(&mut b).unwrap().unwrap(),
        )
    };
    c.bench_function("decode NOTIFY GET 12 headers", |b| {
        b.iter(|| black_box(Frame::decode(black_box(get_frame.clone())).unwrap()))
    });
    c.bench_function("decode NOTIFY POST 4 KiB body", |b| {
        b.iter(|| black_box(Frame::decode(black_box(post_frame.clone())).unwrap()))
    });
    let mut wbuf = BytesMut::with_capacity(4096);
    c.bench_function("encode ACK", |b| {
        b.iter(|| {
            wbuf.clear();
            Frame {
                header: FrameHeader::fin(FrameType::Ack, black_box(1001), 1),
                payload: Payload::Actions(Vec::new()),
            }
            .encode(&mut wbuf);
            black_box(&wbuf);
        })
    });

    // The mirror engine's pure steps, on the decoded GET / POST messages.
    let message_of = |frame: &Bytes| match Frame::decode(frame.clone()).unwrap().payload {
        Payload::Messages(mut m) => m.remove(0),
        _ => unreachable!("a NOTIFY"),
    };
    let get_msg = message_of(&get_frame);
    let post_msg = message_of(&post_frame);
    let get_hdrs = hdrs_bin(&browser_headers());
    let base = Base::from_uri(&"http://127.0.0.1:8100/".parse().unwrap()).unwrap();
    let parse = |m: &Message| mirror::parse(m, &mut Notes::default()).unwrap();
    let get_req = parse(&get_msg);
    let post_req = parse(&post_msg);
    c.bench_function("parse hdrs_bin 12 headers", |b| {
        b.iter(|| black_box(mirror::parse_hdrs_bin(black_box(&get_hdrs)).unwrap()))
    });
    c.bench_function("mirror::parse GET 12 headers", |b| {
        b.iter(|| black_box(parse(black_box(&get_msg))))
    });
    c.bench_function("mirror::parse POST 4 KiB body", |b| {
        b.iter(|| black_box(parse(black_box(&post_msg))))
    });
    c.bench_function("build http::Request GET", |b| {
        b.iter(|| black_box(mirror::build_request(black_box(&get_req), &base, &[]).unwrap()))
    });
    c.bench_function("build http::Request POST", |b| {
        b.iter(|| black_box(mirror::build_request(black_box(&post_req), &base, &[]).unwrap()))
    });
    // Per-target policy: none, and a rule set (sticky sample by cookie, redaction of
    // Authorization and Cookie, Host set to the target, X-Forwarded-For).
    let authority: http::uri::Authority = "staging:8080".parse().unwrap();
    let shared = std::sync::Arc::new(get_req.clone());
    let no_policy = mirror::PolicyBench::new(PolicyConfig::default(), authority.clone());
    let rules = Rules {
        redact_headers: vec![http::header::AUTHORIZATION, http::header::COOKIE],
        host: HostPolicy::Target,
        x_forwarded_for: true,
        ..Rules::default()
    };
    let with_rules = mirror::PolicyBench::new(
        PolicyConfig {
            sample: Some(Sampling {
                percent: 100.0,
                by: SampleKey::Cookie("session".into()),
            }),
            rules: Some(rules),
            ..PolicyConfig::default()
        },
        authority,
    );
    assert!(no_policy.decide(&shared) && with_rules.decide(&shared));
    c.bench_function("policy: none", |b| {
        b.iter(|| black_box(no_policy.decide(black_box(&shared))))
    });
    c.bench_function("policy: sticky sample + redaction + host + xff", |b| {
        b.iter(|| black_box(with_rules.decide(black_box(&shared))))
    });
    println!(
        "allocations per op: policy none {:.1}, policy with rules {:.1}",
        allocations_per_op(|| {
            black_box(no_policy.decide(&shared));
        }),
        allocations_per_op(|| {
            black_box(with_rules.decide(&shared));
        }),
    );

    println!(
        "allocations per op: parse hdrs_bin {:.1}, mirror::parse GET {:.1}, mirror::parse POST {:.1}, build GET {:.1}, build POST {:.1}",
        allocations_per_op(|| {
            black_box(mirror::parse_hdrs_bin(&get_hdrs).unwrap());
        }),
        allocations_per_op(|| {
            black_box(parse(&get_msg));
        }),
        allocations_per_op(|| {
            black_box(parse(&post_msg));
        }),
        allocations_per_op(|| {
            black_box(mirror::build_request(&get_req, &base, &[]).unwrap());
        }),
        allocations_per_op(|| {
            black_box(mirror::build_request(&post_req, &base, &[]).unwrap());
        }),
    );

    println!(
        "allocations per op: decode GET {:.1}, decode POST {:.1}, cut+decode GET {:.1}, encode ACK {:.1}",
        allocations_per_op(|| {
            black_box(Frame::decode(get_frame.clone()).unwrap());
        }),
        allocations_per_op(|| {
            black_box(Frame::decode(post_frame.clone()).unwrap());
        }),
        allocations_per_op(|| {
            decode(&get);
        }),
        allocations_per_op(|| {
            wbuf.clear();
            Frame { header: FrameHeader::fin(FrameType::Ack, 1001, 1), payload: Payload::Actions(Vec::new()) }.encode(&mut wbuf);
        }),
    );
}

/// The per-request log line (`"METHOD URL HTTP/1.1" status up/down ms result`), formatted by
/// the same tracing-subscriber fmt layer the agent installs (timestamp, level, target), into a
/// writer that discards: what one line costs the delivering task, the hand-off to the
/// background writer aside (a mutex and a copy, see src/logging).
fn bench_log_line(c: &mut Criterion) {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_ansi(false)
        .finish();
    let url = "http://127.0.0.1:8080/bench?x=1";
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("log line: one mirrored request", |b| {
            b.iter(|| {
                tracing::info!(
                    target: "spoa_mirror::mirror",
                    "\"{} {} {}\" {} {}/{} {:.3} {}{}",
                    black_box("GET"),
                    black_box(url),
                    "HTTP/1.1",
                    black_box(200u16),
                    black_box(0usize),
                    black_box(2u64),
                    black_box(0.412f64),
                    "ok",
                    "",
                )
            })
        });
    });
}

criterion_group!(benches, bench_codec, bench_log_line);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
