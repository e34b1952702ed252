//! The mirror engine driven directly: hand-built SPOE messages in, real HTTP/1.1 (and TLS)
//! servers on 127.0.0.1 recording what arrives, byte for byte ([`common::sink`]).

mod common;

use bytes::{BufMut, Bytes};
use common::sink::{Recorded, Sink, RESPONSE_BODY};
use spoa_mirror::config::{MirrorConfig, ProxyConfig, Secret};
use spoa_mirror::mirror::Mirror;
use spoa_mirror::spop::{varint, Arg, Message, TypedData};
use spoa_mirror::stats::{get, Stats};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::Offer;

// ===== the recording HTTP/1.1 server =====

/// The next request the sink received, in arrival order. The engine always frames a body with
/// Content-Length: a chunked request fails the test.
async fn next(sink: &Sink) -> Recorded {
    let r = sink.next().await;
    assert!(
        r.header("transfer-encoding").is_none(),
        "the engine must send a content-length, not chunks: {} {}",
        r.method,
        r.target
    );
    r
}

// ===== building SPOE messages by hand =====

/// `req.hdrs_bin` encoding of `headers`, terminator included.
fn hdrs_bin(headers: &[(&str, &[u8])]) -> Bytes {
    let mut out = Vec::new();
    for (n, v) in headers {
        varint::encode(n.len() as u64, &mut out);
        out.put_slice(n.as_bytes());
        varint::encode(v.len() as u64, &mut out);
        out.put_slice(v);
    }
    out.put_slice(&[0, 0]);
    Bytes::from(out)
}

fn arg(name: &'static str, value: TypedData) -> Arg {
    Arg {
        name: Bytes::from_static(name.as_bytes()),
        value,
    }
}

fn str_arg(v: &[u8]) -> TypedData {
    TypedData::String(Bytes::copy_from_slice(v))
}

