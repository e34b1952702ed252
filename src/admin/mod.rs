//! The run-time control endpoint (`--admin-address`, off unless asked): HTTP/1.1, JSON.
//!
//! ```text
//! GET    /                          the list of endpoints (text)
//! GET    /config                    the effective configuration (no secrets)
//! GET    /targets                   every target's state: pause, policy in force, counters
//! GET    /targets/NAME              one target's state
//! POST   /pause, /resume            mirroring for every target
//! POST   /targets/NAME/pause        ... /resume: one target
//! PUT    /targets/NAME/sample       {"percent": P}: mirror P % (0..=100) of its requests
//! DELETE /targets/NAME/sample       no sampling: every request
//! PUT    /targets/NAME/rate         {"per-second": R, "burst": B}: cap its rate (B defaults to R)
//! DELETE /targets/NAME/rate         no rate cap
//! POST   /targets/NAME/reset        the configured sampling and rate cap again
//! ```
//!
//! It acts on the engine through the [`Mirror`] handle `app/` passes in, never through
//! globals. Every change is logged (target `spoa_mirror::admin`) with the peer's address and
//! the value before and after, and counted (`admin_changes_total`). A bad value is a 400 with
//! the reason, an unknown target a 404, a wrong method a 405 with `Allow`. There is no
//! authentication: bind it to a loopback address.
//!
//! Bounds: [`MAX_CONNECTIONS`] connections at once (more are closed at once and counted),
//! request bodies of at most [`MAX_BODY`] bytes, 10 s to send a request head.

mod view;

use crate::config::{Config, RateCap};
use crate::mirror::{ControlError, Mirror};
use crate::stats::{inc, Stats};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Admin connections open at once; more are closed at once (`admin_connections_refused_total`).
pub const MAX_CONNECTIONS: usize = 16;
/// The largest request body read (the JSON of a change is a few dozen bytes).
pub const MAX_BODY: usize = 4096;

/// What the endpoint acts on and shows.
#[derive(Clone)]
pub struct Admin {
    config: Arc<Config>,
    /// `None` when nothing is mirrored (no `-u`, no `--config`).
    mirror: Option<Mirror>,
    stats: Arc<Stats>,
}

impl Admin {
    pub fn new(config: Arc<Config>, mirror: Option<Mirror>, stats: Arc<Stats>) -> Admin {
        Admin {
            config,
            mirror,
            stats,
        }
    }
}

/// Serves the endpoint until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, admin: Admin, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("admin: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            inc(&admin.stats.admin_connections_refused_total);
            drop(stream);
            continue;
        };
        let (admin, shutdown) = (admin.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(admin.respond(peer, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = conn => if let Err(e) = r { tracing::debug!("admin: connection: {e}") },
            }
        });
    }
}

type Reply = Response<Full<Bytes>>;

/// An answer that is not a 200: its status and the reason.
struct Refusal(StatusCode, String);

impl Refusal {
    fn bad(text: impl Into<String>) -> Refusal {
        Refusal(StatusCode::BAD_REQUEST, text.into())
    }
}

impl From<ControlError> for Refusal {
    fn from(e: ControlError) -> Refusal {
        let status = match e {
            ControlError::UnknownTarget(_) => StatusCode::NOT_FOUND,
            ControlError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        Refusal(status, e.to_string())
    }
}

/// What a path names, and the methods it takes.
enum Route<'a> {
    Index,
    Config,
    Targets,
    Target(&'a str),
    Pause(bool),
    TargetPause(&'a str, bool),
    Sample(&'a str),
    Rate(&'a str),
    Reset(&'a str),
}

impl Route<'_> {
    fn parse(path: &str) -> Option<Route<'_>> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        Some(match parts.as_slice() {
            [] | [""] => Route::Index,
            ["config"] => Route::Config,
            ["targets"] => Route::Targets,
            ["pause"] => Route::Pause(true),
            ["resume"] => Route::Pause(false),
            ["targets", name] => Route::Target(name),
            ["targets", name, "pause"] => Route::TargetPause(name, true),
            ["targets", name, "resume"] => Route::TargetPause(name, false),
            ["targets", name, "sample"] => Route::Sample(name),
            ["targets", name, "rate"] => Route::Rate(name),
            ["targets", name, "reset"] => Route::Reset(name),
            _ => return None,
        })
    }

    fn allowed(&self) -> &'static str {
        match self {
            Route::Index | Route::Config | Route::Targets | Route::Target(_) => "GET, HEAD",
            Route::Pause(_) | Route::TargetPause(..) | Route::Reset(_) => "POST",
            Route::Sample(_) | Route::Rate(_) => "PUT, DELETE",
        }
    }
}

