//! Shadow comparison: does the candidate answer like production?
//!
//! ```text
//! HAProxy ── request message (arg_id) ──▶ mirror engine ── target with compare ──▶ candidate / reference
//!    │                                        │ expect(id)              │ answered(id, response)
//!    │                                        ▼                         ▼
//!    └── response message (arg_id, status, ──▶ Shadow ── bounded queue ──▶ comparator thread (pairing.rs)
//!        res.hdrs_bin, res.body)                                        │ compare.rs, noise cancelled
//!                                                                        ▼
//!                                            report.rs (metrics, /shadow page), difflog.rs (JSONL)
//! ```
//!
//! The primary's response reaches the agent as a second SPOE message (a route of the
//! `Router`); a target with `compare = "candidate"` or `"reference"` keeps its responses
//! (the engine's [`ResponseTap`]). Everything goes through one bounded queue to one thread,
//! which alone holds the pending pairs: the SPOP side and the deliveries only `try_send`.
//! Every bound (queue, pending count, bytes, body size, window, endpoints, examples, diff
//! file size) is enforced and counted; see README, "Shadow comparison".

mod compare;
mod difflog;
mod endpoint;
mod page;
mod pairing;
mod redact;
mod report;
mod response;

pub use compare::{Comparator, FieldDiff, Kind};
pub use endpoint::template as endpoint_template;
pub use response::{parse_primary, Response};

use crate::config::{ShadowConfig, ShadowRole};
use crate::handler::{Context, MessageHandler};
use crate::mirror::{Captured, MirrorRequest, ResponseTap};
use crate::spop::Message;
use crate::stats::{DescriptorEncoder, Exporter};
use crate::throttle::LogThrottle;
use bytes::Bytes;
use pairing::{Msg, Pairing};
use report::{Report, Totals};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// The shadow comparison's handle; cheap to clone.
#[derive(Clone)]
pub struct Shadow {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Arc<ShadowConfig>,
    /// The engine, whose recording targets also write the primary's responses (type 2).
    mirror: std::sync::OnceLock<crate::mirror::Mirror>,
    tx: SyncSender<Msg>,
    report: Arc<Mutex<Report>>,
    totals: Arc<Totals>,
    warn_invalid: LogThrottle,
    warn_dropped: LogThrottle,
}

impl Shadow {
    /// Opens the diff file (an error is a startup error) and starts the comparator thread.
    pub fn start(cfg: ShadowConfig) -> Result<Shadow, String> {
        let cfg = Arc::new(cfg);
        let totals = Arc::new(Totals::default());
        let report = Arc::new(Mutex::new(Report::default()));
        let difflog = match &cfg.diff_file {
            Some(path) => Some(
                difflog::DiffLog::open(path, cfg.diff_file_size, Arc::clone(&totals)).map_err(
                    |e| format!("shadow: cannot open the diff file {}: {e}", path.display()),
                )?,
            ),
            None => None,
        };
        let (tx, rx) = sync_channel(cfg.queue);
        let pairing = Pairing::new(
            Arc::clone(&cfg),
            Arc::clone(&report),
            Arc::clone(&totals),
            difflog,
        );
        std::thread::Builder::new()
            .name("shadow".into())
            .spawn(move || pairing::run(pairing, rx))
            .map_err(|e| format!("shadow: cannot start the comparator thread: {e}"))?;
        tracing::info!("{}", cfg.describe());
        Ok(Shadow {
            inner: Arc::new(Inner {
                cfg,
                mirror: std::sync::OnceLock::new(),
                tx,
                report,
                totals,
                warn_invalid: LogThrottle::new(),
                warn_dropped: LogThrottle::new(),
            }),
        })
    }

    /// Hands the primary's responses to `mirror` too, for its recording targets (type-2
    /// records); only the first call counts.
    pub fn record_to(&self, mirror: crate::mirror::Mirror) {
        let _ = self.inner.mirror.set(mirror);
    }

    /// The SPOE message name that carries the primary's response.
    pub fn message_name(&self) -> &str {
        &self.inner.cfg.message
    }
}

