//! Pure: which fields of two responses differ.
//!
//! A field is `status`, `header:<name>`, `body`, or `body:<JSON path>` (`body:$.items[2].id`)
//! when bodies are compared as JSON: structurally, object key order ignored, numbers compared
//! as values, the ignored paths skipped, arrays optionally as multisets (their elements then
//! show as `[*]`). Text bodies are compared after the masks replaced every match on both sides.
//!
//! Noise cancellation: a field that differs between the primary and the reference (the same
//! version as production) changes by itself, so it does not count against a candidate
//! ([`cancel_noise`]).

use super::response::Response;
use crate::config::{BodyMode, JsonPattern, PathSeg, ShadowConfig};
use regex::Regex;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// The kinds of difference, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Status,
    Headers,
    Body,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Status, Kind::Headers, Kind::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Headers => "headers",
            Kind::Body => "body",
        }
    }
}

/// One differing field, with both sides shown (shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: String,
    pub kind: Kind,
    /// The primary's value (`(missing)` when it has none).
    pub primary: String,
    pub other: String,
    /// For a JSON field, its place (what `field` shows after `body:`); for redaction, which
    /// must not parse the text back (a key may hold `.` or `[`).
    pub json_path: Option<Vec<PathSeg>>,
}

/// Fields reported per pair, at most: the rest of a very different pair adds nothing.
pub const MAX_FIELDS: usize = 50;
/// Longest value shown.
const MAX_SHOWN: usize = 200;
/// Arrays longer than this are compared in order even when order is ignored (matching
/// elements as multisets costs the square of the length).
const MAX_UNORDERED: usize = 256;
/// Element comparisons one pair may spend on unordered arrays; past it, arrays are compared
/// in order (nested unordered arrays would otherwise cost a power of their length).
const MAX_WORK: u64 = 100_000;
const MISSING: &str = "(missing)";

/// The comparison settings of `[shadow]`, ready to use.
pub struct Comparator {
    ignore_headers: HashSet<String>,
    ignore_json: Vec<JsonPattern>,
    any_order: bool,
    masks: Vec<Regex>,
    body: BodyMode,
    /// Element comparisons spent on unordered arrays by the current [`Comparator::diff`].
    work: std::cell::Cell<u64>,
}

impl Comparator {
    pub fn new(cfg: &ShadowConfig) -> Comparator {
        let mut ignore_headers: HashSet<String> = ShadowConfig::DEFAULT_IGNORED_HEADERS
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        ignore_headers.extend(cfg.ignore_headers.iter().map(|h| h.as_str().to_owned()));
        Comparator {
            ignore_headers,
            ignore_json: cfg.ignore_json.clone(),
            any_order: cfg.ignore_array_order,
            masks: cfg.text_masks.clone(),
            body: cfg.body,
            work: std::cell::Cell::new(0),
        }
    }

    /// The fields where `other` differs from `primary`, in a stable order (status, headers
    /// by name, body), at most `MAX_FIELDS` (50).
    pub fn diff(&self, primary: &Response, other: &Response) -> Vec<FieldDiff> {
        self.work.set(0);
        let mut out = Vec::new();
        if primary.status != other.status {
            out.push(FieldDiff {
                field: "status".into(),
                kind: Kind::Status,
                primary: primary.status.to_string(),
                other: other.status.to_string(),
                json_path: None,
            });
        }
        self.headers(primary, other, &mut out);
        self.body(primary, other, &mut out);
        out.truncate(MAX_FIELDS);
        out
    }

    fn headers(&self, a: &Response, b: &Response, out: &mut Vec<FieldDiff>) {
        let (x, y) = (self.header_map(a), self.header_map(b));
        let names: std::collections::BTreeSet<&str> = x.keys().chain(y.keys()).copied().collect();
        for name in names {
            let (vx, vy) = (x.get(name), y.get(name));
            if vx != vy {
                let show = |v: Option<&Vec<&[u8]>>| match v {
                    None => MISSING.to_owned(),
                    Some(vals) => shorten(
                        &vals
                            .iter()
                            .map(|v| String::from_utf8_lossy(v))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                };
                out.push(FieldDiff {
                    field: format!("header:{name}"),
                    kind: Kind::Headers,
                    primary: show(vx),
                    other: show(vy),
                    json_path: None,
                });
            }
        }
    }

    /// Header name → values, without the ignored headers.
    fn header_map<'r>(&self, r: &'r Response) -> BTreeMap<&'r str, Vec<&'r [u8]>> {
        let mut m: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
        for (n, v) in &r.headers {
            if !self.ignore_headers.contains(n) {
                m.entry(n.as_str()).or_default().push(v);
            }
        }
        m
    }

    fn body(&self, a: &Response, b: &Response, out: &mut Vec<FieldDiff>) {
        let json = match self.body {
            BodyMode::Ignore => return,
            BodyMode::Exact => None,
            BodyMode::Text => return self.text(a, b, out),
            BodyMode::Json => parse_both(a, b),
            BodyMode::Auto => {
                let is_json = a.header("content-type").is_some_and(|t| {
                    String::from_utf8_lossy(t)
                        .to_ascii_lowercase()
                        .contains("json")
                });
                match is_json.then(|| parse_both(a, b)).flatten() {
                    Some(both) => Some(both),
                    None if std::str::from_utf8(&a.body).is_ok()
                        && std::str::from_utf8(&b.body).is_ok() =>
                    {
                        return self.text(a, b, out)
                    }
                    None => None,
                }
            }
        };
        match json {
            Some((x, y)) => self.json(&x, &y, &mut Vec::new(), out),
            None if a.body != b.body => out.push(FieldDiff {
                field: "body".into(),
                kind: Kind::Body,
                primary: shorten(&String::from_utf8_lossy(&a.body)),
                other: shorten(&String::from_utf8_lossy(&b.body)),
                json_path: None,
            }),
            None => {}
        }
    }

