//! The split command line → a [`Config`]. Every value is checked, and every problem reported
//! at once, one line each, in a fixed order (times first, then listen, SPOP, process and
//! mirror options). An option not given keeps the default of its config struct.

use super::file::{combine, load_all};
use super::values::{
    parse_backend, parse_frame_size, parse_header, parse_int, parse_logfile, parse_memory,
    parse_mirror_url, parse_port_range, parse_proxy_url, parse_time,
};
use super::{usage_error, CliError};
use crate::config::{
    Config, ListenConfig, MirrorConfig, ProxyConfig, RecordConfig, RunConfig, Secret, ShadowConfig,
    SpopConfig, TargetConfig,
};
use clap::parser::ValueSource;
use clap::ArgMatches;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Reads every option into a [`Config`], collecting one error line per bad value.
pub(super) fn to_config(m: &ArgMatches, rust_log: Option<String>) -> Result<Config, CliError> {
    let mut r = Reader {
        m,
        errors: Vec::new(),
        notices: Vec::new(),
    };
    let times = times(&mut r);
    let listen = listen(&mut r);
    let spop = spop(&mut r, &times);
    let mut run = run(&mut r, &times, rust_log);
    let (mirror, target_defaults) = mirror(&mut r, &times);
    if !r.errors.is_empty() {
        return Err(usage_error(r.errors));
    }
    let (config_file, targets, shadow) = targets(&r, mirror.as_ref(), &target_defaults)?;
    if run.daemonize && run.logfile.is_none() {
        r.notices
            .push("with -D and without -l, log lines are discarded".to_string());
    }
    run.notices = r.notices;
    Ok(Config {
        listen,
        spop,
        mirror,
        config_file,
        target_defaults,
        targets,
        shadow,
        targets_loader: Some(super::file::reload),
        run,
    })
}

/// The `--config` file's path, every target, the `[shadow]` table.
type FileTargets = (Option<PathBuf>, Vec<TargetConfig>, Option<ShadowConfig>);

/// `--config` (or `--check-config`) read with the flags' settings as defaults, and `-u`'s
/// target first; the file's `[shadow]` table. The file's path is made absolute (`-D` changes
/// directory; SIGHUP re-reads).
fn targets(
    r: &Reader,
    cli: Option<&MirrorConfig>,
    defaults: &MirrorConfig,
) -> Result<FileTargets, CliError> {
    let path = r.one("check-config").or_else(|| r.one("config"));
    let Some(path) = path.map(PathBuf::from) else {
        return Ok((None, combine(cli, Vec::new()).unwrap_or_default(), None));
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    let (file, shadow) = load_all(&path, defaults).map_err(|e| usage_error(vec![e]))?;
    let all = combine(cli, file).map_err(|e| usage_error(vec![e]))?;
    Ok((Some(path), all, shadow))
}

/// The matches, and what reading them found wrong (errors) or worth a warning (notices).
struct Reader<'a> {
    m: &'a ArgMatches,
    errors: Vec<String>,
    notices: Vec<String>,
}

impl<'a> Reader<'a> {
    fn one(&self, id: &str) -> Option<&'a str> {
        self.m.get_one::<String>(id).map(String::as_str)
    }

    fn all(&self, id: &str) -> Vec<&'a str> {
        self.m
            .get_many::<String>(id)
            .map(|v| v.map(String::as_str).collect())
            .unwrap_or_default()
    }

    fn flag(&self, id: &str) -> bool {
        self.m.get_flag(id)
    }

    /// Whether `id` is on the command line.
    fn given(&self, id: &str) -> bool {
        self.m.contains_id(id) && self.m.value_source(id) == Some(ValueSource::CommandLine)
    }

    /// `id`'s value through `parse`; `None` when absent or bad (the error is kept).
    fn value<T>(&mut self, id: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let text = self.one(id)?;
        parse(text).map_err(|e| self.errors.push(e)).ok()
    }

    /// Every value of a repeatable option through `parse`; the bad ones are errors.
    fn values<T>(&mut self, id: &str, parse: impl Fn(&str) -> Result<T, String>) -> Vec<T> {
        let texts = self.all(id);
        texts
            .into_iter()
            .filter_map(|t| parse(t).map_err(|e| self.errors.push(e)).ok())
            .collect()
    }

    /// A TIME in `min..=max`.
    fn time(&mut self, id: &str, min: Duration, max: Duration) -> Option<Duration> {
        self.value(id, |t| parse_time(t, min, max))
    }

    /// A count in `1..=max` (the long-only mirror options).
    fn count(&mut self, id: &str, max: u64) -> Option<usize> {
        self.value(id, |v| {
            parse_int(v, 1, max)
                .ok_or_else(|| format!("invalid --{id} '{v}' (allowed range [1, {max}])"))
        })
    }
}

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

/// Every TIME option, read first (their errors come first); `None` when absent or bad.
struct Times {
    runtime: Option<Duration>,
    monitor_interval: Option<Duration>,
    processing_delay: Option<Duration>,
    idle_timeout: Option<Duration>,
    frame_timeout: Option<Duration>,
    mirror_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
}

