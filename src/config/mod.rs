//! The validated, typed configuration, one struct per component. `cli` builds it from the
//! command line; nothing below this module sees clap types.

mod policy;
mod record;
mod shadow;

pub use policy::{
    describe, BreakerConfig, HostPolicy, PolicyConfig, RateCap, Rules, SampleKey, Sampling,
    TargetConfig,
};
pub use record::RecordConfig;
pub use shadow::{BodyMode, JsonPattern, PathSeg, ShadowConfig, ShadowRole};

use crate::spop::Capabilities;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: ListenConfig,
    pub spop: SpopConfig,
    /// `None` without `-u`: the agent ACKs and mirrors nothing (unless `--config` names
    /// targets).
    pub mirror: Option<MirrorConfig>,
    /// `--config FILE`: re-read at SIGHUP.
    pub config_file: Option<PathBuf>,
    /// What the mirror flags say (timeouts, queue, proxy, TLS...): the defaults of the
    /// file's targets. Its `url` is a placeholder, replaced by each target's.
    pub target_defaults: MirrorConfig,
    /// Every mirror target: `-u`'s (named `default`) first, then the file's.
    pub targets: Vec<TargetConfig>,
    /// Shadow comparison (the file's `[shadow]` table), read at start only.
    pub shadow: Option<ShadowConfig>,
    /// Reads `config_file` again (SIGHUP), with this config's flags as defaults; set by the
    /// command line, so that the running agent needs no part of `cli`.
    pub targets_loader: Option<TargetsLoader>,
    pub run: RunConfig,
}

/// See [`Config::targets_loader`].
pub type TargetsLoader = fn(&Config) -> Result<Vec<TargetConfig>, String>;

/// `-a`, `-p`, `-b`.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Host name or address, IPv4 or IPv6 (`-a`).
    pub address: String,
    pub port: u16,
    pub backlog: u32,
}

impl ListenConfig {
    /// Every address, IPv4 (as the original).
    pub(crate) const DEFAULT_ADDRESS: &'static str = "0.0.0.0";
    pub const DEFAULT_PORT: u16 = 12345;
    pub const DEFAULT_BACKLOG: u32 = 10;
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            address: ListenConfig::DEFAULT_ADDRESS.into(),
            port: ListenConfig::DEFAULT_PORT,
            backlog: ListenConfig::DEFAULT_BACKLOG,
        }
    }
}

/// The SPOP side: `-m`, `-c`, `-t`.
#[derive(Debug, Clone)]
pub struct SpopConfig {
    /// The largest frame this agent accepts (`-m`); the negotiated size is the smaller of this
    /// and HAProxy's.
    pub max_frame_size: u32,
    /// Capabilities the agent is willing to use: `-c`, plus pipelining unless
    /// `--original-capabilities` ([`SpopConfig::DEFAULT_CAPABILITIES`]).
    pub capabilities: Capabilities,
    /// Delay before each NOTIFY is ACKed and handed on (`-t`).
    pub processing_delay: Duration,
    /// Close a connection that sent nothing for this long (`None`: never). HAProxy keeps its
    /// own idle timers; this only frees connections of peers that vanished.
    pub idle_timeout: Option<Duration>,
    /// A frame that has started to arrive must be complete within this time (slowloris guard).
    pub frame_timeout: Duration,
    /// Put one harmless action (`unset-var(txn.spoa_mirror_noop)`) in every ACK. HAProxy 3.1
    /// releases without the fix for its empty-ACK stall (upstream commit 851e52b55) never wake
    /// the stream on an empty ACK and wait for `timeout processing` instead.
    pub ack_noop: bool,
    /// Upper bound of a payload reassembled from fragments (HAProxy ≤ 3.0 with
    /// `-c fragmentation`).
    pub max_reassembled_size: usize,
    /// SPOP connections open at once, health checks included (`--max-connections`); beyond,
    /// a new connection is closed as soon as it is accepted, and counted.
    pub max_connections: usize,
}

impl SpopConfig {
    /// Default `-m`: large enough to accept whatever HAProxy proposes (`tune.bufsize` − 4) for
    /// any usual buffer size, so no body is lost to a small agent limit.
    pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1024 * 1024;
    /// Well above what HAProxy opens: one connection per in-flight request without
    /// pipelining (3.1+), a few per thread and agent server with it.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// A started frame must be complete within this time.
    pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
    /// What the agent accepts without `-c`: pipelining, which every HAProxy offers (2.x:
    /// `pipelining,async`; 3.1+: `pipelining`). The original accepts nothing unless `-c` asks,
    /// so HAProxy sends one NOTIFY per connection at a time and opens dozens of connections:
    /// measured, that costs HAProxy a third of its throughput (BENCHMARKS.md §8).
    /// `--original-capabilities` goes back to the original's behaviour.
    pub const DEFAULT_CAPABILITIES: Capabilities = Capabilities {
        fragmentation: false,
        pipelining: true,
        r#async: false,
    };
    /// Bound of a payload reassembled from fragments.
    pub(crate) const DEFAULT_MAX_REASSEMBLED_SIZE: usize = 4 * 1024 * 1024;
}

