//! `-I` (source address) and `-P` (local port range) on connections to the mirror, checked
//! from the mirror's side: the address and port each connection comes from.

mod common;

use bytes::Bytes;
use common::sink::{Behavior, Sink};
use spoa_mirror::config::MirrorConfig;
use spoa_mirror::mirror::Mirror;
use spoa_mirror::spop::{Arg, Message, TypedData};
use spoa_mirror::stats::{get, Stats};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::Offer;

/// A mirror that answers one request per connection, then closes it: each request comes on a
/// new connection, from its own source address and port ([`common::sink::Recorded::peer`]).
async fn closing_sink() -> Sink {
    let sink = Sink::start("mirror").await;
    sink.set_behavior(Behavior::OneShot).await;
    sink
}

fn get_message(path: &'static str) -> Message {
    let s = |v: &'static [u8]| TypedData::String(Bytes::from_static(v));
    let arg = |n: &'static str, value| Arg {
        name: Bytes::from_static(n.as_bytes()),
        value,
    };
    Message {
        name: Bytes::from_static(b"mirror"),
        args: vec![
            arg("arg_method", s(b"GET")),
            arg("arg_path", s(path.as_bytes())),
            arg("arg_ver", s(b"1.1")),
            arg(
                "arg_hdrs",
                TypedData::Binary(Bytes::from_static(b"\x04host\x01h\x00\x00")),
            ),
        ],
    }
}

/// The address the next mirrored request came from.
async fn next_peer(sink: &Sink) -> SocketAddr {
    sink.next().await.peer
}

/// A run of four consecutive ports on 127.0.0.1, with the first one held by a listener the
/// caller keeps or drops. The tests of this file run in parallel in one process: each call
/// searches its own region (a process-wide counter), and holding the first port closes the
/// window in which another test could pick the same run.
fn free_port_run() -> (u16, std::net::TcpListener) {
    use std::sync::atomic::{AtomicU16, Ordering};
    static REGION: AtomicU16 = AtomicU16::new(0);
    let region = REGION.fetch_add(1, Ordering::Relaxed);
    let base = 20000 + (std::process::id() % 10000) as u16 + region * 2000;
    (0..200u16)
        .map(|i| base + i * 7)
        .find_map(|lo| {
            let first = std::net::TcpListener::bind(("127.0.0.1", lo)).ok()?;
            (lo + 1..lo + 4)
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
                .then_some((lo, first))
        })
        .expect("four consecutive free ports")
}

#[tokio::test]
async fn local_port_range_is_used_and_a_taken_port_is_skipped() {
    let sink = closing_sink().await;
    // The first port of the range is taken: the connector must move on to the next one.
    let (lo, _taken) = free_port_run();
    let mut cfg = MirrorConfig::new(format!("{}/", sink.url()).parse().unwrap());
    cfg.local_ports = Some((lo, lo + 3));
    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    for path in ["/p1", "/p2", "/p3"] {
        mirror.offer(vec![get_message(path)]);
        let peer = next_peer(&sink).await;
        assert!(
            (lo + 1..=lo + 3).contains(&peer.port()),
            "connection from port {} outside {}-{} (or the taken {lo})",
            peer.port(),
            lo + 1,
            lo + 3
        );
    }
    mirror.shutdown(Duration::from_secs(5)).await;
    assert_eq!(get(&stats.mirror().status_2xx), 3);
    assert_eq!(get(&stats.mirror().failed_connect), 0);
}

#[tokio::test]
async fn source_address_is_used() {
    let sink = closing_sink().await;
    let mut cfg = MirrorConfig::new(format!("{}/", sink.url()).parse().unwrap());
    // Any 127.0.0.0/8 address is local on Linux.
    cfg.interface = Some("127.0.0.2".into());
    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    mirror.offer(vec![get_message("/src")]);
    let peer = next_peer(&sink).await;
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
    mirror.shutdown(Duration::from_secs(5)).await;
    assert_eq!(get(&stats.mirror().status_2xx), 1);
}

/// `-I if!lo` with `-P`: the range connector binds the socket to the interface
/// (SO_BINDTODEVICE) before it binds the port.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn interface_with_local_port_range() {
    let sink = closing_sink().await;
    let (lo, first) = free_port_run();
    drop(first);
    let mut cfg = MirrorConfig::new(format!("{}/", sink.url()).parse().unwrap());
    cfg.interface = Some("if!lo".into());
    cfg.local_ports = Some((lo, lo + 3));
    let stats = Arc::new(Stats::default());
    let mirror = Mirror::new(cfg, stats.clone()).unwrap();
    mirror.offer(vec![get_message("/dev")]);
    let peer = next_peer(&sink).await;
    assert!((lo..=lo + 3).contains(&peer.port()), "{peer}");
    mirror.shutdown(Duration::from_secs(5)).await;
    assert_eq!(get(&stats.mirror().status_2xx), 1);
}
