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
//!
//! A message without method and target is not a mirror message and is ignored. NULL means
//! HAProxy's fetch failed.

use super::headers::{self, HeaderError, HeaderList};
use crate::spop::{Message, TypedData};
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderName, HeaderValue, Method, Version};

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Method,
    Target,
    Version,
    Headers,
    Body,
}

impl Role {
    fn of(name: &[u8]) -> Option<Role> {
        const NAMES: &[(&[u8], Role)] = &[
            (b"arg_method", Role::Method),
            (b"method", Role::Method),
            (b"arg_path", Role::Target),
            (b"path", Role::Target),
            (b"uri", Role::Target),
            (b"url", Role::Target),
            (b"arg_ver", Role::Version),
            (b"ver", Role::Version),
            (b"version", Role::Version),
            (b"arg_hdrs", Role::Headers),
            (b"hdrs", Role::Headers),
            (b"headers", Role::Headers),
            (b"arg_body", Role::Body),
            (b"body", Role::Body),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, r)| r)
    }

    fn label(self) -> &'static str {
        match self {
            Role::Method => "method",
            Role::Target => "path",
            Role::Version => "version",
            Role::Headers => "headers",
            Role::Body => "body",
        }
    }
}

/// The arguments of one message, by role (first occurrence of each).
#[derive(Default)]
struct Args<'a> {
    method: Option<&'a TypedData>,
    target: Option<&'a TypedData>,
    version: Option<&'a TypedData>,
    headers: Option<&'a TypedData>,
    body: Option<&'a TypedData>,
}

fn match_args<'a>(message: &'a Message, notes: &mut Notes) -> Args<'a> {
    let mut args = Args::default();
    for arg in &message.args {
        let Some(role) = Role::of(&arg.name) else {
            continue;
        };
        let slot = match role {
            Role::Method => &mut args.method,
            Role::Target => &mut args.target,
            Role::Version => &mut args.version,
            Role::Headers => &mut args.headers,
            Role::Body => &mut args.body,
        };
        if slot.is_some() {
            notes.duplicate.get_or_insert(role.label());
        } else {
            *slot = Some(&arg.value);
        }
    }
    args
}

/// STRING or BINARY bytes of a required argument.
fn bytes_of(value: &TypedData, role: Role) -> Result<&Bytes, Invalid> {
    match value {
        TypedData::String(b) | TypedData::Binary(b) => Ok(b),
        TypedData::Null => Err(Invalid::Null(role.label())),
        other => Err(Invalid::WrongType(role.label(), other.type_name())),
    }
}

/// Turns one message into a request. `notes` collects what should be logged once.
pub fn parse(message: &Message, notes: &mut Notes) -> Result<MirrorRequest, Skip> {
    let args = match_args(message, notes);
    let (method, target) = match (args.method, args.target) {
        (Some(m), Some(t)) => (m, t),
        (None, None) => return Err(Skip::Ignored("no method and path arguments")),
        (None, Some(_)) => return Err(Skip::Ignored("no method argument")),
        (Some(_), None) => return Err(Skip::Ignored("no path argument")),
    };

    let method =
        Method::from_bytes(bytes_of(method, Role::Method)?).map_err(|_| Invalid::Method)?;
    if method == Method::CONNECT {
        return Err(Invalid::Connect.into());
    }
    let (target, target_authority) = parse_target(bytes_of(target, Role::Target)?)?;
    let version = match args.version.and_then(TypedData::as_bytes) {
        Some(v) => parse_version(v),
        None => Version::HTTP_11,
    };
    let headers = match args.headers {
        None => {
            notes.no_headers = true;
            HeaderList::new()
        }
        Some(TypedData::Binary(b)) => headers::parse_hdrs_bin(b).map_err(Invalid::from)?,
        Some(TypedData::String(s)) => headers::parse_hdrs_text(s).map_err(Invalid::from)?,
        Some(TypedData::Null) => return Err(Invalid::Null(Role::Headers.label()).into()),
        Some(other) => {
            return Err(Invalid::WrongType(Role::Headers.label(), other.type_name()).into())
        }
    };
    let body = match args.body {
        None | Some(TypedData::Null) => Bytes::new(),
        Some(TypedData::Binary(b) | TypedData::String(b)) => b.clone(),
        Some(other) => return Err(Invalid::WrongType(Role::Body.label(), other.type_name()).into()),
    };
    let (headers, has_host) = forwardable_headers(headers, body.len())?;
    Ok(MirrorRequest {
        method,
        target,
        target_authority,
        version,
        headers,
        has_host,
        body,
    })
}

