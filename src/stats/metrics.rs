//! The Prometheus endpoint (`--metrics-address`): every counter of [`Stats`] at each scrape.

use super::{get, Histogram, Stats};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
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
    ("notify_unacked_total", Kind::Counter, "NOTIFYs held by -t whose connection closed before the ACK (still mirrored).", |s| &s.notify_unacked_total),
    ("mirror_queued_total", Kind::Counter, "Mirror messages accepted into the queue.", |s| &s.mirror_queued_total),
    ("mirror_sent_total", Kind::Counter, "Requests whose delivery ended (each also counted in one status class or failure kind).", |s| &s.mirror_sent_total),
    ("mirror_status_1xx", Kind::Counter, "Mirror responses, read to their end, with a 1xx status.", |s| &s.mirror_status_1xx),
    ("mirror_status_2xx", Kind::Counter, "Mirror responses, read to their end, with a 2xx status.", |s| &s.mirror_status_2xx),
    ("mirror_status_3xx", Kind::Counter, "Mirror responses, read to their end, with a 3xx status.", |s| &s.mirror_status_3xx),
    ("mirror_status_4xx", Kind::Counter, "Mirror responses, read to their end, with a 4xx status.", |s| &s.mirror_status_4xx),
    ("mirror_status_5xx", Kind::Counter, "Mirror responses, read to their end, with a 5xx status.", |s| &s.mirror_status_5xx),
    ("mirror_failed_connect", Kind::Counter, "Requests that could not connect to the mirror.", |s| &s.mirror_failed_connect),
    ("mirror_failed_timeout", Kind::Counter, "Requests that hit the total timeout.", |s| &s.mirror_failed_timeout),
    ("mirror_failed_other", Kind::Counter, "Requests that failed after connecting (reset, bad answer, body cut short).", |s| &s.mirror_failed_other),
    ("mirror_dropped_queue_full", Kind::Counter, "Messages dropped because the queue was full.", |s| &s.mirror_dropped_queue_full),
    ("mirror_dropped_memory", Kind::Counter, "Messages dropped because the memory budget was used up.", |s| &s.mirror_dropped_memory),
    ("mirror_dropped_shutdown", Kind::Counter, "Messages dropped because the agent is stopping (offered after the stop began, or left at the drain deadline).", |s| &s.mirror_dropped_shutdown),
    ("mirror_skipped_invalid", Kind::Counter, "Messages that could not make a valid HTTP request.", |s| &s.mirror_skipped_invalid),
    ("mirror_skipped_truncated", Kind::Counter, "Messages whose body was shorter than its Content-Length.", |s| &s.mirror_skipped_truncated),
    ("mirror_queued", Kind::Gauge, "Messages waiting in the queue now (in-flight requests not included).", |s| &s.mirror_queued),
    ("mirror_queued_bytes", Kind::Gauge, "Bytes of the messages waiting in the queue now (in-flight requests not included).", |s| &s.mirror_queued_bytes),
    ("mirror_memory_bytes", Kind::Gauge, "Bytes of queued and in-flight requests now (bounded by --mirror-memory).", |s| &s.mirror_memory_bytes),
    ("mirror_in_flight", Kind::Gauge, "Requests on the wire now.", |s| &s.mirror_in_flight),
    ("mirror_connections_total", Kind::Counter, "TCP connections opened to the mirror or proxy.", |s| &s.mirror_connections_total),
    ("log_lines_dropped_total", Kind::Counter, "Log lines dropped because the log output fell behind.", |_| crate::logging::lines_dropped()),
];

type HistogramField = fn(&Stats) -> &Histogram;

const HISTOGRAMS: &[(&str, &str, HistogramField)] = &[
    (
        "ack_latency",
        "NOTIFY decoded to ACK handed to the socket.",
        |s| &s.ack_latency,
    ),
    (
        "mirror_latency",
        "Mirror request start to response fully read.",
        |s| &s.mirror_latency,
    ),
];

/// Reads [`Stats`] at each scrape.
#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (field, kind, help, f) in FIELDS {
            let value = get(f(&self.0));
            match kind {
                Kind::Counter => {
                    // The encoder appends `_total` itself.
                    let name = field.strip_suffix("_total").unwrap_or(field);
                    let c = ConstCounter::new(value);
                    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
                }
                Kind::Gauge => {
                    let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                    g.encode(encoder.encode_descriptor(field, help, None, g.metric_type())?)?;
                }
            }
        }
        for (name, help, h) in HISTOGRAMS {
            let (counts, sum_us, count) = h(&self.0).snapshot();
            let buckets: Vec<(f64, u64)> = counts
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    (
                        Histogram::BOUNDS_US
                            .get(i)
                            .map_or(f64::MAX, |&b| b as f64 / 1e6),
                        n,
                    )
                })
                .collect();
            let mut m = encoder.encode_descriptor(
                name,
                help,
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                sum_us as f64 / 1e6,
                count,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }
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
