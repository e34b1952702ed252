//! Per-target policy, applied in [`super::target::Target::offer`] before anything is reserved:
//!
//! ```text
//! rules (method, path) ── sample ── rate cap ── breaker ── rewrite (a copy, only with rules that change it)
//! ```
//!
//! Each step that drops a request counts it in the target's [`TargetStats`]; none blocks.

mod breaker;
mod rules;
mod sample;

pub(super) use breaker::{Breaker, Outcome};

use super::message::MirrorRequest;
use crate::config::{PolicyConfig, RateCap, Sampling};
use crate::stats::{inc, TargetStats};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::uri::Authority;
use std::sync::Arc;

/// A target's compiled policy; the default lets everything through unchanged.
#[derive(Default)]
pub(super) struct Policy {
    config: PolicyConfig,
    sampler: Option<sample::Sampler>,
    /// Shared with a copy made by [`Policy::with_overrides`] that keeps the same cap.
    rate: Option<Arc<DefaultDirectRateLimiter>>,
    breaker: Option<Arc<Breaker>>,
    /// The target's authority, for `host = "target"`.
    authority: Option<Authority>,
}

/// What the policy decided for one request.
pub(super) enum Verdict {
    /// Send this (the shared request, or the target's rewritten copy); report the outcome to
    /// the breaker, if any.
    Send(Arc<MirrorRequest>, Option<Arc<Breaker>>),
    Drop,
}

impl Policy {
    pub(super) fn new(config: PolicyConfig, authority: Authority) -> Policy {
        Policy {
            sampler: config.sample.as_ref().map(sample::Sampler::new),
            rate: config.rate.map(limiter).map(Arc::new),
            breaker: config.breaker.map(|b| Arc::new(Breaker::new(b))),
            authority: Some(authority),
            config,
        }
    }

    /// The configuration this policy was built from (a reload keeps the state of an
    /// unchanged one).
    pub(super) fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// This policy with another sampling and rate cap (run-time control): the breaker and,
    /// if the cap is unchanged, the rate limiter keep their state; rules stay as they are.
    pub(super) fn with_overrides(&self, sample: Option<Sampling>, rate: Option<RateCap>) -> Policy {
        let rate_limiter = match rate == self.config.rate {
            true => self.rate.clone(),
            false => rate.map(limiter).map(Arc::new),
        };
        let config = PolicyConfig {
            sample,
            rate,
            ..self.config.clone()
        };
        Policy {
            sampler: config.sample.as_ref().map(sample::Sampler::new),
            rate: rate_limiter,
            breaker: self.breaker.clone(),
            authority: self.authority.clone(),
            config,
        }
    }

    /// Whether the circuit breaker is open now (for the admin endpoint's target state).
    pub(super) fn breaker_open(&self) -> bool {
        self.breaker.as_ref().is_some_and(|b| b.is_open())
    }

    pub(super) fn decide(&self, request: &Arc<MirrorRequest>, stats: &TargetStats) -> Verdict {
        let rules = self.config.rules.as_ref();
        if let Some(r) = rules.filter(|r| r.filters()) {
            if !rules::allows(r, request) {
                inc(&stats.dropped_filtered);
                return Verdict::Drop;
            }
        }
        if let Some(s) = &self.sampler {
            if !s.sampled(request) {
                inc(&stats.dropped_sampled_out);
                return Verdict::Drop;
            }
        }
        if let Some(rate) = &self.rate {
            if rate.check().is_err() {
                inc(&stats.dropped_rate_limited);
                return Verdict::Drop;
            }
        }
        if let Some(b) = &self.breaker {
            if !b.admit() {
                inc(&stats.dropped_breaker_open);
                return Verdict::Drop;
            }
        }
        let request = match (rules.filter(|r| r.rewrites()), &self.authority) {
            (Some(r), Some(authority)) => Arc::new(rules::rewrite(r, request, authority)),
            _ => Arc::clone(request),
        };
        Verdict::Send(request, self.breaker.clone())
    }
}

/// A target's request rules on their own (the replay tool applies them as a target would):
/// `None` when the method/path filters leave the request out, else its (rewritten) copy.
pub fn apply_rules(
    rules: &crate::config::Rules,
    request: &MirrorRequest,
    authority: &Authority,
) -> Option<MirrorRequest> {
    if rules.filters() && !rules::allows(rules, request) {
        return None;
    }
    Some(if rules.rewrites() {
        rules::rewrite(rules, request, authority)
    } else {
        request.clone()
    })
}

fn limiter(cap: RateCap) -> DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(cap.per_second).allow_burst(cap.burst))
}

#[cfg(test)]
mod tests;