impl Default for SpopConfig {
    fn default() -> Self {
        SpopConfig {
            max_frame_size: SpopConfig::DEFAULT_MAX_FRAME_SIZE,
            capabilities: SpopConfig::DEFAULT_CAPABILITIES,
            processing_delay: Duration::ZERO,
            idle_timeout: None,
            frame_timeout: SpopConfig::DEFAULT_FRAME_TIMEOUT,
            ack_noop: false,
            max_reassembled_size: SpopConfig::DEFAULT_MAX_REASSEMBLED_SIZE,
            max_connections: SpopConfig::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A secret (a password, userinfo): never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A mirror URL (`-u`) the engine can use as it is: `http://` or `https://`, a host, no
/// `user:password@`, no query; its path, without trailing slashes, is the prefix put before
/// every request target. Only [`MirrorUrl::parse`] and [`MirrorUrl::from_uri`] make one, so
/// the command line and the engine apply the same rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorUrl {
    uri: http::Uri,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    prefix: String,
}

/// Why a mirror URL is refused; the texts are those of the `-u` error lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URI at all (the `http` crate's reason, e.g. "invalid uri character").
    #[error("{0}")]
    Syntax(String),
    #[error("the scheme must be http:// or https://")]
    Scheme,
    #[error("no host")]
    NoHost,
    /// The mirror engine sends no credentials of its own (the mirrored request carries the
    /// client's headers), and userinfo would end up in log lines.
    #[error("user:password@ is not supported")]
    Userinfo,
    #[error("a query string cannot be prepended to request targets")]
    Query,
}

impl MirrorUrl {
    /// Parses and checks `-u`'s text.
    pub fn parse(text: &str) -> Result<MirrorUrl, UrlError> {
        let uri = text
            .parse::<http::Uri>()
            .map_err(|e| UrlError::Syntax(e.to_string()))?;
        MirrorUrl::from_uri(&uri)
    }

    /// Checks an already parsed URI (e.g. [`MirrorConfig::url`]).
    pub fn from_uri(uri: &http::Uri) -> Result<MirrorUrl, UrlError> {
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => http::uri::Scheme::HTTP,
            Some("https") => http::uri::Scheme::HTTPS,
            _ => return Err(UrlError::Scheme),
        };
        let authority = match uri.authority() {
            Some(a) if !a.host().is_empty() => a.clone(),
            _ => return Err(UrlError::NoHost),
        };
        if authority.as_str().contains('@') {
            return Err(UrlError::Userinfo);
        }
        if uri.query().is_some() {
            return Err(UrlError::Query);
        }
        Ok(MirrorUrl {
            uri: uri.clone(),
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &http::uri::Scheme {
        &self.scheme
    }

    /// Host and optional port, where the client connects.
    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    /// The path without trailing slashes; empty when there is none (`http://m` or `http://m/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL as given.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// The URL as given, for [`MirrorConfig::new`].
    pub fn into_uri(self) -> http::Uri {
        self.uri
    }
}

impl std::str::FromStr for MirrorUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<MirrorUrl, UrlError> {
        MirrorUrl::parse(text)
    }
}

impl std::fmt::Display for MirrorUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

/// The mirror side: `-u`, `-I`, `-P`, `-x`, `-U`, `-H`, `-N` and the long-only options.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorConfig {
    /// The mirror URL (`-u`), `http://` or `https://`. Its path, without trailing slashes, is
    /// prepended to every request target. The command line checks it with [`MirrorUrl`].
    pub url: http::Uri,
    /// Interface name or local address for outgoing connections (`-I`).
    pub interface: Option<String>,
    /// Local port range for outgoing connections (`-P`), inclusive.
    pub local_ports: Option<(u16, u16)>,
    pub proxy: Option<ProxyConfig>,
    /// Total time for one mirrored request, connect included.
    pub timeout: Duration,
    /// Time to establish a connection (capped by `timeout`).
    pub connect_timeout: Duration,
    /// Messages waiting for a free request slot.
    pub queue_size: usize,
    /// Requests on the wire at once.
    pub concurrency: usize,
    /// Bytes of queued and in-flight requests (bodies and headers) the engine may hold.
    pub memory_budget: usize,
    /// Extra CA certificates (PEM) for `https://` mirrors, added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Do not verify the mirror's certificate (explicit opt-in; the original never verified).
    pub insecure: bool,
    /// Idle keep-alive connections are closed after this time.
    pub pool_idle_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Write every request the target takes (after its policy) to files; `None`: no record.
    pub record: Option<RecordConfig>,
    /// Keep this target's responses for shadow comparison, in this role.
    pub compare: Option<ShadowRole>,
}

impl MirrorConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_QUEUE_SIZE: usize = 4096;
    pub(crate) const DEFAULT_CONCURRENCY: usize = 256;
    pub(crate) const DEFAULT_MEMORY_BUDGET: usize = 64 * 1024 * 1024;
    pub(crate) const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