/// The documented `spoe-message mirror` with hdrs_bin.
fn mirror_message(
    method: &str,
    path: &[u8],
    ver: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Message {
    Message {
        name: Bytes::from_static(b"mirror"),
        args: vec![
            arg("arg_method", str_arg(method.as_bytes())),
            arg("arg_path", str_arg(path)),
            arg("arg_ver", str_arg(ver.as_bytes())),
            arg("arg_hdrs", TypedData::Binary(hdrs_bin(headers))),
            arg("arg_body", TypedData::Binary(Bytes::copy_from_slice(body))),
        ],
    }
}

fn config(url: &str) -> MirrorConfig {
    let mut cfg = MirrorConfig::new(url.parse().unwrap());
    cfg.timeout = Duration::from_secs(5);
    cfg
}

/// Polls `cond` every 5 ms for at most `limit`.
async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn headers_of(rec: &Recorded) -> Vec<(String, Vec<u8>)> {
    rec.headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect()
}

fn owned(h: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    h.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
}

// ===== fidelity =====

struct Case {
    method: &'static str,
    target: &'static [u8],
    ver: &'static str,
    headers: Vec<(&'static str, &'static [u8])>,
    body: Vec<u8>,
    /// What the mirror must receive.
    want_target: &'static str,
    want_version: &'static str,
    want_headers: Vec<(&'static str, &'static [u8])>,
}

#[tokio::test]
async fn requests_arrive_exactly_once_and_identical() {
    let sink = Sink::start("mirror").await;
    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(
        config(&format!("http://{}/pre/", sink.addr())),
        stats.clone(),
    )
    .unwrap();

    let binary: Vec<u8> = (0..60 * 1024).map(|i| (i % 256) as u8).collect();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let long = vec![b'L'; 4096];
    let long: &'static [u8] = Box::leak(long.into_boxed_slice());
    let bin_len: &'static [u8] =
        Box::leak(binary.len().to_string().into_bytes().into_boxed_slice());
    let cases = vec![
        Case {
            method: "GET",
            target: b"/search?q=caf%C3%A9&x=1&sp=%20",
            ver: "1.1",
            headers: vec![
                ("host", b"www.example"),
                ("x-dup", b"1"),
                ("x-dup", b"2"),
                ("x-empty", b""),
                ("x-long", long),
            ],
            body: vec![],
            want_target: "/pre/search?q=caf%C3%A9&x=1&sp=%20",
            want_version: "HTTP/1.1",
            want_headers: vec![
                ("host", b"www.example"),
                ("x-dup", b"1"),
                ("x-dup", b"2"),
                ("x-empty", b""),
                ("x-long", long),
            ],
        },
        Case {
            method: "HEAD",
            target: b"/head",
            ver: "1.1",
            headers: vec![("host", b"h")],
            body: vec![],
            want_target: "/pre/head",
            want_version: "HTTP/1.1",
            want_headers: vec![("host", b"h")],
        },
        Case {
            method: "POST",
            target: b"/binary",
            ver: "1.1",
            headers: vec![
                ("host", b"h"),
                ("content-type", b"application/octet-stream"),
                ("content-length", bin_len),
            ],
            body: binary.clone(),
            want_target: "/pre/binary",
            want_version: "HTTP/1.1",
            want_headers: vec![
                ("host", b"h"),
                ("content-type", b"application/octet-stream"),
                ("content-length", bin_len),
            ],
        },
        Case {
            method: "PUT",
            target: b"/json",
            ver: "1.1",
            headers: vec![
                ("host", b"h"),
                ("content-length", b"11"),
                ("content-type", b"application/json"),
            ],
            body: br#"{"a":[1,2]}"#.to_vec(),
            want_target: "/pre/json",
            want_version: "HTTP/1.1",
            want_headers: vec![
                ("host", b"h"),
                ("content-length", b"11"),
                ("content-type", b"application/json"),
            ],
        },
        Case {
            method: "DELETE",
            target: b"/del",
            ver: "1.1",
            headers: vec![("host", b"h"), ("content-length", b"256")],
            body: all_bytes.clone(),
            want_target: "/pre/del",
            want_version: "HTTP/1.1",
            want_headers: vec![("host", b"h"), ("content-length", b"256")],
        },
        Case {
            method: "PATCH",
            target: b"/patch",
            ver: "1.1",
            headers: vec![
                ("host", b"h"),
                ("content-type", b"application/x-www-form-urlencoded"),
                ("content-length", b"7"),
            ],
            body: b"a=1&b=2".to_vec(),
            want_target: "/pre/patch",
            want_version: "HTTP/1.1",
            want_headers: vec![
                ("host", b"h"),
                ("content-type", b"application/x-www-form-urlencoded"),
                ("content-length", b"7"),
            ],
        },
        Case {
            method: "PROPFIND",
            target: b"/dav/",
            ver: "1.1",
            headers: vec![("host", b"h"), ("depth", b"1")],
            body: vec![],
            want_target: "/pre/dav/",
            want_version: "HTTP/1.1",
            want_headers: vec![("host", b"h"), ("depth", b"1")],
        },
        // HTTP/2 client through HAProxy: absolute-form naming another host, version 2.0.
        Case {
            method: "GET",
            target: b"http://169.254.169.254/latest?x=1",
            ver: "2.0",
            headers: vec![("host", b"169.254.169.254"), ("user-agent", b"curl/8")],
            body: vec![],
            want_target: "/pre/latest?x=1",
            want_version: "HTTP/1.1",
            want_headers: vec![("host", b"169.254.169.254"), ("user-agent", b"curl/8")],
        },
        // HTTP/1.0 stays 1.0; no Host is invented for it.
        Case {
            method: "GET",
            target: b"/old",
            ver: "1.0",
            headers: vec![("accept", b"*/*")],
            body: vec![],
            want_target: "/pre/old",
            want_version: "HTTP/1.0",
            want_headers: vec![("accept", b"*/*")],
        },
        // HTTP/1.1 without Host: the mirror's authority is added first.
        Case {
            method: "GET",
            target: b"/nohost",
            ver: "1.1",
            headers: vec![("accept", b"*/*")],
            body: vec![],
            want_target: "/pre/nohost",
            want_version: "HTTP/1.1",
            want_headers: vec![("host", b"MIRROR"), ("accept", b"*/*")],
        },
        // De-chunked body: transfer-encoding replaced by content-length; hop-by-hop removed.
        Case {
            method: "POST",
            target: b"/chunked",
            ver: "1.1",
            headers: vec![
                ("host", b"h"),
                ("transfer-encoding", b"chunked"),
                ("te", b"trailers"),
                ("keep-alive", b"timeout=5"),
                ("upgrade", b"h2c"),
                ("x-after", b"1"),
            ],
            body: b"hello world".to_vec(),
            want_target: "/pre/chunked",
            want_version: "HTTP/1.1",
            want_headers: vec![("host", b"h"), ("x-after", b"1"), ("content-length", b"11")],
        },
        // Lower-case method and a method-less body type: sent as is.
        Case {
            method: "get",
            target: b"/lower",
            ver: "1.1",
            headers: vec![("host", b"h")],
            body: vec![],
            want_target: "/pre/lower",
            want_version: "HTTP/1.1",
            want_headers: vec![("host", b"h")],
        },
    ];

    let started = Instant::now();
    for c in &cases {
        mirror.offer(vec![mirror_message(
            c.method, c.target, c.ver, &c.headers, &c.body,
        )]);
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "handle() must not wait for the mirror"
    );

    let mut got = Vec::new();
    for _ in &cases {
        got.push(next(&sink).await);
    }
    mirror.shutdown(Duration::from_secs(5)).await;
    sink.assert_no_more();

    let mirror_host = sink.addr().to_string();
    for c in &cases {
        let matching: Vec<_> = got
            .iter()
            .filter(|r| r.target == c.want_target && r.method == c.method)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{} {} must arrive exactly once",
            c.method,
            c.want_target
        );
        let r = matching[0];
        assert_eq!(r.version, c.want_version, "{}", c.want_target);
        let want: Vec<(&str, &[u8])> = c
            .want_headers
            .iter()
            .map(|&(n, v)| {
                if v == b"MIRROR" {
                    (n, mirror_host.as_bytes())
                } else {
                    (n, v)
                }
            })
            .collect();
        assert_eq!(headers_of(r), owned(&want), "headers of {}", c.want_target);
        assert_eq!(r.body, c.body, "body of {}", c.want_target);
    }
    assert_eq!(get(&stats.mirror().sent_total), cases.len() as u64);
    assert_eq!(get(&stats.mirror().status_2xx), cases.len() as u64);
    assert_eq!(
        get(&stats.mirror().failed_timeout),
        0,
        "HEAD must not wait for a body"
    );
    assert_eq!(get(&stats.mirror().queued_bytes), 0);
    assert_eq!(get(&stats.mirror().in_flight), 0);
    assert_eq!(get(&stats.mirror().queued), 0);
}

