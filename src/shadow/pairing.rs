//! The comparator thread: pairs each request's responses by id, compares them once all are
//! in (or the window is over), and reports.
//!
//! ```text
//! Expect (a target took the request) ──┐
//! Mirror (its response, or none)  ─────┼─▶ pending[id] ── all in ──▶ compare ──▶ report, diff file
//! Primary (HAProxy's message)     ─────┘        └── window over ──▶ compare what came, count the rest
//! ```
//!
//! Only this thread touches the pending table, so no lock is taken per message; the report is
//! behind a mutex that the metrics endpoint and the page take briefly.

use super::compare::{cancel_noise, Comparator, FieldDiff};
use super::difflog::DiffLog;
use super::endpoint::Endpoints;
use super::redact::Redactor;
use super::report::{shown, Example, Reason, Report, Totals};
use super::response::Response;
use crate::config::{ShadowConfig, ShadowRole};
use crate::mirror::MirrorRequest;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What the agent tells the comparator. `bytes` is what the message counts against the
/// memory bound while queued (given back when it is processed, or kept while pending).
pub enum Msg {
    /// A target took this request (it has an id).
    Expect {
        request: Arc<MirrorRequest>,
        target: Arc<str>,
        role: ShadowRole,
    },
    Mirror {
        id: Bytes,
        target: Arc<str>,
        response: Option<Response>,
        bytes: u64,
    },
    Primary {
        id: Bytes,
        response: Response,
        bytes: u64,
    },
}

/// How often expired entries are looked for.
const SWEEP: Duration = Duration::from_millis(100);
/// Bytes an entry costs besides its responses (the id, the request line, the map slot).
const ENTRY_OVERHEAD: u64 = 256;

struct Pending {
    created: Instant,
    endpoint: Arc<str>,
    /// `GET /users/42` (query dropped), for examples.
    request: String,
    primary: Option<Response>,
    sides: Vec<Side>,
    /// Counted in `Totals::memory_bytes`.
    bytes: u64,
}

struct Side {
    target: Arc<str>,
    role: ShadowRole,
    state: State,
}

enum State {
    Waiting,
    Answered(Response),
    NoResponse,
}

pub struct Pairing {
    cfg: Arc<ShadowConfig>,
    comparator: Comparator,
    redactor: Redactor,
    endpoints: Endpoints,
    pending: HashMap<Bytes, Pending>,
    report: Arc<Mutex<Report>>,
    totals: Arc<Totals>,
    difflog: Option<DiffLog>,
}

impl Pairing {
    pub fn new(
        cfg: Arc<ShadowConfig>,
        report: Arc<Mutex<Report>>,
        totals: Arc<Totals>,
        difflog: Option<DiffLog>,
    ) -> Pairing {
        Pairing {
            comparator: Comparator::new(&cfg),
            redactor: Redactor::new(&cfg),
            endpoints: Endpoints::new(cfg.endpoints),
            pending: HashMap::new(),
            cfg,
            report,
            totals,
            difflog,
        }
    }

