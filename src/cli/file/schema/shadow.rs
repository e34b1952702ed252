//! The `[shadow]` table (shadow comparison) and a target's `compare` key.

use super::{BytesText, Count, TimeText};
use crate::cli::values::{parse_bytes, parse_time};
use crate::config::{BodyMode, JsonPattern, ShadowConfig, ShadowRole};
use http::HeaderName;
use regex::Regex;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[shadow]`: see README, "Shadow comparison".
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(in crate::cli::file) struct ShadowSpec {
    message: Option<MessageName>,
    window: Option<Window>,
    max_pending: Option<Count<1_000_000>>,
    memory: Option<Bytes>,
    max_body: Option<Bytes>,
    queue: Option<Count<1_000_000>>,
    #[serde(default)]
    ignore_headers: Vec<Header>,
    #[serde(default)]
    ignore_json: Vec<Pattern>,
    #[serde(default)]
    ignore_array_order: bool,
    #[serde(default)]
    text_masks: Vec<Mask>,
    #[serde(default)]
    body: Body,
    endpoints: Option<Count<10_000>>,
    examples: Option<Count<100>>,
    diff_file: Option<PathBuf>,
    diff_file_size: Option<Bytes>,
    #[serde(default)]
    redact_headers: Vec<Header>,
    #[serde(default)]
    redact_json: Vec<Pattern>,
}

impl ShadowSpec {
    pub(in crate::cli::file) fn config(self) -> ShadowConfig {
        let mut c = ShadowConfig::new();
        if let Some(m) = self.message {
            c.message = m.0;
        }
        if let Some(w) = self.window {
            c.window = w.0;
        }
        if let Some(n) = self.max_pending {
            c.max_pending = n.0;
        }
        if let Some(b) = self.memory {
            c.max_memory = usize::try_from(b.0).unwrap_or(usize::MAX);
        }
        if let Some(b) = self.max_body {
            c.max_body = usize::try_from(b.0).unwrap_or(usize::MAX);
        }
        if let Some(n) = self.queue {
            c.queue = n.0;
        }
        c.ignore_headers = self.ignore_headers.into_iter().map(|h| h.0).collect();
        c.ignore_json = self.ignore_json.into_iter().map(|p| p.0).collect();
        c.ignore_array_order = self.ignore_array_order;
        c.text_masks = self.text_masks.into_iter().map(|m| m.0).collect();
        c.body = self.body.0;
        if let Some(n) = self.endpoints {
            c.endpoints = n.0;
        }
        if let Some(n) = self.examples {
            c.examples = n.0;
        }
        c.diff_file = self.diff_file;
        if let Some(b) = self.diff_file_size {
            c.diff_file_size = b.0;
        }
        c.redact_headers = self.redact_headers.into_iter().map(|h| h.0).collect();
        c.redact_json = self.redact_json.into_iter().map(|p| p.0).collect();
        c
    }
}

/// A target's `compare = "candidate"` or `"reference"`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(in crate::cli::file) struct Compare(pub(in crate::cli::file) ShadowRole);

impl TryFrom<String> for Compare {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "candidate" => Ok(Compare(ShadowRole::Candidate)),
            "reference" => Ok(Compare(ShadowRole::Reference)),
            _ => Err(format!(
                "invalid compare '{s}' (candidate: compared with the primary; reference: the \
                 primary's version, for noise)"
            )),
        }
    }
}

/// An SPOE message name: what `spoe-message` takes.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct MessageName(String);

impl TryFrom<String> for MessageName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        super::token(s, "message name").map(MessageName)
    }
}

/// The pairing window: TIME in 100ms..10m.
#[derive(Deserialize)]
#[serde(try_from = "TimeText")]
struct Window(Duration);

impl TryFrom<TimeText> for Window {
    type Error = String;
    fn try_from(t: TimeText) -> Result<Self, String> {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(600));
        parse_time(&t.text(), min, max).map(Window)
    }
}

/// BYTES (`"64K"`), or an integer; at least 1.
#[derive(Deserialize)]
#[serde(try_from = "BytesText")]
struct Bytes(u64);

impl TryFrom<BytesText> for Bytes {
    type Error = String;
    fn try_from(b: BytesText) -> Result<Self, String> {
        let text = b.text();
        parse_bytes(&text)
            .filter(|&n| n >= 1)
            .map(Bytes)
            .ok_or_else(|| format!("invalid size '{text}' (bytes with an optional K/M/G suffix)"))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Pattern(JsonPattern);

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        JsonPattern::parse(&s).map(Pattern)
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Mask(Regex);

impl TryFrom<String> for Mask {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        regex::RegexBuilder::new(&s)
            .size_limit(1 << 20)
            .build()
            .map(Mask)
            .map_err(|e| format!("invalid text mask: {e}"))
    }
}

#[derive(Deserialize, Default)]
#[serde(try_from = "String")]
struct Body(BodyMode);

impl TryFrom<String> for Body {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(Body(match s.as_str() {
            "auto" => BodyMode::Auto,
            "exact" => BodyMode::Exact,
            "json" => BodyMode::Json,
            "text" => BodyMode::Text,
            "ignore" => BodyMode::Ignore,
            _ => {
                return Err(format!(
                    "invalid body '{s}' (auto, exact, json, text, ignore)"
                ))
            }
        }))
    }
}

/// Any valid header name (compared or shown, never changed).
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Header(HeaderName);

impl TryFrom<String> for Header {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        HeaderName::from_bytes(s.trim().as_bytes())
            .map(Header)
            .map_err(|_| format!("invalid header name '{s}'"))
    }
}
