//! One mirror target: its own memory budget, queue, concurrency limit, client and counters.
//!
//! ```text
//! offer() ── budget ── try_send ──▶ queue ──▶ dispatch ── permit (concurrency) ──▶ run ── deliver
//!   never blocks: a full queue or budget drops and counts
//! ```
//!
//! Per-target policy (rules, sampling, rate cap, circuit breaker: [`super::policy`]) runs at
//! the top of [`Target::offer`], before anything is reserved.

use super::client;
use super::delivery::Endpoint;
use super::message::MirrorRequest;
use super::policy::{Breaker, Policy, Verdict};
use super::recording::Recording;
use super::request::Base;
use super::tap::ResponseTap;
use super::Error;
use crate::config::{MirrorConfig, PolicyConfig, ShadowRole, TargetConfig};
use crate::stats::{add, inc, sub, Stats, TargetStats};
use crate::throttle::LogThrottle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod run;

use run::dispatch;

/// A mirror target, as the engine holds it.
pub(super) struct Target {
    queue: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    policy: Arc<Policy>,
    /// The policy the configuration gives; `policy` differs from it after a run-time change
    /// of sampling or rate cap (admin endpoint), until a reload or a reset.
    configured: Arc<PolicyConfig>,
}

/// What the dispatcher and the delivery tasks of one target share.
struct Shared {
    /// Shared with the tap's messages (shadow comparison) without a copy per request.
    name: Arc<str>,
    /// The settings it was built with (a reload keeps a target whose settings are unchanged).
    config: MirrorConfig,
    /// The engine has more than one target: log lines name this one.
    several: Arc<AtomicBool>,
    endpoint: Endpoint,
    /// Bytes of queued and in-flight requests allowed (`memory_budget`); in use:
    /// `stats.memory_bytes`.
    budget: u64,
    stats: Arc<TargetStats>,
    /// The engine's counters, for requests that turn out not to be mirrorable.
    global: Arc<Stats>,
    /// The drain deadline passed: abandon what is left.
    abort: CancellationToken,
    tasks: TaskTracker,
    warn_dropped: LogThrottle,
    warn_invalid: LogThrottle,
    /// `record`: every request the policy lets through is also written to files.
    recording: Option<Recording>,
}

/// One request waiting for, or holding, a request slot.
struct Job {
    request: Arc<MirrorRequest>,
    size: u64,
    breaker: Option<Arc<Breaker>>,
    /// Shadow comparison: the response goes to the tap.
    compare: Option<Compare>,
}

/// Where a compared request's response goes.
struct Compare {
    tap: Arc<dyn ResponseTap>,
    role: ShadowRole,
    id: bytes::Bytes,
}

/// What every target of one engine shares.
pub(super) struct Engine<'a> {
    pub(super) tasks: &'a TaskTracker,
    pub(super) closing: &'a CancellationToken,
    pub(super) abort: &'a CancellationToken,
    pub(super) several: &'a Arc<AtomicBool>,
}