    pub fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Expect {
                request,
                target,
                role,
            } => {
                if let Some(id) = &request.id {
                    let (method, path) = (request.method.as_str(), request.target.path());
                    self.expect(id, target, role, method, path);
                }
            }
            Msg::Mirror {
                id,
                target,
                response,
                bytes,
            } => {
                let kept = match self.pending.get_mut(&id) {
                    Some(p) => match p.sides.iter_mut().find(|s| s.target == target) {
                        Some(side) if matches!(side.state, State::Waiting) => {
                            side.state = match response {
                                Some(r) => State::Answered(r),
                                None => State::NoResponse,
                            };
                            p.bytes = p.bytes.saturating_add(bytes);
                            true
                        }
                        _ => false,
                    },
                    // Late (already expired and counted) or never expected.
                    None => false,
                };
                if !kept {
                    self.release(bytes);
                }
                self.complete_if_ready(&id);
            }
            Msg::Primary {
                id,
                response,
                bytes,
            } => {
                let kept = match self.pending.get_mut(&id) {
                    Some(p) if p.primary.is_none() => {
                        p.primary = Some(response);
                        p.bytes = p.bytes.saturating_add(bytes);
                        true
                    }
                    Some(_) => false,
                    None => {
                        crate::stats::inc(&self.totals.primary_unmatched);
                        false
                    }
                };
                if !kept {
                    self.release(bytes);
                }
                self.complete_if_ready(&id);
            }
        }
    }

    fn release(&self, bytes: u64) {
        crate::stats::sub(&self.totals.memory_bytes, bytes);
    }

    fn expect(&mut self, id: &Bytes, target: Arc<str>, role: ShadowRole, method: &str, path: &str) {
        let side = Side {
            target: Arc::clone(&target),
            role,
            state: State::Waiting,
        };
        if let Some(p) = self.pending.get_mut(id) {
            if !p.sides.iter().any(|s| s.target == target) {
                p.sides.push(side);
            }
            return;
        }
        let full = self.pending.len() >= self.cfg.max_pending
            || crate::stats::get(&self.totals.memory_bytes).saturating_add(ENTRY_OVERHEAD)
                > u64::try_from(self.cfg.max_memory).unwrap_or(u64::MAX);
        if full {
            if role == ShadowRole::Candidate {
                self.lock().unpaired(&target, Reason::Overflow);
            }
            return;
        }
        crate::stats::add(&self.totals.memory_bytes, ENTRY_OVERHEAD);
        let endpoint = self.endpoints.name(method, path);
        let path = path.split(['?', '#']).next().unwrap_or("");
        // A copy: the id is a slice of a frame buffer, and the entry may wait the window.
        self.pending.insert(
            Bytes::copy_from_slice(id),
            Pending {
                created: Instant::now(),
                endpoint,
                request: format!("{method} {}", path.get(..200).unwrap_or(path)),
                primary: None,
                sides: vec![side],
                bytes: ENTRY_OVERHEAD,
            },
        );
        crate::stats::inc(&self.totals.pending);
    }

    fn complete_if_ready(&mut self, id: &Bytes) {
        let ready = self.pending.get(id).is_some_and(|p| {
            p.primary.is_some() && p.sides.iter().all(|s| !matches!(s.state, State::Waiting))
        });
        if ready {
            if let Some(p) = self.pending.remove(id) {
                self.resolve(id, p);
            }
        }
    }

    /// Resolves every entry older than the window with what it has.
    pub fn sweep(&mut self) {
        let window = self.cfg.window;
        let expired: Vec<Bytes> = self
            .pending
            .iter()
            .filter(|(_, p)| p.created.elapsed() >= window)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                self.resolve(&id, p);
            }
        }
    }

    /// Compares what an entry has and reports; counts what is missing.
    fn resolve(&mut self, id: &Bytes, p: Pending) {
        crate::stats::dec(&self.totals.pending);
        self.release(p.bytes);
        let Pending {
            endpoint,
            request,
            primary,
            sides,
            ..
        } = p;
        let candidates = sides.iter().filter(|s| s.role == ShadowRole::Candidate);
        let Some(primary) = primary else {
            let mut report = self.lock();
            for side in candidates {
                report.unpaired(&side.target, Reason::NoPrimaryResponse);
            }
            return;
        };
        // The reference, if it took this request: its differences from the primary are noise.
        // One that took it but gave nothing usable leaves the noise unknown: the candidates'
        // responses are then not judged (a timestamp would count as a difference).
        let reference = sides.iter().find(|s| s.role == ShadowRole::Reference);
        let (noise, reference_failed) = match reference.map(|s| &s.state) {
            None => (None, false),
            Some(State::Answered(r)) if !r.too_large && !primary.too_large => {
                (Some(self.comparator.diff(&primary, r)), false)
            }
            Some(_) => (None, true),
        };
        for side in sides.iter().filter(|s| s.role == ShadowRole::Candidate) {
            let outcome = match &side.state {
                State::Waiting => Err(Reason::Expired),
                State::NoResponse => Err(Reason::NoMirrorResponse),
                State::Answered(r) if r.too_large || primary.too_large => Err(Reason::TooLarge),
                State::Answered(_) if reference_failed => Err(Reason::NoReferenceResponse),
                State::Answered(r) => Ok(r),
            };
            match outcome {
                Err(reason) => self.lock().unpaired(&side.target, reason),
                Ok(candidate) => {
                    let diffs = self.comparator.diff(&primary, candidate);
                    let (real, cancelled) = cancel_noise(diffs, noise.as_deref());
                    self.report(
                        id, &endpoint, &request, side, &primary, candidate, real, cancelled,
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        id: &Bytes,
        endpoint: &Arc<str>,
        request: &str,
        side: &Side,
        primary: &Response,
        candidate: &Response,
        diffs: Vec<FieldDiff>,
        cancelled: usize,
    ) {
        let example = (!diffs.is_empty()).then(|| {
            let redact = |n: &str| self.redactor.header(n);
            let body = |b: &[u8]| self.redactor.body(b);
            Example {
                id: String::from_utf8_lossy(id).into_owned(),
                at: SystemTime::now(),
                request: request.to_owned(),
                diffs: diffs.iter().map(|d| self.redactor.diff(d)).collect(),
                primary: shown(primary, &redact, &body),
                candidate: shown(candidate, &redact, &body),
            }
        });
        if let (Some(log), Some(e)) = (self.difflog.as_mut(), &example) {
            log.write(&diff_line(e, endpoint, &side.target));
        }
        self.lock().compared(
            endpoint,
            &side.target,
            &diffs,
            cancelled,
            example,
            self.cfg.examples,
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Report> {
        // A panic while the report was held cannot leave it half-updated in a way that
        // matters (counters only): go on with it.
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&mut self) {
        if let Some(log) = self.difflog.as_mut() {
            log.flush();
        }
    }
}

/// One line of the diff file.
fn diff_line(e: &Example, endpoint: &str, target: &str) -> String {
    let side = |s: &super::report::Shown| {
        serde_json::json!({
            "status": s.status,
            "headers": s.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
            "body": s.body,
        })
    };
    serde_json::json!({
        "time": humantime::format_rfc3339_millis(e.at).to_string(),
        "id": e.id,
        "target": target,
        "endpoint": endpoint,
        "request": e.request,
        "differences": e.diffs.iter().map(|d| serde_json::json!({
            "field": d.field,
            "kind": d.kind.as_str(),
            "primary": d.primary,
            "candidate": d.other,
        })).collect::<Vec<_>>(),
        "primary": side(&e.primary),
        "candidate": side(&e.candidate),
    })
    .to_string()
}

/// The thread: handle messages as they come, sweep for expired entries, flush the diff file
/// after each batch. Ends when every sender is gone.
pub fn run(mut pairing: Pairing, rx: Receiver<Msg>) {
    let mut last_sweep = Instant::now();
    loop {
        match rx.recv_timeout(SWEEP) {
            Ok(msg) => {
                pairing.handle(msg);
                // The rest of the batch, bounded so that sweeping is never starved.
                for msg in rx.try_iter().take(1024) {
                    pairing.handle(msg);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                pairing.flush();
                return;
            }
        }
        if last_sweep.elapsed() >= SWEEP {
            pairing.sweep();
            last_sweep = Instant::now();
        }
        pairing.flush();
    }
}

#[cfg(test)]
mod tests;
