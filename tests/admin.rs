//! The run-time control endpoint (`--admin-address`): every endpoint in-process (the engine
//! and `admin::serve` on 127.0.0.1, messages offered by hand, real sinks), bad inputs, the
//! real binary (its port closed unless asked, no secret shown, changes logged, SIGHUP), and
//! through real HAProxy 2.6, 2.8 and 3.x (pause, resume, sampling and rate cap take effect
//! on the next request).

mod common;

use bytes::Bytes;
use common::agent::AgentProcess;
use common::client::{HttpConn, Response};
use common::haproxy::HaproxyBin;
use common::sink::Sink;
use common::targets::{haproxy, index, target, write_config, SETTLE};
use common::Offer;
use serde_json::Value;
use spoa_mirror::admin::{self, Admin};
use spoa_mirror::cli::{parse_with_env, Action};
use spoa_mirror::config::Config;
use spoa_mirror::mirror::Mirror;
use spoa_mirror::spop::{Arg, Message, TypedData};
use spoa_mirror::stats::{get, Stats, TargetStats};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

// ===== in-process harness =====

/// A mirror message for `path` (GET, no headers, no body).
fn message(path: &str) -> Message {
    let arg = |name: &'static str, v: &str| Arg {
        name: Bytes::from_static(name.as_bytes()),
        value: TypedData::String(Bytes::copy_from_slice(v.as_bytes())),
    };
    Message {
        name: Bytes::from_static(b"mirror"),
        args: vec![
            arg("arg_method", "GET"),
            arg("arg_path", path),
            arg("arg_ver", "1.1"),
        ],
    }
}

/// The agent's configuration from a command line (program name added).
fn config(args: &[&str]) -> Config {
    let argv = std::iter::once("spoa-mirror")
        .chain(args.iter().copied())
        .map(Into::into);
    match parse_with_env(argv, None).unwrap() {
        Action::Run(c) => *c,
        _ => panic!("not a run"),
    }
}

/// The engine with targets `a` and `b` (one sink each) and the admin endpoint in front.
struct InProcess {
    mirror: Mirror,
    stats: Arc<Stats>,
    addr: SocketAddr,
    a: Sink,
    b: Sink,
    stop: CancellationToken,
}

