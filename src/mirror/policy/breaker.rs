//! Circuit breaker: after N consecutive failures, no requests for a cool-down, then one probe;
//! its success closes the circuit, its failure opens it again.

use crate::config::BreakerConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub(in crate::mirror) struct Breaker {
    config: BreakerConfig,
    /// Fast path: the circuit is closed and no lock is taken to admit.
    open: AtomicBool,
    /// Fast path: no failure since the last success, so a success changes nothing and takes
    /// no lock (the common case: one lock per finished request otherwise).
    failing: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failures: u32,
    /// Open: nothing is sent before this instant; after it, one probe (and the instant moves
    /// one cool-down on, so a probe that never reports back lets another through later).
    retry_at: Option<Instant>,
}

/// What a finished request tells the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::mirror) enum Outcome {
    Success,
    Failure,
    /// Opened the circuit (for the `breaker_opened` counter).
    Opened,
}

impl Breaker {
    pub(super) fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            open: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the circuit is open (requests short-circuited, or one probe at a time).
    pub(super) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Whether a request may go now.
    pub(super) fn admit(&self) -> bool {
        self.admit_at(Instant::now())
    }

    pub(super) fn admit_at(&self, now: Instant) -> bool {
        if !self.open.load(Ordering::Acquire) {
            return true;
        }
        let Ok(mut s) = self.state.lock() else {
            return true;
        };
        match s.retry_at {
            Some(at) if now < at => false,
            _ => {
                s.retry_at = Some(now + self.config.cool_down);
                true
            }
        }
    }

    /// Records how a request that was let through ended.
    pub(in crate::mirror) fn record(&self, ok: bool) -> Outcome {
        self.record_at(ok, Instant::now())
    }

    pub(super) fn record_at(&self, ok: bool, now: Instant) -> Outcome {
        if ok && !self.failing.load(Ordering::Acquire) {
            return Outcome::Success;
        }
        let Ok(mut s) = self.state.lock() else {
            return Outcome::Failure;
        };
        if ok {
            s.failures = 0;
            s.retry_at = None;
            self.open.store(false, Ordering::Release);
            self.failing.store(false, Ordering::Release);
            return Outcome::Success;
        }
        self.failing.store(true, Ordering::Release);
        s.failures = s.failures.saturating_add(1);
        let was_open = s.retry_at.is_some();
        if was_open || s.failures >= self.config.failures.get() {
            s.retry_at = Some(now + self.config.cool_down);
            self.open.store(true, Ordering::Release);
            if !was_open {
                return Outcome::Opened;
            }
        }
        Outcome::Failure
    }
}
