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

use super::Error;
use crate::config::{MirrorConfig, ProxyConfig};
use crate::stats::{inc, Stats};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

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

pub fn build(cfg: &MirrorConfig, stats: Arc<Stats>) -> Result<Built, Error> {
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
        Some(proxy) => match proxy_intercept(proxy, &cfg.url)? {
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

    let tls = tls_config(cfg, https)?;
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

/// Whether the mirror URL goes through the proxy, and with which headers (Basic auth from
/// `-U` or the proxy URL's userinfo, then `-H`).
fn proxy_intercept(proxy: &ProxyConfig, mirror: &Uri) -> Result<Option<(Uri, HeaderList)>, Error> {
    let scheme = proxy.url.scheme_str().unwrap_or("http");
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Error::Proxy("only http:// proxies are supported"));
    }
    let matcher = Matcher::builder()
        .all(proxy.url.to_string())
        .no(proxy.noproxy.clone().unwrap_or_default())
        .build();
    let Some(intercept) = matcher.intercept(mirror) else {
        // Either -N matched, or the proxy URL did not parse.
        if proxy.url.authority().is_none() {
            return Err(Error::Proxy("the proxy URL has no host"));
        }
        return Ok(None);
    };
    let mut headers = Vec::new();
    let auth = match &proxy.userpwd {
        Some(userpwd) => Some(basic_auth(&userpwd.0)?),
        None => intercept.basic_auth().cloned(),
    };
    if let Some(auth) = auth {
        headers.push((http::header::PROXY_AUTHORIZATION, auth));
    }
    headers.extend(proxy.headers.iter().cloned());
    Ok(Some((intercept.uri().clone(), headers)))
}

/// `Basic base64(user:password)`, marked sensitive so hyper never logs it.
fn basic_auth(userpwd: &str) -> Result<HeaderValue, Error> {
    let value = format!("Basic {}", base64(userpwd.as_bytes()));
    let mut header =
        HeaderValue::from_str(&value).map_err(|_| Error::Proxy("invalid --proxy-userpwd"))?;
    header.set_sensitive(true);
    Ok(header)
}

/// Standard base64 with padding (RFC 4648 §4); only for the Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tls_config(cfg: &MirrorConfig, https: bool) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    if cfg.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    // An http:// mirror never uses TLS: don't read the system store for nothing.
    if https {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 && cfg.ca_file.is_none() {
            tracing::warn!(
                "no system CA certificates found; https:// mirrors will fail verification"
            );
        }
    }
    if let Some(path) = &cfg.ca_file {
        use rustls_pki_types::pem::PemObject;
        let bad = |e: &dyn std::fmt::Display| Error::CaFile(path.clone(), e.to_string());
        let mut count = 0;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            count += 1;
        }
        if count == 0 {
            return Err(bad(&"no certificate in the file"));
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `--insecure`: any certificate is accepted, signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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

// ===== Tcp: new connections, counted =====

#[derive(Clone)]
enum TcpKind {
    Http(HttpConnector),
    Ports(Arc<PortRange>),
}

/// Opens TCP connections (`-I`, `-P`) and counts them in `mirror_connections_total`.
#[derive(Clone)]
pub struct Tcp {
    kind: TcpKind,
    stats: Arc<Stats>,
}

/// `-I`: where outgoing connections come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalBind {
    Address(IpAddr),
    Device(String),
}

/// Reads `-I` like curl's `--interface`: `if!NAME` is an interface, `host!NAME` a host name
/// or address, and a bare value is an address, else an existing interface, else a host name.
pub fn parse_interface(value: &str) -> Result<LocalBind, Error> {
    let resolve = |host: &str| -> Result<LocalBind, Error> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(LocalBind::Address(ip));
        }
        (host, 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(|a| LocalBind::Address(a.ip()))
            .ok_or_else(|| Error::Interface(value.to_owned()))
    };
    if let Some(name) = value.strip_prefix("if!") {
        return Ok(LocalBind::Device(name.to_owned()));
    }
    if let Some(host) = value.strip_prefix("host!") {
        return resolve(host);
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(LocalBind::Address(ip));
    }
    if interface_exists(value) {
        return Ok(LocalBind::Device(value.to_owned()));
    }
    resolve(value)
}

fn interface_exists(name: &str) -> bool {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::if_nametoindex(cname.as_ptr()) != 0 }
}

impl Tcp {
    fn new(cfg: &MirrorConfig, connect_timeout: Duration, stats: Arc<Stats>) -> Result<Tcp, Error> {
        let bind = cfg.interface.as_deref().map(parse_interface).transpose()?;
        let kind = match cfg.local_ports {
            Some((lo, hi)) if lo != 0 => {
                if hi < lo {
                    return Err(Error::Ports(lo, hi));
                }
                TcpKind::Ports(Arc::new(PortRange {
                    lo,
                    hi,
                    next: AtomicU32::new(0),
                    bind,
                    connect_timeout,
                }))
            }
            _ => {
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_keepalive(Some(Duration::from_secs(10)));
                http.set_connect_timeout(Some(connect_timeout));
                match bind {
                    Some(LocalBind::Address(ip)) => http.set_local_address(Some(ip)),
                    Some(LocalBind::Device(name)) => {
                        http.set_interface(name);
                    }
                    None => {}
                }
                TcpKind::Http(http)
            }
        };
        Ok(Tcp { kind, stats })
    }
}

