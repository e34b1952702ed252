//! One SPOP connection: the handshake, then NOTIFY in / ACK out, until HAProxy disconnects, an
//! error closes it, or the agent shuts down (SPOE §3.2.3 – §3.2.9).
//!
//! A single task owns the socket. Each read is cut into frames; every frame is handled at once
//! and any answer (AGENT-HELLO, ACK, AGENT-DISCONNECT) is appended to one write buffer, which
//! is written with a single write per read. An ACK therefore never waits for anything but the
//! decoding of its NOTIFY (and `-t`, when set); the messages are handed to the
//! [`NotifyHandler`] right after their ACK is queued.
//!
//! ```text
//! AwaitHello --HAPROXY-HELLO--> Processing --HAPROXY-DISCONNECT / error / shutdown--> closed
//!     \--healthcheck HELLO--> AGENT-HELLO, closed
//! ```

use crate::config::SpopConfig;
use crate::handler::NotifyHandler;
use crate::spop::{
    Action, AgentHello, Disconnect, Error as SpopError, Frame, FrameDecoder, FrameHeader,
    FrameType, HaproxyHello, Kv, Message, Payload, Reader, Status, VarScope,
};
use crate::stats::{dec, get, inc, Stats};
use crate::throttle::LogThrottle;
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, info, warn};

/// Smallest read buffer; it grows with the bytes that arrive, never ahead of them.
const READ_CHUNK: usize = 8 * 1024;
/// Largest frame accepted before the handshake is done. A real HAPROXY-HELLO is a few hundred
/// bytes (and a HAPROXY-DISCONNECT before HELLO less); `-m` applies only once a peer has
/// said HELLO, so a connection that never does cannot make the agent hold `-m` bytes.
pub const MAX_FRAME_BEFORE_HELLO: u32 = 4096;
/// Protocol-error warnings, shared by every connection.
static PROTOCOL_WARNINGS: LogThrottle = LogThrottle::new();
/// A peer that does not take our bytes within this time is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the connection is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    Processing,
}

/// What handling a frame asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    /// Write what is buffered, then close.
    Close,
}

/// A NOTIFY whose payload arrives in several frames (HAProxy ≤ 3.0, `-c fragmentation`).
#[derive(Debug)]
struct Fragmented {
    stream_id: u64,
    frame_id: u64,
    payload: BytesMut,
}

/// A NOTIFY held back by `-t`.
#[derive(Debug)]
struct Delayed {
    stream_id: u64,
    frame_id: u64,
    messages: Vec<Message>,
    received: Instant,
}

/// A protocol error: the status for AGENT-DISCONNECT and the text for the log.
#[derive(Debug)]
struct Fault {
    status: Status,
    reason: String,
}

impl Fault {
    fn new(status: Status, reason: impl Into<String>) -> Fault {
        Fault {
            status,
            reason: reason.into(),
        }
    }

    fn decode(what: &str, e: SpopError) -> Fault {
        Fault::new(e.status(), format!("cannot decode {what}: {e}"))
    }
}

/// The state of one SPOP connection.
pub struct Connection {
    stream: TcpStream,
    cfg: Arc<SpopConfig>,
    handler: Arc<dyn NotifyHandler>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    state: State,
    decoder: FrameDecoder,
    fragmentation: bool,
    fragment: Option<Fragmented>,
    delayed: DelayQueue<Delayed>,
    rbuf: BytesMut,
    /// When the first byte of the frame now in `rbuf` arrived: the frame must be whole within
    /// `frame_timeout` of it, however the rest trickles in.
    frame_started: Option<Instant>,
    wbuf: BytesMut,
    /// When each ACK in `wbuf` was decided, for the ACK-latency histogram.
    acks_pending: Vec<Instant>,
}

