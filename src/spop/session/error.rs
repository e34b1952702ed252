//! Everything HAProxy can get wrong on one connection, and the one place that maps each to its
//! AGENT-DISCONNECT status (SPOE §3.5).

use crate::spop::{Error, FrameType, HelloError, Status};

/// Everything HAProxy can get wrong, each with its AGENT-DISCONNECT status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("cannot decode {0}: {1}")]
    Decode(&'static str, Error),
    #[error("HAPROXY-HELLO refused: {0}")]
    HelloRefused(HelloError),
    #[error("expected HAPROXY-HELLO, got {} (type {})", .0.name(), .0.to_u8())]
    ExpectedHello(FrameType),
    #[error("second HAPROXY-HELLO")]
    SecondHello,
    #[error("unexpected {} frame (type {})", .0.name(), .0.to_u8())]
    UnexpectedFrame(FrameType),
    #[error("{0} without FIN")]
    ConnectionFrameNotFin(&'static str),
    #[error("{0} with stream-id {1} / frame-id {2} (must be 0)")]
    ConnectionFrameIds(&'static str, u64, u64),
    #[error("NOTIFY without FIN but fragmentation was not negotiated")]
    FragmentationNotNegotiated,
    #[error("NOTIFY while a fragmented NOTIFY is in progress")]
    NotifyDuringFragment,
    #[error("UNSET frame with no fragmented NOTIFY in progress")]
    UnsetWithoutFragment,
    #[error("UNSET frame for stream {0}/{1} while {2}/{3} is in progress")]
    UnsetForOtherFrame(u64, u64, u64, u64),
    #[error("fragmented NOTIFY exceeds {0} bytes")]
    ReassemblyTooBig(usize),
}

impl ProtocolError {
    /// The AGENT-DISCONNECT status for this error (SPOE §3.5): the one mapping.
    pub fn status(&self) -> Status {
        match self {
            ProtocolError::Decode(_, Error::FrameTooBig { .. }) => Status::FrameTooBig,
            ProtocolError::Decode(..) => Status::InvalidFrame,
            ProtocolError::HelloRefused(e) => match e {
                HelloError::NoVersion => Status::NoVersion,
                HelloError::BadVersion => Status::BadVersion,
                HelloError::NoFrameSize => Status::NoFrameSize,
                HelloError::BadFrameSize => Status::BadFrameSize,
                HelloError::NoCapabilities => Status::NoCapabilities,
            },
            ProtocolError::ExpectedHello(_)
            | ProtocolError::SecondHello
            | ProtocolError::UnexpectedFrame(_)
            | ProtocolError::ConnectionFrameIds(..) => Status::InvalidFrame,
            ProtocolError::ConnectionFrameNotFin(_) | ProtocolError::FragmentationNotNegotiated => {
                Status::FragmentationNotSupported
            }
            ProtocolError::NotifyDuringFragment
            | ProtocolError::UnsetWithoutFragment
            | ProtocolError::UnsetForOtherFrame(..) => Status::InterlacedFrames,
            ProtocolError::ReassemblyTooBig(_) => Status::FrameTooBig,
        }
    }
}