impl tower_service::Service<Uri> for Tcp {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<TokioIo<TcpStream>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let stats = self.stats.clone();
        match &self.kind {
            TcpKind::Http(http) => {
                let connecting = http.clone().call(dst);
                Box::pin(async move {
                    let io = connecting.await?;
                    inc(&stats.mirror_connections_total);
                    Ok(io)
                })
            }
            TcpKind::Ports(range) => {
                let range = range.clone();
                Box::pin(async move {
                    let stream = range.connect(&dst).await?;
                    inc(&stats.mirror_connections_total);
                    Ok(TokioIo::new(stream))
                })
            }
        }
    }
}

/// `-P LO-HI`: binds each new connection to a free local port of the range, trying the next
/// one when a port is taken.
#[derive(Debug)]
struct PortRange {
    lo: u16,
    hi: u16,
    /// Where the next search starts, so ports are used round-robin.
    next: AtomicU32,
    bind: Option<LocalBind>,
    connect_timeout: Duration,
}

impl PortRange {
    async fn connect(&self, dst: &Uri) -> io::Result<TcpStream> {
        let host = dst
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = dst
            .port_u16()
            .unwrap_or(if dst.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the mirror host");
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, self.connect_addr(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = e,
                Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            }
        }
        Err(last)
    }

    async fn connect_addr(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let span = u32::from(self.hi - self.lo) + 1;
        let start = self.next.fetch_add(1, Ordering::Relaxed) % span;
        let local_ip = match (&self.bind, addr) {
            (Some(LocalBind::Address(ip)), _) => *ip,
            (_, SocketAddr::V4(_)) => IpAddr::from([0u8; 4]),
            (_, SocketAddr::V6(_)) => IpAddr::from([0u16; 8]),
        };
        let mut last = io::Error::new(
            io::ErrorKind::AddrInUse,
            "every port of --mirror-local-port is in use",
        );
        for i in 0..span {
            // lo + (start + i) % span ≤ hi, so the conversion cannot fail.
            let port = u16::try_from(u32::from(self.lo) + (start + i) % span).unwrap_or(self.hi);
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            if let Some(LocalBind::Device(name)) = &self.bind {
                bind_device(&socket, name)?;
            }
            match socket.bind(SocketAddr::new(local_ip, port)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    last = e;
                    continue;
                }
                Err(e) => return Err(e),
            }
            match socket.connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                // The 4-tuple is taken (a TIME_WAIT connection to the same mirror).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
                    ) =>
                {
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_device(socket: &TcpSocket, name: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::socklen_t::try_from(name.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the fd is open for the duration of the call, the pointer/length describe `name`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_device(_socket: &TcpSocket, _name: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "binding to an interface needs Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn basic_auth_is_sensitive() {
        let h = basic_auth("user:pw").unwrap();
        assert_eq!(h, "Basic dXNlcjpwdw==");
        assert!(h.is_sensitive());
    }

    #[test]
    fn interface_values() {
        assert_eq!(
            parse_interface("127.0.0.1").unwrap(),
            LocalBind::Address([127, 0, 0, 1].into())
        );
        assert_eq!(
            parse_interface("::1").unwrap(),
            LocalBind::Address("::1".parse().unwrap())
        );
        assert_eq!(
            parse_interface("if!eth9").unwrap(),
            LocalBind::Device("eth9".into())
        );
        assert_eq!(
            parse_interface("lo").unwrap(),
            LocalBind::Device("lo".into())
        );
        assert_eq!(
            parse_interface("host!127.0.0.2").unwrap(),
            LocalBind::Address([127, 0, 0, 2].into())
        );
        assert!(parse_interface("no-such-interface-or-host.invalid").is_err());
    }

    fn proxy(url: &str, noproxy: Option<&str>) -> ProxyConfig {
        ProxyConfig {
            url: url.parse().unwrap(),
            userpwd: None,
            headers: vec![],
            noproxy: noproxy.map(Into::into),
        }
    }

    #[test]
    fn proxy_decision() {
        let mirror: Uri = "http://mirror.example:8100/".parse().unwrap();
        let (uri, headers) = proxy_intercept(&proxy("http://p:3128", None), &mirror)
            .unwrap()
            .unwrap();
        assert_eq!(uri.authority().unwrap().as_str(), "p:3128");
        assert!(headers.is_empty());
        for no in ["mirror.example", ".example", "*", "10.0.0.0/8, example"] {
            assert!(
                proxy_intercept(&proxy("http://p:3128", Some(no)), &mirror)
                    .unwrap()
                    .is_none(),
                "{no}"
            );
        }
        assert!(
            proxy_intercept(&proxy("http://p:3128", Some("other.example")), &mirror)
                .unwrap()
                .is_some()
        );
        assert!(proxy_intercept(&proxy("socks5://p:1080", None), &mirror).is_err());
    }

    #[test]
    fn proxy_credentials() {
        let mirror: Uri = "https://m/".parse().unwrap();
        // From the URL's userinfo...
        let (uri, headers) = proxy_intercept(&proxy("http://u:p%40ss@p:3128", None), &mirror)
            .unwrap()
            .unwrap();
        assert!(!uri.to_string().contains("p%40ss"));
        assert_eq!(
            headers[0].1,
            format!("Basic {}", base64(b"u:p@ss")).as_str()
        );
        // ...unless -U says otherwise; -H follow.
        let mut p = proxy("http://u:x@p:3128", None);
        p.userpwd = Some(crate::config::Secret("user:pw".into()));
        p.headers = vec![(
            HeaderName::from_static("x-proxy"),
            HeaderValue::from_static("1"),
        )];
        let (_, headers) = proxy_intercept(&p, &mirror).unwrap().unwrap();
        let names: Vec<_> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["proxy-authorization", "x-proxy"]);
        assert_eq!(headers[0].1, "Basic dXNlcjpwdw==");
    }
}
