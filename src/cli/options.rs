//! The option table: every option of the command line, once. The clap command
//! (`cli::command`), the `-h` text, the man page and the long-prefix matching all come
//! from it.

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
    pub(super) help: &'static str,
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
pub(super) const OPTIONS: &[Opt] = &[
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
