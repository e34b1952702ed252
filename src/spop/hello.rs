//! The handshake: HAPROXY-HELLO and AGENT-HELLO (SPOE §3.2.4, §3.2.5).
//!
//! HAProxy's HELLO is decoded as a plain KV-LIST first, then validated here, one rule per
//! status code, so the parse and the policy stay apart.

use super::data::{Kv, TypedData};
use super::{MIN_FRAME_SIZE, VERSION};
use bytes::Bytes;

const KEY_SUPPORTED_VERSIONS: &[u8] = b"supported-versions";
const KEY_MAX_FRAME_SIZE: &[u8] = b"max-frame-size";
const KEY_CAPABILITIES: &[u8] = b"capabilities";
const KEY_ENGINE_ID: &[u8] = b"engine-id";
const KEY_HEALTHCHECK: &[u8] = b"healthcheck";

/// The SPOP capabilities (SPOE §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub fragmentation: bool,
    pub pipelining: bool,
    pub r#async: bool,
}

impl Capabilities {
    /// Parses a comma-separated list; spaces around names are ignored, unknown names too.
    pub fn parse(list: &[u8]) -> Capabilities {
        let mut caps = Capabilities::default();
        for token in list.split(|&b| b == b',') {
            match token.trim_ascii() {
                b"fragmentation" => caps.fragmentation = true,
                b"pipelining" => caps.pipelining = true,
                b"async" => caps.r#async = true,
                _ => {}
            }
        }
        caps
    }

    /// The list as the agent sends it: no spaces, in the order fragmentation, pipelining, async.
    pub fn to_list(self) -> String {
        let names = [
            (self.fragmentation, "fragmentation"),
            (self.pipelining, "pipelining"),
            (self.r#async, "async"),
        ];
        names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Why a HAPROXY-HELLO is refused; `ProtocolError::status` gives each its status (SPOE §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("no supported-versions")]
    NoVersion,
    #[error("no supported version (the agent speaks 2.0)")]
    BadVersion,
    #[error("no max-frame-size")]
    NoFrameSize,
    #[error("max-frame-size below 256 or negative")]
    BadFrameSize,
    #[error("capabilities not a string")]
    NoCapabilities,
}

/// A validated HAPROXY-HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyHello {
    pub max_frame_size: u32,
    pub capabilities: Capabilities,
    pub engine_id: Option<Bytes>,
    pub healthcheck: bool,
}

impl HaproxyHello {
    /// Validates the KV items of a HAPROXY-HELLO. Unknown keys are skipped and for a repeated
    /// key the last value wins (H10). Keys are compared exactly.
    pub fn from_kv(items: &[Kv]) -> Result<HaproxyHello, HelloError> {
        let mut versions = None;
        let mut max_frame_size = None;
        let mut capabilities = Capabilities::default();
        let mut engine_id = None;
        let mut healthcheck = false;
        for kv in items {
            match &kv.name[..] {
                KEY_SUPPORTED_VERSIONS => {
                    versions = Some(kv.value.as_bytes().cloned().ok_or(HelloError::BadVersion)?)
                }
                // Any integer type is accepted, as HAProxy itself does (H6).
                KEY_MAX_FRAME_SIZE => {
                    max_frame_size = Some(match kv.value {
                        // A negative size is a size, just far too small.
                        TypedData::Int32(v) if v < 0 => return Err(HelloError::BadFrameSize),
                        TypedData::Int64(v) if v < 0 => return Err(HelloError::BadFrameSize),
                        ref v => v.as_u64().ok_or(HelloError::NoFrameSize)?,
                    })
                }
                KEY_CAPABILITIES => {
                    capabilities =
                        Capabilities::parse(kv.value.as_bytes().ok_or(HelloError::NoCapabilities)?)
                }
                KEY_ENGINE_ID => engine_id = kv.value.as_bytes().cloned(),
                KEY_HEALTHCHECK => healthcheck = matches!(kv.value, TypedData::Bool(true)),
                _ => {}
            }
        }
        // A missing `capabilities` is read as "" rather than refused (H7): health-check
        // HELLOs of some versions omit things, and nothing is lost by accepting.
        let versions = versions.ok_or(HelloError::NoVersion)?;
        if !supports_major_2(&versions) {
            return Err(HelloError::BadVersion);
        }
        let max_frame_size = max_frame_size.ok_or(HelloError::NoFrameSize)?;
        if max_frame_size < u64::from(MIN_FRAME_SIZE) {
            return Err(HelloError::BadFrameSize);
        }
        Ok(HaproxyHello {
            max_frame_size: u32::try_from(max_frame_size).unwrap_or(u32::MAX),
            capabilities,
            engine_id,
            healthcheck,
        })
    }

