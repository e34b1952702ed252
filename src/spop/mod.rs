//! SPOP 2.0, the Stream Processing Offload Protocol (HAProxy `doc/SPOE.txt` §3), as a pure codec.
//!
//! Nothing in this module does IO: frames are decoded from [`Bytes`] and encoded into a
//! [`BytesMut`]. Every length read from the wire is checked against what is left before it is
//! used, and every integer is decoded with checked arithmetic, so no byte sequence can panic.
//!
//! ```text
//! FRAME-LENGTH:u32be | FRAME-TYPE:u8 | FLAGS:u32be | STREAM-ID:varint | FRAME-ID:varint | PAYLOAD
//! ```
//!
//! [`Bytes`]: bytes::Bytes
//! [`BytesMut`]: bytes::BytesMut

mod ack;
mod codec;
mod data;
mod disconnect;
mod frame;
mod hello;
mod notify;
mod session;
mod status;
pub mod varint;

pub use ack::{Action, VarScope};
pub use codec::FrameDecoder;
pub use data::{Kv, Reader, TypedData};
pub use disconnect::Disconnect;
pub use frame::{Flags, Frame, FrameHeader, FrameType, Payload};
pub use hello::{AgentHello, Capabilities, HaproxyHello, HelloError};
pub use notify::{Arg, Message};
pub use session::{
    Close, Event, Notify, ProtocolError, Session, SessionConfig, MAX_FRAME_BEFORE_HELLO,
};
pub use status::Status;

/// The only protocol version HAProxy speaks since 1.8.10 / 1.9.
pub const VERSION: &str = "2.0";
/// Smallest max-frame-size either side may announce (SPOE §2.2, `SPOP_MIN_FRAME_SIZE`).
pub const MIN_FRAME_SIZE: u32 = 256;
/// Size of the length prefix that precedes every frame; not counted in the frame length.
pub const LENGTH_PREFIX: usize = 4;
/// Smallest frame that can be valid: type (1) + flags (4) + stream-id (1) + frame-id (1).
pub const MIN_FRAME_LEN: usize = 7;

/// Why bytes could not be decoded as SPOP. [`ProtocolError::status`] says which
/// AGENT-DISCONNECT status each calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unexpected end of data while reading {0}")]
    UnexpectedEnd(&'static str),
    #[error("varint longer than 10 bytes or above 2^64-1")]
    VarintOverflow,
    #[error("typed data with reserved type {0}")]
    UnknownDataType(u8),
    #[error("{0} value does not fit its type")]
    IntOutOfRange(&'static str),
    #[error("frame length {0} is shorter than the 7-byte minimum")]
    FrameTooShort(usize),
    #[error("frame length {len} exceeds max-frame-size {max}")]
    FrameTooBig { len: u64, max: u32 },
    #[error("empty key in a KV-LIST")]
    EmptyKey,
    #[error("action type {0} with a wrong number of arguments ({1})")]
    BadAction(u8, u8),
}
