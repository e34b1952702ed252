//! The Prometheus endpoint (`--metrics-address`): every counter of [`Stats`] at each scrape.

use super::{get, Histogram, Stats, TargetStats};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
}

type Field = fn(&Stats) -> &AtomicU64;

/// Every counter and gauge, by its [`Stats`] field name. Add a field to `Stats`, add it here.
#[rustfmt::skip]
pub(super) const FIELDS: &[(&str, Kind, &str, Field)] = &[
    ("connections_total", Kind::Counter, "SPOP connections accepted (health checks included).", |s| &s.connections_total),
    ("connections_active", Kind::Gauge, "SPOP connections open now.", |s| &s.connections_active),
    ("healthchecks_total", Kind::Counter, "SPOP connections that were health checks.", |s| &s.healthchecks_total),
    ("connections_refused_total", Kind::Counter, "SPOP connections refused at once because --max-connections were open.", |s| &s.connections_refused_total),
    ("protocol_errors_total", Kind::Counter, "SPOP connections closed because HAProxy broke the protocol.", |s| &s.protocol_errors_total),
    ("connections_timed_out_total", Kind::Counter, "SPOP connections closed by --frame-timeout or --idle-timeout.", |s| &s.connections_timed_out_total),
    ("notify_total", Kind::Counter, "NOTIFY frames received.", |s| &s.notify_total),
    ("ack_total", Kind::Counter, "ACK frames written.", |s| &s.ack_total),
    ("notify_unacked_total", Kind::Counter, "NOTIFYs never ACKed, still mirrored: held by -t when their connection closed, or received after the agent's AGENT-DISCONNECT (stop, hand-over).", |s| &s.notify_unacked_total),
    ("mirror_skipped_invalid", Kind::Counter, "Messages that could not make a valid HTTP request.", |s| &s.mirror_skipped_invalid),
    ("mirror_skipped_truncated", Kind::Counter, "Messages whose body was shorter than its Content-Length.", |s| &s.mirror_skipped_truncated),
    ("config_reloads_total", Kind::Counter, "--config re-read at SIGHUP and put in force.", |s| &s.config_reloads_total),
    ("config_reload_failed_total", Kind::Counter, "--config re-read at SIGHUP and refused (the running configuration stays).", |s| &s.config_reload_failed_total),
    ("admin_requests_total", Kind::Counter, "Requests answered by the admin endpoint (--admin-address).", |s| &s.admin_requests_total),
    ("admin_changes_total", Kind::Counter, "Run-time changes made through the admin endpoint.", |s| &s.admin_changes_total),
    ("admin_connections_refused_total", Kind::Counter, "Admin connections closed at once because too many were open.", |s| &s.admin_connections_refused_total),
    ("mirroring_paused", Kind::Gauge, "1 while mirroring is paused for every target (admin endpoint).", |s| &s.mirroring_paused),
    ("log_lines_dropped_total", Kind::Counter, "Log lines dropped because the log output fell behind.", |_| crate::logging::lines_dropped()),
];

type TargetField = fn(&TargetStats) -> &AtomicU64;

