//! Delivering one request to one target's endpoint: build it, send it, read the whole answer
//! (so the connection can be reused), and say what happened.

use super::client;
use super::message::MirrorRequest;
use super::request::{self, Base};
use super::tap::Captured;
use super::Error;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode, Version};
use http_body_util::BodyExt;
use std::time::Duration;

/// Where a target's requests go: a base URL and the pooled client that reaches it.
pub(super) struct Endpoint {
    pub(super) base: Base,
    pub(super) client: client::HttpClient,
    /// `Proxy-Authorization` and `-H` headers when requests go through a forward proxy.
    pub(super) forward_headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests go through a forward proxy, which reads the request's own headers.
    pub(super) forward_proxy: bool,
    /// The whole exchange, connect and reading the response body included.
    pub(super) timeout: Duration,
}

/// What happened to one request.
pub(super) struct Delivery {
    /// The effective URL, for the log line.
    pub(super) url: String,
    pub(super) status: Option<StatusCode>,
    pub(super) version: Option<Version>,
    /// Response body bytes read (and discarded, unless captured).
    pub(super) down: u64,
    pub(super) result: Result<(), Failure>,
    /// The response kept for shadow comparison, when asked for and read to its end.
    pub(super) captured: Option<Captured>,
}

pub(super) enum Failure {
    Connect(String),
    Timeout,
    Other(String),
}

impl Endpoint {
    /// Sends one request and reads its answer; `Err` when no request could be built (nothing
    /// was sent). `capture`: keep the response (bodies up to that many bytes) in
    /// [`Delivery::captured`].
    pub(super) async fn deliver(
        &self,
        req: &MirrorRequest,
        capture: Option<usize>,
    ) -> Result<Delivery, Error> {
        let mut d = Delivery {
            url: String::new(),
            status: None,
            version: None,
            down: 0,
            result: Ok(()),
            captured: None,
        };
        let mut http_req = request::build(req, &self.base, &[])?;
        if self.forward_proxy {
            // The proxy reads these headers itself. The client's Proxy-Authorization was meant
            // for some other proxy: its credentials never go to ours. Our `-U`/`-H` headers
            // replace any the client sent under the same names.
            let headers = http_req.headers_mut();
            headers.remove(http::header::PROXY_AUTHORIZATION);
            for (name, _) in &self.forward_headers {
                headers.remove(name);
            }
            for (name, value) in &self.forward_headers {
                headers.append(name.clone(), value.clone());
            }
        }
        d.url = http_req.uri().to_string();
        let exchange = self.exchange(http_req, &mut d, capture);
        d.result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        };
        Ok(d)
    }

    /// Sends the request and reads the whole response body, so the connection can be reused;
    /// keeps the response when `capture` says so.
    async fn exchange(
        &self,
        req: http::Request<http_body_util::Full<Bytes>>,
        d: &mut Delivery,
        capture: Option<usize>,
    ) -> Result<(), Failure> {
        let response = self.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                Failure::Connect(error_text(&e))
            } else {
                Failure::Other(error_text(&e))
            }
        })?;
        d.status = Some(response.status());
        d.version = Some(response.version());
        let mut kept = capture.map(|_| Captured {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: Bytes::new(),
            too_large: false,
        });
        let limit = capture.unwrap_or(0);
        let mut buf = BytesMut::new();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::Other(error_text(&e)))?;
            if let Some(data) = frame.data_ref() {
                d.down += u64::try_from(data.len()).unwrap_or(u64::MAX);
                if let Some(k) = kept.as_mut().filter(|k| !k.too_large) {
                    if buf.len().saturating_add(data.len()) > limit {
                        // Too large to compare: read on (connection reuse), keep nothing.
                        k.too_large = true;
                        buf = BytesMut::new();
                    } else {
                        buf.extend_from_slice(data);
                    }
                }
            }
        }
        if let Some(k) = kept.as_mut() {
            k.body = buf.freeze();
        }
        d.captured = kept;
        Ok(())
    }
}

/// An error and its sources, `a: b: c`.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_joins_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(error_text(&Outer(io)), "connect failed: refused");
    }
}
