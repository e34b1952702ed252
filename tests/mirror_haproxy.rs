//! End-to-end fidelity through a real HAProxy (2.6 and 2.8 always, 3.x with env `HAPROXY3`):
//! ~50 varied client requests (HTTP/1.0, HTTP/1.1, HTTP/2) go through HAProxy's SPOE filter to
//! the agent and on to a recording mirror. Two variants: the in-process agent (`listener::serve`
//! with the mirror engine) and the real `spoa-mirror` binary started with `-u URL`.
//! Each must arrive at the mirror exactly once, with the method, target, headers (order and
//! duplicates) and body the primary server got from HAProxy, while the client gets the
//! primary's answer.
//!
//! Compared against the primary's copy (HAProxy's view of the request), except that
//! hop-by-hop headers are not compared (the engine strips them, as a proxy does) and a chunked
//! upload reaches the mirror with a Content-Length instead.

mod common;

use common::agent::AgentProcess;
use common::client::{self, HttpConn};
use common::haproxy::{Haproxy, HaproxyBin, MirrorSetup};
use common::sink::{Recorded, Sink, RESPONSE_BODY};
use spoa_mirror::config::{ListenConfig, MirrorConfig, SpopConfig};
use spoa_mirror::listener;
use spoa_mirror::mirror::Mirror;
use spoa_mirror::stats::{get, Stats};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SETTLE: Duration = Duration::from_secs(20);

/// One client request. `raw` is sent as is over HTTP/1.x; `h2` requests go through curl.
struct Req {
    id: usize,
    kind: Kind,
    /// The target the mirror must receive.
    want_target: String,
    body: Vec<u8>,
}

enum Kind {
    /// Exact request bytes (HTTP/1.1 keep-alive connection).
    Raw(Vec<u8>),
    /// Exact request bytes on a connection of its own (HTTP/1.0, the server closes).
    Raw10(Vec<u8>),
    /// `curl --http2-prior-knowledge` with these arguments and this path.
    H2(Vec<String>, String),
}

fn raw(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8], id: usize) -> Vec<u8> {
    let mut h: Vec<(&str, &str)> = headers.to_vec();
    let id_s = id.to_string();
    h.push(("X-Req", &id_s));
    client::build_request(method, target, "www.example.test", &h, body)
}

