//! HAPROXY-DISCONNECT and AGENT-DISCONNECT (SPOE §3.2.8, §3.2.9): a status code and a message.

use super::data::{Kv, TypedData};
use super::Status;
use bytes::Bytes;

/// Either DISCONNECT frame's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub status: Status,
    pub message: Bytes,
}

impl Disconnect {
    /// The agent's DISCONNECT for `status`, with the status's standard text.
    pub fn new(status: Status) -> Disconnect {
        Disconnect {
            status,
            message: Bytes::from_static(status.reason().as_bytes()),
        }
    }

    /// Reads `status-code` and `message`; a missing status counts as unknown (99).
    pub fn from_kv(items: &[Kv]) -> Disconnect {
        let mut status = Status::Unknown;
        let mut message = Bytes::new();
        for kv in items {
            match &kv.name[..] {
                b"status-code" => {
                    if let Some(code) = kv.value.as_u64() {
                        status = Status::from_code(u32::try_from(code).unwrap_or(u32::MAX));
                    }
                }
                b"message" => {
                    if let Some(m) = kv.value.as_bytes() {
                        message = m.clone();
                    }
                }
                _ => {}
            }
        }
        Disconnect { status, message }
    }

    pub fn to_kv(&self) -> Vec<Kv> {
        vec![
            Kv::new("status-code", TypedData::Uint32(self.status.code())),
            Kv::new("message", TypedData::String(self.message.clone())),
        ]
    }
}
