//! Reliability and security of the real `spoa-mirror` binary (issue 6): hostile bytes on the
//! SPOP port, idle connections and connection storms next to a live HAProxy, slowloris,
//! mirror faults measured from the SPOP side (ACK latency), HAProxy killed / reloaded /
//! stopped, the agent killed and restarted under HAProxy, secrets in debug logs, and where
//! mirrored requests may connect.
//!
//! The `#[ignore]`d tests are the heavy ones (100,000 requests, overload, soak); run them with
//! `scripts/reliability.sh` (and `scripts/soak.sh`), which record their figures. Every test
//! prints its figures on lines starting with `RELIABILITY`.

mod common;
mod support;

use common::agent::{Agent, AGENT_BIN};
use common::client::{get_many, HttpConn};
use common::haproxy::{haproxy_26, Haproxy, HaproxyBin, MirrorSetup};
use common::sink::{Behavior, Sink};
use common::{free_port, local, poll_until, process_listens_on, stop_child};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::agent::Client;
use support::{hex, wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SETTLE: Duration = Duration::from_secs(20);

// ===== process probes (/proc) =====

fn rss_kib(pid: u32) -> u64 {
    common::status_kib(pid, "VmRSS:")
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Socket inodes of TCP connections (not listeners) whose local (`remote == false`) or
/// remote port is `port`, from `/proc/net/tcp` (`sl local rem st ... inode`).
fn connection_inodes(port: u16, remote: bool) -> Vec<String> {
    tcp_inodes(port, remote, |state| state != "0A")
}

/// Socket inodes of TCP rows whose local or remote port is `port` and whose state (hex,
/// `01` ESTABLISHED, `0A` LISTEN, `08` CLOSE_WAIT) passes `keep`.
fn tcp_inodes(port: u16, remote: bool, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    let suffix = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            let (local, rem, state, inode) =
                (cols.get(1)?, cols.get(2)?, cols.get(3)?, cols.get(9)?);
            let addr = if remote { rem } else { local };
            (addr.ends_with(&suffix) && keep(state)).then(|| inode.to_string())
        })
        .collect()
}

/// How many of `pid`'s descriptors are sockets among `inodes`.
fn fds_among(pid: u32, inodes: &[String]) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| {
                let t = t.to_string_lossy();
                inodes.iter().any(|i| t == format!("socket:[{i}]"))
            })
        })
        .count()
}

/// How many of `pid`'s descriptors are accepted SPOP connections (local port `port`).
fn spop_fds(pid: u32, port: u16) -> usize {
    fds_among(pid, &connection_inodes(port, false))
}

/// Descriptors other than connections to the mirror at `mirror_port` (the engine's keep-alive
/// pool, closed after 30 s idle by design, is not a leak) and than SPOP connections on
/// `spop_port` whose peer is still there (ESTABLISHED: HAProxy's, and HAProxy 3.x's SPOE
/// multiplexer may open more under load and keep them idle). A connection the agent failed
/// to close after its peer left would be CLOSE_WAIT, and counted.
fn fds_without_pools(pid: u32, mirror_port: u16, spop_port: u16) -> usize {
    fd_count(pid)
        .saturating_sub(fds_among(pid, &connection_inodes(mirror_port, true)))
        .saturating_sub(fds_among(pid, &tcp_inodes(spop_port, false, |s| s == "01")))
}

/// Samples a process's RSS every `every` until dropped; keeps the peak.
struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<Vec<u64>>>,
}

impl RssSampler {
    fn start(pid: u32, every: Duration) -> RssSampler {
        let peak_kib = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak_kib.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            // Bounded: at most a day of samples.
            for _ in 0..86_400 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let v = rss_kib(pid);
                p.fetch_max(v, Ordering::Relaxed);
                samples.push(v);
                tokio::time::sleep(every).await;
            }
            samples
        });
        RssSampler {
            peak_kib,
            stop,
            task: Some(task),
        }
    }

    fn peak_mib(&self) -> f64 {
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }

    async fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

// ===== SPOP side =====

/// A HELLO-ed SPOP session to the agent (no capabilities: one NOTIFY at a time).
async fn session(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    c.send(&wire::haproxy_hello(16380, "")).await;
    let hello = c.frame().await.expect("AGENT-HELLO");
    assert_eq!(hello.get(4), Some(&wire::T_AGENT_HELLO), "{}", hex(&hello));
    c
}

/// One NOTIFY (a `mirror` message for `path`) and its ACK; returns the round trip.
async fn timed_notify(c: &mut Client, sid: u64, path: &str) -> Duration {
    let frame = wire::notify(sid, 1, &wire::mirror_message(path));
    let t = Instant::now();
    c.send(&frame).await;
    assert_eq!(c.frame_hex().await, hex(&wire::ack(sid, 1)), "ACK of {sid}");
    t.elapsed()
}

/// `n` sequential NOTIFYs; returns the sorted round trips.
async fn latencies(c: &mut Client, first_sid: u64, n: u64, path: &str) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        out.push(timed_notify(c, first_sid + i, &format!("{path}/{i}")).await);
    }
    out.sort();
    out
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let idx = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1);
    sorted.get(idx).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Reads until the peer closes (EOF or reset) or `timeout`; returns the bytes and whether it
/// closed.
async fn read_to_close(s: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failure replays.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A TLS 1.2/1.3 ClientHello record as a browser starts (record header `16 03 01 LEN`).
fn tls_client_hello() -> Vec<u8> {
    let mut body = vec![0x01, 0x00, 0x00, 0xfc, 0x03, 0x03];
    body.extend_from_slice(&pseudo_random(7, 32)); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02, 0x01, 0x00]);
    body.resize(0x100, 0);
    let mut rec = vec![0x16, 0x03, 0x01, 0x01, 0x00];
    rec.extend_from_slice(&body);
    rec
}

// ===== hostile input =====

