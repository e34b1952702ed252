//! Recording a target's requests to files in GoReplay's format (`crate::record`): where, how
//! the files rotate, and how much disk they may take.

use std::path::PathBuf;
use std::time::Duration;

/// One target's recording: `--record-dir` (with `-u`) or a `record` table in `--config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordConfig {
    /// The directory of the record files (created if missing); files are named
    /// `<target>-<UTC time>-<n>.gor[.gz]`, so several targets can share it.
    pub dir: PathBuf,
    /// A file is closed and a new one started when it reaches this many bytes on disk.
    pub file_size: u64,
    /// ... or when it is this old (and holds a record).
    pub rotate: Duration,
    /// gzip the files (`.gor.gz`).
    pub gzip: bool,
    /// The target's record files in `dir` take at most this many bytes: the oldest are
    /// deleted first.
    pub disk_budget: u64,
    /// Records waiting for the writer; more are dropped and counted.
    pub queue: usize,
}

impl RecordConfig {
    pub const DEFAULT_FILE_SIZE: u64 = 64 * 1024 * 1024;
    pub const DEFAULT_ROTATE: Duration = Duration::from_secs(3_600);
    pub const DEFAULT_DISK_BUDGET: u64 = 1024 * 1024 * 1024;
    pub const DEFAULT_QUEUE: usize = 4096;
    /// Files smaller than this would rotate all the time.
    pub const MIN_FILE_SIZE: u64 = 4096;

    /// Recording to `dir`, every other setting at its default.
    pub fn new(dir: PathBuf) -> RecordConfig {
        RecordConfig {
            dir,
            file_size: RecordConfig::DEFAULT_FILE_SIZE,
            rotate: RecordConfig::DEFAULT_ROTATE,
            gzip: false,
            disk_budget: RecordConfig::DEFAULT_DISK_BUDGET,
            queue: RecordConfig::DEFAULT_QUEUE,
        }
    }

    /// The settings that make sense together: the budget holds at least two files.
    pub fn check(&self) -> Result<(), String> {
        if self.file_size < RecordConfig::MIN_FILE_SIZE {
            return Err(format!(
                "record file size {} is below the minimum of {} bytes",
                self.file_size,
                RecordConfig::MIN_FILE_SIZE
            ));
        }
        if self.disk_budget < self.file_size.saturating_mul(2) {
            return Err(format!(
                "record disk budget {} must hold at least two files of {} bytes",
                self.disk_budget, self.file_size
            ));
        }
        if self.queue == 0 {
            return Err("record queue must be at least 1".into());
        }
        Ok(())
    }
}
