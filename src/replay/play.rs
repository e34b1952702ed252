//! Pacing and sending: each request waits for its time (the recorded gaps divided by the
//! speed, or one every 1/rate seconds), then for a free slot (the concurrency limit), and is
//! sent on its own task. Timing runs on tokio's clock, so a test with a paused clock sees the
//! exact schedule.

use crate::mirror::{MirrorRequest, Sent};
use indicatif::ProgressBar;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// One request read from a record file.
pub struct Item {
    /// When it was recorded, in ns since the Unix epoch.
    pub timestamp_ns: i64,
    pub request: MirrorRequest,
    /// The record's id (its response record, if any, has the same).
    pub id: String,
}

/// How requests are spaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// The recorded gaps divided by `speed` (2.0: twice as fast).
    Original { speed: f64 },
    /// `per_second` requests a second, evenly spaced.
    Rate { per_second: f64 },
}

impl Pace {
    /// When the `index`-th request of a pass (recorded at `ts`, the pass's first at `first`) is
    /// due, after the pass's start.
    pub fn offset(self, first: i64, ts: i64, index: u64) -> Duration {
        let secs = match self {
            Pace::Original { speed } => {
                // Out-of-order timestamps are due at once.
                let gap_ns = ts.saturating_sub(first).max(0) as f64;
                gap_ns / 1e9 / speed
            }
            Pace::Rate { per_second } => index as f64 / per_second,
        };
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub pace: Pace,
    /// Play the files again and again (until `stop_after`, or Ctrl-C).
    pub repeat: bool,
    pub concurrency: usize,
    /// Stop sending new requests after this long.
    pub stop_after: Option<Duration>,
}

/// What happened, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub sent: u64,
    /// Responses by class: 1xx .. 5xx (index 0..4); others are failures.
    pub status: [u64; 5],
    pub failed_connect: u64,
    pub failed_timeout: u64,
    pub failed_other: u64,
    /// Requests that could not be built for the URL (nothing sent).
    pub unsendable: u64,
    /// Latencies of the requests that got a response, in µs (a uniform sample of at most
    /// [`Totals::MAX_SAMPLES`]).
    pub latencies_us: Vec<u64>,
    seen_latencies: u64,
    /// The most a request went out after its due time (slots all busy, or a slow machine).
    pub max_lag: Duration,
}

impl Totals {
    pub const MAX_SAMPLES: usize = 100_000;

    pub fn failed(&self) -> u64 {
        self.failed_connect + self.failed_timeout + self.failed_other + self.unsendable
    }

    fn latency(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.seen_latencies += 1;
        if self.latencies_us.len() < Totals::MAX_SAMPLES {
            self.latencies_us.push(us);
        } else {
            // Reservoir sampling: every latency has the same chance to be kept.
            let j = fastrand::u64(0..self.seen_latencies);
            if let Some(slot) = usize::try_from(j)
                .ok()
                .and_then(|j| self.latencies_us.get_mut(j))
            {
                *slot = us;
            }
        }
    }

    /// The `q` quantile (0..=1) of the sampled latencies.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let last = v.len().checked_sub(1)?;
        let i = ((last as f64) * q).round() as usize;
        v.get(i.min(last)).map(|&us| Duration::from_micros(us))
    }

    fn record(&mut self, outcome: &Result<Sent, ()>, took: Duration) {
        self.sent += 1;
        match outcome {
            Ok(Sent::Status(s)) => {
                let class = usize::from(s.as_u16() / 100).saturating_sub(1);
                match self.status.get_mut(class) {
                    Some(n) => *n += 1,
                    None => self.failed_other += 1,
                }
                self.latency(took);
            }
            Ok(Sent::Connect(_)) => self.failed_connect += 1,
            Ok(Sent::Timeout) => self.failed_timeout += 1,
            Ok(Sent::Other(_)) => self.failed_other += 1,
            Err(()) => self.unsendable += 1,
        }
    }
}

