//! `--compare`: each replayed response against the response recorded for the same request (a
//! type-2 record with the request's id), with the shadow comparator: a regression test from
//! a recording.
//!
//! Records are read in file order and a request's response record follows it, while the
//! replayed response comes back whenever it does: whichever of the two arrives second is
//! compared at once. Only the responses of requests being replayed are kept (the others are
//! counted at once), so what waits is bounded by the requests in flight; the table of ids
//! being replayed is bounded too, and what cannot be paired is counted.

use crate::config::ShadowConfig;
use crate::mirror::Captured;
use crate::shadow::{endpoint_template, Comparator, FieldDiff, Kind, Response};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Requests being replayed whose pair is not complete, at most.
const MAX_WAITING: usize = 100_000;
/// Endpoints with their own line in the summary; later ones count as `other`.
const MAX_ENDPOINTS: usize = 100;

/// Counts of one endpoint.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub compared: u64,
    pub different: u64,
    /// Pairs with a difference of each kind (`Kind::ALL` order).
    pub by_kind: [u64; 3],
    /// Pairs per differing field.
    pub fields: BTreeMap<String, u64>,
    /// The first differing pair's fields.
    pub example: Option<Vec<FieldDiff>>,
}

/// What the comparison found.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub rows: BTreeMap<String, Row>,
    /// Replayed requests whose recording has no response record.
    pub no_recorded: u64,
    /// Recorded responses whose request was not replayed, or got no response.
    pub not_replayed: u64,
    /// Response records that could not be read.
    pub bad_recorded: u64,
    /// Not paired because a waiting table was full.
    pub overflow: u64,
}

impl Summary {
    /// The comparison's part of the replay summary (stdout).
    pub fn print(&self) {
        println!(
            "compared with the recorded responses: {} pairs, {} different ({:.1} %); {} \
             without a recorded response, {} recorded not replayed, {} bad response records, {} \
             over the pairing bound",
            self.compared(),
            self.different(),
            100.0 * self.rate(),
            self.no_recorded,
            self.not_replayed,
            self.bad_recorded,
            self.overflow
        );
        let mut rows: Vec<(&String, &Row)> = self.rows.iter().collect();
        rows.sort_by(|a, b| b.1.different.cmp(&a.1.different).then(a.0.cmp(b.0)));
        for (endpoint, r) in rows.iter().filter(|(_, r)| r.different > 0) {
            let kinds: Vec<String> = Kind::ALL
                .iter()
                .zip(r.by_kind)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{} {n}", k.as_str()))
                .collect();
            let mut fields: Vec<(&String, &u64)> = r.fields.iter().collect();
            fields.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let fields: Vec<String> = fields
                .iter()
                .take(5)
                .map(|(f, n)| format!("{f} ({n})"))
                .collect();
            println!(
                "  {endpoint}: {} of {} different ({}): {}",
                r.different,
                r.compared,
                kinds.join(", "),
                fields.join(", ")
            );
            if let Some(d) = r.example.as_ref().and_then(|e| e.first()) {
                println!(
                    "    e.g. {}: recorded {} replayed {}",
                    d.field, d.primary, d.other
                );
            }
        }
    }

    pub fn compared(&self) -> u64 {
        self.rows.values().map(|r| r.compared).sum()
    }

    pub fn different(&self) -> u64 {
        self.rows.values().map(|r| r.different).sum()
    }

    /// Differing pairs per compared pair (0 when nothing was compared).
    pub fn rate(&self) -> f64 {
        match self.compared() {
            0 => 0.0,
            n => self.different() as f64 / n as f64,
        }
    }
}

struct State {
    comparator: Comparator,
    /// Ids of the requests being replayed whose pair is not complete: only their recorded
    /// responses are kept (a filtered request's response is counted and dropped at once).
    expected: HashSet<String>,
    /// Record id → the recorded response.
    recorded: HashMap<String, Response>,
    /// Record id → (endpoint, the replayed response).
    replayed: HashMap<String, (String, Response)>,
    summary: Summary,
}

/// Shared by the reader (recorded responses) and the sending tasks (replayed ones).
pub struct Comparison {
    state: Mutex<State>,
    max_body: usize,
}

impl Comparison {
    /// Comparing with `cfg`'s rules (ignored headers, JSON paths, masks, body mode).
    pub fn new(cfg: &ShadowConfig) -> Comparison {
        Comparison {
            state: Mutex::new(State {
                comparator: Comparator::new(cfg),
                expected: HashSet::new(),
                recorded: HashMap::new(),
                replayed: HashMap::new(),
                summary: Summary::default(),
            }),
            max_body: cfg.max_body,
        }
    }

    /// Bodies larger than this are not kept (the pair is then compared without them).
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request with this record id is going to be replayed (it passed the filters).
    pub fn expect(&self, id: &str) {
        let mut s = self.lock();
        match s.expected.len() >= MAX_WAITING {
            true => s.summary.overflow += 1,
            false => {
                s.expected.insert(id.to_owned());
            }
        }
    }