/// `PUT /targets/NAME/sample`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleBody {
    percent: f64,
}

/// `PUT /targets/NAME/rate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RateBody {
    per_second: u64,
    burst: Option<u64>,
}

const INDEX: &str = "\
spoa-mirror run-time control
GET    /config                   effective configuration (JSON, no secrets)
GET    /targets                  every target's state
GET    /targets/NAME             one target's state
POST   /pause | /resume          mirroring for every target
POST   /targets/NAME/pause       ... /resume: one target
PUT    /targets/NAME/sample      {\"percent\": 0..100}
DELETE /targets/NAME/sample      no sampling
PUT    /targets/NAME/rate        {\"per-second\": R, \"burst\": B}
DELETE /targets/NAME/rate        no rate cap
POST   /targets/NAME/reset       configured sampling and rate cap again
";

impl Admin {
    async fn respond(&self, peer: SocketAddr, req: Request<Incoming>) -> Reply {
        inc(&self.stats.admin_requests_total);
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let Some(route) = Route::parse(path) else {
            return error(Refusal(
                StatusCode::NOT_FOUND,
                format!("no such endpoint: {path} (GET / lists them)"),
            ));
        };
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(Refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {MAX_BODY} bytes, or cut short"),
                ))
            }
        };
        let reading = parts.method == Method::GET || parts.method == Method::HEAD;
        let result = match (&parts.method, route) {
            (_, Route::Index) if reading => {
                return reply(StatusCode::OK, "text/plain; charset=utf-8", INDEX.into())
            }
            (_, Route::Config) if reading => Ok(view::config(&self.config, self.mirror.as_ref())),
            (_, Route::Targets) if reading => Ok(serde_json::Value::Array(
                self.targets().iter().map(view::target_state).collect(),
            )),
            (_, Route::Target(name)) if reading => self.target(name),
            (&Method::POST, Route::Pause(paused)) => self.pause_all(peer, paused),
            (&Method::POST, Route::TargetPause(name, paused)) => {
                self.pause_target(peer, name, paused)
            }
            (&Method::PUT, Route::Sample(name)) => match parse::<SampleBody>(&body) {
                Ok(b) => self.sample(peer, name, Some(b.percent)),
                Err(e) => Err(e),
            },
            (&Method::DELETE, Route::Sample(name)) => self.sample(peer, name, None),
            (&Method::PUT, Route::Rate(name)) => {
                match parse::<RateBody>(&body).and_then(rate_cap) {
                    Ok(cap) => self.rate(peer, name, Some(cap)),
                    Err(e) => Err(e),
                }
            }
            (&Method::DELETE, Route::Rate(name)) => self.rate(peer, name, None),
            (&Method::POST, Route::Reset(name)) => self.reset(peer, name),
            (method, route) => {
                let mut r = error(Refusal(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} not allowed on {path}: {}", route.allowed()),
                ));
                r.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(route.allowed()));
                return r;
            }
        };
        match result {
            Ok(json) => reply(
                StatusCode::OK,
                "application/json",
                format!("{json:#}\n").into(),
            ),
            Err(refusal) => error(refusal),
        }
    }

    fn targets(&self) -> Vec<crate::mirror::TargetView> {
        self.mirror
            .as_ref()
            .map(Mirror::targets)
            .unwrap_or_default()
    }

    fn mirror(&self) -> Result<&Mirror, Refusal> {
        self.mirror.as_ref().ok_or_else(|| {
            Refusal(
                StatusCode::CONFLICT,
                "nothing is mirrored (no -u, no --config): no targets to change".into(),
            )
        })
    }

    fn target(&self, name: &str) -> Result<serde_json::Value, Refusal> {
        self.targets()
            .iter()
            .find(|t| t.name == name)
            .map(view::target_state)
            .ok_or_else(|| ControlError::UnknownTarget(name.to_owned()).into())
    }

    /// Logs and counts a change made by `peer`.
    fn changed(&self, peer: SocketAddr, what: &str) {
        inc(&self.stats.admin_changes_total);
        info!(target: "spoa_mirror::admin", "admin: {peer}: {what}");
    }

    fn pause_all(&self, peer: SocketAddr, paused: bool) -> Result<serde_json::Value, Refusal> {
        let was = self.mirror()?.set_paused(paused);
        self.changed(
            peer,
            &format!(
                "mirroring for every target {} -> {}",
                state(was),
                state(paused)
            ),
        );
        Ok(serde_json::json!({ "paused": paused, "was-paused": was }))
    }

    fn pause_target(
        &self,
        peer: SocketAddr,
        name: &str,
        paused: bool,
    ) -> Result<serde_json::Value, Refusal> {
        let was = self.mirror()?.set_target_paused(name, paused)?;
        self.changed(
            peer,
            &format!("target '{name}' {} -> {}", state(was), state(paused)),
        );
        self.target(name)
    }

    fn sample(
        &self,
        peer: SocketAddr,
        name: &str,
        percent: Option<f64>,
    ) -> Result<serde_json::Value, Refusal> {
        let c = self.mirror()?.set_sample(name, percent)?;
        self.changed(
            peer,
            &format!(
                "target '{name}' sample {} -> {}",
                view::sample_text(c.old.sample.as_ref()),
                view::sample_text(c.new.sample.as_ref())
            ),
        );
        self.target(name)
    }

    fn rate(
        &self,
        peer: SocketAddr,
        name: &str,
        cap: Option<RateCap>,
    ) -> Result<serde_json::Value, Refusal> {
        let c = self.mirror()?.set_rate(name, cap)?;
        self.changed(
            peer,
            &format!(
                "target '{name}' rate {} -> {}",
                view::rate_text(c.old.rate.as_ref()),
                view::rate_text(c.new.rate.as_ref())
            ),
        );
        self.target(name)
    }

    fn reset(&self, peer: SocketAddr, name: &str) -> Result<serde_json::Value, Refusal> {
        let c = self.mirror()?.reset_policy(name)?;
        self.changed(
            peer,
            &format!(
                "target '{name}' reset to the configuration: sample {} -> {}, rate {} -> {}",
                view::sample_text(c.old.sample.as_ref()),
                view::sample_text(c.new.sample.as_ref()),
                view::rate_text(c.old.rate.as_ref()),
                view::rate_text(c.new.rate.as_ref())
            ),
        );
        self.target(name)
    }
}

fn state(paused: bool) -> &'static str {
    match paused {
        true => "paused",
        false => "running",
    }
}

/// The JSON body of a change, or a 400 that says what is expected.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::bad(
            "a JSON body is needed, e.g. {\"percent\": 10} or {\"per-second\": 100, \"burst\": 100}",
        ));
    }
    serde_json::from_slice(body).map_err(|e| Refusal::bad(format!("invalid JSON body: {e}")))
}

/// A rate cap from its JSON: both numbers in 1..=2^32-1.
fn rate_cap(b: RateBody) -> Result<RateCap, Refusal> {
    let positive = |what: &str, n: u64| {
        u32::try_from(n)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| Refusal::bad(format!("{what} {n} is out of range [1, {}]", u32::MAX)))
    };
    let per_second = positive("per-second", b.per_second)?;
    let burst = match b.burst {
        Some(n) => positive("burst", n)?,
        None => RateCap::default_burst(per_second),
    };
    Ok(RateCap { per_second, burst })
}

fn error(Refusal(status, text): Refusal) -> Reply {
    let body = serde_json::json!({ "error": text });
    reply(status, "application/json", format!("{body}\n").into())
}

fn reply(status: StatusCode, ctype: &'static str, body: Bytes) -> Reply {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}