/// `-r`, `-i`, `-t` with the original's ranges, then the long-only times.
fn times(r: &mut Reader) -> Times {
    Times {
        runtime: r.time("runtime", Duration::ZERO, 7 * DAY),
        monitor_interval: r.time("monitor-interval", SEC, HOUR),
        processing_delay: r.time("processing-delay", Duration::ZERO, SEC),
        idle_timeout: r.time("idle-timeout", Duration::ZERO, 7 * DAY),
        frame_timeout: r.time("frame-timeout", MS, HOUR),
        mirror_timeout: r.time("mirror-timeout", MS, HOUR),
        connect_timeout: r.time("mirror-connect-timeout", MS, HOUR),
        drain_timeout: r.time("drain-timeout", Duration::ZERO, HOUR),
    }
}

/// `-a`, `-p`, `-b`.
fn listen(r: &mut Reader) -> ListenConfig {
    let mut listen = ListenConfig::default();
    if let Some(a) = r.value("address", |a| match a {
        "" => Err("address not defined".to_string()),
        a => Ok(a.to_string()),
    }) {
        listen.address = a;
    }
    if let Some(p) = r.value("port", |p| {
        parse_int(p, 1, 65535).ok_or_else(|| format!("invalid port '{p}'"))
    }) {
        listen.port = p;
    }
    if let Some(b) = r.value("connection-backlog", |b| {
        parse_int(b, 0, u64::from(u32::MAX))
            .ok_or_else(|| format!("invalid connection backlog '{b}'"))
    }) {
        listen.backlog = b;
    }
    listen
}

/// `-t`, `-m`, `-c` and the long-only SPOP options.
fn spop(r: &mut Reader, t: &Times) -> SpopConfig {
    let mut spop = SpopConfig::default();
    if let Some(d) = t.processing_delay {
        spop.processing_delay = d;
    }
    if let Some(d) = t.idle_timeout {
        spop.idle_timeout = (!d.is_zero()).then_some(d);
    }
    if let Some(d) = t.frame_timeout {
        spop.frame_timeout = d;
    }
    spop.ack_noop = r.flag("ack-noop");
    if let Some(n) = r.value("max-connections", |n| {
        parse_int(n, 1, 1_000_000)
            .ok_or_else(|| format!("invalid max-connections '{n}' (1..1000000)"))
    }) {
        spop.max_connections = n;
    }
    if let Some(v) = r.value("max-frame-size", parse_frame_size) {
        spop.max_frame_size = v;
    }
    if r.flag("original-capabilities") {
        spop.capabilities = crate::spop::Capabilities::default();
    }
    for c in r.all("capability") {
        let caps = &mut spop.capabilities;
        match c.to_ascii_lowercase().as_str() {
            "fragmentation" => caps.fragmentation = true,
            "pipelining" => caps.pipelining = true,
            "async" => caps.r#async = true,
            _ => r.errors.push(format!("unsupported capability '{c}'")),
        }
    }
    spop
}

/// `-r`, `-i`, `-n`, `-D`, `-F`, `-l`, `-B`, `-d`, the operands and the logging options.
fn run(r: &mut Reader, t: &Times, rust_log: Option<String>) -> RunConfig {
    let mut run = RunConfig::default();
    if let Some(d) = t.monitor_interval {
        run.monitor_interval = d;
    }
    run.runtime = t.runtime.filter(|d| !d.is_zero());
    if let Some(n) = r.value("num-workers", |n| {
        parse_int(n, 1, 1000).ok_or_else(|| format!("invalid number of workers '{n}'"))
    }) {
        run.workers = n;
    }
    run.daemonize = r.flag("daemonize") && !r.flag("foreground");
    run.pidfile = r.one("pidfile").map(PathBuf::from);
    run.logfile = r.value("logfile", parse_logfile);
    run.libev_backends = r.values("libev-backend", parse_backend);
    if r.one("debug").is_some() {
        r.notices.push(
            "option -d (debug level) is ignored; use --log-level to choose what is logged"
                .to_string(),
        );
    }
    for o in r.all("operands") {
        r.notices.push(format!("ignoring the extra argument '{o}'"));
    }
    if let Some(f) = log_filter(r, rust_log) {
        run.log_filter = f;
    }
    run.metrics_address = r.value("metrics-address", |a| {
        a.parse::<SocketAddr>().map_err(|_| {
            format!("invalid metrics address '{a}' (expected ADDR:PORT, e.g. 127.0.0.1:9105)")
        })
    });
    run.admin_address = r.value("admin-address", |a| {
        a.parse::<SocketAddr>().map_err(|_| {
            format!("invalid admin address '{a}' (expected ADDR:PORT, e.g. 127.0.0.1:9106)")
        })
    });
    if let (Some(a), Some(m)) = (run.admin_address, run.metrics_address) {
        if a == m {
            r.errors.push(format!(
                "--admin-address {a} is also --metrics-address: the changing endpoints never share the metrics address"
            ));
        }
    }
    if run.admin_address.is_some_and(|a| !a.ip().is_loopback()) {
        r.notices.push(
            "--admin-address is not a loopback address: anyone who reaches it can pause mirroring (it has no authentication)"
                .to_string(),
        );
    }
    run
}

