//! Throttles for log lines that a peer or a load could otherwise make fire per request or per
//! connection: at most one line per interval, the rest are only counted (or logged at debug).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Allows one event per interval; cheap enough to sit on a hot path (one load, and one
/// compare-exchange when an event is allowed). Usable in a `static`.
#[derive(Debug)]
pub struct LogThrottle {
    /// Milliseconds since [`epoch`] of the last allowed event, plus one (0 = never).
    last: AtomicU64,
    interval_ms: u64,
}

impl LogThrottle {
    /// The interval used for every warning that could repeat per request or connection.
    pub const INTERVAL: Duration = Duration::from_secs(10);

    pub const fn new() -> LogThrottle {
        LogThrottle::every(LogThrottle::INTERVAL)
    }

    pub const fn every(interval: Duration) -> LogThrottle {
        LogThrottle {
            last: AtomicU64::new(0),
            // An interval above u64::MAX ms is no interval anyone sets; saturate.
            interval_ms: if interval.as_millis() > u64::MAX as u128 {
                u64::MAX
            } else {
                interval.as_millis() as u64
            },
        }
    }

    /// Whether this event may be logged: the first one, then one per interval.
    pub fn allow(&self) -> bool {
        let now = u64::try_from(epoch().elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval_ms {
            return false;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new()
    }
}

/// The process's clock origin for throttles (a `static` cannot hold an `Instant`).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_first_then_waits_for_the_interval() {
        let t = LogThrottle::new();
        assert!(t.allow());
        assert!(!t.allow());
        assert!(!t.allow());
        let fast = LogThrottle::every(Duration::from_millis(20));
        assert!(fast.allow());
        assert!(!fast.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert!(fast.allow());
    }
}
