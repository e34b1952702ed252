//! The `-i` monitor line: the numbers an operator looks at first, logged when they changed.

use super::metrics::{FIELDS, TARGET_FIELDS};
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

/// The values the monitor compares between two lines: [`FIELDS`] but [`NOT_NEWS`], and every
/// target's counters.
pub fn snapshot(stats: &Stats) -> Vec<u64> {
    let global = FIELDS
        .iter()
        .filter(|(name, ..)| !NOT_NEWS.contains(name))
        .map(|(_, _, _, f)| get(f(stats)));
    let targets = stats.targets();
    let per_target = targets
        .iter()
        .flat_map(|t| TARGET_FIELDS.iter().map(move |(_, _, _, f)| get(f(t))));
    global.chain(per_target).collect()
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

/// The monitor line: one line, the numbers an operator looks at first (mirror counters summed
/// over every target; with several targets, each one's numbers follow).
pub fn monitor_line(s: &Stats) -> String {
    let mut line = totals(s);
    let targets = s.targets();
    if targets.len() > 1 {
        for t in &targets {
            line.push_str(&format!(
                "; target {}: mirrored {} (2xx {}, failed {}), dropped: filtered {}, sampled out {}, \
                 rate {}, breaker {} (opened {}), queue full {}, memory {}; in flight {}, queued {}",
                t.name,
                get(&t.sent_total),
                get(&t.status_2xx),
                get(&t.failed_connect) + get(&t.failed_timeout) + get(&t.failed_other),
                get(&t.dropped_filtered),
                get(&t.dropped_sampled_out),
                get(&t.dropped_rate_limited),
                get(&t.dropped_breaker_open),
                get(&t.breaker_opened_total),
                get(&t.dropped_queue_full),
                get(&t.dropped_memory),
                get(&t.in_flight),
                get(&t.queued),
            ));
        }
    }
    line
}

fn totals(s: &Stats) -> String {
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
        s.total(|t| &t.sent_total),
        s.total(|t| &t.status_2xx),
        s.total(|t| &t.status_3xx),
        s.total(|t| &t.status_4xx),
        s.total(|t| &t.status_5xx),
        s.total(|t| &t.failed_connect),
        s.total(|t| &t.failed_timeout),
        s.total(|t| &t.failed_other),
        s.total(|t| &t.dropped_queue_full),
        s.total(|t| &t.dropped_memory),
        s.total(|t| &t.dropped_shutdown),
        g(&s.mirror_skipped_invalid),
        g(&s.mirror_skipped_truncated),
        s.total(|t| &t.in_flight),
        s.total(|t| &t.queued),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{inc, TargetStats};

    #[test]
    fn one_segment_per_target_when_there_are_several() {
        let stats = Stats::default();
        stats.set_targets(vec![Arc::new(TargetStats::named("only"))]);
        assert!(!monitor_line(&stats).contains("target "));
        let (a, b) = (TargetStats::named("a"), TargetStats::named("b"));
        inc(&b.dropped_sampled_out);
        stats.set_targets(vec![Arc::new(a), Arc::new(b)]);
        let line = monitor_line(&stats);
        assert!(line.contains("; target a: mirrored 0"), "{line}");
        assert!(
            line.contains(
                "; target b: mirrored 0 (2xx 0, failed 0), dropped: filtered 0, sampled out 1"
            ),
            "{line}"
        );
    }
}
