//! The command line of `spoa-mirror` / `hapee-spoa-mirror`, flag for flag, turned into a
//! validated [`Config`].
//!
//! clap only splits the command line into raw strings; every value is checked here, after
//! parsing, so that all problems are reported at once, each on its own `ERROR:` line, with the
//! texts the original prints (scripts and operators grep for them). Long options accept
//! unambiguous prefixes as getopt does; a prefix that named exactly one option of the original
//! still names it, whatever long-only options this implementation adds.

use crate::config::{
    redact_userinfo, Config, ListenConfig, LogFile, MirrorConfig, ProxyConfig, RunConfig, Secret,
    SpopConfig,
};
use crate::process::EXIT_USAGE;
use crate::spop::Capabilities;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    Run(Box<Config>),
    /// `-h`: the full help text, for stdout, exit 0.
    Help(String),
    /// `-V`: the version line, for stdout, exit 0.
    Version(String),
}

/// A bad command line: one `ERROR: ...` line per problem, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

fn usage_error(lines: Vec<String>) -> CliError {
    let message = lines
        .iter()
        .map(|l| format!("ERROR: {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    CliError {
        message,
        code: EXIT_USAGE,
    }
}

/// One option: the table below is the single place to add one; the clap command, the help
/// text, the man page and the prefix matching all come from it.
struct Opt {
    id: &'static str,
    short: Option<char>,
    long: &'static str,
    /// `None` for a flag.
    value: Option<&'static str>,
    /// May be given several times, every value kept (otherwise the last one wins).
    repeat: bool,
    /// Known to the original (or the Enterprise agent): wins a prefix match.
    original: bool,
    help: &'static str,
}

const fn flag(
    id: &'static str,
    short: Option<char>,
    long: &'static str,
    original: bool,
    help: &'static str,
) -> Opt {
    Opt {
        id,
        short,
        long,
        value: None,
        repeat: false,
        original,
        help,
    }
}

const fn opt(
    id: &'static str,
    short: char,
    long: &'static str,
    value: &'static str,
    help: &'static str,
) -> Opt {
    Opt {
        id,
        short: Some(short),
        long,
        value: Some(value),
        repeat: false,
        original: true,
        help,
    }
}

const fn long(id: &'static str, value: &'static str, help: &'static str) -> Opt {
    Opt {
        id,
        short: None,
        long: id,
        value: Some(value),
        repeat: false,
        original: false,
        help,
    }
}

const fn repeat(o: Opt) -> Opt {
    Opt { repeat: true, ..o }
}

#[rustfmt::skip]
const OPTIONS: &[Opt] = &[
    opt("address", 'a', "address", "NAME", "Address to listen on, IPv4 or IPv6 (default: 0.0.0.0)."),
    repeat(opt("libev-backend", 'B', "libev-backend", "TYPE", "Accepted for compatibility; tokio picks the IO driver (epoll on Linux)." )),
    opt("connection-backlog", 'b', "connection-backlog", "VALUE", "Listen backlog (default: 10)."),
    repeat(opt("capability", 'c', "capability", "NAME", "Enable an SPOP capability: fragmentation, pipelining or async; repeatable (default: none).")),
    flag("daemonize", Some('D'), "daemonize", true, "Run in the background as a daemon."),
    opt("debug", 'd', "debug", "LEVEL", "Accepted for compatibility and ignored; see --log-level."),
    opt("pidfile", 'F', "pidfile", "FILE", "Write the process id to FILE; removed at exit."),
    flag("help", Some('h'), "help", true, "Show this text."),
    opt("monitor-interval", 'i', "monitor-interval", "TIME", "Log the counters this often when they changed, 1s..1h (default: 5s)."),
    opt("logfile", 'l', "logfile", "[MODE:]FILE", "Log to FILE instead of stdout; MODE a/w/A/W, see below (default: stdout)."),
    opt("max-frame-size", 'm', "max-frame-size", "VALUE", "Largest SPOP frame accepted, at least 512 (default: 1048576 bytes)."),
    opt("num-workers", 'n', "num-workers", "VALUE", "Runtime worker threads, 1..1000 (default: the number of CPU cores)."),
    opt("port", 'p', "port", "VALUE", "Port to listen on (default: 12345)."),
    opt("runtime", 'r', "runtime", "TIME", "Stop after TIME; 0 = run until stopped (default: 0)."),
    opt("processing-delay", 't', "processing-delay", "TIME", "Delay before each message is ACKed, 0..1s (default: 0)."),
    opt("mirror-url", 'u', "mirror-url", "URL", "Mirror requests to this http:// or https:// URL (default: none, ACK only)."),
    opt("mirror-interface", 'I', "mirror-interface", "NAME", "Interface name or local address for connections to the mirror."),
    opt("mirror-local-port", 'P', "mirror-local-port", "PORT[-PORT]", "Local port or port range for connections to the mirror."),
    flag("version", Some('V'), "version", true, "Show the program version."),
    opt("proxy-url", 'x', "proxy-url", "URL", "Send mirrored requests through this HTTP proxy."),
    opt("proxy-userpwd", 'U', "proxy-userpwd", "USER:PASSWORD", "Credentials for the proxy (Basic)."),
    repeat(opt("proxy-header", 'H', "proxy-header", "HEADER", "Extra 'Name: value' header for the proxy; repeatable.")),
    opt("noproxy", 'N', "noproxy", "LIST", "Comma-separated hosts that bypass the proxy."),
    // Long-only options of this implementation.
    long("log-level", "FILTER", "Log filter in RUST_LOG syntax, e.g. debug or info,spoa_mirror::mirror=debug (default: $RUST_LOG, else info)."),
    long("metrics-address", "ADDR:PORT", "Serve Prometheus metrics at http://ADDR:PORT/metrics (default: off)."),
    long("idle-timeout", "TIME", "Close an SPOP connection silent for this long; 0 = never (default: 0)."),
    long("frame-timeout", "TIME", "Close an SPOP connection whose started frame is not complete this long after its first byte (default: 30s)."),
    long("max-connections", "N", "SPOP connections open at once; more are closed at once and counted (default: 10000)."),
    flag("ack-noop", None, "ack-noop", false, "Put a harmless unset-var action in every ACK: works around the empty-ACK stall of early HAProxy 3.1 releases."),
    long("mirror-timeout", "TIME", "Total time for one mirrored request (default: 10s)."),
    long("mirror-connect-timeout", "TIME", "Time to connect to the mirror (default: 10s)."),
    long("mirror-queue", "N", "Messages waiting for a free request slot; more are dropped (default: 4096)."),
    long("mirror-concurrency", "N", "Mirrored requests on the wire at once (default: 256)."),
    long("mirror-memory", "BYTES", "Memory for queued and in-flight requests, K/M/G suffixes (default: 64M)."),
    long("mirror-ca-file", "FILE", "Extra CA certificates (PEM) for an https:// mirror."),
    flag("mirror-insecure", None, "mirror-insecure", false, "Do not verify the https:// mirror's certificate."),
    long("drain-timeout", "TIME", "At stop, wait this long for in-flight mirrored requests (default: 5s)."),
    flag("foreground", None, "foreground", false, "Stay in the foreground even when -D is given (for service managers)."),
];

const NOTES: &str = "\
Supported libev backend names (accepted, ignored: tokio chooses): select, poll, epoll,
kqueue, devpoll, port, linuxaio, iouring.

Supported capabilities: fragmentation, pipelining, async.

Log file modes: 'a' appends, 'w' truncates; a capital letter ('A', 'W') writes every line
at once instead of buffering. A plain FILE appends.

TIME is an integer with an optional unit (us, ms, s, m, h, d); without a unit it is in
milliseconds. BYTES is an integer with an optional K, M or G suffix (powers of 1024).

The log filter can also be set with the RUST_LOG environment variable.";

fn program() -> &'static str {
    "spoa-mirror"
}

