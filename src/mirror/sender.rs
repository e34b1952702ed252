//! One endpoint on its own, outside the engine: what the replay tool sends with. The same
//! client (TLS, proxy, `-I`/`-P`), request builder and timeout as a target's deliveries.

use super::client;
use super::delivery::{Endpoint, Failure};
use super::message::MirrorRequest;
use super::request::Base;
use super::tap::Captured;
use super::Error;
use crate::config::MirrorConfig;
use http::uri::Authority;
use http::StatusCode;
use std::sync::Arc;

/// Sends requests to one URL.
pub struct Sender {
    endpoint: Endpoint,
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// A response, read to its end.
    Status(StatusCode),
    Connect(String),
    Timeout,
    /// Any other failure (reset, bad answer, body cut short).
    Other(String),
}

impl Sender {
    /// A client for `cfg`'s URL, with its timeouts, TLS and proxy settings. Must be called
    /// inside a tokio runtime.
    pub fn new(cfg: &MirrorConfig) -> Result<Sender, Error> {
        if cfg.concurrency == 0 {
            return Err(Error::Limits);
        }
        let base = Base::from_uri(&cfg.url)?;
        let built = client::build(cfg, Arc::new(crate::stats::TargetStats::default()))?;
        Ok(Sender {
            endpoint: Endpoint {
                base,
                client: built.client,
                forward_headers: built.forward_headers,
                forward_proxy: built.forward_proxy,
                timeout: cfg.timeout,
            },
        })
    }

    /// The URL's authority (for `host = "target"`).
    pub fn authority(&self) -> &Authority {
        &self.endpoint.base.authority
    }

    /// Sends one request and reads its answer; `Err` when no request could be built.
    pub async fn send(&self, req: &MirrorRequest) -> Result<Sent, Error> {
        self.send_capture(req, None).await.map(|(sent, _)| sent)
    }

    /// [`Sender::send`], keeping the response (bodies up to `capture` bytes) when asked.
    pub async fn send_capture(
        &self,
        req: &MirrorRequest,
        capture: Option<usize>,
    ) -> Result<(Sent, Option<Captured>), Error> {
        let d = self.endpoint.deliver(req, capture).await?;
        let captured = d.captured;
        let sent = match (d.result, d.status) {
            (Ok(()), Some(s)) => Sent::Status(s),
            (Ok(()), None) => Sent::Other("no response".into()),
            (Err(Failure::Connect(e)), _) => Sent::Connect(e),
            (Err(Failure::Timeout), _) => Sent::Timeout,
            (Err(Failure::Other(e)), _) => Sent::Other(e),
        };
        Ok((sent, captured))
    }
}
