//! Shadow comparison (the `[shadow]` table of `--config`, and `compare` on a target): which
//! responses are paired, how long a pair may wait, what a comparison ignores, and where the
//! differences go.

use http::HeaderName;
use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;

/// What a target's responses are for, when it takes part in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowRole {
    /// The new version: its responses are compared with the primary's.
    Candidate,
    /// The same version as production: a field that differs between it and the primary is
    /// noise (it changes on every request) and never counts against a candidate.
    Reference,
}

impl ShadowRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowRole::Candidate => "candidate",
            ShadowRole::Reference => "reference",
        }
    }
}

/// How bodies are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyMode {
    /// JSON when the primary says `json` in its Content-Type and both sides parse; else text
    /// (with the masks) when both are UTF-8; else byte for byte.
    #[default]
    Auto,
    /// Byte for byte.
    Exact,
    /// Structurally; a side that does not parse is compared byte for byte.
    Json,
    /// As text, after the masks.
    Text,
    /// Bodies are not compared.
    Ignore,
}

/// One step of a place in a JSON document: `$.a[2].b` is `Key("a"), Index(2), Key("b")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
    /// An element of an array compared without regard to order (no index means anything).
    AnyIndex,
}

/// A pattern over JSON paths: `$.meta.generated_at`, `$.items[*].id`, `$.*.id`,
/// `$..request_id` (`..`: at any depth). A pattern that matches a path also covers
/// everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPattern {
    text: String,
    segs: Vec<PatSeg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatSeg {
    Key(String),
    Index(usize),
    AnyKey,
    AnyIndex,
    /// Zero or more steps.
    Deep,
}

impl JsonPattern {
    /// Patterns longer than this are refused (a config file is read once, but never trust it).
    const MAX_LEN: usize = 512;
    const MAX_DEEP: usize = 4;