impl Connection {
    pub fn new(
        stream: TcpStream,
        cfg: Arc<SpopConfig>,
        handler: Arc<dyn NotifyHandler>,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
    ) -> Connection {
        Connection {
            stream,
            decoder: FrameDecoder::new(cfg.max_frame_size.min(MAX_FRAME_BEFORE_HELLO)),
            cfg,
            handler,
            stats,
            shutdown,
            state: State::AwaitHello,
            fragmentation: false,
            fragment: None,
            delayed: DelayQueue::new(),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            frame_started: None,
            wbuf: BytesMut::new(),
            acks_pending: Vec::new(),
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
            let event = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Event::Shutdown,
                Some(expired) = std::future::poll_fn(|cx| self.delayed.poll_expired(cx)), if !self.delayed.is_empty() => {
                    Event::Delayed(expired.into_inner())
                }
                _ = tokio::time::sleep_until(deadline.into()) => Event::Timeout,
                read = read_more(&mut self.stream, &mut self.rbuf) => Event::Read(read),
            };
            match event {
                Event::Shutdown => {
                    // ACK what `-t` still holds, then say goodbye.
                    self.flush_delayed();
                    self.push_disconnect(&Disconnect::new(Status::Normal));
                    let _ = self.flush().await;
                    return "agent shutting down".into();
                }
                Event::Delayed(d) => {
                    self.ack_and_hand_off(d.stream_id, d.frame_id, d.messages, d.received)
                }
                Event::Timeout => return self.timed_out().await,
                // F2 / R2: EOF. Mid-frame it is an abrupt close; between frames it is how
                // HAProxy 3.x (and every health check) ends a connection.
                Event::Read(Ok(0)) if self.rbuf.is_empty() => return "closed by peer".into(),
                Event::Read(Ok(0)) => return "closed by peer mid-frame".into(),
                Event::Read(Ok(_)) => {
                    last_read = Instant::now();
                    let (next, frames) = self.process_buffer();
                    // A frame that began in this read (after whole ones, or on an empty
                    // buffer) starts its clock now; one still in progress keeps its own.
                    if self.rbuf.is_empty() {
                        self.frame_started = None;
                    } else if frames > 0 || self.frame_started.is_none() {
                        self.frame_started = Some(last_read);
                    }
                    if next == Next::Close {
                        let _ = self.flush().await;
                        return "closed by agent".into();
                    }
                }
                Event::Read(Err(e)) => return format!("read failed: {e}"),
            }
            if let Err(e) = self.flush().await {
                return format!("write failed: {e}");
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
        self.push_disconnect(&Disconnect::new(Status::Timeout));
        let _ = self.flush().await;
        reason.into()
    }

    /// Handles every whole frame in the read buffer; says how many there were.
    fn process_buffer(&mut self) -> (Next, usize) {
        let mut frames = 0;
        loop {
            let frame = match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return (Next::Continue, frames),
                Err(e) => return (self.fail(Fault::decode("frame", e)), frames),
            };
            frames += 1;
            let next = match self.process_frame(frame) {
                Ok(next) => next,
                Err(fault) => self.fail(fault),
            };
            if next == Next::Close {
                return (Next::Close, frames);
            }
        }
    }

    fn fail(&mut self, fault: Fault) -> Next {
        inc(&self.stats.protocol_errors_total);
        // A hostile or broken peer can make this happen per connection: one warning per
        // interval, the others at debug level.
        if PROTOCOL_WARNINGS.allow() {
            warn!(
                "closing SPOP connection: {}; sending AGENT-DISCONNECT status {} ({} protocol \
                 errors so far; more within 10 s are logged at debug level)",
                fault.reason,
                fault.status,
                get(&self.stats.protocol_errors_total)
            );
        } else {
            debug!(
                "closing SPOP connection: {}; sending AGENT-DISCONNECT status {}",
                fault.reason, fault.status
            );
        }
        self.push_disconnect(&Disconnect::new(fault.status));
        Next::Close
    }

    fn process_frame(&mut self, frame: Bytes) -> Result<Next, Fault> {
        let (header, payload) =
            Frame::decode_header(frame).map_err(|e| Fault::decode("frame header", e))?;
        match self.state {
            // N11: HAProxy may disconnect at any time, even before its HELLO, and then waits
            // for AGENT-DISCONNECT.
            _ if header.frame_type == FrameType::HaproxyDisconnect => self.on_disconnect(payload),
            State::AwaitHello => self.on_hello(header, payload),
            State::Processing => match header.frame_type {
                FrameType::Notify => self.on_notify(header, payload),
                FrameType::Unset => self.on_unset(header, payload),
                // H12: one handshake per connection.
                FrameType::HaproxyHello => {
                    Err(Fault::new(Status::InvalidFrame, "second HAPROXY-HELLO"))
                }
                // N12: agent frames, or types the spec does not define, never come from HAProxy.
                other => Err(Fault::new(
                    Status::InvalidFrame,
                    format!("unexpected {} frame (type {})", other.name(), other.to_u8()),
                )),
            },
        }
    }

