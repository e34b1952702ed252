//! An HTTP application with known answers, for shadow comparison (tests/shadow.rs): the
//! production version, the same version again (a reference), and a candidate that differs on
//! a known set of endpoints. Every answer carries fields that change on every request (a
//! timestamp, a request id), as real services do.
//!
//! | endpoint          | primary and reference              | candidate                       |
//! |-------------------|------------------------------------|---------------------------------|
//! | `GET /users/{n}`  | JSON `name: "user n"`              | `name: "User n"`, keys reordered |
//! | `GET /orders/{n}` | 200 JSON                           | 500 JSON error                  |
//! | `GET /items/{n}`  | `x-api-version: 1`                 | `x-api-version: 2`              |
//! | `GET /static/{n}` | text                               | the same                        |
//! | `GET /big/{n}`    | 100 KiB of JSON                    | the same                        |
//!
//! [`Variant::Same`] answers like the primary everywhere (an identical candidate).

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Primary,
    Reference,
    Candidate,
    /// A candidate that answers like the primary.
    Same,
}

/// The endpoints where the candidate differs, with the kind of difference.
pub const DIFFERING: &[(&str, &str)] = &[
    ("GET /users/{id}", "body"),
    ("GET /orders/{id}", "status"),
    ("GET /items/{id}", "headers"),
];
pub const IDENTICAL: &str = "GET /static/{id}";

/// A running application; stops when dropped.
pub struct App {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl App {
    pub async fn start(variant: Variant) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (count, token) = (Arc::clone(&requests), stop.clone());
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = token.cancelled() => return,
                    s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
                };
                let (count, token) = (Arc::clone(&count), token.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        count.fetch_add(1, Ordering::Relaxed);
                        let resp = answer(variant, req.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
        App {
            addr,
            requests,
            stop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Changes on every request: nanoseconds now, and a counter.
fn volatile() -> (u128, u64) {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (now, N.fetch_add(1, Ordering::Relaxed))
}

fn answer(variant: Variant, path: &str) -> Response<Full<Bytes>> {
    let candidate = variant == Variant::Candidate;
    let mut segs = path.trim_start_matches('/').splitn(2, '/');
    let (kind, n) = (segs.next().unwrap_or(""), segs.next().unwrap_or("0"));
    let (at, rid) = volatile();
    let (status, ctype, body, version) = match kind {
        "users" if candidate => (
            200,
            "application/json",
            format!(r#"{{"request_id":"r{rid}","generated_at":{at},"name":"User {n}","id":{n}}}"#),
            "1",
        ),
        "users" => (
            200,
            "application/json",
            format!(r#"{{"id":{n},"name":"user {n}","generated_at":{at},"request_id":"r{rid}"}}"#),
            "1",
        ),
        "orders" if candidate => (
            500,
            "application/json",
            r#"{"error":"internal"}"#.to_string(),
            "1",
        ),
        "orders" => (
            200,
            "application/json",
            format!(r#"{{"order":{n},"at":{at},"trace":"t{rid}"}}"#),
            "1",
        ),
        "items" => (
            200,
            "application/json",
            format!(r#"{{"item":{n}}}"#),
            if candidate { "2" } else { "1" },
        ),
        "static" => (200, "text/plain", format!("static page {n}\n"), "1"),
        "big" => (
            200,
            "application/json",
            format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(100 * 1024)),
            "1",
        ),
        _ => (404, "text/plain", "not found\n".to_string(), "1"),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    let h = resp.headers_mut();
    h.insert("content-type", ctype.parse().unwrap());
    h.insert("x-api-version", version.parse().unwrap());
    // Different on every request, and ignored by default.
    h.insert("x-request-id", format!("r{rid}").parse().unwrap());
    resp
}