    pub fn parse(text: &str) -> Result<JsonPattern, String> {
        let bad = |why: &str| format!("invalid JSON path '{text}': {why}");
        if text.len() > JsonPattern::MAX_LEN {
            return Err(bad("too long"));
        }
        let mut rest = text
            .strip_prefix('$')
            .ok_or_else(|| bad("must start with $"))?;
        let mut segs = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("..") {
                segs.push(PatSeg::Deep);
                let (key, r) = split_key(r);
                if key.is_empty() {
                    return Err(bad("a name must follow .."));
                }
                segs.push(key_seg(key));
                rest = r;
            } else if let Some(r) = rest.strip_prefix('.') {
                let (key, r) = split_key(r);
                if key.is_empty() {
                    return Err(bad("empty name after ."));
                }
                segs.push(key_seg(key));
                rest = r;
            } else if let Some(r) = rest.strip_prefix('[') {
                let (inside, r) = r.split_once(']').ok_or_else(|| bad("[ without ]"))?;
                segs.push(match inside {
                    "*" => PatSeg::AnyIndex,
                    n => PatSeg::Index(n.parse().map_err(|_| bad("[...] takes a number or *"))?),
                });
                rest = r;
            } else {
                return Err(bad("expected . or [ after a step"));
            }
        }
        // Each `..` tries every depth below it: a few keep matching cheap.
        if segs.iter().filter(|s| **s == PatSeg::Deep).count() > JsonPattern::MAX_DEEP {
            return Err(bad("more than 4 .."));
        }
        Ok(JsonPattern {
            text: text.to_owned(),
            segs,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches `path` itself (then it covers what lies below, too).
    pub fn matches(&self, path: &[PathSeg]) -> bool {
        match_from(&self.segs, path)
    }
}

fn split_key(s: &str) -> (&str, &str) {
    let end = s.find(['.', '[']).unwrap_or(s.len());
    s.split_at(end)
}

fn key_seg(key: &str) -> PatSeg {
    match key {
        "*" => PatSeg::AnyKey,
        k => PatSeg::Key(k.to_owned()),
    }
}

/// Pattern steps against path steps; `Deep` tries every split. Patterns are short and paths
/// are bounded by the document's depth, so the recursion stays small.
fn match_from(pat: &[PatSeg], path: &[PathSeg]) -> bool {
    let Some((first, pat_rest)) = pat.split_first() else {
        return path.is_empty();
    };
    if *first == PatSeg::Deep {
        return (0..=path.len())
            .any(|skip| path.get(skip..).is_some_and(|p| match_from(pat_rest, p)));
    }
    let Some((step, path_rest)) = path.split_first() else {
        return false;
    };
    let ok = match (first, step) {
        (PatSeg::Key(k), PathSeg::Key(s)) => k == s,
        (PatSeg::AnyKey, PathSeg::Key(_)) => true,
        (PatSeg::Index(i), PathSeg::Index(j)) => i == j,
        (PatSeg::AnyIndex, PathSeg::Index(_) | PathSeg::AnyIndex) => true,
        _ => false,
    };
    ok && match_from(pat_rest, path_rest)
}

/// The `[shadow]` table, checked.
#[derive(Debug, Clone)]
pub struct ShadowConfig {
    /// The SPOE message that carries the primary's response.
    pub message: String,
    /// How long a request waits for its responses (the primary's and each target's).
    pub window: Duration,
    /// Requests waiting for their responses at once; beyond, a new one is not compared.
    pub max_pending: usize,
    /// Bytes of waiting responses (and of responses on their way to the comparator).
    pub max_memory: usize,
    /// A response whose body is larger is not compared (counted `too_large`).
    pub max_body: usize,
    /// Responses on their way to the comparator (a bounded queue; past it they are dropped).
    pub queue: usize,
    /// Headers never compared, besides [`ShadowConfig::DEFAULT_IGNORED_HEADERS`].
    pub ignore_headers: Vec<HeaderName>,
    /// JSON fields never compared.
    pub ignore_json: Vec<JsonPattern>,
    /// Arrays compared as multisets (order ignored).
    pub ignore_array_order: bool,
    /// Text bodies: each match is replaced by the same mask on both sides before comparing.
    pub text_masks: Vec<Regex>,
    pub body: BodyMode,
    /// Endpoints with their own series; the rest count under `other`.
    pub endpoints: usize,
    /// Example pairs kept per endpoint and target.
    pub examples: usize,
    /// Differences are appended here, one JSON object per line.
    pub diff_file: Option<PathBuf>,
    /// The diff file is rotated (one older file kept, `.1`) past this size.
    pub diff_file_size: u64,
    /// Header values shown as `[redacted]` in the diff file and the report, besides
    /// [`ShadowConfig::DEFAULT_REDACTED_HEADERS`].
    pub redact_headers: Vec<HeaderName>,
    /// JSON fields shown as `[redacted]`.
    pub redact_json: Vec<JsonPattern>,
}

impl ShadowConfig {
    pub const DEFAULT_MESSAGE: &'static str = "mirror-response";
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15);
    pub const DEFAULT_MAX_PENDING: usize = 10_000;
    pub const DEFAULT_MAX_MEMORY: usize = 64 * 1024 * 1024;
    pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
    pub const DEFAULT_QUEUE: usize = 4096;
    pub const DEFAULT_ENDPOINTS: usize = 100;
    pub const DEFAULT_EXAMPLES: usize = 3;
    pub const DEFAULT_DIFF_FILE_SIZE: u64 = 64 * 1024 * 1024;
    /// Headers that differ between any two servers or any two requests.
    pub const DEFAULT_IGNORED_HEADERS: &'static [&'static str] = &[
        "date",
        "server",
        "set-cookie",
        "etag",
        "last-modified",
        "expires",
        "age",
        "via",
        "x-request-id",
        "x-correlation-id",
        "x-trace-id",
        "x-amzn-trace-id",
        "request-id",
        "traceparent",
        "tracestate",
        "x-served-by",
        "x-cache",
        "x-runtime",
        // Framing, not content: a body difference shows under the body.
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
    ];
    /// Never shown as they are.
    pub const DEFAULT_REDACTED_HEADERS: &'static [&'static str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ];

    pub fn new() -> ShadowConfig {
        ShadowConfig {
            message: ShadowConfig::DEFAULT_MESSAGE.to_owned(),
            window: ShadowConfig::DEFAULT_WINDOW,
            max_pending: ShadowConfig::DEFAULT_MAX_PENDING,
            max_memory: ShadowConfig::DEFAULT_MAX_MEMORY,
            max_body: ShadowConfig::DEFAULT_MAX_BODY,
            queue: ShadowConfig::DEFAULT_QUEUE,
            ignore_headers: Vec::new(),
            ignore_json: Vec::new(),
            ignore_array_order: false,
            text_masks: Vec::new(),
            body: BodyMode::Auto,
            endpoints: ShadowConfig::DEFAULT_ENDPOINTS,
            examples: ShadowConfig::DEFAULT_EXAMPLES,
            diff_file: None,
            diff_file_size: ShadowConfig::DEFAULT_DIFF_FILE_SIZE,
            redact_headers: Vec::new(),
            redact_json: Vec::new(),
        }
    }
}

