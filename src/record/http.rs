//! Pure: a request as raw HTTP/1.1 bytes, a request record's payload: the request line, the
//! headers in the order hyper sends them, a blank line, the body; and a response as a type-2
//! record's payload. (Reading them back is the replay tool's: `crate::replay::payload`.)

use http::{HeaderMap, Method, Version};

/// The raw bytes of an HTTP/1.x request: `target` as sent, headers in `headers`' order.
pub fn encode_request(
    method: &Method,
    target: &str,
    version: Version,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    let head_len: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(64 + target.len() + head_len + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(if version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The raw bytes of an HTTP/1.1 response: status line (with the status's reason phrase),
/// `headers` in their order, a blank line, the body. HAProxy hands over the body decoded, so
/// the framing headers (Transfer-Encoding, Content-Length, Connection, Keep-Alive) are
/// replaced by a Content-Length that matches it.
pub fn encode_response(status: u16, headers: &[(String, bytes::Bytes)], body: &[u8]) -> Vec<u8> {
    const FRAMING: [&str; 4] = [
        "transfer-encoding",
        "content-length",
        "connection",
        "keep-alive",
    ];
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let head_len = headers
        .iter()
        .map(|(n, v)| n.len().saturating_add(v.len()).saturating_add(4))
        .fold(0usize, usize::saturating_add);
    let mut out = Vec::with_capacity(head_len.saturating_add(body.len()).saturating_add(64));
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    for (name, value) in headers {
        if FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_LENGTH, HOST};
    use http::HeaderValue;

    #[test]
    fn request_line_headers_in_order_then_body() {
        let mut h = HeaderMap::new();
        h.append(HOST, HeaderValue::from_static("h"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append(CONTENT_LENGTH, HeaderValue::from_static("6"));
        let raw = encode_request(
            &Method::PUT,
            "/p?q=1",
            Version::HTTP_11,
            &h,
            b"a\r\nb\0\xff",
        );
        assert_eq!(
            raw,
            b"PUT /p?q=1 HTTP/1.1\r\nhost: h\r\nx-a: 1\r\ncontent-length: 6\r\n\r\na\r\nb\0\xff"
        );
        let raw = encode_request(&Method::GET, "*", Version::HTTP_10, &HeaderMap::new(), b"");
        assert_eq!(raw, b"GET * HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn response_status_line_headers_body() {
        let h = vec![
            (
                "content-type".to_string(),
                bytes::Bytes::from_static(b"text/plain"),
            ),
            (
                "transfer-encoding".to_string(),
                bytes::Bytes::from_static(b"chunked"),
            ),
        ];
        assert_eq!(
            encode_response(404, &h, b"no"),
            b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nno"
        );
        assert_eq!(
            encode_response(599, &[], b""),
            b"HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n"
        );
    }
}