#[tokio::test]
async fn interleaved_duplicates_are_grouped_the_one_tolerated_difference() {
    let sink = Sink::start("mirror").await;
    let mirror = Mirror::new(
        config(&format!("http://{}", sink.addr())),
        Arc::new(Stats::default()),
    )
    .unwrap();
    let h: Vec<(&str, &[u8])> = vec![("host", b"h"), ("x-a", b"1"), ("x-b", b"2"), ("x-a", b"3")];
    mirror.offer(vec![mirror_message("GET", b"/i", "1.1", &h, b"")]);
    let r = next(&sink).await;
    // hyper's HeaderMap keeps the values of one name together, in their order.
    assert_eq!(
        headers_of(&r),
        owned(&[("host", b"h"), ("x-a", b"1"), ("x-a", b"3"), ("x-b", b"2")])
    );
}

#[tokio::test]
async fn asterisk_and_string_headers_and_aliases() {
    let sink = Sink::start("mirror").await;
    let mirror = Mirror::new(
        config(&format!("http://{}/", sink.addr())),
        Arc::new(Stats::default()),
    )
    .unwrap();
    // `args method url ver hdrs=req.hdrs body`: the alias names, headers as text.
    let msg = Message {
        name: Bytes::from_static(b"shadow"),
        args: vec![
            arg("method", str_arg(b"OPTIONS")),
            arg("url", str_arg(b"*")),
            arg("ver", str_arg(b"1.1")),
            arg("hdrs", str_arg(b"host: h\r\nx-rewritten: yes\r\n\r\n")),
            arg("body", TypedData::Binary(Bytes::new())),
        ],
    };
    mirror.offer(vec![msg]);
    let r = next(&sink).await;
    assert_eq!((r.method.as_str(), r.target.as_str()), ("OPTIONS", "*"));
    assert_eq!(
        headers_of(&r),
        owned(&[("host", b"h"), ("x-rewritten", b"yes")])
    );
}

#[tokio::test]
async fn skipped_messages_are_counted_and_still_never_sent() {
    let sink = Sink::start("mirror").await;
    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(config(&format!("http://{}", sink.addr())), stats.clone()).unwrap();
    let truncated = mirror_message(
        "POST",
        b"/t",
        "1.1",
        &[("content-length", b"100")],
        b"only part",
    );
    let bad_method = mirror_message("GE T", b"/m", "1.1", &[], b"");
    let mut bad_hdrs = mirror_message("GET", b"/h", "1.1", &[], b"");
    bad_hdrs.args[3].value = TypedData::Binary(Bytes::from_static(b"\x01a\x01b")); // no terminator
    let not_mirror = Message {
        name: Bytes::from_static(b"check-client-ip"),
        args: vec![arg("ip", TypedData::Ipv4([1, 2, 3, 4].into()))],
    };
    let good = mirror_message("GET", b"/good", "1.1", &[("host", b"h")], b"");
    mirror.offer(vec![
        truncated,
        bad_method,
        bad_hdrs,
        not_mirror.clone(),
        not_mirror,
        good,
    ]);
    let r = next(&sink).await;
    assert_eq!(r.target, "/good");
    mirror.shutdown(Duration::from_secs(5)).await;
    sink.assert_no_more();
    assert_eq!(get(&stats.mirror_skipped_truncated), 1);
    assert_eq!(get(&stats.mirror_skipped_invalid), 2);
    assert_eq!(get(&stats.mirror().queued_total), 1);
}

