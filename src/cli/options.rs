//! The option table: every option of the command line, once. The clap command
//! (`cli::command`), the `-h` text, the man page and the long-prefix matching all come
//! from it. The defaults shown come from `config`, the one place they are set.

use super::values::format_bytes;
use crate::config::{ListenConfig, MirrorConfig, RecordConfig, RunConfig, SpopConfig};
use std::time::Duration;

/// One option: the table below is the single place to add one; the clap command, the help
/// text, the man page and the prefix matching all come from it.
pub(super) struct Opt {
    pub(super) id: &'static str,
    pub(super) short: Option<char>,
    pub(super) long: &'static str,
    /// `None` for a flag.
    pub(super) value: Option<&'static str>,
    /// May be given several times, every value kept (otherwise the last one wins).
    pub(super) repeat: bool,
    /// Known to the original (or the Enterprise agent): wins a prefix match.
    pub(super) original: bool,
    /// What the option does, without a final period.
    pub(super) help: &'static str,
    /// The default, as the help shows it; read from the config structs, never written here.
    pub(super) default: Option<fn() -> String>,
}

impl Opt {
    /// Sets the default shown in the help.
    const fn or(self, default: fn() -> String) -> Opt {
        Opt {
            default: Some(default),
            ..self
        }
    }

    /// The help text with its default: `Port to listen on (default: 12345).`
    pub(super) fn help_text(&self) -> String {
        match self.default {
            Some(default) => format!("{} (default: {}).", self.help, default()),
            None => format!("{}.", self.help),
        }
    }
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
        default: None,
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
        default: None,
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
        default: None,
    }
}

const fn repeat(o: Opt) -> Opt {
    Opt { repeat: true, ..o }
}

