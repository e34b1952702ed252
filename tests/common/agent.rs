//! The agent under test as a child process ([`AgentProcess`]): the `spoa-mirror` binary cargo
//! built for this package, run on 127.0.0.1 with its stdout and stderr captured to one file,
//! and its Prometheus endpoint (`--metrics-address`) scraped for counters.
//!
//! Which harness: use this one when the test is about the program: the command line, signals,
//! logging, the metrics endpoint, exit codes, or the agent behind a real HAProxy. For the SPOP
//! protocol itself use `tests/support/agent.rs` (`InProcessAgent`: in-process, the handler's
//! messages and the `Stats` read directly, no process to start).
//!
//! ```ignore
//! let agent = AgentProcess::builder().args(["-c", "pipelining"]).start().await;
//! let acks = agent.metric("ack_total").await;
//! ```

use super::client::HttpConn;
use super::{free_port, local, poll_until, process_listens_on, stop_child, wait_child};
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Path of the agent binary built by cargo for integration tests.
pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_spoa-mirror");

/// How long the agent may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Prefix of every metric the agent exports.
pub const METRIC_PREFIX: &str = "spoa_mirror_";

/// Options for starting an agent. Defaults: `-r0 -a 127.0.0.1 -p <free port>` and
/// `--metrics-address 127.0.0.1:<free port>`; extra arguments come after them, so a repeated
/// scalar option (`-r 5s`) overrides the default (last one wins, like the original).
pub struct AgentProcessBuilder {
    args: Vec<String>,
    metrics: bool,
    /// `--admin-address 127.0.0.1:<free port>` (off by default, as in the agent).
    admin: bool,
    env: Vec<(String, String)>,
    program: Option<PathBuf>,
}

impl AgentProcessBuilder {
    /// Run this binary instead of [`AGENT_BIN`] (e.g. a copy that the test replaces later).
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Mirror to `url` (`-u URL`).
    pub fn mirror(self, url: &str) -> Self {
        self.args(["-u", url])
    }

    /// Do not pass `--metrics-address` (e.g. to test the plain original command line).
    pub fn without_metrics(mut self) -> Self {
        self.metrics = false;
        self
    }

