//! The TCP side: bind the SPOP port, accept HAProxy's connections, run each on its own task,
//! and stop them all on shutdown.

use crate::config::{ListenConfig, SpopConfig};
use crate::connection::Connection;
use crate::handler::NotifyHandler;
use crate::stats::{get, inc, Stats};
use crate::throttle::LogThrottle;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn, Instrument};

/// How long shutdown waits for connections to say AGENT-DISCONNECT and close.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);
/// At most one warning about refused connections per interval.
static REFUSAL_WARNINGS: LogThrottle = LogThrottle::new();

/// Binds the listening socket: `-a` may be a host name, an IPv4 or an IPv6 address (the
/// original only tried IPv4). Every resolved address is tried in turn; the last error is
/// returned when none binds. Must run inside a tokio runtime.
pub fn bind(cfg: &ListenConfig) -> io::Result<TcpListener> {
    let host = cfg.address.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, cfg.port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("'{}' resolves to no address", cfg.address),
    );
    for addr in addrs {
        match bind_one(addr, cfg.backlog) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `-a ::` should mean every address, IPv4 included, whatever the sysctl says.
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Accepts SPOP connections until `shutdown` is cancelled, then waits (up to a deadline) for
/// every connection to send AGENT-DISCONNECT and close.
pub async fn serve(
    listener: TcpListener,
    spop: SpopConfig,
    handler: Arc<dyn NotifyHandler>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    // One permit per open connection; a connection holds its permit until its task ends.
    let slots = Arc::new(Semaphore::new(
        spop.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let spop = Arc::new(spop);
    let tracker = TaskTracker::new();
    let mut next_id: u64 = 0;
    let mut backoff = Duration::from_millis(1);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(1);
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Over --max-connections: close at once (HAProxy retries elsewhere or
                    // later); nothing is read or allocated for this peer.
                    drop(stream);
                    inc(&stats.connections_refused_total);
                    if REFUSAL_WARNINGS.allow() {
                        warn!(
                            "refusing SPOP connection from {peer}: {} connections open \
                             (--max-connections); {} refused so far",
                            spop.max_connections,
                            get(&stats.connections_refused_total)
                        );
                    }
                    continue;
                };
                next_id = next_id.wrapping_add(1);
                inc(&stats.connections_total);
                // ACKs are small and latency-bound: never let Nagle hold them back.
                let _ = stream.set_nodelay(true);
                let conn = Connection::new(
                    stream,
                    spop.clone(),
                    handler.clone(),
                    stats.clone(),
                    shutdown.clone(),
                );
                let span = tracing::info_span!("conn", id = next_id, %peer);
                tracker.spawn(
                    async move {
                        conn.run().await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning; the connections
                // already open keep being served meanwhile.
                error!(
                    "failed to accept a connection: {e}; retrying in {}",
                    humantime::format_duration(backoff)
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    tracker.close();
    debug!(
        "stopped accepting; waiting for {} connection(s) to close",
        tracker.len()
    );
    if tokio::time::timeout(CLOSE_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        info!(
            "{} SPOP connection(s) still open after {}; leaving them",
            tracker.len(),
            humantime::format_duration(CLOSE_DEADLINE)
        );
    }
}
