//! What the comparison found, per endpoint and target: counts, the fields that differ most,
//! and a few example pairs. Written by the comparator thread, read by the metrics endpoint
//! and the `/shadow` page (one short lock each).

use super::compare::{FieldDiff, Kind};
use super::response::Response;
use crate::stats::DescriptorEncoder;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// Why a request's responses were not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// HAProxy's message with the primary's response never came within the window.
    NoPrimaryResponse,
    /// The target's delivery ended without a response (connect error, timeout, reset), or
    /// its request was dropped before it was sent.
    NoMirrorResponse,
    /// The target's response did not come within the window.
    Expired,
    /// A body (primary's or target's) was larger than `max-body`.
    TooLarge,
    /// The pending table was full (`max-pending` or `memory`).
    Overflow,
    /// The reference took the request but gave no usable response: noise could not be told
    /// apart, so the candidate's response was not judged.
    NoReferenceResponse,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoPrimaryResponse => "no_primary_response",
            Reason::NoMirrorResponse => "no_mirror_response",
            Reason::Expired => "expired",
            Reason::TooLarge => "too_large",
            Reason::Overflow => "overflow",
            Reason::NoReferenceResponse => "no_reference_response",
        }
    }
}

/// Counts of one endpoint for one target.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub compared: u64,
    pub equal: u64,
    /// Pairs with at least one difference of that kind (`Kind::ALL` order).
    pub by_kind: [u64; 3],
    /// Pairs where the reference cancelled at least one field.
    pub noise_cancelled: u64,
    /// Pairs per differing field, for the few most frequent (bounded).
    pub fields: BTreeMap<String, u64>,
    /// The latest example pairs with differences.
    pub examples: VecDeque<Example>,
}

impl Row {
    pub fn different(&self) -> u64 {
        self.compared.saturating_sub(self.equal)
    }

    /// Differing pairs per compared pair, 0..=1.
    pub fn rate(&self) -> f64 {
        match self.compared {
            0 => 0.0,
            n => self.different() as f64 / n as f64,
        }
    }
}

/// One side of an example, as shown (redacted, shortened).
#[derive(Debug, Clone)]
pub struct Shown {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One example pair.
#[derive(Debug, Clone)]
pub struct Example {
    pub id: String,
    pub at: SystemTime,
    /// `GET /users/42` (the query dropped).
    pub request: String,
    pub diffs: Vec<FieldDiff>,
    pub primary: Shown,
    pub candidate: Shown,
}

/// Distinct fields counted per row; past it only known fields are counted.
const MAX_FIELDS_PER_ROW: usize = 32;

/// (endpoint, target).
pub type RowKey = (Arc<str>, Arc<str>);

/// Everything found so far.
#[derive(Debug, Default)]
pub struct Report {
    /// (endpoint, target) → counts.
    pub rows: BTreeMap<RowKey, Row>,
    /// (target, reason) → requests not compared.
    pub unpaired: BTreeMap<(Arc<str>, Reason), u64>,
}

impl Report {
    /// One compared pair: `diffs` are the real differences (noise already cancelled).
    pub fn compared(
        &mut self,
        endpoint: &Arc<str>,
        target: &Arc<str>,
        diffs: &[FieldDiff],
        cancelled: usize,
        example: Option<Example>,
        keep: usize,
    ) {
        let row = self
            .rows
            .entry((Arc::clone(endpoint), Arc::clone(target)))
            .or_default();
        row.compared += 1;
        if cancelled > 0 {
            row.noise_cancelled += 1;
        }
        if diffs.is_empty() {
            row.equal += 1;
            return;
        }
        for (i, kind) in Kind::ALL.iter().enumerate() {
            if diffs.iter().any(|d| d.kind == *kind) {
                if let Some(n) = row.by_kind.get_mut(i) {
                    *n += 1;
                }
            }
        }
        for d in diffs {
            if row.fields.len() < MAX_FIELDS_PER_ROW || row.fields.contains_key(&d.field) {
                *row.fields.entry(d.field.clone()).or_default() += 1;
            }
        }
        if let Some(e) = example {
            if keep > 0 {
                while row.examples.len() >= keep {
                    row.examples.pop_front();
                }
                row.examples.push_back(e);
            }
        }
    }

    pub fn unpaired(&mut self, target: &Arc<str>, reason: Reason) {
        *self
            .unpaired
            .entry((Arc::clone(target), reason))
            .or_default() += 1;
    }

    /// Rows sorted for reading: highest difference rate first, then most compared.
    pub fn sorted_rows(&self) -> Vec<(&RowKey, &Row)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| {
            b.1.rate()
                .total_cmp(&a.1.rate())
                .then(b.1.compared.cmp(&a.1.compared))
                .then(a.0.cmp(b.0))
        });
        rows
    }
}