impl Inner {
    /// Hands a message to the comparator if the memory bound allows; never blocks.
    fn send(&self, msg: Msg, bytes: u64) {
        let max = u64::try_from(self.cfg.max_memory).unwrap_or(u64::MAX);
        let within = self
            .totals
            .memory_bytes
            .fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |used| used.checked_add(bytes).filter(|&n| n <= max),
            )
            .is_ok();
        if !within {
            self.dropped("memory bound reached");
            return;
        }
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                crate::stats::sub(&self.totals.memory_bytes, bytes);
                self.dropped("queue full");
            }
        }
    }

    fn dropped(&self, why: &str) {
        crate::stats::inc(&self.totals.dropped);
        if self.warn_dropped.allow() {
            tracing::warn!(
                "shadow: a response was dropped before comparison ({why}; {} so far): the \
                 comparator is behind, or the [shadow] bounds are too small",
                crate::stats::get(&self.totals.dropped)
            );
        }
    }
}

/// The primary's responses (the route of `[shadow] message`).
impl MessageHandler for Shadow {
    fn message(&self, _ctx: &Context, message: Message) {
        let inner = &self.inner;
        match parse_primary(&message, inner.cfg.max_body) {
            Ok((id, response)) => {
                // Recording targets write it as a type-2 record (not a body HAProxy cut).
                if let Some(m) = inner.mirror.get().filter(|m| m.records()) {
                    if !response.too_large {
                        let raw = crate::record::encode_response(
                            response.status,
                            &response.headers,
                            &response.body,
                        );
                        m.record_response(&id, &Bytes::from(raw));
                    }
                }
                let bytes = u64::try_from(response.size()).unwrap_or(u64::MAX);
                inner.send(
                    Msg::Primary {
                        id,
                        response,
                        bytes,
                    },
                    bytes,
                );
            }
            Err(why) => {
                crate::stats::inc(&inner.totals.invalid_messages);
                if inner.warn_invalid.allow() {
                    tracing::warn!(
                        "shadow: message '{}' not used: {why}",
                        String::from_utf8_lossy(&message.name)
                    );
                }
            }
        }
    }
}

/// What targets with a compare role took and got.
impl ResponseTap for Shadow {
    fn expect(&self, target: &Arc<str>, role: ShadowRole, request: &Arc<MirrorRequest>) {
        // References only: the comparator thread copies what it keeps (the id, the endpoint).
        let msg = Msg::Expect {
            request: Arc::clone(request),
            target: Arc::clone(target),
            role,
        };
        // Counted by the comparator when it creates the entry; if it cannot be told, the
        // request is counted here, so that each one is counted once whatever happens.
        if self.inner.tx.try_send(msg).is_err() {
            self.inner.dropped("queue full");
            if role == ShadowRole::Candidate {
                let mut report = self.inner.report.lock().unwrap_or_else(|e| e.into_inner());
                report.unpaired(target, report::Reason::Overflow);
            }
        }
    }

    fn answered(
        &self,
        target: &Arc<str>,
        _role: ShadowRole,
        id: &Bytes,
        response: Option<Captured>,
    ) {
        let response = response.map(Response::from_captured);
        let bytes = response
            .as_ref()
            .map_or(0, |r| u64::try_from(r.size()).unwrap_or(u64::MAX));
        let msg = Msg::Mirror {
            id: id.clone(),
            target: Arc::clone(target),
            response,
            bytes,
        };
        self.inner.send(msg, bytes);
    }

    fn max_body(&self) -> usize {
        self.inner.cfg.max_body
    }
}

impl Exporter for Shadow {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let report = self.inner.report.lock().unwrap_or_else(|e| e.into_inner());
        report::encode(&report, &self.inner.totals, encoder)
    }

    fn page(&self, path: &str) -> Option<(&'static str, String)> {
        (path == "/shadow").then(|| {
            let report = self.inner.report.lock().unwrap_or_else(|e| e.into_inner());
            (
                "text/html; charset=utf-8",
                page::render(&report, &self.inner.totals, &self.inner.cfg),
            )
        })
    }
}
