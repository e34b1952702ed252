//! The record files of one target: opening them, rotation by size and time, gzip, the disk
//! budget, write errors; and the records written into them (requests, and the primary's
//! responses to them).

use super::super::disk::{self, free_space};
use super::super::format::{self, Kind, Record};
use super::super::recent::Recent;
use super::super::{record_id, Payload, StartError};
use crate::config::RecordConfig;
use crate::stats::{add, inc, TargetStats};
use crate::throttle::LogThrottle;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a gzip file is flushed (its last records readable), and time rotation checked.
const TICK: Duration = Duration::from_secs(1);
/// After a write error, no new file is tried for this long.
const RETRY: Duration = Duration::from_secs(1);
/// At startup, a file system with less free space than this is full.
const MIN_FREE: u64 = 1024 * 1024;

/// The record files of one target.
pub(in crate::record) struct Files {
    target: String,
    config: RecordConfig,
    pub(super) stats: Arc<TargetStats>,
    /// Record ids are `<run><n>`: the run differs from one start to the next.
    run: u64,
    /// Number of the next file name (`<target>-<time>-<seq>.gor`).
    seq: u64,
    current: Option<Current>,
    /// After a write error: no new file before this.
    retry_at: Option<Instant>,
    warn: LogThrottle,
    /// Recently written requests by HAProxy's id, for their responses' records.
    recent: Recent,
}

struct Current {
    path: PathBuf,
    out: Out,
    /// Bytes on disk (for gzip: what the encoder has handed to the file so far).
    size: u64,
    records: u64,
    opened: Instant,
}

enum Out {
    Plain(File),
    Gzip(GzEncoder<Counting>),
}

