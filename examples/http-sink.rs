//! A tiny HTTP/1.1 server for benchmarks (scripts/bench-haproxy.sh): answers every request
//! with `200 ok`, counts requests and TCP connections, and prints the counts on SIGTERM /
//! SIGINT or at `GET /stats`.
//!
//! ```text
//! cargo build --release --example http-sink
//! target/release/examples/http-sink 127.0.0.1:8100 [--threads N]
//! curl -s http://127.0.0.1:8100/stats   # requests=N connections=M (the /stats request excluded)
//! ```
//!
//! It serves as HAProxy's primary server and as the mirror sink of the same measurement.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    connections: AtomicU64,
}

impl Counts {
    fn line(&self) -> String {
        format!(
            "requests={} connections={}\n",
            self.requests.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed)
        )
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8100".into());
    let mut threads = 1;
    while let Some(a) = args.next() {
        if a == "--threads" {
            threads = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--threads N");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(serve(addr));
}

async fn serve(addr: String) {
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let counts = Arc::new(Counts::default());
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    loop {
        let (stream, _) = tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        stream.set_nodelay(true).ok();
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let counts = counts.clone();
                async move {
                    if req.uri().path() == "/stats" {
                        // Not counted: the script asks this after the run.
                        counts.connections.fetch_sub(1, Ordering::Relaxed);
                        return Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(
                            counts.line(),
                        ))));
                    }
                    // Read the whole body, as a real server does, so the connection is reused.
                    let _ = req.into_body().collect().await;
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    print!("{}", counts.line());
}