/// `--log-level`, else `RUST_LOG` (ignored with a notice when it is not a valid filter).
fn log_filter(r: &mut Reader, rust_log: Option<String>) -> Option<String> {
    let option = r.one("log-level");
    match option.map(str::to_string).or(rust_log) {
        Some(f) if tracing_subscriber::EnvFilter::try_new(&f).is_ok() && !f.trim().is_empty() => {
            Some(f)
        }
        Some(f) if option.is_some() => {
            r.errors.push(format!("invalid log filter '{f}'"));
            None
        }
        Some(f) => {
            r.notices
                .push(format!("ignoring RUST_LOG='{f}': not a valid filter"));
            None
        }
        None => None,
    }
}

/// The mirror and proxy options: checked even without `-u`; `-u`'s target, and the defaults
/// of `--config`'s targets (the same settings, with a placeholder URL).
fn mirror(r: &mut Reader, t: &Times) -> (Option<MirrorConfig>, MirrorConfig) {
    let local_ports = r.value("mirror-local-port", parse_port_range).flatten();
    let proxy_url = r.value("proxy-url", parse_proxy_url);
    let proxy_headers = r.values("proxy-header", parse_header);
    let queue_size = r.count("mirror-queue", 1_000_000);
    let concurrency = r.count("mirror-concurrency", 65_535);
    let memory_budget = r.value("mirror-memory", parse_memory);
    let url = r.value("mirror-url", parse_mirror_url);
    if url.is_none() && r.one("config").is_none() && r.one("check-config").is_none() {
        unused_without_mirror(r);
    }
    let placeholder = http::Uri::from_static(MirrorConfig::PLACEHOLDER_URL);
    let mut mc = MirrorConfig::new(placeholder);
    mc.interface = r.one("mirror-interface").map(str::to_string);
    mc.local_ports = local_ports;
    let proxy_only = ["proxy-userpwd", "noproxy", "proxy-header"];
    if proxy_url.is_none() && proxy_only.iter().any(|id| !r.all(id).is_empty()) {
        r.notices
            .push("-U, -H and -N only apply with -x; ignored".to_string());
    }
    mc.proxy = proxy_url.map(|url| ProxyConfig {
        url,
        userpwd: r.one("proxy-userpwd").map(|s| Secret(s.to_string())),
        headers: proxy_headers,
        noproxy: r.one("noproxy").map(str::to_string),
    });
    set(&mut mc.timeout, t.mirror_timeout);
    set(&mut mc.connect_timeout, t.connect_timeout);
    set(&mut mc.drain_timeout, t.drain_timeout);
    set(&mut mc.queue_size, queue_size);
    set(&mut mc.concurrency, concurrency);
    set(&mut mc.memory_budget, memory_budget);
    mc.ca_file = r.one("mirror-ca-file").map(PathBuf::from);
    mc.insecure = r.flag("mirror-insecure");
    let record = record(r, url.is_some());
    let cli = url.map(|u| MirrorConfig {
        url: u.into_uri(),
        record,
        ..mc.clone()
    });
    (cli, mc)
}

/// `--record-dir` and its settings: -u's target records (a `--config` target has its own
/// `record` table).
fn record(r: &mut Reader, with_url: bool) -> Option<RecordConfig> {
    let file_size = r.value("record-file-size", bytes_option("record-file-size"));
    let budget = r.value("record-disk-budget", bytes_option("record-disk-budget"));
    let rotate = r.time("record-rotate", SEC, DAY);
    let dir = r.one("record-dir")?;
    if !with_url {
        r.errors.push(
            "--record-dir records -u's target: give -u, or a `record` table in a --config target"
                .to_string(),
        );
        return None;
    }
    let mut rc = RecordConfig::new(PathBuf::from(dir));
    set(&mut rc.file_size, file_size);
    set(&mut rc.disk_budget, budget);
    set(&mut rc.rotate, rotate);
    rc.gzip = r.flag("record-gzip");
    if let Err(e) = rc.check() {
        r.errors.push(e);
        return None;
    }
    Some(rc)
}

/// A BYTES option (K/M/G suffixes).
fn bytes_option(id: &'static str) -> impl Fn(&str) -> Result<u64, String> {
    move |v| {
        super::values::parse_bytes(v)
            .ok_or_else(|| format!("invalid --{id} '{v}' (bytes with an optional K/M/G suffix)"))
    }
}

/// Sets `field` when the option was given.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// Without `-u`, the options that only shape mirrored requests are ignored: say so.
fn unused_without_mirror(r: &mut Reader) {
    let unused: Vec<&str> = [
        "mirror-interface",
        "mirror-local-port",
        "proxy-url",
        "proxy-userpwd",
        "proxy-header",
        "noproxy",
    ]
    .into_iter()
    .filter(|id| r.given(id))
    .collect();
    if !unused.is_empty() {
        r.notices.push(format!(
            "without -u nothing is mirrored; ignoring --{}",
            unused.join(", --")
        ));
    }
}
