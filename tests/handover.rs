//! Hand-over restart (SIGUSR2, issue 17): a new copy of the agent takes over the listening
//! socket while the old one serves, through real HAProxy 2.6, 2.8 and 3.x under steady load.
//!
//! Asserted: no client request fails; the mirror receives every request exactly once (each
//! request has its own path), except events HAProxy 2.6 strands in its own queue and never
//! sends to any agent (RELIABILITY.md, finding 2; counted from its log); the pidfile names the new process, which serves the port; the
//! old process exits 0. A new binary that fails to start leaves the old process serving,
//! with the reason in its log (and the failed binary's own stderr next to it). The unit's
//! `ExecReload=` line, run as systemd would run it, does the same; the old and new processes
//! tell systemd what `Type=notify` with `NotifyAccess=all` needs (read from a datagram socket
//! standing in for systemd's). Latencies are printed on `RELIABILITY handover` lines, never
//! asserted; the `#[ignore]`d `restart_figures` compares with stop + start (RELIABILITY.md).
//!
//! The processes a hand-over starts are not children of this test: the test becomes a child
//! subreaper, so that they are reparented to it and can be waited for.
//!
//! `cargo test --test handover -- --nocapture` (`--ignored restart_figures` for the figures)

mod common;

use common::agent::{AgentProcess, AGENT_BIN};
use common::client::HttpConn;
use common::haproxy::{
    spoe_statuses, Haproxy, HaproxyBin, MirrorSetup, AGENT_BACKEND, AGENT_SERVER,
};
use common::sink::Sink;
use common::{free_port, poll_until, process_listens_on, send_signal};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Concurrent keep-alive clients.
const CLIENTS: usize = 4;
/// Upper bound on the requests of one client (the load normally stops long before).
const MAX_PER_CLIENT: usize = 20_000;
/// Requests every client sends after the old process exited.
const AFTER_PER_CLIENT: usize = 100;
/// Deadline of each phase (mirroring seen, old process gone, requests after it).
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request slower than this counts as "slow" in the report.
const SLOW: Duration = Duration::from_millis(50);

/// Makes this test process the reaper of orphaned descendants (the processes a hand-over
/// starts outlive their parent, the agent this test started).
fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

/// A process this test did not spawn but reaps (see [`become_subreaper`]); SIGTERM on drop.
struct Adopted {
    pid: u32,
    reaped: Option<i32>,
}

impl Adopted {
    /// Waits up to `timeout` for it to exit; its raw wait status.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        if self.reaped.is_some() {
            return self.reaped;
        }
        let deadline = Instant::now() + timeout;
        let pid = libc::pid_t::try_from(self.pid).expect("pid");
        loop {
            let mut status = 0;
            // SAFETY: waitpid on one pid with a valid status pointer.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if rc == pid {
                self.reaped = Some(status);
                return self.reaped;
            }
            if rc < 0 || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(common::POLL_INTERVAL);
        }
    }

    /// SIGTERM and the exit code (`None`: killed by a signal, or not gone within 15 s).
    fn terminate(&mut self) -> Option<i32> {
        if self.reaped.is_none() {
            send_signal(self.pid, libc::SIGTERM);
        }
        let status = self.wait(Duration::from_secs(15));
        if status.is_none() {
            send_signal(self.pid, libc::SIGKILL);
            self.wait(Duration::from_secs(5));
        }
        status
            .filter(|s| libc::WIFEXITED(*s))
            .map(|s| libc::WEXITSTATUS(s))
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The pid in `path`, once it is there and differs from `not` (bounded poll).
async fn wait_pidfile(path: &Path, not: Option<u32>, timeout: Duration) -> Option<u32> {
    poll_until(timeout, || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|p| Some(*p) != not)
    })
    .await
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The settings the examples recommend for the agents' backend (examples/haproxy-*.cfg,
/// spoe-mirror.cfg): an agent that goes away must not make clients wait, and the hand-over
/// must not look like one.
fn recommended(setup: &mut MirrorSetup) {
    setup.timeout_processing = Duration::from_millis(200);
    setup.check_inter = Duration::from_secs(1);
    setup.agent_backend_extra = vec![
        "timeout connect 100ms".into(),
        "timeout server 1m".into(),
        "retries 0".into(),
        "default-server fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down \
         on-marked-down shutdown-sessions"
            .into(),
    ];
    setup.spoe_agent_extra = vec!["option set-on-error err".into()];
}

