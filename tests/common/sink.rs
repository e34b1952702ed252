//! A recording HTTP/1.1 server on 127.0.0.1: HAProxy's primary backend and the mirror target.
//!
//! Every complete request is recorded (method, target, version, headers in wire order with
//! their case, body, and the number of the TCP connection it came on) and answered with a
//! small keep-alive response (a response to HEAD has no body). Tests await recordings with
//! [`Sink::wait_for`], or one at a time in arrival order with [`Sink::next`]; both wake on a
//! `watch` channel, not by polling. [`Sink::set_behavior`] (or [`Sink::set_delay`]) makes it
//! slow, refusing, closing or resetting at run time. [`Sink::start_tls`] serves HTTPS.

use super::http::{self, Headers, MessageReader};
use super::LOCALHOST;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long [`Sink::next`] waits for the next request.
pub const NEXT_WAIT: Duration = Duration::from_secs(10);

/// One request as the sink received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target exactly as sent (origin form `/p?q`, or absolute form).
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Wire order, names with their case.
    pub headers: Headers,
    /// The decoded body (chunked encoding removed).
    pub body: Vec<u8>,
    /// 1-based number of the TCP connection it arrived on, in accept order.
    pub conn: u64,
    /// The address that connection came from.
    pub peer: SocketAddr,
    /// When the head was complete.
    pub at: Instant,
}

impl Recorded {
    /// First value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        http::header(&self.headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of header `name` (case-insensitive), as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        http::header_all(&self.headers, name)
            .into_iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// How the sink treats new requests and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Record, answer `200` at once (the default).
    Ok,
    /// Record, answer with this status (and the usual small body).
    Status(u16),
    /// Record, answer `200` with `connection: close` and close: one request per connection.
    OneShot,
    /// Record, then wait this long before answering `200` (a slow server).
    Slow(Duration),
    /// Accept each connection and close it at once, reading nothing (FIN; nothing recorded).
    Close,
    /// Record the request, then reset the connection (RST) without answering.
    Reset,
    /// Stop listening: connects are refused until another behaviour is set.
    Refuse,
}

/// The body of every answer.
pub const RESPONSE_BODY: &[u8] = b"sink ok\n";

struct Shared {
    name: String,
    requests: Mutex<Vec<Recorded>>,
    count: watch::Sender<usize>,
    connections: watch::Sender<u64>,
    next_conn: AtomicU64,
    behavior: watch::Sender<Behavior>,
    /// Whether the listening socket is open now (false while [`Behavior::Refuse`]).
    listening: watch::Sender<bool>,
    /// With an acceptor, every connection is a TLS server connection.
    tls: Option<TlsAcceptor>,
}

/// The recording server. Dropping it stops the accept loop and every connection.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    /// How many requests [`Sink::next`] has returned.
    taken: AtomicUsize,
}

impl Sink {
    /// Bind 127.0.0.1:0 and start serving. `name` goes into the `x-sink` response header so a
    /// client can tell which server answered.
    pub async fn start(name: &str) -> Sink {
        Sink::start_with(name, None).await
    }

    /// Like [`Sink::start`], serving HTTPS with `acceptor`'s certificate.
    pub async fn start_tls(name: &str, acceptor: TlsAcceptor) -> Sink {
        Sink::start_with(name, Some(acceptor)).await
    }