fn requests() -> Vec<Req> {
    let mut out = Vec::new();
    let add = |out: &mut Vec<Req>, kind_of: &dyn Fn(usize) -> Kind, want: &str, body: &[u8]| {
        let id = out.len();
        out.push(Req {
            id,
            kind: kind_of(id),
            want_target: want.to_string(),
            body: body.to_vec(),
        });
    };
    let bin256: Vec<u8> = (0..=255u8).collect();
    let bin3k: Vec<u8> = (0..3000).map(|i| (i % 256) as u8).collect();
    let bin60k: Vec<u8> = (0..60 * 1024).map(|i| (i % 251) as u8).collect();
    let long_value = "v".repeat(4096);

    // GETs with varied targets.
    for t in [
        "/get/plain",
        "/get/q?a=1&b=caf%C3%A9&c=%20%2F%3F",
        "/get/empty?x=&y",
        "/%7Euser/p;param=1?q=a+b",
        "/get/dots/../x/./y",
        "/get/utf8?q=caf\u{e9}&j=\u{65e5}\u{672c}",
        "/get/",
        "/caf%C3%A9/%E6%97%A5?z=%00%FF",
        "/get/sub-delims/,:@!$&'()*+=",
        "/get/q?redirect=http%3A%2F%2Fexample.com%2F&n=-1",
    ] {
        add(
            &mut out,
            &|id| Kind::Raw(raw("GET", t, &[("Accept", "*/*")], b"", id)),
            t,
            b"",
        );
    }
    let long_target = format!("/get/long?{}", "k=v&".repeat(500));
    add(
        &mut out,
        &|id| Kind::Raw(raw("GET", &long_target, &[], b"", id)),
        &long_target,
        b"",
    );
    // Repeated headers, an empty value, a 4 KiB value, many headers.
    add(
        &mut out,
        &|id| {
            Kind::Raw(raw(
                "GET",
                "/hdr/dup",
                &[
                    ("X-Dup", "1"),
                    ("X-Dup", "2"),
                    ("X-Dup", "3"),
                    ("X-Empty", ""),
                    ("X-Long", &long_value),
                ],
                b"",
                id,
            ))
        },
        "/hdr/dup",
        b"",
    );
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("X-H{i:02}"), format!("value {i}")))
        .collect();
    let many_ref: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    add(
        &mut out,
        &|id| Kind::Raw(raw("GET", "/hdr/many", &many_ref, b"", id)),
        "/hdr/many",
        b"",
    );
    add(
        &mut out,
        &|id| {
            Kind::Raw(raw(
                "GET",
                "/hdr/cookie",
                &[
                    ("Cookie", "a=1; b=2"),
                    ("User-Agent", "fidelity/1.0"),
                    ("Accept-Language", "fr, en;q=0.5"),
                ],
                b"",
                id,
            ))
        },
        "/hdr/cookie",
        b"",
    );
    add(
        &mut out,
        &|id| {
            Kind::Raw(raw(
                "GET",
                "/hdr/auth",
                &[
                    ("Authorization", "Bearer abc.def"),
                    ("X-Forwarded-For", "10.0.0.1"),
                ],
                b"",
                id,
            ))
        },
        "/hdr/auth",
        b"",
    );
    // HEAD, OPTIONS.
    for t in ["/head/1", "/head/2?x=1"] {
        add(
            &mut out,
            &|id| Kind::Raw(raw("HEAD", t, &[], b"", id)),
            t,
            b"",
        );
    }
    add(
        &mut out,
        &|id| Kind::Raw(raw("OPTIONS", "/opt", &[], b"", id)),
        "/opt",
        b"",
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("OPTIONS", "*", &[], b"", id)),
        "*",
        b"",
    );
    // Bodies: DELETE, PATCH, POST, PUT.
    let json = br#"{"name":"caf\u00e9","list":[1,2,3],"nested":{"k":"v"}}"#;
    let ct_json = [("Content-Type", "application/json")];
    let ct_form = [("Content-Type", "application/x-www-form-urlencoded")];
    let ct_bin = [("Content-Type", "application/octet-stream")];
    add(
        &mut out,
        &|id| Kind::Raw(raw("DELETE", "/del/1", &ct_json, json, id)),
        "/del/1",
        json,
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("DELETE", "/del/2", &ct_bin, &bin256, id)),
        "/del/2",
        &bin256,
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("DELETE", "/del/3", &[], b"", id)),
        "/del/3",
        b"",
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("PATCH", "/patch/1", &ct_json, json, id)),
        "/patch/1",
        json,
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("PATCH", "/patch/2", &ct_form, b"a=1&b=%20", id)),
        "/patch/2",
        b"a=1&b=%20",
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("PATCH", "/patch/3", &ct_bin, &bin3k, id)),
        "/patch/3",
        &bin3k,
    );
    for i in 0..3 {
        let t = format!("/post/json{i}");
        add(
            &mut out,
            &|id| Kind::Raw(raw("POST", &t, &ct_json, json, id)),
            &t,
            json,
        );
    }
    for i in 0..3 {
        let t = format!("/post/form{i}?src=x");
        let body = format!("field={i}&other=caf%C3%A9");
        add(
            &mut out,
            &|id| Kind::Raw(raw("POST", &t, &ct_form, body.as_bytes(), id)),
            &t,
            body.as_bytes(),
        );
    }
    add(
        &mut out,
        &|id| Kind::Raw(raw("POST", "/post/bin256", &ct_bin, &bin256, id)),
        "/post/bin256",
        &bin256,
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("POST", "/post/bin3k", &ct_bin, &bin3k, id)),
        "/post/bin3k",
        &bin3k,
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("POST", "/post/bin60k", &ct_bin, &bin60k, id)),
        "/post/bin60k",
        &bin60k,
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("POST", "/post/empty", &[], b"", id)),
        "/post/empty",
        b"",
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("PUT", "/put/json", &ct_json, json, id)),
        "/put/json",
        json,
    );
    add(
        &mut out,
        &|id| Kind::Raw(raw("PUT", "/put/bin60k", &ct_bin, &bin60k, id)),
        "/put/bin60k",
        &bin60k,
    );
    add(
        &mut out,
        &|id| {
            Kind::Raw(raw(
                "PUT",
                "/put/text",
                &[("Content-Type", "text/plain; charset=utf-8")],
                "héllo".as_bytes(),
                id,
            ))
        },
        "/put/text",
        "héllo".as_bytes(),
    );
    // A chunked upload: HAProxy hands over the de-chunked body.
    add(
        &mut out,
        &|id| {
            let mut r = format!(
                "POST /post/chunked HTTP/1.1\r\nHost: www.example.test\r\nTransfer-Encoding: chunked\r\nX-Req: {id}\r\n\r\n"
            )
            .into_bytes();
            r.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
            Kind::Raw(r)
        },
        "/post/chunked",
        b"hello world",
    );
    // Methods the original did not know.
    for m in ["PROPFIND", "MKCOL", "PURGE", "REPORT"] {
        let t = format!("/custom/{}", m.to_lowercase());
        add(&mut out, &|id| Kind::Raw(raw(m, &t, &[], b"", id)), &t, b"");
    }
    // Absolute-form naming another host: still delivered to the mirror only.
    add(
        &mut out,
        &|id| {
            Kind::Raw(
                format!("GET http://169.254.169.254/latest/meta-data?x=1 HTTP/1.1\r\nHost: 169.254.169.254\r\nX-Req: {id}\r\n\r\n")
                    .into_bytes(),
            )
        },
        "/latest/meta-data?x=1",
        b"",
    );
    // HTTP/1.0.
    add(
        &mut out,
        &|id| {
            Kind::Raw10(
                format!(
                    "GET /v10/page?a=1 HTTP/1.0\r\nHost: www.example.test\r\nX-Req: {id}\r\n\r\n"
                )
                .into_bytes(),
            )
        },
        "/v10/page?a=1",
        b"",
    );
    // HTTP/2 clients (HAProxy hands over an absolute-form `url` and version 2.0).
    let h2 = |args: &[&str], path: &str| -> Box<dyn Fn(usize) -> Kind> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let path = path.to_string();
        Box::new(move |id| {
            let mut a = args.clone();
            a.extend(["-H".to_string(), format!("X-Req: {id}")]);
            Kind::H2(a, path.clone())
        })
    };
    add(
        &mut out,
        &*h2(&["-H", "X-Custom: h2 test"], "/h2/get?x=1&y=caf%C3%A9"),
        "/h2/get?x=1&y=caf%C3%A9",
        b"",
    );
    add(&mut out, &*h2(&["-I"], "/h2/head"), "/h2/head", b"");
    add(
        &mut out,
        &*h2(
            &[
                "--data-binary",
                "h2-body-bytes",
                "-H",
                "Content-Type: text/plain",
            ],
            "/h2/post",
        ),
        "/h2/post",
        b"h2-body-bytes",
    );
    add(
        &mut out,
        &*h2(&["-X", "DELETE", "--data-binary", "gone"], "/h2/delete"),
        "/h2/delete",
        b"gone",
    );
    add(
        &mut out,
        &*h2(&["-X", "PATCH", "--data-binary", "{\"p\":1}"], "/h2/patch"),
        "/h2/patch",
        b"{\"p\":1}",
    );
    out
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers with lower-case names, hop-by-hop removed (and Content-Length, for a chunked
/// upload whose framing legitimately differs).
fn comparable(r: &Recorded, drop_length: bool) -> Vec<(String, Vec<u8>)> {
    r.headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| {
            !HOP_BY_HOP.contains(&n.as_str()) && (!drop_length || n != "content-length")
        })
        .collect()
}

