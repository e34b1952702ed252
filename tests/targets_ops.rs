//! Mirror targets in operation, through a real HAProxy and the real binary: a dead and a slow
//! target beside a healthy one, SIGHUP reload under load, `--check-config`, and SIGHUP
//! without `--config` (a stop, as the original's).

mod common;

use common::agent::AgentProcess;
use common::client::HttpConn;
use common::haproxy::HaproxyBin;
use common::sink::Sink;
use common::targets::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One target refuses connections, one answers slowly (small queue, short timeout), a third
/// is healthy: the healthy one gets every request, the clients every answer, at once.
async fn dead_and_slow_targets_leave_the_healthy_one_alone(bin: HaproxyBin) {
    let (primary, slow, healthy) = (
        Sink::start("primary").await,
        Sink::start("slow").await,
        Sink::start("healthy").await,
    );
    slow.set_delay(Duration::from_secs(3)).await;
    let dead_port = common::free_port();
    let text = format!(
        "[[target]]\nname = \"dead\"\nurl = \"http://127.0.0.1:{dead_port}\"\n\
         breaker = {{ failures = 5, cool-down = \"1h\" }}\n{}{}",
        target(
            "slow",
            &slow,
            "timeout = \"500ms\"\nconcurrency = 2\nqueue = 4"
        ),
        target("healthy", &healthy, ""),
    );
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::builder()
        .args(["--config", &write_config(&dir, &text)])
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let n = 300;
    let took = send(&hap, n, 4, |_| Vec::new(), "/h/").await;
    assert!(
        took < Duration::from_secs(10),
        "clients slowed down: {took:?}"
    );
    let n = received(&agent, &hap, n).await;
    let got: HashSet<usize> = healthy
        .wait_for(n, SETTLE)
        .await
        .iter()
        .map(index)
        .collect();
    assert_eq!(got.len(), n);
    // Every request ended at every target (sent, failed or dropped): the counters are final.
    settle(&agent, ENDED, (3 * n) as f64).await;
    let m = agent.metrics().await;
    let series = |name: &str, t: &str| {
        m.samples
            .iter()
            .find(|(s, l, _)| s == name && l.contains(&format!("target=\"{t}\"")))
            .map_or(0.0, |(_, _, v)| *v)
    };
    // The dead target's breaker opened once and short-circuited the rest.
    assert_eq!(
        series("spoa_mirror_mirror_breaker_opened_total", "dead"),
        1.0
    );
    assert!(series("spoa_mirror_mirror_dropped_queue_full_total", "slow") > 0.0);
    assert_eq!(
        series("spoa_mirror_mirror_status_2xx_total", "healthy"),
        n as f64
    );
    // How many requests got past the closed breaker before its 5th failure depends on how far
    // deliveries lag the offers (a loaded machine). Once open, it short-circuits everything:
    // a second batch never reaches the wire.
    let (open0, failed0) = (
        series("spoa_mirror_mirror_dropped_breaker_open_total", "dead"),
        series("spoa_mirror_mirror_failed_connect_total", "dead"),
    );
    assert!(open0 > 0.0, "the breaker short-circuited nothing");
    let m = 50;
    send(&hap, m, 2, |_| Vec::new(), "/h2/").await;
    let m = received(&agent, &hap, n + m).await - n;
    settle(&agent, ENDED, (3 * (n + m)) as f64).await;
    let m2 = agent.metrics().await;
    let series2 = |name: &str, t: &str| {
        m2.samples
            .iter()
            .find(|(s, l, _)| s == name && l.contains(&format!("target=\"{t}\"")))
            .map_or(0.0, |(_, _, v)| *v)
    };
    assert_eq!(
        series2("spoa_mirror_mirror_dropped_breaker_open_total", "dead"),
        open0 + m as f64
    );
    assert_eq!(
        series2("spoa_mirror_mirror_failed_connect_total", "dead"),
        failed0
    );
}
per_haproxy!(dead_and_slow_targets_leave_the_healthy_one_alone);