/// One request as a client saw it.
struct Sample {
    start: Instant,
    latency: Duration,
    /// HTTP status, 0 when the exchange failed (I/O error or timeout).
    status: u16,
    path: String,
}

/// `CLIENTS` keep-alive clients sending GETs with unique paths one after another until
/// `stop`; `done` counts finished requests.
fn start_load(
    frontend: SocketAddr,
    tag: &str,
    stop: Arc<AtomicBool>,
    done: Arc<watch::Sender<usize>>,
) -> tokio::task::JoinSet<Vec<Sample>> {
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (stop, done, tag) = (stop.clone(), done.clone(), tag.to_string());
        clients.spawn(async move {
            let mut samples = Vec::new();
            let mut conn: Option<HttpConn> = None;
            for i in 0..MAX_PER_CLIENT {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let path = format!("/{tag}/{c}/{i}");
                let start = Instant::now();
                if conn.is_none() {
                    conn = HttpConn::connect(frontend).await.ok();
                }
                let status = match conn.as_mut() {
                    Some(k) => k.get(&path).await.map_or(0, |r| r.status),
                    None => 0,
                };
                if status != 200 {
                    conn = None;
                }
                samples.push(Sample {
                    start,
                    latency: start.elapsed(),
                    status,
                    path,
                });
                done.send_modify(|n| *n += 1);
            }
            samples
        });
    }
    clients
}

async fn wait_done(done: &watch::Sender<usize>, n: usize, timeout: Duration) -> bool {
    let mut rx = done.subscribe();
    let reached = matches!(
        tokio::time::timeout(timeout, rx.wait_for(|v| *v >= n)).await,
        Ok(Ok(_))
    );
    reached
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let idx = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1);
    sorted.get(idx).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// How the agent is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// SIGUSR2.
    Handover,
    /// SIGTERM, wait for the exit, start again on the same port (`systemctl restart`).
    StopStart,
}

/// What one restart under load did.
struct Report {
    requests: usize,
    errors: usize,
    /// Latencies of the requests started from the signal until the old process exited.
    window: Vec<Duration>,
    /// Latencies of all requests before the signal.
    before_max: Duration,
    /// Requests answered 200 that the mirror never received, and ones it received twice.
    lost: usize,
    /// SPOE events HAProxy never handed to an agent at all (2.6 now and then strands one in
    /// its own queue: `st=1` with t_queue -1, RELIABILITY.md finding 2): no agent can mirror
    /// those.
    stranded: usize,
    duplicated: usize,
    /// From the signal to the old process's exit.
    old_gone_after: Duration,
    old_exit: Option<i32>,
    new_pid: u32,
    old_pid: u32,
    spoe_errors: usize,
    server_went_down: bool,
}

impl Report {
    fn print(&self, what: Restart, bin: &HaproxyBin) {
        let mut sorted = self.window.clone();
        sorted.sort();
        eprintln!(
            "RELIABILITY handover haproxy={} restart={what:?}: requests {}, errors {}, \
             mirror lost {} (events HAProxy never sent to an agent {}) duplicated {}; during the restart ({} requests): max {} p99 {} \
             p50 {} slow(>{}) {}; before it: max {}; old process gone after {}, exit {:?}; \
             pid {} -> {}; SPOE events not ok {}; agent server DOWN at some point: {}",
            bin.label,
            self.requests,
            self.errors,
            self.lost,
            self.stranded,
            self.duplicated,
            sorted.len(),
            ms(sorted.last().copied().unwrap_or_default()),
            ms(quantile(&sorted, 0.99)),
            ms(quantile(&sorted, 0.5)),
            ms(SLOW),
            sorted.iter().filter(|l| **l > SLOW).count(),
            ms(self.before_max),
            ms(self.old_gone_after),
            self.old_exit,
            self.old_pid,
            self.new_pid,
            self.spoe_errors,
            self.server_went_down,
        );
    }
}