/// Gauges and counters that are not per endpoint.
#[derive(Debug, Default)]
pub struct Totals {
    /// Requests waiting for their responses now, and the bytes held for them (queued
    /// responses included): what `max-pending` and `memory` bound.
    pub pending: AtomicU64,
    pub memory_bytes: AtomicU64,
    /// Responses dropped on their way to the comparator (queue full, memory bound).
    pub dropped: AtomicU64,
    /// The primary's responses for requests no comparing target took (not sampled, filtered,
    /// dropped): normal with sampling.
    pub primary_unmatched: AtomicU64,
    /// Response messages that could not be read (no id, bad status or headers).
    pub invalid_messages: AtomicU64,
    pub diff_lines: AtomicU64,
    pub diff_errors: AtomicU64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Acquire)
}

/// One series: its labels and value.
type Series = (Vec<(&'static str, String)>, u64);

fn family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    series: &[Series],
) -> std::fmt::Result {
    let value_of = |value: u64, metric: MetricEncoder| match kind {
        MetricType::Gauge => {
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)
        }
        _ => ConstCounter::new(value).encode(metric),
    };
    let mut f = encoder.encode_descriptor(name, help, None, kind)?;
    if let [(labels, value)] = series {
        if labels.is_empty() {
            return value_of(*value, f);
        }
    }
    for (labels, value) in series {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        value_of(*value, f.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The `shadow_*` metric families.
#[rustfmt::skip]
pub fn encode(report: &Report, totals: &Totals, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let labels = |(e, t): &RowKey| vec![("endpoint", e.to_string()), ("target", t.to_string())];
    let per_row = |f: fn(&Row) -> u64| -> Vec<Series> {
        report.rows.iter().map(|(k, r)| (labels(k), f(r))).collect()
    };
    let one = |v: &AtomicU64| -> Vec<Series> { vec![(Vec::new(), get(v))] };
    family(encoder, "shadow_compared", "Requests whose primary and target responses were compared.", MetricType::Counter, &per_row(|r| r.compared))?;
    family(encoder, "shadow_equal", "Compared requests without any difference (after noise cancellation).", MetricType::Counter, &per_row(|r| r.equal))?;
    family(encoder, "shadow_different", "Compared requests with at least one difference.", MetricType::Counter, &per_row(Row::different))?;
    family(encoder, "shadow_noise_cancelled", "Compared requests where the reference target cancelled at least one differing field.", MetricType::Counter, &per_row(|r| r.noise_cancelled))?;
    let mut by_kind = Vec::new();
    for (k, r) in &report.rows {
        for (i, kind) in Kind::ALL.iter().enumerate() {
            let mut l = labels(k);
            l.push(("kind", kind.as_str().to_owned()));
            by_kind.push((l, r.by_kind.get(i).copied().unwrap_or(0)));
        }
    }
    family(encoder, "shadow_different_by_kind", "Compared requests with a difference of this kind (status, headers, body).", MetricType::Counter, &by_kind)?;
    let unpaired: Vec<Series> = report.unpaired.iter()
        .map(|((t, reason), n)| (vec![("target", t.to_string()), ("reason", reason.as_str().to_owned())], *n))
        .collect();
    family(encoder, "shadow_unpaired", "Requests a comparing target took whose responses were not compared, by reason.", MetricType::Counter, &unpaired)?;
    family(encoder, "shadow_primary_unmatched", "Primary responses for requests no comparing target took (sampling, rules, drops).", MetricType::Counter, &one(&totals.primary_unmatched))?;
    family(encoder, "shadow_dropped", "Responses dropped on their way to the comparator (queue full or memory bound).", MetricType::Counter, &one(&totals.dropped))?;
    family(encoder, "shadow_invalid_messages", "Response messages that could not be read (no id, bad status or headers).", MetricType::Counter, &one(&totals.invalid_messages))?;
    family(encoder, "shadow_diff_lines", "Lines written to the diff file.", MetricType::Counter, &one(&totals.diff_lines))?;
    family(encoder, "shadow_diff_errors", "Diff file lines lost to a write error.", MetricType::Counter, &one(&totals.diff_errors))?;
    family(encoder, "shadow_pending", "Requests waiting for their responses now (bounded by max-pending).", MetricType::Gauge, &one(&totals.pending))?;
    family(encoder, "shadow_memory_bytes", "Bytes of responses held for comparison now, queued ones included (bounded by memory).", MetricType::Gauge, &one(&totals.memory_bytes))?;
    Ok(())
}

/// A response as shown in an example: redacted headers, body shortened.
pub fn shown(
    r: &Response,
    redact: &dyn Fn(&str) -> bool,
    redact_body: &dyn Fn(&[u8]) -> String,
) -> Shown {
    Shown {
        status: r.status,
        headers: r
            .headers
            .iter()
            .map(|(n, v)| {
                let v = match redact(n) {
                    true => crate::config::Rules::REDACTED.to_owned(),
                    false => String::from_utf8_lossy(v).into_owned(),
                };
                (n.clone(), v)
            })
            .collect(),
        body: redact_body(&r.body),
    }
}