    fn text(&self, a: &Response, b: &Response, out: &mut Vec<FieldDiff>) {
        let mask = |r: &Response| {
            let mut t = String::from_utf8_lossy(&r.body).into_owned();
            for m in &self.masks {
                t = m.replace_all(&t, "\u{2022}").into_owned();
            }
            t
        };
        let (x, y) = (mask(a), mask(b));
        if x != y {
            // Show both from a little before where they part.
            let at = x
                .char_indices()
                .zip(y.chars())
                .find(|((_, c), d)| c != d)
                .map_or(x.len().min(y.len()), |((i, _), _)| i);
            let from = x
                .char_indices()
                .map(|(i, _)| i)
                .take_while(|&i| i.saturating_add(40) <= at)
                .last()
                .unwrap_or(0);
            out.push(FieldDiff {
                field: "body".into(),
                kind: Kind::Body,
                primary: shorten(x.get(from..).unwrap_or(&x)),
                other: shorten(y.get(from..).unwrap_or(&y)),
                json_path: None,
            });
        }
    }

    fn ignored(&self, path: &[PathSeg]) -> bool {
        self.ignore_json.iter().any(|p| p.matches(path))
    }

    fn json(&self, a: &Value, b: &Value, path: &mut Vec<PathSeg>, out: &mut Vec<FieldDiff>) {
        if out.len() >= MAX_FIELDS || self.ignored(path) {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    path.push(PathSeg::Key(k.clone()));
                    match (x.get(k), y.get(k)) {
                        (Some(va), Some(vb)) => self.json(va, vb, path, out),
                        (va, vb) => self.leaf(va, vb, path, out),
                    }
                    path.pop();
                }
            }
            (Value::Array(x), Value::Array(y))
                if self.any_order
                    && x.len().max(y.len()) <= MAX_UNORDERED
                    && self.work.get() < MAX_WORK =>
            {
                path.push(PathSeg::AnyIndex);
                let same = x.len() == y.len() && self.same_multiset(x, y, path);
                path.pop();
                if !same {
                    self.leaf(Some(a), Some(b), path, out);
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                for i in 0..x.len().max(y.len()) {
                    path.push(PathSeg::Index(i));
                    match (x.get(i), y.get(i)) {
                        (Some(va), Some(vb)) => self.json(va, vb, path, out),
                        (va, vb) => self.leaf(va, vb, path, out),
                    }
                    path.pop();
                }
            }
            (Value::Number(x), Value::Number(y)) => {
                if !same_number(x, y) {
                    self.leaf(Some(a), Some(b), path, out);
                }
            }
            (x, y) if x == y => {}
            (x, y) => self.leaf(Some(x), Some(y), path, out),
        }
    }

    /// Every element of `x` matches a different element of `y` (with the ignored paths).
    fn same_multiset(&self, x: &[Value], y: &[Value], path: &mut Vec<PathSeg>) -> bool {
        let mut used = vec![false; y.len()];
        x.iter().all(|vx| {
            let found = y.iter().zip(used.iter_mut()).find(|(vy, u)| {
                if **u {
                    return false;
                }
                self.work.set(self.work.get().saturating_add(1));
                let mut probe = Vec::new();
                self.json(vx, vy, path, &mut probe);
                probe.is_empty()
            });
            match found {
                Some((_, u)) => {
                    *u = true;
                    true
                }
                None => false,
            }
        })
    }

    fn leaf(
        &self,
        a: Option<&Value>,
        b: Option<&Value>,
        path: &[PathSeg],
        out: &mut Vec<FieldDiff>,
    ) {
        if self.ignored(path) || out.len() >= MAX_FIELDS {
            return;
        }
        let show =
            |v: Option<&Value>| v.map_or_else(|| MISSING.to_owned(), |v| shorten(&v.to_string()));
        out.push(FieldDiff {
            field: format!("body:{}", path_text(path)),
            kind: Kind::Body,
            primary: show(a),
            other: show(b),
            json_path: Some(path.to_vec()),
        });
    }
}

/// Numbers as values: integers exactly (two timestamps in ns a few ns apart differ, though
/// they are the same `f64`), `1` and `1.0` alike.
fn same_number(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    (x.is_f64() || y.is_f64()) && matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
}

/// Both bodies as JSON, if both parse.
fn parse_both(a: &Response, b: &Response) -> Option<(Value, Value)> {
    let x = serde_json::from_slice(&a.body).ok()?;
    let y = serde_json::from_slice(&b.body).ok()?;
    Some((x, y))
}

/// `$.items[2].id`.
fn path_text(path: &[PathSeg]) -> String {
    let mut s = String::from("$");
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
            PathSeg::AnyIndex => s.push_str("[*]"),
        }
    }
    s
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((i, _)) => format!("{}\u{2026}", s.get(..i).unwrap_or(s)),
        None => s.to_owned(),
    }
}

/// A candidate's differences without the noise (the fields where the reference differs from
/// the primary as well); also how many were cancelled.
pub fn cancel_noise(diffs: Vec<FieldDiff>, noise: Option<&[FieldDiff]>) -> (Vec<FieldDiff>, usize) {
    let Some(noise) = noise else {
        return (diffs, 0);
    };
    let noisy: HashSet<&str> = noise.iter().map(|d| d.field.as_str()).collect();
    let before = diffs.len();
    let real: Vec<FieldDiff> = diffs
        .into_iter()
        .filter(|d| !noisy.contains(d.field.as_str()))
        .collect();
    let cancelled = before.saturating_sub(real.len());
    (real, cancelled)
}

#[cfg(test)]
mod tests;
