//! The writer thread of one recorder: it alone touches the files.
//!
//! Records are written in batches (what is queued, up to [`BATCH`] bytes): one `write` per
//! batch for plain files, so a record is on disk (readable by a replay) as soon as its batch
//! is. A file is closed and the next one started at `file_size` bytes or after `rotate`; after
//! each close the oldest files go until the target's files fit the disk budget.
//!
//! A write error (full disk, directory gone or made read-only) loses the batch (counted in
//! `record_errors_total`, one warning per interval), closes the file (a plain file is cut
//! back to its last whole record), and the next batch tries a new file no sooner than
//! [`RETRY`] later; meanwhile records are counted as lost. The agent never waits for any of it.

mod files;

pub(super) use files::Files;

use super::{Msg, Payload};
use crate::stats::add;
use std::sync::mpsc::{Receiver, RecvTimeoutError};

/// Bytes of records gathered before one write.
const BATCH: usize = 256 * 1024;

/// The thread: take records off the queue in batches, write them, tick.
pub(super) fn run<P: Payload>(mut files: Files, rx: Receiver<Msg<P>>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = match rx.recv_timeout(files.next_wakeup()) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => {
                files.tick();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                files.close();
                return;
            }
        };
        let (mut records, mut responses, mut lost) = (0u64, 0u64, 0u64);
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record {
                    id,
                    timestamp_ns,
                    payload,
                    key,
                } => {
                    if files.encode(id, timestamp_ns, &payload, key, &mut batch) {
                        records += 1;
                    } else {
                        lost += 1;
                    }
                }
                Msg::Response {
                    key,
                    timestamp_ns,
                    payload,
                } => match files.encode_response(&key, timestamp_ns, &payload, &mut batch) {
                    Some(true) => {
                        records += 1;
                        responses += 1;
                    }
                    Some(false) => lost += 1,
                    None => {}
                },
                Msg::Finish(done) => {
                    files.write(&mut batch, records, responses);
                    (records, responses) = (0, 0);
                    files.close();
                    let _ = done.send(());
                }
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if lost > 0 {
            add(&files.stats.record_errors_total, lost);
        }
        files.write(&mut batch, records, responses);
    }
}