/// Bytes that are not SPOP at all: refused at the length prefix (nothing reserved for the
/// claimed length: virtual memory does not grow by it), one log line per connection, the
/// agent's other connections keep being served (a live session keeps getting ACKs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_are_refused_without_allocation_or_disturbance() {
    let sink = Sink::start("mirror").await;
    let agent = Agent::builder().mirror(&sink.url()).start().await;
    let pid = agent.pid();

    // A live session acking all along, on its own task.
    let mut live = session(agent.addr()).await;
    timed_notify(&mut live, 1, "/warm").await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let live_task = {
        let (stop, acked) = (stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            for sid in 2..1_000_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                worst = worst.max(timed_notify(&mut live, sid, "/live").await);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            worst
        })
    };

    let rss_before = rss_kib(pid);
    let peak_before = common::status_kib(pid, "VmPeak:");
    let mut hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "http",
            b"GET / HTTP/1.1\r\nHost: agent\r\nUser-Agent: curl/8\r\n\r\n".to_vec(),
        ),
        ("tls", tls_client_hello()),
        (
            "4GiB",
            [&[0xFF, 0xFF, 0xFF, 0xFF][..], &[1, 0, 0, 0, 1, 0, 0]].concat(),
        ),
        (
            "2GiB",
            [&[0x80, 0, 0, 0][..], &pseudo_random(1, 64)].concat(),
        ),
        // Just over the 1 MiB max-frame-size.
        (
            "1MiB+1",
            [&0x0010_0001u32.to_be_bytes()[..], &[0u8; 16]].concat(),
        ),
    ];
    for seed in 0..8 {
        // Random bytes behind a big length prefix...
        let mut r = pseudo_random(100 + seed, 4096);
        if let Some(b) = r.first_mut() {
            *b |= 0x01;
        }
        hostile.push(("random", r));
        // ...and a random frame of a plausible length (decoded, then refused as not a HELLO).
        let mut f = (200u32).to_be_bytes().to_vec();
        f.extend_from_slice(&pseudo_random(200 + seed, 200));
        hostile.push(("random-frame", f));
    }
    // After a good HELLO: a NOTIFY claiming 4 GiB.
    let mut after_hello = wire::haproxy_hello(16380, "");
    after_hello.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 3, 0, 0, 0, 1, 1, 1]);
    hostile.push(("4GiB-after-hello", after_hello));

    let mut peers = Vec::new();
    for (what, bytes) in &hostile {
        let mut s = TcpStream::connect(agent.addr()).await.unwrap();
        let peer = s.local_addr().unwrap();
        let _ = s.write_all(bytes).await;
        let (answer, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
        assert!(
            closed,
            "{what}: the agent kept the connection open; answered {}",
            hex(&answer)
        );
        peers.push((*what, peer));
    }

    stop.store(true, Ordering::Relaxed);
    let worst_live = live_task.await.expect("live session");
    let rss_after = rss_kib(pid);
    let peak_after = common::status_kib(pid, "VmPeak:");
    let acks = acked.load(Ordering::Relaxed);
    assert!(acks > 0, "the live session got no ACK meanwhile");
    // A new session is served too.
    let mut fresh = session(agent.addr()).await;
    timed_notify(&mut fresh, 1, "/after").await;

    // No amplification: at most one log line per hostile connection (the connection span
    // names the peer), and protocol-error warnings are throttled to one per 10 s, so the
    // first is logged and the rest are counted. The agent writes its log from a background
    // thread: wait until the first peer's line appears.
    let lines_for = |log: &str, peer: &SocketAddr| {
        log.lines()
            .filter(|l| l.contains(&format!("peer={peer}")))
            .count()
    };
    let logged = poll_until(Duration::from_secs(10), || {
        let log = agent.output();
        peers
            .iter()
            .any(|(_, p)| lines_for(&log, p) > 0)
            .then_some(())
    })
    .await;
    let log = agent.output();
    assert!(logged.is_some(), "no protocol error was logged\n{log}");
    for (what, peer) in &peers {
        let lines = lines_for(&log, peer);
        assert!(lines <= 1, "{what} ({peer}): {lines} log lines\n{log}");
    }
    assert_eq!(
        agent.metric("protocol_errors_total").await as usize,
        hostile.len()
    );
    // The smallest claimed length above is 1 MiB + 1 and the largest 4 GiB: reserving any of
    // them would show in VmPeak; 64 MiB leaves room for a new malloc arena.
    let peak_growth = peak_after.saturating_sub(peak_before);
    assert!(peak_growth < 64 * 1024, "VmPeak grew by {peak_growth} KiB");
    let rss_growth = rss_after.saturating_sub(rss_before);
    assert!(rss_growth < 16 * 1024, "RSS grew by {rss_growth} KiB");
    eprintln!(
        "RELIABILITY hostile: {} connections refused, 1 log line each; live session {acks} ACKs \
         meanwhile (worst {:.1} ms); RSS {rss_before} -> {rss_after} KiB; VmPeak +{peak_growth} KiB",
        hostile.len(),
        ms(worst_live)
    );
}

/// Slowloris with the in-process agent (the partial-frame timeout, `SpopConfig::frame_timeout`,
/// has no command-line option; 30 s in the binary): half a frame then silence is closed with
/// AGENT-DISCONNECT(timeout) after the frame timeout, while another connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_half_frame_is_closed_after_the_frame_timeout() {
    let cfg = spoa_mirror::config::SpopConfig {
        frame_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let agent = support::agent::Agent::start(cfg).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut c = agent.ready("").await;
        let frame = wire::notify(1, 1, &wire::mirror_message("/slow"));
        c.send(frame.get(..frame.len() / 2).unwrap()).await;
        slow.push(c);
    }
    let started = Instant::now();
    // Meanwhile another connection is served at once.
    let mut other = agent.ready("").await;
    for sid in 1..=20 {
        let rt = timed_notify(&mut other, sid, "/other").await;
        assert!(rt < Duration::from_millis(500), "ACK took {rt:?}");
    }
    for c in &mut slow {
        c.assert_disconnect(2).await;
        c.assert_closed().await;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    eprintln!("RELIABILITY slowloris: 50 half frames closed after {took:?} (frame timeout 1 s)");
}

/// The binary's `--idle-timeout`: a HELLO-ed connection that says nothing more is closed with
/// AGENT-DISCONNECT(timeout); a busy one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_silent_connections_of_the_binary() {
    let agent = Agent::start(&["--idle-timeout", "1s"]).await;
    let mut idle = session(agent.addr()).await;
    let mut busy = session(agent.addr()).await;
    let started = Instant::now();
    for sid in 1..=12 {
        timed_notify(&mut busy, sid, "/busy").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    idle.assert_disconnect(2).await;
    idle.assert_closed().await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    // `busy` outlived the idle one's timeout and is still served.
    timed_notify(&mut busy, 99, "/still").await;
}