fn usage_lines() -> String {
    let p = program();
    format!("Usage: {p} {{ -h --help }}\n       {p} {{ -V --version }}\n       {p} [ -r --runtime=TIME ] [OPTION]...\n")
}

/// The short usage printed (on stdout) after a command-line error.
pub fn short_usage() -> String {
    format!("\n{}\nFor help type: {} -h\n", usage_lines(), program())
}

/// The version line (`-V`).
pub fn version() -> String {
    format!("{} v{}\n", program(), env!("CARGO_PKG_VERSION"))
}

/// The clap command built from the option table (also used for the man page).
pub fn command() -> Command {
    let mut cmd = Command::new(program())
        .version(env!("CARGO_PKG_VERSION"))
        .about("HAProxy SPOE agent that mirrors HTTP requests to another server")
        .long_about(
            "spoa-mirror receives a copy of each HTTP request from HAProxy's SPOE filter over SPOP, \
             acknowledges it at once and sends the request, fire-and-forget, to the mirror URL. \
             It is a drop-in replacement for the C agents spoa-mirror and hapee-spoa-mirror: \
             same options, same defaults where they are safe.",
        )
        .override_usage(usage_lines().trim_start_matches("Usage: ").to_string())
        .after_long_help(NOTES)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .dont_delimit_trailing_values(true);
    for o in OPTIONS {
        let mut arg = Arg::new(o.id).long(o.long).help(o.help);
        if let Some(s) = o.short {
            arg = arg.short(s);
        }
        arg = match (o.value, o.repeat) {
            (None, _) => arg.action(ArgAction::SetTrue),
            (Some(v), repeat) => arg
                .value_name(v)
                .num_args(1)
                // getopt takes the next word as the value whatever it looks like (`-r -1`).
                .allow_hyphen_values(true)
                .action(if repeat {
                    ArgAction::Append
                } else {
                    ArgAction::Set
                }),
        };
        cmd = cmd.arg(arg);
    }
    // getopt permutes and ignores operands; accept them and warn.
    cmd.arg(
        Arg::new("operands")
            .num_args(0..)
            .action(ArgAction::Append)
            .hide(true),
    )
}