impl Target {
    /// Builds the client (TLS, proxy, `-I`/`-P` connector) and spawns the dispatcher on
    /// `tasks`. Must be called inside a tokio runtime.
    pub(super) fn new(
        target: &TargetConfig,
        stats: Arc<TargetStats>,
        global: Arc<Stats>,
        engine: &Engine,
    ) -> Result<Target, Error> {
        let (tasks, closing, abort) = (engine.tasks, engine.closing, engine.abort);
        let (name, cfg) = (target.name.clone(), &target.mirror);
        if cfg.queue_size == 0 || cfg.concurrency == 0 {
            return Err(Error::Limits);
        }
        let base = Base::from_uri(&cfg.url)?;
        let built = client::build(cfg, Arc::clone(&stats))?;
        tracing::info!(
            "target '{name}': mirroring to {}://{}{} via {}: queue {}, concurrency {}, memory budget {} bytes, timeout {}",
            base.scheme,
            base.authority,
            base.prefix,
            built.route,
            cfg.queue_size,
            cfg.concurrency,
            cfg.memory_budget,
            humantime::format_duration(cfg.timeout),
        );
        let endpoint = Endpoint {
            base: base.clone(),
            client: built.client,
            forward_headers: built.forward_headers,
            forward_proxy: built.forward_proxy,
            timeout: cfg.timeout,
        };
        let recording = match &cfg.record {
            Some(r) => Some(Recording::start(&name, r, &base, Arc::clone(&stats))?),
            None => None,
        };
        let policy = Arc::new(Policy::new(target.policy.clone(), base.authority.clone()));
        let (queue, rx) = mpsc::channel(cfg.queue_size);
        let shared = Arc::new(Shared {
            name: Arc::from(name.as_str()),
            config: cfg.clone(),
            several: Arc::clone(engine.several),
            endpoint,
            budget: u64::try_from(cfg.memory_budget).unwrap_or(u64::MAX),
            stats,
            global,
            abort: abort.clone(),
            tasks: tasks.clone(),
            warn_dropped: LogThrottle::new(),
            warn_invalid: LogThrottle::new(),
            recording,
        });
        let concurrency = cfg.concurrency.min(Semaphore::MAX_PERMITS);
        tasks.spawn(dispatch(
            Arc::clone(&shared),
            rx,
            concurrency,
            closing.clone(),
        ));
        Ok(Target {
            queue,
            shared,
            policy,
            configured: Arc::new(target.policy.clone()),
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.shared.name
    }

    pub(super) fn stats(&self) -> &Arc<TargetStats> {
        &self.shared.stats
    }

    /// This target with `target`'s policy, if its connection settings are the same (its
    /// queue, client and counters stay; an unchanged policy keeps its state).
    pub(super) fn reuse(&self, target: &TargetConfig) -> Option<Target> {
        if self.shared.config != target.mirror {
            return None;
        }
        let same_policy = format!("{:?}", self.policy.config()) == format!("{:?}", target.policy);
        let policy = if same_policy {
            Arc::clone(&self.policy)
        } else {
            Arc::new(Policy::new(
                target.policy.clone(),
                self.shared.endpoint.base.authority.clone(),
            ))
        };
        Some(Target {
            configured: Arc::new(target.policy.clone()),
            ..self.with_policy(policy)
        })
    }

    /// This target (same queue, client, counters) with another policy in force.
    pub(super) fn with_policy(&self, policy: Arc<Policy>) -> Target {
        Target {
            queue: self.queue.clone(),
            shared: Arc::clone(&self.shared),
            policy,
            configured: Arc::clone(&self.configured),
        }
    }

    pub(super) fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The policy the configuration gives (without run-time changes).
    pub(super) fn configured(&self) -> &PolicyConfig {
        &self.configured
    }

    /// The connection settings it was built with.
    pub(super) fn mirror_config(&self) -> &MirrorConfig {
        &self.shared.config
    }

    /// Whether sampling or the rate cap were changed at run time.
    pub(super) fn overridden(&self) -> bool {
        let p = self.policy.config();
        p.sample != self.configured.sample || p.rate != self.configured.rate
    }

    /// The primary's response to the request with HAProxy's id `key`, for this target's
    /// records (written if it recorded that request).
    pub(super) fn record_response(&self, key: &bytes::Bytes, payload: &bytes::Bytes) {
        if let Some(r) = &self.shared.recording {
            r.offer_response(key, payload);
        }
    }

    /// Whether this target records.
    pub(super) fn records(&self) -> bool {
        self.shared.recording.is_some()
    }

    /// Writes out the queued records and closes the record file, if this target records.
    pub(super) async fn finish_recording(&self, deadline: Duration) {
        if let Some(r) = &self.shared.recording {
            r.finish(deadline).await;
        }
    }

    /// Queues one request for this target; never blocks. A full queue, a used-up budget or a
    /// stopping engine drops it and counts why. `tap`: where a target with a compare role
    /// reports what it took and got (shadow comparison).
    pub(super) fn offer(
        &self,
        request: &Arc<MirrorRequest>,
        closing: &CancellationToken,
        tap: Option<&Arc<dyn ResponseTap>>,
    ) {
        let shared = &self.shared;
        let stats = &shared.stats;
        if closing.is_cancelled() {
            inc(&stats.dropped_shutdown);
            return;
        }
        // Paused at run time: one atomic load per request, and the very next request after
        // the admin's change sees it.
        if stats.paused.load(Ordering::Acquire) != 0 {
            inc(&stats.dropped_paused);
            return;
        }
        let (request, breaker) = match self.policy.decide(request, stats) {
            Verdict::Send(request, breaker) => (request, breaker),
            Verdict::Drop => return,
        };
        if let Some(r) = &shared.recording {
            r.offer(&request);
        }
        let size = u64::try_from(request.size()).unwrap_or(u64::MAX);
        let reserved =
            stats
                .memory_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    used.checked_add(size).filter(|&n| n <= shared.budget)
                });
        if reserved.is_err() {
            inc(&stats.dropped_memory);
            shared.warn_drop("memory budget used up");
            return;
        }
        add(&stats.queued, 1);
        add(&stats.queued_bytes, size);
        // Told before the job is queued: its delivery may end on another thread at once.
        let compare = match (shared.config.compare, tap, &request.id) {
            (Some(role), Some(tap), Some(id)) => {
                tap.expect(&shared.name, role, &request);
                Some(Compare {
                    tap: Arc::clone(tap),
                    role,
                    id: id.clone(),
                })
            }
            _ => None,
        };
        let job = Job {
            request,
            size,
            breaker,
            compare,
        };
        match self.queue.try_send(job) {
            Ok(()) => inc(&stats.queued_total),
            Err(e) => {
                let job = match &e {
                    mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
                };
                shared.no_response(job);
                sub(&stats.queued, 1);
                sub(&stats.queued_bytes, size);
                shared.release(size);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        inc(&stats.dropped_queue_full);
                        shared.warn_drop("queue full");
                    }
                    mpsc::error::TrySendError::Closed(_) => inc(&stats.dropped_shutdown),
                }
            }
        }
    }
}