/// The binary holds a half frame for the 30 s default frame timeout, then closes it; meanwhile
/// other connections are served. Slow, hence ignored (scripts/reliability.sh runs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn slowloris_binary_30s_frame_timeout() {
    let agent = Agent::start(&[]).await;
    // A raw socket: the support client gives up after 10 s of silence.
    let mut slow = TcpStream::connect(agent.addr()).await.unwrap();
    slow.write_all(&wire::haproxy_hello(16380, ""))
        .await
        .unwrap();
    let mut hello = [0u8; 512];
    let n = slow.read(&mut hello).await.unwrap();
    assert_eq!(
        hello.get(4),
        Some(&wire::T_AGENT_HELLO),
        "{}",
        hex(&hello[..n])
    );
    let frame = wire::notify(1, 1, &wire::mirror_message("/slow"));
    slow.write_all(frame.get(..10).unwrap()).await.unwrap();
    let started = Instant::now();
    let mut other = session(agent.addr()).await;
    timed_notify(&mut other, 1, "/other").await;
    let (answer, closed) = read_to_close(&mut slow, Duration::from_secs(45)).await;
    let took = started.elapsed();
    assert!(closed, "still open after {took:?}");
    assert_eq!(hex(&answer), hex(&wire::agent_disconnect(2)));
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(40),
        "{took:?}"
    );
    timed_notify(&mut other, 2, "/other").await;
    eprintln!("RELIABILITY slowloris-binary: half frame closed after {took:?}");
}

// ===== idle connections and a storm next to a live HAProxy =====

/// The agent binary, a HAProxy in front of it, a primary and a mirror sink.
struct Stack {
    primary: Sink,
    mirror: Sink,
    agent: Agent,
    hap: Haproxy,
    bin: HaproxyBin,
    setup: MirrorSetup,
}

impl Stack {
    async fn start(bin: HaproxyBin, agent_args: &[&str]) -> Stack {
        let primary = Sink::start("primary").await;
        let mirror = Sink::start("mirror").await;
        let agent = Agent::builder()
            .mirror(&mirror.url())
            .args(agent_args.iter().copied())
            .start()
            .await;
        let setup = MirrorSetup::new(&bin, primary.addr(), agent.addr());
        let hap = Haproxy::start(&bin, &setup).await;
        hap.wait_server_status("mirroragents", "agent1", "UP", SETTLE)
            .await;
        Stack {
            primary,
            mirror,
            agent,
            hap,
            bin,
            setup,
        }
    }

    /// `n` GETs through HAProxy on `conns` connections; all must be 200 from the primary.
    async fn traffic(&self, prefix: &str, n: usize, conns: usize) {
        let resps = get_many(self.hap.addr(), prefix, n, conns)
            .await
            .unwrap_or_else(|e| panic!("client error through HAProxy: {e}"));
        assert_eq!(resps.len(), n);
        for r in &resps {
            assert_eq!(r.status, 200, "{r:?}");
        }
    }

    /// Requests the mirror got whose target starts with `prefix`.
    fn mirrored(&self, prefix: &str) -> usize {
        self.mirror
            .requests()
            .iter()
            .filter(|r| r.target.starts_with(prefix))
            .count()
    }

    async fn wait_mirrored(&self, prefix: &str, n: usize) -> usize {
        poll_until(SETTLE, || (self.mirrored(prefix) >= n).then_some(()))
            .await
            .map_or_else(|| self.mirrored(prefix), |()| self.mirrored(prefix))
    }
}

/// 1,000 idle TCP connections, then 3,000 connect/close at a bounded rate, while HAProxy
/// sends traffic through the agent: every request answered and mirrored, RSS bounded, and
/// once the idle connections are closed the agent holds as many descriptors as before.
async fn idle_connections_and_storm_next_to_live_haproxy(bin: HaproxyBin) {
    let st = Stack::start(bin, &[]).await;
    let pid = st.agent.pid();
    st.traffic("/warm/", 20, 2).await;
    assert_eq!(st.wait_mirrored("/warm/", 20).await, 20);
    let mport = st.mirror.port();
    let fds_before = fds_without_pools(pid, mport, st.agent.port());
    let rss_before = rss_kib(pid);
    let sampler = RssSampler::start(pid, Duration::from_millis(200));

    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(
            TcpStream::connect(st.agent.addr())
                .await
                .expect("idle connect"),
        );
    }
    let open = poll_until(SETTLE, || {
        (spop_fds(pid, st.agent.port()) >= 1000).then_some(())
    })
    .await;
    assert!(open.is_some(), "the agent did not accept 1000 connections");

    // The storm (bounded: 3000 connections, at most 100 in flight at once) and HAProxy traffic
    // at the same time.
    let addr = st.agent.addr();
    let storm = tokio::spawn(async move {
        let started = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(100));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..3000u32 {
            let permit = sem.clone().acquire_owned().await.unwrap();
            set.spawn(async move {
                let _permit = permit;
                if let Ok(mut s) = TcpStream::connect(addr).await {
                    // Half of them say HELLO first, as a reloading HAProxy would.
                    if i % 2 == 0 {
                        let _ = s.write_all(&wire::haproxy_hello(16380, "")).await;
                        let mut b = [0u8; 512];
                        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await;
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
        started.elapsed()
    });
    st.traffic("/storm/", 400, 4).await;
    let storm_took = storm.await.unwrap();
    assert_eq!(st.wait_mirrored("/storm/", 400).await, 400);
    assert!(
        st.hap.spoe_errors().is_empty(),
        "SPOE errors: {:?}",
        st.hap.spoe_errors()
    );

    drop(idle);
    let fds_after = poll_until(SETTLE, || {
        let n = fds_without_pools(pid, mport, st.agent.port());
        (n <= fds_before).then_some(n)
    })
    .await
    .unwrap_or_else(|| fds_without_pools(pid, mport, st.agent.port()));
    let peak = sampler.peak_mib();
    sampler.finish().await;
    assert!(
        fds_after <= fds_before,
        "fd leak: {fds_before} before, {fds_after} after"
    );
    assert!(peak < 200.0, "peak RSS {peak:.1} MiB");
    st.traffic("/after/", 20, 2).await;
    assert_eq!(st.wait_mirrored("/after/", 20).await, 20);
    eprintln!(
        "RELIABILITY idle+storm: 1000 idle + 3000 storm connections in {storm_took:?} while 400 \
         requests went through HAProxy {}, all mirrored; fds {fds_before} -> {fds_after}; RSS \
         {:.1} MiB before, peak {peak:.1} MiB",
        st.bin.label,
        rss_before as f64 / 1024.0
    );
}

per_haproxy!(idle_connections_and_storm_next_to_live_haproxy);

// ===== mirror faults, seen from the SPOP side =====

/// A server that answers every connection with bytes that are not HTTP.
async fn garbage_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind((common::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(b"\x00\x01garbage\xff\r\n\r\nnot http at all")
                    .await;
            });
        }
    });
    addr
}

/// p50/p99 of 200 sequential NOTIFY->ACK round trips on `c`.
async fn ack_p99(c: &mut Client, sid: &mut u64, path: &str) -> (Duration, Duration) {
    let l = latencies(c, *sid, 200, path).await;
    *sid += 200;
    (quantile(&l, 0.5), quantile(&l, 0.99))
}