    /// Serve the admin endpoint on a free loopback port (`--admin-address`).
    pub fn with_admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// Set an environment variable for the agent (e.g. `RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Spawn the agent and wait until its SPOP port (and metrics port) listen. Panics with the
    /// agent's output if it exits first or does not listen within [`START_TIMEOUT`]. A port
    /// taken between [`free_port`] and the agent's bind ("in use") is retried with new ports,
    /// up to 3 times.
    pub async fn start(self) -> AgentProcess {
        let mut attempt = 1;
        loop {
            let mut agent = self.spawn();
            match agent.wait_listening().await {
                Ok(()) => return agent,
                Err(why) if attempt < 3 && agent.output().to_lowercase().contains("in use") => {
                    eprintln!("agent start attempt {attempt}: port clash, retrying: {why}");
                    attempt += 1;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    /// One spawn on fresh ports.
    fn spawn(&self) -> AgentProcess {
        let dir = tempfile::Builder::new()
            .prefix("spoa-agent-")
            .tempdir()
            .expect("temp dir");
        let log_path = dir.path().join("agent.log");
        let port = free_port();
        let metrics_addr = self.metrics.then(|| local(free_port()));
        let admin_addr = self.admin.then(|| local(free_port()));

        let mut args: Vec<String> = vec![
            "-r0".into(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        if let Some(m) = metrics_addr {
            args.extend(["--metrics-address".to_string(), m.to_string()]);
        }
        if let Some(a) = admin_addr {
            args.extend(["--admin-address".to_string(), a.to_string()]);
        }
        args.extend(self.args.iter().cloned());

        let log = File::create(&log_path).expect("create agent.log");
        let program = self
            .program
            .clone()
            .unwrap_or_else(|| PathBuf::from(AGENT_BIN));
        let child = Command::new(&program)
            .args(&args)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        AgentProcess {
            child,
            port,
            metrics_addr,
            admin_addr,
            args,
            log_path,
            _dir: dir,
        }
    }
}

/// The former name, still used by `tests/ops.rs` and `tests/reliability.rs`; new code names
/// [`AgentProcess`].
pub type Agent = AgentProcess;

/// A running agent process; SIGTERM (then SIGKILL) on drop.
pub struct AgentProcess {
    child: Child,
    port: u16,
    metrics_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    args: Vec<String>,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProcess {
    pub fn builder() -> AgentProcessBuilder {
        AgentProcessBuilder {
            args: Vec::new(),
            metrics: true,
            admin: false,
            env: Vec::new(),
            program: None,
        }
    }

    /// Start with the default arguments plus `extra`.
    pub async fn start(extra: &[&str]) -> AgentProcess {
        AgentProcess::builder()
            .args(extra.iter().copied())
            .start()
            .await
    }

    /// Wait until the ports listen; `Err` with a description (and the output) if the agent
    /// exited or the deadline passed.
    async fn wait_listening(&mut self) -> Result<(), String> {
        let (port, metrics) = (self.port, self.metrics_addr.map(|a| a.port()));
        let admin = self.admin_addr.map(|a| a.port());
        let child = &mut self.child;
        let pid = child.id();
        let outcome = poll_until(START_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            let ready = process_listens_on(pid, port)
                && metrics.map_or(true, |m| process_listens_on(pid, m))
                && admin.map_or(true, |a| process_listens_on(pid, a));
            ready.then_some(Ok(()))
        })
        .await;
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(status)) => Err(format!(
                "agent exited ({status}) before listening; args {:?}; output:\n{}",
                self.args,
                self.output()
            )),
            None => Err(format!(
                "agent not listening on 127.0.0.1:{port} (metrics {metrics:?}) after \
                 {START_TIMEOUT:?}; args {:?}; output:\n{}",
                self.args,
                self.output()
            )),
        }
    }

    /// The SPOP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT` of the SPOP listener.
    pub fn addr(&self) -> SocketAddr {
        local(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The full command line after the program name.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Everything the agent printed so far (stdout and stderr, interleaved).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Wait up to `timeout` for a line of the output to contain `needle` (bounded poll of the
    /// log file); returns that line.
    pub async fn wait_output(&self, needle: &str, timeout: Duration) -> Option<String> {
        poll_until(timeout, || {
            self.output()
                .lines()
                .find(|l| l.contains(needle))
                .map(String::from)
        })
        .await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send a signal (e.g. `libc::SIGUSR1`).
    pub fn signal(&self, signal: libc::c_int) {
        super::send_signal(self.child.id(), signal);
    }

    /// Wait up to `timeout` for the agent to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(10))
    }

    /// The Prometheus text of `GET /metrics`. Panics if the agent runs without metrics or the
    /// endpoint does not answer 200.
    pub async fn metrics_text(&self) -> String {
        let addr = self
            .metrics_addr
            .expect("agent started without --metrics-address");
        let mut conn = HttpConn::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to metrics {addr}: {e}"));
        let resp = conn
            .request("GET", "/metrics", &[("Connection", "close")], b"")
            .await
            .unwrap_or_else(|e| panic!("GET /metrics on {addr}: {e}"));
        assert_eq!(
            resp.status, 200,
            "GET /metrics status; body: {:?}",
            resp.body
        );
        String::from_utf8_lossy(&resp.body).into_owned()
    }

    /// The admin endpoint's address (`with_admin`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
            .expect("agent started without --admin-address")
    }

    /// One request to the admin endpoint, on a new connection.
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> super::client::Response {
        let addr = self.admin_addr();
        let mut conn = HttpConn::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to admin {addr}: {e}"));
        conn.request(method, path, &[("Connection", "close")], body.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
    }

    /// Scrape once and parse every sample.
    /// The `--metrics-address` the agent serves (metrics, and the `/shadow` page).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
            .expect("agent started without --metrics-address")
    }

    pub async fn metrics(&self) -> Metrics {
        Metrics::parse(&self.metrics_text().await)
    }

    /// The value of `spoa_mirror_<field>` (a `Stats` field name such as `ack_total`); panics
    /// with the names present when it is missing. See [`Metrics::get`] for name matching.
    pub async fn metric(&self, field: &str) -> f64 {
        let metrics = self.metrics().await;
        metrics.get(field).unwrap_or_else(|| {
            panic!(
                "metric {METRIC_PREFIX}{field} not exported; have: {:?}",
                metrics.names()
            )
        })
    }

    /// Scrape until `pred(value of field)` holds (bounded: every 20 ms for at most `timeout`);
    /// returns the last value seen either way, and whether it held.
    pub async fn wait_metric(
        &self,
        field: &str,
        pred: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> (f64, bool) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let v = self.metric(field).await;
            if pred(v) {
                return (v, true);
            }
            if std::time::Instant::now() >= deadline {
                return (v, false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.terminate();
        if super::print_logs_on_drop() {
            eprintln!(
                "---- agent output (args {:?}):\n{}",
                self.args,
                self.output()
            );
        }
    }
}

/// Samples of one Prometheus text exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `(name, labels text without braces, value)` in exposition order.
    pub samples: Vec<(String, String, f64)>,
}

impl Metrics {
    /// Parse the text format: `name{labels} value [timestamp]`; `#` lines skipped.
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|line| {
                // The last brace: label values may hold braces (`endpoint="GET /users/{id}"`).
                let (series, rest) = match line.rfind('}') {
                    Some(close) => line.split_at(close + 1),
                    None => line.split_once(' ')?,
                };
                let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.strip_suffix('}').unwrap_or(l)),
                    None => (series, ""),
                };
                Some((name.trim().to_string(), labels.to_string(), value))
            })
            .collect();
        Metrics { samples }
    }

    /// Distinct sample names.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.samples.iter().map(|(n, _, _)| n.as_str()).collect();
        names.dedup();
        names
    }

    /// Sum of every sample named `spoa_mirror_<field>`; if there is none, of
    /// `spoa_mirror_<field>_total` (prometheus-client adds `_total` to counters), and if
    /// `field` ends in `_total`, of the name without it. `None` when no such sample exists.
    pub fn get(&self, field: &str) -> Option<f64> {
        let base = format!("{METRIC_PREFIX}{field}");
        let mut candidates = vec![base.clone(), format!("{base}_total")];
        if let Some(stripped) = base.strip_suffix("_total") {
            candidates.push(stripped.to_string());
        }
        candidates.iter().find_map(|name| self.sum(name))
    }

    /// Sum of the samples named `spoa_mirror_<name>` (exactly) whose labels include every
    /// `key="value"` of `labels`.
    pub fn labelled(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let full = format!("{METRIC_PREFIX}{name}");
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                *n == full
                    && labels
                        .iter()
                        .all(|(k, v)| l.split(',').any(|p| p == format!("{k}=\"{v}\"")))
            })
            .map(|(_, _, v)| *v)
            .sum()
    }

    /// Sum of every sample with exactly this full name (all label sets).
    pub fn sum(&self, name: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }
}
