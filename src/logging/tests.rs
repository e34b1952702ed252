//! The batch writer: order, promptness, and never blocking on a stalled output.

use super::*;

/// An output the test can read while the writer thread owns a clone.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn batch_writes_every_line_in_order_and_flushes_on_drop() {
    let out = Shared::default();
    let (w, guard) = Batch::start(out.clone(), Output::File, false);
    let mut lines = String::new();
    for i in 0..10_000 {
        let line = format!("line {i}\n");
        (&*w.0).write_all(line.as_bytes()).unwrap();
        lines.push_str(&line);
    }
    drop(guard);
    assert_eq!(
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
        lines
    );
}

/// An output that takes nothing until released: a disk that stopped answering.
struct Stalled(std::sync::mpsc::Receiver<()>, Shared);

impl Write for Stalled {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        self.1.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 11, finding 5: with the `-l` file stalled, a thread that logs never waits; past
/// MAX_BYTES lines are dropped, counted, and reported once the output moves again.
#[test]
fn a_stalled_file_never_blocks_the_thread_that_logs() {
    let out = Shared::default();
    let (release, stalled) = std::sync::mpsc::channel();
    let (w, guard) = Batch::start(Stalled(stalled, out.clone()), Output::File, false);
    let line = [b'x'; 1023]
        .iter()
        .chain(b"\n")
        .copied()
        .collect::<Vec<u8>>();
    let (line_len, lines) = (line.len(), 3 * MAX_BYTES / line.len());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let logger = std::thread::spawn({
        let w = w.clone();
        move || {
            for _ in 0..lines {
                (&*w.0).write_all(&line).unwrap();
            }
            let _ = done_tx.send(());
        }
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "logging waited for the stalled output"
    );
    logger.join().unwrap();
    let dropped = w.0.dropped_total();
    // At most two buffers' worth is kept: the batch the stalled writer took, and a full buffer
    // behind it (how full the first was depends on when the writer woke).
    let kept_at_most = 2 * MAX_BYTES / line_len;
    assert!(
        dropped >= u64::try_from(lines - kept_at_most).unwrap(),
        "{dropped} of {lines} lines dropped"
    );
    assert!(lines_dropped().load(Ordering::Relaxed) >= dropped);
    // The output moves again: what was kept is written, then one notice.
    for _ in 0..10_000 {
        if release.send(()).is_err() {
            break;
        }
    }
    drop(release);
    drop(guard);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    // Every dropped line is reported. Drops that began before the writer took its first batch
    // are in an earlier notice than the rest (it stalled writing that batch).
    let reported: u64 = text
        .lines()
        .filter_map(|l| {
            let (n, _) = l
                .strip_prefix("WARNING: ")?
                .split_once(" log lines dropped")?;
            n.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(
        reported,
        dropped,
        "notices: {:?}",
        text.lines()
            .filter(|l| l.starts_with("WARNING"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn batch_line_arrives_within_the_interval() {
    let out = Shared::default();
    let (w, _guard) = Batch::start(out.clone(), Output::Stream, false);
    (&*w.0).write_all(b"one\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "line not written");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(&*out.0.lock().unwrap(), b"one\n");
}
