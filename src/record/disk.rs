//! The disk side of recording: free space on the file system, and the disk budget (the oldest
//! record files of a target go first).

use std::fs;
use std::path::Path;

/// Free bytes for unprivileged users on the file system of `path`; `None` if unknown.
pub(super) fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Deletes the oldest record files in `dir` whose names start with `prefix` until their total
/// size fits `budget`; the file named `open` (being written) is never deleted. Names carry the
/// time they were opened, so name order is age order. Returns how many files were deleted.
pub(super) fn enforce_budget(dir: &Path, prefix: &str, budget: u64, open: Option<&str>) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<(String, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let ours =
                name.starts_with(prefix) && (name.ends_with(".gor") || name.ends_with(".gor.gz"));
            let meta = e.metadata().ok()?;
            (ours && meta.is_file()).then_some((name, meta.len()))
        })
        .collect();
    files.sort();
    let mut total = files
        .iter()
        .fold(0u64, |sum, (_, len)| sum.saturating_add(*len));
    let mut deleted = 0;
    for (name, len) in files {
        if total <= budget {
            break;
        }
        if open == Some(name.as_str()) {
            continue;
        }
        if fs::remove_file(dir.join(&name)).is_ok() {
            total = total.saturating_sub(len);
            deleted += 1;
        }
    }
    deleted
}
