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

/// The effective targets, one block each, for `--check-config`.
pub fn describe(targets: &[TargetConfig]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if targets.is_empty() {
        out.push_str("no mirror targets: the agent ACKs and mirrors nothing\n");
    }
    for t in targets {
        let m = &t.mirror;
        let _ = writeln!(out, "target {}: {}", t.name, m.url);
        let _ = writeln!(
            out,
            "  timeout {}, connect {}, queue {}, concurrency {}, memory {} bytes{}{}{}",
            humantime::format_duration(m.timeout),
            humantime::format_duration(m.connect_timeout),
            m.queue_size,
            m.concurrency,
            m.memory_budget,
            m.proxy.as_ref().map_or(String::new(), |p| format!(
                ", proxy {}",
                super::redact_userinfo(&p.url.to_string())
            )),
            m.ca_file
                .as_ref()
                .map_or(String::new(), |f| format!(", ca-file {}", f.display())),
            if m.insecure {
                ", certificate NOT verified"
            } else {
                ""
            },
        );
        let p = &t.policy;
        if let Some(s) = &p.sample {
            let _ = writeln!(out, "  sample {}% by {:?}", s.percent, s.by);
        }
        if let Some(r) = &p.rate {
            let _ = writeln!(out, "  rate {}/s, burst {}", r.per_second, r.burst);
        }
        if let Some(b) = &p.breaker {
            let _ = writeln!(
                out,
                "  breaker after {} failures, cool-down {}",
                b.failures,
                humantime::format_duration(b.cool_down)
            );
        }
        if let Some(r) = &p.rules {
            let _ = writeln!(out, "  rules: {}", rules_summary(r));
        }
        if let Some(r) = &m.record {
            let _ = writeln!(
                out,
                "  record to {}: files up to {} bytes or {}, disk budget {} bytes, queue {}{}",
                r.dir.display(),
                r.file_size,
                humantime::format_duration(r.rotate),
                r.disk_budget,
                r.queue,
                if r.gzip { ", gzip" } else { "" }
            );
        }
        if let Some(role) = m.compare {
            let _ = writeln!(out, "  compare: {}", role.as_str());
        }
    }
    out
}

/// The rules in one line; values set by `set-headers` are not shown (they may be tokens).
fn rules_summary(r: &Rules) -> String {
    let names = |v: &[http::HeaderName]| {
        v.iter()
            .map(http::HeaderName::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    if !r.methods.is_empty() {
        let m: Vec<&str> = r.methods.iter().map(http::Method::as_str).collect();
        parts.push(format!("methods {}", m.join(" ")));
    }
    if let Some(p) = &r.path_include {
        parts.push(format!("paths {}", p.patterns().join(" ")));
    }
    if let Some(p) = &r.path_exclude {
        parts.push(format!("not paths {}", p.patterns().join(" ")));
    }
    if !r.remove_headers.is_empty() {
        parts.push(format!("remove {}", names(&r.remove_headers)));
    }
    if !r.redact_headers.is_empty() {
        parts.push(format!("redact {}", names(&r.redact_headers)));
    }
    if !r.set_headers.is_empty() {
        let set: Vec<http::HeaderName> = r.set_headers.iter().map(|(n, _)| n.clone()).collect();
        parts.push(format!("set {}", names(&set)));
    }
    match &r.host {
        HostPolicy::Keep => {}
        HostPolicy::Target => parts.push("host target".into()),
        HostPolicy::Literal(v) => parts.push(format!("host {}", v.to_str().unwrap_or("?"))),
    }
    if r.x_forwarded_for {
        parts.push("x-forwarded-for".into());
    }
    if r.forwarded {
        parts.push("forwarded".into());
    }
    parts.join(", ")
}
