//! Helpers of the mirror-target tests (tests/targets.rs, tests/targets_ops.rs): a config file
//! of `[[target]]` tables, HAProxy with `arg_src=src`, paced or bulk clients, and waiting until
//! the agent's counters say every request ended.

use super::agent::AgentProcess;
use super::client::HttpConn;
use super::haproxy::{Haproxy, HaproxyBin, MirrorSetup, MIRROR_ARGS};
use super::sink::{Recorded, Sink};
use std::time::{Duration, Instant};

pub const SETTLE: Duration = Duration::from_secs(20);

/// The documented message arguments plus the client address.
pub fn args_with_src() -> String {
    format!("{MIRROR_ARGS} arg_src=src")
}

/// A `[[target]]` table.
pub fn target(name: &str, sink: &Sink, extra: &str) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nurl = \"{}\"\n{extra}\n",
        sink.url()
    )
}

/// Writes the config file in a temp dir kept by the caller.
pub fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("targets.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// HAProxy in front of `agent`, with `arg_src=src` in the message.
pub async fn haproxy(bin: &HaproxyBin, primary: &Sink, agent: &AgentProcess) -> Haproxy {
    let mut setup = MirrorSetup::new(bin, primary.addr(), agent.addr());
    setup.message_args = args_with_src();
    Haproxy::start(bin, &setup).await
}

/// Sends `n` requests over `conns` keep-alive connections, request `i` with the headers
/// `headers(i)`; every one must get the primary's 200. Returns how long it took.
pub async fn send(
    hap: &Haproxy,
    n: usize,
    conns: usize,
    headers: impl Fn(usize) -> Vec<(String, String)> + Send + Sync + Clone + 'static,
    path: &'static str,
) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let (addr, headers) = (hap.addr(), headers.clone());
        tasks.spawn(async move {
            let mut conn = HttpConn::connect(addr).await.unwrap();
            for i in (c..n).step_by(conns) {
                let h = headers(i);
                let h: Vec<(&str, &str)> =
                    h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                let r = conn
                    .request("GET", &format!("{path}{i}"), &h, b"")
                    .await
                    .unwrap();
                assert_eq!(r.status, 200, "request {i}");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    started.elapsed()
}

/// Every byte a sink was handed for this request, as text (request line, headers, body).
pub fn bytes_of(r: &Recorded) -> String {
    let mut s = format!("{} {} {}\n", r.method, r.target, r.version);
    for (n, v) in &r.headers {
        s.push_str(&format!(
            "{}: {}\n",
            String::from_utf8_lossy(n.as_ref()),
            String::from_utf8_lossy(v.as_ref())
        ));
    }
    s.push_str(&String::from_utf8_lossy(&r.body));
    s
}

/// The request index a sink got (the last path segment).
pub fn index(r: &Recorded) -> usize {
    r.target
        .rsplit('/')
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap()
}

/// Waits (bounded: every 20 ms for [`SETTLE`]) until the sum of the agent's `fields` reaches
/// `want`: e.g. every offered request sent or dropped, so counts read afterwards are final.
pub async fn settle(agent: &AgentProcess, fields: &[&str], want: f64) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let m = agent.metrics().await;
        let v: f64 = fields.iter().map(|f| m.get(f).unwrap_or(0.0)).sum();
        if v >= want {
            return;
        }
        assert!(Instant::now() < deadline, "{fields:?} = {v}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const ENDED: &[&str] = &[
    "mirror_sent_total",
    "mirror_dropped_sampled_out",
    "mirror_dropped_filtered",
    "mirror_dropped_rate_limited",
    "mirror_dropped_breaker_open",
    "mirror_dropped_queue_full",
    "mirror_dropped_memory",
];

/// The messages the agent received (`notify_total`) for the `n` requests the clients sent and
/// got answers to (HAProxy answers only after the ACK, or after giving up on the message).
/// On a loaded machine HAProxy may give up on a few (an SPOE timeout, in its log): those never
/// reach the agent, so the tests count from what the agent got. At most 1 % may be missing,
/// and only with HAProxy saying why.
pub async fn received(agent: &AgentProcess, hap: &Haproxy, n: usize) -> usize {
    let got = agent.metric("notify_total").await as usize;
    if got < n {
        let errors = hap.spoe_errors();
        eprintln!(
            "HAProxy sent {got} of {n} messages; its SPOE errors: {:?}",
            errors.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            !errors.is_empty(),
            "{} messages missing and HAProxy logged no SPOE error",
            n - got
        );
        assert!(
            got * 100 >= n * 99,
            "only {got} of {n} messages reached the agent"
        );
    }
    assert!(got <= n, "{got} messages for {n} requests");
    got
}
