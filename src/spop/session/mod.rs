//! One SPOP connection's protocol state, without IO (SPOE §3.2.3 – §3.2.9): bytes in, answers
//! and events out. The socket, the timers and `-t` belong to the caller (`connection.rs`).
//!
//! ```text
//! AwaitHello --HAPROXY-HELLO--> Processing --HAPROXY-DISCONNECT / error--> Closed
//!     \--healthcheck HELLO--> AGENT-HELLO, Closed
//! ```
//!
//! [`Session::receive`] cuts every whole frame off the input. The AGENT-HELLO is appended to
//! the output at once; everything else becomes an [`Event`], in frame order, for the caller to
//! act on: ACK a NOTIFY (now or after `-t`) with [`Session::encode_ack`], close with
//! [`Session::encode_disconnect`]. Every protocol error is a [`ProtocolError`], and
//! [`ProtocolError::status`] is the one place that maps errors to AGENT-DISCONNECT statuses.

use super::{
    Action, AgentHello, Capabilities, Disconnect, Frame, FrameDecoder, FrameHeader, FrameType,
    HaproxyHello, Kv, Message, Payload, Status, VarScope,
};
use bytes::{BufMut, Bytes, BytesMut};

mod error;
pub use error::ProtocolError;

/// Largest frame accepted before the handshake is done. A real HAPROXY-HELLO is a few hundred
/// bytes (a HAPROXY-DISCONNECT before HELLO less); `-m` applies only once a peer has said
/// HELLO, so a peer that never does cannot make the agent hold `-m` bytes.
pub const MAX_FRAME_BEFORE_HELLO: u32 = 4096;

/// What the session needs to know of the agent's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// The largest frame this agent accepts (`-m`); the negotiated size is the smaller of this
    /// and HAProxy's.
    pub max_frame_size: u32,
    /// Capabilities the agent is willing to use (`-c`).
    pub capabilities: Capabilities,
    /// Upper bound of a payload reassembled from fragments.
    pub max_reassembled_size: usize,
    /// One harmless `unset-var(txn.spoa_mirror_noop)` in every ACK (`--ack-noop`).
    pub ack_noop: bool,
}

/// A whole NOTIFY with the context a handler needs to correlate or route it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify {
    /// The HAProxy process's engine-id from its HELLO (absent in some health checks).
    pub engine_id: Option<Bytes>,
    pub stream_id: u64,
    pub frame_id: u64,
    pub messages: Vec<Message>,
}

/// What the caller must act on, in frame order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is done (not sent for a health check).
    Ready(AgentHello),
    /// A NOTIFY to ACK and hand over.
    Notify(Notify),
    /// Close the connection: after an AGENT-DISCONNECT with [`Close::status`], except for a
    /// health check, which ends right after its AGENT-HELLO. Always the last event.
    Close(Close),
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// `option spop-check`: one AGENT-HELLO, nothing more (H9).
    Healthcheck,
    /// HAPROXY-DISCONNECT (N11); answered with status 0.
    PeerDisconnect(Disconnect),
    /// HAProxy broke the protocol.
    Error(ProtocolError),
}