/// SIGHUP under load: a target that stays loses nothing, a removed one finishes what it holds,
/// an added one starts; then a bad file changes nothing, and both are counted.
async fn reload_under_load(bin: HaproxyBin) {
    let (primary, a, b, c) = (
        Sink::start("primary").await,
        Sink::start("a").await,
        Sink::start("b").await,
        Sink::start("c").await,
    );
    b.set_delay(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!("{}{}", target("a", &a, ""), target("b", &b, "")),
    );
    let mut agent = AgentProcess::builder()
        .args(["--config", &path])
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let n = 600;
    let load = {
        let addr = hap.addr();
        tokio::spawn(async move {
            let mut conn = HttpConn::connect(addr).await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            for i in 0..n {
                tick.tick().await;
                assert_eq!(conn.get(&format!("/l/{i}")).await.unwrap().status, 200);
            }
        })
    };
    a.wait_for(50, SETTLE).await;
    std::fs::write(
        &path,
        format!("{}{}", target("a", &a, ""), target("c", &c, "")),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    let (v, ok) = agent
        .wait_metric("config_reloads_total", |v| v >= 1.0, SETTLE)
        .await;
    assert!(ok, "config_reloads_total = {v}");
    c.wait_for(20, SETTLE).await;
    std::fs::write(&path, "[[target]]\nname = \"a\"\nurl = \"ftp://a\"\n").unwrap();
    agent.signal(libc::SIGHUP);
    let (v, ok) = agent
        .wait_metric("config_reload_failed_total", |v| v >= 1.0, SETTLE)
        .await;
    assert!(ok, "config_reload_failed_total = {v}");
    let why = agent
        .wait_output("configuration not reloaded", SETTLE)
        .await;
    assert!(
        why.is_some_and(|l| l.contains("targets.toml:3:7")),
        "no reason logged"
    );
    load.await.unwrap();
    let n = received(&agent, &hap, n).await;
    // `a` stayed through both: every request the agent got, once.
    let got: Vec<usize> = a.wait_for(n, SETTLE).await.iter().map(index).collect();
    assert_eq!(got.len(), n);
    assert_eq!(got.iter().copied().collect::<HashSet<_>>().len(), n);
    // `c` still gets requests after the bad file.
    settle(&agent, &["mirror_sent_total"], (n + c.count()) as f64).await;
    let c_before = c.count();
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    assert_eq!(conn.get("/after").await.unwrap().status, 200);
    c.wait_for(c_before + 1, SETTLE).await;
    // `b` was removed with requests in flight (300 ms each): each one it got was answered
    // and logged as delivered, none abandoned.
    assert!(b.count() > 0);
    let done = |agent: &AgentProcess| {
        agent
            .output()
            .lines()
            .filter(|l| l.contains("target=b") && l.contains("\" 200 "))
            .count()
    };
    let deadline = Instant::now() + SETTLE;
    while done(&agent) < b.count() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        done(&agent),
        b.count(),
        "a request to the removed target was not finished"
    );
    assert!(
        agent.is_running(),
        "SIGHUP with --config must not stop the agent"
    );
}
per_haproxy!(reload_under_load);