// ===== delivery =====

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let sink = Sink::start("mirror").await;
    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(config(&format!("http://{}", sink.addr())), stats.clone()).unwrap();
    for i in 0..5u64 {
        mirror.offer(vec![mirror_message(
            "GET",
            format!("/ka{i}").as_bytes(),
            "1.1",
            &[("host", b"h")],
            b"",
        )]);
        next(&sink).await;
        // The response is read to its end before the connection goes back to the pool.
        wait_until(Duration::from_secs(5), "request finished", || {
            get(&stats.mirror().sent_total) == i + 1
        })
        .await;
    }
    assert_eq!(sink.connections(), 1);
    assert_eq!(get(&stats.mirror().connections_total), 1);
}

/// Paused clock: the sink's 2 s answer delay and the 1 s watch below are tokio time, so the
/// watch covers exactly 1 s of the mirror being slow, without waiting for it. (The engine's
/// timeouts are tokio time too; `handle()`'s own latency is measured on the real clock.)
#[tokio::test(start_paused = true)]
async fn slow_mirror_drops_are_counted_memory_is_bounded_and_delivery_resumes() {
    let sink = Sink::start("mirror").await;
    sink.set_delay(Duration::from_millis(2000)).await;
    let body = vec![b'x'; 10_000];
    let cl: &'static [u8] = b"10000";
    let msg = |i: usize| {
        mirror_message(
            "POST",
            format!("/slow{i}").as_bytes(),
            "1.1",
            &[("host", b"h"), ("content-length", cl)],
            &body,
        )
    };

    // Queue-bound: 1 in flight, 2 queued (+1 held by the dispatcher), plenty of memory.
    let stats_q = Arc::new(Stats::default());
    let mut cfg = config(&format!("http://{}", sink.addr()));
    (cfg.concurrency, cfg.queue_size) = (1, 2);
    let mirror_q = Mirror::new(cfg, stats_q.clone()).unwrap();

    // Memory-bound: the budget holds 3 requests; queue and concurrency are large.
    let stats_m = Arc::new(Stats::default());
    let mut cfg = config(&format!("http://{}", sink.addr()));
    (cfg.concurrency, cfg.queue_size, cfg.memory_budget) = (2, 1000, 3 * 10_500);
    let budget = cfg.memory_budget as u64;
    let mirror_m = Mirror::new(cfg, stats_m.clone()).unwrap();

    let mut slowest = Duration::ZERO;
    let mut max_bytes = 0;
    for i in 0..20 {
        let t = Instant::now();
        mirror_q.offer(vec![msg(i)]);
        mirror_m.offer(vec![msg(100 + i)]);
        slowest = slowest.max(t.elapsed());
        max_bytes = max_bytes.max(get(&stats_m.mirror().queued_bytes));
        tokio::task::yield_now().await;
    }
    assert!(
        slowest < Duration::from_millis(50),
        "handle() took {slowest:?}"
    );

    let q_dropped = get(&stats_q.mirror().dropped_queue_full);
    assert!(q_dropped >= 16, "queue-full drops: {q_dropped}");
    assert_eq!(get(&stats_q.mirror().queued_total) + q_dropped, 20);
    let m_dropped = get(&stats_m.mirror().dropped_memory);
    assert!(m_dropped >= 17, "memory drops: {m_dropped}");
    assert_eq!(get(&stats_m.mirror().queued_total) + m_dropped, 20);
    assert_eq!(get(&stats_m.mirror().dropped_queue_full), 0);

    // While the mirror is slow, the held bytes never pass the budget: sampled every 10 ms of
    // the paused clock for 1 s, all before the sink's 2 s delay ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        max_bytes = max_bytes.max(get(&stats_m.mirror().queued_bytes));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        max_bytes > 0 && max_bytes <= budget,
        "held {max_bytes} of {budget}"
    );

    // The mirror recovers: everything accepted is delivered, and new requests flow again.
    sink.set_delay(Duration::ZERO).await;
    let accepted = get(&stats_q.mirror().queued_total) + get(&stats_m.mirror().queued_total);
    wait_until(Duration::from_secs(15), "queued requests delivered", || {
        get(&stats_q.mirror().sent_total) + get(&stats_m.mirror().sent_total) == accepted
    })
    .await;
    for _ in 0..accepted {
        next(&sink).await;
    }
    mirror_q.offer(vec![msg(999)]);
    assert_eq!(next(&sink).await.target, "/slow999");
    assert_eq!(get(&stats_m.mirror().queued_bytes), 0);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_counted() {
    // Refused: a port that was just released.
    let port = common::free_port();
    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(config(&format!("http://127.0.0.1:{port}")), stats.clone()).unwrap();
    for _ in 0..3 {
        mirror.offer(vec![mirror_message(
            "GET",
            b"/",
            "1.1",
            &[("host", b"h")],
            b"",
        )]);
    }
    wait_until(Duration::from_secs(5), "3 connect failures", || {
        get(&stats.mirror().failed_connect) == 3
    })
    .await;
    assert_eq!(get(&stats.mirror().sent_total), 3);

    // Timeout: the mirror answers after 2 s, the total timeout is 300 ms.
    let sink = Sink::start("mirror").await;
    sink.set_delay(Duration::from_millis(2000)).await;
    let stats = Arc::new(Stats::default());
    let mut cfg = config(&format!("http://{}", sink.addr()));
    cfg.timeout = Duration::from_millis(300);
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    mirror.offer(vec![mirror_message(
        "GET",
        b"/slow",
        "1.1",
        &[("host", b"h")],
        b"",
    )]);
    next(&sink).await;
    wait_until(Duration::from_secs(2), "timeout counted", || {
        get(&stats.mirror().failed_timeout) == 1
    })
    .await;
    assert_eq!(get(&stats.mirror().status_2xx), 0);
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_then_counts_the_rest() {
    let sink = Sink::start("mirror").await;
    sink.set_delay(Duration::from_millis(3000)).await;
    let stats = Arc::new(Stats::default());
    let mut cfg = config(&format!("http://{}", sink.addr()));
    cfg.concurrency = 1;
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    for i in 0..3 {
        mirror.offer(vec![mirror_message(
            "GET",
            format!("/s{i}").as_bytes(),
            "1.1",
            &[("host", b"h")],
            b"",
        )]);
    }
    next(&sink).await;
    let t = Instant::now();
    mirror.shutdown(Duration::from_millis(300)).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown must honour its deadline"
    );
    assert_eq!(get(&stats.mirror().dropped_shutdown), 3);
    assert_eq!(
        (
            get(&stats.mirror().in_flight),
            get(&stats.mirror().queued),
            get(&stats.mirror().queued_bytes)
        ),
        (0, 0, 0)
    );
    // Nothing is taken after shutdown.
    mirror.offer(vec![mirror_message(
        "GET",
        b"/late",
        "1.1",
        &[("host", b"h")],
        b"",
    )]);
    assert_eq!(get(&stats.mirror().dropped_shutdown), 4);
}

