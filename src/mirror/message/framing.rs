//! What a proxy forwards: hop-by-hop headers removed, and a Content-Length that matches the
//! body HAProxy handed over.

use super::{Invalid, Skip};
use crate::mirror::headers::HeaderList;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) a proxy does not forward, besides those that
/// `Connection` lists.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers and makes the framing match `body_len`: a Content-Length the
/// body does not fill means HAProxy truncated the body; a de-chunked body (HAProxy hands over
/// the decoded bytes) gets a Content-Length. Returns the headers and whether Host is present.
pub fn forwardable_headers(
    headers: HeaderList,
    body_len: usize,
) -> Result<(HeaderList, bool), Skip> {
    let listed: Vec<HeaderName> = headers
        .iter()
        .filter(|(n, _)| n == CONNECTION)
        .filter_map(|(_, v)| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let chunked = headers.iter().any(|(n, _)| n == TRANSFER_ENCODING);

    let mut content_length: Option<u64> = None;
    let mut has_host = false;
    // Filtered in place: the parsers leave room for the Content-Length pushed below.
    let mut out = headers;
    out.retain(|(name, _)| {
        let hop = HOP_BY_HOP.contains(&name.as_str()) || listed.contains(name);
        // With Transfer-Encoding, Content-Length is ignored (RFC 9112 §6.3) and replaced.
        let replaced_length = chunked && name == CONTENT_LENGTH;
        !(hop || replaced_length)
    });
    for (name, value) in &out {
        if name == CONTENT_LENGTH {
            for part in value.as_bytes().split(|&b| b == b',') {
                let n = parse_u64(trim(part)).ok_or(Invalid::ContentLength)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(Invalid::ContentLength.into());
                }
                content_length = Some(n);
            }
        }
        has_host |= name == HOST;
    }

    let body = u64::try_from(body_len).map_err(|_| Invalid::BodyTooLong)?;
    match content_length {
        Some(cl) if body < cl => {
            return Err(Skip::Truncated {
                body: body_len,
                content_length: cl,
            })
        }
        Some(cl) if body > cl => return Err(Invalid::BodyTooLong.into()),
        Some(_) => {}
        None if chunked || body > 0 => out.push((CONTENT_LENGTH, HeaderValue::from(body))),
        None => {}
    }
    Ok((out, has_host))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or_default()
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let d = char::from(d).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hl(pairs: &[(&'static str, &'static str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn hop_by_hop_is_stripped() {
        let h = hl(&[
            ("host", "h"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("proxy-connection", "x"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("upgrade", "h2c"),
            ("x-keep", "1"),
            ("proxy-authorization", "Basic x"),
        ]);
        let (out, has_host) = forwardable_headers(h, 0).unwrap();
        let names: Vec<_> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["host", "x-keep", "proxy-authorization"]);
        assert!(has_host);
    }

    #[test]
    fn framing() {
        // Content-Length kept in place when the body fills it.
        let (out, _) = forwardable_headers(hl(&[("content-length", "3"), ("x", "1")]), 3).unwrap();
        assert_eq!(
            out.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["content-length", "x"]
        );
        // Truncated.
        assert_eq!(
            forwardable_headers(hl(&[("content-length", "10")]), 3).unwrap_err(),
            Skip::Truncated {
                body: 3,
                content_length: 10
            }
        );
        // Longer than announced, invalid, conflicting.
        assert_eq!(
            forwardable_headers(hl(&[("content-length", "1")]), 3).unwrap_err(),
            Skip::Invalid(Invalid::BodyTooLong)
        );
        for bad in ["x", "-1", "", "99999999999999999999", "1 2"] {
            let h = vec![(CONTENT_LENGTH, HeaderValue::from_str(bad).unwrap())];
            assert_eq!(
                forwardable_headers(h, 0).unwrap_err(),
                Skip::Invalid(Invalid::ContentLength),
                "{bad:?}"
            );
        }
        let h = hl(&[("content-length", "3"), ("content-length", "4")]);
        assert_eq!(
            forwardable_headers(h, 3).unwrap_err(),
            Skip::Invalid(Invalid::ContentLength)
        );
        // Repeated identical values are one length.
        assert!(forwardable_headers(hl(&[("content-length", "3, 3")]), 3).is_ok());
        // De-chunked: transfer-encoding (and any content-length) replaced by the real length.
        let (out, _) =
            forwardable_headers(hl(&[("transfer-encoding", "chunked"), ("x", "1")]), 5).unwrap();
        assert_eq!(out, hl(&[("x", "1"), ("content-length", "5")]));
        let (out, _) = forwardable_headers(hl(&[("transfer-encoding", "chunked")]), 0).unwrap();
        assert_eq!(out, hl(&[("content-length", "0")]));
        // No framing and no body: nothing added (GET, HEAD).
        let (out, has_host) = forwardable_headers(hl(&[("accept", "*/*")]), 0).unwrap();
        assert_eq!((out.len(), has_host), (1, false));
    }
}
