//! Pure: a [`MirrorRequest`] and one mirror target's base URL → the `http::Request` hyper
//! sends.
//!
//! The URI is always `-u`'s scheme and authority (that is where the client connects) with
//! `-u`'s path prepended to the request target; hyper-util reduces it to origin-form on the
//! wire (absolute-form through a forward proxy).

use super::message::MirrorRequest;
use super::Error;
use crate::config::MirrorUrl;
use bytes::{Bytes, BytesMut};
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Uri, Version};
use http_body_util::Full;

/// Scheme, authority and path prefix of a mirror URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub scheme: Scheme,
    pub authority: Authority,
    /// `-u`'s path without trailing slashes; empty when `-u` has none.
    pub prefix: String,
}

impl Base {
    /// The mirror URL's parts, with the same rules as `-u` ([`MirrorUrl`]): one check for
    /// the command line and the engine.
    pub fn from_uri(url: &Uri) -> Result<Base, Error> {
        let url = MirrorUrl::from_uri(url).map_err(Error::Url)?;
        Ok(Base {
            scheme: url.scheme().clone(),
            authority: url.authority().clone(),
            prefix: url.prefix().to_owned(),
        })
    }

    /// The path and query sent for `target`: the prefix, then the target as received.
    /// `*` stays `*` without a prefix and becomes the prefix's root (`/pre/`) with one.
    pub fn path_for(&self, target: &PathAndQuery) -> Result<PathAndQuery, Error> {
        if self.prefix.is_empty() {
            return Ok(target.clone());
        }
        let target = if target.as_str() == "*" {
            "/"
        } else {
            target.as_str()
        };
        let mut buf = BytesMut::with_capacity(self.prefix.len() + target.len());
        buf.extend_from_slice(self.prefix.as_bytes());
        buf.extend_from_slice(target.as_bytes());
        PathAndQuery::from_maybe_shared(buf.freeze()).map_err(|_| Error::Build("target"))
    }
}

/// Builds the request for one target. `extra` headers (a forward proxy's `-U`/`-H`) go last.
pub fn build(
    req: &MirrorRequest,
    base: &Base,
    extra: &[(HeaderName, HeaderValue)],
) -> Result<Request<Full<Bytes>>, Error> {
    let uri = Uri::builder()
        .scheme(base.scheme.clone())
        .authority(base.authority.clone())
        .path_and_query(base.path_for(&req.target)?)
        .build()
        .map_err(|_| Error::Build("uri"))?;
    let mut out = Request::builder()
        .method(req.method.clone())
        .uri(uri)
        .version(req.version)
        .body(Full::new(req.body.clone()))
        .map_err(|_| Error::Build("request"))?;
    let headers = out.headers_mut();
    headers.reserve(req.headers.len() + extra.len() + 1);
    // HTTP/1.1 requires Host (RFC 9112 §3.2); it comes first, as clients send it.
    if !req.has_host && req.version == Version::HTTP_11 {
        let authority = req.target_authority.as_ref().unwrap_or(&base.authority);
        let value = HeaderValue::from_str(authority.as_str()).map_err(|_| Error::Build("host"))?;
        headers.append(HOST, value);
    }
    for (name, value) in req.headers.iter().chain(extra) {
        headers.append(name.clone(), value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::message::{parse_target, MirrorRequest};
    use http::Method;

    fn base(url: &str) -> Base {
        Base::from_uri(&url.parse().unwrap()).unwrap()
    }

    fn request(target: &'static [u8], headers: &[(&'static str, &'static str)]) -> MirrorRequest {
        let (target, target_authority) = parse_target(&Bytes::from_static(target)).unwrap();
        let headers: Vec<_> = headers
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect();
        let has_host = headers.iter().any(|(n, _)| n == HOST);
        MirrorRequest {
            method: Method::GET,
            target,
            target_authority,
            version: Version::HTTP_11,
            headers,
            has_host,
            body: Bytes::new(),
            src: None,
            id: None,
        }
    }

    #[test]
    fn base_url() {
        assert_eq!(base("http://m:8100").prefix, "");
        assert_eq!(base("http://m:8100/").prefix, "");
        assert_eq!(base("https://m/pre/path//").prefix, "/pre/path");
        assert_eq!(base("HTTP://m/").scheme, Scheme::HTTP);
        for bad in ["ftp://m/", "http://u:p@m/", "http://m/?q=1", "/relative"] {
            assert!(Base::from_uri(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_and_targets() {
        let cases = [
            ("http://m:1", &b"/a?b=%2F%20"[..], "http://m:1/a?b=%2F%20"),
            ("http://m:1/pre/", b"/a?b", "http://m:1/pre/a?b"),
            ("http://m:1/pre", b"/", "http://m:1/pre/"),
            ("http://m:1/pre/", b"*", "http://m:1/pre/"),
            (
                "http://m:1",
                b"http://169.254.169.254/latest",
                "http://m:1/latest",
            ),
            ("https://m/p", b"https://other:9/x?y", "https://m/p/x?y"),
        ];
        for (url, target, want) in cases {
            let r = build(&request(target, &[("host", "h")]), &base(url), &[]).unwrap();
            assert_eq!(r.uri().to_string(), want, "{url} + {target:?}");
        }
        // `*` without a prefix: the path is `*` (hyper-util sends it as the origin-form).
        let r = build(&request(b"*", &[]), &base("http://m:1"), &[]).unwrap();
        assert_eq!(r.uri().path_and_query().unwrap().as_str(), "*");
    }

    #[test]
    fn host_is_kept_or_added_first() {
        let r = build(
            &request(b"/", &[("x", "1"), ("host", "orig")]),
            &base("http://m:1"),
            &[],
        )
        .unwrap();
        let h: Vec<_> = r
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(h, [("x", "1"), ("host", "orig")]);
        // Absent: the absolute-form authority, else the mirror's.
        let r = build(
            &request(b"http://a.example:8/", &[("x", "1")]),
            &base("http://m:1"),
            &[],
        )
        .unwrap();
        let h: Vec<_> = r
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(h, [("host", "a.example:8"), ("x", "1")]);
        let r = build(&request(b"/", &[]), &base("http://m:1"), &[]).unwrap();
        assert_eq!(r.headers()[HOST], "m:1");
        // HTTP/1.0 does not require one.
        let mut req = request(b"/", &[]);
        req.version = Version::HTTP_10;
        let r = build(&req, &base("http://m:1"), &[]).unwrap();
        assert!(r.headers().get(HOST).is_none());
        assert_eq!(r.version(), Version::HTTP_10);
    }

    #[test]
    fn extra_headers_go_last() {
        let extra = [(
            HeaderName::from_static("proxy-authorization"),
            HeaderValue::from_static("Basic eA=="),
        )];
        let r = build(
            &request(b"/", &[("host", "h")]),
            &base("http://m:1"),
            &extra,
        )
        .unwrap();
        let names: Vec<_> = r.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["host", "proxy-authorization"]);
    }
}