/// Slow (2 s, 30 s), refusing, resetting, closing and garbage-answering mirrors: the ACK
/// latency p99 stays that of a healthy mirror, the counters name the fault, and delivery
/// resumes when the mirror heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_faults_do_not_change_ack_latency() {
    let sink = Sink::start("mirror").await;
    let agent = Agent::builder()
        .mirror(&sink.url())
        .args(["--mirror-timeout", "3s", "--mirror-connect-timeout", "1s"])
        .start()
        .await;
    let mut c = session(agent.addr()).await;
    let mut sid = 1;
    let (base50, base99) = ack_p99(&mut c, &mut sid, "/healthy").await;
    sink.wait_for(200, SETTLE).await;

    let mut report = vec![format!(
        "healthy p50 {:.2} p99 {:.2} ms",
        ms(base50),
        ms(base99)
    )];
    let faults: &[(&str, Behavior, &str)] = &[
        (
            "slow 2s",
            Behavior::Slow(Duration::from_secs(2)),
            "mirror_status_2xx",
        ),
        (
            "slow 30s",
            Behavior::Slow(Duration::from_secs(30)),
            "mirror_failed_timeout",
        ),
        ("reset", Behavior::Reset, "mirror_failed_other"),
        ("closing", Behavior::Close, "mirror_failed_other"),
    ];
    for (name, behavior, counter) in faults {
        sink.set_behavior(*behavior).await;
        let before = agent.metric(counter).await;
        let (p50, p99) = ack_p99(
            &mut c,
            &mut sid,
            &format!("/fault-{}", name.replace(' ', "-")),
        )
        .await;
        // Bounded by what a healthy mirror gives, not by the mirror: the fault would add
        // seconds if the ACK waited on it.
        let bound = (base99 * 5).max(Duration::from_millis(50));
        assert!(p99 < bound, "{name}: ACK p99 {p99:?} vs healthy {base99:?}");
        let (v, ok) = agent
            .wait_metric(counter, |v| v >= before + 1.0, SETTLE)
            .await;
        assert!(ok, "{name}: {counter} stayed at {v}");
        report.push(format!(
            "{name} p50 {:.2} p99 {:.2} ms, {counter} +{}",
            ms(p50),
            ms(p99),
            v - before
        ));
    }
    // Healed: new requests arrive again.
    sink.set_behavior(Behavior::Ok).await;
    let before = agent.metric("mirror_status_2xx").await;
    let (_, healed99) = ack_p99(&mut c, &mut sid, "/healed").await;
    let (v, ok) = agent
        .wait_metric("mirror_status_2xx", |v| v >= before + 200.0, SETTLE)
        .await;
    assert!(ok, "after healing only {} of 200 delivered", v - before);
    let healed = sink
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/healed"))
        .count();
    assert_eq!(healed, 200);
    report.push(format!(
        "healed p99 {:.2} ms, 200/200 delivered",
        ms(healed99)
    ));

    // Refused connections (a port nobody listens on: the sink's own Refuse mode would still
    // serve the agent's pooled keep-alive connections), garbage answers and a name that does
    // not resolve, on agents of their own.
    let garbage = garbage_server().await;
    let closed_port = free_port();
    for (name, url, counter) in [
        (
            "refusing",
            format!("http://127.0.0.1:{closed_port}/"),
            "mirror_failed_connect",
        ),
        (
            "garbage",
            format!("http://{garbage}/"),
            "mirror_failed_other",
        ),
        (
            "dns",
            "http://mirror.does-not-resolve.invalid/".to_string(),
            "mirror_failed_connect",
        ),
    ] {
        let a = Agent::builder()
            .mirror(&url)
            .args(["--mirror-timeout", "3s", "--mirror-connect-timeout", "1s"])
            .start()
            .await;
        let mut c = session(a.addr()).await;
        let mut sid = 1;
        let (p50, p99) = ack_p99(&mut c, &mut sid, "/x").await;
        let bound = (base99 * 5).max(Duration::from_millis(50));
        assert!(p99 < bound, "{name}: ACK p99 {p99:?} vs healthy {base99:?}");
        let (v, ok) = a.wait_metric(counter, |v| v >= 1.0, SETTLE).await;
        assert!(ok, "{name}: {counter} = {v}");
        report.push(format!(
            "{name} p50 {:.2} p99 {:.2} ms, {counter} {v}",
            ms(p50),
            ms(p99)
        ));
    }
    eprintln!("RELIABILITY mirror-faults: {}", report.join("; "));
}

// ===== HAProxy faults =====

/// HAProxy killed mid-stream (SIGKILL: connections reset), then a new one, then a graceful
/// stop: the agent closes every SPOP connection it had, serves the next HAProxy, and ends
/// with the descriptors it started with.
async fn haproxy_killed_restarted_and_stopped_gracefully(bin: HaproxyBin) {
    let mut st = Stack::start(bin, &[]).await;
    let pid = st.agent.pid();
    let port = st.agent.port();
    let mport = st.mirror.port();
    let fds_idle = fds_without_pools(pid, mport, st.agent.port());

    // Traffic in flight when HAProxy dies.
    let addr = st.hap.addr();
    let load = tokio::spawn(async move { get_many(addr, "/killed/", 2000, 8).await });
    poll_until(SETTLE, || (st.mirrored("/killed/") >= 50).then_some(())).await;
    common::send_signal(st.hap.pid(), libc::SIGKILL);
    let _ = load.await; // errors expected: HAProxy died under the client.
    let gone = poll_until(SETTLE, || (spop_fds(pid, port) == 0).then_some(())).await;
    assert!(
        gone.is_some(),
        "{} SPOP connections left",
        spop_fds(pid, port)
    );
    let (active, ok) = st
        .agent
        .wait_metric("connections_active", |v| v == 0.0, SETTLE)
        .await;
    assert!(ok, "connections_active {active}");

    // A new HAProxy (same configuration) is served.
    st.hap.terminate();
    st.hap = Haproxy::start(&st.bin, &st.setup).await;
    st.hap
        .wait_server_status("mirroragents", "agent1", "UP", SETTLE)
        .await;
    st.traffic("/second/", 200, 4).await;
    assert_eq!(st.wait_mirrored("/second/", 200).await, 200);

    // Graceful stop under load.
    let addr = st.hap.addr();
    let load = tokio::spawn(async move { get_many(addr, "/soft/", 500, 4).await });
    poll_until(SETTLE, || (st.mirrored("/soft/") >= 20).then_some(())).await;
    let exited = st.hap.soft_stop(SETTLE);
    assert!(exited.is_some(), "HAProxy did not stop on SIGUSR1");
    let _ = load.await;
    let gone = poll_until(SETTLE, || (spop_fds(pid, port) == 0).then_some(())).await;
    assert!(
        gone.is_some(),
        "{} SPOP connections left",
        spop_fds(pid, port)
    );
    let fds_end = poll_until(SETTLE, || {
        let n = fds_without_pools(pid, mport, st.agent.port());
        (n <= fds_idle).then_some(n)
    })
    .await;
    assert!(
        fds_end.is_some(),
        "fds {} at the end (mirror pool excluded), {fds_idle} with HAProxy idle",
        fds_without_pools(pid, mport, st.agent.port())
    );
    assert!(st.agent.is_running(), "the agent exited");
    eprintln!(
        "RELIABILITY haproxy-faults: SIGKILL mid-stream, restart, soft stop: agent kept running, \
         SPOP fds 0 after each, fds (mirror pool excluded) {fds_idle} -> {}",
        fds_without_pools(pid, mport, st.agent.port())
    );
}

