//! Record and replay: each request a target takes (after its policy, so redaction applies) is
//! written to files in GoReplay's format, for `spoa-mirror-replay` or GoReplay to play back.
//!
//! ```text
//! Target::offer ── policy ──▶ Recorder::offer ── try_send ──▶ queue ──▶ writer thread ── files
//!                              never blocks: a full queue drops and counts   (rotate, gzip, budget)
//! ```
//!
//! - [`mod@format`] (pure): GoReplay's records, written and read.
//! - [`http`] (pure): a request as the raw HTTP/1.1 bytes of a record's payload.
//! - `writer`: the thread that owns the files: rotation by size and time, gzip, the disk
//!   budget, and write errors (counted, one warning per interval; the agent goes on).
//!
//! The payload is built on the writer thread, not on the connection's task: `offer` only
//! queues a cheap handle ([`Payload`]) and a timestamp.

mod disk;
pub mod format;
pub mod http;
mod recent;
mod writer;

pub use format::{Kind, Reader, Record, RecordError, SEPARATOR_LINE};
pub use http::{encode_request, encode_response};

use crate::config::RecordConfig;
use crate::stats::{inc, TargetStats};
use crate::throttle::LogThrottle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the writer turns into a record's payload (the mirror's request and its Host rule).
pub trait Payload: Send + 'static {
    /// Appends the raw HTTP/1.1 request to `out`; `false` if it cannot be built (not written,
    /// counted as an error).
    fn write_to(&self, out: &mut Vec<u8>) -> bool;
}

/// One queued record, or a request to close the current file.
enum Msg<P> {
    Record {
        id: u64,
        timestamp_ns: i64,
        payload: P,
        /// The request's id from HAProxy (`arg_id`): its response, if it comes, is written
        /// as a type-2 record with this record's id.
        key: Option<bytes::Bytes>,
    },
    /// The primary's response to the request recorded with `key` (shadow comparison on).
    Response {
        key: bytes::Bytes,
        timestamp_ns: i64,
        payload: bytes::Bytes,
    },
    Finish(mpsc::SyncSender<()>),
}

/// Why recording cannot start: a clear error at startup.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("record settings: {0}")]
    Config(String),
    #[error("record directory {dir}: {why}")]
    Dir { dir: String, why: String },
}

/// One target's recorder: the bounded queue in front of its writer thread.
pub struct Recorder<P: Payload> {
    queue: SyncSender<Msg<P>>,
    stats: Arc<TargetStats>,
    next_id: AtomicU64,
    warn_dropped: LogThrottle,
}

impl<P: Payload> Recorder<P> {
    /// Checks the settings, creates the directory if needed and opens the first file (so an
    /// unwritable directory or a full disk fails here), then starts the writer thread.
    pub fn start(
        target: &str,
        config: &RecordConfig,
        stats: Arc<TargetStats>,
    ) -> Result<Recorder<P>, StartError> {
        config.check().map_err(StartError::Config)?;
        let files = writer::Files::open(target, config, Arc::clone(&stats))?;
        let (queue, rx) = mpsc::sync_channel(config.queue);
        std::thread::Builder::new()
            .name(format!("record-{target}"))
            .spawn(move || writer::run(files, rx))
            .map_err(|e| StartError::Dir {
                dir: config.dir.display().to_string(),
                why: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Recorder {
            queue,
            stats,
            next_id: AtomicU64::new(1),
            warn_dropped: LogThrottle::new(),
        })
    }

    /// Queues one record; never blocks. A full queue drops it and counts it. `key`: the
    /// request's id from HAProxy, for its response (see [`Recorder::offer_response`]).
    pub fn offer(&self, payload: P, key: Option<bytes::Bytes>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Msg::Record {
            id,
            timestamp_ns: now_ns(),
            payload,
            key,
        });
    }

    /// Queues the primary's response to the request recorded with `key` (raw HTTP/1.1 bytes):
    /// written as a type-2 record with that request's record id, if this recorder wrote it
    /// recently (else nothing is written). Never blocks.
    pub fn offer_response(&self, key: bytes::Bytes, payload: bytes::Bytes) {
        self.send(Msg::Response {
            key,
            timestamp_ns: now_ns(),
            payload,
        });
    }

    fn send(&self, msg: Msg<P>) {
        match self.queue.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                inc(&self.stats.record_dropped_total);
                if self.warn_dropped.allow() {
                    tracing::warn!(
                        "target '{}': record dropped, the recorder's queue is full (the disk is \
                         too slow; {} dropped so far)",
                        self.stats.name,
                        crate::stats::get(&self.stats.record_dropped_total)
                    );
                }
            }
            // The writer thread is gone (it only ends when the recorder is dropped).
            Err(TrySendError::Disconnected(_)) => inc(&self.stats.record_errors_total),
        }
    }

    /// Writes out what is queued and closes the current file (a gzip file gets its trailer),
    /// waiting at most `deadline`. Records offered later start a new file.
    pub async fn finish(&self, deadline: Duration) {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let queue = self.queue.clone();
        let wait = tokio::task::spawn_blocking(move || {
            if queue.send(Msg::Finish(done_tx)).is_ok() {
                let _ = done_rx.recv_timeout(deadline);
            }
        });
        let _ = tokio::time::timeout(deadline, wait).await;
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A record id: the run, then the number of the record in it (GoReplay uses 24 hex digits).
fn record_id(run: u64, n: u64) -> String {
    format!("{run:08x}{n:016x}")
}
