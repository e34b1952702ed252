//! One SPOP connection's IO and timers: the socket, `-t`, the frame and idle timeouts, and
//! shutdown. The protocol itself is [`Session`] (sans-IO); this task feeds it the bytes it
//! reads and acts on what it says.
//!
//! A single task owns the socket. Each read is handed to the session; the answers (AGENT-HELLO,
//! ACKs, AGENT-DISCONNECT) go into one buffer, written with a single write per read. An ACK
//! therefore never waits for anything but the decoding of its NOTIFY (and `-t`, when set); the
//! NOTIFY is handed to the [`NotifyHandler`] right after its ACK is queued.

use crate::config::SpopConfig;
use crate::handler::NotifyHandler;
use crate::spop::{Close, Event, Notify, Session, SessionConfig, Status};
use crate::stats::{dec, get, inc, Stats};
use crate::throttle::LogThrottle;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, info, warn};

/// Smallest read buffer; it grows with the bytes that arrive, never ahead of them.
const READ_CHUNK: usize = 8 * 1024;
/// A peer that does not take our bytes within this time is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection is still read after our AGENT-DISCONNECT (HAProxy closes at once).
const DISCONNECT_DRAIN: Duration = Duration::from_secs(2);
/// Protocol-error warnings, shared by every connection.
static PROTOCOL_WARNINGS: LogThrottle = LogThrottle::new();

/// A NOTIFY held back by `-t`, and when it was decoded.
struct Delayed {
    notify: Notify,
    received: Instant,
}

/// The state of one SPOP connection.
pub struct Connection {
    stream: TcpStream,
    cfg: Arc<SpopConfig>,
    handler: Arc<dyn NotifyHandler>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    session: Session,
    delayed: DelayQueue<Delayed>,
    rbuf: BytesMut,
    /// When the first byte of the frame now in `rbuf` arrived: the frame must be whole within
    /// `frame_timeout` of it, however the rest trickles in.
    frame_started: Option<Instant>,
    wbuf: BytesMut,
    events: Vec<Event>,
    /// When each ACK in `wbuf` was decided, for the ACK-latency histogram.
    acks_pending: Vec<Instant>,
    /// Our AGENT-DISCONNECT is sent: NOTIFYs still arriving are mirrored, not ACKed.
    disconnected: bool,
}

/// What woke the connection's task.
enum Wake {
    Shutdown,
    Delayed(Delayed),
    Timeout,
    Read(std::io::Result<usize>),
}

impl Connection {
    pub fn new(
        stream: TcpStream,
        cfg: Arc<SpopConfig>,
        handler: Arc<dyn NotifyHandler>,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
    ) -> Connection {
        let session = Session::new(SessionConfig {
            max_frame_size: cfg.max_frame_size,
            capabilities: cfg.capabilities,
            max_reassembled_size: cfg.max_reassembled_size,
            ack_noop: cfg.ack_noop,
        });
        Connection {
            stream,
            cfg,
            handler,
            stats,
            shutdown,
            session,
            delayed: DelayQueue::new(),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            frame_started: None,
            wbuf: BytesMut::new(),
            events: Vec::new(),
            acks_pending: Vec::new(),
            disconnected: false,
        }
    }

    /// Serves the connection to its end. Errors are logged here; nothing propagates.
    pub async fn run(mut self) {
        inc(&self.stats.connections_active);
        debug!("SPOP connection accepted");
        let end = self.serve().await;
        self.hand_off_unacked();
        dec(&self.stats.connections_active);
        debug!("SPOP connection closed: {end}");
    }

