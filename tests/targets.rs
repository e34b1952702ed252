//! Mirror targets with their own policy (`--config FILE`), end to end through a real HAProxy
//! (2.6, 2.8, and 3.x with env `HAPROXY3`) and the real `spoa-mirror` binary, each target a
//! recording sink: sampling fractions and sticky keys, rate caps, redaction and Host /
//! forwarding headers. tests/targets_ops.rs has isolation, reload and `--check-config`.
//!
//! Every loop is bounded in count and time. The long measurements (10,000 requests, 10 s at
//! five times a rate cap) are `#[ignore]`d with a reason; a short version of each always runs.

mod common;

use common::agent::AgentProcess;
use common::client::HttpConn;
use common::haproxy::{Haproxy, HaproxyBin};
use common::sink::Sink;
use common::targets::*;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// A secret in Authorization, a cookie and a header never reaches a target that redacts
/// them, nor the agent's log; Host and the forwarding headers are as configured.
async fn redaction_host_and_forwarding(bin: HaproxyBin) {
    let (primary, staging, vhost) = (
        Sink::start("primary").await,
        Sink::start("staging").await,
        Sink::start("vhost").await,
    );
    let rules = "redact-headers = [\"authorization\", \"cookie\", \"x-api-key\"]\n";
    let text = format!(
        "{}{}",
        target(
            "staging",
            &staging,
            &format!("{rules}host = \"target\"\nx-forwarded-for = true\nforwarded = true\nset-headers = {{ \"X-Mirrored-By\" = \"spoa\" }}")
        ),
        target("vhost", &vhost, &format!("{rules}host = \"staging.example:8443\"\nremove-headers = [\"x-debug\"]")),
    );
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::builder()
        .args([
            "--config",
            &write_config(&dir, &text),
            "--log-level",
            "debug",
        ])
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    let headers = [
        ("Authorization", "Bearer SECRET-TOKEN-1"),
        ("Cookie", "theme=dark; session=SECRET-COOKIE-2"),
        ("X-Api-Key", "SECRET-KEY-3"),
        ("X-Debug", "1"),
        ("X-Forwarded-For", "198.51.100.9"),
    ];
    let r = conn
        .request("GET", "/account?id=7", &headers, b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (s, v) = (staging.next().await, vhost.next().await);
    for rec in [&s, &v] {
        let all = bytes_of(rec);
        assert!(!all.contains("SECRET"), "a secret reached a sink:\n{all}");
        assert_eq!(rec.header("authorization").as_deref(), Some("[redacted]"));
        assert_eq!(rec.header("cookie").as_deref(), Some("[redacted]"));
        assert_eq!(rec.header("x-api-key").as_deref(), Some("[redacted]"));
        assert_eq!(rec.target, "/account?id=7");
    }
    assert_eq!(s.header_all("host"), [staging.addr().to_string()]);
    assert_eq!(
        s.header("x-forwarded-for").as_deref(),
        Some("198.51.100.9, 127.0.0.1")
    );
    assert_eq!(s.header("forwarded").as_deref(), Some("for=127.0.0.1"));
    assert_eq!(s.header("x-mirrored-by").as_deref(), Some("spoa"));
    assert_eq!(s.header("x-debug").as_deref(), Some("1"));
    assert_eq!(v.header_all("host"), ["staging.example:8443"]);
    assert_eq!(v.header("x-debug"), None);
    assert_eq!(v.header("forwarded"), None);
    // The per-request log lines name their target, and carry no secret.
    for name in ["target=vhost", "target=staging"] {
        let line = agent.wait_output(name, SETTLE).await;
        assert!(
            line.is_some_and(|l| l.contains("/account?id=7")),
            "no log line with {name}"
        );
    }
    let log = agent.output();
    assert!(!log.contains("SECRET"), "a secret reached the log:\n{log}");
    // The primary got the client's request as it was.
    assert_eq!(
        primary.next().await.header("authorization").as_deref(),
        Some("Bearer SECRET-TOKEN-1")
    );
}
per_haproxy!(redaction_host_and_forwarding);

/// A random 10 % target, a 30 % target sticky by a header, and an unsampled one: counts within
/// 5 σ, each key all in or all out, and a second agent with the same file agrees on every key.
async fn fractions(bin: HaproxyBin, n: usize) {
    let (primary, ten, sticky, all) = (
        Sink::start("primary").await,
        Sink::start("ten").await,
        Sink::start("sticky").await,
        Sink::start("all").await,
    );
    let text = format!(
        "{}{}{}",
        target("ten", &ten, "sample = { percent = 10 }"),
        target(
            "sticky",
            &sticky,
            "sample = { percent = 30, by = \"header:x-user\" }"
        ),
        target("all", &all, ""),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &text);
    let agent = AgentProcess::builder()
        .args(["--config", &path])
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let users = 200;
    let user = move |i: usize| vec![("X-User".to_string(), format!("user-{}", i % users))];
    let took = send(&hap, n, 8, user, "/f/").await;
    eprintln!(
        "{n} requests through HAProxy in {took:?} ({:.0}/s)",
        n as f64 / took.as_secs_f64()
    );
    let n = received(&agent, &hap, n).await;
    settle(&agent, ENDED, (3 * n) as f64).await;
    let every = all.wait_for(n, SETTLE).await;
    let (p, nf) = (0.10, n as f64);
    let got = ten.count() as f64;
    let sigma = (nf * p * (1.0 - p)).sqrt();
    assert!((got - nf * p).abs() <= 5.0 * sigma, "ten: {got} of {n}");
    // Sticky: per user, every request (that the agent got: `all` has each) or none.
    let per_user = |reqs: &[common::sink::Recorded]| {
        let mut m: HashMap<usize, usize> = HashMap::new();
        for r in reqs {
            *m.entry(index(r) % users).or_default() += 1;
        }
        m
    };
    let (sampled, every) = (per_user(&sticky.requests()), per_user(&every));
    for (u, c) in &sampled {
        assert_eq!(
            Some(c),
            every.get(u),
            "user-{u}: some requests in, some out"
        );
    }
    let inside: HashSet<usize> = sampled.keys().copied().collect();
    let k = inside.len() as f64;
    let sigma = (users as f64 * 0.3 * 0.7).sqrt();
    assert!(
        (k - users as f64 * 0.3).abs() <= 5.0 * sigma,
        "{k} of {users} users in"
    );
    let metric = agent.metrics().await;
    assert_eq!(
        metric.get("mirror_dropped_sampled_out").unwrap() as usize,
        (n - ten.count()) + (n - sticky.count())
    );

    // A second agent (another HAProxy) with the same file: the same users are in.
    let sticky2 = Sink::start("sticky2").await;
    let text2 = target(
        "sticky",
        &sticky2,
        "sample = { percent = 30, by = \"header:x-user\" }",
    );
    let dir2 = tempfile::tempdir().unwrap();
    let agent2 = AgentProcess::builder()
        .args(["--config", &write_config(&dir2, &text2)])
        .start()
        .await;
    let hap2 = haproxy(&bin, &primary, &agent2).await;
    send(&hap2, users, 4, user, "/g/").await;
    let got2 = received(&agent2, &hap2, users).await;
    settle(&agent2, ENDED, got2 as f64).await;
    let inside2: HashSet<usize> = sticky2.requests().iter().map(index).collect();
    // Every user once: a user whose message HAProxy gave up on is simply not seen.
    assert!(
        inside2.is_subset(&inside),
        "two agents disagree on sticky keys"
    );
    assert!(inside.len() - inside2.len() <= users - got2);
    if got2 == users {
        assert_eq!(inside2, inside, "two agents disagree on sticky keys");
    }
}

async fn fractions_short(bin: HaproxyBin) {
    fractions(bin, 2_000).await;
}
per_haproxy!(fractions_short);

async fn fractions_10000(bin: HaproxyBin) {
    fractions(bin, 10_000).await;
}
per_haproxy!(
    #[ignore = "10,000 requests through HAProxy and a debug agent: tens of seconds per version"]
    fractions_10000
);

/// Sends at `rate` requests/s for `secs` (paced, over a few connections) to a target capped
/// at `cap`/s with burst `burst`: the target never receives more than cap × time + burst, and
/// (when the client kept its pace) not less than that minus `tolerance`; the rest is counted
/// as rate-limited; a target without a cap gets everything.
async fn rate_cap(bin: HaproxyBin, cap: u32, burst: u32, rate: u32, secs: u64, tolerance: f64) {
    let (primary, capped, free) = (
        Sink::start("primary").await,
        Sink::start("capped").await,
        Sink::start("free").await,
    );
    let text = format!(
        "{}{}",
        target(
            "capped",
            &capped,
            &format!("rate = {{ per-second = {cap}, burst = {burst} }}")
        ),
        target("free", &free, ""),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &text);
    let agent = AgentProcess::builder()
        .args(["--config", &path])
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let n = (u64::from(rate) * secs) as usize;
    let (took, capped_latency) = paced(&hap, n, rate, "/r/").await;
    let n = received(&agent, &hap, n).await;
    settle(&agent, ENDED, (2 * n) as f64).await;
    free.wait_for(n, SETTLE).await;
    let got = capped.count() as f64;
    let want = f64::from(cap) * took + f64::from(burst);
    eprintln!(
        "rate cap {cap}/s burst {burst}: {got} of {n} in {took:.2}s (cap x time + burst {want:.0})"
    );
    // Never more than the cap allows over the time the messages arrived in.
    assert!(got <= want + 1.0, "{got} over the cap ({want:.0})");
    // When the client kept its pace, the cap's worth got through. (A machine loaded by other
    // work stalls the client or bunches the messages, and then less was offered over time.)
    if took <= secs as f64 * 1.1 {
        assert!(
            got >= (1.0 - tolerance) * want,
            "{got} received, expected {want:.0}"
        );
    } else {
        eprintln!(
            "the client could not keep its pace ({took:.2}s for {secs}s): lower bound not checked"
        );
    }
    let limited = agent.metric("mirror_dropped_rate_limited").await;
    assert_eq!(limited as usize + capped.count(), n);

    // HAProxy-side latency with the cap and without it (the same load after a reload that
    // removes the cap): dropping over the cap costs the client nothing.
    let text = format!(
        "{}{}",
        target("capped", &capped, ""),
        target("free", &free, "")
    );
    std::fs::write(&path, text).unwrap();
    agent.signal(libc::SIGHUP);
    let (v, ok) = agent
        .wait_metric("config_reloads_total", |v| v >= 1.0, SETTLE)
        .await;
    assert!(ok, "config_reloads_total = {v}");
    let (_, free_latency) = paced(&hap, n, rate, "/u/").await;
    let (c50, c99) = (
        quantile(&capped_latency, 0.5),
        quantile(&capped_latency, 0.99),
    );
    let (f50, f99) = (quantile(&free_latency, 0.5), quantile(&free_latency, 0.99));
    eprintln!("client latency p50/p99: capped {c50:?}/{c99:?}, no cap {f50:?}/{f99:?}");
    assert!(
        c50 <= f50 * 2 + Duration::from_millis(2),
        "capped p50 {c50:?} against {f50:?} without a cap"
    );
}

/// Sends `n` GETs paced at `rate`/s over 4 connections; the time it took and each request's
/// latency as the client saw it.
async fn paced(hap: &Haproxy, n: usize, rate: u32, path: &'static str) -> (f64, Vec<Duration>) {
    let conns = 4;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let addr = hap.addr();
        tasks.spawn(async move {
            let mut conn = HttpConn::connect(addr).await.unwrap();
            let period = Duration::from_secs_f64(conns as f64 / f64::from(rate));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut latencies = Vec::new();
            for i in (c..n).step_by(conns) {
                tick.tick().await;
                let sent = Instant::now();
                let r = conn.get(&format!("{path}{i}")).await.unwrap();
                latencies.push(sent.elapsed());
                assert_eq!(r.status, 200);
            }
            latencies
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    all.sort_unstable();
    (started.elapsed().as_secs_f64(), all)
}

/// The `q` quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default()
}

async fn rate_cap_short(bin: HaproxyBin) {
    // About 65 pass in 3 s: a 200 ms stall inside HAProxy or the agent on a loaded 2-core
    // machine (seen: load 5.7) costs 4 of them. The 10 % measurement is rate_cap_10s.
    rate_cap(bin, 20, 5, 100, 3, 0.25).await;
}
per_haproxy!(rate_cap_short);

async fn rate_cap_10s(bin: HaproxyBin) {
    rate_cap(bin, 50, 10, 250, 10, 0.1).await;
}
per_haproxy!(
    #[ignore = "10 s at five times the cap, per HAProxy version"]
    rate_cap_10s
);
