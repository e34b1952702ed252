//! The mirror's proxy (`-x`, `-N`, `-U`, `-H`): whether the mirror URL goes through it, and the
//! headers every proxied request or CONNECT carries.

use super::HeaderList;
use crate::config::ProxyConfig;
use crate::mirror::Error;
use http::{HeaderValue, Uri};
use hyper_util::client::proxy::matcher::Matcher;

/// Whether the mirror URL goes through the proxy, and with which headers (Basic auth from
/// `-U` or the proxy URL's userinfo, then `-H`).
pub(super) fn proxy_intercept(
    proxy: &ProxyConfig,
    mirror: &Uri,
) -> Result<Option<(Uri, HeaderList)>, Error> {
    let scheme = proxy.url.scheme_str().unwrap_or("http");
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Error::Proxy("only http:// proxies are supported"));
    }
    let matcher = Matcher::builder()
        .all(proxy.url.to_string())
        .no(proxy.noproxy.clone().unwrap_or_default())
        .build();
    let Some(intercept) = matcher.intercept(mirror) else {
        // Either -N matched, or the proxy URL did not parse.
        if proxy.url.authority().is_none() {
            return Err(Error::Proxy("the proxy URL has no host"));
        }
        return Ok(None);
    };
    let mut headers = Vec::new();
    let auth = match &proxy.userpwd {
        Some(userpwd) => Some(basic_auth(&userpwd.0)?),
        None => intercept.basic_auth().cloned(),
    };
    if let Some(auth) = auth {
        headers.push((http::header::PROXY_AUTHORIZATION, auth));
    }
    headers.extend(proxy.headers.iter().cloned());
    Ok(Some((intercept.uri().clone(), headers)))
}

/// `Basic base64(user:password)`, marked sensitive so hyper never logs it.
fn basic_auth(userpwd: &str) -> Result<HeaderValue, Error> {
    let value = format!("Basic {}", base64(userpwd.as_bytes()));
    let mut header =
        HeaderValue::from_str(&value).map_err(|_| Error::Proxy("invalid --proxy-userpwd"))?;
    header.set_sensitive(true);
    Ok(header)
}

/// Standard base64 with padding (RFC 4648 §4); only for the Basic credentials.
fn base64(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn basic_auth_is_sensitive() {
        let h = basic_auth("user:pw").unwrap();
        assert_eq!(h, "Basic dXNlcjpwdw==");
        assert!(h.is_sensitive());
    }

    fn proxy(url: &str, noproxy: Option<&str>) -> ProxyConfig {
        ProxyConfig {
            url: url.parse().unwrap(),
            userpwd: None,
            headers: vec![],
            noproxy: noproxy.map(Into::into),
        }
    }

    #[test]
    fn proxy_decision() {
        let mirror: Uri = "http://mirror.example:8100/".parse().unwrap();
        let (uri, headers) = proxy_intercept(&proxy("http://p:3128", None), &mirror)
            .unwrap()
            .unwrap();
        assert_eq!(uri.authority().unwrap().as_str(), "p:3128");
        assert!(headers.is_empty());
        for no in ["mirror.example", ".example", "*", "10.0.0.0/8, example"] {
            assert!(
                proxy_intercept(&proxy("http://p:3128", Some(no)), &mirror)
                    .unwrap()
                    .is_none(),
                "{no}"
            );
        }
        assert!(
            proxy_intercept(&proxy("http://p:3128", Some("other.example")), &mirror)
                .unwrap()
                .is_some()
        );
        assert!(proxy_intercept(&proxy("socks5://p:1080", None), &mirror).is_err());
    }

    #[test]
    fn proxy_credentials() {
        let mirror: Uri = "https://m/".parse().unwrap();
        // From the URL's userinfo...
        let (uri, headers) = proxy_intercept(&proxy("http://u:p%40ss@p:3128", None), &mirror)
            .unwrap()
            .unwrap();
        assert!(!uri.to_string().contains("p%40ss"));
        assert_eq!(
            headers[0].1,
            format!("Basic {}", base64(b"u:p@ss")).as_str()
        );
        // ...unless -U says otherwise; -H follow.
        let mut p = proxy("http://u:x@p:3128", None);
        p.userpwd = Some(crate::config::Secret("user:pw".into()));
        p.headers = vec![(
            HeaderName::from_static("x-proxy"),
            HeaderValue::from_static("1"),
        )];
        let (_, headers) = proxy_intercept(&p, &mirror).unwrap().unwrap();
        let names: Vec<_> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["proxy-authorization", "x-proxy"]);
        assert_eq!(headers[0].1, "Basic dXNlcjpwdw==");
    }
}
