//! Hand-over restart (SIGUSR2): a new copy of the agent takes over the listening sockets
//! while this one still serves; only once the new one is ready does this one stop.
//!
//! The old process ([`Handover`]):
//! 1. starts the binary it was started from (resolved at startup by [`remember_origin`], so a
//!    package upgrade that replaced the file takes effect), with the same arguments, the same
//!    environment and the working directory it was started in;
//! 2. passes it, by number in [`ENV`], the listening SPOP socket, the metrics and admin
//!    sockets (if any),
//!    the `-F` pidfile (its open file, which carries the `flock`), and one end of a readiness
//!    socket pair; `FD_CLOEXEC` is cleared on exactly these in the child before `exec`;
//! 3. waits up to [`READY_TIMEOUT`] for the readiness report, serving meanwhile. The report
//!    is the one the `-D` parent reads (`process::Readiness`): one byte 0 once the new process
//!    serves, or its exit code and error text;
//! 4. on success, gives up the pidfile and stops through the orderly stop of `app/mod.rs`
//!    (AGENT-DISCONNECT, drain), and exits 0; on failure (an error report, an exit before the
//!    report, or no report in time: then the child is killed), logs why and keeps serving.
//!
//! The new process ([`Inherited`], read in `main.rs` before anything else runs) adopts the
//! sockets instead of binding, does not fork again for `-D` (it is the child of a daemon
//! already), and once it serves: writes its pid into the inherited pidfile, tells systemd
//! `MAINPID=<pid>` and `READY=1` (the unit has `NotifyAccess=all`), then reports ready.
//!
//! [`ENV`] is an internal contract between two copies of the agent, never set by operators;
//! the command line stays the original's. Value: comma-separated `name=fd` pairs, names
//! `spop` (required), `ready` (required), `metrics`, `admin`, `pidfile`.
//!
//! Under HAProxy's master (`program` section) SIGUSR2 is refused: the new process would not be
//! the master's child, and the master would consider the program gone (README, "Restarts").

use crate::process::{disown_pidfile, pidfile_fd, sd_notify};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

mod inherited;
mod origin;

use inherited::set_cloexec;
pub use inherited::{listener, Inherited};
pub use origin::remember_origin;
use origin::{Origin, ORIGIN};

/// The environment variable that tells a new process what it inherited.
pub const ENV: &str = "SPOA_MIRROR_HANDOVER";
/// How long the new process may take to serve before the hand-over is given up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The old process's side: starts the new process on SIGUSR2 and waits for it.
#[derive(Debug)]
pub struct Handover {
    spop: RawFd,
    metrics: Option<RawFd>,
    admin: Option<RawFd>,
    /// Why SIGUSR2 is refused here, if it is.
    refused: Option<&'static str>,
    task: Option<JoinHandle<Result<u32, String>>>,
    /// The pid of the process being started (0: none yet).
    starting: Arc<AtomicU32>,
}

impl Handover {
    /// `spop`, `metrics` and `admin` are the listening sockets' descriptors; they must stay
    /// open until the orderly stop.
    pub fn new(
        spop: RawFd,
        metrics: Option<RawFd>,
        admin: Option<RawFd>,
        refused: Option<&'static str>,
    ) -> Handover {
        Handover {
            spop,
            metrics,
            admin,
            refused,
            task: None,
            starting: Arc::new(AtomicU32::new(0)),
        }
    }

