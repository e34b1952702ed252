//! The `/shadow` report page on the metrics address: one self-contained HTML document (inline
//! style, no script, no external asset), readable in any browser and in a text one.
//!
//! Endpoints come sorted by difference rate; then the requests not compared, by reason; then,
//! per endpoint, a few example pairs side by side with the differing fields marked.

use super::compare::Kind;
use super::report::{Example, Reason, Report, Row, RowKey, Shown, Totals};
use crate::config::ShadowConfig;
use crate::stats::get;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use std::collections::BTreeSet;
use std::fmt::Write;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2329;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #c9d1d9;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#endpoints td:first-child{white-space:nowrap}
tr.differs td:first-child{border-left:4px solid #d1242f}tr.same td:first-child{border-left:4px solid #1a7f37}
td.diff{background:#fff1e5}mark{background:#ffd8b5;padding:0 .1rem}
.pair td{font-family:ui-monospace,monospace;font-size:.85rem;max-width:40rem;overflow-wrap:anywhere}
.bodies{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
pre{background:#f6f8fa;padding:.5rem;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem}
.muted{color:#57606a}article{margin-bottom:1.5rem}
";

pub fn render(report: &Report, totals: &Totals, cfg: &ShadowConfig) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>spoa-mirror: shadow comparison</title><style>{STYLE}</style></head><body>\n\
         <h1>Shadow comparison</h1>\n"
    );
    summary(&mut h, report, totals, cfg);
    let rows = report.sorted_rows();
    endpoints(&mut h, &rows);
    unpaired(&mut h, report);
    h.push_str("<h2>Examples</h2>\n");
    let mut any = false;
    for ((endpoint, target), row) in &rows {
        if row.examples.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(
            h,
            "<section class=\"endpoint\" id=\"{}\"><h3>{} <span class=\"muted\">on {}</span></h3>",
            attr(&anchor(endpoint, target)),
            text(endpoint),
            text(target)
        );
        for e in row.examples.iter().rev() {
            example(&mut h, e, target);
        }
        h.push_str("</section>\n");
    }
    if !any {
        h.push_str("<p class=\"muted\">No differences so far.</p>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, report: &Report, totals: &Totals, cfg: &ShadowConfig) {
    let compared: u64 = report.rows.values().map(|r| r.compared).sum();
    let different: u64 = report.rows.values().map(Row::different).sum();
    let unpaired: u64 = report.unpaired.values().sum();
    let pct = match compared {
        0 => 0.0,
        n => 100.0 * different as f64 / n as f64,
    };
    let _ = writeln!(
        h,
        "<p id=\"summary\"><strong>{compared}</strong> requests compared, \
         <strong>{different}</strong> with differences ({pct:.1} %), <strong>{unpaired}</strong> \
         not compared. Pending now: {} ({} bytes). Window {}; bodies up to {} bytes.</p>",
        get(&totals.pending),
        get(&totals.memory_bytes),
        humantime::format_duration(cfg.window),
        cfg.max_body,
    );
}

fn anchor(endpoint: &str, target: &str) -> String {
    let mut a: String = format!("{target}-{endpoint}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    a.insert_str(0, "ex-");
    a
}

type RowRef<'a> = (&'a RowKey, &'a Row);

fn endpoints(h: &mut String, rows: &[RowRef<'_>]) {
    h.push_str(
        "<h2>Endpoints</h2>\n<table id=\"endpoints\"><thead><tr><th>Endpoint</th><th>Target</th>\
         <th>Compared</th><th>Different</th><th>Rate</th><th>Status</th><th>Headers</th>\
         <th>Body</th><th>Noise cancelled</th><th>Fields that differ</th></tr></thead><tbody>\n",
    );
    if rows.is_empty() {
        h.push_str("<tr><td colspan=\"10\" class=\"muted\">Nothing compared yet.</td></tr>\n");
    }
    for ((endpoint, target), r) in rows {
        let class = if r.different() > 0 { "differs" } else { "same" };
        let mut fields: Vec<(&String, &u64)> = r.fields.iter().collect();
        fields.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let fields: Vec<String> = fields
            .iter()
            .take(5)
            .map(|(f, n)| format!("<code>{}</code> ({n})", text(f)))
            .collect();
        let name = match r.examples.is_empty() {
            true => text(endpoint).into_owned(),
            false => format!(
                "<a href=\"#{}\">{}</a>",
                attr(&anchor(endpoint, target)),
                text(endpoint)
            ),
        };
        let kind = |k: Kind| r.by_kind.get(k as usize).copied().unwrap_or(0);
        let _ = writeln!(
            h,
            "<tr class=\"{class}\" data-endpoint=\"{}\" data-target=\"{}\"><td>{name}</td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n rate\">{:.1} %</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{}</td></tr>",
            attr(endpoint),
            attr(target),
            text(target),
            r.compared,
            r.different(),
            100.0 * r.rate(),
            kind(Kind::Status),
            kind(Kind::Headers),
            kind(Kind::Body),
            r.noise_cancelled,
            fields.join(", "),
        );
    }
    h.push_str("</tbody></table>\n");
}

fn unpaired(h: &mut String, report: &Report) {
    h.push_str(
        "<h2>Not compared</h2>\n<table id=\"unpaired\"><thead><tr><th>Target</th><th>Reason</th>\
         <th>Requests</th></tr></thead><tbody>\n",
    );
    if report.unpaired.is_empty() {
        h.push_str("<tr><td colspan=\"3\" class=\"muted\">None.</td></tr>\n");
    }
    for ((target, reason), n) in &report.unpaired {
        let _ = writeln!(
            h,
            "<tr data-reason=\"{}\"><td>{}</td><td>{}</td><td class=\"n\">{n}</td></tr>",
            reason.as_str(),
            text(target),
            explain(*reason),
        );
    }
    h.push_str("</tbody></table>\n");
}

fn explain(r: Reason) -> &'static str {
    match r {
        Reason::NoPrimaryResponse => "no primary response within the window",
        Reason::NoMirrorResponse => "the target gave no response (error, timeout, dropped)",
        Reason::Expired => "the target's response did not come within the window",
        Reason::TooLarge => "a body was larger than max-body",
        Reason::Overflow => "too many pending (max-pending or memory)",
        Reason::NoReferenceResponse => "the reference gave no usable response (noise unknown)",
    }
}

fn example(h: &mut String, e: &Example, target: &str) {
    let at = humantime::format_rfc3339_seconds(e.at);
    let _ = writeln!(
        h,
        "<article class=\"example\"><p><code>{}</code> <span class=\"muted\">id {} at {at}</span></p>\
         <table class=\"pair\"><thead><tr><th>Field</th><th>Primary</th><th>{}</th></tr></thead><tbody>",
        text(&e.request),
        text(&e.id),
        text(target),
    );
    let differs = |field: &str| e.diffs.iter().find(|d| d.field == field);
    // Status and every header of either side; the differing ones marked.
    cell_row(
        h,
        "status",
        &e.primary.status.to_string(),
        &e.candidate.status.to_string(),
        differs("status").is_some(),
    );
    let names: BTreeSet<&str> = e
        .primary
        .headers
        .iter()
        .chain(&e.candidate.headers)
        .map(|(n, _)| n.as_str())
        .collect();
    for name in names {
        let field = format!("header:{name}");
        let (p, c) = match differs(&field) {
            Some(d) => (d.primary.clone(), d.other.clone()),
            None => (values(&e.primary, name), values(&e.candidate, name)),
        };
        cell_row(h, &field, &p, &c, differs(&field).is_some());
    }
    for d in e.diffs.iter().filter(|d| d.kind == Kind::Body) {
        cell_row(h, &d.field, &d.primary, &d.other, true);
    }
    let _ = writeln!(
        h,
        "</tbody></table><details><summary>Bodies</summary><div class=\"bodies\">\
         <pre class=\"primary\">{}</pre><pre class=\"candidate\">{}</pre></div></details></article>",
        text(&e.primary.body),
        text(&e.candidate.body),
    );
}

fn values(s: &Shown, name: &str) -> String {
    let v: Vec<&str> = s
        .headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    match v.is_empty() {
        true => "(missing)".to_owned(),
        false => v.join(", "),
    }
}

fn cell_row(h: &mut String, field: &str, primary: &str, other: &str, differs: bool) {
    let cell = |v: &str| match differs {
        true => format!("<td class=\"diff\"><mark>{}</mark></td>", text(v)),
        false => format!("<td>{}</td>", text(v)),
    };
    let _ = writeln!(
        h,
        "<tr class=\"{}\" data-field=\"{}\"><td>{}</td>{}{}</tr>",
        if differs { "differs" } else { "same" },
        attr(field),
        text(field),
        cell(primary),
        cell(other)
    );
}
