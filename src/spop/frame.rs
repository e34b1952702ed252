//! Frame header and the [`Frame`] value (SPOE §3.2).
//!
//! ```text
//! FRAME-LENGTH:u32be | TYPE:u8 | FLAGS:u32be (bit 0 FIN, bit 1 ABORT) | STREAM-ID:varint | FRAME-ID:varint | PAYLOAD
//! ```
//!
//! The payload kind follows from the type: a KV-LIST for HELLO and DISCONNECT frames, a
//! LIST-OF-MESSAGES for NOTIFY, a LIST-OF-ACTIONS for ACK, raw bytes for UNSET (a fragment's
//! continuation) and for unknown types.

use super::data::{Kv, Reader};
use super::{varint, Action, Error, Message, LENGTH_PREFIX};
use bytes::{BufMut, Bytes, BytesMut};

/// The frame types of SPOE §3.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// A continuation of a fragmented payload (HAProxy ≤ 3.0 only).
    Unset,
    HaproxyHello,
    HaproxyDisconnect,
    Notify,
    AgentHello,
    AgentDisconnect,
    Ack,
    /// Any other byte; the spec lets an implementation skip or refuse it.
    Unknown(u8),
}

impl FrameType {
    pub fn from_u8(b: u8) -> FrameType {
        match b {
            0 => FrameType::Unset,
            1 => FrameType::HaproxyHello,
            2 => FrameType::HaproxyDisconnect,
            3 => FrameType::Notify,
            101 => FrameType::AgentHello,
            102 => FrameType::AgentDisconnect,
            103 => FrameType::Ack,
            other => FrameType::Unknown(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            FrameType::Unset => 0,
            FrameType::HaproxyHello => 1,
            FrameType::HaproxyDisconnect => 2,
            FrameType::Notify => 3,
            FrameType::AgentHello => 101,
            FrameType::AgentDisconnect => 102,
            FrameType::Ack => 103,
            FrameType::Unknown(b) => b,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FrameType::Unset => "UNSET",
            FrameType::HaproxyHello => "HAPROXY-HELLO",
            FrameType::HaproxyDisconnect => "HAPROXY-DISCONNECT",
            FrameType::Notify => "NOTIFY",
            FrameType::AgentHello => "AGENT-HELLO",
            FrameType::AgentDisconnect => "AGENT-DISCONNECT",
            FrameType::Ack => "ACK",
            FrameType::Unknown(_) => "unknown",
        }
    }
}

/// The 32 flag bits. Reserved bits are kept as received and otherwise ignored (F12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u32);

impl Flags {
    pub const FIN: Flags = Flags(0x1);
    pub const ABORT: Flags = Flags(0x2);

    pub fn fin(self) -> bool {
        self.0 & Flags::FIN.0 != 0
    }

    pub fn abort(self) -> bool {
        self.0 & Flags::ABORT.0 != 0
    }
}

/// Type, flags and the two ids that start every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub frame_type: FrameType,
    pub flags: Flags,
    pub stream_id: u64,
    pub frame_id: u64,
}

impl FrameHeader {
    /// A header with FIN set, as every agent frame must have.
    pub fn fin(frame_type: FrameType, stream_id: u64, frame_id: u64) -> FrameHeader {
        FrameHeader {
            frame_type,
            flags: Flags::FIN,
            stream_id,
            frame_id,
        }
    }

    fn decode(r: &mut Reader) -> Result<FrameHeader, Error> {
        let frame_type = FrameType::from_u8(r.u8("frame type")?);
        let flags = Flags(r.u32_be("frame flags")?);
        let stream_id = r.varint()?;
        let frame_id = r.varint()?;
        Ok(FrameHeader {
            frame_type,
            flags,
            stream_id,
            frame_id,
        })
    }

    fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u8(self.frame_type.to_u8());
        dst.put_u32(self.flags.0);
        varint::encode(self.stream_id, dst);
        varint::encode(self.frame_id, dst);
    }
}

/// A frame's payload, decoded according to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    KvList(Vec<Kv>),
    Messages(Vec<Message>),
    Actions(Vec<Action>),
    Raw(Bytes),
}

/// One whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: FrameHeader,
    pub payload: Payload,
}

impl Frame {
    /// Decodes the bytes after the length prefix (exactly one frame).
    ///
    /// A payload that is not fully consumed by its list is an error (F11), so a frame either
    /// decodes completely or not at all.
    pub fn decode(frame: Bytes) -> Result<Frame, Error> {
        let (header, payload) = Frame::decode_header(frame)?;
        let payload = Frame::decode_payload(header.frame_type, payload)?;
        Ok(Frame { header, payload })
    }

    /// Splits a frame into its header and its still-encoded payload, so that a connection can
    /// check the header (FIN, ids) before it decodes, or while it reassembles, the payload.
    pub fn decode_header(frame: Bytes) -> Result<(FrameHeader, Bytes), Error> {
        let mut r = Reader::new(frame);
        let header = FrameHeader::decode(&mut r)?;
        Ok((header, r.rest()))
    }

    pub fn decode_payload(frame_type: FrameType, payload: Bytes) -> Result<Payload, Error> {
        let mut r = Reader::new(payload);
        Ok(match frame_type {
            FrameType::HaproxyHello
            | FrameType::HaproxyDisconnect
            | FrameType::AgentHello
            | FrameType::AgentDisconnect => Payload::KvList(Kv::decode_list(&mut r)?),
            FrameType::Notify => Payload::Messages(Message::decode_list(&mut r)?),
            FrameType::Ack => Payload::Actions(Action::decode_list(&mut r)?),
            FrameType::Unset | FrameType::Unknown(_) => Payload::Raw(r.rest()),
        })
    }

    /// Appends the frame, length prefix included, to `dst`. The caller writes `dst` to the
    /// socket in one write, so a frame never leaves split (HAProxy 3.2 resets a connection whose
    /// AGENT-HELLO arrives in pieces).
    pub fn encode(&self, dst: &mut BytesMut) {
        let start = dst.len();
        dst.put_u32(0);
        self.header.encode(dst);
        match &self.payload {
            Payload::KvList(items) => Kv::encode_list(items, dst),
            Payload::Messages(messages) => Message::encode_list(messages, dst),
            Payload::Actions(actions) => Action::encode_list(actions, dst),
            Payload::Raw(bytes) => dst.put_slice(bytes),
        }
        patch_length(dst, start);
    }
}

/// Writes the length of the frame that starts at `start` into its 4-byte prefix.
pub(crate) fn patch_length(dst: &mut BytesMut, start: usize) {
    // Frames are bounded by max-frame-size (a u32), so the length always fits.
    let len = u32::try_from(dst.len().saturating_sub(start + LENGTH_PREFIX)).unwrap_or(u32::MAX);
    if let Some(prefix) = dst.get_mut(start..start + LENGTH_PREFIX) {
        prefix.copy_from_slice(&len.to_be_bytes());
    }
}
