//! Pure: one response as the comparison sees it, from the primary's SPOE message or from a
//! target's delivery.
//!
//! The primary's message (`spoe-message mirror-response`), arguments matched by name:
//!
//! | role    | names                    | types                                       |
//! |---------|--------------------------|---------------------------------------------|
//! | id      | `arg_id` `id` `unique_id` | STRING / BINARY (`unique-id`)              |
//! | status  | `arg_status` `status`    | any integer, or its text                    |
//! | headers | `arg_hdrs` `hdrs` `headers` | BINARY = `res.hdrs_bin`, STRING = `res.hdrs` |
//! | body    | `arg_body` `body`        | BINARY / STRING (`res.body`; missing: empty) |

use crate::mirror::{parse_hdrs_bin, parse_hdrs_text, Captured};
use crate::spop::{Message, TypedData};
use bytes::Bytes;

/// One side's response. Everything is a copy, never a slice of a frame buffer: a response may
/// wait for its pair for the whole window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lower-case names, in the order received, duplicates kept.
    pub headers: Vec<(String, Bytes)>,
    /// Empty when `too_large`.
    pub body: Bytes,
    /// The body was larger than the limit: this response is not compared.
    pub too_large: bool,
}

impl Response {
    /// Bytes it holds, for the comparator's memory bound.
    pub fn size(&self) -> usize {
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| n.len().saturating_add(v.len()).saturating_add(32))
            .fold(0, usize::saturating_add);
        128usize
            .saturating_add(headers)
            .saturating_add(self.body.len())
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn from_captured(c: Captured) -> Response {
        Response {
            status: c.status,
            headers: c
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
            body: c.body,
            too_large: c.too_large,
        }
    }
}

/// Why a response message gave no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// No id: nothing to pair it with (logged once).
    #[error("no id argument (arg_id=unique-id)")]
    NoId,
    #[error("{0}")]
    Invalid(&'static str),
}

/// The longest id kept (HAProxy's unique ids are a few dozen bytes).
pub const MAX_ID: usize = 256;