    /// A response record read from the files (its payload: raw HTTP/1.x).
    pub fn recorded(&self, id: &str, payload: &[u8]) {
        if !self.lock().expected.contains(id) {
            // Its request was filtered out, not read, or already paired: nothing to pair.
            self.lock().summary.not_replayed += 1;
            return;
        }
        let Ok(response) = super::payload::parse_response(payload) else {
            let mut s = self.lock();
            s.summary.bad_recorded += 1;
            s.expected.remove(id);
            return;
        };
        let mut s = self.lock();
        match s.replayed.remove(id) {
            Some((endpoint, replayed)) => {
                s.expected.remove(id);
                s.compare(&endpoint, &response, &replayed);
            }
            None => {
                s.recorded.insert(id.to_owned(), response);
            }
        }
    }

    /// A replayed request's response (`None`: it got none).
    pub fn replayed(&self, id: &str, method: &str, path: &str, response: Option<Captured>) {
        let mut s = self.lock();
        let Some(captured) = response else {
            s.expected.remove(id);
            s.recorded.remove(id);
            return;
        };
        if !s.expected.contains(id) {
            return;
        }
        let replayed = Response::from_captured(captured);
        let endpoint = endpoint_template(method, path);
        match s.recorded.remove(id) {
            Some(recorded) => {
                s.expected.remove(id);
                s.compare(&endpoint, &recorded, &replayed);
            }
            None => {
                s.replayed.insert(id.to_owned(), (endpoint, replayed));
            }
        }
    }

    /// The summary, once every request was replayed: what is still waiting is unpaired.
    pub fn finish(&self) -> Summary {
        let mut s = self.lock();
        let mut summary = s.summary.clone();
        summary.no_recorded += s.replayed.len() as u64;
        summary.not_replayed += s.recorded.len() as u64;
        s.replayed.clear();
        s.recorded.clear();
        s.expected.clear();
        summary
    }
}

impl State {
    fn compare(&mut self, endpoint: &str, recorded: &Response, replayed: &Response) {
        let diffs = if recorded.too_large || replayed.too_large {
            // A body over the limit: compare the status and headers only.
            let strip = |r: &Response| Response {
                body: bytes::Bytes::new(),
                ..r.clone()
            };
            self.comparator.diff(&strip(recorded), &strip(replayed))
        } else {
            self.comparator.diff(recorded, replayed)
        };
        let key = match self.summary.rows.contains_key(endpoint)
            || self.summary.rows.len() < MAX_ENDPOINTS
        {
            true => endpoint.to_owned(),
            false => "other".to_owned(),
        };
        let row = self.summary.rows.entry(key).or_default();
        row.compared += 1;
        if diffs.is_empty() {
            return;
        }
        row.different += 1;
        for (i, kind) in Kind::ALL.iter().enumerate() {
            if diffs.iter().any(|d| d.kind == *kind) {
                if let Some(n) = row.by_kind.get_mut(i) {
                    *n += 1;
                }
            }
        }
        for d in &diffs {
            if row.fields.len() < 32 || row.fields.contains_key(&d.field) {
                *row.fields.entry(d.field.clone()).or_default() += 1;
            }
        }
        if row.example.is_none() {
            row.example = Some(diffs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(status: u16, body: &'static str) -> Captured {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        Captured {
            status,
            headers,
            body: bytes::Bytes::from_static(body.as_bytes()),
            too_large: false,
        }
    }

    const RECORDED: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{\"a\": 1}\n";

    #[test]
    fn pairs_in_either_order_and_counts_the_rest() {
        let c = Comparison::new(&ShadowConfig::new());
        for id in ["r1", "r2", "r3", "r4", "r5", "r6"] {
            c.expect(id);
        }
        // A response whose request was filtered out (never expected): counted, not kept.
        c.recorded("r0", RECORDED);
        // Recorded first, then replayed: equal.
        c.recorded("r1", RECORDED);
        c.replayed("r1", "GET", "/users/1", Some(captured(200, r#"{"a":1}"#)));
        // Replayed first, then recorded: different status and body.
        c.replayed("r2", "GET", "/users/2?x", Some(captured(500, r#"{"a":2}"#)));
        c.recorded("r2", RECORDED);
        // Unpaired on either side, a bad record, a request without response.
        c.recorded("r3", RECORDED);
        c.replayed("r4", "GET", "/other", Some(captured(200, "{}")));
        c.recorded("r5", b"garbage");
        c.replayed("r6", "GET", "/users/6", None);
        let s = c.finish();
        let row = &s.rows["GET /users/{id}"];
        assert_eq!((row.compared, row.different), (2, 1));
        assert_eq!(row.by_kind, [1, 0, 1]);
        assert_eq!(row.fields.get("body:$.a"), Some(&1));
        assert_eq!((s.no_recorded, s.not_replayed, s.bad_recorded), (1, 2, 1));
        assert!((s.rate() - 0.5).abs() < 1e-9);
    }
}