/// Every counter and gauge of one mirror target, exported as `mirror_<name>`, with a `target`
/// label when there is more than one target. Add a field to `TargetStats`, add it here.
#[rustfmt::skip]
pub(super) const TARGET_FIELDS: &[(&str, Kind, &str, TargetField)] = &[
    ("queued_total", Kind::Counter, "Mirror messages accepted into the queue.", |t| &t.queued_total),
    ("sent_total", Kind::Counter, "Requests whose delivery ended (each also counted in one status class or failure kind).", |t| &t.sent_total),
    ("status_1xx", Kind::Counter, "Mirror responses, read to their end, with a 1xx status.", |t| &t.status_1xx),
    ("status_2xx", Kind::Counter, "Mirror responses, read to their end, with a 2xx status.", |t| &t.status_2xx),
    ("status_3xx", Kind::Counter, "Mirror responses, read to their end, with a 3xx status.", |t| &t.status_3xx),
    ("status_4xx", Kind::Counter, "Mirror responses, read to their end, with a 4xx status.", |t| &t.status_4xx),
    ("status_5xx", Kind::Counter, "Mirror responses, read to their end, with a 5xx status.", |t| &t.status_5xx),
    ("failed_connect", Kind::Counter, "Requests that could not connect to the mirror.", |t| &t.failed_connect),
    ("failed_timeout", Kind::Counter, "Requests that hit the total timeout.", |t| &t.failed_timeout),
    ("failed_other", Kind::Counter, "Requests that failed after connecting (reset, bad answer, body cut short).", |t| &t.failed_other),
    ("dropped_queue_full", Kind::Counter, "Messages dropped because the queue was full.", |t| &t.dropped_queue_full),
    ("dropped_memory", Kind::Counter, "Messages dropped because the memory budget was used up.", |t| &t.dropped_memory),
    ("dropped_shutdown", Kind::Counter, "Messages dropped because the agent is stopping (offered after the stop began, or left at the drain deadline).", |t| &t.dropped_shutdown),
    ("dropped_filtered", Kind::Counter, "Requests left out by the target's method/path rules.", |t| &t.dropped_filtered),
    ("dropped_sampled_out", Kind::Counter, "Requests outside the target's sample.", |t| &t.dropped_sampled_out),
    ("dropped_rate_limited", Kind::Counter, "Requests dropped over the target's rate cap.", |t| &t.dropped_rate_limited),
    ("dropped_breaker_open", Kind::Counter, "Requests dropped while the target's circuit breaker was open.", |t| &t.dropped_breaker_open),
    ("breaker_opened_total", Kind::Counter, "Times the target's circuit breaker opened.", |t| &t.breaker_opened_total),
    ("dropped_paused", Kind::Counter, "Requests not mirrored because mirroring was paused at run time (globally or for this target).", |t| &t.dropped_paused),
    ("paused", Kind::Gauge, "1 while this target is paused at run time (admin endpoint).", |t| &t.paused),
    ("queued", Kind::Gauge, "Messages waiting in the queue now (in-flight requests not included).", |t| &t.queued),
    ("queued_bytes", Kind::Gauge, "Bytes of the messages waiting in the queue now (in-flight requests not included).", |t| &t.queued_bytes),
    ("memory_bytes", Kind::Gauge, "Bytes of queued and in-flight requests now (bounded by --mirror-memory).", |t| &t.memory_bytes),
    ("in_flight", Kind::Gauge, "Requests on the wire now.", |t| &t.in_flight),
    ("connections_total", Kind::Counter, "TCP connections opened to the mirror or proxy.", |t| &t.connections_total),
    ("record_written_total", Kind::Counter, "Records written to the target's record files: requests, and with shadow comparison the primary's responses.", |t| &t.record_written_total),
    ("record_responses_total", Kind::Counter, "Type-2 records (the primary's responses) among the records written.", |t| &t.record_responses_total),
    ("record_bytes_total", Kind::Counter, "Bytes of request records written (before gzip).", |t| &t.record_bytes_total),
    ("record_dropped_total", Kind::Counter, "Request records dropped because the recorder's queue was full.", |t| &t.record_dropped_total),
    ("record_errors_total", Kind::Counter, "Request records lost to a write error (full disk, unwritable directory).", |t| &t.record_errors_total),
    ("record_files_rotated_total", Kind::Counter, "Record files closed by size or time and a new one started.", |t| &t.record_files_rotated_total),
    ("record_files_deleted_total", Kind::Counter, "Old record files deleted to stay within the disk budget.", |t| &t.record_files_deleted_total),
];

type HistogramField = fn(&Stats) -> &Histogram;

const HISTOGRAMS: &[(&str, &str, HistogramField)] = &[(
    "ack_latency",
    "NOTIFY decoded to ACK handed to the socket.",
    |s| &s.ack_latency,
)];

