//! The new process's side of a hand-over: the descriptors its predecessor passed in [`ENV`].

use super::ENV;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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
pub(super) fn set_cloexec(fd: RawFd, on: bool) -> bool {
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