per_haproxy!(haproxy_killed_restarted_and_stopped_gracefully);

/// HAProxy (master-worker) reloaded under load: the old worker's SPOP connections close, the
/// new worker's are served, clients see only 200s, no descriptor is left behind.
async fn haproxy_reload_under_load(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let mirror = Sink::start("mirror").await;
    let agent = Agent::builder().mirror(&mirror.url()).start().await;
    let mut setup = MirrorSetup::new(&bin, primary.addr(), agent.addr());
    setup.global_extra.push("master-worker".into());
    let files = [
        ("haproxy.cfg", setup.haproxy_cfg()),
        ("spoe.cfg", setup.spoe_cfg()),
    ];
    // The worker, not the master, listens: wait for the port itself.
    let hap = Haproxy::start_files(&bin, &files, &[]).await;
    let frontend = local(setup.frontend_port);
    let up = poll_until(SETTLE, || {
        common::port_is_listening(setup.frontend_port).then_some(())
    })
    .await;
    assert!(up.is_some(), "frontend not listening:\n{}", hap.log());
    // Requests before, during and after the reload, each on a new connection (a keep-alive
    // connection of the old worker is closed by the reload, which a client sees as a retry).
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            for i in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let status = match HttpConn::connect(frontend).await {
                    Ok(mut c) => c.get(&format!("/reload/{i}")).await.map_or(0, |r| r.status),
                    Err(_) => 1,
                };
                *statuses.entry(status).or_default() += 1;
            }
            statuses
        })
    };
    poll_until(SETTLE, || {
        (mirror
            .requests()
            .iter()
            .filter(|r| r.target.starts_with("/reload/"))
            .count()
            >= 50)
            .then_some(())
    })
    .await;
    hap.signal(libc::SIGUSR2);
    let reloaded = poll_until(SETTLE, || {
        (hap.log().matches("Loading success").count() >= 2).then_some(())
    })
    .await;
    assert!(reloaded.is_some(), "no reload:\n{}", hap.log());
    let before = mirror.count();
    // The new worker mirrors too.
    poll_until(SETTLE, || (mirror.count() >= before + 100).then_some(())).await;
    stop.store(true, Ordering::Relaxed);
    let statuses = load.await.unwrap();
    let total: usize = statuses.values().sum();
    let ok = statuses.get(&200).copied().unwrap_or(0);
    assert!(
        mirror.count() >= before + 100,
        "nothing mirrored after the reload"
    );
    assert_eq!(ok, total, "client statuses {statuses:?}");
    // Every request answered 200 by the primary reached the mirror exactly once.
    let primary_n = primary.count();
    let mirrored_n = poll_until(SETTLE, || {
        let n = mirror.count();
        (n >= primary_n).then_some(n)
    })
    .await
    .unwrap_or_else(|| mirror.count());
    assert_eq!(
        mirrored_n, primary_n,
        "primary {primary_n}, mirror {mirrored_n}"
    );
    eprintln!(
        "RELIABILITY haproxy-reload: {total} requests across a reload, all 200, \
         {mirrored_n}/{primary_n} mirrored"
    );
}

per_haproxy!(haproxy_reload_under_load);

// ===== agent faults =====

/// SIGTERM while 100 mirrored requests are on the wire (mirror answers after 1 s): all of
/// them complete within the drain deadline, none dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_in_flight() {
    let sink = Sink::start("mirror").await;
    sink.set_behavior(Behavior::Slow(Duration::from_secs(1)))
        .await;
    let mut agent = Agent::builder()
        .mirror(&sink.url())
        .args(["--drain-timeout", "10s"])
        .start()
        .await;
    let mut c = session(agent.addr()).await;
    for sid in 1..=100 {
        timed_notify(&mut c, sid, "/drain").await;
    }
    sink.wait_for(100, SETTLE).await;
    let t = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(SETTLE).expect("exited");
    assert!(status.success(), "{status:?}");
    let out = agent.output();
    assert!(out.contains("mirrored 100 (2xx 100"), "{out}");
    assert!(out.contains("shutdown 0"), "{out}");
    eprintln!(
        "RELIABILITY sigterm-drain: 100 in flight, drained in {:?}, 0 dropped",
        t.elapsed()
    );
}

/// Start the agent binary on a given port (for a restart on the port HAProxy knows).
async fn spawn_agent_on(port: u16, mirror: &str) -> Child {
    let child = Command::new(AGENT_BIN)
        .args([
            "-r0",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            mirror,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent");
    let pid = child.id();
    let up = poll_until(Duration::from_secs(15), || {
        process_listens_on(pid, port).then_some(())
    })
    .await;
    assert!(up.is_some(), "restarted agent not listening on {port}");
    child
}

/// SIGKILL the agent while HAProxy serves clients, then restart it on the same port: clients
/// never see an error, `option spop-check` marks the agent DOWN then UP, and mirroring
/// resumes.
async fn agent_sigkill_and_restart_under_haproxy(bin: HaproxyBin) {
    let st = Stack::start(bin, &[]).await;
    let port = st.agent.port();
    let frontend = st.hap.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            let mut conn = HttpConn::connect(frontend).await.ok();
            for i in 0..1_000_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let status = match conn.as_mut() {
                    Some(c) => c.get(&format!("/kill/{i}")).await.map_or(0, |r| r.status),
                    None => 1,
                };
                *statuses.entry(status).or_default() += 1;
            }
            statuses
        })
    };
    poll_until(SETTLE, || (st.mirrored("/kill/") >= 20).then_some(())).await;
    common::send_signal(st.agent.pid(), libc::SIGKILL);
    st.hap
        .wait_server_status("mirroragents", "agent1", "DOWN", SETTLE)
        .await;
    let mut restarted = spawn_agent_on(port, &st.mirror.url()).await;
    st.hap
        .wait_server_status("mirroragents", "agent1", "UP", SETTLE)
        .await;
    let before = st.mirror.count();
    let resumed = poll_until(SETTLE, || (st.mirror.count() >= before + 50).then_some(())).await;
    stop.store(true, Ordering::Relaxed);
    let statuses = load.await.unwrap();
    stop_child(&mut restarted, libc::SIGTERM, Duration::from_secs(10));
    assert!(
        resumed.is_some(),
        "mirroring did not resume after the restart"
    );
    let total: usize = statuses.values().sum();
    assert_eq!(
        statuses.get(&200).copied().unwrap_or(0),
        total,
        "client statuses {statuses:?}"
    );
    eprintln!(
        "RELIABILITY agent-sigkill: {total} client requests across kill + restart, all 200; \
         agent DOWN then UP; mirroring resumed"
    );
}