/// Reads [`Stats`] at each scrape.
#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (field, kind, help, f) in FIELDS {
            encode_value(&mut encoder, field, *kind, help, &[(None, get(f(&self.0)))])?;
        }
        // With no target (no `-u`) the mirror metrics read 0, as they always did; with one,
        // no label; with several, one series per target.
        let mut targets = self.0.targets();
        if targets.is_empty() {
            targets.push(Arc::default());
        }
        let labelled = targets.len() > 1;
        let label = |t: &TargetStats| labelled.then(|| t.name.clone());
        for (field, kind, help, f) in TARGET_FIELDS {
            let values: Vec<(Option<String>, u64)> =
                targets.iter().map(|t| (label(t), get(f(t)))).collect();
            encode_value(
                &mut encoder,
                &format!("mirror_{field}"),
                *kind,
                help,
                &values,
            )?;
        }
        for (name, help, h) in HISTOGRAMS {
            encode_histogram(&mut encoder, name, help, &[(None, h(&self.0))])?;
        }
        let latencies: Vec<(Option<String>, &Histogram)> =
            targets.iter().map(|t| (label(t), &t.latency)).collect();
        encode_histogram(
            &mut encoder,
            "mirror_latency",
            "Mirror request start to response fully read.",
            &latencies,
        )?;
        if let Some(e) = self.0.exporter() {
            e.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// One counter or gauge family: one value per label (`None`: the one unlabelled series).
fn encode_value(
    encoder: &mut DescriptorEncoder,
    field: &str,
    kind: Kind,
    help: &str,
    values: &[(Option<String>, u64)],
) -> Result<(), std::fmt::Error> {
    // The encoder appends `_total` to counters itself.
    let name = match kind {
        Kind::Counter => field.strip_suffix("_total").unwrap_or(field),
        Kind::Gauge => field,
    };
    let metric_type = match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
    };
    let encode = |value: u64, metric: MetricEncoder| match kind {
        Kind::Counter => ConstCounter::new(value).encode(metric),
        Kind::Gauge => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric),
    };
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    if let [(None, value)] = values {
        return encode(*value, family);
    }
    for (target, value) in values {
        let labels = label_set(target);
        encode(*value, family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// `target="NAME"`, or no label.
fn label_set(target: &Option<String>) -> Vec<(&'static str, &str)> {
    target.iter().map(|t| ("target", t.as_str())).collect()
}

/// One histogram family, in seconds.
fn encode_histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(Option<String>, &Histogram)],
) -> Result<(), std::fmt::Error> {
    let mut family =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    let unlabelled = matches!(values, [(None, _)]);
    for (target, h) in values {
        let (counts, sum_us, count) = h.snapshot();
        let buckets: Vec<(f64, u64)> = counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let bound = Histogram::BOUNDS_US
                    .get(i)
                    .map_or(f64::MAX, |&b| b as f64 / 1e6);
                (bound, n)
            })
            .collect();
        let sum = sum_us as f64 / 1e6;
        if unlabelled {
            return family.encode_histogram::<NoLabelSet>(sum, count, &buckets, None);
        }
        let labels = label_set(target);
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// The exposition text (OpenMetrics) of every metric, `spoa_mirror_` prefixed.
pub fn render(stats: &Arc<Stats>) -> String {
    let mut registry = Registry::with_prefix("spoa_mirror");
    registry.register_collector(Box::new(StatsCollector(Arc::clone(stats))));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn respond(req: &Request<Incoming>, stats: &Arc<Stats>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, CONTENT_TYPE, render(stats)),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
        (&Method::GET | &Method::HEAD, path) => match stats.exporter().and_then(|e| e.page(path)) {
            Some((ctype, body)) => (StatusCode::OK, ctype, body),
            None => (StatusCode::NOT_FOUND, "text/plain", "see /metrics\n".into()),
        },
        _ => (StatusCode::NOT_FOUND, "text/plain", "see /metrics\n".into()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Serves `GET /metrics` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, stats: Arc<Stats>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let stats = Arc::clone(&stats);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = respond(&req, &stats);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = conn => if let Err(e) = r { tracing::debug!("metrics: connection: {e}") },
            }
        });
    }
}
