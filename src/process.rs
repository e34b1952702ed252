//! The process around the agent, before the tokio runtime exists: the exit codes, the `-F`
//! pidfile, `-D` daemonizing, and telling whoever started us (the `-D` parent, systemd) that
//! startup is over and how it went.
//!
//! `-D` forks twice (the `daemonize` crate); the original parent waits on a pipe until the
//! daemon has bound its port and exits with the daemon's startup status, so `spoa-mirror -D`
//! in a script or a `Type=forking` unit fails when the daemon cannot start (the original's
//! parent always exits 0).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// Exit code for a bad command line (`EX_USAGE`), as the original.
pub(crate) const EXIT_USAGE: i32 = 64;
/// Exit code for a failure while starting (`EX_SOFTWARE`): bind error, pidfile, log file.
pub const EXIT_STARTUP: i32 = 70;

/// The pidfile this process owns, removed by [`exit`].
static OWNED_PIDFILE: Mutex<Option<PathBuf>> = Mutex::new(None);
/// The descriptor of the open, locked `-F` file (-1: none), passed on at a hand-over.
static PIDFILE_FD: AtomicI32 = AtomicI32::new(-1);

/// The `-F` file, created and locked before daemonizing (so an error reaches the terminal);
/// the pid is written once the process that will run the agent is known.
#[derive(Debug)]
pub struct Pidfile {
    file: File,
}

impl Pidfile {
    /// Creates (or takes over a stale) pidfile. The `flock` is held for the life of the
    /// process and passed across the forks, so a second instance with the same `-F` fails
    /// here instead of overwriting the file of a running one.
    pub fn create(path: &Path) -> std::io::Result<Pidfile> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o644)
            .open(path)?;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                std::io::Error::other("it is locked by another running instance")
            } else {
                e
            });
        }
        if let Ok(mut owned) = OWNED_PIDFILE.lock() {
            *owned = Some(path.to_path_buf());
        }
        PIDFILE_FD.store(file.as_raw_fd(), Ordering::Relaxed);
        Ok(Pidfile { file })
    }

    /// The pidfile a hand-over passed on (`handover::Inherited`), still locked by the old
    /// process's open file. Not owned yet: the pid is written, and the file owned, once this
    /// process serves ([`Readiness::handover`]), so a failed start leaves the old pid there.
    pub fn adopt(file: File) -> std::io::Result<Pidfile> {
        // The lock belongs to the open file, which both processes share: taking it again
        // succeeds, and fails if this is not the locked pidfile after all.
        // SAFETY: flock on a descriptor `file` owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        PIDFILE_FD.store(file.as_raw_fd(), Ordering::Relaxed);
        Ok(Pidfile { file })
    }

    /// Writes this process's pid, `"<pid>\n"`.
    pub fn write_pid(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{}", std::process::id())?;
        self.file.sync_all()
    }
}

/// Flushes the log, removes the owned pidfile and exits with `code`. Every way out of the
/// process after startup goes through here.
pub fn exit(code: i32) -> ! {
    crate::logging::flush();
    remove_pidfile();
    std::process::exit(code)
}

/// The open `-F` file's descriptor, to pass on at a hand-over.
pub(crate) fn pidfile_fd() -> Option<std::os::fd::RawFd> {
    Some(PIDFILE_FD.load(Ordering::Relaxed)).filter(|fd| *fd >= 0)
}

/// After a hand-over the new process owns the pidfile: [`exit`] leaves it alone.
pub(crate) fn disown_pidfile() {
    if let Ok(mut owned) = OWNED_PIDFILE.lock() {
        *owned = None;
    }
}

fn remove_pidfile() {
    if let Some(path) = OWNED_PIDFILE.lock().ok().and_then(|mut p| p.take()) {
        let _ = std::fs::remove_file(path);
    }
}

/// The result of [`daemonize()`].
#[derive(Debug)]
pub enum Forked {
    /// The original process: the daemon's startup status and its error text, to print.
    Parent(i32, String),
    /// The daemon: report through this when startup is over.
    Daemon(Readiness),
}