/// Plays what `source` yields (called once per pass), sending each request with `send`.
/// Returns when every request sent has ended (or `stop` fired: nothing new is sent).
pub async fn play<I, S, F>(
    mut source: impl FnMut() -> I,
    opts: &Options,
    send: S,
    bar: &ProgressBar,
    stop: impl Future<Output = ()>,
) -> Totals
where
    I: Iterator<Item = Item>,
    S: Fn(Item) -> F,
    F: Future<Output = Result<Sent, ()>> + Send + 'static,
{
    let totals = Arc::new(Mutex::new(Totals::default()));
    let concurrency = opts.concurrency.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let deadline = opts.stop_after.map(|d| started + d);
    let mut index = 0u64;
    tokio::pin!(stop);
    'passes: loop {
        let pass_start = Instant::now();
        let mut first = None;
        let mut pass_index = 0u64;
        for item in source() {
            let first = *first.get_or_insert(item.timestamp_ns);
            let offset = match opts.pace {
                // A fixed rate runs on across passes.
                Pace::Rate { .. } => opts.pace.offset(0, 0, index),
                Pace::Original { .. } => opts.pace.offset(first, item.timestamp_ns, pass_index),
            };
            let base = match opts.pace {
                Pace::Rate { .. } => started,
                Pace::Original { .. } => pass_start,
            };
            let due = base.checked_add(offset).unwrap_or(base);
            if deadline.is_some_and(|d| due >= d) {
                break 'passes;
            }
            let permit = tokio::select! {
                biased;
                _ = &mut stop => break 'passes,
                permit = async {
                    tokio::time::sleep_until(due).await;
                    Arc::clone(&slots).acquire_owned().await
                } => permit,
            };
            let Ok(permit) = permit else { break 'passes };
            let lag = Instant::now().saturating_duration_since(due);
            let request = send(item);
            let (totals, bar) = (Arc::clone(&totals), bar.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                let outcome = request.await;
                let took = t0.elapsed();
                if let Ok(mut t) = totals.lock() {
                    t.record(&outcome, took);
                    t.max_lag = t.max_lag.max(lag);
                    bar.set_message(format!("{} failed", t.failed()));
                }
                bar.inc(1);
                drop(permit);
            });
            index += 1;
            pass_index += 1;
        }
        if !opts.repeat || pass_index == 0 {
            break;
        }
    }
    // Wait for the requests on the wire: every slot free again.
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    let t = totals.lock().map(|t| t.clone()).unwrap_or_default();
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{Method, Version};

    fn item(ms: i64) -> Item {
        Item {
            timestamp_ns: 1_700_000_000_000_000_000 + ms * 1_000_000,
            request: MirrorRequest {
                method: Method::GET,
                target: format!("/{ms}").parse().unwrap(),
                target_authority: None,
                version: Version::HTTP_11,
                headers: Vec::new(),
                has_host: false,
                body: Bytes::new(),
                src: None,
                id: None,
            },
            id: format!("{ms}"),
        }
    }

    /// Plays items recorded at `ms` and returns when each was sent, in ms after the start.
    async fn sent_at(ms: &[i64], opts: Options) -> (Vec<Duration>, Totals) {
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let t = Arc::clone(&times);
        let list: Vec<i64> = ms.to_vec();
        let totals = play(
            || {
                list.iter()
                    .map(|&m| item(m))
                    .collect::<Vec<_>>()
                    .into_iter()
            },
            &opts,
            move |_req| {
                t.lock().unwrap().push(start.elapsed());
                async { Ok(Sent::Status(http::StatusCode::OK)) }
            },
            &ProgressBar::hidden(),
            std::future::pending(),
        )
        .await;
        let v = times.lock().unwrap().clone();
        (v, totals)
    }

    fn opts(pace: Pace) -> Options {
        Options {
            pace,
            repeat: false,
            concurrency: 4,
            stop_after: None,
        }
    }

    // tokio's timer has a 1 ms resolution: scaled gaps here are whole milliseconds.
    const RECORDED: [i64; 5] = [0, 100, 350, 360, 1_000];

    #[tokio::test(start_paused = true)]
    async fn original_timing_keeps_the_gaps() {
        let (at, totals) = sent_at(&RECORDED, opts(Pace::Original { speed: 1.0 })).await;
        let want: Vec<_> = RECORDED
            .iter()
            .map(|&m| Duration::from_millis(m as u64))
            .collect();
        assert_eq!(at, want);
        assert_eq!(totals.sent, 5);
        assert_eq!(totals.status[1], 5);
        assert_eq!(totals.max_lag, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn ten_times_faster_takes_a_tenth() {
        let (at, _) = sent_at(&RECORDED, opts(Pace::Original { speed: 10.0 })).await;
        let want: Vec<_> = RECORDED
            .iter()
            .map(|&m| Duration::from_micros(m as u64 * 100))
            .collect();
        assert_eq!(at, want);
        let (at, _) = sent_at(&RECORDED, opts(Pace::Original { speed: 0.5 })).await;
        assert_eq!(at.last(), Some(&Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_rate_and_loop_until_the_deadline() {
        let mut o = opts(Pace::Rate { per_second: 4.0 });
        o.repeat = true;
        o.stop_after = Some(Duration::from_millis(2_100));
        let (at, totals) = sent_at(&[0, 5_000], o).await;
        // Every 250 ms whatever the recorded gaps, passes following each other, stopped at 2.1 s.
        let want: Vec<_> = (0..9).map(|i| Duration::from_millis(i * 250)).collect();
        assert_eq!(at, want);
        assert_eq!(totals.sent, 9);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_order_records_go_at_once() {
        let (at, _) = sent_at(&[500, 100, 600], opts(Pace::Original { speed: 1.0 })).await;
        assert_eq!(
            at,
            [Duration::ZERO, Duration::ZERO, Duration::from_millis(100)]
        );
    }

    #[test]
    fn percentiles() {
        let mut t = Totals::default();
        for ms in 1..=100 {
            t.record(
                &Ok(Sent::Status(http::StatusCode::OK)),
                Duration::from_millis(ms),
            );
        }
        t.record(&Ok(Sent::Timeout), Duration::ZERO);
        assert_eq!(t.percentile(0.5), Some(Duration::from_millis(51)));
        assert_eq!(t.percentile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(t.failed(), 1);
    }
}
