//! Replays every real HAProxy 2.6 / 2.8 / 3.2 conversation under `tests/data/captures/` against
//! the in-process agent and compares its answers with what the C spoa-mirror answered.
//!
//! For each capture the agent is configured like the capture's agent command (`-m` left at the
//! original's default 16384, so the negotiated 16380 and hence the AGENT-HELLO bytes can match;
//! `-c pipelining -c async` for `concurrent`). The lines are then played in the order the relay
//! saw them, across all connections: a `>` frame is sent on its connection, a `<` frame means
//! "the agent answered here" and one frame is read there; `close >` half-closes our side;
//! every connection with a close line must end in EOF once its frames are through.
//!
//! Verdict on the C agent: every AGENT-HELLO, ACK and AGENT-DISCONNECT it sent in these
//! captures is protocol-correct (version 2.0, mfs = min(16384, 16380), capabilities = the
//! intersection, with async only when HAProxy sent an engine-id; empty ACKs with the NOTIFY's
//! ids; AGENT-DISCONNECT 0 "normal" in answer to HAPROXY-DISCONNECT 0 and 2), so the agent
//! under test must reproduce them byte for byte. With pipelining the ACK order is a matter of
//! timing, so those connections are compared as multisets; all others in order.
//!
//! The NOTIFY messages the handler received are checked twice: against the reference
//! decoder's summary line of each frame (argument names, types, lengths, short string values)
//! and against the capture header (method, path, version and body of the client request(s)).

mod support;

use spoa_mirror::config::SpopConfig;
use spoa_mirror::spop::{Capabilities, Message, TypedData};
use std::collections::{BTreeMap, BTreeSet};
use support::agent::{Client, InProcessAgent};
use support::captures::{self, Capture, Event};
use support::hex;

fn config_for(capture: &Capture) -> SpopConfig {
    let cmd = capture.agent_command();
    SpopConfig {
        max_frame_size: 16384,
        capabilities: Capabilities {
            pipelining: cmd.contains("-c pipelining"),
            r#async: cmd.contains("-c async"),
            fragmentation: cmd.contains("-c fragmentation"),
        },
        ..SpopConfig::default()
    }
}

fn type_name(v: &TypedData) -> &'static str {
    v.type_name()
}

/// Checks one NOTIFY's decoded messages against the reference decoder's summary, e.g.
/// `message "mirror" nb-args=5: arg_method STRING len=3 "GET"; arg_path STRING len=18 ...`.
fn check_summary(name: &str, messages: &[Message], summary: &str) {
    let mut at = 0;
    let mut expect = |piece: String| match summary[at..].find(&piece) {
        Some(pos) => at += pos + piece.len(),
        None => {
            panic!("{name}: decoded {piece:?} not found (in order) in reference summary {summary}")
        }
    };
    for m in messages {
        expect(format!(
            "message \"{}\" nb-args={}:",
            String::from_utf8_lossy(&m.name),
            m.args.len()
        ));
        for arg in &m.args {
            let arg_name = String::from_utf8_lossy(&arg.name);
            let mut piece = format!("{arg_name} {}", type_name(&arg.value));
            if let Some(bytes) = arg.value.as_bytes() {
                piece.push_str(&format!(" len={}", bytes.len()));
                let printable = bytes
                    .iter()
                    .all(|b| b.is_ascii_graphic() && *b != b'"' && *b != b'\\');
                if matches!(arg.value, TypedData::String(_)) && printable && bytes.len() <= 64 {
                    piece.push_str(&format!(" \"{}\"", String::from_utf8_lossy(bytes)));
                }
            }
            expect(piece);
        }
    }
}

/// What one mirrored request looks like: method, path (as HAProxy's `url`), `req.ver`, body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    method: String,
    path: String,
    version: String,
    body_len: usize,
}

fn string_arg(m: &Message, name: &str) -> String {
    let value = m
        .arg(name.as_bytes())
        .and_then(|v| v.as_bytes())
        .unwrap_or_else(|| panic!("no {name} argument in {m:?}"));
    String::from_utf8_lossy(value).into_owned()
}

fn request_of(m: &Message) -> Request {
    Request {
        method: string_arg(m, "arg_method"),
        path: string_arg(m, "arg_path"),
        version: string_arg(m, "arg_ver"),
        body_len: m
            .arg(b"arg_body")
            .and_then(|v| v.as_bytes())
            .map_or(0, |b| b.len()),
    }
}

/// The requests the capture's mirror sink received, from the header:
/// `METHOD TARGET HTTP/1.1 | headers | body N bytes sha256=...`. The sink always saw
/// HTTP/1.1 (that is how the agent mirrors); `req.ver` is what the client spoke.
fn requests_in_header(capture: &Capture) -> Vec<Request> {
    let client = capture.section("client").join("\n");
    let version = if client.contains("--http2-prior-knowledge") {
        "2.0"
    } else {
        "1.1"
    };
    let outcome = capture.section("outcome");
    let mut lines = outcome
        .iter()
        .skip_while(|l| !l.trim_start().starts_with("mirror sink received"));
    let count_line = lines.next().expect("a 'mirror sink received' line");
    let count: usize = count_line
        .trim_start()
        .trim_start_matches("mirror sink received ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("request count");
    let requests: Vec<Request> = lines
        .take(count)
        .map(|line| {
            let mut fields = line.trim().split(" | ");
            let request_line = fields.next().expect("request line");
            let body = fields.last().expect("body field");
            let mut words = request_line.split(' ');
            let method = words.next().expect("method").to_string();
            let path = words.next().expect("target").to_string();
            let body_len = body
                .trim_start_matches("body ")
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("body length in {line:?}"));
            Request {
                method,
                path,
                version: version.to_string(),
                body_len,
            }
        })
        .collect();
    assert_eq!(requests.len(), count, "{}: sink lines", capture.name);
    requests
}