// ===== TLS =====

struct TlsFixture {
    acceptor: tokio_rustls::TlsAcceptor,
    ca_path: std::path::PathBuf,
}

fn tls_fixture(tag: &str) -> TlsFixture {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_der = ck.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let ca_path =
        std::env::temp_dir().join(format!("spoa-mirror-test-{}-{tag}.pem", std::process::id()));
    std::fs::write(&ca_path, ck.cert.pem()).unwrap();
    TlsFixture {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        ca_path,
    }
}

#[tokio::test]
async fn https_self_signed_is_refused_by_default_and_accepted_with_the_ca_file() {
    let fx = tls_fixture("ca");
    let sink = Sink::start_tls("mirror", fx.acceptor.clone()).await;
    let url = format!("https://{}/", sink.addr());
    let msg = || {
        mirror_message(
            "POST",
            b"/tls",
            "1.1",
            &[("host", b"h"), ("content-length", b"3")],
            b"abc",
        )
    };

    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(config(&url), stats.clone()).unwrap();
    mirror.offer(vec![msg()]);
    wait_until(Duration::from_secs(5), "verification failure", || {
        get(&stats.mirror().failed_connect) == 1
    })
    .await;
    assert_eq!(get(&stats.mirror().status_2xx), 0);

    let stats = Arc::new(Stats::default());
    let mut cfg = config(&url);
    cfg.ca_file = Some(fx.ca_path.clone());
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    mirror.offer(vec![msg()]);
    let r = next(&sink).await;
    assert_eq!(
        (r.target.as_str(), r.body.as_slice()),
        ("/tls", &b"abc"[..])
    );
    wait_until(Duration::from_secs(5), "2xx", || {
        get(&stats.mirror().status_2xx) == 1
    })
    .await;

    let stats = Arc::new(Stats::default());
    let mut cfg = config(&url);
    cfg.insecure = true;
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    mirror.offer(vec![msg()]);
    next(&sink).await;
    wait_until(Duration::from_secs(5), "2xx", || {
        get(&stats.mirror().status_2xx) == 1
    })
    .await;

    // A CA file that is not PEM is a startup error.
    let mut cfg = config(&url);
    cfg.ca_file = Some(std::path::PathBuf::from("/nonexistent/ca.pem"));
    assert!(Mirror::new(cfg, Arc::new(Stats::default())).is_err());
    let _ = std::fs::remove_file(&fx.ca_path);
}