/// The full help text (`-h`), every option with its default.
pub fn help() -> String {
    let mut out = format!("\n{}\n", usage_lines());
    let mut section = |title: &str, original: bool| {
        out.push_str(title);
        for o in OPTIONS.iter().filter(|o| o.original == original) {
            let short = o
                .short
                .map(|c| format!("-{c}, "))
                .unwrap_or_else(|| "    ".into());
            let value = o.value.map(|v| format!("={v}")).unwrap_or_default();
            let left = format!("  {short}--{}{value}", o.long);
            let mut help = o.help.to_string();
            if o.id == "num-workers" {
                help = help.replace(
                    "CPU cores)",
                    &format!("CPU cores, {} here)", RunConfig::default().workers),
                );
            }
            out.push_str(&format!("{left:<37} {help}\n"));
        }
    };
    section(
        "Options (those of spoa-mirror and hapee-spoa-mirror):\n",
        true,
    );
    section("\nOptions of this implementation (long only):\n", false);
    out.push('\n');
    out.push_str(NOTES);
    out.push_str("\n\n");
    out
}

/// Parses a command line (`args` includes the program name) as spoa-mirror does.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action, CliError> {
    parse_with_env(args, std::env::var("RUST_LOG").ok())
}

/// [`parse`] with the value of `RUST_LOG` passed in, so tests need no environment.
pub fn parse_with_env(
    args: impl IntoIterator<Item = OsString>,
    rust_log: Option<String>,
) -> Result<Action, CliError> {
    let args = expand_long_prefixes(args.into_iter().collect())?;
    let matches = command().try_get_matches_from(args).map_err(clap_error)?;
    if matches.get_flag("help") {
        return Ok(Action::Help(help()));
    }
    if matches.get_flag("version") {
        return Ok(Action::Version(version()));
    }
    build(&matches, rust_log).map(|c| Action::Run(Box::new(c)))
}

