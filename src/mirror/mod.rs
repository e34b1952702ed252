//! The mirror engine: each decoded `mirror` message becomes an HTTP request fired at the
//! mirror URL (`-u`), fire-and-forget.
//!
//! ```text
//! handle() ── parse (message.rs) ── budget ── try_send ──▶ queue ──▶ dispatcher ── permit ──▶ task
//!   never blocks: a full queue or budget drops and counts         (concurrency)    deliver: request.rs + client.rs
//! ```
//!
//! Building the request ([`message::parse`]) is separate from delivering it to one target
//! ([`Target::deliver`]), so several targets (each with its own sampling and rate) or a
//! response comparison can be added without touching either.

mod client;
mod headers;
mod message;
mod request;

pub use headers::{parse_hdrs_bin, parse_hdrs_text, HeaderError, HeaderList};
pub use message::{parse, Invalid, MirrorRequest, Notes, Skip};
/// The pure request builder, exported for the fuzz targets (fuzz/) and their corpus replay.
pub use request::build as build_request;
pub use request::Base;

use crate::config::MirrorConfig;
use crate::handler::NotifyHandler;
use crate::spop::Message;
use crate::stats::{add, dec, inc, sub, Stats};
use crate::throttle::LogThrottle;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, Version};
use http_body_util::BodyExt;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Startup errors: the configuration cannot make a working mirror.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid mirror URL: {0}")]
    Url(&'static str),
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
    queue: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    /// Bytes of queued and in-flight requests allowed (`memory_budget`); the bytes in use are
    /// `stats.mirror_memory_bytes`.
    budget: u64,
    target: Target,
    /// Stop taking jobs (shutdown started).
    closing: CancellationToken,
    /// Drain deadline passed: abandon what is left.
    abort: CancellationToken,
    tasks: TaskTracker,
    /// (message name, reason) pairs already logged.
    logged_once: Mutex<HashSet<(Bytes, &'static str)>>,
    warn_invalid: LogThrottle,
    warn_truncated: LogThrottle,
    warn_dropped: LogThrottle,
}

struct Job {
    request: MirrorRequest,
    size: u64,
}

impl Mirror {
    /// Builds the client (TLS, proxy, `-I`/`-P` connector) and spawns the dispatcher. Must be
    /// called inside a tokio runtime.
    pub fn new(cfg: MirrorConfig, stats: Arc<Stats>) -> Result<Mirror, Error> {
        if cfg.queue_size == 0 || cfg.concurrency == 0 {
            return Err(Error::Limits);
        }
        let base = Base::from_uri(&cfg.url)?;
        let built = client::build(&cfg, stats.clone())?;
        tracing::info!(
            "mirroring to {}://{}{} via {}: queue {}, concurrency {}, memory budget {} bytes, timeout {:?}",
            base.scheme,
            base.authority,
            base.prefix,
            built.route,
            cfg.queue_size,
            cfg.concurrency,
            cfg.memory_budget,
            cfg.timeout,
        );
        let target = Target {
            base,
            client: built.client,
            forward_headers: built.forward_headers,
            forward_proxy: built.forward_proxy,
            timeout: cfg.timeout,
        };
        let (queue, rx) = mpsc::channel(cfg.queue_size);
        let inner = Arc::new(Inner {
            queue,
            stats,
            budget: u64::try_from(cfg.memory_budget).unwrap_or(u64::MAX),
            target,
            closing: CancellationToken::new(),
            abort: CancellationToken::new(),
            tasks: TaskTracker::new(),
            logged_once: Mutex::new(HashSet::new()),
            warn_invalid: LogThrottle::new(),
            warn_truncated: LogThrottle::new(),
            warn_dropped: LogThrottle::new(),
        });
        let concurrency = cfg.concurrency.min(Semaphore::MAX_PERMITS);
        inner.tasks.spawn(dispatch(inner.clone(), rx, concurrency));
        Ok(Mirror { inner })
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

impl NotifyHandler for Mirror {
    fn handle(&self, messages: Vec<Message>) {
        for message in &messages {
            self.inner.offer(message);
        }
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
        self.enqueue(request);
    }

    fn enqueue(&self, request: MirrorRequest) {
        let stats = &self.stats;
        if self.closing.is_cancelled() {
            inc(&stats.mirror_dropped_shutdown);
            return;
        }
        let size = u64::try_from(request.size()).unwrap_or(u64::MAX);
        let reserved =
            stats
                .mirror_memory_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    used.checked_add(size).filter(|&n| n <= self.budget)
                });
        if reserved.is_err() {
            inc(&stats.mirror_dropped_memory);
            self.warn_drop("memory budget used up");
            return;
        }
        add(&stats.mirror_queued, 1);
        add(&stats.mirror_queued_bytes, size);
        match self.queue.try_send(Job { request, size }) {
            Ok(()) => inc(&stats.mirror_queued_total),
            Err(e) => {
                sub(&stats.mirror_queued, 1);
                sub(&stats.mirror_queued_bytes, size);
                self.release(size);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        inc(&stats.mirror_dropped_queue_full);
                        self.warn_drop("queue full");
                    }
                    mpsc::error::TrySendError::Closed(_) => inc(&stats.mirror_dropped_shutdown),
                }
            }
        }
    }

    /// Gives back the memory of a job that ended (delivered, failed or dropped).
    fn release(&self, size: u64) {
        sub(&self.stats.mirror_memory_bytes, size);
    }

    fn warn_drop(&self, why: &str) {
        if self.warn_dropped.allow() {
            let s = &self.stats;
            let (q, m) = (
                crate::stats::get(&s.mirror_dropped_queue_full),
                crate::stats::get(&s.mirror_dropped_memory),
            );
            tracing::warn!(
                "mirror request dropped: {why} (so far: {q} for a full queue, {m} for memory; the mirror is too slow \
                 or the limits too small)"
            );
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

    /// One job from the queue to its end: deliver, count, log.
    async fn run(self: Arc<Self>, job: Job, _permit: OwnedSemaphorePermit) {
        let stats = &self.stats;
        sub(&stats.mirror_queued, 1);
        sub(&stats.mirror_queued_bytes, job.size);
        inc(&stats.mirror_in_flight);
        let started = Instant::now();
        let delivery = tokio::select! {
            biased;
            _ = self.abort.cancelled() => None,
            d = self.target.deliver(&job.request) => Some(d),
        };
        dec(&stats.mirror_in_flight);
        self.release(job.size);
        match delivery {
            None => inc(&stats.mirror_dropped_shutdown),
            Some(Err(e)) => {
                // parse() accepted the message, yet no HTTP request could be made of it
                // (e.g. the mirror's path prefix and the target together are not a valid
                // URI): nothing went on the wire.
                inc(&stats.mirror_skipped_invalid);
                if self.warn_invalid.allow() {
                    tracing::warn!("mirror request skipped: {e}");
                }
            }
            Some(Ok(d)) => self.record(&job.request, &d, started.elapsed()),
        }
    }

    fn record(&self, req: &MirrorRequest, d: &Delivery, elapsed: Duration) {
        let stats = &self.stats;
        // Each request lands in exactly one outcome counter: a status class for a response
        // read to its end, a failure kind otherwise. `mirror_sent_total` comes last, so a
        // reader that sees it at n also sees the outcomes of those n requests.
        match (&d.result, d.status) {
            (Ok(()), Some(status)) => {
                match status.as_u16() {
                    100..=199 => inc(&stats.mirror_status_1xx),
                    200..=299 => inc(&stats.mirror_status_2xx),
                    300..=399 => inc(&stats.mirror_status_3xx),
                    400..=499 => inc(&stats.mirror_status_4xx),
                    500..=599 => inc(&stats.mirror_status_5xx),
                    // hyper accepts 600–999; no class means anything there: a broken answer.
                    _ => inc(&stats.mirror_failed_other),
                }
                stats.mirror_latency.record(elapsed);
            }
            (Ok(()), None) => inc(&stats.mirror_failed_other),
            (Err(Failure::Connect(_)), _) => inc(&stats.mirror_failed_connect),
            (Err(Failure::Timeout), _) => inc(&stats.mirror_failed_timeout),
            (Err(Failure::Other(_)), _) => inc(&stats.mirror_failed_other),
        }
        inc(&stats.mirror_sent_total);
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
                format!("timed out after {} ms", self.target.timeout.as_millis())
            }
            Err(Failure::Connect(e) | Failure::Other(e)) => e.clone(),
        };
        // spoa-mirror's line: "METHOD URL HTTP/x" status up/down total-ms result
        tracing::info!(
            target: "spoa_mirror::mirror",
            "\"{} {} {}\" {} {}/{} {:.3} {}",
            req.method,
            d.url,
            version,
            d.status.map_or(0, |s| s.as_u16()),
            req.body.len(),
            d.down,
            elapsed.as_secs_f64() * 1000.0,
            result,
        );
    }
}