// ===== proxy =====

/// What the test proxy saw: the request line and the headers of each request or CONNECT.
#[derive(Debug, Clone)]
struct ProxySeen {
    line: String,
    headers: Vec<(String, String)>,
}

type ProxyLog = Arc<Mutex<Vec<ProxySeen>>>;

/// A small forward proxy: absolute-form requests are passed on in origin-form, CONNECT opens
/// a tunnel. Records what it was sent.
async fn start_proxy() -> (SocketAddr, ProxyLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let (method, target, headers, used) = loop {
                    let mut chunk = [0u8; 8192];
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    let mut h = [httparse::EMPTY_HEADER; 64];
                    let mut req = httparse::Request::new(&mut h);
                    if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                        let headers: Vec<(String, String)> = req
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_ascii_lowercase(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect();
                        break (
                            req.method.unwrap().to_owned(),
                            req.path.unwrap().to_owned(),
                            headers,
                            n,
                        );
                    }
                };
                log.lock().unwrap().push(ProxySeen {
                    line: format!("{method} {target}"),
                    headers: headers.clone(),
                });
                if method == "CONNECT" {
                    let mut upstream = TcpStream::connect(&target).await.unwrap();
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
                // http://host:port/path -> connect to host:port, send /path.
                let rest = target.strip_prefix("http://").unwrap();
                let slash = rest.find('/').unwrap();
                let (authority, path) = rest.split_at(slash);
                let mut upstream = TcpStream::connect(authority).await.unwrap();
                let mut head = format!("{method} {path} HTTP/1.1\r\n");
                for (n, v) in &headers {
                    head.push_str(&format!("{n}: {v}\r\n"));
                }
                head.push_str("\r\n");
                upstream.write_all(head.as_bytes()).await.unwrap();
                upstream.write_all(&buf[used..]).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

fn proxy_config(proxy: SocketAddr, noproxy: Option<&str>) -> ProxyConfig {
    ProxyConfig {
        url: format!("http://{proxy}").parse().unwrap(),
        userpwd: Some(Secret("mirror-user:secret-pw".into())),
        headers: vec![(
            http::HeaderName::from_static("x-proxy-tag"),
            http::HeaderValue::from_static("spoa"),
        )],
        noproxy: noproxy.map(Into::into),
    }
}

fn header<'a>(seen: &'a ProxySeen, name: &str) -> Option<&'a str> {
    seen.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn proxy_sees_basic_auth_and_headers_and_noproxy_bypasses_it() {
    let (proxy, seen) = start_proxy().await;
    let want_auth = "Basic bWlycm9yLXVzZXI6c2VjcmV0LXB3"; // mirror-user:secret-pw

    // http:// mirror: forward proxy, absolute-form.
    let sink = Sink::start("mirror").await;
    let mut cfg = config(&format!("http://{}/pre", sink.addr()));
    cfg.proxy = Some(proxy_config(proxy, None));
    let mirror = Mirror::new(cfg, Arc::new(Stats::default())).unwrap();
    mirror.offer(vec![mirror_message(
        "GET",
        b"/via?x=1",
        "1.1",
        &[("host", b"orig")],
        b"",
    )]);
    let r = next(&sink).await;
    assert_eq!(r.target, "/pre/via?x=1");
    assert_eq!(r.header("host").as_deref(), Some("orig"));
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].line, format!("GET http://{}/pre/via?x=1", sink.addr()));
        assert_eq!(header(&s[0], "proxy-authorization"), Some(want_auth));
        assert_eq!(header(&s[0], "x-proxy-tag"), Some("spoa"));
    }

    // https:// mirror: CONNECT tunnel, credentials and headers on the CONNECT only.
    let fx = tls_fixture("proxy");
    let tls_sink = Sink::start_tls("mirror", fx.acceptor.clone()).await;
    let mut cfg = config(&format!("https://{}", tls_sink.addr()));
    cfg.ca_file = Some(fx.ca_path.clone());
    cfg.proxy = Some(proxy_config(proxy, None));
    let mirror = Mirror::new(cfg, Arc::new(Stats::default())).unwrap();
    mirror.offer(vec![mirror_message(
        "GET",
        b"/tunnel",
        "1.1",
        &[("host", b"orig")],
        b"",
    )]);
    let r = next(&tls_sink).await;
    assert_eq!(r.target, "/tunnel");
    assert!(r.header("proxy-authorization").is_none());
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].line, format!("CONNECT {}", tls_sink.addr()));
        assert_eq!(header(&s[1], "proxy-authorization"), Some(want_auth));
        assert_eq!(header(&s[1], "x-proxy-tag"), Some("spoa"));
    }
    let _ = std::fs::remove_file(&fx.ca_path);

    // -N matching the mirror host: straight to the mirror.
    let mut cfg = config(&format!("http://{}", sink.addr()));
    cfg.proxy = Some(proxy_config(proxy, Some("localhost, 127.0.0.0/8")));
    let mirror = Mirror::new(cfg, Arc::new(Stats::default())).unwrap();
    mirror.offer(vec![mirror_message(
        "GET",
        b"/direct",
        "1.1",
        &[("host", b"h")],
        b"",
    )]);
    let r = next(&sink).await;
    assert_eq!(r.target, "/direct");
    assert!(r.header("proxy-authorization").is_none());
    assert_eq!(seen.lock().unwrap().len(), 2, "the proxy must be bypassed");
}