    async fn serve(&mut self) -> String {
        let mut last_read = Instant::now();
        loop {
            let deadline = self.read_deadline(last_read);
            let wake = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Wake::Shutdown,
                Some(expired) = std::future::poll_fn(|cx| self.delayed.poll_expired(cx)), if !self.delayed.is_empty() => {
                    Wake::Delayed(expired.into_inner())
                }
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
                read = read_more(&mut self.stream, &mut self.rbuf) => Wake::Read(read),
            };
            match wake {
                Wake::Shutdown => {
                    // ACK what `-t` still holds, then say goodbye.
                    self.flush_delayed();
                    Session::encode_disconnect(Status::Normal, &mut self.wbuf);
                    if self.flush().await.is_ok() {
                        self.read_until_closed().await;
                    }
                    return "agent shutting down".into();
                }
                Wake::Delayed(d) => self.ack_and_hand_off(d.notify, d.received),
                Wake::Timeout => return self.timed_out().await,
                // F2 / R2: EOF. Mid-frame it is an abrupt close; between frames it is how
                // HAProxy 3.x (and every health check) ends a connection.
                Wake::Read(Ok(0)) if self.rbuf.is_empty() => return "closed by peer".into(),
                Wake::Read(Ok(0)) => return "closed by peer mid-frame".into(),
                Wake::Read(Ok(_)) => {
                    last_read = Instant::now();
                    if let Some(end) = self.on_read(last_read) {
                        let _ = self.flush().await;
                        return end;
                    }
                }
                Wake::Read(Err(e)) => return format!("read failed: {e}"),
            }
            if let Err(e) = self.flush().await {
                return format!("write failed: {e}");
            }
        }
    }

    /// Feeds the session what was read and acts on its events; `Some(reason)` to close.
    fn on_read(&mut self, now: Instant) -> Option<String> {
        let mut events = std::mem::take(&mut self.events);
        let frames = self
            .session
            .receive(&mut self.rbuf, &mut self.wbuf, &mut events);
        // A frame that began in this read (after whole ones, or on an empty buffer) starts
        // its clock now; one still in progress keeps its own.
        if self.rbuf.is_empty() {
            self.frame_started = None;
        } else if frames > 0 || self.frame_started.is_none() {
            self.frame_started = Some(now);
        }
        let mut end = None;
        for event in events.drain(..) {
            match event {
                Event::Ready(hello) => debug!(
                    max_frame_size = hello.max_frame_size,
                    capabilities = %hello.capabilities.to_list(),
                    "handshake done"
                ),
                Event::Notify(notify) => self.on_notify(notify, now),
                Event::Close(close) => end = Some(self.on_close(close)),
            }
        }
        self.events = events;
        end
    }

    fn on_notify(&mut self, notify: Notify, received: Instant) {
        inc(&self.stats.notify_total);
        if self.disconnected {
            inc(&self.stats.notify_unacked_total);
            self.handler.handle(notify);
        } else if self.cfg.processing_delay.is_zero() {
            self.ack_and_hand_off(notify, received);
        } else {
            let delayed = Delayed { notify, received };
            self.delayed.insert(delayed, self.cfg.processing_delay);
        }
    }

    /// Counts and logs why the session ended, and queues its AGENT-DISCONNECT.
    fn on_close(&mut self, close: Close) -> String {
        if let Some(status) = close.status() {
            Session::encode_disconnect(status, &mut self.wbuf);
        }
        match close {
            Close::Healthcheck => {
                inc(&self.stats.healthchecks_total);
                debug!("health check answered");
                "health check answered".into()
            }
            // 0 on stop/reload, 1 when HAProxy closes a connection it no longer needs, 2 on
            // its idle timeout: all routine. NOTIFYs still held by `-t` get no ACK (HAProxy
            // has given up on them) but are mirrored when the connection ends.
            Close::PeerDisconnect(theirs) => {
                let message = String::from_utf8_lossy(&theirs.message);
                let code = theirs.status.code();
                match theirs.status {
                    Status::Normal | Status::IoError | Status::Timeout => {
                        debug!("HAPROXY-DISCONNECT status {code}: {message}")
                    }
                    _ => warn!("HAPROXY-DISCONNECT status {code}: {message}"),
                }
                "closed by HAPROXY-DISCONNECT".into()
            }
            Close::Error(e) => {
                inc(&self.stats.protocol_errors_total);
                let status = e.status();
                // A hostile or broken peer can make this happen per connection: one warning
                // per interval, the others at debug level.
                if PROTOCOL_WARNINGS.allow() {
                    warn!(
                        "closing SPOP connection: {e}; sending AGENT-DISCONNECT status {status} \
                         ({} protocol errors so far; more within 10 s are logged at debug level)",
                        get(&self.stats.protocol_errors_total)
                    );
                } else {
                    debug!(
                        "closing SPOP connection: {e}; sending AGENT-DISCONNECT status {status}"
                    );
                }
                format!("protocol error: {e}")
            }
        }
    }

    /// After our AGENT-DISCONNECT (stop, hand-over), HAProxy may still send NOTIFYs it wrote
    /// before it read ours. It fails those events (the client goes on), but they were real
    /// requests: read them until HAProxy closes (at most [`DISCONNECT_DRAIN`]) and mirror
    /// them. Nothing more is written: nothing may follow a DISCONNECT.
    async fn read_until_closed(&mut self) {
        self.disconnected = true;
        let deadline = tokio::time::Instant::now() + DISCONNECT_DRAIN;
        loop {
            let read = read_more(&mut self.stream, &mut self.rbuf);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(n)) if n > 0 => {
                    let end = self.on_read(Instant::now());
                    self.wbuf.clear();
                    if end.is_some() {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// A partial frame must complete within `frame_timeout` of its first byte; an idle
    /// connection may live for `idle_timeout` (when set). Far future otherwise.
    fn read_deadline(&self, last_read: Instant) -> Instant {
        let far = last_read + Duration::from_secs(365 * 24 * 3600);
        if let Some(started) = self.frame_started {
            started + self.cfg.frame_timeout
        } else if let Some(idle) = self.cfg.idle_timeout {
            last_read + idle
        } else {
            far
        }
    }

    async fn timed_out(&mut self) -> String {
        let reason = if self.rbuf.is_empty() {
            "idle timeout"
        } else {
            "incomplete frame timeout"
        };
        info!("closing SPOP connection: {reason}");
        inc(&self.stats.connections_timed_out_total);
        self.flush_delayed();
        Session::encode_disconnect(Status::Timeout, &mut self.wbuf);
        let _ = self.flush().await;
        reason.into()
    }

    /// Queues the ACK, then gives the NOTIFY to the handler.
    fn ack_and_hand_off(&mut self, notify: Notify, received: Instant) {
        self.session
            .encode_ack(notify.stream_id, notify.frame_id, &mut self.wbuf);
        self.acks_pending.push(received);
        self.handler.handle(notify);
    }

    /// ACKs and hands over everything `-t` still holds (the connection is about to close).
    fn flush_delayed(&mut self) {
        while let Some(d) = self.take_delayed() {
            self.ack_and_hand_off(d.notify, d.received);
        }
    }

    /// The connection is gone with NOTIFYs still held by `-t`: their ACKs can no longer be
    /// sent, but the client requests happened, so they are mirrored all the same.
    fn hand_off_unacked(&mut self) {
        while let Some(d) = self.take_delayed() {
            inc(&self.stats.notify_unacked_total);
            self.handler.handle(d.notify);
        }
    }

    fn take_delayed(&mut self) -> Option<Delayed> {
        let key = self.delayed.peek()?;
        self.delayed.try_remove(&key).map(|e| e.into_inner())
    }

    /// Writes everything buffered in one write, then records ACK latencies.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(&self.wbuf)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "peer stopped reading",
                ))
            }
        }
        self.wbuf.clear();
        let now = Instant::now();
        for received in self.acks_pending.drain(..) {
            self.stats
                .ack_latency
                .record(now.saturating_duration_since(received));
            inc(&self.stats.ack_total);
        }
        Ok(())
    }
}

async fn read_more(stream: &mut TcpStream, rbuf: &mut BytesMut) -> std::io::Result<usize> {
    // Grow with what has arrived, at most doubling, never from the length a frame announces:
    // a peer that announces a large frame and sends a few bytes costs a few KiB. A large
    // NOTIFY still needs only a logarithmic number of reallocations.
    if rbuf.capacity() - rbuf.len() < READ_CHUNK {
        rbuf.reserve(rbuf.len().max(READ_CHUNK));
    }
    stream.read_buf(rbuf).await
}