    /// The HELLO HAProxy sends, as KV items (for tests and the load generator).
    pub fn to_kv(&self) -> Vec<Kv> {
        let mut items = vec![
            Kv::new(
                "supported-versions",
                TypedData::String(Bytes::from_static(VERSION.as_bytes())),
            ),
            Kv::new("max-frame-size", TypedData::Uint32(self.max_frame_size)),
            Kv::new(
                "capabilities",
                TypedData::String(Bytes::from(self.capabilities.to_list())),
            ),
        ];
        if self.healthcheck {
            items.push(Kv::new("healthcheck", TypedData::Bool(true)));
        }
        if let Some(id) = &self.engine_id {
            items.push(Kv::new("engine-id", TypedData::String(id.clone())));
        }
        items
    }
}

/// "Major.Minor" entries separated by commas, spaces ignored; announcing major 2 means every
/// 2.x up to the given minor, so any 2.x entry covers 2.0 (H4). Unparsable entries are skipped.
fn supports_major_2(list: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|entry| {
        let entry = entry.trim_ascii();
        let mut parts = entry.splitn(2, |&b| b == b'.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        major == b"2"
            && !minor.is_empty()
            && minor.len() <= 3
            && minor.iter().all(u8::is_ascii_digit)
    })
}

/// The agent's answer to a HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHello {
    pub max_frame_size: u32,
    pub capabilities: Capabilities,
}

impl AgentHello {
    /// Negotiates with HAProxy's HELLO, given the size and capabilities this agent allows
    /// (`-m`, `-c`): the frame size is the smaller of both; pipelining and async are used only
    /// when both sides want them (async also needs an engine-id to group connections);
    /// fragmentation is asymmetric, it says this agent can *receive* fragments.
    pub fn negotiate(hello: &HaproxyHello, ours_max: u32, ours: Capabilities) -> AgentHello {
        let theirs = hello.capabilities;
        AgentHello {
            max_frame_size: ours_max.min(hello.max_frame_size).max(MIN_FRAME_SIZE),
            capabilities: Capabilities {
                fragmentation: ours.fragmentation,
                pipelining: ours.pipelining && theirs.pipelining,
                r#async: ours.r#async && theirs.r#async && hello.engine_id.is_some(),
            },
        }
    }

    /// Exact keys, in the order `version`, `max-frame-size`, `capabilities` (always present,
    /// possibly empty, since HAProxy 3.1's health check requires it).
    pub fn to_kv(&self) -> Vec<Kv> {
        vec![
            Kv::new(
                "version",
                TypedData::String(Bytes::from_static(VERSION.as_bytes())),
            ),
            Kv::new("max-frame-size", TypedData::Uint32(self.max_frame_size)),
            Kv::new(
                "capabilities",
                TypedData::String(Bytes::from(self.capabilities.to_list())),
            ),
        ]
    }

    pub fn from_kv(items: &[Kv]) -> Option<AgentHello> {
        let mut max_frame_size = None;
        let mut capabilities = Capabilities::default();
        for kv in items {
            match &kv.name[..] {
                KEY_MAX_FRAME_SIZE => max_frame_size = kv.value.as_u64(),
                KEY_CAPABILITIES => capabilities = Capabilities::parse(kv.value.as_bytes()?),
                _ => {}
            }
        }
        Some(AgentHello {
            max_frame_size: u32::try_from(max_frame_size?).ok()?,
            capabilities,
        })
    }
}
