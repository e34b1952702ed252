//! The mirror engine: each decoded `mirror` message becomes an HTTP request, parsed once and
//! offered to every mirror target, fire-and-forget.
//!
//! ```text
//! message() ── parse (message/) ──┬─▶ Target 1: budget ── try_send ──▶ queue ──▶ dispatcher ── permit ──▶ deliver
//!   never blocks                   └─▶ Target 2: ...      (each target its own queue, limits, client, counters)
//! ```
//!
//! Building the request ([`message::parse`], pure) is separate from delivering it
//! (`target::Target`): each target decides, queues and delivers on its own, so a slow or
//! dead target never holds up another, nor an ACK. Today one target is built from `-u`;
//! per-target policy (sampling, rate caps, rules) goes in front of each target's queue, in
//! `Target::offer`.

mod client;
mod delivery;
mod headers;
mod message;
mod request;
mod target;

pub use headers::{parse_hdrs_bin, parse_hdrs_text, HeaderError, HeaderList};
pub use message::{parse, Invalid, MirrorRequest, Notes, Skip};
/// The pure request builder, exported for the fuzz targets (fuzz/) and their corpus replay.
pub use request::build as build_request;
pub use request::Base;

use crate::config::{MirrorConfig, UrlError};
use crate::handler::{Context, MessageHandler};
use crate::spop::Message;
use crate::stats::{inc, Stats};
use crate::throttle::LogThrottle;
use bytes::Bytes;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use target::Target;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Startup errors: the configuration cannot make a working mirror.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid mirror URL: {0}")]
    Url(UrlError),
    #[error("invalid proxy: {0}")]
    Proxy(&'static str),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("CA file {path}: {1}", path = .0.display())]
    CaFile(PathBuf, String),
    #[error("unknown interface or address for outgoing connections: {0}")]
    Interface(String),
    #[error("invalid local port range {0}-{1}")]
    Ports(u16, u16),
    #[error("queue size and concurrency must be at least 1")]
    Limits,
    /// Per request (never at startup): the request could not be put together.
    #[error("cannot build the request ({0})")]
    Build(&'static str),
}

/// The mirror engine; cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

struct Inner {
    stats: Arc<Stats>,
    targets: Vec<Target>,
    /// Stop taking jobs (shutdown started).
    closing: CancellationToken,
    /// Drain deadline passed: abandon what is left.
    abort: CancellationToken,
    /// Every target's dispatcher and delivery tasks.
    tasks: TaskTracker,
    /// (message name, reason) pairs already logged.
    logged_once: Mutex<HashSet<(Bytes, &'static str)>>,
    warn_invalid: LogThrottle,
    warn_truncated: LogThrottle,
}

impl Mirror {
    /// One target, from `-u` and the mirror flags, named `default`.
    pub fn new(cfg: MirrorConfig, stats: Arc<Stats>) -> Result<Mirror, Error> {
        Mirror::with_targets(vec![("default".to_owned(), cfg)], stats)
    }

    /// Builds each target (client with TLS, proxy, `-I`/`-P`; queue; dispatcher) and starts
    /// its dispatcher. Must be called inside a tokio runtime.
    pub fn with_targets(
        targets: Vec<(String, MirrorConfig)>,
        stats: Arc<Stats>,
    ) -> Result<Mirror, Error> {
        let closing = CancellationToken::new();
        let abort = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut built = Vec::with_capacity(targets.len());
        for (name, cfg) in targets {
            let counters = stats.add_target(&name);
            let engine = (&tasks, &closing, &abort);
            built.push(Target::new(
                name,
                &cfg,
                counters,
                Arc::clone(&stats),
                engine,
            )?);
        }
        Ok(Mirror {
            inner: Arc::new(Inner {
                stats,
                targets: built,
                closing,
                abort,
                tasks,
                logged_once: Mutex::new(HashSet::new()),
                warn_invalid: LogThrottle::new(),
                warn_truncated: LogThrottle::new(),
            }),
        })
    }

    /// Stops taking jobs, waits for queued and in-flight requests up to `deadline`, then
    /// abandons the rest (counted as `mirror_dropped_shutdown`).
    pub async fn shutdown(&self, deadline: Duration) {
        let inner = &self.inner;
        inner.closing.cancel();
        inner.tasks.close();
        if tokio::time::timeout(deadline, inner.tasks.wait())
            .await
            .is_err()
        {
            inner.abort.cancel();
            inner.tasks.wait().await;
        }
    }
}

impl MessageHandler for Mirror {
    fn message(&self, _ctx: &Context, message: Message) {
        self.inner.offer(&message);
    }
}

impl Inner {
    /// Parses one message and queues its request; never blocks.
    fn offer(&self, message: &Message) {
        let mut notes = Notes::default();
        let parsed = message::parse(message, &mut notes);
        if let Some(role) = notes.duplicate {
            self.log_once(&message.name, role, |name| {
                tracing::warn!("message '{name}': repeated {role} argument, the first one is used")
            });
        }
        if notes.no_headers {
            self.log_once(&message.name, "no headers", |name| {
                tracing::warn!(
                    "message '{name}': no headers argument, requests are mirrored without headers"
                )
            });
        }
        let request = match parsed {
            Ok(request) => request,
            Err(Skip::Ignored(reason)) => {
                self.log_once(&message.name, reason, |name| {
                    tracing::info!(
                        "message '{name}' is not mirrored ({reason}); ignored from now on"
                    )
                });
                return;
            }
            Err(Skip::Invalid(why)) => {
                inc(&self.stats.mirror_skipped_invalid);
                if self.warn_invalid.allow() {
                    let n = crate::stats::get(&self.stats.mirror_skipped_invalid);
                    tracing::warn!("mirror request skipped: {why} ({n} invalid so far)");
                }
                return;
            }
            Err(skip @ Skip::Truncated { .. }) => {
                inc(&self.stats.mirror_skipped_truncated);
                if self.warn_truncated.allow() {
                    let n = crate::stats::get(&self.stats.mirror_skipped_truncated);
                    tracing::warn!(
                        "mirror request skipped: {skip} ({n} so far; raise tune.bufsize and the SPOE \
                         max-frame-size, and use option http-buffer-request)"
                    );
                }
                return;
            }
        };
        // One parse, shared by every target (cheap `Arc` clones).
        let request = Arc::new(request);
        for target in &self.targets {
            target.offer(&request, &self.closing);
        }
    }

    /// Runs `log` the first time this (message name, reason) pair is seen.
    fn log_once(&self, name: &Bytes, reason: &'static str, log: impl FnOnce(&str)) {
        // Bounded: message names come from HAProxy's configuration, but never trust a peer.
        const MAX_ENTRIES: usize = 256;
        let Ok(mut seen) = self.logged_once.lock() else {
            return;
        };
        if seen.len() >= MAX_ENTRIES || seen.contains(&(name.clone(), reason)) {
            return;
        }
        // A copy, so the set does not keep a frame buffer alive.
        seen.insert((Bytes::copy_from_slice(name), reason));
        drop(seen);
        log(&String::from_utf8_lossy(name));
    }
}