per_haproxy!(agent_sigkill_and_restart_under_haproxy);

// ===== security =====

/// Whatever the request target or Host says, the agent connects only to `-u`'s host: a decoy
/// server named in absolute-form targets and Host headers gets no connection.
async fn mirrored_requests_never_connect_to_the_named_host(bin: HaproxyBin) {
    let st = Stack::start(bin, &[]).await;
    let decoy = Sink::start("decoy").await;
    let d = decoy.addr();
    let reqs = [
        format!("GET http://{d}/abs HTTP/1.1\r\nHost: {d}\r\n\r\n"),
        format!("GET /host HTTP/1.1\r\nHost: {d}\r\n\r\n"),
        format!("GET /xfh HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Host: {d}\r\n\r\n"),
        format!("GET https://{d}/tls HTTP/1.1\r\nHost: {d}\r\n\r\n"),
        "GET /at HTTP/1.1\r\nHost: user@127.0.0.1\r\n\r\n".to_string(),
    ];
    let mut conn = HttpConn::connect(st.hap.addr()).await.unwrap();
    for r in &reqs {
        let resp = conn.send_raw("GET", r.as_bytes()).await.unwrap();
        assert!(resp.status < 500, "{r}: {}", resp.status);
    }
    let sent = st.primary.count();
    let mirrored = st.mirror.wait_for(sent, SETTLE).await.len();
    assert_eq!(mirrored, sent);
    assert_eq!(decoy.connections(), 0, "the agent connected to the decoy");
    assert_eq!(
        st.agent.metric("mirror_connections_total").await as u64,
        st.mirror.connections(),
        "connections opened by the agent vs accepted by the mirror"
    );
    eprintln!(
        "RELIABILITY ssrf: {sent} requests naming another host, all to the -u host, decoy 0 \
         connections"
    );
}

per_haproxy!(mirrored_requests_never_connect_to_the_named_host);

/// `--log-level debug` with a proxy password, and requests carrying Authorization and Cookie:
/// no secret appears in the log (the proxy did get the credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let proxy = Sink::start("proxy").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let proxy_url = format!("http://{}", proxy.addr());
    let mut agent = Agent::builder()
        .args([
            "--log-level",
            "debug",
            "-l",
            &format!("w:{}", log.display()),
        ])
        .args(["-u", "http://mirror.test:8080/"])
        .args(["-x", &proxy_url, "-U", "user:s3cret-proxy"])
        .args(["-H", "X-Proxy-Token: s3cret-header"])
        .start()
        .await;
    let pairs: [(&[u8], &[u8]); 3] = [
        (b"host", b"mirror.io"),
        (b"authorization", b"Bearer s3cret-bearer-token"),
        (b"cookie", b"session=s3cret-cookie1"),
    ];
    let mut block: Vec<u8> = pairs
        .iter()
        .flat_map(|(n, v)| [wire::lstr(n), wire::lstr(v)].concat())
        .collect();
    block.extend_from_slice(&[0, 0]);
    let hdrs = wire::binary(&block);
    let msg = wire::message(
        b"mirror",
        &[
            (b"arg_method", wire::string(b"POST")),
            (b"arg_path", wire::string(b"/login?user=alice")),
            (b"arg_ver", wire::string(b"1.1")),
            (b"arg_hdrs", hdrs),
            (b"arg_body", wire::binary(b"password=s3cret-body")),
        ],
    );
    let mut c = session(agent.addr()).await;
    c.send(&wire::notify(1, 1, &msg)).await;
    assert_eq!(c.frame_hex().await, hex(&wire::ack(1, 1)));
    let got = proxy.wait_for(1, SETTLE).await;
    let at_proxy = got.first().unwrap();
    assert_eq!(
        at_proxy.header_all("proxy-authorization"),
        vec!["Basic dXNlcjpzM2NyZXQtcHJveHk=".to_string()],
        "the proxy did not get exactly the -U credentials: {at_proxy:?}"
    );
    assert_eq!(
        at_proxy.header("authorization").as_deref(),
        Some("Bearer s3cret-bearer-token"),
        "the request's own Authorization is forwarded"
    );
    drop(c);
    agent.terminate();
    let text = std::fs::read_to_string(&log).unwrap_or_default() + &agent.output();
    assert!(text.contains("DEBUG"), "no debug line was logged:\n{text}");
    // base64("user:s3cret-proxy")
    for secret in ["s3cret", "dXNlcjpzM2NyZXQtcHJveHk"] {
        assert!(!text.contains(secret), "{secret:?} in the log:\n{text}");
    }
    eprintln!(
        "RELIABILITY secrets: debug log of {} lines, no proxy password, Authorization, Cookie \
         or body",
        text.lines().count()
    );
}

/// Userinfo in `-u` or `-x` is refused at startup without echoing the password.
#[test]
fn userinfo_in_urls_is_refused_without_echoing_the_password() {
    for args in [
        vec!["-u", "http://user:pw-s3cret@127.0.0.1:1/"],
        vec![
            "-u",
            "http://127.0.0.1:1/",
            "-x",
            "http://user:pw-s3cret@127.0.0.1:2",
        ],
    ] {
        let out = Command::new(AGENT_BIN)
            .args([
                "-r",
                "1s",
                "-a",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
            ])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run agent");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("pw-s3cret"), "{args:?}: {text}");
        eprintln!(
            "RELIABILITY userinfo {args:?}: exit {:?}",
            out.status.code()
        );
    }
}