// ===== log line =====

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_log_line_per_request_in_the_original_format() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .without_time()
        .finish();
    // The test runtime is single-threaded, so the engine's tasks log through this default.
    let _guard = tracing::subscriber::set_default(subscriber);

    let sink = Sink::start("mirror").await;
    let stats = Arc::new(Stats::default());
    let (proxy, _) = start_proxy().await;
    let mut cfg = config(&format!("http://{}/pre/", sink.addr()));
    cfg.proxy = Some(proxy_config(proxy, None));
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    mirror.offer(vec![mirror_message(
        "PUT",
        b"/a?b=1",
        "1.1",
        &[("host", b"h"), ("content-length", b"3")],
        b"xyz",
    )]);
    next(&sink).await;
    mirror.shutdown(Duration::from_secs(5)).await;

    let refused = common::free_port();
    let mirror = Mirror::new(
        config(&format!("http://127.0.0.1:{refused}")),
        Arc::new(Stats::default()),
    )
    .unwrap();
    mirror.offer(vec![mirror_message(
        "GET",
        b"/r",
        "1.1",
        &[("host", b"h")],
        b"",
    )]);
    mirror.shutdown(Duration::from_secs(5)).await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let ok_prefix = format!(
        "\"PUT http://{}/pre/a?b=1 HTTP/1.1\" 200 3/{} ",
        sink.addr(),
        RESPONSE_BODY.len()
    );
    let ok: Vec<_> = text.lines().filter(|l| l.contains(&ok_prefix)).collect();
    assert_eq!(ok.len(), 1, "{text}");
    assert!(ok[0].contains("spoa_mirror::mirror"), "{}", ok[0]);
    let tail = ok[0].split(&ok_prefix).nth(1).unwrap();
    let (ms, result) = tail.split_once(' ').unwrap();
    assert!(
        ms.parse::<f64>().is_ok() && ms.split('.').nth(1).map(str::len) == Some(3),
        "{tail}"
    );
    assert_eq!(result, "ok");
    let failed = format!("\"GET http://127.0.0.1:{refused}/r HTTP/???\" 0 0/0 ");
    assert_eq!(
        text.lines().filter(|l| l.contains(&failed)).count(),
        1,
        "{text}"
    );
    assert!(
        !text.contains("secret-pw") && !text.contains("bWlycm9yLXVzZXI6c2VjcmV0LXB3"),
        "{text}"
    );
}

