//! HTTP/1.1 message reading shared by the recording server and the test client: a buffered
//! reader that yields one message head at a time (parsed with `httparse`, header order and
//! case kept) and then its body, framed by Content-Length or chunked encoding.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest message head accepted (HAProxy's default bufsize is 16 KiB; leave room).
pub const MAX_HEAD: usize = 256 * 1024;
/// Largest body accepted.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// Most headers in one head.
pub const MAX_HEADERS: usize = 256;

/// Headers in wire order, names as sent (case kept), values as raw bytes.
pub type Headers = Vec<(String, Vec<u8>)>;

/// The first value of header `name` (ASCII case-insensitive).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Every value of header `name` (ASCII case-insensitive), in order.
pub fn header_all<'a>(headers: &'a Headers, name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect()
}

/// Whether header `name` holds `token` in its comma-separated list (case-insensitive).
pub fn header_has_token(headers: &Headers, name: &str, token: &str) -> bool {
    header_all(headers, name).iter().any(|v| {
        String::from_utf8_lossy(v)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the peer closes (responses without length only).
    UntilClose,
}

/// Body framing of a request (RFC 9112 §6.3: chunked wins over Content-Length; neither = empty).
pub fn request_framing(headers: &Headers) -> io::Result<Framing> {
    if header_has_token(headers, "transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match header(headers, "content-length") {
        None => Ok(Framing::Empty),
        Some(v) => parse_length(v).map(Framing::Length),
    }
}

/// Body framing of a response to a request with `method`.
pub fn response_framing(method: &str, status: u16, headers: &Headers) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD") || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if header_has_token(headers, "transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match header(headers, "content-length") {
        None => Ok(Framing::UntilClose),
        Some(v) => parse_length(v).map(Framing::Length),
    }
}

fn parse_length(v: &[u8]) -> io::Result<usize> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|n| *n <= MAX_BODY)
        .ok_or_else(|| {
            invalid(format!(
                "bad content-length {:?}",
                String::from_utf8_lossy(v)
            ))
        })
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    pub headers: Headers,
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub version: String,
    pub headers: Headers,
}

fn collect_headers(parsed: &[httparse::Header<'_>]) -> Headers {
    parsed
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect()
}

fn version_text(minor: Option<u8>) -> String {
    format!("HTTP/1.{}", minor.unwrap_or(1))
}

/// A byte stream with a read buffer, read one HTTP/1.x message at a time.
pub struct MessageReader<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> MessageReader<S> {
    pub fn new(stream: S) -> Self {
        MessageReader {
            stream,
            buf: Vec::with_capacity(8192),
        }
    }

    /// The underlying stream (to write answers on it).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Read more bytes into the buffer; `Ok(0)` at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n)
    }

    /// Read until a complete head is buffered and let `parse` try it after each read.
    /// `Ok(None)`: the peer closed before sending a byte of a new message.
    async fn read_head_with<T>(
        &mut self,
        mut parse: impl FnMut(&[u8]) -> io::Result<Option<(usize, T)>>,
    ) -> io::Result<Option<T>> {
        loop {
            if !self.buf.is_empty() {
                if let Some((len, head)) = parse(&self.buf)? {
                    self.buf.drain(..len);
                    return Ok(Some(head));
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(invalid("message head too large"));
                }
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "EOF inside a message head",
                    ))
                };
            }
        }
    }

    /// The next request head, or `None` if the peer closed between messages.
    pub async fn read_request_head(&mut self) -> io::Result<Option<RequestHead>> {
        self.read_head_with(|buf| {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut slots);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => Ok(Some((
                    len,
                    RequestHead {
                        method: req.method.unwrap_or_default().to_string(),
                        target: req.path.unwrap_or_default().to_string(),
                        version: version_text(req.version),
                        headers: collect_headers(req.headers),
                    },
                ))),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(invalid(format!("bad request head: {e}"))),
            }
        })
        .await
    }

    /// The next response head, or `None` if the peer closed before answering. Interim 1xx
    /// responses are returned like any other (the caller skips them).
    pub async fn read_response_head(&mut self) -> io::Result<Option<ResponseHead>> {
        self.read_head_with(|buf| {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(buf) {
                Ok(httparse::Status::Complete(len)) => Ok(Some((
                    len,
                    ResponseHead {
                        status: resp.code.unwrap_or_default(),
                        reason: resp.reason.unwrap_or_default().to_string(),
                        version: version_text(resp.version),
                        headers: collect_headers(resp.headers),
                    },
                ))),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(invalid(format!("bad response head: {e}"))),
            }
        })
        .await
    }

    /// Take exactly `n` bytes (from the buffer, then the stream).
    async fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a body",
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Read a body framed as `framing`.
    pub async fn read_body(&mut self, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.take(n).await,
            Framing::Chunked => self.read_chunked().await,
            Framing::UntilClose => {
                while self.fill().await? > 0 {
                    if self.buf.len() > MAX_BODY {
                        return Err(invalid("body too large"));
                    }
                }
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }

    /// Chunked body: `size[;ext]CRLF data CRLF` ... `0 CRLF [trailers] CRLF`. Trailers are
    /// read and dropped. Every pass consumes input or fails, and the size is capped.
    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.buf.drain(..len);
                        break usize::try_from(size).map_err(|_| invalid("chunk too large"))?;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > MAX_HEAD {
                            return Err(invalid("chunk size line too long"));
                        }
                        if self.fill().await? == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "EOF inside a chunk size",
                            ));
                        }
                    }
                    Err(_) => return Err(invalid("bad chunk size")),
                }
            };
            if size == 0 {
                return self.skip_trailers().await.map(|()| body);
            }
            if body.len().saturating_add(size) > MAX_BODY {
                return Err(invalid("body too large"));
            }
            let data = self.take(size).await?;
            body.extend_from_slice(&data);
            if self.take(2).await? != b"\r\n" {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
    }

    /// Trailer lines up to and including the empty line that ends a chunked body.
    async fn skip_trailers(&mut self) -> io::Result<()> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let empty = pos == 0;
                self.buf.drain(..pos + 2);
                if empty {
                    return Ok(());
                }
                continue;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("trailers too large"));
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside trailers",
                ));
            }
        }
    }
}