    /// The placeholder URL of [`Config::target_defaults`].
    pub const PLACEHOLDER_URL: &'static str = "http://placeholder.invalid/";

    /// The settings for mirroring to `url`, every other one at its default.
    pub fn new(url: http::Uri) -> MirrorConfig {
        MirrorConfig {
            url,
            interface: None,
            local_ports: None,
            proxy: None,
            timeout: MirrorConfig::DEFAULT_TIMEOUT,
            connect_timeout: MirrorConfig::DEFAULT_CONNECT_TIMEOUT,
            queue_size: MirrorConfig::DEFAULT_QUEUE_SIZE,
            concurrency: MirrorConfig::DEFAULT_CONCURRENCY,
            memory_budget: MirrorConfig::DEFAULT_MEMORY_BUDGET,
            ca_file: None,
            insecure: false,
            pool_idle_timeout: MirrorConfig::DEFAULT_POOL_IDLE_TIMEOUT,
            drain_timeout: MirrorConfig::DEFAULT_DRAIN_TIMEOUT,
            record: None,
            compare: None,
        }
    }
}

/// An HTTP proxy between the agent and the mirror (`-x`, `-U`, `-H`, `-N`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub url: http::Uri,
    /// `USER:PASSWORD` for Basic `Proxy-Authorization` (`-U`).
    pub userpwd: Option<Secret>,
    /// Extra headers for the proxy (`-H`), `Name: value`.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Hosts that bypass the proxy (`-N`), in the usual `no_proxy` syntax.
    pub noproxy: Option<String>,
}

/// Process-level settings: `-r`, `-i`, `-n`, `-D`, `-F`, `-l` and logging.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Stop after this time (`-r`); `None` = until signalled.
    pub runtime: Option<Duration>,
    pub monitor_interval: Duration,
    /// Runtime worker threads (`-n`).
    pub workers: usize,
    pub daemonize: bool,
    pub pidfile: Option<PathBuf>,
    pub logfile: Option<LogFile>,
    /// `RUST_LOG`-style filter.
    pub log_filter: String,
    /// Serve Prometheus metrics here.
    pub metrics_address: Option<SocketAddr>,
    /// Serve the run-time control endpoint (`src/admin/`) here; off unless asked.
    pub admin_address: Option<SocketAddr>,
    /// libev backend names given with `-B`; tokio picks its own driver, they are only logged.
    pub libev_backends: Vec<String>,
    /// Warnings about the command line (ignored options, extra operands), logged at startup.
    pub notices: Vec<String>,
}

impl RunConfig {
    /// Run until stopped.
    pub(crate) const DEFAULT_RUNTIME: Option<Duration> = None;
    pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(5);
    /// Used when neither `--log-level` nor a valid `RUST_LOG` is given.
    pub(crate) const DEFAULT_LOG_FILTER: &'static str = "info";
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            runtime: RunConfig::DEFAULT_RUNTIME,
            monitor_interval: RunConfig::DEFAULT_MONITOR_INTERVAL,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            daemonize: false,
            pidfile: None,
            logfile: None,
            log_filter: RunConfig::DEFAULT_LOG_FILTER.into(),
            metrics_address: None,
            admin_address: None,
            libev_backends: Vec::new(),
            notices: Vec::new(),
        }
    }
}

/// `-l [MODE:]FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    /// Truncate (`w`) instead of append (`a`, and no mode).
    pub truncate: bool,
    /// Flush after every line (capital mode letter).
    pub line_buffered: bool,
}

/// The URL with any `user:password@` replaced, for logs and errors.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!(
            "{scheme}://***@{}{tail}",
            authority.get(at + 1..).unwrap_or_default()
        ),
        None => url.to_string(),
    }
}