impl InProcess {
    async fn start() -> InProcess {
        let (a, b) = (Sink::start("a").await, Sink::start("b").await);
        let dir = tempfile::tempdir().unwrap();
        let file = write_config(
            &dir,
            &format!("{}{}", target("a", &a, ""), target("b", &b, "")),
        );
        let cfg = config(&["--config", &file, "--admin-address", "127.0.0.1:1"]);
        let stats = Arc::new(Stats::default());
        let mirror = Mirror::with_targets(cfg.targets.clone(), Arc::clone(&stats)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let handle = Admin::new(Arc::new(cfg), Some(mirror.clone()), Arc::clone(&stats));
        tokio::spawn(admin::serve(listener, handle, stop.clone()));
        InProcess {
            mirror,
            stats,
            addr,
            a,
            b,
            stop,
        }
    }

    async fn call(&self, method: &str, path: &str, body: &str) -> Response {
        call(self.addr, method, path, body).await
    }

    /// Calls and expects a 200 with JSON.
    async fn json(&self, method: &str, path: &str, body: &str) -> Value {
        let r = self.call(method, path, body).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", text(&r));
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        serde_json::from_slice(&r.body).unwrap()
    }

    fn target(&self, name: &str) -> Arc<TargetStats> {
        self.stats
            .targets()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap()
    }

    fn offer(&self, path: &str) {
        self.mirror.offer(vec![message(path)]);
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    let mut conn = HttpConn::connect(addr).await.unwrap();
    conn.request(method, path, &[("Connection", "close")], body.as_bytes())
        .await
        .unwrap()
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The `error` text of a refusal with this status.
fn refused(r: &Response, status: u16) -> String {
    assert_eq!(r.status, status, "{}", text(r));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["error"].as_str().unwrap().to_owned()
}

// ===== every endpoint, in-process =====

#[tokio::test]
async fn reading_endpoints() {
    let t = InProcess::start().await;
    let index = t.call("GET", "/", "").await;
    assert_eq!(index.status, 200);
    assert!(text(&index).contains("PUT    /targets/NAME/sample"));

    let c = t.json("GET", "/config", "").await;
    assert_eq!(c["run"]["admin-address"], "127.0.0.1:1");
    assert_eq!(c["mirroring-paused"], false);
    let names: Vec<&str> = c["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(c["targets"][0]["url"], format!("{}/", t.a.url()));

    let all = t.json("GET", "/targets", "").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let a = t.json("GET", "/targets/a", "").await;
    assert_eq!(a["name"], "a");
    assert_eq!(a["paused"], false);
    assert_eq!(a["sample"], Value::Null);
    assert_eq!(a["counters"]["sent"], 0);
    // HEAD answers like GET, without a body.
    let head = t.call("HEAD", "/targets/a", "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn pause_and_resume_every_target_then_one() {
    let t = InProcess::start().await;
    t.offer("/0");
    t.a.wait_for(1, SETTLE).await;
    t.b.wait_for(1, SETTLE).await;

    let p = t.json("POST", "/pause", "").await;
    assert_eq!(
        (p["paused"].clone(), p["was-paused"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(get(&t.stats.mirroring_paused), 1);
    assert!(t.mirror.paused());
    // The very next message is not mirrored anywhere, and counted as paused per target.
    t.offer("/1");
    assert_eq!(get(&t.target("a").dropped_paused), 1);
    assert_eq!(get(&t.target("b").dropped_paused), 1);
    assert_eq!(get(&t.target("a").queued_total), 1);
    assert_eq!(t.json("GET", "/config", "").await["mirroring-paused"], true);

    t.json("POST", "/resume", "").await;
    assert_eq!(get(&t.stats.mirroring_paused), 0);
    t.offer("/2");
    assert_eq!(index(&t.a.wait_for(2, SETTLE).await[1]), 2);

    // One target: the other one keeps mirroring.
    let a = t.json("POST", "/targets/a/pause", "").await;
    assert_eq!(a["paused"], true);
    assert_eq!(get(&t.target("a").paused), 1);
    t.offer("/3");
    assert_eq!(get(&t.target("a").dropped_paused), 2);
    assert_eq!(get(&t.target("b").dropped_paused), 1);
    let b: Vec<usize> = t.b.wait_for(3, SETTLE).await.iter().map(index).collect();
    assert_eq!(b, [0, 2, 3]);
    let a = t.json("POST", "/targets/a/resume", "").await;
    assert_eq!(a["paused"], false);
    t.offer("/4");
    let a: Vec<usize> = t.a.wait_for(3, SETTLE).await.iter().map(index).collect();
    assert_eq!(a, [0, 2, 4]);
    assert_eq!(get(&t.stats.admin_changes_total), 4);
}

#[tokio::test]
async fn sampling_and_rate_cap_change_on_the_next_message() {
    let t = InProcess::start().await;
    let a = t
        .json("PUT", "/targets/a/sample", r#"{"percent": 0}"#)
        .await;
    assert_eq!(a["sample"]["percent"], 0.0);
    assert_eq!(a["sample"]["by"], "random");
    assert_eq!(a["changed-at-run-time"], true);
    for i in 0..20 {
        t.offer(&format!("/{i}"));
    }
    assert_eq!(get(&t.target("a").dropped_sampled_out), 20);
    assert_eq!(get(&t.target("a").queued_total), 0);
    assert_eq!(get(&t.target("b").queued_total), 20);

    t.json("PUT", "/targets/a/sample", r#"{"percent": 100}"#)
        .await;
    t.offer("/20");
    assert_eq!(index(&t.a.next().await), 20);
    let a = t.json("DELETE", "/targets/a/sample", "").await;
    assert_eq!(a["sample"], Value::Null);

    // Rate cap 1/s with a burst of 1: of messages offered within the same second, one goes.
    let a = t
        .json("PUT", "/targets/a/rate", r#"{"per-second": 1, "burst": 1}"#)
        .await;
    assert_eq!(a["rate"]["per-second"], 1);
    assert_eq!(a["rate"]["burst"], 1);
    let started = Instant::now();
    for i in 21..31 {
        t.offer(&format!("/{i}"));
    }
    let took = started.elapsed();
    let stats = t.target("a");
    let (limited, queued) = (get(&stats.dropped_rate_limited), get(&stats.queued_total));
    assert_eq!(limited + queued, 1 + 10);
    assert!(
        queued >= 2 && queued <= 2 + took.as_secs(),
        "{queued} queued in {took:?}"
    );
    // The burst defaults to the rate.
    let a = t
        .json("PUT", "/targets/a/rate", r#"{"per-second": 7}"#)
        .await;
    assert_eq!(a["rate"]["burst"], 7);
    t.json("DELETE", "/targets/a/rate", "").await;
    let before = get(&stats.queued_total);
    for i in 31..41 {
        t.offer(&format!("/{i}"));
    }
    assert_eq!(get(&stats.queued_total), before + 10);

    // Reset: the configured policy (none) again.
    t.json("PUT", "/targets/b/sample", r#"{"percent": 0}"#)
        .await;
    let b = t.json("POST", "/targets/b/reset", "").await;
    assert_eq!(b["sample"], Value::Null);
    assert_eq!(b["changed-at-run-time"], false);
}

#[tokio::test]
async fn bad_inputs_are_refused_with_the_reason() {
    let t = InProcess::start().await;
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "PUT",
            "/targets/a/sample",
            r#"{"percent": 101}"#,
            400,
            "out of range [0, 100]",
        ),
        (
            "PUT",
            "/targets/a/sample",
            r#"{"percent": -1}"#,
            400,
            "out of range [0, 100]",
        ),
        (
            "PUT",
            "/targets/a/sample",
            r#"{"percent": "ten"}"#,
            400,
            "invalid JSON body",
        ),
        (
            "PUT",
            "/targets/a/sample",
            r#"{"percnt": 10}"#,
            400,
            "unknown field",
        ),
        ("PUT", "/targets/a/sample", "", 400, "a JSON body is needed"),
        (
            "PUT",
            "/targets/a/sample",
            "percent=10",
            400,
            "invalid JSON body",
        ),
        (
            "PUT",
            "/targets/a/rate",
            r#"{"per-second": 0}"#,
            400,
            "per-second 0 is out of range",
        ),
        (
            "PUT",
            "/targets/a/rate",
            r#"{"per-second": 4294967296}"#,
            400,
            "out of range",
        ),
        (
            "PUT",
            "/targets/a/rate",
            r#"{"per-second": 5, "burst": 0}"#,
            400,
            "burst 0 is out of range",
        ),
        (
            "PUT",
            "/targets/a/rate",
            r#"{"per-second": 1.5}"#,
            400,
            "invalid JSON body",
        ),
        (
            "PUT",
            "/targets/a/rate",
            r#"{"per-second": -3}"#,
            400,
            "invalid JSON body",
        ),
        (
            "PUT",
            "/targets/a/rate",
            r#"{"burst": 3}"#,
            400,
            "missing field",
        ),
        (
            "PUT",
            "/targets/zz/sample",
            r#"{"percent": 5}"#,
            404,
            "no target named 'zz'",
        ),
        (
            "PUT",
            "/targets/zz/rate",
            r#"{"per-second": 5}"#,
            404,
            "no target named 'zz'",
        ),
        (
            "DELETE",
            "/targets/zz/rate",
            "",
            404,
            "no target named 'zz'",
        ),
        ("POST", "/targets/zz/pause", "", 404, "no target named 'zz'"),
        ("POST", "/targets/zz/reset", "", 404, "no target named 'zz'"),
        ("GET", "/targets/zz", "", 404, "no target named 'zz'"),
        ("GET", "/nothing", "", 404, "no such endpoint"),
        ("GET", "/targets/a/b/c/d", "", 404, "no such endpoint"),
        ("GET", "/pause", "", 405, "GET not allowed on /pause: POST"),
        ("POST", "/config", "", 405, "GET, HEAD"),
        ("PUT", "/targets", "{}", 405, "GET, HEAD"),
        ("POST", "/targets/a/sample", "{}", 405, "PUT, DELETE"),
        ("GET", "/targets/a/rate", "", 405, "PUT, DELETE"),
    ];
    for (method, path, body, status, why) in cases {
        let r = t.call(method, path, body).await;
        let error = refused(&r, *status);
        assert!(error.contains(why), "{method} {path} {body}: {error}");
        if *status == 405 {
            assert!(r.header("allow").is_some(), "{method} {path}: no Allow");
        }
    }
    let big = format!(r#"{{"percent": 1{}}}"#, " ".repeat(admin::MAX_BODY));
    let r = t.call("PUT", "/targets/a/sample", &big).await;
    assert!(refused(&r, 413).contains("larger than"));
    // Nothing changed.
    let a = t.json("GET", "/targets/a", "").await;
    assert_eq!(
        (a["sample"].clone(), a["rate"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(get(&t.stats.admin_changes_total), 0);
}

/// Past `MAX_CONNECTIONS` open connections, a new one is closed at once and counted; once
/// one closes, connections are served again.
#[tokio::test]
async fn connections_are_bounded_and_counted() {
    use tokio::io::AsyncReadExt;
    let t = InProcess::start().await;
    let mut idle = Vec::new();
    for _ in 0..admin::MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(t.addr).await.unwrap());
    }
    // Accepted in order: these hold every slot, the next one is refused.
    let mut extra = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(SETTLE, extra.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {read:?}"
    );
    assert_eq!(get(&t.stats.admin_connections_refused_total), 1);
    drop(idle);
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut conn = HttpConn::connect(t.addr).await.unwrap();
        if let Ok(r) = conn.get("/targets/a").await {
            assert_eq!(r.status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_targets_nothing_to_change() {
    let cfg = config(&["--admin-address", "127.0.0.1:1"]);
    let stats = Arc::new(Stats::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(admin::serve(
        listener,
        Admin::new(Arc::new(cfg), None, stats),
        stop.clone(),
    ));
    let r = call(addr, "GET", "/targets", "").await;
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        serde_json::json!([])
    );
    let r = call(addr, "POST", "/pause", "").await;
    assert!(refused(&r, 409).contains("nothing is mirrored"));
    stop.cancel();
}

/// A reload keeps the pauses and puts the file's sampling and rate back.
#[tokio::test]
async fn reload_keeps_pauses_and_restores_the_file_policy() {
    let t = InProcess::start().await;
    t.json("POST", "/targets/a/pause", "").await;
    t.json("PUT", "/targets/b/sample", r#"{"percent": 0}"#)
        .await;
    let file = format!(
        "{}{}",
        target("a", &t.a, ""),
        target("b", &t.b, "sample = { percent = 100 }")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &file);
    let cfg = config(&["--config", &path]);
    t.mirror.reload(cfg.targets).unwrap();
    let a = t.json("GET", "/targets/a", "").await;
    assert_eq!(a["paused"], true);
    let b = t.json("GET", "/targets/b", "").await;
    assert_eq!(b["sample"]["percent"], 100.0);
    assert_eq!(b["changed-at-run-time"], false);
    t.offer("/0");
    assert_eq!(get(&t.target("a").dropped_paused), 1);
    assert_eq!(index(&t.b.next().await), 0);
}

// ===== the real binary =====

/// Sockets in LISTEN state that process `pid` holds (from /proc/net/tcp{,6} and its fds).
fn listening_sockets(pid: u32) -> usize {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            if cols.get(3) == Some(&"0A") {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|l| inodes.contains(&l.to_string_lossy().into_owned()))
        .count()
}

#[tokio::test]
async fn admin_port_is_closed_unless_asked() {
    let sink = Sink::start("m").await;
    // SPOP and metrics only.
    let agent = AgentProcess::builder().mirror(&sink.url()).start().await;
    assert_eq!(listening_sockets(agent.pid()), 2);
    assert!(!agent.output().contains("admin"));
    assert!(agent
        .metrics_text()
        .await
        .contains("spoa_mirror_mirroring_paused 0"));
    // Asked: one more, and it answers.
    let agent = AgentProcess::builder()
        .mirror(&sink.url())
        .with_admin()
        .start()
        .await;
    assert_eq!(listening_sockets(agent.pid()), 3);
    assert_eq!(agent.admin("GET", "/targets/default", "").await.status, 200);
    // Stopped, its admin port refuses connections.
    let addr = agent.admin_addr();
    drop(agent);
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

#[tokio::test]
async fn bad_admin_address_is_a_usage_error() {
    let run = |args: &[&str]| {
        std::process::Command::new(common::agent::AGENT_BIN)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--admin-address", "localhost"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid admin address 'localhost'"));
    let out = run(&[
        "--admin-address",
        "127.0.0.1:9999",
        "--metrics-address",
        "127.0.0.1:9999",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("also --metrics-address"));
}

/// The binary: no secret in `/config`, each change logged with its peer and old -> new, the
/// pause on /metrics, SIGHUP restoring the file's policy and keeping the pause.
#[tokio::test]
async fn binary_shows_no_secret_and_logs_every_change() {
    let (m, n) = (Sink::start("m").await, Sink::start("n").await);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &target("n", &n, "sample = { percent = 50 }"));
    let agent = AgentProcess::builder()
        .mirror(&m.url())
        .args([
            "--config",
            &path,
            "-x",
            "http://proxyuser:proxypass@127.0.0.1:9",
            "-U",
            "user:s3cretpw",
            "-H",
            "Proxy-Authorization: Bearer t0ken",
        ])
        .with_admin()
        .start()
        .await;
    assert!(text(&agent.admin("GET", "/", "").await).contains("POST   /pause"));
    let r = agent.admin("GET", "/config", "").await;
    assert_eq!(r.status, 200);
    let body = text(&r);
    for secret in ["s3cretpw", "proxypass", "t0ken"] {
        assert!(!body.contains(secret), "{secret} shown: {body}");
    }
    let c: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(c["targets"][0]["proxy"]["credentials"], true);
    assert_eq!(
        c["targets"][0]["proxy"]["header-names"][0],
        "proxy-authorization"
    );

    assert_eq!(agent.admin("POST", "/pause", "").await.status, 200);
    assert_eq!(
        agent.admin("POST", "/targets/n/pause", "").await.status,
        200
    );
    let r = agent
        .admin("PUT", "/targets/n/sample", r#"{"percent": 0}"#)
        .await;
    assert_eq!(r.status, 200);
    let r = agent
        .admin("PUT", "/targets/n/rate", r#"{"per-second": 9}"#)
        .await;
    assert_eq!(r.status, 200);
    for line in [
        "mirroring for every target running -> paused",
        "target 'n' running -> paused",
        "target 'n' sample 50% by random -> 0% by random",
        "target 'n' rate no cap -> 9/s burst 9",
    ] {
        let got = agent.wait_output(line, SETTLE).await;
        assert!(
            got.is_some_and(|l| l.contains("admin: 127.0.0.1:")),
            "no log line with the peer for: {line}"
        );
    }
    let (v, ok) = agent
        .wait_metric("admin_changes_total", |v| v == 4.0, SETTLE)
        .await;
    assert!(ok, "admin_changes_total = {v}");
    let all: Value =
        serde_json::from_slice(&agent.admin("GET", "/targets", "").await.body).unwrap();
    assert_eq!(all[0]["name"], "default");
    assert_eq!(all[1]["rate"]["per-second"], 9);
    assert_eq!(agent.metric("mirroring_paused").await, 1.0);

    agent.signal(libc::SIGHUP);
    let (v, ok) = agent
        .wait_metric("config_reloads_total", |v| v >= 1.0, SETTLE)
        .await;
    assert!(ok, "config_reloads_total = {v}");
    assert!(agent
        .wait_output(
            "target 'n': run-time sampling/rate changes replaced",
            SETTLE
        )
        .await
        .is_some());
    assert!(agent
        .wait_output("target 'n' stays paused", SETTLE)
        .await
        .is_some());
    let n: Value =
        serde_json::from_slice(&agent.admin("GET", "/targets/n", "").await.body).unwrap();
    assert_eq!(n["paused"], true);
    assert_eq!(n["sample"]["percent"], 50.0);
    assert_eq!(n["rate"], Value::Null);
    assert_eq!(
        serde_json::from_slice::<Value>(&agent.admin("GET", "/config", "").await.body).unwrap()
            ["mirroring-paused"],
        true
    );
}

// ===== through real HAProxy =====

/// Sends one request through HAProxy and waits until the agent has handed its message to the
/// engine: `notify_total` reaches `n` (HAProxy answers the client after the ACK, and the
/// message is offered right after the ACK is queued, so the counters below are final then).
async fn one(conn: &mut HttpConn, agent: &AgentProcess, i: usize) {
    assert_eq!(conn.get(&format!("/r/{i}")).await.unwrap().status, 200);
    let (v, ok) = agent
        .wait_metric("notify_total", |v| v >= (i + 1) as f64, SETTLE)
        .await;
    assert!(ok, "notify_total = {v}, want {}", i + 1);
}

/// Waits until the sum of `fields` is `want` (every offered message accounted for).
async fn accounted(agent: &AgentProcess, fields: &[&str], want: usize) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let m = agent.metrics().await;
        let v: f64 = fields.iter().map(|f| m.get(f).unwrap_or(0.0)).sum();
        if v == want as f64 {
            return;
        }
        assert!(Instant::now() < deadline, "{fields:?} = {v}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const OUTCOMES: &[&str] = &[
    "mirror_queued_total",
    "mirror_dropped_paused",
    "mirror_dropped_sampled_out",
    "mirror_dropped_rate_limited",
];

async fn pause_sample_and_rate_take_effect_at_once(bin: HaproxyBin) {
    let (primary, sink) = (Sink::start("primary").await, Sink::start("mirror").await);
    let agent = AgentProcess::builder()
        .mirror(&sink.url())
        .with_admin()
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    let mut i = 0;
    let mut expect = Vec::new();

    // Mirrored, then paused from the very next request, then mirrored again.
    one(&mut conn, &agent, i).await;
    expect.push(i);
    i += 1;
    assert_eq!(agent.admin("POST", "/pause", "").await.status, 200);
    one(&mut conn, &agent, i).await;
    i += 1;
    accounted(&agent, OUTCOMES, i).await;
    assert_eq!(agent.metric("mirror_dropped_paused").await, 1.0);
    assert_eq!(agent.admin("POST", "/resume", "").await.status, 200);
    one(&mut conn, &agent, i).await;
    expect.push(i);
    i += 1;

    // The same for the target alone.
    assert_eq!(
        agent
            .admin("POST", "/targets/default/pause", "")
            .await
            .status,
        200
    );
    one(&mut conn, &agent, i).await;
    i += 1;
    accounted(&agent, OUTCOMES, i).await;
    assert_eq!(agent.metric("mirror_dropped_paused").await, 2.0);
    assert_eq!(
        agent
            .admin("POST", "/targets/default/resume", "")
            .await
            .status,
        200
    );

    // Sampling at 0 %: the next request is out; at 100 %: the next one is in.
    let r = agent
        .admin("PUT", "/targets/default/sample", r#"{"percent": 0}"#)
        .await;
    assert_eq!(r.status, 200);
    one(&mut conn, &agent, i).await;
    i += 1;
    accounted(&agent, OUTCOMES, i).await;
    assert_eq!(agent.metric("mirror_dropped_sampled_out").await, 1.0);
    let r = agent
        .admin("PUT", "/targets/default/sample", r#"{"percent": 100}"#)
        .await;
    assert_eq!(r.status, 200);
    one(&mut conn, &agent, i).await;
    expect.push(i);
    i += 1;

    // Rate cap 1/s, burst 1: of 5 requests in a row, one per second started goes.
    let r = agent
        .admin(
            "PUT",
            "/targets/default/rate",
            r#"{"per-second": 1, "burst": 1}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let started = Instant::now();
    let first = i;
    for _ in 0..5 {
        one(&mut conn, &agent, i).await;
        i += 1;
    }
    let took = started.elapsed();
    accounted(&agent, OUTCOMES, i).await;
    let limited = agent.metric("mirror_dropped_rate_limited").await as u64;
    let passed = 5 - limited;
    assert!(
        passed >= 1 && passed <= 1 + took.as_secs(),
        "{passed} of 5 passed in {took:?}"
    );
    // No cap again: the next one goes.
    assert_eq!(
        agent
            .admin("DELETE", "/targets/default/rate", "")
            .await
            .status,
        200
    );
    one(&mut conn, &agent, i).await;
    let last = i;
    i += 1;
    accounted(&agent, OUTCOMES, i).await;

    let got: Vec<usize> = sink
        .wait_for(expect.len() + passed as usize + 1, SETTLE)
        .await
        .iter()
        .map(index)
        .collect();
    // Exactly the expected ones, in order; of the capped ones, the first one.
    let mut want = expect.clone();
    want.push(first);
    let capped: Vec<usize> = got
        .iter()
        .copied()
        .filter(|g| (first..first + 5).contains(g))
        .collect();
    assert_eq!(capped.first(), Some(&first));
    want.extend(capped.iter().skip(1));
    want.push(last);
    assert_eq!(got, want);
    assert_eq!(sink.count(), want.len());
}
per_haproxy!(pause_sample_and_rate_take_effect_at_once);

/// Changes while HAProxy sends steadily: the clients see nothing, and every message is
/// accounted for exactly once (queued, paused or sampled out), every queued one delivered.
async fn changes_under_load_lose_nothing(bin: HaproxyBin) {
    let (primary, sink) = (Sink::start("primary").await, Sink::start("mirror").await);
    let agent = AgentProcess::builder()
        .mirror(&sink.url())
        .with_admin()
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let n = 400;
    let load = tokio::spawn(common::client::get_many(hap.addr(), "/l/", n, 2));
    let changes = [
        ("PUT", "/targets/default/sample", r#"{"percent": 0}"#),
        ("POST", "/pause", ""),
        ("PUT", "/targets/default/sample", r#"{"percent": 100}"#),
        ("POST", "/resume", ""),
        ("POST", "/targets/default/pause", ""),
        ("PUT", "/targets/default/rate", r#"{"per-second": 100000}"#),
        ("POST", "/targets/default/resume", ""),
        ("POST", "/targets/default/reset", ""),
    ];
    let mut made = 0;
    while !load.is_finished() && made < 400 {
        let (method, path, body) = changes[made % changes.len()];
        assert_eq!(agent.admin(method, path, body).await.status, 200);
        made += 1;
    }
    let answers = load.await.unwrap().unwrap();
    assert_eq!(answers.len(), n);
    assert!(answers.iter().all(|r| r.status == 200));
    eprintln!("{made} changes during {n} requests");
    assert!(made >= changes.len(), "only {made} changes during the load");
    // Leave it running, so that the accounting below is final.
    assert_eq!(agent.admin("POST", "/resume", "").await.status, 200);
    let got = common::targets::received(&agent, &hap, n).await;
    accounted(&agent, OUTCOMES, got).await;
    let queued = agent.metric("mirror_queued_total").await as usize;
    sink.wait_for(queued, SETTLE).await;
    let (v, ok) = agent
        .wait_metric("mirror_sent_total", |v| v == queued as f64, SETTLE)
        .await;
    assert!(ok, "sent {v} of {queued} queued");
    assert_eq!(sink.count(), queued);
    assert_eq!(agent.metric("admin_changes_total").await as usize, made + 1);
}
per_haproxy!(changes_under_load_lose_nothing);
