//! Pure: a request as raw HTTP/1.1 bytes, a request record's payload: the request line, the
//! headers in the order hyper sends them, a blank line, the body. (Reading one back is the
//! replay tool's: `crate::replay::payload`.)

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
}