#[rustfmt::skip]
pub(super) const OPTIONS: &[Opt] = &[
    opt("address", 'a', "address", "NAME", "Address to listen on, IPv4 or IPv6")
        .or(|| ListenConfig::default().address),
    repeat(opt("libev-backend", 'B', "libev-backend", "TYPE", "Accepted for compatibility; tokio picks the IO driver (epoll on Linux)")),
    opt("connection-backlog", 'b', "connection-backlog", "VALUE", "Listen backlog")
        .or(|| ListenConfig::default().backlog.to_string()),
    repeat(opt("capability", 'c', "capability", "NAME", "Enable an SPOP capability: fragmentation, pipelining or async; repeatable")
        .or(|| none_if_empty(SpopConfig::default().capabilities.to_list()))),
    flag("daemonize", Some('D'), "daemonize", true, "Run in the background as a daemon"),
    opt("debug", 'd', "debug", "LEVEL", "Accepted for compatibility and ignored; see --log-level"),
    opt("pidfile", 'F', "pidfile", "FILE", "Write the process id to FILE; removed at exit"),
    flag("help", Some('h'), "help", true, "Show this text"),
    opt("monitor-interval", 'i', "monitor-interval", "TIME", "Log the counters this often when they changed, 1s..1h")
        .or(|| time(RunConfig::DEFAULT_MONITOR_INTERVAL)),
    opt("logfile", 'l', "logfile", "[MODE:]FILE", "Log to FILE instead of stdout; MODE a/w/A/W, see below")
        .or(|| "stdout".into()),
    opt("max-frame-size", 'm', "max-frame-size", "VALUE", "Largest SPOP frame accepted, at least 512")
        .or(|| format!("{} bytes", SpopConfig::default().max_frame_size)),
    opt("num-workers", 'n', "num-workers", "VALUE", "Runtime worker threads, 1..1000")
        .or(|| WORKERS.into()),
    opt("port", 'p', "port", "VALUE", "Port to listen on")
        .or(|| ListenConfig::default().port.to_string()),
    opt("runtime", 'r', "runtime", "TIME", "Stop after TIME; 0 = run until stopped")
        .or(|| time(RunConfig::DEFAULT_RUNTIME.unwrap_or_default())),
    opt("processing-delay", 't', "processing-delay", "TIME", "Delay before each message is ACKed, 0..1s")
        .or(|| time(SpopConfig::default().processing_delay)),
    opt("mirror-url", 'u', "mirror-url", "URL", "Mirror requests to this http:// or https:// URL")
        .or(|| "none, ACK only".into()),
    opt("mirror-interface", 'I', "mirror-interface", "NAME", "Interface name or local address for connections to the mirror"),
    opt("mirror-local-port", 'P', "mirror-local-port", "PORT[-PORT]", "Local port or port range for connections to the mirror"),
    flag("version", Some('V'), "version", true, "Show the program version"),
    opt("proxy-url", 'x', "proxy-url", "URL", "Send mirrored requests through this HTTP proxy"),
    opt("proxy-userpwd", 'U', "proxy-userpwd", "USER:PASSWORD", "Credentials for the proxy (Basic)"),
    repeat(opt("proxy-header", 'H', "proxy-header", "HEADER", "Extra 'Name: value' header for the proxy; repeatable")),
    opt("noproxy", 'N', "noproxy", "LIST", "Comma-separated hosts that bypass the proxy"),
    // Long-only options of this implementation.
    long("log-level", "FILTER", "Log filter in RUST_LOG syntax, e.g. debug or info,spoa_mirror::mirror=debug")
        .or(|| format!("$RUST_LOG, else {}", RunConfig::DEFAULT_LOG_FILTER)),
    long("metrics-address", "ADDR:PORT", "Serve Prometheus metrics at http://ADDR:PORT/metrics")
        .or(|| "off".into()),
    long("idle-timeout", "TIME", "Close an SPOP connection silent for this long; 0 = never")
        .or(|| time(SpopConfig::default().idle_timeout.unwrap_or_default())),
    long("frame-timeout", "TIME", "Close an SPOP connection whose started frame is not complete this long after its first byte")
        .or(|| time(SpopConfig::default().frame_timeout)),
    long("max-connections", "N", "SPOP connections open at once; more are closed at once and counted")
        .or(|| SpopConfig::default().max_connections.to_string()),
    flag("original-capabilities", None, "original-capabilities", false, "Accept only the capabilities -c names, as the original agent does (by default pipelining is accepted too)"),
    flag("ack-noop", None, "ack-noop", false, "Put a harmless unset-var action in every ACK: works around the empty-ACK stall of early HAProxy 3.1 releases"),
    long("mirror-timeout", "TIME", "Total time for one mirrored request")
        .or(|| time(MirrorConfig::DEFAULT_TIMEOUT)),
    long("mirror-connect-timeout", "TIME", "Time to connect to the mirror")
        .or(|| time(MirrorConfig::DEFAULT_CONNECT_TIMEOUT)),
    long("mirror-queue", "N", "Messages waiting for a free request slot; more are dropped")
        .or(|| MirrorConfig::DEFAULT_QUEUE_SIZE.to_string()),
    long("mirror-concurrency", "N", "Mirrored requests on the wire at once")
        .or(|| MirrorConfig::DEFAULT_CONCURRENCY.to_string()),
    long("mirror-memory", "BYTES", "Memory for queued and in-flight requests, K/M/G suffixes")
        .or(|| format_bytes(u64::try_from(MirrorConfig::DEFAULT_MEMORY_BUDGET).unwrap_or(u64::MAX))),
    long("mirror-ca-file", "FILE", "Extra CA certificates (PEM) for an https:// mirror"),
    flag("mirror-insecure", None, "mirror-insecure", false, "Do not verify the https:// mirror's certificate"),
    long("drain-timeout", "TIME", "At stop, wait this long for in-flight mirrored requests")
        .or(|| time(MirrorConfig::DEFAULT_DRAIN_TIMEOUT)),
    flag("foreground", None, "foreground", false, "Stay in the foreground even when -D is given (for service managers)"),
    long("config", "FILE", "Mirror targets and their policies (TOML, [[target]] tables); the mirror flags are their defaults, -u adds a target named default; re-read at SIGHUP"),
    long("admin-address", "ADDR:PORT", "Serve the run-time control endpoint (show the configuration, pause and resume mirroring, change sampling and rate caps) at http://ADDR:PORT/; no authentication: bind it to a loopback address")
        .or(|| "off".into()),
    long("check-config", "FILE", "Check FILE as --config would, print the effective targets, and exit (0: valid, 64: not)"),
    long("record-dir", "DIR", "Also write every request -u's target takes to files in DIR, in GoReplay's format (for spoa-mirror-replay); created if missing"),
    long("record-file-size", "BYTES", "Start a new record file at this size, K/M/G suffixes")
        .or(|| format_bytes(RecordConfig::DEFAULT_FILE_SIZE)),
    long("record-rotate", "TIME", "Start a new record file at least this often, 1s..1d")
        .or(|| time(RecordConfig::DEFAULT_ROTATE)),
    long("record-disk-budget", "BYTES", "Record files take at most this much disk, the oldest deleted first")
        .or(|| format_bytes(RecordConfig::DEFAULT_DISK_BUDGET)),
    flag("record-gzip", None, "record-gzip", false, "gzip the record files (.gor.gz)"),
];

/// The default of `-n`, completed with the count in `-h` (not in the man page).
pub(super) const WORKERS: &str = "the number of CPU cores";

/// A TIME default as the help shows it: `0` for off, else `30s`, `1m 30s`, ...
fn time(d: Duration) -> String {
    if d.is_zero() {
        "0".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn none_if_empty(list: String) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list
    }
}