/// The agent under test: in this process (its `Stats` read directly) or the real binary
/// (counters scraped from its Prometheus endpoint).
enum AgentUnderTest {
    InProcess(Arc<Stats>),
    Binary(AgentProcess),
}

impl AgentUnderTest {
    /// A counter by its `Stats` field name.
    async fn counter(&self, field: &str) -> u64 {
        match self {
            AgentUnderTest::InProcess(stats) => {
                let target = stats.mirror();
                let c = match field {
                    "mirror_sent_total" => &target.sent_total,
                    "mirror_in_flight" => &target.in_flight,
                    "mirror_skipped_invalid" => &stats.mirror_skipped_invalid,
                    "mirror_skipped_truncated" => &stats.mirror_skipped_truncated,
                    "mirror_status_2xx" => &target.status_2xx,
                    "mirror_status_3xx" => &target.status_3xx,
                    "mirror_status_4xx" => &target.status_4xx,
                    "mirror_status_5xx" => &target.status_5xx,
                    "mirror_failed_connect" => &target.failed_connect,
                    "mirror_failed_timeout" => &target.failed_timeout,
                    "mirror_failed_other" => &target.failed_other,
                    other => panic!("counter {other} not wired in this test"),
                };
                get(c)
            }
            AgentUnderTest::Binary(agent) => agent.metric(field).await as u64,
        }
    }
}

