//! One target's delivery side: the dispatcher takes jobs off the queue as request slots free
//! up, each job is delivered on its own task, counted in exactly one outcome, logged, and (for
//! a comparing target) its response handed to the tap.

use super::{Job, Shared};
use crate::mirror::delivery::{Delivery, Failure};
use crate::mirror::message::MirrorRequest;
use crate::mirror::policy::Outcome;
use crate::stats::{dec, get, inc, sub};
use http::Version;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

impl Shared {
    /// Gives back the memory of a job that ended (delivered, failed or dropped).
    pub(super) fn release(&self, size: u64) {
        sub(&self.stats.memory_bytes, size);
    }

    pub(super) fn warn_drop(&self, why: &str) {
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
    pub(super) fn no_response(&self, job: &Job) {
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
pub(super) async fn dispatch(
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
