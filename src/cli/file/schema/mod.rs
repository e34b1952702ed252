//! The file's shape for serde. Each value type checks itself while it is deserialized (its
//! error then carries the value's position); `TargetSpec::policy` assembles the checked parts.

use crate::cli::values::{parse_bytes, parse_proxy_url, parse_time};
use crate::config::{
    BreakerConfig, HostPolicy, MirrorUrl, PolicyConfig, RateCap, Rules, SampleKey, Sampling,
};
use http::{HeaderName, HeaderValue, Method};
use regex::RegexSet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

mod record;
mod shadow;

pub(super) use record::RecordSpec;
use shadow::Compare;
pub(super) use shadow::ShadowSpec;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSpec {
    #[serde(default)]
    pub(super) target: Vec<TargetSpec>,
    pub(super) shadow: Option<ShadowSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TargetSpec {
    pub(super) name: Spanned<Name>,
    pub(super) url: Url,
    pub(super) timeout: Option<Time>,
    pub(super) connect_timeout: Option<Time>,
    pub(super) queue: Option<Count<1_000_000>>,
    pub(super) concurrency: Option<Count<65_535>>,
    pub(super) memory: Option<Memory>,
    pub(super) proxy: Option<Proxy>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) insecure: Option<bool>,
    sample: Option<SampleSpec>,
    rate: Option<RateSpec>,
    breaker: Option<BreakerSpec>,
    #[serde(default)]
    methods: Vec<MethodName>,
    path_include: Option<Patterns>,
    path_exclude: Option<Patterns>,
    #[serde(default)]
    remove_headers: Vec<RuleHeader>,
    #[serde(default)]
    set_headers: SetHeaders,
    #[serde(default)]
    redact_headers: Vec<RuleHeader>,
    #[serde(default)]
    host: Host,
    #[serde(default)]
    x_forwarded_for: bool,
    #[serde(default)]
    forwarded: bool,
    pub(super) record: Option<RecordSpec>,
    pub(super) compare: Option<Compare>,
}

