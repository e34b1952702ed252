//! Mirror targets and their traffic policy, validated and typed: what `--config FILE` (and
//! `-u`) describe. The engine compiles a [`PolicyConfig`] into its per-target policy.

use super::MirrorConfig;
use http::{HeaderName, HeaderValue, Method};
use regex::RegexSet;
use std::num::NonZeroU32;
use std::time::Duration;

/// One mirror target: where requests go and which of them.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Unique; the `target` label of its metrics. `-u`'s target is [`TargetConfig::DEFAULT_NAME`].
    pub name: String,
    pub mirror: MirrorConfig,
    pub policy: PolicyConfig,
}

impl TargetConfig {
    /// The name of the target `-u` describes.
    pub const DEFAULT_NAME: &'static str = "default";
}

/// What a target takes of the traffic; the default takes everything, as it is.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    pub sample: Option<Sampling>,
    pub rate: Option<RateCap>,
    /// `None`: no rules, and no per-request cost for them.
    pub rules: Option<Rules>,
    pub breaker: Option<BreakerConfig>,
}

/// Mirror `percent` % of the requests, chosen at random or by a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// 0.0..=100.0.
    pub percent: f64,
    pub by: SampleKey,
}

/// What decides whether a request is in the sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleKey {
    /// Each request on its own.
    Random,
    /// The first value of this header: a key is always in or always out.
    Header(HeaderName),
    /// The value of this cookie.
    Cookie(String),
    /// The client address (the `src` argument of the SPOE message).
    Src,
}

/// At most `per_second` requests a second on average, `burst` at once; the excess is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCap {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateCap {
    /// Burst when the file gives none: one second's worth.
    pub fn default_burst(per_second: NonZeroU32) -> NonZeroU32 {
        per_second
    }
}

/// Which requests a target takes, and how its copy is changed.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Empty: every method.
    pub methods: Vec<Method>,
    /// Matched against the path (without the query); empty: every path.
    pub path_include: Option<RegexSet>,
    /// A path matching any of these is not mirrored.
    pub path_exclude: Option<RegexSet>,
    pub remove_headers: Vec<HeaderName>,
    /// Replaces every header of that name (or adds it).
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// The value of each of these headers is replaced by [`Rules::REDACTED`].
    pub redact_headers: Vec<HeaderName>,
    pub host: HostPolicy,
    /// Add the client address (`src` argument) to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// Add `for=<client address>` to `Forwarded` (RFC 7239).
    pub forwarded: bool,
}

impl Rules {
    /// What a redacted header's value becomes.
    pub const REDACTED: &'static str = "[redacted]";

    /// Whether the rules change the request (a copy is made only then).
    pub fn rewrites(&self) -> bool {
        !self.remove_headers.is_empty()
            || !self.set_headers.is_empty()
            || !self.redact_headers.is_empty()
            || self.host != HostPolicy::Keep
            || self.x_forwarded_for
            || self.forwarded
    }

    /// Whether the rules filter requests.
    pub fn filters(&self) -> bool {
        !self.methods.is_empty() || self.path_include.is_some() || self.path_exclude.is_some()
    }
}

/// The Host header the target gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostPolicy {
    /// The client's (today's behaviour).
    #[default]
    Keep,
    /// The target URL's authority.
    Target,
    /// This value.
    Literal(HeaderValue),
}

/// After `failures` consecutive failures (no response, or a 5xx), stop sending for
/// `cool_down`, then let one request through as a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failures: NonZeroU32,
    pub cool_down: Duration,
}

impl BreakerConfig {
    pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(10);
}