impl Close {
    /// The status of the AGENT-DISCONNECT to send, `None` for a health check.
    pub fn status(&self) -> Option<Status> {
        match self {
            Close::Healthcheck => None,
            Close::PeerDisconnect(_) => Some(Status::Normal),
            Close::Error(e) => Some(e.status()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    Processing,
    Closed,
}

/// A NOTIFY whose payload arrives in several frames (HAProxy ≤ 3.0, `-c fragmentation`).
#[derive(Debug)]
struct Fragmented {
    stream_id: u64,
    frame_id: u64,
    payload: BytesMut,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    decoder: FrameDecoder,
    fragmentation: bool,
    fragment: Option<Fragmented>,
    engine_id: Option<Bytes>,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        Session {
            decoder: FrameDecoder::new(cfg.max_frame_size.min(MAX_FRAME_BEFORE_HELLO)),
            cfg,
            state: State::AwaitHello,
            fragmentation: false,
            fragment: None,
            engine_id: None,
        }
    }

    /// Whether the session ended (a [`Event::Close`] was emitted); later input is ignored.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Handles every whole frame at the front of `input`: the AGENT-HELLO goes into `out`,
    /// the rest into `events`. Returns how many frames were taken off `input`.
    pub fn receive(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> usize {
        let mut frames = 0;
        while self.state != State::Closed {
            let frame = match self.decoder.decode(input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.close(Close::Error(ProtocolError::Decode("frame", e)), events);
                    break;
                }
            };
            frames += 1;
            if let Err(e) = self.on_frame(frame, out, events) {
                self.close(Close::Error(e), events);
            }
        }
        frames
    }

    /// Appends the ACK of a NOTIFY: its ids echoed, no action (or, with `--ack-noop`, one
    /// unset-var of a variable nobody uses).
    pub fn encode_ack(&self, stream_id: u64, frame_id: u64, out: &mut BytesMut) {
        let actions = if self.cfg.ack_noop {
            vec![Action::UnsetVar {
                scope: VarScope::Txn,
                name: Bytes::from_static(b"spoa_mirror_noop"),
            }]
        } else {
            Vec::new()
        };
        push(
            out,
            FrameType::Ack,
            stream_id,
            frame_id,
            Payload::Actions(actions),
        );
    }

    /// Appends an AGENT-DISCONNECT with `status` and its standard text.
    pub fn encode_disconnect(status: Status, out: &mut BytesMut) {
        let payload = Payload::KvList(Disconnect::new(status).to_kv());
        push(out, FrameType::AgentDisconnect, 0, 0, payload);
    }

    fn close(&mut self, why: Close, events: &mut Vec<Event>) {
        self.state = State::Closed;
        self.fragment = None;
        events.push(Event::Close(why));
    }

    fn on_frame(
        &mut self,
        frame: Bytes,
        out: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        let (header, payload) =
            Frame::decode_header(frame).map_err(|e| ProtocolError::Decode("frame header", e))?;
        match (self.state, header.frame_type) {
            // N11: HAProxy may disconnect at any time, even before its HELLO.
            (_, FrameType::HaproxyDisconnect) => {
                let items = kv_list(header.frame_type, payload, "HAPROXY-DISCONNECT")?;
                self.close(Close::PeerDisconnect(Disconnect::from_kv(&items)), events);
                Ok(())
            }
            (State::AwaitHello, FrameType::HaproxyHello) => {
                self.on_hello(header, payload, out, events)
            }
            (State::AwaitHello, other) => Err(ProtocolError::ExpectedHello(other)),
            (_, FrameType::Notify) => self.on_notify(header, payload, events),
            (_, FrameType::Unset) => self.on_unset(header, payload, events),
            // H12: one handshake per connection.
            (_, FrameType::HaproxyHello) => Err(ProtocolError::SecondHello),
            // N12: agent frames, or types the spec does not define, never come from HAProxy.
            (_, other) => Err(ProtocolError::UnexpectedFrame(other)),
        }
    }

    fn on_hello(
        &mut self,
        header: FrameHeader,
        payload: Bytes,
        out: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        check_connection_frame(&header, "HAPROXY-HELLO")?;
        let items = kv_list(header.frame_type, payload, "HAPROXY-HELLO")?;
        let hello = HaproxyHello::from_kv(&items).map_err(ProtocolError::HelloRefused)?;
        let reply = AgentHello::negotiate(&hello, self.cfg.max_frame_size, self.cfg.capabilities);
        push(
            out,
            FrameType::AgentHello,
            0,
            0,
            Payload::KvList(reply.to_kv()),
        );
        if hello.healthcheck {
            // H9: exactly one AGENT-HELLO, then close; HAProxy 3.1+ parses anything more as
            // part of the HELLO and fails the check.
            self.close(Close::Healthcheck, events);
            return Ok(());
        }
        self.decoder.set_max_frame_size(reply.max_frame_size);
        self.fragmentation = reply.capabilities.fragmentation;
        self.engine_id = hello.engine_id;
        self.state = State::Processing;
        events.push(Event::Ready(reply));
        Ok(())
    }

    fn on_notify(
        &mut self,
        header: FrameHeader,
        payload: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        if self.fragment.is_some() {
            // HAProxy sends nothing else while a fragmented NOTIFY is in progress.
            return Err(ProtocolError::NotifyDuringFragment);
        }
        if header.flags.fin() {
            return self.on_whole_notify(header.stream_id, header.frame_id, payload, events);
        }
        if !self.fragmentation {
            return Err(ProtocolError::FragmentationNotNegotiated);
        }
        if header.flags.abort() {
            return Ok(());
        }
        self.check_reassembly_size(payload.len(), 0)?;
        let mut buf = BytesMut::with_capacity(payload.len().saturating_mul(2));
        buf.put_slice(&payload);
        self.fragment = Some(Fragmented {
            stream_id: header.stream_id,
            frame_id: header.frame_id,
            payload: buf,
        });
        Ok(())
    }

    fn on_unset(
        &mut self,
        header: FrameHeader,
        payload: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        // N10: an UNSET continues the fragmented NOTIFY in progress, and only that one.
        let Some(fragment) = self.fragment.as_ref() else {
            return Err(ProtocolError::UnsetWithoutFragment);
        };
        let ids = (fragment.stream_id, fragment.frame_id);
        if ids != (header.stream_id, header.frame_id) {
            let (s, f) = ids;
            return Err(ProtocolError::UnsetForOtherFrame(
                header.stream_id,
                header.frame_id,
                s,
                f,
            ));
        }
        if header.flags.abort() {
            // HAProxy gave up on this NOTIFY: drop it, no ACK.
            self.fragment = None;
            return Ok(());
        }
        self.check_reassembly_size(payload.len(), fragment.payload.len())?;
        let Some(fragment) = self.fragment.as_mut() else {
            return Ok(());
        };
        fragment.payload.put_slice(&payload);
        if !header.flags.fin() {
            return Ok(());
        }
        let Some(done) = self.fragment.take() else {
            return Ok(());
        };
        self.on_whole_notify(done.stream_id, done.frame_id, done.payload.freeze(), events)
    }

    fn check_reassembly_size(&self, adding: usize, have: usize) -> Result<(), ProtocolError> {
        let max = self.cfg.max_reassembled_size;
        if have.saturating_add(adding) > max {
            return Err(ProtocolError::ReassemblyTooBig(max));
        }
        Ok(())
    }

    fn on_whole_notify(
        &mut self,
        stream_id: u64,
        frame_id: u64,
        payload: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        let messages = match Frame::decode_payload(FrameType::Notify, payload) {
            Ok(Payload::Messages(messages)) => messages,
            Ok(_) => Vec::new(),
            Err(e) => return Err(ProtocolError::Decode("NOTIFY", e)),
        };
        events.push(Event::Notify(Notify {
            engine_id: self.engine_id.clone(),
            stream_id,
            frame_id,
            messages,
        }));
        Ok(())
    }
}

/// HELLO and DISCONNECT frames are connection-level: FIN set (else status 10) and both ids 0
/// (else status 4) (H11).
fn check_connection_frame(header: &FrameHeader, what: &'static str) -> Result<(), ProtocolError> {
    if !header.flags.fin() {
        return Err(ProtocolError::ConnectionFrameNotFin(what));
    }
    if header.stream_id != 0 || header.frame_id != 0 {
        return Err(ProtocolError::ConnectionFrameIds(
            what,
            header.stream_id,
            header.frame_id,
        ));
    }
    Ok(())
}

fn kv_list(
    frame_type: FrameType,
    payload: Bytes,
    what: &'static str,
) -> Result<Vec<Kv>, ProtocolError> {
    match Frame::decode_payload(frame_type, payload) {
        Ok(Payload::KvList(items)) => Ok(items),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(ProtocolError::Decode(what, e)),
    }
}

fn push(
    out: &mut BytesMut,
    frame_type: FrameType,
    stream_id: u64,
    frame_id: u64,
    payload: Payload,
) {
    Frame {
        header: FrameHeader::fin(frame_type, stream_id, frame_id),
        payload,
    }
    .encode(out);
}

#[cfg(test)]
mod tests;