/// HAProxy -> in-process agent (`listener::serve` + `Mirror`) -> mirror.
async fn fidelity(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let mirror_sink = Sink::start("mirror").await;

    let stats = Arc::new(Stats::default());
    let mut cfg = MirrorConfig::new(mirror_sink.url().parse().unwrap());
    cfg.timeout = Duration::from_secs(10);
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    let listen = ListenConfig {
        address: "127.0.0.1".into(),
        port: 0,
        backlog: 64,
    };
    let spop_listener = listener::bind(&listen).unwrap();
    let agent_addr = spop_listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(listener::serve(
        spop_listener,
        SpopConfig::default(),
        Arc::new(mirror.clone()),
        stats.clone(),
        shutdown.clone(),
    ));

    let agent = AgentUnderTest::InProcess(stats);
    check_fidelity(&bin, agent_addr, &agent, &primary, &mirror_sink).await;

    shutdown.cancel();
    let _ = tokio::time::timeout(SETTLE, served).await;
    mirror.shutdown(Duration::from_secs(5)).await;
}

/// HAProxy -> the real `spoa-mirror` binary (`-u URL`) -> mirror: the same requests and
/// checks, through the command line, the daemon wiring and the metrics endpoint.
async fn fidelity_binary(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let mirror_sink = Sink::start("mirror").await;
    let agent = AgentProcess::builder()
        .mirror(&mirror_sink.url())
        .args(["--mirror-timeout", "10s"])
        .start()
        .await;
    let addr = agent.addr();
    let agent = AgentUnderTest::Binary(agent);
    check_fidelity(&bin, addr, &agent, &primary, &mirror_sink).await;
}

