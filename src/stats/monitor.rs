//! The `-i` monitor line: the numbers an operator looks at first, logged when they changed.

use super::metrics::FIELDS;
use super::{get, Stats};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Fields the monitor ignores when it decides whether anything changed: HAProxy's
/// `option spop-check` opens a connection every few seconds, which alone is no news.
const NOT_NEWS: &[&str] = &[
    "connections_total",
    "connections_active",
    "healthchecks_total",
];

/// The values of [`FIELDS`] the monitor compares between two lines.
pub fn snapshot(stats: &Stats) -> Vec<u64> {
    FIELDS
        .iter()
        .filter(|(name, ..)| !NOT_NEWS.contains(name))
        .map(|(_, _, _, f)| get(f(stats)))
        .collect()
}

fn micros(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(u64::MAX) => ">10s".into(),
        Some(us) if us >= 1_000_000 => format!("{}s", us / 1_000_000),
        Some(us) if us >= 1_000 => format!("{}ms", us / 1_000),
        Some(us) => format!("{us}us"),
    }
}

/// The monitor line: one line, the numbers an operator looks at first.
pub fn monitor_line(s: &Stats) -> String {
    let g = |c: &AtomicU64| get(c);
    format!(
        "connections {} open, {} total; notify {}, ack {} (latency p50 <= {}, p99 <= {}); \
         mirrored {} (2xx {}, 3xx {}, 4xx {}, 5xx {}, failed: connect {}, timeout {}, other {}); \
         dropped: queue full {}, memory {}, shutdown {}; skipped: invalid {}, truncated {}; \
         in flight {}, queued {}",
        g(&s.connections_active),
        g(&s.connections_total),
        g(&s.notify_total),
        g(&s.ack_total),
        micros(s.ack_latency.quantile_upper_bound_us(0.5)),
        micros(s.ack_latency.quantile_upper_bound_us(0.99)),
        g(&s.mirror_sent_total),
        g(&s.mirror_status_2xx),
        g(&s.mirror_status_3xx),
        g(&s.mirror_status_4xx),
        g(&s.mirror_status_5xx),
        g(&s.mirror_failed_connect),
        g(&s.mirror_failed_timeout),
        g(&s.mirror_failed_other),
        g(&s.mirror_dropped_queue_full),
        g(&s.mirror_dropped_memory),
        g(&s.mirror_dropped_shutdown),
        g(&s.mirror_skipped_invalid),
        g(&s.mirror_skipped_truncated),
        g(&s.mirror_in_flight),
        g(&s.mirror_queued),
    )
}

/// Every `interval`, logs [`monitor_line`] if any counter but the connection counts moved
/// since the last line.
pub async fn monitor(stats: Arc<Stats>, interval: Duration, shutdown: CancellationToken) {
    let mut last = snapshot(&stats);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = snapshot(&stats);
        if now != last {
            tracing::info!("monitor: {}", monitor_line(&stats));
            last = now;
        }
    }
}