// ===== long-option prefixes =====

fn find_long(name: &str) -> Result<Option<&'static Opt>, CliError> {
    if let Some(o) = OPTIONS.iter().find(|o| o.long == name) {
        return Ok(Some(o));
    }
    let matching: Vec<&Opt> = OPTIONS
        .iter()
        .filter(|o| o.long.starts_with(name))
        .collect();
    let originals: Vec<&Opt> = matching.iter().copied().filter(|o| o.original).collect();
    match (originals.as_slice(), matching.as_slice()) {
        ([one], _) | ([], [one]) => Ok(Some(one)),
        (_, []) => Ok(None),
        (many, all) => {
            let list = if many.is_empty() { all } else { many };
            let names = list
                .iter()
                .map(|o| format!("'--{}'", o.long))
                .collect::<Vec<_>>()
                .join(" ");
            Err(usage_error(vec![format!(
                "option '--{name}' is ambiguous; possibilities: {names}"
            )]))
        }
    }
}

/// Rewrites every abbreviated long option to its full name, so clap only sees exact names.
/// Words that are values of the option before them are left alone, as getopt does.
fn expand_long_prefixes(args: Vec<OsString>) -> Result<Vec<OsString>, CliError> {
    let mut out = Vec::with_capacity(args.len());
    let mut words = args.into_iter();
    out.extend(words.next());
    let mut value_next = false;
    while let Some(word) = words.next() {
        if value_next {
            value_next = false;
            out.push(word);
            continue;
        }
        let Some(text) = word.to_str() else {
            out.push(word);
            continue;
        };
        if text == "--" {
            out.push(word);
            out.extend(words);
            break;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            match find_long(name)? {
                Some(o) => {
                    value_next = o.value.is_some() && value.is_none();
                    out.push(match value {
                        Some(v) => format!("--{}={v}", o.long).into(),
                        None => format!("--{}", o.long).into(),
                    });
                }
                None => out.push(word),
            }
        } else if let Some(cluster) = text.strip_prefix('-') {
            // `-Dr0`: flags, then at most one option whose value is the rest or the next word.
            for (i, c) in cluster.char_indices() {
                if OPTIONS
                    .iter()
                    .any(|o| o.short == Some(c) && o.value.is_some())
                {
                    value_next = cluster.get(i + c.len_utf8()..).is_some_and(str::is_empty);
                    break;
                }
            }
            out.push(word);
        } else {
            out.push(word);
        }
    }
    Ok(out)
}

/// clap's own errors (unknown option, missing value) as one `ERROR:` line.
fn clap_error(e: clap::Error) -> CliError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let line = match e.kind() {
        ErrorKind::UnknownArgument => format!("unknown option '{arg}'"),
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            format!(
                "option '{}' requires a value",
                arg.split(' ').next().unwrap_or_default()
            )
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_string()
        }
    };
    usage_error(vec![line])
}

// ===== values =====

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

