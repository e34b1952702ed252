//! Log output: tracing-subscriber's fmt layer (timestamp, level, target, message) with an
//! `EnvFilter` (`--log-level` or `RUST_LOG`), written to stdout or to the `-l` file.
//!
//! Every destination (stdout, which HAProxy `program` sections and journald collect, or the
//! `-l` file) goes through one `Batch`: lines are appended to a buffer and a background
//! thread writes them. The thread that logs never waits for the output: a stalled reader or a
//! slow disk only fills the buffer, and past `MAX_BYTES` lines are dropped, counted
//! ([`lines_dropped`], the metric `log_lines_dropped_total`) and reported by one line in the
//! log at most every `DROP_NOTICE_INTERVAL`. An ACK therefore never waits on logging.
//! - stdout, `-l a:FILE`, `-l w:FILE`, `-l FILE`: a batch is written every `FLUSH_INTERVAL`
//!   or once `WAKE_BYTES` wait.
//! - `-l A:FILE`, `-l W:FILE` and a terminal: every line is handed to the writer at once.
//!
//! Batching matters because the agent logs one line per mirrored request: a channel per line
//! (tracing-appender) cost a futex wake-up and a write(2) per line, about a fifth of the
//! agent's CPU at 20,000 requests/s (BENCHMARKS.md). Like the original's block-buffered
//! stdout, lines reach the output within `FLUSH_INTERVAL` (at once on a terminal).
//!
//! [`flush`] must run before the process exits: it waits until every queued line is written.

use crate::config::{LogFile, RunConfig};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriter};
use tracing_subscriber::EnvFilter;

/// Keeps the background writer alive; dropping it writes out what is queued.
static GUARD: Mutex<Option<BatchGuard>> = Mutex::new(None);

/// The longest a line waits in the batch before it is written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes waiting that make the writer start a write before the interval is over.
const WAKE_BYTES: usize = 64 * 1024;
/// Bytes waiting at most: beyond, lines are dropped (and counted) rather than make the thread
/// that logs wait.
pub(crate) const MAX_BYTES: usize = 4 * 1024 * 1024;
/// At most one "log lines dropped" line per interval (and one at exit).
pub(crate) const DROP_NOTICE_INTERVAL: Duration = Duration::from_secs(10);

/// Log lines dropped since the process started, every batch together.
static LINES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// The counter behind the metric `log_lines_dropped_total`.
pub fn lines_dropped() -> &'static AtomicU64 {
    &LINES_DROPPED
}

/// Opens the `-l` file (before daemonizing, so an error still reaches the terminal).
/// Unlike the original, a plain `-l FILE` appends to an existing file instead of failing.
///
/// `w` truncates the file, then writes in append mode too: after a hand-over (SIGUSR2) two
/// processes write to it for a moment, and each line must land at the end, not over the
/// other's.
pub fn open_logfile(log: &LogFile) -> std::io::Result<File> {
    if log.truncate {
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o644)
            .open(&log.path)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(&log.path)
}

/// Installs the global subscriber. `file` is the opened `-l` file, if any. Call it after
/// daemonizing: the background writer is a thread, and threads do not survive `fork`.
pub fn init(run: &RunConfig, file: Option<File>) {
    // The CLI has validated the filter; the fallback only guards against a changed default.
    let filter = EnvFilter::try_new(&run.log_filter)
        .unwrap_or_else(|_| EnvFilter::new(RunConfig::DEFAULT_LOG_FILTER));
    let line_buffered = run.logfile.as_ref().is_some_and(|l| l.line_buffered);
    let (writer, guard, ansi) = match file {
        Some(f) => {
            let (w, g) = Batch::start(f, Output::File, line_buffered);
            (BoxMakeWriter::new(w), g, false)
        }
        None => {
            let ansi = std::io::stdout().is_terminal();
            let (w, g) = Batch::start(std::io::stdout(), Output::Stream, ansi);
            (BoxMakeWriter::new(w), g, ansi)
        }
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .try_init();
    if installed.is_ok() {
        if let Ok(mut slot) = GUARD.lock() {
            *slot = guard;
        }
    }
}

/// Writes out every queued line and stops the background writer; later lines are lost.
pub fn flush() {
    let guard = GUARD.lock().ok().and_then(|mut slot| slot.take());
    drop(guard);
}

/// What a batch writes to: how long the last lines may take to go out at exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// The `-l` file: written out in full at exit (up to 30 s).
    File,
    /// stdout: a stalled reader gets one second at exit.
    Stream,
}

