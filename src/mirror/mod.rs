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
//! dead target never holds up another, nor an ACK. Targets come from `-u` and `--config`;
//! per-target policy (rules, sampling, rate caps, circuit breaker: `policy`) runs in front of
//! each target's queue, in `Target::offer`. [`Mirror::reload`] swaps the target list.

mod client;
mod control;
mod delivery;
mod headers;
mod message;
mod policy;
mod recording;
mod request;
mod sender;
mod tap;
mod target;

pub use control::{ControlError, TargetView};
pub use headers::{parse_hdrs_bin, parse_hdrs_text, HeaderError, HeaderList};
pub use message::{forwardable_headers, parse, parse_target, Invalid, MirrorRequest, Notes, Skip};
pub use policy::apply_rules;
/// The pure request builder, exported for the fuzz targets (fuzz/) and their corpus replay.
pub use request::build as build_request;
pub use request::Base;
pub use sender::{Sender, Sent};
pub use tap::{Captured, ResponseTap};

use crate::config::{MirrorConfig, TargetConfig, UrlError};
use crate::handler::{Context, MessageHandler};
use crate::spop::Message;
use crate::stats::{inc, Stats};
use crate::throttle::LogThrottle;
use arc_swap::ArcSwap;
use bytes::Bytes;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use target::{Engine, Target};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One target's policy on its own, for benches/codec.rs (not part of the agent's interface).
#[doc(hidden)]
pub struct PolicyBench {
    policy: policy::Policy,
    stats: crate::stats::TargetStats,
}

impl PolicyBench {
    pub fn new(config: crate::config::PolicyConfig, authority: http::uri::Authority) -> Self {
        PolicyBench {
            policy: policy::Policy::new(config, authority),
            stats: crate::stats::TargetStats::default(),
        }
    }

    /// Whether the request would be queued (the rewritten copy, if any, is made and dropped).
    pub fn decide(&self, request: &Arc<MirrorRequest>) -> bool {
        matches!(
            self.policy.decide(request, &self.stats),
            policy::Verdict::Send(..)
        )
    }
}

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
    #[error("{0}")]
    Record(String),
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
    /// Swapped whole by a reload; read once per message. A target left out of a new list
    /// drops its queue's sender with the old list: its queued and in-flight requests finish.
    targets: ArcSwap<Vec<Target>>,
    /// More than one target: log lines name theirs.
    several: Arc<AtomicBool>,
    /// One reload at a time.
    reloading: Mutex<()>,
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
    /// Shadow comparison: where targets with a compare role report (set once, at start).
    tap: OnceLock<Arc<dyn ResponseTap>>,
    /// Messages with a request but no id, while some target compares: logged once.
    warn_no_id: std::sync::Once,
}

impl Mirror {
    /// One target, from `-u` and the mirror flags, named `default`.
    pub fn new(cfg: MirrorConfig, stats: Arc<Stats>) -> Result<Mirror, Error> {
        Mirror::with_targets(
            vec![TargetConfig {
                name: TargetConfig::DEFAULT_NAME.to_owned(),
                mirror: cfg,
                policy: Default::default(),
            }],
            stats,
        )
    }

    /// Builds each target (client with TLS, proxy, `-I`/`-P`; queue; dispatcher; policy) and
    /// starts its dispatcher. Must be called inside a tokio runtime.
    pub fn with_targets(targets: Vec<TargetConfig>, stats: Arc<Stats>) -> Result<Mirror, Error> {
        let closing = CancellationToken::new();
        let abort = CancellationToken::new();
        let tasks = TaskTracker::new();
        let several = Arc::new(AtomicBool::new(targets.len() > 1));
        let engine = Engine {
            tasks: &tasks,
            closing: &closing,
            abort: &abort,
            several: &several,
        };
        let mut built = Vec::with_capacity(targets.len());
        for t in &targets {
            let counters = Arc::new(crate::stats::TargetStats::named(&t.name));
            built.push(Target::new(t, counters, Arc::clone(&stats), &engine)?);
        }
        stats.set_targets(built.iter().map(|t| Arc::clone(t.stats())).collect());
        Ok(Mirror {
            inner: Arc::new(Inner {
                stats,
                targets: ArcSwap::from_pointee(built),
                several,
                reloading: Mutex::new(()),
                closing,
                abort,
                tasks,
                logged_once: Mutex::new(HashSet::new()),
                warn_invalid: LogThrottle::new(),
                warn_truncated: LogThrottle::new(),
                tap: OnceLock::new(),
                warn_no_id: std::sync::Once::new(),
            }),
        })
    }