impl TargetSpec {
    pub(super) fn policy(&self) -> PolicyConfig {
        let rules = Rules {
            methods: self.methods.iter().map(|m| m.0.clone()).collect(),
            path_include: self.path_include.as_ref().map(|p| p.0.clone()),
            path_exclude: self.path_exclude.as_ref().map(|p| p.0.clone()),
            remove_headers: self.remove_headers.iter().map(|h| h.0.clone()).collect(),
            set_headers: self.set_headers.0.clone(),
            redact_headers: self.redact_headers.iter().map(|h| h.0.clone()).collect(),
            host: self.host.0.clone(),
            x_forwarded_for: self.x_forwarded_for,
            forwarded: self.forwarded,
        };
        PolicyConfig {
            sample: self.sample.as_ref().map(|s| Sampling {
                percent: s.percent.0,
                by: s.by.as_ref().map_or(SampleKey::Random, |k| k.0.clone()),
            }),
            rate: self.rate.as_ref().map(|r| RateCap {
                per_second: r.per_second.0,
                burst: r
                    .burst
                    .as_ref()
                    .map_or(RateCap::default_burst(r.per_second.0), |b| b.0),
            }),
            rules: (rules.filters() || rules.rewrites()).then_some(rules),
            breaker: self.breaker.as_ref().map(|b| BreakerConfig {
                failures: b.failures.0,
                cool_down: b
                    .cool_down
                    .as_ref()
                    .map_or(BreakerConfig::DEFAULT_COOL_DOWN, |t| t.0),
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SampleSpec {
    percent: Percent,
    by: Option<Key>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RateSpec {
    per_second: Positive,
    burst: Option<Positive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BreakerSpec {
    failures: Positive,
    cool_down: Option<Time>,
}

/// A target name: the `target` label of its metrics.
#[derive(Deserialize, Clone, PartialEq, Eq, Hash)]
#[serde(try_from = "String")]
pub(super) struct Name(String);

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        token(s, "target name").map(Name)
    }
}

/// 1 to 64 letters, digits, `-`, `_` or `.`: a target's name, an SPOE message's.
fn token(s: String, what: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match ok {
        true => Ok(s),
        false => Err(format!(
            "invalid {what} '{s}': 1 to 64 letters, digits, '-', '_' or '.'"
        )),
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Name {
    pub(super) fn into_string(self) -> String {
        self.0
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Url(pub(super) MirrorUrl);

impl TryFrom<String> for Url {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::cli::values::parse_mirror_url(&s).map(Url)
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Proxy(pub(super) http::Uri);

impl TryFrom<String> for Proxy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_proxy_url(&s).map(Proxy)
    }
}

/// TIME as the flags write it (`"2s"`, `"500ms"`), or an integer of milliseconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum TimeText {
    Millis(i64),
    Text(String),
}

impl TimeText {
    fn text(self) -> String {
        match self {
            TimeText::Millis(ms) => ms.to_string(),
            TimeText::Text(s) => s,
        }
    }
}

#[derive(Deserialize)]
#[serde(try_from = "TimeText")]
pub(super) struct Time(pub(super) Duration);

impl TryFrom<TimeText> for Time {
    type Error = String;
    fn try_from(t: TimeText) -> Result<Self, String> {
        let text = t.text();
        let (min, max) = (Duration::from_millis(1), Duration::from_secs(3_600));
        parse_time(&text, min, max).map(Time)
    }
}

#[derive(Deserialize)]
#[serde(try_from = "i64")]
pub(super) struct Count<const MAX: usize>(pub(super) usize);

impl<const MAX: usize> TryFrom<i64> for Count<MAX> {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX).contains(n))
            .map(Count)
            .ok_or_else(|| format!("{n} is out of range [1, {MAX}]"))
    }
}

/// BYTES as `--mirror-memory` takes it (`"64M"`), or an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum BytesText {
    Int(i64),
    Text(String),
}

impl BytesText {
    fn text(self) -> String {
        match self {
            BytesText::Int(n) => n.to_string(),
            BytesText::Text(s) => s,
        }
    }
}

#[derive(Deserialize)]
#[serde(try_from = "BytesText")]
pub(super) struct Memory(pub(super) usize);

impl TryFrom<BytesText> for Memory {
    type Error = String;
    fn try_from(b: BytesText) -> Result<Self, String> {
        let text = b.text();
        parse_bytes(&text)
            .filter(|&b| b >= 64 * 1024)
            .and_then(|b| usize::try_from(b).ok())
            .map(Memory)
            .ok_or_else(|| {
                format!(
                    "invalid memory '{text}' (bytes with an optional K/M/G suffix, at least 64K)"
                )
            })
    }
}

#[derive(Deserialize)]
#[serde(try_from = "f64")]
struct Percent(f64);

impl TryFrom<f64> for Percent {
    type Error = String;
    fn try_from(p: f64) -> Result<Self, String> {
        if (0.0..=100.0).contains(&p) {
            Ok(Percent(p))
        } else {
            Err(format!("percent {p} is out of range [0, 100]"))
        }
    }
}

#[derive(Deserialize)]
#[serde(try_from = "i64")]
struct Positive(NonZeroU32);

impl TryFrom<i64> for Positive {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        u32::try_from(n)
            .ok()
            .and_then(NonZeroU32::new)
            .map(Positive)
            .ok_or_else(|| format!("{n} is out of range [1, {}]", u32::MAX))
    }
}

/// `random`, `src`, `header:NAME` or `cookie:NAME`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Key(SampleKey);

impl TryFrom<String> for Key {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("invalid sample key '{s}': random, src, header:NAME or cookie:NAME");
        let key = match s.split_once(':') {
            None if s == "random" => SampleKey::Random,
            None if s == "src" => SampleKey::Src,
            Some(("header", name)) => SampleKey::Header(
                HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?,
            ),
            Some(("cookie", name)) if !name.trim().is_empty() && !name.contains([';', '=']) => {
                SampleKey::Cookie(name.trim().to_owned())
            }
            _ => return Err(bad()),
        };
        Ok(Key(key))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct MethodName(Method);

impl TryFrom<String> for MethodName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Method::from_bytes(s.as_bytes())
            .map(MethodName)
            .map_err(|_| format!("invalid method '{s}'"))
    }
}

/// Path patterns (regular expressions), bounded in compiled size.
#[derive(Deserialize)]
#[serde(try_from = "Vec<String>")]
struct Patterns(RegexSet);

impl TryFrom<Vec<String>> for Patterns {
    type Error = String;
    fn try_from(p: Vec<String>) -> Result<Self, String> {
        regex::RegexSetBuilder::new(&p)
            .size_limit(1 << 20)
            .build()
            .map(Patterns)
            .map_err(|e| format!("invalid path pattern: {e}"))
    }
}

/// Framing and Host are the agent's: rules cannot remove, set or redact them.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

fn rule_header(name: &str) -> Result<HeaderName, String> {
    let n = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("invalid header name '{name}'"))?;
    if RESERVED.contains(&n.as_str()) {
        return Err(format!(
            "header '{n}' cannot be changed by rules (framing; for Host use `host`)"
        ));
    }
    Ok(n)
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct RuleHeader(HeaderName);

impl TryFrom<String> for RuleHeader {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        rule_header(&s).map(RuleHeader)
    }
}

#[derive(Deserialize, Default)]
#[serde(try_from = "BTreeMap<String, String>")]
struct SetHeaders(Vec<(HeaderName, HeaderValue)>);

impl TryFrom<BTreeMap<String, String>> for SetHeaders {
    type Error = String;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, String> {
        m.into_iter()
            .map(|(n, v)| {
                let value = HeaderValue::from_str(&v)
                    .map_err(|_| format!("invalid value for header '{n}'"))?;
                Ok((rule_header(&n)?, value))
            })
            .collect::<Result<_, String>>()
            .map(SetHeaders)
    }
}

/// `keep`, `target`, or a literal Host value.
#[derive(Deserialize, Default)]
#[serde(try_from = "String")]
struct Host(HostPolicy);

impl TryFrom<String> for Host {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "keep" => Ok(Host(HostPolicy::Keep)),
            "target" => Ok(Host(HostPolicy::Target)),
            lit => lit
                .parse::<http::uri::Authority>()
                .ok()
                .filter(|a| !a.host().is_empty() && !lit.contains('@'))
                .and_then(|_| HeaderValue::from_str(lit).ok())
                .map(|v| Host(HostPolicy::Literal(v)))
                .ok_or_else(|| format!("invalid host '{s}': keep, target, or host[:port]")),
        }
    }
}