/// The primary's response message → its id and response. A body over `max_body` is kept as
/// `too_large`, without the body.
pub fn parse_primary(message: &Message, max_body: usize) -> Result<(Bytes, Response), Skip> {
    let arg = |names: &[&str]| {
        message
            .args
            .iter()
            .find(|a| {
                names
                    .iter()
                    .any(|n| a.name.eq_ignore_ascii_case(n.as_bytes()))
            })
            .map(|a| &a.value)
    };
    let id = match arg(&["arg_id", "id", "unique_id"]) {
        Some(TypedData::String(b) | TypedData::Binary(b)) if !b.is_empty() => b,
        _ => return Err(Skip::NoId),
    };
    if id.len() > MAX_ID {
        return Err(Skip::Invalid("id longer than 256 bytes"));
    }
    let status = match arg(&["arg_status", "status"]) {
        Some(TypedData::String(s) | TypedData::Binary(s)) => std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok()),
        Some(v) => v.as_u64(),
        None => None,
    }
    .and_then(|s| u16::try_from(s).ok())
    .filter(|s| (100..=999).contains(s))
    .ok_or(Skip::Invalid(
        "no valid status argument (arg_status=status)",
    ))?;
    let headers = match arg(&["arg_hdrs", "hdrs", "headers"]) {
        Some(TypedData::Binary(b)) => parse_hdrs_bin(b),
        Some(TypedData::String(s)) => parse_hdrs_text(s),
        None | Some(TypedData::Null) => Ok(Vec::new()),
        Some(_) => return Err(Skip::Invalid("headers argument of a wrong type")),
    }
    .map_err(|_| Skip::Invalid("malformed response headers"))?;
    let body = match arg(&["arg_body", "body"]) {
        Some(TypedData::Binary(b) | TypedData::String(b)) => b.clone(),
        _ => Bytes::new(),
    };
    // HAProxy hands over what it buffered: a body shorter than its Content-Length was cut
    // (tune.bufsize), and a cut body cannot be compared.
    let announced = headers
        .iter()
        .find(|(n, _)| n == http::header::CONTENT_LENGTH)
        .and_then(|(_, v)| v.to_str().ok()?.trim().parse::<u64>().ok());
    let cut = announced.is_some_and(|n| n != u64::try_from(body.len()).unwrap_or(u64::MAX));
    let too_large = body.len() > max_body || cut;
    Ok((
        Bytes::copy_from_slice(id),
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
            body: match too_large {
                true => Bytes::new(),
                false => Bytes::copy_from_slice(&body),
            },
            too_large,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spop::Arg;

    fn msg(args: Vec<(&str, TypedData)>) -> Message {
        Message {
            name: Bytes::from_static(b"mirror-response"),
            args: args
                .into_iter()
                .map(|(n, v)| Arg {
                    name: Bytes::copy_from_slice(n.as_bytes()),
                    value: v,
                })
                .collect(),
        }
    }

    fn hdrs_bin(h: &[(&str, &str)]) -> Bytes {
        let mut out = Vec::new();
        for (n, v) in h {
            out.push(n.len() as u8);
            out.extend_from_slice(n.as_bytes());
            out.push(v.len() as u8);
            out.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(&[0, 0]);
        Bytes::from(out)
    }

    #[test]
    fn the_documented_message() {
        let m = msg(vec![
            ("arg_id", TypedData::String(Bytes::from_static(b"abc-1"))),
            ("arg_status", TypedData::Int32(201)),
            (
                "arg_hdrs",
                TypedData::Binary(hdrs_bin(&[
                    ("Content-Type", "application/json"),
                    ("X-A", "1"),
                ])),
            ),
            (
                "arg_body",
                TypedData::Binary(Bytes::from_static(b"{\"a\":1}")),
            ),
        ]);
        let (id, r) = parse_primary(&m, 1024).unwrap();
        assert_eq!(&id[..], b"abc-1");
        assert_eq!(r.status, 201);
        assert_eq!(r.headers[0].0, "content-type");
        assert_eq!(r.header("x-a").map(|v| &v[..]), Some(&b"1"[..]));
        assert_eq!(&r.body[..], b"{\"a\":1}");
        assert!(!r.too_large);
    }

    #[test]
    fn large_body_kept_as_too_large() {
        let m = msg(vec![
            ("arg_id", TypedData::String(Bytes::from_static(b"x"))),
            ("arg_status", TypedData::String(Bytes::from_static(b"200"))),
            ("arg_body", TypedData::Binary(Bytes::from(vec![b'a'; 100]))),
        ]);
        let (_, r) = parse_primary(&m, 99).unwrap();
        assert!(r.too_large);
        assert!(r.body.is_empty());
    }

    #[test]
    fn a_body_shorter_than_its_content_length_was_cut() {
        let m = msg(vec![
            ("arg_id", TypedData::String(Bytes::from_static(b"x"))),
            ("arg_status", TypedData::Uint32(200)),
            (
                "arg_hdrs",
                TypedData::Binary(hdrs_bin(&[("content-length", "10")])),
            ),
            ("arg_body", TypedData::Binary(Bytes::from_static(b"12345"))),
        ]);
        assert!(parse_primary(&m, 1024).unwrap().1.too_large);
    }

    #[test]
    fn bad_messages_are_skipped_not_panicked_on() {
        let id = ("arg_id", TypedData::String(Bytes::from_static(b"x")));
        assert_eq!(parse_primary(&msg(vec![]), 10), Err(Skip::NoId));
        assert!(parse_primary(&msg(vec![id.clone()]), 10).is_err());
        for status in [
            TypedData::Int32(-1),
            TypedData::Int64(70_000),
            TypedData::Null,
        ] {
            assert!(parse_primary(&msg(vec![id.clone(), ("arg_status", status)]), 10).is_err());
        }
        let bad_hdrs = TypedData::Binary(Bytes::from_static(b"\x05ab"));
        let m = msg(vec![
            id,
            ("arg_status", TypedData::Uint32(200)),
            ("arg_hdrs", bad_hdrs),
        ]);
        assert!(parse_primary(&m, 10).is_err());
    }
}