/// Takes jobs off the queue as request slots free up.
async fn dispatch(inner: Arc<Inner>, mut rx: mpsc::Receiver<Job>, concurrency: usize) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut closing = false;
    loop {
        let job = tokio::select! {
            biased;
            _ = inner.abort.cancelled() => break,
            _ = inner.closing.cancelled(), if !closing => {
                // No new jobs; the ones already queued are still received, then `None`.
                rx.close();
                closing = true;
                continue;
            }
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let permit = tokio::select! {
            biased;
            _ = inner.abort.cancelled() => {
                inner.abandon(job);
                break;
            }
            permit = slots.clone().acquire_owned() => permit,
        };
        // The semaphore is never closed, so this always holds a permit.
        let Ok(permit) = permit else { break };
        inner.tasks.spawn(inner.clone().run(job, permit));
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        inner.abandon(job);
    }
}

impl Inner {
    fn abandon(&self, job: Job) {
        sub(&self.stats.mirror_queued, 1);
        sub(&self.stats.mirror_queued_bytes, job.size);
        self.release(job.size);
        inc(&self.stats.mirror_dropped_shutdown);
    }
}

// ===== one mirror target =====

/// Where requests go: a base URL and the pooled client that reaches it.
struct Target {
    base: Base,
    client: client::HttpClient,
    /// `Proxy-Authorization` and `-H` headers when requests go through a forward proxy.
    forward_headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests go through a forward proxy, which reads the request's own headers.
    forward_proxy: bool,
    /// The whole exchange, connect and reading the response body included.
    timeout: Duration,
}

