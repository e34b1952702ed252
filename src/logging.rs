//! Log output: tracing-subscriber's fmt layer (timestamp, level, target, message) with an
//! `EnvFilter` (`--log-level` or `RUST_LOG`), written to stdout or to the `-l` file.
//!
//! Writers, by destination:
//! - stdout (no `-l`): what HAProxy `program` sections and journald collect. A background
//!   thread writes (tracing-appender), lossy, so a stalled reader never stalls the agent.
//! - `-l a:FILE` / `-l w:FILE` / `-l FILE`: a background thread writes through a buffer that is
//!   flushed whenever no line is waiting; nothing is dropped.
//! - `-l A:FILE` / `-l W:FILE`: every line is written to the file before the call returns.
//!
//! [`flush`] must run before the process exits: it waits until every queued line is written.

use crate::config::{LogFile, RunConfig};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

/// Keeps the background writer alive; dropping it writes out what is queued.
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Opens the `-l` file (before daemonizing, so an error still reaches the terminal).
/// Unlike the original, a plain `-l FILE` appends to an existing file instead of failing.
pub fn open_logfile(log: &LogFile) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .append(!log.truncate)
        .truncate(log.truncate)
        .mode(0o644)
        .open(&log.path)
}

/// Installs the global subscriber. `file` is the opened `-l` file, if any. Call it after
/// daemonizing: the background writer is a thread, and threads do not survive `fork`.
pub fn init(run: &RunConfig, file: Option<File>) {
    // cli.rs has validated the filter; the fallback only guards against a changed default.
    let filter = EnvFilter::try_new(&run.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let line_buffered = run.logfile.as_ref().is_some_and(|l| l.line_buffered);
    let (writer, guard, ansi) = match file {
        Some(f) if line_buffered => (BoxMakeWriter::new(Mutex::new(f)), None, false),
        Some(f) => {
            let (w, g) = NonBlockingBuilder::default()
                .lossy(false)
                .thread_name("log-writer")
                .finish(BufWriter::new(f));
            (BoxMakeWriter::new(w), Some(g), false)
        }
        None => {
            let ansi = std::io::stdout().is_terminal();
            let (w, g) = NonBlockingBuilder::default()
                .lossy(true)
                .thread_name("log-writer")
                .finish(std::io::stdout());
            (BoxMakeWriter::new(w), Some(g), ansi)
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
