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
use super::delivery::{Delivery, Endpoint, Failure};
use super::message::MirrorRequest;
use super::policy::{Breaker, Outcome, Policy, Verdict};
use super::recording::Recording;
use super::request::Base;
use super::tap::ResponseTap;
use super::Error;
use crate::config::{MirrorConfig, PolicyConfig, ShadowRole, TargetConfig};
use crate::stats::{add, dec, get, inc, sub, Stats, TargetStats};
use crate::throttle::LogThrottle;
use http::Version;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    name: String,
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
            name,
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
    pub(super) fn record_response(&self, key: &bytes::Bytes, payload: &bytes::Bytes) -> bool {
        match &self.shared.recording {
            Some(r) => {
                r.offer_response(key, payload);
                true
            }
            None => false,
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
                tap.expect(
                    &shared.name,
                    role,
                    id,
                    request.method.as_str(),
                    request.target.path(),
                );
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

impl Shared {
    /// Gives back the memory of a job that ended (delivered, failed or dropped).
    fn release(&self, size: u64) {
        sub(&self.stats.memory_bytes, size);
    }

    fn warn_drop(&self, why: &str) {
        if self.warn_dropped.allow() {
            let s = &self.stats;
            let (q, m) = (get(&s.dropped_queue_full), get(&s.dropped_memory));
            tracing::warn!(
                "mirror request to target '{}' dropped: {why} (so far: {q} for a full queue, {m} \
                 for memory; the mirror is too slow or the limits too small)",
                self.name
            );
        }
    }

    /// A compared job that will never get a response tells the tap so.
    fn no_response(&self, job: &Job) {
        if let Some(c) = &job.compare {
            c.tap.answered(&self.name, c.role, &c.id, None);
        }
    }

    fn abandon(&self, job: Job) {
        self.no_response(&job);
        sub(&self.stats.queued, 1);
        sub(&self.stats.queued_bytes, job.size);
        self.release(job.size);
        inc(&self.stats.dropped_shutdown);
    }

    /// One job from the queue to its end: deliver, count, log.
    async fn run(self: Arc<Self>, job: Job, _permit: OwnedSemaphorePermit) {
        let stats = &self.stats;
        sub(&stats.queued, 1);
        sub(&stats.queued_bytes, job.size);
        inc(&stats.in_flight);
        let started = Instant::now();
        let capture = job.compare.as_ref().map(|c| c.tap.max_body());
        let mut delivery = tokio::select! {
            biased;
            _ = self.abort.cancelled() => None,
            d = self.endpoint.deliver(&job.request, capture) => Some(d),
        };
        dec(&stats.in_flight);
        self.release(job.size);
        if let Some(c) = &job.compare {
            let captured = match &mut delivery {
                Some(Ok(d)) => d.captured.take(),
                _ => None,
            };
            c.tap.answered(&self.name, c.role, &c.id, captured);
        }
        match delivery {
            None => inc(&stats.dropped_shutdown),
            Some(Err(e)) => {
                // parse() accepted the message, yet no HTTP request could be made of it
                // (e.g. the mirror's path prefix and the target together are not a valid
                // URI): nothing went on the wire.
                inc(&self.global.mirror_skipped_invalid);
                if self.warn_invalid.allow() {
                    tracing::warn!("mirror request skipped: {e}");
                }
            }
            Some(Ok(d)) => {
                if let Some(b) = &job.breaker {
                    let ok = d.result.is_ok() && d.status.is_some_and(|s| !s.is_server_error());
                    if b.record(ok) == Outcome::Opened {
                        inc(&stats.breaker_opened_total);
                        tracing::warn!(
                            "target '{}': circuit breaker open after consecutive failures",
                            self.name
                        );
                    }
                }
                self.record(&job.request, &d, started.elapsed())
            }
        }
    }

    fn record(&self, req: &MirrorRequest, d: &Delivery, elapsed: Duration) {
        let stats = &self.stats;
        // Each request lands in exactly one outcome counter: a status class for a response
        // read to its end, a failure kind otherwise. `sent_total` comes last, so a reader
        // that sees it at n also sees the outcomes of those n requests.
        match (&d.result, d.status) {
            (Ok(()), Some(status)) => {
                match status.as_u16() {
                    100..=199 => inc(&stats.status_1xx),
                    200..=299 => inc(&stats.status_2xx),
                    300..=399 => inc(&stats.status_3xx),
                    400..=499 => inc(&stats.status_4xx),
                    500..=599 => inc(&stats.status_5xx),
                    // hyper accepts 600–999; no class means anything there: a broken answer.
                    _ => inc(&stats.failed_other),
                }
                stats.latency.record(elapsed);
            }
            (Ok(()), None) => inc(&stats.failed_other),
            (Err(Failure::Connect(_)), _) => inc(&stats.failed_connect),
            (Err(Failure::Timeout), _) => inc(&stats.failed_timeout),
            (Err(Failure::Other(_)), _) => inc(&stats.failed_other),
        }
        inc(&stats.sent_total);
        let version = match d.version {
            None => "HTTP/???",
            Some(Version::HTTP_10) => "HTTP/1.0",
            Some(Version::HTTP_11) => "HTTP/1.1",
            Some(Version::HTTP_2) => "HTTP/2.0",
            Some(_) => "?",
        };
        let result = match &d.result {
            Ok(()) => "ok".to_owned(),
            Err(Failure::Timeout) => {
                format!("timed out after {} ms", self.endpoint.timeout.as_millis())
            }
            Err(Failure::Connect(e) | Failure::Other(e)) => e.clone(),
        };
        // spoa-mirror's line: "METHOD URL HTTP/x" status up/down total-ms result, then the
        // target's name when there are several.
        let name = if self.several.load(Ordering::Relaxed) {
            format!(" target={}", self.name)
        } else {
            String::new()
        };
        tracing::info!(
            target: "spoa_mirror::mirror",
            "\"{} {} {}\" {} {}/{} {:.3} {}{}",
            req.method,
            d.url,
            version,
            d.status.map_or(0, |s| s.as_u16()),
            req.body.len(),
            d.down,
            elapsed.as_secs_f64() * 1000.0,
            result,
            name,
        );
    }
}

/// Takes jobs off one target's queue as its request slots free up.
async fn dispatch(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Job>,
    concurrency: usize,
    closing: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut closed = false;
    loop {
        let job = tokio::select! {
            biased;
            _ = shared.abort.cancelled() => break,
            _ = closing.cancelled(), if !closed => {
                // No new jobs; the ones already queued are still received, then `None`.
                rx.close();
                closed = true;
                continue;
            }
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let permit = tokio::select! {
            biased;
            _ = shared.abort.cancelled() => {
                shared.abandon(job);
                break;
            }
            permit = Arc::clone(&slots).acquire_owned() => permit,
        };
        // The semaphore is never closed, so this always holds a permit.
        let Ok(permit) = permit else { break };
        shared.tasks.spawn(Arc::clone(&shared).run(job, permit));
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        shared.abandon(job);
    }
}
