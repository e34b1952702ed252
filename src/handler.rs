//! The boundary between the SPOP side and whatever consumes the decoded NOTIFYs.

use crate::spop::Message;

/// Receives the messages of every NOTIFY, in the order they were decoded.
///
/// Called on the connection's task right after the ACK for that NOTIFY has been queued for
/// writing; it must not block or await: hand the work off (a bounded queue) and return.
pub trait NotifyHandler: Send + Sync + 'static {
    fn handle(&self, messages: Vec<Message>);
}

/// ACKs and forgets: what the agent does without `-u`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl NotifyHandler for Discard {
    fn handle(&self, _messages: Vec<Message>) {}
}