/// A file that counts what is written to it (the gzip encoder's output).
struct Counting {
    file: File,
    written: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written = self.written.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Files {
    /// Creates the directory if needed, checks the free space, opens the first file and
    /// applies the budget to what earlier runs left.
    pub(in crate::record) fn open(
        target: &str,
        config: &RecordConfig,
        stats: Arc<TargetStats>,
    ) -> Result<Files, StartError> {
        let dir_error = |why: String| StartError::Dir {
            dir: config.dir.display().to_string(),
            why,
        };
        fs::create_dir_all(&config.dir).map_err(|e| dir_error(format!("cannot create: {e}")))?;
        if let Some(free) = free_space(&config.dir) {
            if free < MIN_FREE {
                return Err(dir_error(format!(
                    "the file system is full ({free} bytes free)"
                )));
            }
        }
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut files = Files {
            target: target.to_owned(),
            config: config.clone(),
            stats,
            run,
            seq: 0,
            current: None,
            retry_at: None,
            warn: LogThrottle::new(),
            recent: Recent::default(),
        };
        let current = files
            .new_file()
            .map_err(|e| dir_error(format!("cannot create a record file: {e}")))?;
        tracing::info!(
            "target '{target}': recording to {} (files up to {} bytes or {}, {}disk budget {} bytes)",
            current.path.display(),
            config.file_size,
            humantime::format_duration(config.rotate),
            if config.gzip { "gzip, " } else { "" },
            config.disk_budget,
        );
        files.current = Some(current);
        files.enforce_budget();
        Ok(files)
    }

    /// A new file, named so that names sort in time order.
    fn new_file(&mut self) -> io::Result<Current> {
        let stamp = utc_stamp(SystemTime::now());
        let ext = if self.config.gzip { "gor.gz" } else { "gor" };
        let mut last = io::Error::other("no file name left");
        // Another run in the same second may have used a sequence number: take the next.
        for _ in 0..1000 {
            self.seq = self.seq.saturating_add(1);
            let name = format!("{}-{stamp}-{:06}.{ext}", self.target, self.seq);
            let path = self.config.dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let out = if self.config.gzip {
                        Out::Gzip(GzEncoder::new(
                            Counting { file, written: 0 },
                            Compression::fast(),
                        ))
                    } else {
                        Out::Plain(file)
                    };
                    return Ok(Current {
                        path,
                        out,
                        size: 0,
                        records: 0,
                        opened: Instant::now(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Encodes one request record into `batch`; `false` if it could not be (counted as an
    /// error). With `key`, the request is remembered for its response.
    pub(super) fn encode<P: Payload>(
        &mut self,
        id: u64,
        timestamp_ns: i64,
        payload: &P,
        key: Option<bytes::Bytes>,
        batch: &mut Vec<u8>,
    ) -> bool {
        let mut raw = Vec::new();
        if !payload.write_to(&mut raw) {
            return false;
        }
        let record = Record {
            kind: Kind::Request,
            id: record_id(self.run, id),
            timestamp_ns,
            latency_ns: 0,
            payload: raw,
        };
        let ok = format::encode(&record, batch).is_ok();
        if let (true, Some(key)) = (ok, key) {
            self.recent.remember(key, id, timestamp_ns);
        }
        ok
    }

    /// Encodes the response to a request written recently as a type-2 record with the
    /// request's record id and the time since it as latency; `None` when no such request
    /// was written here (another target's, or sampled out), `Some(false)` when it could not be.
    pub(super) fn encode_response(
        &mut self,
        key: &[u8],
        timestamp_ns: i64,
        payload: &[u8],
        batch: &mut Vec<u8>,
    ) -> Option<bool> {
        let (id, request_ns) = self.recent.take(key)?;
        let record = Record {
            kind: Kind::Response,
            id: record_id(self.run, id),
            timestamp_ns,
            latency_ns: timestamp_ns.saturating_sub(request_ns).max(0),
            payload: payload.to_vec(),
        };
        Some(format::encode(&record, batch).is_ok())
    }

    /// Writes one batch of `records` records, `responses` of them type 2; counts the outcome.
    pub(super) fn write(&mut self, batch: &mut Vec<u8>, records: u64, responses: u64) {
        if records == 0 {
            batch.clear();
            return;
        }
        let len = batch.len() as u64;
        self.rotate_if_due(len);
        let result = self.write_batch(batch);
        batch.clear();
        match result {
            Ok(()) => {
                add(&self.stats.record_written_total, records);
                add(&self.stats.record_responses_total, responses);
                add(&self.stats.record_bytes_total, len);
            }
            Err(e) => self.failed(records, &e),
        }
    }

    fn write_batch(&mut self, batch: &[u8]) -> io::Result<()> {
        if self.current.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(io::Error::other("waiting after a write error"));
            }
            self.current = Some(self.new_file()?);
        }
        let Some(cur) = self.current.as_mut() else {
            return Err(io::Error::other("no record file"));
        };
        match &mut cur.out {
            Out::Plain(file) => {
                if let Err(e) = file.write_all(batch) {
                    // Cut back to the last whole record, so the file stays readable.
                    let _ = file.set_len(cur.size);
                    return Err(e);
                }
                cur.size = cur.size.saturating_add(batch.len() as u64);
            }
            Out::Gzip(gz) => {
                gz.write_all(batch)?;
                cur.size = gz.get_ref().written;
            }
        }
        cur.records = cur.records.saturating_add(1);
        self.retry_at = None;
        Ok(())
    }

    /// A write failed: the batch is lost, the file closed, a new one tried later.
    fn failed(&mut self, records: u64, e: &io::Error) {
        add(&self.stats.record_errors_total, records);
        if let Some(cur) = self.current.take() {
            if let Out::Gzip(gz) = cur.out {
                let _ = gz.finish();
            }
        }
        // A batch refused during the pause does not extend it: a new file is tried after it.
        let now = Instant::now();
        if self.retry_at.map_or(true, |at| now >= at) {
            self.retry_at = Some(now + RETRY);
        }
        if self.warn.allow() {
            tracing::warn!(
                "target '{}': cannot write records to {}: {e} ({} records lost so far; \
                 mirroring goes on)",
                self.target,
                self.config.dir.display(),
                crate::stats::get(&self.stats.record_errors_total),
            );
        }
    }

    /// Closes the current file if it is full (with `incoming` more bytes) or old enough.
    fn rotate_if_due(&mut self, incoming: u64) {
        let due = self.current.as_ref().is_some_and(|c| {
            c.records > 0
                && (c.size.saturating_add(incoming) > self.config.file_size
                    || c.opened.elapsed() >= self.config.rotate)
        });
        if due {
            self.close();
            inc(&self.stats.record_files_rotated_total);
            self.enforce_budget();
        }
    }

    /// Finishes the current file (a gzip trailer); the next record opens a new one.
    pub(super) fn close(&mut self) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let result = match cur.out {
            Out::Plain(file) => file.sync_data(),
            Out::Gzip(gz) => gz.finish().and_then(|c| c.file.sync_data()),
        };
        if let Err(e) = result {
            inc(&self.stats.record_errors_total);
            if self.warn.allow() {
                tracing::warn!(
                    "target '{}': closing record file {}: {e}",
                    self.target,
                    cur.path.display()
                );
            }
        }
    }

    /// Once a second: flush gzip (its records become readable), rotate an old file.
    pub(super) fn tick(&mut self) {
        self.rotate_if_due(0);
        if let Some(Current {
            out: Out::Gzip(gz), ..
        }) = self.current.as_mut()
        {
            if let Err(e) = gz.flush() {
                self.failed(0, &e);
            }
        }
    }

    /// Deletes this target's oldest record files until they fit the budget (the open file is
    /// never deleted).
    fn enforce_budget(&mut self) {
        let open = self
            .current
            .as_ref()
            .and_then(|c| c.path.file_name())
            .and_then(|n| n.to_str());
        let deleted = disk::enforce_budget(
            &self.config.dir,
            &format!("{}-", self.target),
            self.config.disk_budget,
            open,
        );
        add(&self.stats.record_files_deleted_total, deleted);
    }

    /// Time left before the current file is due for rotation by age, capped at [`TICK`].
    pub(super) fn next_wakeup(&self) -> Duration {
        match &self.current {
            Some(c) if c.records > 0 => self
                .config
                .rotate
                .saturating_sub(c.opened.elapsed())
                .clamp(Duration::from_millis(1), TICK),
            _ => TICK,
        }
    }
}

/// `YYYYmmddTHHMMSSZ` in UTC, so file names sort in time order: humantime's RFC 3339 form
/// (`2026-12-03T20:34:56Z`) without its separators.
fn utc_stamp(t: SystemTime) -> String {
    let mut stamp = humantime::format_rfc3339_seconds(t).to_string();
    stamp.retain(|c| c != '-' && c != ':');
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_in_time_order() {
        let at = |s: u64| utc_stamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_796_330_096), "20261203T203456Z");
        assert!(at(1_796_330_096) < at(1_796_330_097));
    }
}