    /// [`Sink::start`] with `tls`: every connection is a TLS server connection.
    pub async fn start_with(name: &str, tls: Option<TlsAcceptor>) -> Sink {
        let listener = TcpListener::bind((LOCALHOST, 0))
            .await
            .expect("bind sink on 127.0.0.1:0");
        let addr = listener.local_addr().expect("sink local_addr");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            requests: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            connections: watch::channel(0).0,
            next_conn: AtomicU64::new(1),
            behavior: watch::channel(Behavior::Ok).0,
            listening: watch::channel(true).0,
            tls,
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            addr,
            shared.clone(),
            shutdown.clone(),
        ));
        Sink {
            addr,
            shared,
            shutdown,
            taken: AtomicUsize::new(0),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`, or `https://` with TLS (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Change how new requests are treated. Switching to or from [`Behavior::Refuse`] returns
    /// once the listening socket is closed or open again.
    pub async fn set_behavior(&self, behavior: Behavior) {
        self.shared.behavior.send_replace(behavior);
        let want_listening = behavior != Behavior::Refuse;
        let mut rx = self.shared.listening.subscribe();
        tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|l| *l == want_listening),
        )
        .await
        .expect("sink did not switch its listening socket within 5 s")
        .expect("sink accept loop gone");
    }

    /// Answer every new request `delay` after it arrived ([`Behavior::Slow`]); zero answers at
    /// once ([`Behavior::Ok`]). Requests already waiting keep their delay.
    pub async fn set_delay(&self, delay: Duration) {
        let behavior = if delay.is_zero() {
            Behavior::Ok
        } else {
            Behavior::Slow(delay)
        };
        self.set_behavior(behavior).await;
    }

    /// The next request in arrival order that this method has not returned yet; waits up to
    /// [`NEXT_WAIT`] for it to arrive.
    pub async fn next(&self) -> Recorded {
        let i = self.taken.fetch_add(1, Ordering::SeqCst);
        let mut rx = self.shared.count.subscribe();
        tokio::time::timeout(NEXT_WAIT, rx.wait_for(|c| *c > i))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "sink {:?}: request #{} did not arrive within {NEXT_WAIT:?}",
                    self.shared.name,
                    i + 1
                )
            })
            .expect("sink accept loop gone");
        let requests = self.shared.requests.lock().expect("sink lock");
        requests
            .get(i)
            .cloned()
            .expect("a counted request is recorded")
    }

    /// Panics if a request arrived that [`Sink::next`] has not returned. Call it when nothing
    /// can be in flight any more (e.g. after the client shut down): it does not wait.
    pub fn assert_no_more(&self) {
        let taken = self.taken.load(Ordering::SeqCst);
        let requests = self.requests();
        if let Some(extra) = requests.get(taken) {
            panic!(
                "sink {:?}: unexpected extra request: {} {}",
                self.shared.name, extra.method, extra.target
            );
        }
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("sink lock").clone()
    }

    /// Number of requests recorded so far.
    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// TCP connections accepted so far (with TLS: before the handshake).
    pub fn connections(&self) -> u64 {
        *self.shared.connections.borrow()
    }

    /// Wait until at least `n` requests are recorded and return all of them. Panics with the
    /// count reached when `timeout` passes first.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        match self.try_wait_for(n, timeout).await {
            Some(all) => all,
            None => panic!(
                "sink {:?}: waited {timeout:?} for {n} request(s), got {}",
                self.shared.name,
                self.count()
            ),
        }
    }

    /// Like [`Sink::wait_for`], but `None` on timeout.
    pub async fn try_wait_for(&self, n: usize, timeout: Duration) -> Option<Vec<Recorded>> {
        let mut rx = self.shared.count.subscribe();
        let reached = matches!(
            tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await,
            Ok(Ok(_))
        );
        reached.then(|| self.requests())
    }

    /// Wait until at least `n` connections were accepted; returns the count, `None` on timeout.
    pub async fn wait_connections(&self, n: u64, timeout: Duration) -> Option<u64> {
        let mut rx = self.shared.connections.subscribe();
        let reached = matches!(
            tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await,
            Ok(Ok(_))
        );
        reached.then(|| self.connections())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Accept connections until shut down; close and reopen the listening socket around
/// [`Behavior::Refuse`].
async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut listener = Some(listener);
    let mut behavior_rx = shared.behavior.subscribe();
    loop {
        let refusing = *behavior_rx.borrow_and_update() == Behavior::Refuse;
        if refusing {
            listener = None;
            shared.listening.send_replace(false);
        } else if listener.is_none() {
            // Re-bind the same port (tokio sets SO_REUSEADDR, so TIME_WAIT does not block it).
            match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => panic!("sink could not re-bind {addr}: {e}"),
            }
        }
        if listener.is_some() {
            shared.listening.send_replace(true);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = behavior_rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = accept(listener.as_ref()) => {
                let Ok((stream, peer)) = accepted else { continue };
                let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                shared.connections.send_modify(|c| *c += 1);
                let (shared, shutdown) = (shared.clone(), shutdown.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = serve_tcp(stream, (conn, peer), &shared) => {}
                    }
                });
            }
        }
    }
}

