//! The request target: origin-form and `*` kept, absolute-form reduced to origin-form plus
//! its authority.

use super::Invalid;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
