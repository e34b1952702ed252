//! The boundary between the SPOP side and what consumes the decoded NOTIFYs.
//!
//! A connection hands each NOTIFY, with its context, to one [`NotifyHandler`]. The agent's is a
//! [`Router`]: each message goes to the [`MessageHandler`] registered for its name (the SPOE
//! `spoe-message` name), or to the default route. A new kind of message (a response message
//! for shadow comparison, say) is one more route, not a change to the connection or the engine.

use crate::spop::Message;
use bytes::Bytes;
use std::sync::Arc;

pub use crate::spop::Notify;

/// Receives every NOTIFY, in the order they were decoded.
///
/// Called on the connection's task right after the ACK for that NOTIFY was queued for writing
/// (or, when the connection ended during `-t`, without one); it must not block or await: hand
/// the work off (a bounded queue) and return.
pub trait NotifyHandler: Send + Sync + 'static {
    fn handle(&self, notify: Notify);
}

/// Where a message came from: enough to correlate it with another message of the same stream
/// (the request and, later, its response).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    pub engine_id: Option<Bytes>,
    pub stream_id: u64,
    pub frame_id: u64,
}

/// Consumes one kind of message. The same rules as [`NotifyHandler::handle`]: never block.
pub trait MessageHandler: Send + Sync + 'static {
    fn message(&self, ctx: &Context, message: Message);
}

/// A message handler alone also serves as a NOTIFY handler: every message goes to it.
impl<T: MessageHandler> NotifyHandler for T {
    fn handle(&self, notify: Notify) {
        let (ctx, messages) = Context::split(notify);
        for message in messages {
            self.message(&ctx, message);
        }
    }
}

impl Context {
    /// A NOTIFY's context and its messages.
    fn split(notify: Notify) -> (Context, Vec<Message>) {
        let ctx = Context {
            engine_id: notify.engine_id,
            stream_id: notify.stream_id,
            frame_id: notify.frame_id,
        };
        (ctx, notify.messages)
    }
}

/// Sends each message to the handler registered for its name, else to the default route;
/// a message with neither is dropped.
#[derive(Default, Clone)]
pub struct Router {
    routes: Vec<(Bytes, Arc<dyn MessageHandler>)>,
    default: Option<Arc<dyn MessageHandler>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Messages named `name` go to `handler` (the first route for a name wins).
    pub fn route(mut self, name: &str, handler: Arc<dyn MessageHandler>) -> Router {
        self.routes
            .push((Bytes::copy_from_slice(name.as_bytes()), handler));
        self
    }

    /// Messages whose name has no route go to `handler`.
    pub fn default_route(mut self, handler: Arc<dyn MessageHandler>) -> Router {
        self.default = Some(handler);
        self
    }

    fn handler_for(&self, name: &[u8]) -> Option<&Arc<dyn MessageHandler>> {
        self.routes
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, h)| h)
            .or(self.default.as_ref())
    }
}

impl NotifyHandler for Router {
    fn handle(&self, notify: Notify) {
        let (ctx, messages) = Context::split(notify);
        for message in messages {
            if let Some(handler) = self.handler_for(&message.name) {
                handler.message(&ctx, message);
            }
        }
    }
}

impl From<Vec<Message>> for Notify {
    /// A NOTIFY with these messages and no context (tests, tools).
    fn from(messages: Vec<Message>) -> Notify {
        Notify {
            messages,
            ..Notify::default()
        }
    }
}

/// ACKs and forgets: what the agent does without `-u`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl MessageHandler for Discard {
    fn message(&self, _ctx: &Context, _message: Message) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// (route label, message name, stream-id) for every message a route received.
    type Seen = Arc<Mutex<Vec<(&'static str, Bytes, u64)>>>;

    struct Tap(&'static str, Seen);

    impl MessageHandler for Tap {
        fn message(&self, ctx: &Context, message: Message) {
            self.1
                .lock()
                .unwrap()
                .push((self.0, message.name, ctx.stream_id));
        }
    }

    fn msg(name: &'static str) -> Message {
        Message {
            name: Bytes::from_static(name.as_bytes()),
            args: Vec::new(),
        }
    }

    #[test]
    fn routes_by_name_then_default_in_order_with_context() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("response", Arc::new(Tap("response", seen.clone())))
            .default_route(Arc::new(Tap("default", seen.clone())));
        router.handle(Notify {
            engine_id: Some(Bytes::from_static(b"e")),
            stream_id: 7,
            frame_id: 1,
            messages: vec![msg("mirror"), msg("response"), msg("other")],
        });
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                ("default", Bytes::from_static(b"mirror"), 7),
                ("response", Bytes::from_static(b"response"), 7),
                ("default", Bytes::from_static(b"other"), 7),
            ]
        );
    }

    #[test]
    fn without_a_default_unrouted_messages_are_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new().route("a", Arc::new(Tap("a", seen.clone())));
        router.handle(vec![msg("b"), msg("a")].into());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![("a", Bytes::from_static(b"a"), 0)]
        );
    }
}