/// Forks into the background (`-D`): setsid, chdir `/`, stdin to /dev/null, stdout and stderr
/// to `log` (so a panic message lands in the `-l` file) or /dev/null.
pub fn daemonize(log: Option<&File>) -> std::io::Result<Forked> {
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two new descriptors, each then owned by exactly one File.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read_fd, write_fd] = fds;
    // SAFETY: see above.
    let (mut reader, writer) = unsafe { (File::from_raw_fd(read_fd), File::from_raw_fd(write_fd)) };
    let mut d = daemonize::Daemonize::new()
        .working_directory("/")
        .umask(0o022);
    if let Some(f) = log {
        d = d.stdout(f.try_clone()?).stderr(f.try_clone()?);
    }
    match d.execute() {
        daemonize::Outcome::Parent(Ok(_)) => {
            drop(writer);
            let mut report = Vec::new();
            let _ = reader.read_to_end(&mut report);
            Ok(match report.split_first() {
                Some((&code, text)) => {
                    Forked::Parent(i32::from(code), String::from_utf8_lossy(text).into_owned())
                }
                None => Forked::Parent(
                    EXIT_STARTUP,
                    "ERROR: the daemon exited during startup".into(),
                ),
            })
        }
        daemonize::Outcome::Parent(Err(e)) => Err(std::io::Error::other(e.to_string())),
        daemonize::Outcome::Child(Ok(_)) => {
            drop(reader);
            Ok(Forked::Daemon(Readiness {
                pipe: Some(writer),
                ..Readiness::default()
            }))
        }
        daemonize::Outcome::Child(Err(e)) => {
            let mut ready = Readiness {
                pipe: Some(writer),
                ..Readiness::default()
            };
            let text = format!("ERROR: unable to daemonize: {e}");
            ready.failed(EXIT_STARTUP, &text);
            exit(EXIT_STARTUP)
        }
    }
}

/// Tells the `-D` parent (or the old process of a hand-over), and systemd (`Type=notify`),
/// that startup is over.
#[derive(Debug, Default)]
pub struct Readiness {
    pipe: Option<File>,
    /// A hand-over: the pidfile to write the pid into at ready (and its path, to own it), and
    /// systemd is told this is the main process now.
    handover: Option<Option<(File, PathBuf)>>,
}

impl Readiness {
    /// For a process started by a hand-over: report on `pipe`; at ready, write the pid into
    /// `pidfile` (the adopted [`Pidfile`] and its path) and become systemd's main process.
    pub fn handover(pipe: File, pidfile: Option<(&Pidfile, &Path)>) -> std::io::Result<Readiness> {
        let pidfile = match pidfile {
            Some((p, path)) => Some((p.file.try_clone()?, path.to_path_buf())),
            None => None,
        };
        Ok(Readiness {
            pipe: Some(pipe),
            handover: Some(pidfile),
        })
    }

    /// Startup succeeded: the port is bound. systemd hears it before the waiting process:
    /// after a hand-over, the old process exits soon after, and by then systemd must know
    /// the new main pid.
    pub(crate) fn ready(&mut self) {
        match self.handover.take() {
            Some(pidfile) => {
                if let Some((file, path)) = pidfile {
                    let mut p = Pidfile { file };
                    if let Err(e) = p.write_pid() {
                        tracing::error!("unable to write PID to pidfile: {e}");
                    }
                    if let Ok(mut owned) = OWNED_PIDFILE.lock() {
                        *owned = Some(path);
                    }
                }
                sd_notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
            }
            None => sd_notify("READY=1"),
        }
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(&[0]);
        }
    }

    /// Startup failed; `text` is printed by the waiting parent. The pidfile goes first, so
    /// that it is gone when the parent returns.
    pub(crate) fn failed(&mut self, code: i32, text: &str) {
        remove_pidfile();
        if let Some(mut p) = self.pipe.take() {
            let mut report = vec![u8::try_from(code).unwrap_or(u8::MAX)];
            report.extend_from_slice(text.as_bytes());
            let _ = p.write_all(&report);
        }
    }
}

/// Sends one state line to systemd's `$NOTIFY_SOCKET`, if there is one (sd_notify(3)); a
/// no-op otherwise.
pub(crate) fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => abstract_addr(name).and_then(|a| socket.send_to_addr(state.as_bytes(), &a)),
        None => socket.send_to(state.as_bytes(), &path),
    };
    if let Err(e) = sent {
        tracing::debug!("sd_notify {state}: {e}");
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    Err(std::io::Error::other("abstract sockets are Linux-only"))
}
