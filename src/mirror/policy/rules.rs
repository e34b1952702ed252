//! Request rules: which requests a target takes (methods, path patterns) and how its copy is
//! changed (headers removed, set, redacted; Host; forwarding headers from `src`).

use crate::config::{HostPolicy, Rules};
use crate::mirror::message::MirrorRequest;
use http::header::{FORWARDED, HOST};
use http::uri::Authority;
use http::{HeaderName, HeaderValue};
use std::net::IpAddr;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether the request passes the method and path filters.
pub(super) fn allows(rules: &Rules, req: &MirrorRequest) -> bool {
    if !rules.methods.is_empty() && !rules.methods.contains(&req.method) {
        return false;
    }
    let path = req.target.path();
    if let Some(include) = &rules.path_include {
        if !include.is_match(path) {
            return false;
        }
    }
    if let Some(exclude) = &rules.path_exclude {
        if exclude.is_match(path) {
            return false;
        }
    }
    true
}

/// The target's copy of the request, changed as the rules say.
pub(super) fn rewrite(rules: &Rules, req: &MirrorRequest, authority: &Authority) -> MirrorRequest {
    let mut out = req.clone();
    let headers = &mut out.headers;
    headers.retain(|(n, _)| !rules.remove_headers.contains(n));
    for (name, value) in headers.iter_mut() {
        if rules.redact_headers.contains(name) {
            *value = HeaderValue::from_static(Rules::REDACTED);
        }
    }
    for (name, value) in &rules.set_headers {
        headers.retain(|(n, _)| n != name);
        headers.push((name.clone(), value.clone()));
    }
    let host = match &rules.host {
        HostPolicy::Keep => None,
        HostPolicy::Target => HeaderValue::from_str(authority.as_str()).ok(),
        HostPolicy::Literal(v) => Some(v.clone()),
    };
    if let Some(host) = host {
        headers.retain(|(n, _)| n != HOST);
        headers.insert(0, (HOST, host));
        out.has_host = true;
    }
    if let Some(src) = req.src {
        if rules.x_forwarded_for {
            append(headers, &X_FORWARDED_FOR, &src.to_string());
        }
        if rules.forwarded {
            let node = match src {
                IpAddr::V4(a) => format!("for={a}"),
                IpAddr::V6(a) => format!("for=\"[{a}]\""),
            };
            append(headers, &FORWARDED, &node);
        }
    }
    out
}

/// Adds `item` to the list header `name`: `existing, item` in its first field, or a new field.
fn append(headers: &mut Vec<(HeaderName, HeaderValue)>, name: &HeaderName, item: &str) {
    if let Some((_, v)) = headers.iter_mut().find(|(n, _)| n == name) {
        let mut joined = Vec::with_capacity(v.len() + 2 + item.len());
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(item.as_bytes());
        if let Ok(new) = HeaderValue::from_bytes(&joined) {
            *v = new;
        }
        return;
    }
    if let Ok(v) = HeaderValue::from_str(item) {
        headers.push((name.clone(), v));
    }
}
