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
//! 4. on success, gives up the pidfile and stops through the orderly stop of `app.rs`
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
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// The environment variable that tells a new process what it inherited.
pub const ENV: &str = "SPOA_MIRROR_HANDOVER";
/// How long the new process may take to serve before the hand-over is given up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How this process was started, captured before `-D` changes the working directory.
#[derive(Debug)]
struct Origin {
    exe: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// Records the binary's path, the arguments and the working directory. Call first in `main`.
///
/// The path is `argv[0]` (made absolute, or looked up in `PATH`) when it names the running
/// binary now, else `/proc/self/exe`: once a package upgrade replaced the file, the latter
/// names the old, deleted inode, while the path names the new binary.
pub fn remember_origin() {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = if args.is_empty() {
        OsString::new()
    } else {
        args.remove(0)
    };
    let cwd = std::env::current_dir().ok();
    let running = std::env::current_exe().ok();
    let named = named_binary(&argv0, cwd.as_deref());
    let exe = match (named, running) {
        (Some(n), Some(r)) if same_file(&n, &r) => n,
        (_, Some(r)) => r,
        (Some(n), None) => n,
        (None, None) => PathBuf::from(argv0),
    };
    let _ = ORIGIN.set(Origin { exe, args, cwd });
}

/// `argv[0]` as an absolute path: joined to the working directory when it has a slash,
/// else the first match in `PATH` (as the shell found it).
fn named_binary(argv0: &OsStr, cwd: Option<&Path>) -> Option<PathBuf> {
    if argv0.is_empty() {
        return None;
    }
    if argv0.as_bytes().contains(&b'/') {
        let p = Path::new(argv0);
        return match (p.is_absolute(), cwd) {
            (true, _) => Some(p.to_path_buf()),
            (false, Some(c)) => Some(c.join(p)),
            (false, None) => None,
        };
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(argv0))
        .find(|p| p.is_file())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// What a process started by a hand-over got from its predecessor (parsed from [`ENV`]).
#[derive(Debug, Default)]
pub struct Inherited {
    /// The listening SPOP socket.
    pub spop: Option<OwnedFd>,
    /// The listening metrics socket.
    pub metrics: Option<OwnedFd>,
    /// The listening admin socket (`--admin-address`).
    pub admin: Option<OwnedFd>,
    /// The readiness channel: see `process::Readiness`.
    pub ready: Option<File>,
    /// The `-F` pidfile, locked.
    pub pidfile: Option<File>,
}

impl Inherited {
    /// Reads and removes [`ENV`] (call before any thread exists); `Ok(None)` when this process
    /// was not started by a hand-over. Each descriptor is checked before it is taken: a
    /// listening socket for `spop`, `metrics` and `admin`, an open descriptor for the others.
    pub fn from_env() -> Result<Option<Inherited>, String> {
        let Some(value) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        std::env::remove_var(ENV);
        let value = value.to_string_lossy().into_owned();
        let mut found = Inherited::default();
        for pair in value.split(',').filter(|p| !p.is_empty()) {
            let bad = || format!("{ENV}: '{pair}' is not name=fd");
            let (name, fd) = pair.split_once('=').ok_or_else(bad)?;
            let fd: RawFd = fd.parse().map_err(|_| bad())?;
            // 0-2 are stdin, stdout and stderr: never something to take over.
            if fd <= 2 || !is_open(fd) {
                return Err(format!("{ENV}: {name}={fd} is not an inherited descriptor"));
            }
            let taken = match name {
                "spop" | "metrics" | "admin" => {
                    if !is_listening_socket(fd) {
                        return Err(format!("{ENV}: {name}={fd} is not a listening socket"));
                    }
                    // SAFETY: the descriptor is open and, by the contract of `ENV`, was passed
                    // to this process for it alone; nothing else in the process uses it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    set_cloexec(fd, true);
                    match name {
                        "spop" => found.spop.replace(owned).is_some(),
                        "metrics" => found.metrics.replace(owned).is_some(),
                        _ => found.admin.replace(owned).is_some(),
                    }
                }
                "ready" | "pidfile" => {
                    // SAFETY: as above.
                    let file = unsafe { File::from_raw_fd(fd) };
                    set_cloexec(fd, true);
                    match name {
                        "ready" => found.ready.replace(file).is_some(),
                        _ => found.pidfile.replace(file).is_some(),
                    }
                }
                _ => return Err(format!("{ENV}: unknown name '{name}'")),
            };
            if taken {
                return Err(format!("{ENV}: '{name}' given twice"));
            }
        }
        if found.spop.is_none() || found.ready.is_none() {
            return Err(format!("{ENV}: 'spop' and 'ready' are required"));
        }
        Ok(Some(found))
    }
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

fn is_listening_socket(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which has that size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && value != 0
}

/// Sets or clears `FD_CLOEXEC`; async-signal-safe (used between fork and exec).
fn set_cloexec(fd: RawFd, on: bool) -> bool {
    // SAFETY: fcntl on a descriptor number; F_GETFD/F_SETFD touch only its flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return false;
        }
        let flags = match on {
            true => flags | libc::FD_CLOEXEC,
            false => flags & !libc::FD_CLOEXEC,
        };
        libc::fcntl(fd, libc::F_SETFD, flags) == 0
    }
}

/// A tokio listener from an inherited listening socket (inside the runtime).
pub fn listener(fd: OwnedFd) -> io::Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

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
