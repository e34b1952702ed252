//! Pure: one decoded SPOE message → a [`MirrorRequest`], the target-independent copy of the
//! client's request.
//!
//! Arguments are matched by name, not by position, and any of the names that published
//! configurations use is accepted (first occurrence wins):
//!
//! | role    | names                              | types                                   |
//! |---------|------------------------------------|-----------------------------------------|
//! | method  | `arg_method` `method`              | STRING / BINARY                         |
//! | target  | `arg_path` `path` `uri` `url`      | STRING / BINARY                         |
//! | version | `arg_ver` `ver` `version`          | STRING / BINARY (missing: 1.1)          |
//! | headers | `arg_hdrs` `hdrs` `headers`        | BINARY = `req.hdrs_bin`, STRING = `req.hdrs` |
//! | body    | `arg_body` `body`                  | BINARY / STRING (missing or NULL: empty) |
//! | src     | `arg_src` `src`                    | IPV4 / IPV6 / STRING (optional)         |
//! | id      | `arg_id` `id` `unique_id`          | STRING / BINARY (optional)              |
//!
//! A message without method and target is not a mirror message and is ignored. NULL means
//! HAProxy's fetch failed.
//!
//! - [`args`]: the argument roles above and the typed-data extraction of each.
//! - [`target`]: the request target ([`parse_target`]).
//! - [`framing`]: hop-by-hop headers removed, Content-Length made to match the body.

mod args;
mod framing;
mod target;
#[cfg(test)]
mod test_util;

pub use framing::forwardable_headers;
pub use target::parse_target;

use super::headers::{HeaderError, HeaderList};
use crate::spop::Message;
use args::Role;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{Method, Version};
use std::net::IpAddr;

/// The client's request, validated, ready to be sent to any mirror target.
#[derive(Debug, Clone)]
pub struct MirrorRequest {
    /// Sent as received (any RFC 9110 token; case kept).
    pub method: Method,
    /// Origin-form path and query as received, or `*`.
    pub target: PathAndQuery,
    /// The authority of an absolute-form target: the Host to send when the request has none.
    /// It never decides where the agent connects.
    pub target_authority: Option<Authority>,
    /// HTTP/1.0 or HTTP/1.1 (HTTP/2 and HTTP/3 requests go out as HTTP/1.1).
    pub version: Version,
    /// In the client's order, hop-by-hop headers removed, Content-Length matching `body`.
    pub headers: HeaderList,
    pub has_host: bool,
    pub body: Bytes,
    /// The client address, from an optional `src` / `arg_src` argument (IPv4, IPv6, or text).
    pub src: Option<IpAddr>,
    /// The request's id (`arg_id=unique-id`, optional): what pairs the mirror's response with
    /// the primary's for shadow comparison.
    pub id: Option<Bytes>,
}

impl MirrorRequest {
    /// Bytes this request holds, for the memory budget (the frame buffer it points into is
    /// shared, so this counts what the request needs, not what the allocator holds).
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        const OVERHEAD: usize = 256;
        OVERHEAD + self.body.len() + self.target.as_str().len() + headers
    }
}

