//! New TCP connections to the mirror or its proxy, counted: hyper-util's `HttpConnector`, or
//! with `-P` a socket bound to a free port of the range; `-I` binds either to an address or an
//! interface.

use super::{BoxError, BoxFuture};
use crate::config::MirrorConfig;
use crate::mirror::Error;
use crate::stats::{inc, TargetStats};
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

#[derive(Clone)]
enum TcpKind {
    Http(HttpConnector),
    Ports(Arc<PortRange>),
}

/// Opens TCP connections (`-I`, `-P`) and counts them in `mirror_connections_total`.
#[derive(Clone)]
pub struct Tcp {
    kind: TcpKind,
    stats: Arc<TargetStats>,
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
    pub(super) fn new(
        cfg: &MirrorConfig,
        connect_timeout: Duration,
        stats: Arc<TargetStats>,
    ) -> Result<Tcp, Error> {
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
                    inc(&stats.connections_total);
                    Ok(io)
                })
            }
            TcpKind::Ports(range) => {
                let range = range.clone();
                Box::pin(async move {
                    let stream = range.connect(&dst).await?;
                    inc(&stats.connections_total);
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

/// `SO_BINDTODEVICE` (`-I` naming an interface); an empty name removes the binding.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_device(socket: &TcpSocket, name: &str) -> io::Result<()> {
    socket2::SockRef::from(socket).bind_device(Some(name.as_bytes()))
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
}