/// A decimal integer in `min..=max`, no sign, nothing after it.
fn parse_int<T: TryFrom<u64>>(text: &str, min: u64, max: u64) -> Option<T> {
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
pub fn parse_logfile(text: &str) -> Result<LogFile, String> {
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
pub fn parse_port_range(text: &str) -> Result<Option<(u16, u16)>, String> {
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

/// `-u`: an absolute `http://` or `https://` URL with a host (IPv6 literals allowed).
pub fn parse_mirror_url(text: &str) -> Result<http::Uri, String> {
    let bad = |why: &str| format!("Unable to set URL '{}': {why}", redact_userinfo(text));
    let uri: http::Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        _ => return Err(bad("the scheme must be http:// or https://")),
    }
    if uri.host().map_or(true, str::is_empty) {
        return Err(bad("no host"));
    }
    // The mirror engine sends no credentials of its own (the mirrored request carries the
    // client's headers), so a `user:password@` would be silently ignored: refuse it.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad("user:password@ is not supported"));
    }
    Ok(uri)
}

fn parse_proxy_url(text: &str) -> Result<http::Uri, String> {
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

fn parse_header(text: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let bad = || format!("invalid proxy header '{text}' (expected 'Name: value')");
    let (name, value) = text.split_once(':').ok_or_else(bad)?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = http::HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

const BACKENDS: &[&str] = &[
    "select", "poll", "epoll", "kqueue", "devpoll", "port", "linuxaio", "iouring",
];

/// Reads every option into a [`Config`], collecting one error line per bad value.
fn build(m: &ArgMatches, rust_log: Option<String>) -> Result<Config, CliError> {
    let mut errors = Vec::new();
    let mut notices = Vec::new();
    let one = |id: &str| m.get_one::<String>(id).map(String::as_str);
    let all = |id: &str| {
        m.get_many::<String>(id)
            .map(|v| v.map(String::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let time =
        |id: &str, default: Duration, min: Duration, max: Duration, errors: &mut Vec<String>| {
            match one(id) {
                None => default,
                Some(t) => parse_time(t, min, max).unwrap_or_else(|e| {
                    errors.push(e);
                    default
                }),
            }
        };
    const SEC: Duration = Duration::from_secs(1);
    const DAY: Duration = Duration::from_secs(86_400);
    const HOUR: Duration = Duration::from_secs(3_600);
    const MS: Duration = Duration::from_millis(1);

    // -r, -i, -t: the original's ranges.
    let runtime = time(
        "runtime",
        Duration::ZERO,
        Duration::ZERO,
        7 * DAY,
        &mut errors,
    );
    let monitor_interval = time("monitor-interval", 5 * SEC, SEC, HOUR, &mut errors);
    let processing_delay = time(
        "processing-delay",
        Duration::ZERO,
        Duration::ZERO,
        SEC,
        &mut errors,
    );
    let idle_timeout = time(
        "idle-timeout",
        Duration::ZERO,
        Duration::ZERO,
        7 * DAY,
        &mut errors,
    );
    let frame_timeout = time("frame-timeout", 30 * SEC, MS, HOUR, &mut errors);
    let mirror_timeout = time("mirror-timeout", 10 * SEC, MS, HOUR, &mut errors);
    let connect_timeout = time("mirror-connect-timeout", 10 * SEC, MS, HOUR, &mut errors);
    let drain_timeout = time("drain-timeout", 5 * SEC, Duration::ZERO, HOUR, &mut errors);

    let mut listen = ListenConfig::default();
    if let Some(a) = one("address") {
        if a.is_empty() {
            errors.push("address not defined".into());
        }
        listen.address = a.to_string();
    }
    if let Some(p) = one("port") {
        match parse_int(p, 1, 65535) {
            Some(p) => listen.port = p,
            None => errors.push(format!("invalid port '{p}'")),
        }
    }
    if let Some(b) = one("connection-backlog") {
        match parse_int(b, 0, u64::from(u32::MAX)) {
            Some(b) => listen.backlog = b,
            None => errors.push(format!("invalid connection backlog '{b}'")),
        }
    }

    let mut spop = SpopConfig {
        processing_delay,
        ..SpopConfig::default()
    };
    spop.idle_timeout = (!idle_timeout.is_zero()).then_some(idle_timeout);
    spop.frame_timeout = frame_timeout;
    spop.ack_noop = m.get_flag("ack-noop");
    if let Some(n) = one("max-connections") {
        match parse_int(n, 1, 1_000_000) {
            Some(n) => spop.max_connections = n,
            None => errors.push(format!("invalid max-connections '{n}' (1..1000000)")),
        }
    }
    if let Some(v) = one("max-frame-size") {
        match parse_int::<u64>(v, 0, u64::MAX).map(u32::try_from) {
            Some(Ok(v)) if v >= 512 => spop.max_frame_size = v,
            Some(Ok(_)) => errors.push("max-frame-size cannot be less than 512".into()),
            Some(Err(_)) => errors.push(format!(
                "max-frame-size too large: '{v}' (at most {})",
                u32::MAX
            )),
            None => errors.push(format!(
                "max-frame-size cannot be less than 512: '{v}' is not a number"
            )),
        }
    }
    let mut caps = Capabilities::default();
    for c in all("capability") {
        match c.to_ascii_lowercase().as_str() {
            "fragmentation" => caps.fragmentation = true,
            "pipelining" => caps.pipelining = true,
            "async" => caps.r#async = true,
            _ => errors.push(format!("unsupported capability '{c}'")),
        }
    }
    spop.capabilities = caps;

    let mut run = RunConfig {
        monitor_interval,
        ..RunConfig::default()
    };
    run.runtime = (!runtime.is_zero()).then_some(runtime);
    if let Some(n) = one("num-workers") {
        match parse_int(n, 1, 1000) {
            Some(n) => run.workers = n,
            None => errors.push(format!("invalid number of workers '{n}'")),
        }
    }
    run.daemonize = m.get_flag("daemonize") && !m.get_flag("foreground");
    run.pidfile = one("pidfile").map(PathBuf::from);
    if let Some(l) = one("logfile") {
        match parse_logfile(l) {
            Ok(l) => run.logfile = Some(l),
            Err(e) => errors.push(e),
        }
    }
    for b in all("libev-backend") {
        if BACKENDS.contains(&b.to_ascii_lowercase().as_str()) {
            run.libev_backends.push(b.to_ascii_lowercase());
        } else {
            errors.push(format!("invalid libev backend '{b}'"));
        }
    }
    if one("debug").is_some() {
        notices.push(
            "option -d (debug level) is ignored; use --log-level to choose what is logged"
                .to_string(),
        );
    }
    for o in all("operands") {
        notices.push(format!("ignoring the extra argument '{o}'"));
    }
    match one("log-level").map(str::to_string).or(rust_log) {
        Some(f) if tracing_subscriber::EnvFilter::try_new(&f).is_ok() && !f.trim().is_empty() => {
            run.log_filter = f
        }
        Some(f) if one("log-level").is_some() => errors.push(format!("invalid log filter '{f}'")),
        Some(f) => notices.push(format!("ignoring RUST_LOG='{f}': not a valid filter")),
        None => {}
    }
    if let Some(a) = one("metrics-address") {
        match a.parse::<SocketAddr>() {
            Ok(a) => run.metrics_address = Some(a),
            Err(_) => errors.push(format!(
                "invalid metrics address '{a}' (expected ADDR:PORT, e.g. 127.0.0.1:9105)"
            )),
        }
    }

    // The mirror and proxy options: checked even without -u, used only with it.
    let local_ports = one("mirror-local-port")
        .and_then(|p| parse_port_range(p).map_err(|e| errors.push(e)).ok())
        .flatten();
    let proxy = one("proxy-url").and_then(|u| parse_proxy_url(u).map_err(|e| errors.push(e)).ok());
    let mut proxy_headers = Vec::new();
    for h in all("proxy-header") {
        match parse_header(h) {
            Ok(h) => proxy_headers.push(h),
            Err(e) => errors.push(e),
        }
    }
    let count = |id: &str, default: usize, max: u64, errors: &mut Vec<String>| match one(id) {
        None => default,
        Some(v) => parse_int(v, 1, max).unwrap_or_else(|| {
            errors.push(format!("invalid --{id} '{v}' (allowed range [1, {max}])"));
            default
        }),
    };
    let queue_size = count("mirror-queue", 4096, 1_000_000, &mut errors);
    let concurrency = count("mirror-concurrency", 256, 65_535, &mut errors);
    let memory_budget = match one("mirror-memory") {
        None => None,
        Some(v) => match parse_bytes(v)
            .filter(|&b| b >= 64 * 1024)
            .and_then(|b| usize::try_from(b).ok())
        {
            Some(b) => Some(b),
            None => {
                errors.push(format!("invalid --mirror-memory '{v}' (bytes with an optional K/M/G suffix, at least 64K)"));
                None
            }
        },
    };
    let mirror_url =
        one("mirror-url").and_then(|u| parse_mirror_url(u).map_err(|e| errors.push(e)).ok());

    if !errors.is_empty() {
        return Err(usage_error(errors));
    }

    let mirror = match mirror_url {
        Some(url) => {
            let mut mc = MirrorConfig::new(url);
            mc.interface = one("mirror-interface").map(str::to_string);
            mc.local_ports = local_ports;
            mc.proxy = proxy.map(|url| ProxyConfig {
                url,
                userpwd: one("proxy-userpwd").map(|s| Secret(s.to_string())),
                headers: proxy_headers,
                noproxy: one("noproxy").map(str::to_string),
            });
            mc.timeout = mirror_timeout;
            mc.connect_timeout = connect_timeout;
            mc.queue_size = queue_size;
            mc.concurrency = concurrency;
            if let Some(b) = memory_budget {
                mc.memory_budget = b;
            }
            mc.ca_file = one("mirror-ca-file").map(PathBuf::from);
            mc.insecure = m.get_flag("mirror-insecure");
            mc.drain_timeout = drain_timeout;
            Some(mc)
        }
        None => {
            let unused: Vec<&str> = [
                "mirror-interface",
                "mirror-local-port",
                "proxy-url",
                "proxy-userpwd",
                "proxy-header",
                "noproxy",
            ]
            .into_iter()
            .filter(|id| {
                m.contains_id(id)
                    && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            })
            .collect();
            if !unused.is_empty() {
                notices.push(format!(
                    "without -u nothing is mirrored; ignoring --{}",
                    unused.join(", --")
                ));
            }
            None
        }
    };
    if mirror.as_ref().is_some_and(|m| m.proxy.is_none())
        && (one("proxy-userpwd").is_some()
            || one("noproxy").is_some()
            || !all("proxy-header").is_empty())
    {
        notices.push("-U, -H and -N only apply with -x; ignored".to_string());
    }
    if run.daemonize && run.logfile.is_none() {
        notices.push("with -D and without -l, log lines are discarded".to_string());
    }
    run.notices = notices;
    Ok(Config {
        listen,
        spop,
        mirror,
        run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_delay_matches_the_original_bounds() {
        assert_eq!(str_delay(Duration::from_secs(604_800)), "604800.00s");
        assert_eq!(str_delay(Duration::from_secs(1)), "1000.00ms");
        assert_eq!(str_delay(Duration::from_secs(3600)), "3600.00s");
        assert_eq!(str_delay(Duration::from_micros(7)), "7us");
        assert_eq!(str_delay(Duration::ZERO), "0");
    }

    #[test]
    fn every_original_prefix_stays_unambiguous() {
        // A prefix that named exactly one original option still does.
        for o in OPTIONS.iter().filter(|o| o.original) {
            for len in 1..=o.long.len() {
                let prefix = &o.long[..len];
                let originals = OPTIONS
                    .iter()
                    .filter(|x| x.original && x.long.starts_with(prefix))
                    .count();
                if originals == 1 {
                    assert_eq!(
                        find_long(prefix).unwrap().map(|x| x.id),
                        Some(o.id),
                        "{prefix}"
                    );
                }
            }
        }
    }
}