    /// Puts a new target list in force, atomically: a target whose connection settings did
    /// not change keeps its queue, client and counters (its requests are not disturbed); a
    /// removed one finishes what it holds. On an error the running list stays.
    pub fn reload(&self, targets: Vec<TargetConfig>) -> Result<(), Error> {
        let inner = &self.inner;
        let _one = inner.reloading.lock().map_err(|_| Error::Build("reload"))?;
        if inner.closing.is_cancelled() {
            return Ok(());
        }
        let old = inner.targets.load_full();
        let engine = Engine {
            tasks: &inner.tasks,
            closing: &inner.closing,
            abort: &inner.abort,
            several: &inner.several,
        };
        let mut built = Vec::with_capacity(targets.len());
        for t in &targets {
            let same_name = old.iter().find(|o| o.name() == t.name);
            let target = match same_name.and_then(|o| o.reuse(t)) {
                Some(kept) => kept,
                None => {
                    // Counters continue under the same name.
                    let counters = same_name.map_or_else(
                        || Arc::new(crate::stats::TargetStats::named(&t.name)),
                        |o| Arc::clone(o.stats()),
                    );
                    Target::new(t, counters, Arc::clone(&inner.stats), &engine)?
                }
            };
            built.push(target);
        }
        inner.several.store(built.len() > 1, Ordering::Relaxed);
        inner
            .stats
            .set_targets(built.iter().map(|t| Arc::clone(t.stats())).collect());
        control::log_reload(&inner.stats, &old, &built);
        inner.targets.store(Arc::new(built));
        Ok(())
    }

    /// Whether a target records (then the primary's responses are worth building into
    /// records: [`Mirror::record_response`]).
    pub fn records(&self) -> bool {
        self.inner.targets.load().iter().any(Target::records)
    }

    /// The primary's response (raw HTTP/1.1) to the request with HAProxy's id `key`: each
    /// recording target writes it as a type-2 record if it recorded that request. Never blocks.
    pub fn record_response(&self, key: &Bytes, payload: &Bytes) {
        for target in self.inner.targets.load().iter() {
            target.record_response(key, payload);
        }
    }

    /// Sends what targets with a compare role take and get to `tap` (shadow comparison); only
    /// the first call counts.
    pub fn set_tap(&self, tap: Arc<dyn ResponseTap>) {
        let _ = self.inner.tap.set(tap);
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
        // Nothing is offered any more: write out the records still queued.
        for target in inner.targets.load().iter() {
            target.finish_recording(deadline).await;
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
        // Paused for every target at run time: not even parsed; one atomic load per message.
        if crate::stats::get(&self.stats.mirroring_paused) != 0 {
            for target in self.targets.load().iter() {
                inc(&target.stats().dropped_paused);
            }
            return;
        }
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
        let tap = self.tap.get();
        if tap.is_some() && request.id.is_none() {
            self.warn_no_id.call_once(|| {
                tracing::warn!(
                    "message '{}' has no id argument: its responses cannot be compared (add \
                     arg_id=unique-id to the message, and a unique-id-format)",
                    String::from_utf8_lossy(&message.name)
                )
            });
        }
        // One parse, shared by every target (cheap `Arc` clones).
        let request = Arc::new(request);
        for target in self.targets.load().iter() {
            target.offer(&request, &self.closing, tap);
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