/// Sends every request of [`requests`] through HAProxy (whose SPOE agent listens at
/// `agent_addr`) and checks that each reached the mirror once, identical to the primary's copy.
async fn check_fidelity(
    bin: &HaproxyBin,
    agent_addr: std::net::SocketAddr,
    agent: &AgentUnderTest,
    primary: &Sink,
    mirror_sink: &Sink,
) {
    let mut setup = MirrorSetup::new(bin, primary.addr(), agent_addr).with_h2();
    // Room for the 60 KiB bodies in one buffer, hence in one NOTIFY.
    setup.global_extra.push("tune.bufsize 131072".into());
    // Lets raw (UTF-8) non-ASCII bytes through in the query, as sites that need them do.
    setup
        .frontend_extra
        .push("option accept-invalid-http-request".into());
    let hap = Haproxy::start(bin, &setup).await;

    let reqs = requests();
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    for r in &reqs {
        let (status, body, from) = match &r.kind {
            Kind::Raw(bytes) => {
                let method = std::str::from_utf8(bytes)
                    .unwrap_or("")
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let resp = conn
                    .send_raw(&method, bytes)
                    .await
                    .unwrap_or_else(|e| panic!("request {}: {e}", r.id));
                (resp.status, resp.body.clone(), resp.header("x-sink"))
            }
            Kind::Raw10(bytes) => {
                let mut c = HttpConn::connect(hap.addr()).await.unwrap();
                let resp = c
                    .send_raw("GET", bytes)
                    .await
                    .unwrap_or_else(|e| panic!("request {}: {e}", r.id));
                (resp.status, resp.body.clone(), resp.header("x-sink"))
            }
            Kind::H2(args, path) => {
                let url = format!("http://{}{path}", hap.h2_addr());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let res = client::curl_h2(&url, &args).await;
                assert_eq!(res.http_version, "2", "request {}: {}", r.id, res.stderr);
                (res.status, res.body.clone(), Some("primary".to_string()))
            }
        };
        assert_eq!(
            status, 200,
            "HAProxy {}: request {} ({}) got {status}",
            bin.label, r.id, r.want_target
        );
        assert_eq!(from.as_deref(), Some("primary"), "request {}", r.id);
        let is_head = matches!(&r.kind, Kind::Raw(b) if b.starts_with(b"HEAD"))
            || r.want_target == "/h2/head";
        if !is_head {
            assert_eq!(body, RESPONSE_BODY, "request {}", r.id);
        }
    }

    let n = reqs.len();
    let primary_seen = primary.wait_for(n, SETTLE).await;
    let mirrored = mirror_sink.wait_for(n, SETTLE).await;
    // Exactly once: every accepted request finished (nothing queued or in flight), and the
    // mirror still holds exactly n.
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let (sent, in_flight) = (
            agent.counter("mirror_sent_total").await,
            agent.counter("mirror_in_flight").await,
        );
        if sent == n as u64 && in_flight == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sent {sent} of {n}, {in_flight} in flight"
        );
        tokio::time::sleep(common::POLL_INTERVAL).await;
    }
    assert_eq!(
        mirror_sink.count(),
        n,
        "the mirror got more requests than were sent"
    );
    assert_eq!(agent.counter("mirror_skipped_invalid").await, 0);
    assert_eq!(agent.counter("mirror_skipped_truncated").await, 0);
    // mirror_sent_total is bumped after the outcome counter, so every outcome is in by now.
    let mut outcomes = Vec::new();
    for name in [
        "mirror_status_2xx",
        "mirror_status_3xx",
        "mirror_status_4xx",
        "mirror_status_5xx",
        "mirror_failed_connect",
        "mirror_failed_timeout",
        "mirror_failed_other",
    ] {
        outcomes.push((name, agent.counter(name).await));
    }
    assert_eq!(
        outcomes.first().map(|o| o.1),
        Some(n as u64),
        "every mirror request answered 2xx: {outcomes:?}"
    );

    let by_id = |set: &[Recorded], id: usize| -> Vec<Recorded> {
        set.iter()
            .filter(|x| x.header("x-req").as_deref() == Some(id.to_string().as_str()))
            .cloned()
            .collect()
    };
    for r in &reqs {
        let m = by_id(&mirrored, r.id);
        assert_eq!(
            m.len(),
            1,
            "HAProxy {}: request {} ({}) reached the mirror {} times",
            bin.label,
            r.id,
            r.want_target,
            m.len()
        );
        let p = by_id(&primary_seen, r.id);
        assert_eq!(p.len(), 1, "request {} at the primary", r.id);
        let (m, p) = (&m[0], &p[0]);
        let what = format!(
            "HAProxy {}: request {} ({})",
            bin.label, r.id, r.want_target
        );
        assert_eq!(m.method, p.method, "{what}: method");
        assert_eq!(m.target, r.want_target, "{what}: target");
        let want_version = if matches!(r.kind, Kind::Raw10(_)) {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(m.version, want_version, "{what}: version");
        let chunked = p.header("transfer-encoding").is_some();
        assert_eq!(
            comparable(m, chunked),
            comparable(p, chunked),
            "{what}: headers"
        );
        assert_eq!(m.body, r.body, "{what}: body at the mirror");
        assert_eq!(p.body, r.body, "{what}: body at the primary");
        if chunked {
            assert_eq!(
                m.header("content-length"),
                Some(r.body.len().to_string()),
                "{what}"
            );
        }
    }

    eprintln!(
        "HAProxy {}: {n} requests mirrored once each, identical",
        bin.label
    );
    drop(hap);
}

per_haproxy!(fidelity);
per_haproxy!(fidelity_binary);

/// The recording sink answers HEAD with headers only. It used to send the body too, which a
/// keep-alive client (HAProxy as the primary's client, the agent as the mirror's) reads as the
/// start of the next response: HAProxy answered the next request 502, the agent counted a
/// failure (issue 11, finding 6). Two HEADs and a GET on one connection must all parse.
#[tokio::test]
async fn sink_answers_head_without_a_body() {
    let sink = Sink::start("primary").await;
    let mut conn = HttpConn::connect(sink.addr()).await.unwrap();
    for (method, target) in [("HEAD", "/a"), ("HEAD", "/b"), ("GET", "/c")] {
        let raw = format!("{method} {target} HTTP/1.1\r\nhost: s\r\n\r\n");
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            conn.send_raw(method, raw.as_bytes()),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {target}: no answer"))
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert_eq!(resp.status, 200, "{method} {target}");
        let want: &[u8] = if method == "HEAD" { b"" } else { RESPONSE_BODY };
        assert_eq!(resp.body, want, "{method} {target}");
    }
}