    /// This process stops (SIGTERM...) while a new one starts: the new one must not outlive
    /// it and keep the service running; it gets SIGTERM too.
    pub fn abort(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let pid = self.starting.swap(0, Ordering::Relaxed);
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            if pid > 0 {
                warn!("stopping during a hand-over: sending SIGTERM to pid {pid}");
                // SAFETY: kill(2) on the pid of the child this process started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }

    /// SIGUSR2: starts the new process, unless one is being started already.
    pub fn begin(&mut self) {
        if let Some(why) = self.refused {
            warn!("SIGUSR2 ignored: {why}");
            return;
        }
        if self.task.is_some() {
            warn!("SIGUSR2 ignored: a hand-over is already under way");
            return;
        }
        let Some(origin) = ORIGIN.get() else {
            error!("SIGUSR2: hand-over impossible: the binary's path was not recorded");
            return;
        };
        info!(
            "SIGUSR2: starting {} to hand over to; still serving",
            origin.exe.display()
        );
        sd_notify("RELOADING=1");
        let fds = Fds {
            spop: self.spop,
            metrics: self.metrics,
            admin: self.admin,
            pidfile: pidfile_fd(),
        };
        self.task = Some(tokio::spawn(start_successor(
            origin,
            fds,
            Arc::clone(&self.starting),
        )));
    }

    /// Resolves with the new process's pid once it serves; pending while no hand-over is
    /// under way. A failed hand-over is logged here and this process keeps serving.
    /// Cancel-safe (the hand-over runs on its own task).
    pub async fn ready(&mut self) -> u32 {
        loop {
            let Some(task) = self.task.as_mut() else {
                return std::future::pending().await;
            };
            let outcome = task.await;
            self.task = None;
            self.starting.store(0, Ordering::Relaxed);
            match outcome {
                Ok(Ok(pid)) => {
                    // The new process wrote its pid into the pidfile: leave the file be.
                    disown_pidfile();
                    info!(
                        "hand-over: pid {pid} serves; stopping this process (pid {})",
                        std::process::id()
                    );
                    return pid;
                }
                Ok(Err(why)) => {
                    error!("hand-over failed, this process keeps serving: {why}");
                    sd_notify(&format!("READY=1\nSTATUS=hand-over failed: {why}"));
                }
                Err(e) => {
                    error!("hand-over failed, this process keeps serving: {e}");
                    sd_notify("READY=1");
                }
            }
        }
    }
}

/// The descriptors a new process inherits.
#[derive(Debug, Clone, Copy)]
struct Fds {
    spop: RawFd,
    metrics: Option<RawFd>,
    admin: Option<RawFd>,
    pidfile: Option<RawFd>,
}

/// Starts the new process and waits for its readiness report; its pid, or why it failed.
async fn start_successor(
    origin: &'static Origin,
    fds: Fds,
    starting: Arc<AtomicU32>,
) -> Result<u32, String> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| format!("cannot create the readiness channel: {e}"))?;
    let ready_fd = theirs.as_raw_fd();
    let mut value = format!("spop={},ready={ready_fd}", fds.spop);
    if let Some(m) = fds.metrics {
        value.push_str(&format!(",metrics={m}"));
    }
    if let Some(a) = fds.admin {
        value.push_str(&format!(",admin={a}"));
    }
    if let Some(p) = fds.pidfile {
        value.push_str(&format!(",pidfile={p}"));
    }
    let inherit: Vec<RawFd> = [
        Some(fds.spop),
        Some(ready_fd),
        fds.metrics,
        fds.admin,
        fds.pidfile,
    ]
    .into_iter()
    .flatten()
    .collect();

    let mut cmd = tokio::process::Command::new(&origin.exe);
    cmd.args(&origin.args).env(ENV, &value).kill_on_drop(false);
    if let Some(dir) = &origin.cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: runs in the child between fork and exec; it only calls fcntl, which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &inherit {
                if !set_cloexec(*fd, false) {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", origin.exe.display()))?;
    // Our copy of the child's end must go, or its exit would not end our read.
    drop(theirs);
    let pid = child.id().unwrap_or(0);
    starting.store(pid, Ordering::Relaxed);
    info!(
        "hand-over: started pid {pid}; waiting up to {}s for it to serve",
        READY_TIMEOUT.as_secs()
    );

    let report = read_report(ours).await;
    match report {
        Ok(bytes) if bytes.first() == Some(&0) => Ok(pid),
        Ok(bytes) => {
            let status = wait_exit(&mut child).await;
            let text = match bytes.split_first() {
                Some((code, text)) => format!(
                    "new process (pid {pid}) failed to start (code {code}), {status}: {}",
                    String::from_utf8_lossy(text).trim()
                ),
                None => format!("new process (pid {pid}) ended before it served, {status} (its output is in this log or on stderr)"),
            };
            Err(text)
        }
        Err(why) => {
            let _ = child.start_kill();
            let status = wait_exit(&mut child).await;
            Err(format!(
                "new process (pid {pid}): {why}; killed it, {status}"
            ))
        }
    }
}

/// Everything the child writes on the readiness channel until it closes it (at ready, at a
/// startup failure, or at exit), within [`READY_TIMEOUT`].
async fn read_report(ours: UnixStream) -> Result<Vec<u8>, String> {
    ours.set_nonblocking(true)
        .map_err(|e| format!("readiness channel: {e}"))?;
    let mut ours =
        tokio::net::UnixStream::from_std(ours).map_err(|e| format!("readiness channel: {e}"))?;
    let mut report = Vec::new();
    // The report is one byte, or a code and a line of text: bounded by what a child sends
    // before it closes, and cut at 64 KiB in case it is not an agent at all.
    let read = async {
        let mut limited = (&mut ours).take(64 * 1024);
        limited.read_to_end(&mut report).await
    };
    match tokio::time::timeout(READY_TIMEOUT, read).await {
        Ok(Ok(_)) => Ok(report),
        Ok(Err(e)) => Err(format!("readiness channel: {e}")),
        Err(_) => Err(format!("not serving after {}s", READY_TIMEOUT.as_secs())),
    }
}

/// The child's exit status as text, waiting a little for it (it exits right after a failure
/// report).
async fn wait_exit(child: &mut tokio::process::Child) -> String {
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("exit status unknown: {e}"),
        Err(_) => "still running".to_string(),
    }
}
