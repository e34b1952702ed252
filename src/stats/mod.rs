//! Counters shared by every part of the agent, read by the `-i` monitor line and the
//! Prometheus endpoint. One atomic per counter, no lock on any hot path.
//!
//! Updates are `Release` and reads `Acquire` (on x86 the same instructions as relaxed ones), so
//! a reader that sees a counter that is bumped last (`mirror_sent_total`, `ack_total`) also
//! sees every update made before it.

mod metrics;
mod monitor;

pub use metrics::{render as render_metrics, serve as serve_metrics};
pub use monitor::{monitor, monitor_line};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

pub use prometheus_client::encoding::DescriptorEncoder;

/// Metrics and a page that a feature serves on the metrics address besides the counters of
/// [`Stats`] (shadow comparison); set once, at start.
pub trait Exporter: Send + Sync + 'static {
    /// Its metric families, written at each scrape after the agent's own.
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result;
    /// Its page at `path`, if it serves one: (content type, body).
    fn page(&self, path: &str) -> Option<(&'static str, String)>;
}

/// The slot of [`Stats::set_exporter`].
#[derive(Default)]
struct ExporterSlot(OnceLock<Arc<dyn Exporter>>);

impl std::fmt::Debug for ExporterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "set"
        } else {
            "none"
        })
    }
}

