//! The value parsers: TIME, BYTES, integers, port ranges, log file modes, URLs, headers,
//! backends. Each returns the error line the original prints (without `ERROR: `).

use crate::config::{redact_userinfo, LogFile, MirrorUrl};
use std::path::PathBuf;
use std::time::Duration;

/// Formats a bound the way the original's range errors do (`604800.00s`, `1000.00ms`, `0`).
fn str_delay(d: Duration) -> String {
    let us = d.as_micros();
    if us > 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us > 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else if us > 0 {
        format!("{us}us")
    } else {
        "0".into()
    }
}

/// TIME: unsigned integer, optional unit `us ms s m h d`, milliseconds when bare; `min..=max`.
pub fn parse_time(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let range_error = || {
        format!(
            "wrong amount of time (allowed range [{}, {}]): '{text}'",
            str_delay(min),
            str_delay(max)
        )
    };
    let format_error = || format!("invalid time format: '{text}'");
    if text.is_empty() {
        return Err("time not defined".into());
    }
    let s = text.trim_start();
    // A negative number would wrap around in the original's strtoull: out of range.
    if let Some(rest) = s.strip_prefix('-') {
        return Err(if rest.starts_with(|c: char| c.is_ascii_digit()) {
            range_error()
        } else {
            format_error()
        });
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = s.split_at(digits);
    if number.is_empty() {
        return Err(format_error());
    }
    let micros_per_unit: u64 = match unit {
        "us" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return Err(format_error()),
    };
    let micros = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(micros_per_unit))
        .ok_or_else(range_error)?;
    let d = Duration::from_micros(micros);
    if d < min || d > max {
        return Err(range_error());
    }
    Ok(d)
}

/// BYTES: integer with an optional K, M or G suffix (powers of 1024), `B`/`iB` allowed after it.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (number, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (t.get(..i)?, 10),
        Some((i, 'm' | 'M')) => (t.get(..i)?, 20),
        Some((i, 'g' | 'G')) => (t.get(..i)?, 30),
        _ => (t, 0),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// BYTES as `-h` shows it: the largest K, M or G suffix that divides it exactly.
pub(super) fn format_bytes(n: u64) -> String {
    [(30, 'G'), (20, 'M'), (10, 'K')]
        .into_iter()
        .find(|&(shift, _)| n != 0 && n % (1u64 << shift) == 0)
        .map_or_else(|| n.to_string(), |(shift, s)| format!("{}{s}", n >> shift))
}

/// A decimal integer in `min..=max`, no sign, nothing after it.
pub(super) fn parse_int<T: TryFrom<u64>>(text: &str, min: u64, max: u64) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = text.parse::<u64>().ok()?;
    if n < min || n > max {
        return None;
    }
    T::try_from(n).ok()
}

/// `-l [MODE:]FILE`.
pub(super) fn parse_logfile(text: &str) -> Result<LogFile, String> {
    let (mode, path) = match text.as_bytes() {
        [m, b':', ..] => (Some(char::from(*m)), text.get(2..).unwrap_or_default()),
        _ => (None, text),
    };
    let (truncate, line_buffered) = match mode {
        None | Some('a') => (false, false),
        Some('w') => (true, false),
        Some('A') => (false, true),
        Some('W') => (true, true),
        Some(m) => return Err(format!("invalid logfile mode '{m}'")),
    };
    if path.is_empty() {
        return Err("logfile name not defined".into());
    }
    Ok(LogFile {
        path: PathBuf::from(path),
        truncate,
        line_buffered,
    })
}

/// `-P P` or `-P LO-HI`; `None` when LO is 0 (disabled).
pub(super) fn parse_port_range(text: &str) -> Result<Option<(u16, u16)>, String> {
    if text.is_empty() {
        return Err("port range is not defined".into());
    }
    let bad = || format!("invalid port range: '{text}'");
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let lo: u16 = parse_int(lo, 0, 65535).ok_or_else(bad)?;
    let hi: u16 = parse_int(hi, 0, 65535).ok_or_else(bad)?;
    if hi < lo {
        return Err(bad());
    }
    Ok((lo != 0).then_some((lo, hi)))
}

/// `-u`: see [`MirrorUrl`] for the rules.
pub(super) fn parse_mirror_url(text: &str) -> Result<MirrorUrl, String> {
    MirrorUrl::parse(text)
        .map_err(|e| format!("Unable to set URL '{}': {e}", redact_userinfo(text)))
}

pub(super) fn parse_proxy_url(text: &str) -> Result<http::Uri, String> {
    let bad = || format!("invalid proxy URL '{}'", redact_userinfo(text));
    // curl reads a proxy without a scheme as http://.
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let uri: http::Uri = full.parse().map_err(|_| bad())?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        _ => Err(bad()),
    }
}

pub(super) fn parse_header(text: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let bad = || format!("invalid proxy header '{text}' (expected 'Name: value')");
    let (name, value) = text.split_once(':').ok_or_else(bad)?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = http::HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

/// `-m`: at least 512, at most `u32::MAX`.
pub(super) fn parse_frame_size(text: &str) -> Result<u32, String> {
    match parse_int::<u64>(text, 0, u64::MAX).map(u32::try_from) {
        Some(Ok(v)) if v >= 512 => Ok(v),
        Some(Ok(_)) => Err("max-frame-size cannot be less than 512".into()),
        Some(Err(_)) => Err(format!(
            "max-frame-size too large: '{text}' (at most {})",
            u32::MAX
        )),
        None => Err(format!(
            "max-frame-size cannot be less than 512: '{text}' is not a number"
        )),
    }
}

/// `--mirror-memory`: BYTES, at least 64K.
pub(super) fn parse_memory(text: &str) -> Result<usize, String> {
    parse_bytes(text)
        .filter(|&b| b >= 64 * 1024)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| {
            format!(
                "invalid --mirror-memory '{text}' (bytes with an optional K/M/G suffix, at least 64K)"
            )
        })
}

const BACKENDS: &[&str] = &[
    "select", "poll", "epoll", "kqueue", "devpoll", "port", "linuxaio", "iouring",
];

/// `-B TYPE`: a libev backend name, lowercased.
pub(super) fn parse_backend(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if BACKENDS.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(format!("invalid libev backend '{name}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_bytes_reads_back() {
        for (n, text) in [
            (64 << 20, "64M"),
            (1 << 30, "1G"),
            (65536, "64K"),
            (1000, "1000"),
            (0, "0"),
        ] {
            assert_eq!(format_bytes(n), text);
            assert_eq!(parse_bytes(text), Some(n));
        }
    }

    #[test]
    fn str_delay_matches_the_original_bounds() {
        assert_eq!(str_delay(Duration::from_secs(604_800)), "604800.00s");
        assert_eq!(str_delay(Duration::from_secs(1)), "1000.00ms");
        assert_eq!(str_delay(Duration::from_secs(3600)), "3600.00s");
        assert_eq!(str_delay(Duration::from_micros(7)), "7us");
        assert_eq!(str_delay(Duration::ZERO), "0");
    }
}
