//! Pure: a request record's payload (raw HTTP/1.x bytes, ours or GoReplay's) → the request
//! the engine would have mirrored. Parsed with httparse, a chunked body decoded, then the same
//! framing rules as a mirrored request ([`forwardable_headers`]: hop-by-hop headers removed,
//! Content-Length matching the body), so a replay sends what the mirror got.

use crate::mirror::{forwardable_headers, parse_target, HeaderList, MirrorRequest};
use crate::shadow::Response;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Version};

/// Headers a recorded request may have; more is a bad record.
pub const MAX_HEADERS: usize = 256;

/// Why a payload is not a request we can replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("not an HTTP/1.x head: {0}")]
    Head(String),
    #[error("request head not complete")]
    Partial,
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("body shorter than its Content-Length ({have} of {want} bytes)")]
    ShortBody { have: usize, want: usize },
    #[error("bad chunked body")]
    Chunked,
}

/// A recorded request payload → the request the engine would have mirrored.
pub fn parse_request(payload: &[u8]) -> Result<MirrorRequest, PayloadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut slots);
    let status = head
        .parse(payload)
        .map_err(|e| PayloadError::Head(e.to_string()))?;
    let httparse::Status::Complete(head_len) = status else {
        return Err(PayloadError::Partial);
    };
    let method = head
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(PayloadError::Invalid("method"))?;
    let version = match head.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let raw_target = Bytes::copy_from_slice(head.path.unwrap_or_default().as_bytes());
    let (target, target_authority) =
        parse_target(&raw_target).map_err(|_| PayloadError::Invalid("request target"))?;
    let mut headers = HeaderList::with_capacity(head.headers.len() + 1);
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| PayloadError::Invalid("header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| PayloadError::Invalid("header value"))?;
        headers.push((name, value));
    }
    let rest = payload.get(head_len..).unwrap_or_default();
    let chunked = headers.iter().any(|(n, v)| {
        n == TRANSFER_ENCODING
            && v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
    });
    let length = headers
        .iter()
        .find(|(n, _)| n == CONTENT_LENGTH)
        .map(|(_, v)| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(PayloadError::Invalid("content-length"))
        })
        .transpose()?;
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(want) = length {
        rest.get(..want)
            .ok_or(PayloadError::ShortBody {
                have: rest.len(),
                want,
            })?
            .to_vec()
    } else {
        // No framing: GoReplay keeps what followed the head; so do we.
        rest.to_vec()
    };
    let (headers, has_host) =
        forwardable_headers(headers, body.len()).map_err(|_| PayloadError::Invalid("framing"))?;
    Ok(MirrorRequest {
        method,
        target,
        target_authority,
        version,
        has_host: has_host || headers.iter().any(|(n, _)| n == HOST),
        headers,
        body: Bytes::from(body),
        src: None,
        id: None,
    })
}

/// A chunked body's data (trailers dropped).
/// A response record's payload (type 2; raw HTTP/1.x, ours or GoReplay's) → the response as
/// the shadow comparator sees it: names lower-cased, a chunked body decoded, else the bytes
/// that follow the head.
pub fn parse_response(payload: &[u8]) -> Result<Response, PayloadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut slots);
    let status = head
        .parse(payload)
        .map_err(|e| PayloadError::Head(e.to_string()))?;
    let httparse::Status::Complete(head_len) = status else {
        return Err(PayloadError::Partial);
    };
    let code = head.code.ok_or(PayloadError::Invalid("status"))?;
    let headers: Vec<(String, Bytes)> = head
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), Bytes::copy_from_slice(h.value)))
        .collect();
    let rest = payload.get(head_len..).unwrap_or_default();
    let chunked = headers.iter().any(|(n, v)| {
        n == "transfer-encoding"
            && String::from_utf8_lossy(v)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status: code,
        headers,
        body: Bytes::from(body),
        too_large: false,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(c)) => c,
            _ => return Err(PayloadError::Chunked),
        };
        let size = usize::try_from(size).map_err(|_| PayloadError::Chunked)?;
        rest = rest.get(used..).ok_or(PayloadError::Chunked)?;
        if size == 0 {
            return Ok(out);
        }
        let end = size.checked_add(2).ok_or(PayloadError::Chunked)?;
        let (data, crlf) = (rest.get(..size), rest.get(size..end));
        match (data, crlf) {
            (Some(d), Some(b"\r\n")) => out.extend_from_slice(d),
            _ => return Err(PayloadError::Chunked),
        }
        rest = rest.get(end..).ok_or(PayloadError::Chunked)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &MirrorRequest) -> Vec<(String, String)> {
        r.headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn encoded_request_parses_back() {
        let mut h = http::HeaderMap::new();
        h.append(HOST, HeaderValue::from_static("h"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append(CONTENT_LENGTH, HeaderValue::from_static("6"));
        let raw = crate::record::encode_request(
            &Method::PUT,
            "/p?q=1",
            Version::HTTP_11,
            &h,
            b"a\r\nb\0\xff",
        );
        let r = parse_request(&raw).unwrap();
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.target.as_str(), "/p?q=1");
        assert_eq!(&r.body[..], b"a\r\nb\0\xff");
        assert!(r.has_host);
        assert_eq!(
            names(&r),
            [
                ("host".into(), "h".into()),
                ("x-a".into(), "1".into()),
                ("content-length".into(), "6".into())
            ]
        );
    }

    #[test]
    fn chunked_and_hop_by_hop() {
        let raw = b"POST /u HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n2\r\n\r\n\r\n0\r\n\r\n";
        let r = parse_request(raw).unwrap();
        assert_eq!(&r.body[..], b"ab\n\r\n");
        assert_eq!(
            names(&r),
            [
                ("host".into(), "h".into()),
                ("content-length".into(), "5".into())
            ]
        );
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .unwrap_err(),
            PayloadError::Chunked
        );
    }

    #[test]
    fn bad_payloads() {
        assert!(matches!(
            parse_request(b"\x00\x01"),
            Err(PayloadError::Head(_))
        ));
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap_err(),
            PayloadError::Partial
        );
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc").unwrap_err(),
            PayloadError::ShortBody { have: 3, want: 9 }
        );
        assert_eq!(
            parse_request(b"GET x HTTP/1.1\r\n\r\n").unwrap_err(),
            PayloadError::Invalid("request target")
        );
        // GoReplay's doc example: HTTP/1.0 and absolute-form targets are kept.
        let r = parse_request(b"GET http://a.example/x HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(r.version, Version::HTTP_10);
        assert_eq!(r.target_authority.unwrap().as_str(), "a.example");
    }
}