    fn on_hello(&mut self, header: FrameHeader, payload: Bytes) -> Result<Next, Fault> {
        if header.frame_type != FrameType::HaproxyHello {
            // H1
            return Err(Fault::new(
                Status::InvalidFrame,
                format!(
                    "expected HAPROXY-HELLO, got {} (type {})",
                    header.frame_type.name(),
                    header.frame_type.to_u8()
                ),
            ));
        }
        check_connection_frame(&header, "HAPROXY-HELLO")?;
        let items = decode_kv(payload).map_err(|e| Fault::decode("HAPROXY-HELLO", e))?;
        let hello = HaproxyHello::from_kv(&items).map_err(|status| {
            Fault::new(
                status,
                format!("HAPROXY-HELLO refused: {}", status.reason()),
            )
        })?;
        let reply = AgentHello::negotiate(&hello, self.cfg.max_frame_size, self.cfg.capabilities);
        push_frame(
            &mut self.wbuf,
            FrameHeader::fin(FrameType::AgentHello, 0, 0),
            Payload::KvList(reply.to_kv()),
        );
        if hello.healthcheck {
            // H9: exactly one AGENT-HELLO, then close; HAProxy 3.1+ parses anything more as
            // part of the HELLO and fails the check.
            inc(&self.stats.healthchecks_total);
            debug!("health check answered");
            return Ok(Next::Close);
        }
        self.decoder.set_max_frame_size(reply.max_frame_size);
        self.fragmentation = reply.capabilities.fragmentation;
        self.state = State::Processing;
        debug!(
            max_frame_size = reply.max_frame_size,
            capabilities = %reply.capabilities.to_list(),
            engine_id = %String::from_utf8_lossy(hello.engine_id.as_deref().unwrap_or_default()),
            "handshake done"
        );
        Ok(Next::Continue)
    }

    fn on_notify(&mut self, header: FrameHeader, payload: Bytes) -> Result<Next, Fault> {
        if self.fragment.is_some() {
            // HAProxy sends nothing else while a fragmented NOTIFY is in progress.
            return Err(Fault::new(
                Status::InterlacedFrames,
                "NOTIFY while a fragmented NOTIFY is in progress",
            ));
        }
        if !header.flags.fin() {
            if !self.fragmentation {
                return Err(Fault::new(
                    Status::FragmentationNotSupported,
                    "NOTIFY without FIN but fragmentation was not negotiated",
                ));
            }
            if header.flags.abort() {
                return Ok(Next::Continue);
            }
            self.start_fragment(header, payload)?;
            return Ok(Next::Continue);
        }
        self.on_whole_notify(header.stream_id, header.frame_id, payload)
    }

    fn start_fragment(&mut self, header: FrameHeader, payload: Bytes) -> Result<(), Fault> {
        self.check_reassembly_size(payload.len(), 0)?;
        let mut buf = BytesMut::with_capacity(payload.len() * 2);
        buf.put_slice(&payload);
        self.fragment = Some(Fragmented {
            stream_id: header.stream_id,
            frame_id: header.frame_id,
            payload: buf,
        });
        Ok(())
    }

    fn check_reassembly_size(&self, adding: usize, have: usize) -> Result<(), Fault> {
        if have.saturating_add(adding) > self.cfg.max_reassembled_size {
            return Err(Fault::new(
                Status::FrameTooBig,
                format!(
                    "fragmented NOTIFY exceeds {} bytes",
                    self.cfg.max_reassembled_size
                ),
            ));
        }
        Ok(())
    }

    fn on_unset(&mut self, header: FrameHeader, payload: Bytes) -> Result<Next, Fault> {
        let Some(fragment) = self.fragment.as_mut() else {
            // N10
            return Err(Fault::new(
                Status::InterlacedFrames,
                "UNSET frame with no fragmented NOTIFY in progress",
            ));
        };
        if (fragment.stream_id, fragment.frame_id) != (header.stream_id, header.frame_id) {
            return Err(Fault::new(
                Status::InterlacedFrames,
                format!(
                    "UNSET frame for stream {}/{} while {}/{} is in progress",
                    header.stream_id, header.frame_id, fragment.stream_id, fragment.frame_id
                ),
            ));
        }
        if header.flags.abort() {
            // HAProxy gave up on this NOTIFY: drop it, no ACK.
            debug!(
                stream_id = header.stream_id,
                frame_id = header.frame_id,
                "fragmented NOTIFY aborted"
            );
            self.fragment = None;
            return Ok(Next::Continue);
        }
        let have = fragment.payload.len();
        self.check_reassembly_size(payload.len(), have)?;
        let Some(fragment) = self.fragment.as_mut() else {
            return Ok(Next::Continue);
        };
        fragment.payload.put_slice(&payload);
        if !header.flags.fin() {
            return Ok(Next::Continue);
        }
        let Some(done) = self.fragment.take() else {
            return Ok(Next::Continue);
        };
        self.on_whole_notify(done.stream_id, done.frame_id, done.payload.freeze())
    }

    fn on_whole_notify(
        &mut self,
        stream_id: u64,
        frame_id: u64,
        payload: Bytes,
    ) -> Result<Next, Fault> {
        let received = Instant::now();
        let messages = decode_messages(payload).map_err(|e| Fault::decode("NOTIFY", e))?;
        inc(&self.stats.notify_total);
        if self.cfg.processing_delay.is_zero() {
            self.ack_and_hand_off(stream_id, frame_id, messages, received);
        } else {
            let delay = self.cfg.processing_delay;
            self.delayed.insert(
                Delayed {
                    stream_id,
                    frame_id,
                    messages,
                    received,
                },
                delay,
            );
        }
        Ok(Next::Continue)
    }

