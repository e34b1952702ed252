//! The diff file: one JSON object per differing pair, appended by the comparator thread.
//!
//! Bounded: past `max` bytes the file is renamed to `<file>.1` (replacing the older one) and
//! a new one started, so the two never hold much more than twice `max`. A write error loses
//! the line (counted, one warning per interval); the next line tries again, on a new file if
//! the old one could not be reopened.

use super::report::Totals;
use crate::stats::inc;
use crate::throttle::LogThrottle;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct DiffLog {
    path: PathBuf,
    max: u64,
    out: Option<BufWriter<File>>,
    size: u64,
    /// `diff_lines`, `diff_errors`.
    totals: Arc<Totals>,
    warn: LogThrottle,
}

impl DiffLog {
    /// Opens (appends to) `path`; an error here is a startup error.
    pub fn open(path: &Path, max: u64, totals: Arc<Totals>) -> io::Result<DiffLog> {
        let (out, size) = open(path)?;
        Ok(DiffLog {
            path: path.to_path_buf(),
            max,
            out: Some(out),
            size,
            totals,
            warn: LogThrottle::new(),
        })
    }

    /// Appends one line (a newline is added).
    pub fn write(&mut self, line: &str) {
        let len = u64::try_from(line.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        if self.size > 0 && self.size.saturating_add(len) > self.max {
            self.rotate();
        }
        let result = match self.out.as_mut() {
            Some(out) => out
                .write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n")),
            None => match open(&self.path) {
                Ok((mut out, size)) => {
                    self.size = size;
                    let r = out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.write_all(b"\n"));
                    self.out = Some(out);
                    r
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => {
                self.size = self.size.saturating_add(len);
                inc(&self.totals.diff_lines);
            }
            Err(e) => self.failed(&e),
        }
    }

    /// Hands buffered lines to the file (after each batch: a reader sees them soon).
    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out.flush() {
                self.failed(&e);
            }
        }
    }

    fn rotate(&mut self) {
        self.flush();
        self.out = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        if let Err(e) = std::fs::rename(&self.path, &old) {
            self.failed(&e);
        }
        self.size = 0;
    }

    fn failed(&mut self, e: &io::Error) {
        inc(&self.totals.diff_errors);
        // Start again on a fresh handle next time (the file may have been removed).
        self.out = None;
        if self.warn.allow() {
            tracing::warn!(
                "shadow: cannot write the diff file {}: {e} (lines are lost; comparing goes on)",
                self.path.display()
            );
        }
    }
}

fn open(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((BufWriter::with_capacity(64 * 1024, file), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_the_bound_keeping_one_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diff.jsonl");
        let totals = Arc::new(Totals::default());
        let mut log = DiffLog::open(&path, 100, Arc::clone(&totals)).unwrap();
        for i in 0..30 {
            log.write(&format!("{{\"n\":{i:05}}}"));
        }
        log.flush();
        let now = std::fs::read_to_string(&path).unwrap();
        let older = std::fs::read_to_string(dir.path().join("diff.jsonl.1")).unwrap();
        assert!(
            now.len() <= 100 && older.len() <= 100,
            "{} {}",
            now.len(),
            older.len()
        );
        assert!(now.ends_with("{\"n\":00029}\n"));
        assert_eq!(crate::stats::get(&totals.diff_lines), 30);
        assert_eq!(crate::stats::get(&totals.diff_errors), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
