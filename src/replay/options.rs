//! The replay tool's options turned into what the library takes: a target's rules (filters,
//! Host and header rules) and `--compare`'s comparison rules.

use super::cli::Args;
use crate::config::HostPolicy;
use http::{HeaderName, HeaderValue, Method};
use regex::RegexSet;

/// The options' filters and header rules as a target's rules.
pub(super) fn rules(a: &Args) -> Result<Option<crate::config::Rules>, String> {
    let header_name = |n: &str| {
        HeaderName::from_bytes(n.trim().as_bytes())
            .map_err(|_| format!("invalid header name '{n}'"))
    };
    let methods = a
        .methods
        .iter()
        .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method '{m}'")))
        .collect::<Result<Vec<_>, _>>()?;
    let set = |p: &[String]| {
        (!p.is_empty())
            .then(|| RegexSet::new(p).map_err(|e| format!("invalid path pattern: {e}")))
            .transpose()
    };
    let mut set_headers = Vec::new();
    for h in &a.set_headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| format!("invalid --set-header '{h}' (want 'Name: value')"))?;
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| format!("invalid header value in '{h}'"))?;
        set_headers.push((header_name(n)?, value));
    }
    let host = match a.host.as_str() {
        "keep" => HostPolicy::Keep,
        "target" => HostPolicy::Target,
        h => HostPolicy::Literal(
            HeaderValue::from_str(h).map_err(|_| format!("invalid --host '{h}'"))?,
        ),
    };
    let r = crate::config::Rules {
        methods,
        path_include: set(&a.path_include)?,
        path_exclude: set(&a.path_exclude)?,
        remove_headers: a
            .remove_headers
            .iter()
            .map(|n| header_name(n))
            .collect::<Result<_, _>>()?,
        set_headers,
        redact_headers: Vec::new(),
        host,
        x_forwarded_for: false,
        forwarded: false,
    };
    Ok((r.filters() || r.rewrites()).then_some(r))
}

/// `--compare`'s rules, as a `[shadow]` table would give them.
pub(super) fn compare_config(a: &Args) -> Result<crate::config::ShadowConfig, String> {
    let mut cfg = crate::config::ShadowConfig::new();
    cfg.max_body = 16 * 1024 * 1024;
    for h in &a.ignore_headers {
        cfg.ignore_headers.push(
            HeaderName::from_bytes(h.trim().as_bytes())
                .map_err(|_| format!("invalid --ignore-header '{h}'"))?,
        );
    }
    for p in &a.ignore_json {
        cfg.ignore_json.push(crate::config::JsonPattern::parse(p)?);
    }
    cfg.ignore_array_order = a.ignore_array_order;
    for m in &a.text_masks {
        cfg.text_masks
            .push(regex::Regex::new(m).map_err(|e| format!("invalid --text-mask: {e}"))?);
    }
    if !(0.0..=1.0).contains(&a.max_diff_rate) {
        return Err(format!(
            "invalid --max-diff-rate {} (0..1)",
            a.max_diff_rate
        ));
    }
    Ok(cfg)
}
