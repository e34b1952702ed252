//! The arguments of a message by role (see the table in [`super`]), and the typed data each
//! role accepts.

use super::{Invalid, Notes};
use crate::mirror::headers::{self, HeaderList};
use crate::spop::{Message, TypedData};
use bytes::Bytes;
use http::Version;
use std::net::IpAddr;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Method,
    Target,
    Version,
    Headers,
    Body,
    /// The client address (optional): sticky sampling and forwarding headers.
    Src,
    /// The request's id (optional): shadow comparison pairs responses by it.
    Id,
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
            (b"arg_src", Role::Src),
            (b"src", Role::Src),
            (b"arg_id", Role::Id),
            (b"id", Role::Id),
            (b"unique_id", Role::Id),
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
            Role::Src => "src",
            Role::Id => "id",
        }
    }
}

/// The arguments of one message, by role (first occurrence of each).
#[derive(Default)]
pub(super) struct Args<'a> {
    pub(super) method: Option<&'a TypedData>,
    pub(super) target: Option<&'a TypedData>,
    version: Option<&'a TypedData>,
    headers: Option<&'a TypedData>,
    body: Option<&'a TypedData>,
    src: Option<&'a TypedData>,
    id: Option<&'a TypedData>,
}

pub(super) fn match_args<'a>(message: &'a Message, notes: &mut Notes) -> Args<'a> {
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
            Role::Src => &mut args.src,
            Role::Id => &mut args.id,
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
pub(super) fn bytes_of(value: &TypedData, role: Role) -> Result<&Bytes, Invalid> {
    match value {
        TypedData::String(b) | TypedData::Binary(b) => Ok(b),
        TypedData::Null => Err(Invalid::Null(role.label())),
        other => Err(Invalid::WrongType(role.label(), other.type_name())),
    }
}

impl Args<'_> {
    /// Missing, NULL or not text: HTTP/1.1.
    pub(super) fn version(&self) -> Version {
        match self.version.and_then(TypedData::as_bytes) {
            Some(v) => parse_version(v),
            None => Version::HTTP_11,
        }
    }

    /// BINARY is `req.hdrs_bin`, STRING is `req.hdrs`; missing is noted and means none.
    pub(super) fn headers(&self, notes: &mut Notes) -> Result<HeaderList, Invalid> {
        match self.headers {
            None => {
                notes.no_headers = true;
                Ok(HeaderList::new())
            }
            Some(TypedData::Binary(b)) => Ok(headers::parse_hdrs_bin(b)?),
            Some(TypedData::String(s)) => Ok(headers::parse_hdrs_text(s)?),
            Some(TypedData::Null) => Err(Invalid::Null(Role::Headers.label())),
            Some(other) => Err(Invalid::WrongType(Role::Headers.label(), other.type_name())),
        }
    }

    /// Missing or NULL: empty.
    pub(super) fn body(&self) -> Result<Bytes, Invalid> {
        match self.body {
            None | Some(TypedData::Null) => Ok(Bytes::new()),
            Some(TypedData::Binary(b) | TypedData::String(b)) => Ok(b.clone()),
            Some(other) => Err(Invalid::WrongType(Role::Body.label(), other.type_name())),
        }
    }
}

impl Args<'_> {
    /// The client address: IPv4/IPv6 typed data (`src`), or its text. Optional: missing,
    /// NULL or anything else is no address, never an invalid message.
    pub(super) fn src(&self) -> Option<IpAddr> {
        match self.src? {
            TypedData::Ipv4(a) => Some(IpAddr::V4(*a)),
            TypedData::Ipv6(a) => Some(IpAddr::V6(*a)),
            TypedData::String(b) | TypedData::Binary(b) => {
                std::str::from_utf8(b).ok()?.trim().parse().ok()
            }
            _ => None,
        }
    }
}

impl Args<'_> {
    /// The request's id: non-empty text or bytes, at most [`MAX_ID`] long; anything else
    /// (missing, NULL, empty, too long) is no id, never an invalid message.
    pub(super) fn id(&self) -> Option<Bytes> {
        match self.id? {
            TypedData::String(b) | TypedData::Binary(b) if !b.is_empty() && b.len() <= MAX_ID => {
                Some(b.clone())
            }
            _ => None,
        }
    }
}

/// The longest request id kept (HAProxy's unique ids are a few dozen bytes).
pub(super) const MAX_ID: usize = 256;

/// `1.0` stays HTTP/1.0; everything else (1.1, 2.0, 3.0, unknown) goes out as HTTP/1.1.
fn parse_version(v: &[u8]) -> Version {
    let v = v.strip_prefix(b"HTTP/").unwrap_or(v);
    if v == b"1.0" {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{b, msg, parse_ok, s};
    use super::super::{parse, Skip};
    use super::*;

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
    fn src_argument() {
        let with = |v: TypedData| {
            let m = msg(
                "mirror",
                vec![
                    ("arg_method", s(b"GET")),
                    ("arg_path", s(b"/")),
                    ("arg_src", v),
                ],
            );
            parse_ok(&m).src
        };
        assert_eq!(
            with(TypedData::Ipv4([10, 0, 0, 1].into())),
            Some([10, 0, 0, 1].into())
        );
        let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(with(TypedData::Ipv6(v6)), Some(v6.into()));
        assert_eq!(with(s(b"192.0.2.7")), Some([192, 0, 2, 7].into()));
        assert_eq!(with(s(b"not an ip")), None);
        assert_eq!(with(TypedData::Null), None);
        assert_eq!(with(TypedData::Uint32(7)), None);
        let m = msg(
            "mirror",
            vec![("arg_method", s(b"GET")), ("arg_path", s(b"/"))],
        );
        assert_eq!(parse_ok(&m).src, None);
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
    fn versions() {
        assert_eq!(parse_version(b"1.0"), Version::HTTP_10);
        assert_eq!(parse_version(b"HTTP/1.0"), Version::HTTP_10);
        for v in [&b"1.1"[..], b"2.0", b"3.0", b"", b"junk"] {
            assert_eq!(parse_version(v), Version::HTTP_11);
        }
    }
}