/// Runs the binary with `args`; (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(common::agent::AGENT_BIN)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_prints_the_effective_targets_or_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        "[[target]]\nname = \"staging\"\nurl = \"http://staging:8080\"\nqueue = 10\n\
         sample = { percent = 10, by = \"cookie:SID\" }\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    // The flags are the defaults of the file's targets; -u adds `default` first.
    let (code, out, err) = run(&[
        "--check-config",
        p,
        "-u",
        "http://u:1",
        "--mirror-timeout",
        "3s",
    ]);
    assert_eq!(code, 0, "{err}");
    let default_at = out.find("target default: http://u:1/").expect(&out);
    let staging_at = out
        .find("target staging: http://staging:8080/")
        .expect(&out);
    assert!(default_at < staging_at, "{out}");
    assert!(out.contains("timeout 3s, connect 10s, queue 10,"), "{out}");
    assert!(out.contains("sample 10% by Cookie(\"SID\")"), "{out}");

    std::fs::write(
        &path,
        "[[target]]\nname = \"staging\"\nurl = \"http://s\"\nqueue = -1\n",
    )
    .unwrap();
    let (code, _, err) = run(&["--check-config", p]);
    assert_eq!(code, 64);
    assert!(
        err.contains(&format!("ERROR: {p}:4:9: -1 is out of range")),
        "{err}"
    );
    // The same check at startup: the agent does not start.
    let (code, _, err) = run(&["--config", p, "-p", "1"]);
    assert_eq!(code, 64);
    assert!(err.contains(&format!("{p}:4:9:")), "{err}");
    let (code, _, err) = run(&["--check-config", "/nonexistent/t.toml"]);
    assert_eq!(code, 64);
    assert!(err.contains("/nonexistent/t.toml: cannot read"), "{err}");
}

/// Without --config, SIGHUP stops the agent, as the original's does.
#[tokio::test]
async fn sighup_without_config_still_stops() {
    let sink = Sink::start("m").await;
    let mut agent = AgentProcess::builder().mirror(&sink.url()).start().await;
    agent.signal(libc::SIGHUP);
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .expect("still running");
    assert!(status.success(), "{status}");
}

/// The shipped examples/targets.toml is valid and says what its comments say.
#[test]
fn example_targets_file_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/targets.toml");
    let (code, out, err) = run(&["--check-config", path]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "target staging: http://staging.example.com:8080/",
        "sample 10% by Cookie(\"SESSIONID\")",
        "target canary: https://canary.example.com/",
        "rate 50/s, burst 10",
        "breaker after 5 failures, cool-down 30s",
        "target analytics: http://analytics.example.com:9000/ingest",
    ] {
        assert!(out.contains(want), "{want} not in:\n{out}");
    }
}

/// Writes `text` to the config file, sends SIGHUP, and waits for `config_reloads_total`
/// to reach `n`.
async fn reload(agent: &AgentProcess, path: &str, text: String, n: f64) {
    std::fs::write(path, text).unwrap();
    agent.signal(libc::SIGHUP);
    let (v, ok) = agent
        .wait_metric("config_reloads_total", |v| v >= n, SETTLE)
        .await;
    assert!(ok, "config_reloads_total = {v}");
}

/// An agent started with `--config` and no targets takes some at SIGHUP; a kept target's new
/// policy applies at once.
async fn reload_adds_targets_and_changes_policy(bin: HaproxyBin) {
    let (primary, a) = (Sink::start("primary").await, Sink::start("a").await);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "# no targets yet\n");
    let agent = AgentProcess::builder()
        .args(["--config", &path])
        .start()
        .await;
    let hap = haproxy(&bin, &primary, &agent).await;
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    reload(
        &agent,
        &path,
        target("a", &a, "sample = { percent = 0 }"),
        1.0,
    )
    .await;
    for i in 0..5 {
        assert_eq!(conn.get(&format!("/p/{i}")).await.unwrap().status, 200);
    }
    let (v, ok) = agent
        .wait_metric("mirror_dropped_sampled_out", |v| v >= 5.0, SETTLE)
        .await;
    assert!(ok, "dropped_sampled_out = {v}");
    reload(
        &agent,
        &path,
        target("a", &a, "sample = { percent = 100 }"),
        2.0,
    )
    .await;
    for i in 5..10 {
        assert_eq!(conn.get(&format!("/p/{i}")).await.unwrap().status, 200);
    }
    let mut got: Vec<usize> = a.wait_for(5, SETTLE).await.iter().map(index).collect();
    got.sort_unstable();
    assert_eq!(got, [5, 6, 7, 8, 9]);
}
per_haproxy!(reload_adds_targets_and_changes_policy);