/// Restart the agent `what` way while `CLIENTS` clients send requests through HAProxy
/// (settings of the examples); every client request is checked against what the mirror got.
async fn restart_under_load(bin: &HaproxyBin, what: Restart) -> Report {
    become_subreaper();
    let primary = Sink::start("primary").await;
    let mirror = Sink::start("mirror").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("agent.pid");
    let pidfile_arg = pidfile.display().to_string();
    let mut agent = AgentProcess::builder()
        .mirror(&mirror.url())
        .args(["-F", pidfile_arg.as_str()])
        .start()
        .await;
    let old_pid = agent.pid();
    let mut setup = MirrorSetup::new(bin, primary.addr(), agent.addr());
    recommended(&mut setup);
    let hap = Haproxy::start(bin, &setup).await;
    let (status, up) = hap
        .wait_server_status(AGENT_BACKEND, AGENT_SERVER, "UP", PHASE_TIMEOUT)
        .await;
    assert!(up, "agent server not UP: {status}");

    // Watch the agent's server for the whole run: a hand-over must not take it out.
    let watching = Arc::new(AtomicBool::new(true));
    let went_down = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (watching, went_down) = (watching.clone(), went_down.clone());
        let stats = hap.stats_socket();
        tokio::spawn(async move {
            for _ in 0..20_000 {
                if !watching.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(row) = show_server(&stats).await {
                    if !row.starts_with("UP") {
                        went_down.store(true, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(watch::channel(0).0);
    let tag = format!("{}-{what:?}", bin.label);
    let mut clients = start_load(hap.addr(), &tag, stop.clone(), done.clone());

    let mirrored = mirror.try_wait_for(50, PHASE_TIMEOUT).await.is_some();
    let signalled = Instant::now();
    let mut spawned = None;
    let (old_exit, new_pid) = match what {
        Restart::Handover => {
            agent.signal(libc::SIGUSR2);
            let status = tokio::task::spawn_blocking(move || {
                let status = agent.wait_exit(PHASE_TIMEOUT);
                (status, agent)
            })
            .await
            .expect("join");
            let (status, a) = status;
            agent = a;
            let new_pid = wait_pidfile(&pidfile, Some(old_pid), Duration::from_secs(1)).await;
            (status.and_then(|s| s.code()), new_pid.unwrap_or(0))
        }
        Restart::StopStart => {
            agent.signal(libc::SIGTERM);
            let (status, a) = tokio::task::spawn_blocking(move || {
                let status = agent.wait_exit(PHASE_TIMEOUT);
                (status, agent)
            })
            .await
            .expect("join");
            agent = a;
            let mut args: Vec<String> = agent.args().to_vec();
            args.retain(|a| a != "-r0");
            args.insert(0, "-r0".into());
            let log = std::fs::File::create(dir.path().join("second.log")).expect("log");
            let child = Command::new(AGENT_BIN)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn the second agent");
            let pid = child.id();
            spawned = Some(child);
            let port = agent.port();
            poll_until(PHASE_TIMEOUT, || {
                process_listens_on(pid, port).then_some(())
            })
            .await;
            (status.and_then(|s| s.code()), pid)
        }
    };
    let old_gone_after = signalled.elapsed();
    let old_gone = Instant::now();
    let serving = new_pid != 0 && process_listens_on(new_pid, agent.port());
    let at_exit = *done.borrow();
    let after = wait_done(&done, at_exit + CLIENTS * AFTER_PER_CLIENT, PHASE_TIMEOUT).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    while let Some(s) = clients.join_next().await {
        samples.extend(s.expect("client task"));
    }
    // The new process drains what it still holds: after its exit the mirror has everything.
    let new_exit = match spawned {
        Some(mut child) => common::stop_child(&mut child, libc::SIGTERM, Duration::from_secs(15))
            .and_then(|s| s.code()),
        None => Adopted {
            pid: new_pid,
            reaped: None,
        }
        .terminate(),
    };
    watching.store(false, Ordering::Relaxed);
    let _ = watcher.await;

    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for r in mirror.requests() {
        *got.entry(r.target.clone()).or_default() += 1;
    }
    let answered: Vec<&Sample> = samples.iter().filter(|s| s.status == 200).collect();
    let lost = answered
        .iter()
        .filter(|s| !got.contains_key(&s.path))
        .count();
    let duplicated = got.values().filter(|n| **n > 1).count();
    let window: Vec<Duration> = samples
        .iter()
        .filter(|s| s.start + s.latency >= signalled && s.start <= old_gone)
        .map(|s| s.latency)
        .collect();
    let before_max = samples
        .iter()
        .filter(|s| s.start + s.latency < signalled)
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    let report = Report {
        requests: samples.len(),
        errors: samples.len() - answered.len(),
        window,
        before_max,
        lost,
        stranded: common::haproxy::spoe_error_lines(&hap.log())
            .iter()
            .filter(|l| l.contains(" st=1 ") && l.contains("/-1/-1/-1/"))
            .count(),
        duplicated,
        old_gone_after,
        old_exit,
        new_pid,
        old_pid,
        spoe_errors: spoe_statuses(&hap.log())
            .iter()
            .filter(|s| **s != 0)
            .count(),
        server_went_down: went_down.load(Ordering::Relaxed),
    };
    report.print(what, bin);
    for line in common::haproxy::spoe_error_lines(&hap.log())
        .iter()
        .take(10)
    {
        eprintln!("  haproxy: {line}");
    }
    if lost > 0 {
        let paths: Vec<&str> = answered
            .iter()
            .filter(|s| !got.contains_key(&s.path))
            .map(|s| s.path.as_str())
            .collect();
        eprintln!("  lost: {paths:?}");
        for line in agent
            .output()
            .lines()
            .filter(|l| l.contains("final counters") || l.contains("WARN") || l.contains("ERROR"))
        {
            eprintln!("  agent: {line}");
        }
        for line in hap
            .log()
            .lines()
            .filter(|l| paths.iter().any(|p| l.contains(p)))
        {
            eprintln!("  haproxy: {line}");
        }
    }
    assert!(mirrored, "mirroring never started");
    assert!(after, "the load did not go on after the restart");
    assert!(
        serving,
        "pid {new_pid} does not serve port {}",
        agent.port()
    );
    assert_eq!(new_exit, Some(0), "the new process's exit after SIGTERM");
    let _ = &agent;
    report
}

/// `show servers state`-like status of the agent's server from the stats socket ("UP",
/// "DOWN", "MAINT"...), `None` when the socket did not answer.
async fn show_server(stats: &Path) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(stats).await.ok()?;
    s.write_all(b"show stat\n").await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    let rows = common::haproxy::parse_show_stat(&out);
    rows.into_iter()
        .find(|r| {
            r.get("pxname").is_some_and(|p| p == AGENT_BACKEND)
                && r.get("svname").is_some_and(|s| s == AGENT_SERVER)
        })
        .and_then(|r| r.get("status").cloned())
}

async fn handover_under_load(bin: HaproxyBin) {
    let r = restart_under_load(&bin, Restart::Handover).await;
    assert_eq!(r.old_exit, Some(0), "the old process's exit code");
    assert_ne!(r.new_pid, 0, "the pidfile never named a new process");
    assert_ne!(r.new_pid, r.old_pid);
    assert_eq!(r.errors, 0, "client requests failed");
    assert!(
        r.lost <= r.stranded,
        "{} requests answered but never mirrored; HAProxy stranded {} events",
        r.lost,
        r.stranded
    );
    assert_eq!(r.duplicated, 0, "requests mirrored twice");
}
per_haproxy!(handover_under_load);

/// The figures of RELIABILITY.md: a hand-over and a stop + start under the same load.
async fn restart_figures(bin: HaproxyBin) {
    restart_under_load(&bin, Restart::Handover).await;
    restart_under_load(&bin, Restart::StopStart).await;
}
per_haproxy!(
    #[ignore = "measurement: hand-over vs stop + start, for RELIABILITY.md"]
    restart_figures
);

/// Writes an executable file at `path` atomically (as a package upgrade does: a new file
/// renamed over the old one, which running processes keep).
fn install(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).expect("write");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename");
}

fn agent_copy(dir: &Path) -> PathBuf {
    let path = dir.join("spoa-mirror");
    install(
        &path,
        &std::fs::read(AGENT_BIN).expect("read the agent binary"),
    );
    path
}

/// Sends `n` GETs with paths `/{tag}/{i}` through HAProxy on one connection; all must be 200.
async fn send(frontend: SocketAddr, tag: &str, n: usize) {
    let mut conn = HttpConn::connect(frontend).await.expect("connect");
    for i in 0..n {
        let r = conn.get(&format!("/{tag}/{i}")).await.expect("request");
        assert_eq!(r.status, 200, "client request {i}");
    }
}

async fn failed_binary_keeps_serving(bin: HaproxyBin) {
    become_subreaper();
    let primary = Sink::start("primary").await;
    let mirror = Sink::start("mirror").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = agent_copy(dir.path());
    let pidfile = dir.path().join("agent.pid");
    let pidfile_arg = pidfile.display().to_string();
    let mut agent = AgentProcess::builder()
        .program(&exe)
        .mirror(&mirror.url())
        .args(["-F", pidfile_arg.as_str()])
        .start()
        .await;
    let mut setup = MirrorSetup::new(&bin, primary.addr(), agent.addr());
    recommended(&mut setup);
    let hap = Haproxy::start(&bin, &setup).await;
    let (status, up) = hap
        .wait_server_status(AGENT_BACKEND, AGENT_SERVER, "UP", PHASE_TIMEOUT)
        .await;
    assert!(up, "agent server not UP: {status}");
    send(hap.addr(), "before", 20).await;
    mirror.wait_for(20, PHASE_TIMEOUT).await;

    // The upgrade brings a binary that does not start.
    install(
        &exe,
        b"#!/bin/sh\necho 'stand-in binary: refusing to start' >&2\nexit 1\n",
    );
    agent.signal(libc::SIGUSR2);
    let failed = agent
        .wait_output("hand-over failed", PHASE_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("no failure logged:\n{}", agent.output()));
    assert!(failed.contains("exit status: 1"), "{failed}");
    assert!(
        agent
            .output()
            .contains("stand-in binary: refusing to start"),
        "the new binary's stderr is not in the agent's output"
    );
    assert!(agent.is_running(), "the old process stopped");
    assert_eq!(read_pid(&pidfile), Some(agent.pid()), "the pidfile changed");
    send(hap.addr(), "after-failure", 20).await;
    mirror.wait_for(40, PHASE_TIMEOUT).await;

    // A good binary again: the next SIGUSR2 hands over.
    install(
        &exe,
        &std::fs::read(AGENT_BIN).expect("read the agent binary"),
    );
    let old_pid = agent.pid();
    agent.signal(libc::SIGUSR2);
    let new_pid = wait_pidfile(&pidfile, Some(old_pid), PHASE_TIMEOUT)
        .await
        .expect("the pidfile never named the new process");
    let mut successor = Adopted {
        pid: new_pid,
        reaped: None,
    };
    let exit = tokio::task::spawn_blocking(move || agent.wait_exit(PHASE_TIMEOUT))
        .await
        .expect("join");
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "old process's exit");
    send(hap.addr(), "after-handover", 20).await;
    mirror.wait_for(60, PHASE_TIMEOUT).await;
    assert_eq!(successor.terminate(), Some(0));
    let mut paths: Vec<String> = mirror.requests().into_iter().map(|r| r.target).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 60, "each request mirrored once");
}
per_haproxy!(failed_binary_keeps_serving);

/// A second SIGUSR2 while the new process starts is logged and ignored.
#[tokio::test]
async fn second_sigusr2_during_handover_is_ignored() {
    become_subreaper();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = agent_copy(dir.path());
    let go = dir.path().join("go");
    let mut agent = AgentProcess::builder().program(&exe).start().await;
    // A new binary that starts slowly (until the test says go), then fails.
    install(
        &exe,
        format!(
            "#!/bin/sh\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\nexit 3\n",
            go.display()
        )
        .as_bytes(),
    );
    agent.signal(libc::SIGUSR2);
    agent
        .wait_output("hand-over: started pid", PHASE_TIMEOUT)
        .await
        .expect("hand-over started");
    agent.signal(libc::SIGUSR2);
    let ignored = agent.wait_output("SIGUSR2 ignored", PHASE_TIMEOUT).await;
    std::fs::write(&go, b"").expect("go");
    let failed = agent.wait_output("hand-over failed", PHASE_TIMEOUT).await;
    assert!(
        ignored.is_some_and(|l| l.contains("already under way")),
        "second SIGUSR2 not reported as ignored:\n{}",
        agent.output()
    );
    assert!(
        failed.is_some_and(|l| l.contains("exit status: 3")),
        "{}",
        agent.output()
    );
    assert!(agent.is_running());
    assert_eq!(
        agent.output().matches("hand-over: started pid").count(),
        1,
        "only one new process"
    );
}

/// `-D`: the new process does not fork again; it takes over the pidfile, works in `/` as a
/// daemon does, and both write to the same `-l` file (`w` mode: the new one must not cut the
/// old one's lines away).
#[tokio::test]
async fn daemon_handover() {
    become_subreaper();
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("agent.pid");
    let log = dir.path().join("agent.log");
    let port = free_port();
    let out = Command::new(AGENT_BIN)
        .args([
            "-D",
            "-r0",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-F",
        ])
        .arg(&pidfile)
        .arg("-l")
        .arg(format!("W:{}", log.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run the agent");
    assert!(out.status.success(), "-D start: {out:?}");
    let old_pid = read_pid(&pidfile).expect("pidfile after -D");
    let mut old = Adopted {
        pid: old_pid,
        reaped: None,
    };
    assert!(process_listens_on(old_pid, port));
    send_signal(old_pid, libc::SIGUSR2);
    let new_pid = wait_pidfile(&pidfile, Some(old_pid), PHASE_TIMEOUT)
        .await
        .unwrap_or_else(|| {
            panic!(
                "no new pid; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    let mut new = Adopted {
        pid: new_pid,
        reaped: None,
    };
    // The old daemon was double-forked away from this test: it exits, but is not ours to
    // reap unless it was reparented to us; wait for it to be gone either way.
    let gone = poll_until(PHASE_TIMEOUT, || {
        let state = std::fs::read_to_string(format!("/proc/{old_pid}/stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        (state.is_empty() || zombie).then_some(())
    })
    .await;
    assert!(gone.is_some(), "old daemon still running");
    old.reaped = Some(0);
    assert!(
        process_listens_on(new_pid, port),
        "new process does not serve"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{new_pid}/cwd")).ok(),
        Some(PathBuf::from("/")),
        "the new daemon's working directory"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&format!("pid {old_pid}: listening")),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {new_pid}: listening")),
        "{text}"
    );
    assert!(text.contains("stopping (handed over)"), "{text}");
    assert_eq!(new.terminate(), Some(0));
    assert!(
        !pidfile.exists(),
        "the new process removes the pidfile at exit"
    );
}

/// The unit's `ExecReload=`, run as systemd runs it (`$MAINPID` substituted, no shell), hands
/// over; what the processes tell systemd's notify socket follows `Type=notify` with
/// `NotifyAccess=all`: READY, then RELOADING from the old one, MAINPID and READY from the new
/// one, and no STOPPING from the old one (that would stop the service).
#[tokio::test]
async fn systemd_exec_reload_hands_over() {
    become_subreaper();
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/spoa-mirror.service"),
    )
    .expect("read the unit");
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(str::to_string))
            .unwrap_or_else(|| panic!("the unit has no {key}"))
    };
    assert_eq!(setting("NotifyAccess="), "all");
    assert_eq!(setting("Type="), "notify");
    let reload = setting("ExecReload=");

    let dir = tempfile::tempdir().expect("temp dir");
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let pidfile = dir.path().join("agent.pid");
    let pidfile_arg = pidfile.display().to_string();
    let agent = AgentProcess::builder()
        .env("NOTIFY_SOCKET", &notify_path.display().to_string())
        .args(["-F", pidfile_arg.as_str()])
        .start()
        .await;
    let old_pid = agent.pid();
    let mut messages = Vec::new();
    let receive = |until: &str, messages: &mut Vec<String>| {
        for _ in 0..20 {
            let mut buf = [0u8; 512];
            let Ok(n) = notify.recv(&mut buf) else { break };
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = m.contains(until);
            messages.push(m);
            if found {
                return true;
            }
        }
        false
    };
    assert!(receive("READY=1", &mut messages), "{messages:?}");

    let argv: Vec<String> = reload
        .replace("$MAINPID", &old_pid.to_string())
        .split_whitespace()
        .map(String::from)
        .collect();
    let (program, args) = argv.split_first().expect("ExecReload has a command");
    let status = Command::new(program)
        .args(args)
        .status()
        .expect("run ExecReload");
    assert!(status.success(), "{reload}: {status}");

    let new_pid = wait_pidfile(&pidfile, Some(old_pid), PHASE_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("no hand-over; output:\n{}", agent.output()));
    let mut successor = Adopted {
        pid: new_pid,
        reaped: None,
    };
    assert!(
        receive(&format!("MAINPID={new_pid}\nREADY=1"), &mut messages),
        "{messages:?}"
    );
    let mut agent = agent;
    let exit = tokio::task::spawn_blocking(move || {
        let e = agent.wait_exit(PHASE_TIMEOUT);
        (e, agent)
    })
    .await
    .expect("join");
    assert_eq!(exit.0.and_then(|s| s.code()), Some(0));
    // Anything the old process said up to its exit is queued by now.
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    receive("no such message", &mut messages);
    assert!(messages.iter().any(|m| m == "RELOADING=1"), "{messages:?}");
    assert!(
        !messages.iter().any(|m| m.contains("STOPPING=1")),
        "the old process told systemd it stops: {messages:?}"
    );
    assert_eq!(successor.terminate(), Some(0));
    let _ = exit.1;
}

/// Under HAProxy's master (`program` section) SIGUSR2 is refused: the new process would not
/// be the master's child. The agent keeps serving and says why.
#[tokio::test]
async fn sigusr2_refused_under_haproxy_master() {
    let mut agent = AgentProcess::builder()
        .env("HAPROXY_MWORKER", "1")
        .start()
        .await;
    agent.signal(libc::SIGUSR2);
    let refused = agent.wait_output("SIGUSR2 ignored", PHASE_TIMEOUT).await;
    assert!(
        refused.is_some_and(|l| l.contains("HAProxy's master")),
        "{}",
        agent.output()
    );
    assert!(agent.is_running());
    assert!(!agent.output().contains("hand-over: started"));
    assert!(process_listens_on(agent.pid(), agent.port()));
}

/// SIGTERM while the new process starts: the new process is stopped too (it must not keep
/// the service running after a stop).
#[tokio::test]
async fn stop_during_handover_stops_the_new_process() {
    become_subreaper();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = agent_copy(dir.path());
    let pid_out = dir.path().join("starting.pid");
    let mut agent = AgentProcess::builder().program(&exe).start().await;
    // A new binary that never becomes ready: it records its pid and waits (bounded).
    install(
        &exe,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 30\n",
            pid_out.display()
        )
        .as_bytes(),
    );
    agent.signal(libc::SIGUSR2);
    let started = poll_until(PHASE_TIMEOUT, || read_pid(&pid_out)).await;
    let started = started.expect("the new process started");
    let mut new = Adopted {
        pid: started,
        reaped: None,
    };
    let exit = agent.terminate();
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "old process's exit");
    assert!(
        agent.output().contains("stopping during a hand-over"),
        "{}",
        agent.output()
    );
    // Its parent (the old agent) may have reaped it already, or it was reparented to this
    // test: either way it must be gone, not left running.
    let gone = poll_until(PHASE_TIMEOUT, || {
        let _ = new.wait(Duration::ZERO);
        (new.reaped.is_some() || !alive(started)).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the new process (pid {started}) still runs");
    new.reaped = Some(0);
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
    })
}

/// The metrics and admin ports go over with the SPOP port: the new process could not bind
/// them while the old one listens, so it must adopt them, and both answer after the old
/// process is gone.
#[tokio::test]
async fn metrics_and_admin_ports_are_handed_over() {
    become_subreaper();
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("agent.pid");
    let mut agent = AgentProcess::builder()
        .with_admin()
        .arg("-F")
        .arg(pidfile.display().to_string())
        .start()
        .await;
    let old_pid = agent.pid();
    agent.signal(libc::SIGUSR2);
    let new_pid = wait_pidfile(&pidfile, Some(old_pid), PHASE_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("no new pid:\n{}", agent.output()));
    let mut new = Adopted {
        pid: new_pid,
        reaped: None,
    };
    let exit = agent.wait_exit(PHASE_TIMEOUT);
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "old process's exit:\n{}",
        agent.output()
    );
    let admin = agent.admin_addr();
    assert!(process_listens_on(new_pid, agent.port()), "SPOP port");
    assert!(process_listens_on(new_pid, admin.port()), "admin port");
    assert!(
        agent.metrics_text().await.contains("spoa_mirror_"),
        "metrics after the hand-over"
    );
    let resp = agent.admin("GET", "/", "").await;
    assert_eq!(
        resp.status, 200,
        "admin after the hand-over: {:?}",
        resp.body
    );
    assert_eq!(new.terminate(), Some(0));
}