/// Accept on the listener, or never resolve while there is none.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// A connection the sink serves: plain TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket underneath (for socket options).
    fn tcp(&self) -> &TcpStream;
}

impl Stream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Stream for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Serve one accepted TCP connection, after the TLS handshake when the sink has TLS.
async fn serve_tcp(stream: TcpStream, conn: (u64, SocketAddr), shared: &Shared) {
    let _ = stream.set_nodelay(true);
    if *shared.behavior.borrow() == Behavior::Close {
        return; // dropping the stream sends FIN
    }
    match &shared.tls {
        None => serve_connection(stream, conn, shared).await,
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                serve_connection(stream, conn, shared).await;
            }
        }
    }
}

/// Serve one connection (its number and peer): read requests until EOF, error, a
/// `Connection: close` or [`Behavior::OneShot`].
async fn serve_connection(stream: impl Stream, (conn, peer): (u64, SocketAddr), shared: &Shared) {
    let mut reader = MessageReader::new(stream);
    // Each pass reads one request or ends the connection.
    loop {
        let head = match reader.read_request_head().await {
            Ok(Some(head)) => head,
            Ok(None) | Err(_) => return,
        };
        if http::header(&head.headers, "expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
            && reader
                .get_mut()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let at = Instant::now();
        let Ok(framing) = http::request_framing(&head.headers) else {
            let _ = reader
                .get_mut()
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            return;
        };
        let Ok(body) = reader.read_body(framing).await else {
            return;
        };
        let close = head.version == "HTTP/1.0"
            || http::header_has_token(&head.headers, "connection", "close");
        // A response to HEAD has no body (RFC 9110 §9.3.2), whatever its Content-Length says.
        // Sending one anyway leaves bytes that a keep-alive client (HAProxy) reads as the start
        // of the next response, and answers that next request 502.
        let is_head = head.method == "HEAD";
        let recorded = Recorded {
            method: head.method,
            target: head.target,
            version: head.version,
            headers: head.headers,
            body,
            conn,
            peer,
            at,
        };
        shared.requests.lock().expect("sink lock").push(recorded);
        shared.count.send_modify(|c| *c += 1);

        let behavior = *shared.behavior.borrow();
        let close = close || behavior == Behavior::OneShot;
        let status = match behavior {
            Behavior::Reset => {
                let stream = reader.get_mut();
                // Linger 0: closing sends RST instead of FIN.
                let _ = socket2::SockRef::from(stream.tcp()).set_linger(Some(Duration::ZERO));
                return;
            }
            Behavior::Slow(delay) => {
                tokio::time::sleep(delay).await;
                200
            }
            Behavior::Status(code) => code,
            Behavior::Ok | Behavior::OneShot | Behavior::Close | Behavior::Refuse => 200,
        };
        let answer = format!(
            "HTTP/1.1 {status} Sink\r\nx-sink: {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n",
            shared.name,
            RESPONSE_BODY.len(),
            if close { "connection: close\r\n" } else { "" },
        );
        let stream = reader.get_mut();
        if stream.write_all(answer.as_bytes()).await.is_err()
            || (!is_head && stream.write_all(RESPONSE_BODY).await.is_err())
            || close
        {
            return;
        }
    }
}