/// What happened to one request.
struct Delivery {
    /// The effective URL, for the log line.
    url: String,
    status: Option<StatusCode>,
    version: Option<Version>,
    /// Response body bytes read (and discarded).
    down: u64,
    result: Result<(), Failure>,
}

enum Failure {
    Connect(String),
    Timeout,
    Other(String),
}

impl Target {
    /// Sends one request and reads its answer; `Err` when no request could be built (nothing
    /// was sent).
    async fn deliver(&self, req: &MirrorRequest) -> Result<Delivery, Error> {
        let mut d = Delivery {
            url: String::new(),
            status: None,
            version: None,
            down: 0,
            result: Ok(()),
        };
        let mut http_req = request::build(req, &self.base, &[])?;
        if self.forward_proxy {
            // The proxy reads these headers itself. The client's Proxy-Authorization was meant
            // for some other proxy: its credentials never go to ours. Our `-U`/`-H` headers
            // replace any the client sent under the same names.
            let headers = http_req.headers_mut();
            headers.remove(http::header::PROXY_AUTHORIZATION);
            for (name, _) in &self.forward_headers {
                headers.remove(name);
            }
            for (name, value) in &self.forward_headers {
                headers.append(name.clone(), value.clone());
            }
        }
        d.url = http_req.uri().to_string();
        d.result = match tokio::time::timeout(self.timeout, self.exchange(http_req, &mut d)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        };
        Ok(d)
    }

    /// Sends the request and reads the whole response body, so the connection can be reused.
    async fn exchange(
        &self,
        req: http::Request<http_body_util::Full<Bytes>>,
        d: &mut Delivery,
    ) -> Result<(), Failure> {
        let response = self.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                Failure::Connect(error_text(&e))
            } else {
                Failure::Other(error_text(&e))
            }
        })?;
        d.status = Some(response.status());
        d.version = Some(response.version());
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::Other(error_text(&e)))?;
            if let Some(data) = frame.data_ref() {
                d.down += u64::try_from(data.len()).unwrap_or(u64::MAX);
            }
        }
        Ok(())
    }
}

/// An error and its sources, `a: b: c`.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_joins_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(error_text(&Outer(io)), "connect failed: refused");
    }
}
