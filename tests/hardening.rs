//! Hardening (issue 11): peers that trickle, too many connections, large frames before HELLO,
//! NOTIFYs held by `-t` when HAProxy goes away. Each test failed on the code before its fix.
//!
//! The in-process agent (`support::agent`) serves the protocol cases; the real binary
//! (`common::agent`) is used where the figure is the process's own (memory, the metrics).
//! Lines starting with `RELIABILITY` are the figures quoted in RELIABILITY.md (run with
//! `--nocapture` to see them).

mod common;
mod support;

use spoa_mirror::config::SpopConfig;
use spoa_mirror::stats::get;
use std::time::{Duration, Instant};
use support::agent::{Agent, WAIT};
use support::hex;
use support::wire::{self, agent_disconnect, haproxy_hello, mirror_message, notify};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` one at a time, `gap` apart, until done or the agent closes; returns when the
/// first byte was written.
fn trickle(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
    gap: Duration,
) -> tokio::sync::oneshot::Receiver<Instant> {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut first = Some(first_tx);
        for b in bytes {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            if let Some(tx) = first.take() {
                let _ = tx.send(Instant::now());
            }
            tokio::time::sleep(gap).await;
        }
    });
    first_rx
}

/// Everything the agent sends until it closes (bounded by [`WAIT`]).
async fn read_until_close(r: &mut tokio::net::tcp::OwnedReadHalf) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the agent did not close within {WAIT:?}; it sent {}",
        hex(&got)
    );
    got
}

/// Finding 1: `--frame-timeout` runs from the first byte of a frame, whatever trickles in
/// after it. A peer sending one byte every 100 ms, before and after HELLO, is closed with
/// AGENT-DISCONNECT 2 once the frame timeout (600 ms) has passed since its first byte; before
/// the fix each byte restarted the clock and the peer was never closed.
#[tokio::test]
async fn trickling_peer_is_closed_a_frame_timeout_after_its_first_byte() {
    let frame_timeout = Duration::from_millis(600);
    let agent = Agent::start(SpopConfig {
        frame_timeout,
        ..SpopConfig::default()
    })
    .await;
    let gap = Duration::from_millis(100);

    // Before HELLO: the HELLO itself trickles (about 130 bytes, 13 s at this pace).
    let stream = TcpStream::connect(agent.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut r, w) = stream.into_split();
    let first = trickle(w, haproxy_hello(16380, ""), gap);
    let got = read_until_close(&mut r).await;
    let before_hello = first.await.unwrap().elapsed();
    assert_eq!(hex(&got), hex(&agent_disconnect(2)));

    // After HELLO: a NOTIFY trickles.
    let stream = TcpStream::connect(agent.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut r, mut w) = stream.into_split();
    let hello = haproxy_hello(16380, "");
    w.write_all(&hello).await.unwrap();
    let mut answer = vec![0u8; wire::agent_hello(16380, "").len()];
    tokio::time::timeout(WAIT, r.read_exact(&mut answer))
        .await
        .expect("AGENT-HELLO in time")
        .unwrap();
    let first = trickle(w, notify(1, 1, &mirror_message("/slow")), gap);
    let got = read_until_close(&mut r).await;
    let after_hello = first.await.unwrap().elapsed();
    assert_eq!(hex(&got), hex(&agent_disconnect(2)));

    eprintln!(
        "RELIABILITY trickle: frame timeout {frame_timeout:?}, one byte per {gap:?}: closed \
         {before_hello:?} after the first byte before HELLO, {after_hello:?} after HELLO"
    );
    for took in [before_hello, after_hello] {
        assert!(
            took >= frame_timeout && took < frame_timeout + Duration::from_millis(900),
            "closed {took:?} after the first byte (frame timeout {frame_timeout:?})"
        );
    }
    assert_eq!(get(&agent.stats.connections_timed_out_total), 2);
    assert_eq!(get(&agent.stats.notify_total), 0);
}

/// Finding 2: at most `max_connections` open at once. One more is closed at once without a
/// byte, counted, and the agent keeps serving the others; once one closes, a new one is
/// served again.
#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once_and_counted() {
    let agent = Agent::start(SpopConfig {
        max_connections: 5,
        ..SpopConfig::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(agent.ready("").await);
    }
    for _ in 0..3 {
        let mut extra = agent.connect().await;
        // The agent closes it without reading or answering (a HELLO sent now is not read).
        extra.send(&haproxy_hello(16380, "")).await;
        extra.assert_closed().await;
    }
    assert_eq!(get(&agent.stats.connections_refused_total), 3);
    assert_eq!(get(&agent.stats.connections_total), 5);
    assert_eq!(get(&agent.stats.connections_active), 5);

    // The five still work.
    for (i, c) in open.iter_mut().enumerate() {
        let sid = u64::try_from(i).unwrap() + 1;
        c.send(&notify(sid, 1, &mirror_message("/ok"))).await;
        assert_eq!(c.frame_hex().await, hex(&wire::ack(sid, 1)));
    }
    // One leaves; its slot is free again.
    drop(open.pop());
    agent.wait_counter(|s| &s.connections_active, 4).await;
    agent.assert_serving().await;
    assert_eq!(get(&agent.stats.connections_refused_total), 3);
}

/// Finding 2: before the handshake a frame may be at most a few KiB, whatever `-m` says: a
/// peer announcing 1 MiB before HELLO gets AGENT-DISCONNECT 3 at once. After HELLO the
/// negotiated size applies.
#[tokio::test]
async fn frames_before_hello_are_capped() {
    let agent = Agent::start(SpopConfig::default()).await;
    assert_eq!(SpopConfig::default().max_frame_size, 1024 * 1024);
    let mut c = agent.connect().await;
    c.send(&(1024u32 * 1024).to_be_bytes()).await;
    c.send(&[1]).await;
    c.assert_disconnect(3).await;
    // 4097 bytes announced: over the cap too.
    let mut c = agent.connect().await;
    c.send(&4097u32.to_be_bytes()).await;
    c.assert_disconnect(3).await;
    // After HELLO a 16 KiB NOTIFY (the negotiated 16380) is fine.
    let mut c = agent.ready("").await;
    c.send(&wire::notify_of_len(1, 1, 16380)).await;
    assert_eq!(c.frame_hex().await, hex(&wire::ack(1, 1)));
}

/// Finding 2, memory: 1000 half-open connections to the real binary, each announcing the
/// largest frame allowed before HELLO (4 KiB) and sending a few bytes of it, then 1000 that
/// announce 1 MiB. The agent's memory (RSS and address space) is read before and after. Before
/// the fix, each connection reserved its announced length: 1000 × 1 MiB of address space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_before_hello_cost_little_memory() {
    // A backlog that takes 1000 connects at once (the default 10 would make clients retry SYNs).
    let agent = common::agent::Agent::start(&["-b", "4096", "--frame-timeout", "60s"]).await;
    let mem = |pid: u32| {
        let kib = |field| common::status_kib(pid, field);
        (kib("VmRSS:"), kib("VmSize:"))
    };
    let (rss0, vm0) = mem(agent.pid());
    assert!(rss0 > 0 && vm0 > 0, "/proc/PID/status unreadable");
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(agent.addr()).await.unwrap();
        s.write_all(&4000u32.to_be_bytes()).await.unwrap();
        s.write_all(&[0x01, 0, 0, 0, 1, 0, 0, 7, 7, 7])
            .await
            .unwrap();
        conns.push(s);
    }
    let open = agent
        .wait_metric("connections_active", |v| v >= 1000.0, WAIT)
        .await;
    assert!(open.1, "1000 connections open: {}", open.0);
    let (rss1, vm1) = mem(agent.pid());

    // 1 MiB announced before HELLO: refused at once (status 3), nothing reserved.
    let mut big = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(agent.addr()).await.unwrap();
        s.write_all(&(1024u32 * 1024).to_be_bytes()).await.unwrap();
        s.write_all(&[0x01, 0, 0, 0, 1, 0, 0]).await.unwrap();
        big.push(s);
    }
    let errors = agent
        .wait_metric("protocol_errors_total", |v| v >= 1000.0, WAIT)
        .await;
    assert!(errors.1, "1000 oversized frames refused: {}", errors.0);
    let (rss2, vm2) = mem(agent.pid());
    eprintln!(
        "RELIABILITY half-open before HELLO: agent RSS {rss0} KiB idle, {rss1} KiB with 1000 \
         connections holding 14 bytes of a 4000-byte frame ({} KiB each), {rss2} KiB after \
         1000 more announcing 1 MiB (refused); address space +{} MiB, +{} MiB",
        (rss1.saturating_sub(rss0)) / 1000,
        vm1.saturating_sub(vm0) / 1024,
        vm2.saturating_sub(vm0) / 1024,
    );
    assert!(
        rss2.saturating_sub(rss0) < 64 * 1024,
        "RSS grew from {rss0} to {rss2} KiB"
    );
    assert!(
        vm2.saturating_sub(vm0) < 256 * 1024,
        "address space grew from {vm0} to {vm2} KiB"
    );
    drop(conns);
    drop(big);
}

/// Finding 3: a NOTIFY held by `-t` when HAProxy closes the connection is still mirrored (its
/// ACK cannot be sent), and counted as `notify_unacked_total`. Both ways HAProxy leaves: a
/// plain close, and HAPROXY-DISCONNECT.
#[tokio::test]
async fn notify_held_by_processing_delay_is_mirrored_when_haproxy_leaves() {
    let agent = Agent::start(SpopConfig {
        processing_delay: Duration::from_millis(500),
        ..SpopConfig::default()
    })
    .await;

    // Close right after the NOTIFY.
    let mut c = agent.ready("").await;
    c.send(&notify(1, 1, &mirror_message("/closed"))).await;
    c.shutdown_write().await;
    c.assert_closed().await;
    let got = agent.recorder.wait_for(1).await;
    assert_eq!(got.len(), 1);

    // HAPROXY-DISCONNECT right after the NOTIFY: AGENT-DISCONNECT 0, no ACK, still mirrored.
    let mut c = agent.ready("").await;
    c.send(
        &[
            notify(3, 1, &mirror_message("/disconnected")),
            wire::haproxy_disconnect(0, "stopping"),
        ]
        .concat(),
    )
    .await;
    c.assert_disconnect(0).await;
    let got = agent.recorder.wait_for(2).await;
    assert_eq!(got.len(), 2);

    assert_eq!(get(&agent.stats.notify_total), 2);
    assert_eq!(get(&agent.stats.notify_unacked_total), 2);
    assert_eq!(get(&agent.stats.ack_total), 0);
}

/// Finding 3, with the mirror: the real binary with `-t 500ms` and a recording mirror; the
/// peer sends one NOTIFY and closes. The request reaches the mirror and the metrics say why
/// it was not ACKed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_held_by_processing_delay_reaches_the_mirror_after_a_close() {
    let mirror = common::sink::Sink::start("mirror").await;
    let agent = common::agent::Agent::builder()
        .args(["-t", "500ms"])
        .mirror(&format!("http://{}/", mirror.addr()))
        .start()
        .await;
    let mut s = TcpStream::connect(agent.addr()).await.unwrap();
    s.write_all(&haproxy_hello(16380, "")).await.unwrap();
    let mut answer = vec![0u8; wire::agent_hello(16380, "").len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut answer))
        .await
        .expect("AGENT-HELLO in time")
        .unwrap();
    s.write_all(&notify(1, 1, &mirror_message("/held-then-closed")))
        .await
        .unwrap();
    drop(s);
    let got = mirror.wait_for(1, WAIT).await;
    assert_eq!(
        got.first().map(|r| r.target.as_str()),
        Some("/held-then-closed")
    );
    let unacked = agent
        .wait_metric("notify_unacked_total", |v| v == 1.0, WAIT)
        .await;
    assert!(unacked.1, "notify_unacked_total {}", unacked.0);
    assert_eq!(agent.metric("ack_total").await, 0.0);
}