/// Issue 11, finding 4: each counter counts exactly one thing.
/// - A request that cannot be built is skipped as invalid, never "sent".
/// - `mirror_queued_bytes` holds only what waits in the queue; `mirror_memory_bytes` holds
///   queued plus in flight (what the budget bounds).
/// - Every ended delivery is in `mirror_sent_total` and in exactly one outcome counter.
#[tokio::test]
async fn counters_count_one_thing_each() {
    let outcomes = |s: &Stats| {
        let t = s.mirror();
        [
            &t.status_1xx,
            &t.status_2xx,
            &t.status_3xx,
            &t.status_4xx,
            &t.status_5xx,
            &t.failed_connect,
            &t.failed_timeout,
            &t.failed_other,
        ]
        .iter()
        .map(|c| get(c))
        .sum::<u64>()
    };

    // A target that passes parse() but, behind a 600-byte `-u` path, makes a URI longer than
    // the http crate allows: the request cannot be built, nothing goes on the wire.
    let sink = Sink::start("mirror").await;
    let stats = Arc::new(Stats::default());
    let url = format!("http://{}/{}", sink.addr(), "p".repeat(600));
    let mirror = Mirror::new(config(&url), stats.clone()).unwrap();
    let long_target = format!("/{}", "t".repeat(65_000));
    mirror.offer(vec![mirror_message(
        "GET",
        long_target.as_bytes(),
        "1.1",
        &[("host", b"h")],
        b"",
    )]);
    wait_until(Duration::from_secs(5), "the build failure counted", || {
        get(&stats.mirror_skipped_invalid) == 1
    })
    .await;
    mirror.shutdown(Duration::from_secs(5)).await;
    assert_eq!(get(&stats.mirror().sent_total), 0, "nothing was sent");
    assert_eq!(get(&stats.mirror().failed_other), 0);
    assert_eq!(get(&stats.mirror().memory_bytes), 0);
    sink.assert_no_more();

    // One request in flight to a slow mirror, one waiting behind it (concurrency 1).
    let sink = Sink::start("mirror").await;
    sink.set_delay(Duration::from_millis(300)).await;
    let stats = Arc::new(Stats::default());
    let mut cfg = config(&format!("http://{}", sink.addr()));
    cfg.concurrency = 1;
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    let body = vec![b'x'; 1000];
    let req = |path: &'static [u8]| {
        mirror_message("POST", path, "1.1", &[("host", b"h")], body.as_slice())
    };
    mirror.offer(vec![req(b"/first")]);
    next(&sink).await;
    // The first is on the wire: it holds memory but is not queued.
    assert_eq!(get(&stats.mirror().in_flight), 1);
    assert_eq!(get(&stats.mirror().queued), 0);
    assert_eq!(
        get(&stats.mirror().queued_bytes),
        0,
        "in flight is not queued"
    );
    let one = get(&stats.mirror().memory_bytes);
    assert!(one >= 1000, "memory held by the in-flight request: {one}");
    mirror.offer(vec![req(b"/again")]);
    assert_eq!(get(&stats.mirror().queued), 1);
    assert_eq!(get(&stats.mirror().queued_bytes), one);
    assert_eq!(get(&stats.mirror().memory_bytes), 2 * one);
    next(&sink).await;
    wait_until(Duration::from_secs(5), "both delivered", || {
        get(&stats.mirror().sent_total) == 2
    })
    .await;
    assert_eq!(get(&stats.mirror().status_2xx), 2);
    assert_eq!(outcomes(&stats), 2);
    assert_eq!(get(&stats.mirror().memory_bytes), 0);
    assert_eq!(get(&stats.mirror().queued_bytes), 0);

    // A failure of each kind: each ended delivery is counted once, in one outcome.
    let port = common::free_port();
    // One engine, two targets, one message: each target ends it its own way.
    let stats = Arc::new(Stats::default());
    let mut slow = config(&format!("http://{}", sink.addr()));
    slow.timeout = Duration::from_millis(100);
    let targets = vec![
        (
            "refused".to_owned(),
            config(&format!("http://127.0.0.1:{port}")),
        ),
        ("slow".to_owned(), slow),
    ];
    let targets = targets
        .into_iter()
        .map(|(name, mirror)| spoa_mirror::config::TargetConfig {
            name,
            mirror,
            policy: Default::default(),
        })
        .collect();
    let mirror = Mirror::with_targets(targets, stats.clone()).unwrap();
    mirror.offer(vec![req(b"/failing")]);
    let targets = stats.targets();
    wait_until(Duration::from_secs(5), "both failures", || {
        targets.iter().all(|t| get(&t.sent_total) == 1)
    })
    .await;
    let (refused, slow) = (&targets[0], &targets[1]);
    assert_eq!(
        (refused.name.as_str(), slow.name.as_str()),
        ("refused", "slow")
    );
    assert_eq!(get(&refused.failed_connect), 1);
    assert_eq!(get(&slow.failed_timeout), 1);
    assert_eq!(get(&refused.failed_timeout) + get(&slow.failed_connect), 0);
    // `outcomes` reads the first target only: one outcome for its one delivery.
    assert_eq!(outcomes(&stats), 1);
}