/// With `-x URL -U user:pass`, the proxy must see only the agent's credentials: a client's own
/// Proxy-Authorization (meant for the proxy in front of HAProxy, if any) is not relayed next to
/// them (found by this test, fixed in src/mirror/mod.rs `Target::deliver`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_proxy_authorization_is_not_relayed_to_the_proxy() {
    let proxy = Sink::start("proxy").await;
    let agent = Agent::builder()
        .args(["-u", "http://mirror.test:8080/"])
        .args([
            "-x",
            &format!("http://{}", proxy.addr()),
            "-U",
            "user:s3cret-proxy",
        ])
        .start()
        .await;
    let mut block = [
        wire::lstr(b"host"),
        wire::lstr(b"mirror.io"),
        wire::lstr(b"proxy-authorization"),
        wire::lstr(b"Basic Y2xpZW50OnB3"),
    ]
    .concat();
    block.extend_from_slice(&[0, 0]);
    let msg = wire::message(
        b"mirror",
        &[
            (b"arg_method", wire::string(b"GET")),
            (b"arg_path", wire::string(b"/")),
            (b"arg_ver", wire::string(b"1.1")),
            (b"arg_hdrs", wire::binary(&block)),
        ],
    );
    let mut c = session(agent.addr()).await;
    c.send(&wire::notify(1, 1, &msg)).await;
    assert_eq!(c.frame_hex().await, hex(&wire::ack(1, 1)));
    let got = proxy.wait_for(1, SETTLE).await;
    assert_eq!(
        got.first().unwrap().header_all("proxy-authorization"),
        vec!["Basic dXNlcjpzM2NyZXQtcHJveHk=".to_string()]
    );
}

// ===== heavy: loss, overload, soak (scripts/reliability.sh, scripts/soak.sh) =====

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Below capacity with a healthy mirror, through each HAProxy: the mirror receives exactly the
/// requests the primary got (each unique path once: 0 lost, 0 duplicated), over
/// `RELIABILITY_REQUESTS` (default 100,000) requests.
async fn no_loss_no_duplicate_below_capacity(bin: HaproxyBin) {
    let st = Stack::start(bin, &[]).await;
    let n = env_num("RELIABILITY_REQUESTS", 100_000) as usize;
    let sampler = RssSampler::start(st.agent.pid(), Duration::from_secs(1));
    let t = Instant::now();
    st.traffic("/loss/", n, 16).await;
    let took = t.elapsed();
    // Everything the agent received is delivered: wait until the mirror has one request per
    // NOTIFY the agent counted (HAProxy may fail to send an event itself: see below).
    let (received, ok) = st
        .agent
        .wait_metric(
            "notify_total",
            |v| v >= n as f64 * 0.99,
            Duration::from_secs(120),
        )
        .await;
    assert!(ok, "the agent received only {received} NOTIFYs");
    let done = poll_until(Duration::from_secs(120), || {
        (st.mirrored("/loss/") >= received as usize).then_some(())
    })
    .await;
    let peak = sampler.peak_mib();
    sampler.finish().await;
    assert!(
        done.is_some(),
        "agent received {received} NOTIFYs, mirror got {}",
        st.mirrored("/loss/")
    );
    let count = |sink: &Sink| {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in sink.requests() {
            if r.target.starts_with("/loss/") {
                *seen.entry(r.target.clone()).or_default() += 1;
            }
        }
        seen
    };
    let (primary, mirror) = (count(&st.primary), count(&st.mirror));
    assert_eq!(primary.len(), n, "primary distinct paths");
    let dup: Vec<(&String, &usize)> = mirror.iter().filter(|(_, c)| **c > 1).collect();
    let extra = mirror.keys().filter(|k| !primary.contains_key(*k)).count();
    assert!(
        dup.is_empty(),
        "{} duplicated, e.g. {:?}",
        dup.len(),
        dup.first()
    );
    assert_eq!(extra, 0);
    let acked = st.agent.metric("ack_total").await;
    assert_eq!(acked, received, "NOTIFYs received vs ACKed");
    // The agent lost nothing it received: one mirrored request per NOTIFY.
    assert_eq!(
        mirror.len() as f64,
        received,
        "NOTIFYs received vs requests mirrored"
    );
    // What the primary got and the mirror did not are events HAProxy itself failed to send
    // (SPOE status != 0 in its log, e.g. st=1 with t_queue -1: stranded in its queue).
    let lost: Vec<&String> = primary
        .keys()
        .filter(|k| !mirror.contains_key(*k))
        .collect();
    let spoe_failed = st.hap.spoe_errors();
    assert!(
        lost.len() <= spoe_failed.len(),
        "{} requests not mirrored but only {} failed SPOE events in HAProxy's log: {:?}",
        lost.len(),
        spoe_failed.len(),
        lost.first()
    );
    for c in [
        "mirror_dropped_queue_full",
        "mirror_dropped_memory",
        "mirror_failed_other",
    ] {
        assert_eq!(st.agent.metric(c).await, 0.0, "{c}");
    }
    eprintln!(
        "RELIABILITY loss: {n} requests through HAProxy {} in {took:?} ({:.0} req/s): agent \
         received and ACKed {received} NOTIFYs, mirror got {} distinct, 0 duplicated, 0 lost \
         by the agent; {} never sent by HAProxy (failed SPOE events: {:?}); agent peak RSS \
         {peak:.1} MiB",
        st.bin.label,
        n as f64 / took.as_secs_f64(),
        mirror.len(),
        lost.len(),
        spoe_failed
    );
}

per_haproxy!(
    #[ignore = "heavy: scripts/reliability.sh"]
    no_loss_no_duplicate_below_capacity
);

/// A `mirror` message with a body of `body_len` bytes.
fn mirror_message_with_body(path: &str, body_len: usize) -> Vec<u8> {
    wire::message(
        b"mirror",
        &[
            (b"arg_method", wire::string(b"POST")),
            (b"arg_path", wire::string(path.as_bytes())),
            (b"arg_ver", wire::string(b"1.1")),
            (
                b"arg_hdrs",
                wire::binary(b"\x04host\x0bexample.com\x00\x00"),
            ),
            (b"arg_body", wire::binary(&vec![b'x'; body_len])),
        ],
    )
}

