//! Test clients: HTTP/1.1 over a raw TCP connection (exact bytes out, parsed answer back,
//! keep-alive), a helper that spreads many requests over a few connections, and `curl` for
//! HTTP/2 with prior knowledge.

use super::http::{self, Headers, MessageReader};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A response as the client read it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub version: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        http::header(&self.headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Time allowed for one request/response exchange.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One keep-alive HTTP/1.1 connection.
pub struct HttpConn {
    reader: MessageReader<TcpStream>,
    host: String,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<HttpConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            reader: MessageReader::new(stream),
            host: addr.to_string(),
        })
    }

    /// Write `raw` (a whole request, exactly as given) and read one response (skipping 1xx).
    /// `method` tells whether a body follows the answer (HEAD).
    pub async fn send_raw(&mut self, method: &str, raw: &[u8]) -> std::io::Result<Response> {
        let exchange = async {
            self.reader.get_mut().write_all(raw).await?;
            // Interim answers (100 Continue) are bounded by the head size limit per read;
            // allow a handful, then give up.
            for _ in 0..8 {
                let Some(head) = self.reader.read_response_head().await? else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed before a response",
                    ));
                };
                if (100..200).contains(&head.status) {
                    continue;
                }
                let framing = http::response_framing(method, head.status, &head.headers)?;
                let body = self.reader.read_body(framing).await?;
                return Ok(Response {
                    status: head.status,
                    version: head.version,
                    headers: head.headers,
                    body,
                });
            }
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "too many 1xx answers",
            ))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no response within REQUEST_TIMEOUT",
                )
            })?
    }

    /// Send `method target` with `Host` first, then `headers`, then `Content-Length` when a
    /// body is given.
    pub async fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let raw = build_request(method, target, &self.host, headers, body);
        self.send_raw(method, &raw).await
    }

    pub async fn get(&mut self, target: &str) -> std::io::Result<Response> {
        self.request("GET", target, &[], b"").await
    }
}

/// Bytes of an HTTP/1.1 request: request line, `Host`, `headers`, `Content-Length` if a body
/// is given (or the method usually carries one), blank line, body.
pub fn build_request(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    for (name, value) in headers {
        raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw
}

/// Send `total` GET requests to `addr` over `connections` keep-alive connections in parallel
/// (request `i` goes to `path_prefix` + `i`). Returns every response, or the first error.
/// Each connection sends its share one after another.
pub async fn get_many(
    addr: SocketAddr,
    path_prefix: &str,
    total: usize,
    connections: usize,
) -> std::io::Result<Vec<Response>> {
    let connections = connections.clamp(1, total.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let prefix = path_prefix.to_string();
        tasks.spawn(async move {
            let mut conn = HttpConn::connect(addr).await?;
            let mut out = Vec::new();
            for i in (c..total).step_by(connections) {
                out.push(conn.get(&format!("{prefix}{i}")).await?);
            }
            Ok::<_, std::io::Error>(out)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(std::io::Error::other)??);
    }
    Ok(all)
}

/// Result of a `curl` run.
#[derive(Debug, Clone)]
pub struct CurlResult {
    /// `%{http_code}` (0 when no response).
    pub status: u16,
    /// `%{http_version}`: "2", "1.1", ...
    pub http_version: String,
    pub body: Vec<u8>,
    pub stderr: String,
}

/// `curl --http2-prior-knowledge` to `url` (a `proto h2` bind), with extra curl arguments
/// (e.g. `["-H", "X-A: b"]`, `["--data-binary", "@file"]`). Panics if curl cannot be run.
pub async fn curl_h2(url: &str, extra: &[&str]) -> CurlResult {
    curl(&[&["--http2-prior-knowledge"], extra].concat(), url).await
}

/// Run `curl -sS` with `args` against `url`, body to memory, status and version via `-w`.
pub async fn curl(args: &[&str], url: &str) -> CurlResult {
    let marker = "\n--curl-write-out--";
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "15", "-o", "-", "-w"])
        .arg(format!("{marker}%{{http_code}} %{{http_version}}"))
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    let stdout = out.stdout;
    let split = stdout
        .windows(marker.len())
        .rposition(|w| w == marker.as_bytes())
        .expect("curl -w output missing");
    let body = stdout.get(..split).unwrap_or_default().to_vec();
    let tail = String::from_utf8_lossy(stdout.get(split + marker.len()..).unwrap_or_default())
        .into_owned();
    let mut parts = tail.split_whitespace();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let http_version = parts.next().unwrap_or("").to_string();
    CurlResult {
        status,
        http_version,
        body,
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}
