//! Shared harness for the integration tests: real processes and real sockets on 127.0.0.1.
//!
//! A test crate pulls it in with `mod common;` and uses the parts it needs:
//! - [`haproxy`]: find the HAProxy binaries (2.6, 2.8, optional 3.x), write haproxy.cfg +
//!   spoe.cfg for the mirror setup, run HAProxy, read its log and its stats socket.
//! - [`agent`]: run the `spoa-mirror` binary built by cargo, capture its output, scrape its
//!   Prometheus endpoint.
//! - [`sink`]: a recording HTTP/1.1 server (optionally over TLS), used as HAProxy's primary
//!   backend and as the mirror target, also by the mirror engine tests; tests await the
//!   requests it recorded.
//! - [`client`]: a small HTTP/1.1 client over raw TCP, and `curl` for HTTP/2.
//! - [`http`]: the HTTP/1.1 message reading the sink and the client share.
//!
//! On failure (or with env `SPOA_TEST_LOGS` set) the agent's output and HAProxy's log are
//! printed when they are dropped.
//!
//! Everything here polls only where no event exists to await (a port starting to listen, a
//! process exiting, a counter in another process), always with a deadline.
#![allow(dead_code)]

/// One `#[tokio::test]` per HAProxy version (2.6, 2.8, 3.x) for the scenario
/// `async fn $name(bin: HaproxyBin)`: `$name::haproxy_2_6`, `::haproxy_2_8`, `::haproxy_3`.
/// A version that build.rs did not find (outside CI) makes its variant `#[ignore]`d, so a
/// skipped variant shows as ignored, never as passed; `HAPROXY3` must be set for the 3.x one.
/// `per_haproxy!(#[ignore = "why"] $name)` ignores all three (heavy runs: `--ignored`).
#[macro_export]
macro_rules! per_haproxy {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(have_haproxy26), ignore = "HAProxy 2.6 not found (HAPROXY26)")]
            async fn haproxy_2_6() {
                super::$name($crate::common::haproxy::haproxy_26()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(have_haproxy28), ignore = "HAProxy 2.8 not found (HAPROXY28)")]
            async fn haproxy_2_8() {
                super::$name($crate::common::haproxy::haproxy_28()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(have_haproxy3), ignore = "HAPROXY3 not set")]
            async fn haproxy_3() {
                super::$name($crate::common::haproxy::haproxy_3()).await;
            }
        }
    };
    (#[ignore = $why:literal] $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $why]
            async fn haproxy_2_6() {
                super::$name($crate::common::haproxy::haproxy_26()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $why]
            async fn haproxy_2_8() {
                super::$name($crate::common::haproxy::haproxy_28()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $why]
            async fn haproxy_3() {
                super::$name($crate::common::haproxy::haproxy_3()).await;
            }
        }
    };
}

pub mod agent;
pub mod app;
pub mod client;
pub mod haproxy;
pub mod http;
pub mod sink;
pub mod targets;

use spoa_mirror::handler::NotifyHandler;
use spoa_mirror::mirror::Mirror;
use spoa_mirror::spop::Message;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// Hands messages to the engine as one NOTIFY without context (what a connection does, minus
/// the ids).
pub trait Offer {
    fn offer(&self, messages: Vec<Message>);
}

impl Offer for Mirror {
    fn offer(&self, messages: Vec<Message>) {
        NotifyHandler::handle(self, messages.into());
    }
}

/// A `kB` field of `/proc/PID/status` (VmRSS, VmHWM, VmPeak...), 0 when unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The loopback address every test server binds.
pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// How often the bounded polls below look again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read the port the kernel
/// chose, release it. For processes that only take a port number (HAProxy's `bind`, the
/// agent's `-p`); servers inside the test process bind port 0 themselves and keep the socket.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound socket")
        .port()
}

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from((LOCALHOST, port))
}

/// Inodes of the sockets in LISTEN state on 127.0.0.1:`port` or the IPv4 wildcard, from
/// `/proc/net/tcp` (rows `sl local_address rem_address st ... uid timeout inode ...`,
/// addresses as `HEXIP:HEXPORT`, state 0A = LISTEN).
fn listening_inodes(port: u16) -> Vec<String> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            let (local, state, inode) = (cols.get(1)?, cols.get(3)?, cols.get(9)?);
            (*state == "0A" && wanted.iter().any(|w| w == local)).then(|| inode.to_string())
        })
        .collect()
}

/// Whether some socket is in LISTEN state on 127.0.0.1:`port` (or the IPv4 wildcard).
///
/// Read from `/proc/net/tcp` instead of connecting, so the agent under test never sees a
/// probe connection (which it would count, and log as a peer that closed before HELLO).
pub fn port_is_listening(port: u16) -> bool {
    !listening_inodes(port).is_empty()
}

/// Whether process `pid` itself holds a socket listening on 127.0.0.1:`port`: the port's
/// listening socket inode is among the process's open files. Unlike [`port_is_listening`],
/// not fooled when another process took the port.
pub fn process_listens_on(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes.iter().any(|i| target == format!("socket:[{i}]"))
        })
    })
}

/// Poll `check` every [`POLL_INTERVAL`] until it returns `Some`, for at most `timeout`.
/// Returns `None` when the deadline passed. The loop is bounded by the deadline.
pub async fn poll_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Whether a harness object should print its process's log when dropped: when the test is
/// failing (panicking), or always with env `SPOA_TEST_LOGS` set (run with `--nocapture`).
pub fn print_logs_on_drop() -> bool {
    std::thread::panicking() || std::env::var_os("SPOA_TEST_LOGS").is_some()
}

/// Send `signal` to process `pid` (no-op if it already exited and was reaped).
pub fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a pid of a child this harness spawned and still owns; no memory is
    // shared with the call.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Stop a child: `signal`, then wait up to `grace` for it to exit, then SIGKILL. Returns the
/// exit status (`None` only if even waiting after SIGKILL failed).
pub fn stop_child(
    child: &mut std::process::Child,
    signal: libc::c_int,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    send_signal(child.id(), signal);
    if let Some(status) = wait_child(child, grace) {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Wait up to `timeout` for a child to exit (bounded poll of `try_wait`; usable in `Drop`).
pub fn wait_child(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_INTERVAL),
            _ => return None,
        }
    }
}