/// A latency histogram with fixed bucket bounds, updated with one atomic add per sample.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; Histogram::BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Upper bounds of the buckets, in microseconds (the last bucket is +Inf).
    pub const BOUNDS_US: [u64; 18] = [
        10, 25, 50, 100, 200, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
        500_000, 1_000_000, 2_500_000, 10_000_000,
    ];

    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = Histogram::BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(Histogram::BOUNDS_US.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Per-bucket counts (not cumulative), the sum in µs, and the sample count.
    pub fn snapshot(&self) -> (Vec<u64>, u64, u64) {
        (
            self.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            self.sum_us.load(Ordering::Relaxed),
            self.count.load(Ordering::Relaxed),
        )
    }

    /// The upper bound (µs) of the bucket holding quantile `q` (0..=1); `None` when empty.
    pub fn quantile_upper_bound_us(&self, q: f64) -> Option<u64> {
        let (buckets, _, count) = self.snapshot();
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Histogram::BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// Every counter the agent keeps. Field names are the metric names without the
/// `spoa_mirror_` prefix.
#[derive(Debug, Default)]
pub struct Stats {
    // --- SPOP side
    /// SPOP connections accepted (health checks included).
    pub connections_total: AtomicU64,
    /// SPOP connections open now.
    pub connections_active: AtomicU64,
    /// Connections that were health checks (`option spop-check`).
    pub healthchecks_total: AtomicU64,
    /// Connections refused at once because `--max-connections` were open.
    pub connections_refused_total: AtomicU64,
    /// Connections closed because of a protocol error: HAProxy sent something the protocol
    /// forbids (AGENT-DISCONNECT with that error's status sent).
    pub protocol_errors_total: AtomicU64,
    /// Connections closed by the agent's own timers: a frame not whole within
    /// `--frame-timeout` of its first byte, or `--idle-timeout` (AGENT-DISCONNECT 2 sent).
    pub connections_timed_out_total: AtomicU64,
    /// NOTIFY frames received (reassembled ones count once).
    pub notify_total: AtomicU64,
    /// ACK frames written.
    pub ack_total: AtomicU64,
    /// NOTIFYs held by `-t` whose connection ended before their ACK was due, or received
    /// after our AGENT-DISCONNECT: never ACKed, their messages still handed to the mirror
    /// engine.
    pub notify_unacked_total: AtomicU64,
    /// NOTIFY decoded → ACK handed to the socket.
    pub ack_latency: Histogram,

    // --- before any target: the message itself could not be mirrored
    /// Not sent: the message could not make a valid HTTP request (missing/invalid arguments,
    /// malformed headers, bad method or target, or a URI that cannot be built).
    pub mirror_skipped_invalid: AtomicU64,
    /// Not sent: HAProxy handed over a body shorter than its Content-Length.
    pub mirror_skipped_truncated: AtomicU64,

    // --- configuration
    /// `--config` re-read at SIGHUP and put in force.
    pub config_reloads_total: AtomicU64,
    /// `--config` re-read at SIGHUP and refused (the running configuration stays).
    pub config_reload_failed_total: AtomicU64,

    // --- run-time control (`--admin-address`)
    /// Requests the admin endpoint answered (any status).
    pub admin_requests_total: AtomicU64,
    /// Changes the admin endpoint made (pause, resume, sample, rate, reset).
    pub admin_changes_total: AtomicU64,
    /// Admin connections closed at once because the admin connection limit was reached.
    pub admin_connections_refused_total: AtomicU64,
    /// 1 while mirroring is paused for every target (the engine reads it per message).
    pub mirroring_paused: AtomicU64,

    /// The counters of each mirror target, in the order the engine registered them. Read
    /// only by the metrics endpoint and the monitor; each target updates its own through its
    /// `Arc`, so no request ever takes this lock.
    targets: RwLock<Vec<Arc<TargetStats>>>,
    exporter: ExporterSlot,
}

/// The counters of one mirror target. Exported as `mirror_<field>`.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// The target's name (`default` for `-u`); the `target` label when there are several.
    pub name: String,
    /// Requests accepted into this target's queue.
    pub queued_total: AtomicU64,
    /// Requests whose delivery ended: each is counted once more in exactly one outcome, a
    /// status class (a response read to its end) or a failure kind. Bumped after the outcome.
    pub sent_total: AtomicU64,
    /// The target's response, read to its end, had a status of class 1xx/2xx/3xx/4xx/5xx.
    pub status_1xx: AtomicU64,
    pub status_2xx: AtomicU64,
    pub status_3xx: AtomicU64,
    pub status_4xx: AtomicU64,
    pub status_5xx: AtomicU64,
    /// Could not connect (refused, unreachable, DNS, TLS handshake).
    pub failed_connect: AtomicU64,
    /// The request did not finish within the total timeout.
    pub failed_timeout: AtomicU64,
    /// Any other failure after connecting (reset, garbage answer, body cut short, a status
    /// outside 100–599, ...).
    pub failed_other: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Dropped because the memory budget was used up.
    pub dropped_memory: AtomicU64,
    /// Dropped because the agent is stopping: offered after the stop began, or still queued
    /// or in flight when the drain deadline passed.
    pub dropped_shutdown: AtomicU64,
    /// Not mirrored to this target: its method/path rules leave the request out.
    pub dropped_filtered: AtomicU64,
    /// Not mirrored to this target: outside its sample.
    pub dropped_sampled_out: AtomicU64,
    /// Dropped: over the target's rate cap.
    pub dropped_rate_limited: AtomicU64,
    /// Dropped: the target's circuit breaker is open (short-circuited).
    pub dropped_breaker_open: AtomicU64,
    /// Times the circuit breaker opened.
    pub breaker_opened_total: AtomicU64,
    /// Not mirrored: mirroring was paused (for every target, or for this one) at run time.
    pub dropped_paused: AtomicU64,
    /// 1 while this target is paused at run time (`Target::offer` reads it per request); kept
    /// across reloads with the counters.
    pub paused: AtomicU64,
    /// Requests in the queue now (waiting for a request slot), and their bytes.
    pub queued: AtomicU64,
    pub queued_bytes: AtomicU64,
    /// Bytes of queued and in-flight requests now: what `--mirror-memory` bounds.
    pub memory_bytes: AtomicU64,
    /// Requests on the wire now.
    pub in_flight: AtomicU64,
    /// New TCP connections opened to the target (or its proxy).
    pub connections_total: AtomicU64,
    /// Request start → response fully read, for requests that got a response.
    pub latency: Histogram,

    // --- recording (`record` of the target; `crate::record`)
    /// Records written to the target's record files (requests, and the primary's responses).
    pub record_written_total: AtomicU64,
    /// Type-2 records (the primary's responses, with shadow comparison) among the written.
    pub record_responses_total: AtomicU64,
    /// Bytes of record written (before gzip).
    pub record_bytes_total: AtomicU64,
    /// Records dropped because the recorder's queue was full (the disk is too slow).
    pub record_dropped_total: AtomicU64,
    /// Records lost to a write error (full disk, unwritable directory): the agent goes on.
    pub record_errors_total: AtomicU64,
    /// Record files closed and a new one started (by size or by time).
    pub record_files_rotated_total: AtomicU64,
    /// Old record files deleted to keep the directory within its disk budget.
    pub record_files_deleted_total: AtomicU64,
}

impl TargetStats {
    /// Zeroed counters for the target `name`.
    pub(crate) fn named(name: &str) -> TargetStats {
        TargetStats {
            name: name.to_owned(),
            ..TargetStats::default()
        }
    }
}

impl Stats {
    /// Sets the registered targets: the engine at start and at each reload (a removed target
    /// disappears from the metrics).
    pub(crate) fn set_targets(&self, list: Vec<Arc<TargetStats>>) {
        if let Ok(mut targets) = self.targets.write() {
            *targets = list;
        }
    }

    /// Serves `exporter`'s metrics and page on the metrics address; only the first call counts.
    pub fn set_exporter(&self, exporter: Arc<dyn Exporter>) {
        let _ = self.exporter.0.set(exporter);
    }

    pub(crate) fn exporter(&self) -> Option<&Arc<dyn Exporter>> {
        self.exporter.0.get()
    }

    /// Every target's counters, in registration order.
    pub fn targets(&self) -> Vec<Arc<TargetStats>> {
        self.targets.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// The first target's counters (the `-u` target), or zeros when there is none.
    pub fn mirror(&self) -> Arc<TargetStats> {
        self.targets().into_iter().next().unwrap_or_default()
    }

    /// A target counter summed over every target.
    pub fn total(&self, field: fn(&TargetStats) -> &AtomicU64) -> u64 {
        self.targets().iter().map(|t| get(field(t))).sum()
    }
}

/// Adds one.
pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Release);
}

/// Takes one away (gauges).
pub(crate) fn dec(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Release);
}

/// Adds `n` (gauges of bytes).
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Release);
}

/// Takes `n` away (gauges of bytes).
pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Release);
}

/// Reads a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Acquire)
}