/// Log lines waiting for the writer thread, shared by every logging thread.
pub(crate) struct Batch {
    state: Mutex<BatchState>,
    /// Wakes the writer: the first line of a batch, [`WAKE_BYTES`] waiting, or shutdown.
    ready: Condvar,
    /// Wakes [`BatchGuard`] waiting for the end.
    taken: Condvar,
    output: Output,
    /// Hand every line to the writer at once (a terminal, or `-l A:`/`-l W:`).
    eager: bool,
}

#[derive(Default)]
struct BatchState {
    buf: Vec<u8>,
    /// The writer sleeps until woken (nothing waiting); only then is a line worth a wake-up.
    writer_idle: bool,
    /// The writer was already woken for this batch.
    nudged: bool,
    /// Lines dropped since the last notice the writer wrote.
    dropped: u64,
    /// Lines dropped by this batch in all.
    dropped_total: u64,
    closed: bool,
    done: bool,
}

/// The `MakeWriter` of a [`Batch`].
#[derive(Clone)]
pub(crate) struct BatchWriter(Arc<Batch>);

/// Stops the writer thread on drop, after it wrote what is waiting.
pub(crate) struct BatchGuard(Arc<Batch>);

impl Batch {
    /// Starts the writer thread on `out`. Without a thread (cannot spawn), lines go nowhere.
    pub(crate) fn start(
        out: impl Write + Send + 'static,
        output: Output,
        eager: bool,
    ) -> (BatchWriter, Option<BatchGuard>) {
        let batch = Arc::new(Batch {
            state: Mutex::new(BatchState::default()),
            ready: Condvar::new(),
            taken: Condvar::new(),
            output,
            eager,
        });
        let worker = batch.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || worker.run(out));
        let guard = spawned.is_ok().then(|| BatchGuard(batch.clone()));
        (BatchWriter(batch), guard)
    }

    fn lock(&self) -> MutexGuard<'_, BatchState> {
        // A panic while holding the lock leaves only bytes behind: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lines this batch dropped because [`MAX_BYTES`] were waiting.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn dropped_total(&self) -> u64 {
        self.lock().dropped_total
    }

    /// Appends one line; never waits for the writer.
    fn push(&self, line: &[u8]) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        if st.buf.len().saturating_add(line.len()) > MAX_BYTES {
            st.dropped += 1;
            st.dropped_total += 1;
            LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.buf.extend_from_slice(line);
        let wake = !st.nudged && (st.writer_idle || self.eager || st.buf.len() >= WAKE_BYTES);
        if wake {
            st.nudged = true;
            drop(st);
            self.ready.notify_one();
        }
    }

    fn run(&self, mut out: impl Write) {
        let mut spare = Vec::new();
        // Drops not yet reported, and when the last report was written.
        let mut unreported: u64 = 0;
        let mut last_notice: Option<Instant> = None;
        loop {
            let mut st = self.lock();
            while st.buf.is_empty() && !st.closed {
                st.writer_idle = true;
                st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.writer_idle = false;
            // Let the batch fill for up to one interval, unless it is already big enough.
            let until = Instant::now() + FLUSH_INTERVAL;
            while !self.eager && !st.closed && st.buf.len() < WAKE_BYTES {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st.nudged = false;
                st = self
                    .ready
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut st.buf, &mut spare);
            st.nudged = false;
            let dropped = std::mem::take(&mut st.dropped);
            let closed = st.closed && st.buf.is_empty();
            drop(st);
            self.taken.notify_all();
            let _ = out.write_all(&spare);
            unreported += dropped;
            let due = last_notice.map_or(true, |t| t.elapsed() >= DROP_NOTICE_INTERVAL);
            if unreported > 0 && (due || closed) {
                let _ = writeln!(
                    out,
                    "WARNING: {unreported} log lines dropped: the log output is too slow \
                     ({} MiB waiting at most; see log_lines_dropped_total)",
                    MAX_BYTES / (1024 * 1024)
                );
                unreported = 0;
                last_notice = Some(Instant::now());
            }
            let _ = out.flush();
            spare.clear();
            if closed {
                break;
            }
        }
        self.lock().done = true;
        self.taken.notify_all();
    }
}

impl Write for &Batch {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a Batch;

    fn make_writer(&'a self) -> Self::Writer {
        &self.0
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        let batch = &self.0;
        let mut st = batch.lock();
        st.closed = true;
        drop(st);
        batch.ready.notify_one();
        batch.taken.notify_all();
        // A file is always written out; a stalled stdout reader gets one second.
        let wait = match batch.output {
            Output::File => 30,
            Output::Stream => 1,
        };
        let deadline = Instant::now() + Duration::from_secs(wait);
        let mut st = batch.lock();
        while !st.done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = batch
                .taken
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests;