/// Why a message produced no request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// Not a mirror message: logged once per message name and reason, not counted.
    #[error("{0}")]
    Ignored(&'static str),
    /// A mirror message that cannot make a valid HTTP request (`mirror_skipped_invalid`).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// HAProxy handed over less body than the Content-Length announces
    /// (`mirror_skipped_truncated`).
    #[error("body truncated by HAProxy: {body} of {content_length} bytes")]
    Truncated { body: usize, content_length: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("argument {0} is NULL (HAProxy's fetch failed)")]
    Null(&'static str),
    #[error("argument {0} has type {1}")]
    WrongType(&'static str, &'static str),
    #[error("invalid method token")]
    Method,
    #[error("CONNECT cannot be mirrored")]
    Connect,
    #[error("invalid request target: {0}")]
    Target(&'static str),
    #[error("malformed headers: {0}")]
    Headers(#[from] HeaderError),
    #[error("invalid or conflicting content-length")]
    ContentLength,
    #[error("body longer than its content-length")]
    BodyTooLong,
}

/// Things worth one log line per message name, that do not stop the request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Notes {
    /// The first argument of this role was used; this one repeated it.
    pub duplicate: Option<&'static str>,
    /// No headers argument: requests go out with Host (and Content-Length) only.
    pub no_headers: bool,
}

/// Turns one message into a request. `notes` collects what should be logged once.
pub fn parse(message: &Message, notes: &mut Notes) -> Result<MirrorRequest, Skip> {
    let args = args::match_args(message, notes);
    let (method, target) = match (args.method, args.target) {
        (Some(m), Some(t)) => (m, t),
        (None, None) => return Err(Skip::Ignored("no method and path arguments")),
        (None, Some(_)) => return Err(Skip::Ignored("no method argument")),
        (Some(_), None) => return Err(Skip::Ignored("no path argument")),
    };

    let method =
        Method::from_bytes(args::bytes_of(method, Role::Method)?).map_err(|_| Invalid::Method)?;
    if method == Method::CONNECT {
        return Err(Invalid::Connect.into());
    }
    let (target, target_authority) = parse_target(args::bytes_of(target, Role::Target)?)?;
    let version = args.version();
    let headers = args.headers(notes)?;
    let body = args.body()?;
    let (headers, has_host) = forwardable_headers(headers, body.len())?;
    Ok(MirrorRequest {
        method,
        target,
        target_authority,
        version,
        headers,
        has_host,
        body,
        src: args.src(),
        id: args.id(),
    })
}

#[cfg(test)]
mod tests {
    use super::test_util::{header_names, msg, parse_ok, s, standard};
    use super::*;
    use crate::spop::TypedData;

    #[test]
    fn documented_configuration() {
        let r = parse_ok(&standard(
            b"POST",
            b"/x?a=%20",
            b"\x04host\x01h\x0ccontent-type\x01t\x00\x00",
            b"{}",
        ));
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.target.as_str(), "/x?a=%20");
        assert_eq!(r.version, Version::HTTP_11);
        assert!(r.has_host);
        assert_eq!(header_names(&r), ["host", "content-type", "content-length"]);
        assert_eq!(r.headers[2].1, "2");
        assert_eq!(&r.body[..], b"{}");
    }

    #[test]
    fn unknown_message_is_ignored() {
        let m = msg(
            "check-client-ip",
            vec![("ip", TypedData::Ipv4([1, 2, 3, 4].into()))],
        );
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Ignored("no method and path arguments")
        );
        let m = msg("mirror", vec![("arg_method", s(b"GET"))]);
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Ignored("no path argument")
        );
        let m = msg("mirror", vec![("arg_path", s(b"/"))]);
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Ignored("no method argument")
        );
    }

    #[test]
    fn methods() {
        for ok in [
            &b"GET"[..],
            b"get",
            b"PROPFIND",
            b"MKCOL",
            b"X-Custom_1",
            b"PATCH",
            b"!#$%&'*+-.^_`|~",
        ] {
            let m = msg(
                "mirror",
                vec![
                    ("arg_method", TypedData::String(Bytes::from(ok))),
                    ("arg_path", s(b"/")),
                ],
            );
            assert_eq!(parse_ok(&m).method.as_str().as_bytes(), ok);
        }
        for bad in [&b""[..], b"GE T", b"GET\r\n", b"G(T", b"caf\xc3\xa9"] {
            let m = msg(
                "mirror",
                vec![
                    ("arg_method", TypedData::String(Bytes::from(bad))),
                    ("arg_path", s(b"/")),
                ],
            );
            assert_eq!(
                parse(&m, &mut Notes::default()).unwrap_err(),
                Skip::Invalid(Invalid::Method),
                "{bad:?}"
            );
        }
        let m = msg(
            "mirror",
            vec![("arg_method", s(b"CONNECT")), ("arg_path", s(b"h:443"))],
        );
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Invalid(Invalid::Connect)
        );
    }

    #[test]
    fn size_counts_body_and_headers() {
        let r = parse_ok(&standard(b"POST", b"/x", b"\x01a\x01b\x00\x00", b"12345"));
        // a: b (1+1+4) + content-length: 5 (14+1+4) + body 5 + target 2 + overhead.
        assert_eq!(r.size(), 256 + 5 + 2 + 6 + 19);
    }
}