/// `1.0` stays HTTP/1.0; everything else (1.1, 2.0, 3.0, unknown) goes out as HTTP/1.1.
fn parse_version(v: &[u8]) -> Version {
    let v = v.strip_prefix(b"HTTP/").unwrap_or(v);
    if v == b"1.0" {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    }
}

/// Origin-form `/p?q` and `*` are kept exactly; absolute-form `http://a/p?q` (what HAProxy's
/// `url` gives for HTTP/2 and HTTP/3 clients) is reduced to `/p?q` plus its authority.
pub fn parse_target(raw: &Bytes) -> Result<(PathAndQuery, Option<Authority>), Invalid> {
    // The http crate would silently drop a fragment; a client never sends one, so refuse it.
    if raw.contains(&b'#') {
        return Err(Invalid::Target("fragment"));
    }
    let scheme_len = [&b"http://"[..], b"https://"]
        .iter()
        .find(|s| {
            raw.get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        })
        .map(|s| s.len());
    let Some(scheme_len) = scheme_len else {
        if raw.is_empty() {
            return Err(Invalid::Target("empty"));
        }
        if raw.first() != Some(&b'/') && raw.as_ref() != b"*" {
            return Err(Invalid::Target("neither origin-form nor absolute-form"));
        }
        let path = PathAndQuery::from_maybe_shared(raw.clone())
            .map_err(|_| Invalid::Target("invalid characters"))?;
        return Ok((path, None));
    };
    let rest = raw.slice(scheme_len..);
    let auth_end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = rest.slice(..auth_end);
    // Host never carries userinfo.
    let host_port = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => authority.slice(at + 1..),
        None => authority,
    };
    let authority = Authority::from_maybe_shared(host_port)
        .map_err(|_| Invalid::Target("invalid authority"))?;
    let tail = rest.slice(auth_end..);
    let path = match tail.first() {
        None => Ok(PathAndQuery::from_static("/")),
        Some(b'/') => PathAndQuery::from_maybe_shared(tail),
        _ => {
            // `http://h?q` has an empty path: origin-form needs the `/`.
            let mut p = Vec::with_capacity(tail.len() + 1);
            p.push(b'/');
            p.extend_from_slice(&tail);
            PathAndQuery::from_maybe_shared(Bytes::from(p))
        }
    }
    .map_err(|_| Invalid::Target("invalid characters"))?;
    Ok((path, Some(authority)))
}

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
    use crate::spop::Arg;

    fn s(v: &'static [u8]) -> TypedData {
        TypedData::String(Bytes::from_static(v))
    }
    fn b(v: &'static [u8]) -> TypedData {
        TypedData::Binary(Bytes::from_static(v))
    }
    fn msg(name: &'static str, args: Vec<(&'static str, TypedData)>) -> Message {
        Message {
            name: Bytes::from_static(name.as_bytes()),
            args: args
                .into_iter()
                .map(|(n, value)| Arg {
                    name: Bytes::from_static(n.as_bytes()),
                    value,
                })
                .collect(),
        }
    }
    fn standard(
        method: &'static [u8],
        path: &'static [u8],
        hdrs: &'static [u8],
        body: &'static [u8],
    ) -> Message {
        msg(
            "mirror",
            vec![
                ("arg_method", s(method)),
                ("arg_path", s(path)),
                ("arg_ver", s(b"1.1")),
                ("arg_hdrs", b(hdrs)),
                ("arg_body", b(body)),
            ],
        )
    }
    fn parse_ok(m: &Message) -> MirrorRequest {
        parse(m, &mut Notes::default()).unwrap()
    }
    fn header_names(r: &MirrorRequest) -> Vec<&str> {
        r.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

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
    fn aliases_from_published_configurations() {
        for (m, p, v, h, bd) in [
            ("method", "path", "ver", "hdrs", "body"),
            ("method", "uri", "version", "headers", "body"),
            ("METHOD", "url", "ver", "hdrs", "body"),
        ] {
            let m = msg(
                "anything",
                vec![
                    (bd, b(b"abc")),
                    (h, s(b"host: h\r\ncontent-length: 3\r\n\r\n")),
                    (v, s(b"1.0")),
                    (p, s(b"/a")),
                    (m, s(b"PUT")),
                ],
            );
            let r = parse_ok(&m);
            assert_eq!(
                (r.method.as_str(), r.target.as_str(), r.version),
                ("PUT", "/a", Version::HTTP_10)
            );
            assert_eq!(&r.body[..], b"abc");
        }
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
    fn null_and_wrong_types() {
        let m = msg(
            "mirror",
            vec![("arg_method", TypedData::Null), ("arg_path", s(b"/"))],
        );
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Invalid(Invalid::Null("method"))
        );
        let m = msg(
            "mirror",
            vec![
                ("arg_method", s(b"GET")),
                ("arg_path", TypedData::Uint32(1)),
            ],
        );
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Invalid(Invalid::WrongType("path", "UINT32"))
        );
        let m = msg(
            "mirror",
            vec![
                ("arg_method", s(b"GET")),
                ("arg_path", s(b"/")),
                ("arg_hdrs", TypedData::Null),
            ],
        );
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Invalid(Invalid::Null("headers"))
        );
        // A NULL body is an empty body: the content-length check decides.
        let m = msg(
            "mirror",
            vec![
                ("arg_method", s(b"POST")),
                ("arg_path", s(b"/")),
                ("arg_hdrs", b(b"\x0econtent-length\x015\x00\x00")),
                ("arg_body", TypedData::Null),
            ],
        );
        assert_eq!(
            parse(&m, &mut Notes::default()).unwrap_err(),
            Skip::Truncated {
                body: 0,
                content_length: 5
            }
        );
        // NULL version: HTTP/1.1.
        let m = msg(
            "mirror",
            vec![
                ("arg_method", s(b"GET")),
                ("arg_path", s(b"/")),
                ("arg_ver", TypedData::Null),
            ],
        );
        assert_eq!(parse_ok(&m).version, Version::HTTP_11);
    }

    #[test]
    fn duplicates_first_wins_and_are_noted() {
        let m = msg(
            "mirror",
            vec![
                ("arg_method", s(b"GET")),
                ("arg_path", s(b"/first")),
                ("path", s(b"/second")),
            ],
        );
        let mut notes = Notes::default();
        let r = parse(&m, &mut notes).unwrap();
        assert_eq!(r.target.as_str(), "/first");
        assert_eq!(
            notes,
            Notes {
                duplicate: Some("path"),
                no_headers: true
            }
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
    fn targets() {
        let t = |raw: &'static [u8]| parse_target(&Bytes::from_static(raw));
        let (p, a) = t(b"/search?q=caf%C3%A9&x=1").unwrap();
        assert_eq!((p.as_str(), a), ("/search?q=caf%C3%A9&x=1", None));
        assert_eq!(t(b"*").unwrap().0.as_str(), "*");
        let (p, a) = t(b"http://169.254.169.254/latest?x=1").unwrap();
        assert_eq!(
            (p.as_str(), a.unwrap().as_str()),
            ("/latest?x=1", "169.254.169.254")
        );
        let (p, a) = t(b"HTTPS://u:pw@h:8443").unwrap();
        assert_eq!((p.as_str(), a.unwrap().as_str()), ("/", "h:8443"));
        let (p, a) = t(b"http://h?q=1").unwrap();
        assert_eq!((p.as_str(), a.unwrap().as_str()), ("/?q=1", "h"));
        // UTF-8 bytes are valid in http 1.x paths; other raw bytes are not.
        assert_eq!(t(b"/caf\xc3\xa9").unwrap().0.as_str(), "/caf\u{e9}");
        for bad in [
            &b""[..],
            b"**",
            b"foo/bar",
            b"h:443",
            b"/a#frag",
            b"/\xff",
            b"/a b",
            b"http://bad host/",
        ] {
            assert!(matches!(t(bad), Err(Invalid::Target(_))), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(b"1.0"), Version::HTTP_10);
        assert_eq!(parse_version(b"HTTP/1.0"), Version::HTTP_10);
        for v in [&b"1.1"[..], b"2.0", b"3.0", b"", b"junk"] {
            assert_eq!(parse_version(v), Version::HTTP_11);
        }
    }

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

    #[test]
    fn size_counts_body_and_headers() {
        let r = parse_ok(&standard(b"POST", b"/x", b"\x01a\x01b\x00\x00", b"12345"));
        // a: b (1+1+4) + content-length: 5 (14+1+4) + body 5 + target 2 + overhead.
        assert_eq!(r.size(), 256 + 5 + 2 + 6 + 19);
    }
}