/// Above capacity (mirror answers after 100 ms, 4 requests at once): drops happen only at the
/// configured bound (the queue for small messages, the memory budget for large ones), each
/// one counted, every message accounted for, and RSS stays bounded (sampled every second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn overload_drops_only_at_the_bound_and_counts_them() {
    let mut report = Vec::new();
    for (name, body, args, bound) in [
        (
            "queue",
            0usize,
            ["--mirror-queue", "64", "--mirror-memory", "64M"],
            "mirror_dropped_queue_full",
        ),
        (
            "memory",
            // Fits HAProxy-style 16 KiB frames (the session announces 16380).
            12 * 1024,
            ["--mirror-queue", "4096", "--mirror-memory", "512K"],
            "mirror_dropped_memory",
        ),
    ] {
        let sink = Sink::start("mirror").await;
        sink.set_behavior(Behavior::Slow(Duration::from_millis(100)))
            .await;
        let agent = Agent::builder()
            .mirror(&sink.url())
            .args(["--mirror-concurrency", "4"])
            .args(args)
            .start()
            .await;
        let rss_start = rss_kib(agent.pid());
        let sampler = RssSampler::start(agent.pid(), Duration::from_secs(1));
        let per_conn = 5000u64;
        let mut tasks = tokio::task::JoinSet::new();
        for conn in 0..4u64 {
            let addr = agent.addr();
            tasks.spawn(async move {
                let mut c = session(addr).await;
                let mut worst = Duration::ZERO;
                for sid in 1..=per_conn {
                    let msg = mirror_message_with_body(&format!("/over/{conn}/{sid}"), body);
                    let t = Instant::now();
                    c.send(&wire::notify(sid, 1, &msg)).await;
                    assert_eq!(c.frame_hex().await, hex(&wire::ack(sid, 1)));
                    worst = worst.max(t.elapsed());
                }
                worst
            });
        }
        let mut worst = Duration::ZERO;
        while let Some(w) = tasks.join_next().await {
            worst = worst.max(w.expect("sender"));
        }
        let offered = 4 * per_conn;
        let queued = agent.metric("mirror_queued_total").await;
        let dropped_q = agent.metric("mirror_dropped_queue_full").await;
        let dropped_m = agent.metric("mirror_dropped_memory").await;
        assert_eq!(
            queued + dropped_q + dropped_m,
            offered as f64,
            "{name}: queued {queued} + dropped {dropped_q}/{dropped_m} != {offered}"
        );
        let dropped_at_bound = agent.metric(bound).await;
        assert!(dropped_at_bound > 0.0, "{name}: nothing dropped at {bound}");
        assert_eq!(
            dropped_q + dropped_m,
            dropped_at_bound,
            "{name}: drops elsewhere than {bound}"
        );
        // What was accepted is delivered.
        let (sent, ok) = agent
            .wait_metric(
                "mirror_status_2xx",
                |v| v >= queued,
                Duration::from_secs(120),
            )
            .await;
        let peak = sampler.peak_mib();
        sampler.finish().await;
        assert!(ok, "{name}: {sent} of {queued} accepted were delivered");
        assert!(
            peak - rss_start as f64 / 1024.0 < 64.0,
            "{name}: RSS {:.1} -> peak {peak:.1} MiB",
            rss_start as f64 / 1024.0
        );
        report.push(format!(
            "{name} bound: {offered} offered ({body} B bodies), {queued} queued and delivered, \
             {dropped_at_bound} dropped at {bound}, worst ACK {:.1} ms, RSS {:.1} -> peak {peak:.1} MiB",
            ms(worst),
            rss_start as f64 / 1024.0
        ));
    }
    eprintln!("RELIABILITY overload: {}", report.join("; "));
}

/// A steady rate through HAProxy 2.6 for `SOAK_SECS` (default 60; scripts/soak.sh: 600) at
/// `SOAK_RATE` requests/s (default 200): RSS and descriptors flat (start after a 10 s warm-up,
/// peak, end), every request mirrored, no SPOE error in HAProxy's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn soak_steady_rate() {
    let st = Stack::start(haproxy_26(), &[]).await;
    let secs = env_num("SOAK_SECS", 60);
    let rate = env_num("SOAK_RATE", 200).max(4);
    let pid = st.agent.pid();
    let mport = st.mirror.port();
    let frontend = st.hap.addr();
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..4 {
        let (sent, failed, stop) = (sent.clone(), failed.clone(), stop.clone());
        let period = Duration::from_secs_f64(4.0 / rate as f64);
        clients.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut conn = HttpConn::connect(frontend).await.expect("connect");
            for i in 0..u64::MAX {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tick.tick().await;
                match conn.get(&format!("/soak/{c}/{i}")).await {
                    Ok(r) if r.status == 200 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(n) = HttpConn::connect(frontend).await {
                            conn = n;
                        }
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss_start, fds_start) = (rss_kib(pid), fds_without_pools(pid, mport, st.agent.port()));
    let (mut rss_peak, mut fds_peak) = (rss_start, fds_start);
    let samples = secs.saturating_sub(10) / 10;
    let mut trace = Vec::new();
    for _ in 0..samples.max(1) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (r, f) = (rss_kib(pid), fds_without_pools(pid, mport, st.agent.port()));
        rss_peak = rss_peak.max(r);
        fds_peak = fds_peak.max(f);
        trace.push(format!("{:.1}/{f}", r as f64 / 1024.0));
    }
    stop.store(true, Ordering::Relaxed);
    while clients.join_next().await.is_some() {}
    let (rss_end, fds_end) = (rss_kib(pid), fds_without_pools(pid, mport, st.agent.port()));
    let total = sent.load(Ordering::Relaxed) as usize;
    let mirrored = poll_until(Duration::from_secs(60), || {
        let n = st.mirrored("/soak/");
        (n >= total).then_some(n)
    })
    .await
    .unwrap_or_else(|| st.mirrored("/soak/"));
    let hap_errors = st.hap.spoe_errors();
    let alerts: Vec<String> = st
        .hap
        .log()
        .lines()
        .filter(|l| l.contains("[ALERT]") || l.contains("[WARNING]"))
        .map(String::from)
        .collect();
    eprintln!(
        "RELIABILITY soak: {secs} s at {rate}/s through HAProxy {}: {total} requests, {} failed, \
         {mirrored} mirrored; RSS MiB start {:.1} peak {:.1} end {:.1}; fds (mirror pool \
         excluded) start {fds_start} peak {fds_peak} end {fds_end}; SPOE errors {}, \
         alerts/warnings {}; trace RSS/fds every 10 s: {}",
        st.bin.label,
        failed.load(Ordering::Relaxed),
        rss_start as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        hap_errors.len(),
        alerts.len(),
        trace.join(" ")
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    // The agent mirrored every NOTIFY it received and ACKed them all.
    let received = st.agent.metric("notify_total").await;
    assert_eq!(st.agent.metric("ack_total").await, received);
    assert_eq!(mirrored as f64, received, "NOTIFYs received vs mirrored");
    // HAProxy 2.6 now and then strands one event in its own queue (t_queue -1: never handed to
    // an applet, while its applets are idle) and logs a processing timeout for it. Those are
    // the only SPOE errors allowed, one per request the mirror lacks.
    let stranded = |l: &String| l.contains(" st=1 ") && l.contains("/-1/-1/-1/");
    assert!(hap_errors.iter().all(stranded), "{hap_errors:?}");
    assert_eq!(total - mirrored, hap_errors.len(), "{hap_errors:?}");
    assert!(alerts.is_empty(), "{alerts:?}");
    assert!(fds_end <= fds_start, "fds {fds_start} -> {fds_end}");
    assert!(
        rss_end <= rss_start + 8 * 1024,
        "RSS {rss_start} -> {rss_end} KiB"
    );
}
