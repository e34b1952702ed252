//! Where shadow comparison plugs into the engine: a target with a `compare` role tells a
//! [`ResponseTap`] which requests it took and, once each delivery ended, the response it got.
//!
//! The engine only reports; pairing, comparing and reporting happen behind the tap
//! (`crate::shadow`), on its own thread. Both calls must return at once, like every other step
//! of `Target::offer` and of a delivery.

use super::message::MirrorRequest;
use crate::config::ShadowRole;
use bytes::Bytes;
use http::HeaderMap;
use std::sync::Arc;

/// A target's response as kept for comparison.
#[derive(Debug, Clone)]
pub struct Captured {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body, or empty when it was larger than the tap's limit (`too_large`).
    pub body: Bytes,
    pub too_large: bool,
}

impl Captured {
    /// Bytes it holds, for the comparator's memory bound.
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len().saturating_add(v.len()).saturating_add(4))
            .fold(0, usize::saturating_add);
        256usize
            .saturating_add(headers)
            .saturating_add(self.body.len())
    }
}

/// Receives, from targets with a compare role, what they took and what they got.
pub trait ResponseTap: Send + Sync + 'static {
    /// A target took `request` (it has an id, passed the policy and is being queued): its
    /// response will follow through [`ResponseTap::answered`]. Called on the SPOP side: it
    /// hands references on, it copies nothing.
    fn expect(&self, target: &Arc<str>, role: ShadowRole, request: &Arc<MirrorRequest>);

    /// The delivery ended: the response (`None`: none came: connect error, timeout, reset).
    fn answered(&self, target: &Arc<str>, role: ShadowRole, id: &Bytes, response: Option<Captured>);

    /// Bodies larger than this are not kept (the response is still read to its end).
    fn max_body(&self) -> usize;
}
