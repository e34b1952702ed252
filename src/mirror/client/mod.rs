//! The pooled HTTP client of one mirror target and the connectors under it.
//!
//! ```text
//! legacy::Client ─ HttpsConnector (rustls; http:// passes through) ─ Dial ─ Tcp
//!                                                                     │      ├ HttpConnector (-I)
//!                                                                     │      └ PortRange (-P, -I)
//!                                                                     ├ Direct
//!                                                                     ├ Forward: http:// mirror via proxy, absolute-form
//!                                                                     └ Tunnel: https:// mirror via proxy CONNECT
//! ```
//!
//! The proxy decision (`-x`, `-N`) is taken once at startup: the agent only ever connects to
//! the `-u` host, so no request can pick another route.
//!
//! Here: `build` and the route (`Dial`, `Conn`). [`tls`]: the rustls configuration.
//! [`proxy`]: the proxy decision and its headers. [`connect`]: `Tcp`, new connections with the
//! `-I`/`-P` socket options.

mod connect;
mod proxy;
mod tls;

use super::Error;
use crate::config::MirrorConfig;
use crate::stats::TargetStats;
use bytes::Bytes;
use connect::Tcp;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

pub type HttpClient = Client<HttpsConnector<Dial>, Full<Bytes>>;
type HeaderList = Vec<(HeaderName, HeaderValue)>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// What `build` makes: the client, and the headers a forward proxy needs on every request.
pub struct Built {
    pub client: HttpClient,
    pub forward_headers: HeaderList,
    /// Requests go through a forward proxy (an `http://` mirror behind `-x`).
    pub forward_proxy: bool,
    /// For the startup log line: `direct`, `proxy host:port` or `bypassed (-N)`.
    pub route: String,
}

pub fn build(cfg: &MirrorConfig, stats: Arc<TargetStats>) -> Result<Built, Error> {
    let https = cfg
        .url
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let connect_timeout = cfg.connect_timeout.min(cfg.timeout);
    let tcp = Tcp::new(cfg, connect_timeout, stats)?;

    let mut forward_headers = Vec::new();
    let mut forward_proxy = false;
    let (route, route_text) = match &cfg.proxy {
        None => (Route::Direct, "direct".to_owned()),
        Some(proxy) => match proxy::proxy_intercept(proxy, &cfg.url)? {
            None => (
                Route::Direct,
                "direct (mirror host matches --noproxy)".to_owned(),
            ),
            Some((proxy_uri, headers)) => {
                let text = format!("proxy {}", proxy_uri.authority().map_or("", |a| a.as_str()));
                if https {
                    let mut map = HeaderMap::new();
                    for (n, v) in headers {
                        map.append(n, v);
                    }
                    (
                        Route::Tunnel(Tunnel::new(proxy_uri, tcp.clone()).with_headers(map)),
                        text,
                    )
                } else {
                    forward_headers = headers;
                    forward_proxy = true;
                    (Route::Forward(proxy_uri), text)
                }
            }
        },
    };
    let dial = Dial { tcp, route };

    let tls = tls::tls_config(cfg, https)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(dial);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.concurrency)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The client's Host header is sent, not one made from the mirror URL.
        .set_host(false)
        .build(connector);
    Ok(Built {
        client,
        forward_headers,
        forward_proxy,
        route: route_text,
    })
}

// ===== Dial: the route to the mirror =====

#[derive(Clone)]
enum Route {
    Direct,
    /// Connect to the proxy; hyper-util then sends absolute-form targets.
    Forward(Uri),
    Tunnel(Tunnel<Tcp>),
}

/// Connects to the mirror (or the proxy in front of it).
#[derive(Clone)]
pub struct Dial {
    tcp: Tcp,
    route: Route,
}

impl tower_service::Service<Uri> for Dial {
    type Response = Conn;
    type Error = BoxError;
    type Future = BoxFuture<Conn>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match &self.route {
            Route::Direct => {
                let connecting = self.tcp.call(dst);
                Box::pin(async move {
                    Ok(Conn {
                        io: connecting.await?,
                        proxied: false,
                    })
                })
            }
            Route::Forward(proxy) => {
                let connecting = self.tcp.call(proxy.clone());
                Box::pin(async move {
                    Ok(Conn {
                        io: connecting.await?,
                        proxied: true,
                    })
                })
            }
            Route::Tunnel(tunnel) => {
                let connecting = tunnel.clone().call(dst);
                Box::pin(async move {
                    Ok(Conn {
                        io: connecting.await?,
                        proxied: false,
                    })
                })
            }
        }
    }
}

/// A TCP connection that knows whether it leads to a forward proxy.
pub struct Conn {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