/// `<body: N bytes, byte i = i % M ...>` in the client section, if the body is described so.
fn body_pattern(capture: &Capture) -> Option<(usize, usize)> {
    let client = capture.section("client").join("\n");
    let rest = client.split("<body: ").nth(1)?;
    let len = rest.split(' ').next()?.parse().ok()?;
    let modulo = rest.split("byte i = i % ").nth(1)?;
    let modulo = modulo
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((len, modulo))
}

/// Replays one capture; returns (agent frames compared, NOTIFYs checked).
async fn replay(capture: &Capture) -> (usize, usize) {
    let name = &capture.name;
    let cfg = config_for(capture);
    let pipelined = cfg.capabilities.pipelining;
    let agent = InProcessAgent::start(cfg).await;
    let mut clients: BTreeMap<u32, Client> = BTreeMap::new();
    let mut got: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut want: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut closed: BTreeSet<u32> = BTreeSet::new();
    let mut notifies = 0;

    for event in &capture.events {
        match event {
            Event::Frame {
                conn,
                from_haproxy: true,
                bytes,
                summary,
            } => {
                if !clients.contains_key(conn) {
                    clients.insert(*conn, agent.connect().await);
                }
                let client = clients.get_mut(conn).expect("client");
                client.send(bytes).await;
                if summary.starts_with("NOTIFY") {
                    // Wait until the handler has it, so the i-th recorded NOTIFY is the i-th
                    // sent, whatever the connection.
                    notifies += 1;
                    let recorded = agent.recorder.wait_for(notifies).await;
                    check_summary(name, &recorded[notifies - 1], summary);
                }
            }
            Event::Frame {
                conn,
                from_haproxy: false,
                bytes,
                summary,
            } => {
                let client = clients
                    .get_mut(conn)
                    .unwrap_or_else(|| panic!("{name}: C{conn} answers before it opened"));
                let frame = client.frame().await.unwrap_or_else(|| {
                    panic!("{name}: C{conn}: agent closed where the capture has {summary}")
                });
                got.entry(*conn).or_default().push(hex(&frame));
                want.entry(*conn).or_default().push(hex(bytes));
            }
            Event::Close { conn, by_haproxy } => {
                closed.insert(*conn);
                if *by_haproxy {
                    if let Some(client) = clients.get_mut(conn) {
                        client.shutdown_write().await;
                    }
                }
            }
        }
    }

    for conn in &closed {
        let client = clients.get_mut(conn).expect("closed connection existed");
        client.assert_closed().await;
    }
    for (conn, want) in &want {
        let mut want = want.clone();
        let mut got = got.get(conn).cloned().unwrap_or_default();
        if pipelined {
            want.sort();
            got.sort();
        }
        assert_eq!(got, want, "{name}: C{conn}: agent frames differ");
    }

    // The messages against the capture header.
    let recorded = agent.recorder.all();
    assert_eq!(recorded.len(), notifies);
    let mut from_agent: Vec<Request> = recorded
        .iter()
        .flatten()
        .filter(|m| &m.name[..] == b"mirror")
        .map(request_of)
        .collect();
    let mut from_header = requests_in_header(capture);
    from_agent.sort();
    from_header.sort();
    assert_eq!(from_agent, from_header, "{name}: mirrored requests");
    if let Some((len, modulo)) = body_pattern(capture) {
        let expected: Vec<u8> = (0..len).map(|i| (i % modulo) as u8).collect();
        let body = recorded
            .iter()
            .flatten()
            .find_map(|m| m.arg(b"arg_body"))
            .and_then(|v| v.as_bytes())
            .expect("a body argument");
        assert!(body[..] == expected[..], "{name}: body bytes differ");
    }
    assert_eq!(
        spoa_mirror::stats::get(&agent.stats.protocol_errors_total),
        0,
        "{name}: protocol errors"
    );
    (want.values().map(Vec::len).sum(), notifies)
}

#[tokio::test]
async fn replay_every_capture() {
    let all = captures::load_all(&captures::dir());
    // 3 versions × 8 scenarios.
    assert_eq!(all.len(), 24);
    let (mut frames, mut notifies) = (0, 0);
    for capture in &all {
        let (f, n) = replay(capture).await;
        frames += f;
        notifies += n;
    }
    // Every agent frame of the captures was compared, every NOTIFY checked (RECORDING.md: all 84
    // client requests were mirrored).
    assert_eq!((frames, notifies), (181, 84));
}
