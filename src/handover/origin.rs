//! How this process was started (binary, arguments, working directory), recorded first thing
//! in `main` so that a hand-over starts the same command, from the binary now installed.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How this process was started, captured before `-D` changes the working directory.
#[derive(Debug)]
pub(super) struct Origin {
    pub(super) exe: PathBuf,
    pub(super) args: Vec<OsString>,
    pub(super) cwd: Option<PathBuf>,
}

pub(super) static ORIGIN: OnceLock<Origin> = OnceLock::new();

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