impl ShadowConfig {
    /// One line of the settings (startup log, `--check-config`).
    pub fn describe(&self) -> String {
        let names = |v: &[HeaderName]| {
            v.iter()
                .map(HeaderName::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let patterns = |v: &[JsonPattern]| {
            v.iter()
                .map(JsonPattern::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut s = format!(
            "shadow: message '{}', window {}, at most {} pending in {} bytes, bodies up to {} \
             bytes, body {:?}",
            self.message,
            humantime::format_duration(self.window),
            self.max_pending,
            self.max_memory,
            self.max_body,
            self.body,
        );
        if !self.ignore_headers.is_empty() {
            s.push_str(&format!(", ignore headers {}", names(&self.ignore_headers)));
        }
        if !self.ignore_json.is_empty() {
            s.push_str(&format!(", ignore {}", patterns(&self.ignore_json)));
        }
        if self.ignore_array_order {
            s.push_str(", array order ignored");
        }
        if !self.text_masks.is_empty() {
            s.push_str(&format!(", {} text masks", self.text_masks.len()));
        }
        if let Some(f) = &self.diff_file {
            s.push_str(&format!(
                ", differences to {} (up to {} bytes)",
                f.display(),
                self.diff_file_size
            ));
        }
        s
    }
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<PathSeg> {
        p.iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) => PathSeg::Index(i),
                Err(_) if *s == "*" => PathSeg::AnyIndex,
                Err(_) => PathSeg::Key((*s).to_owned()),
            })
            .collect()
    }

    #[test]
    fn patterns_match_paths() {
        let p = |t: &str| JsonPattern::parse(t).unwrap();
        assert!(p("$.meta.at").matches(&path(&["meta", "at"])));
        assert!(!p("$.meta.at").matches(&path(&["meta"])));
        assert!(!p("$.meta.at").matches(&path(&["meta", "at", "x"])));
        assert!(p("$.items[*].id").matches(&path(&["items", "3", "id"])));
        assert!(p("$.items[*].id").matches(&path(&["items", "*", "id"])));
        assert!(p("$.items[1]").matches(&path(&["items", "1"])));
        assert!(!p("$.items[1]").matches(&path(&["items", "2"])));
        assert!(p("$.*.id").matches(&path(&["a", "id"])));
        assert!(p("$..request_id").matches(&path(&["request_id"])));
        assert!(p("$..request_id").matches(&path(&["a", "0", "b", "request_id"])));
        assert!(!p("$..request_id").matches(&path(&["a", "request"])));
        assert!(p("$").matches(&[]));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "a.b", "$.", "$..", "$[x]", "$[1", "$a", "$.a[1]b"] {
            assert!(JsonPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(JsonPattern::parse(&format!("$.{}", "a".repeat(600))).is_err());
        assert!(JsonPattern::parse("$..a..b..c..d..e").is_err());
    }
}