    /// Queues the (empty) ACK, then gives the messages to the handler.
    fn ack_and_hand_off(
        &mut self,
        stream_id: u64,
        frame_id: u64,
        messages: Vec<Message>,
        received: Instant,
    ) {
        push_ack(&mut self.wbuf, stream_id, frame_id, self.cfg.ack_noop);
        self.acks_pending.push(received);
        self.handler.handle(messages);
    }

    /// The connection is gone with NOTIFYs still held by `-t`: their ACKs can no longer be
    /// sent, but the client requests happened, so they are mirrored all the same.
    fn hand_off_unacked(&mut self) {
        while let Some(expired) = self
            .delayed
            .peek()
            .and_then(|k| self.delayed.try_remove(&k))
        {
            inc(&self.stats.notify_unacked_total);
            self.handler.handle(expired.into_inner().messages);
        }
    }

    fn flush_delayed(&mut self) {
        while let Some(expired) = self
            .delayed
            .peek()
            .and_then(|k| self.delayed.try_remove(&k))
        {
            let d = expired.into_inner();
            self.ack_and_hand_off(d.stream_id, d.frame_id, d.messages, d.received);
        }
    }

    fn on_disconnect(&mut self, payload: Bytes) -> Result<Next, Fault> {
        let items = decode_kv(payload).map_err(|e| Fault::decode("HAPROXY-DISCONNECT", e))?;
        let theirs = Disconnect::from_kv(&items);
        let message = String::from_utf8_lossy(&theirs.message);
        match theirs.status {
            // 0 on stop/reload, 1 when HAProxy closes a connection it no longer needs, 2 on
            // its idle timeout: all routine.
            Status::Normal | Status::IoError | Status::Timeout => {
                debug!(
                    "HAPROXY-DISCONNECT status {}: {message}",
                    theirs.status.code()
                )
            }
            status => warn!("HAPROXY-DISCONNECT status {}: {message}", status.code()),
        }
        // N11: answer and close. NOTIFYs still held by `-t` get no ACK (HAProxy has given up
        // on them) but are mirrored when the connection ends.
        self.push_disconnect(&Disconnect::new(Status::Normal));
        Ok(Next::Close)
    }

    fn push_disconnect(&mut self, d: &Disconnect) {
        push_frame(
            &mut self.wbuf,
            FrameHeader::fin(FrameType::AgentDisconnect, 0, 0),
            Payload::KvList(d.to_kv()),
        );
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

/// What woke the connection's task.
enum Event {
    Shutdown,
    Delayed(Delayed),
    Timeout,
    Read(std::io::Result<usize>),
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

/// HELLO and DISCONNECT frames are connection-level: FIN set (else status 10) and both ids 0
/// (else status 4) (H11).
fn check_connection_frame(header: &FrameHeader, what: &str) -> Result<(), Fault> {
    if !header.flags.fin() {
        return Err(Fault::new(
            Status::FragmentationNotSupported,
            format!("{what} without FIN"),
        ));
    }
    if header.stream_id != 0 || header.frame_id != 0 {
        return Err(Fault::new(
            Status::InvalidFrame,
            format!(
                "{what} with stream-id {} / frame-id {} (must be 0)",
                header.stream_id, header.frame_id
            ),
        ));
    }
    Ok(())
}

fn decode_kv(payload: Bytes) -> Result<Vec<Kv>, SpopError> {
    Kv::decode_list(&mut Reader::new(payload))
}

fn decode_messages(payload: Bytes) -> Result<Vec<Message>, SpopError> {
    Message::decode_list(&mut Reader::new(payload))
}

fn push_frame(wbuf: &mut BytesMut, header: FrameHeader, payload: Payload) {
    Frame { header, payload }.encode(wbuf);
}

/// The ACK: `67 00000001 <stream-id> <frame-id>`, echoing the NOTIFY's ids, with no action
/// (or, with `--ack-noop`, one unset-var of a variable nobody uses).
fn push_ack(wbuf: &mut BytesMut, stream_id: u64, frame_id: u64, noop: bool) {
    let actions = if noop {
        vec![Action::UnsetVar {
            scope: VarScope::Txn,
            name: Bytes::from_static(b"spoa_mirror_noop"),
        }]
    } else {
        Vec::new()
    };
    push_frame(
        wbuf,
        FrameHeader::fin(FrameType::Ack, stream_id, frame_id),
        Payload::Actions(actions),
    );
}
