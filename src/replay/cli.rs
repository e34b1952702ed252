//! `spoa-mirror-replay`'s command line, and the run: read, pace, send, summarise.

use super::compare::Comparison;
use super::input::{self, InputCounts, Requests, Rules};
use super::options::{compare_config, rules};
use super::play::{self, Options, Pace, Totals};
use crate::config::MirrorConfig;
use crate::mirror::Sender;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Exit codes.
pub const EXIT_OK: u8 = 0;
/// Some requests got no response (connect error, timeout, reset), or could not be sent.
pub const EXIT_FAILED_REQUESTS: u8 = 1;
/// A bad command line.
pub const EXIT_USAGE: u8 = 64;
/// No file could be read, or the URL cannot be used.
pub const EXIT_INPUT: u8 = 66;
/// `--compare`: more responses differed from the recorded ones than `--max-diff-rate`.
pub const EXIT_DIFFERENCES: u8 = 2;

/// Replays requests recorded by spoa-mirror (--record-dir, or a target's `record` table) or
/// by GoReplay (--output-file) against a URL: with the recorded timing, faster or slower, or
/// at a fixed rate.
#[derive(Parser, Debug)]
#[command(name = "spoa-mirror-replay", version, about, long_about = None)]
pub struct Args {
    /// Record files (.gor, .gor.gz) or directories of them, played in the order given (a
    /// directory's files in name order, i.e. in time order).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub inputs: Vec<PathBuf>,

    /// Send the requests to this http:// or https:// URL (its path is prepended to each).
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// Play the recorded timing this many times faster, 0.01x..1000x (e.g. 0.5x, 1x, 10x).
    #[arg(
        long,
        value_name = "FACTOR",
        default_value = "1x",
        conflicts_with = "rate"
    )]
    pub speed: String,

    /// Ignore the recorded timing: send this many requests a second.
    #[arg(long, value_name = "PER-SECOND")]
    pub rate: Option<f64>,

    /// Play the files again and again (until --duration or Ctrl-C).
    #[arg(long = "loop")]
    pub repeat: bool,

    /// Stop sending after this long (e.g. 30s, 10m).
    #[arg(long, value_name = "TIME")]
    pub duration: Option<humantime::Duration>,

    /// Requests on the wire at once; a request waits for a free slot.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,

    /// Total time for one request.
    #[arg(long, value_name = "TIME", default_value = "10s")]
    pub timeout: humantime::Duration,

    /// Only replay these methods (repeatable).
    #[arg(long = "method", value_name = "METHOD")]
    pub methods: Vec<String>,

    /// Only replay paths matching this regular expression (repeatable: any of them).
    #[arg(long = "path-include", value_name = "REGEX")]
    pub path_include: Vec<String>,

    /// Skip paths matching this regular expression (repeatable).
    #[arg(long = "path-exclude", value_name = "REGEX")]
    pub path_exclude: Vec<String>,

    /// The Host header sent: keep (the recorded one), target (the URL's), or a host, with or
    /// without a port.
    #[arg(long, value_name = "HOST", default_value = "keep")]
    pub host: String,

    /// Set a header, 'Name: value' (repeatable; replaces the recorded ones).
    #[arg(long = "set-header", value_name = "HEADER")]
    pub set_headers: Vec<String>,

    /// Remove a header (repeatable).
    #[arg(long = "remove-header", value_name = "NAME")]
    pub remove_headers: Vec<String>,

    /// Extra CA certificates (PEM) for an https:// URL.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the https:// URL's certificate.
    #[arg(long)]
    pub insecure: bool,

    /// Skip records larger than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::record::format::DEFAULT_MAX_RECORD)]
    pub max_record: usize,

    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,

    /// Compare each response with the one recorded for its request (type-2 records, written
    /// by spoa-mirror with shadow comparison on, or by GoReplay); exit 2 when more differ
    /// than --max-diff-rate.
    #[arg(long, conflicts_with = "repeat")]
    pub compare: bool,

    /// With --compare: the fraction of compared responses that may differ, 0..1.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, requires = "compare")]
    pub max_diff_rate: f64,

    /// With --compare: a header never compared (repeatable), besides Date, Server, request ids...
    #[arg(long = "ignore-header", value_name = "NAME", requires = "compare")]
    pub ignore_headers: Vec<String>,

    /// With --compare: a JSON field never compared, e.g. '$.meta.at', '$..trace_id' (repeatable).
    #[arg(long = "ignore-json", value_name = "PATH", requires = "compare")]
    pub ignore_json: Vec<String>,

    /// With --compare: JSON arrays compared without regard to order.
    #[arg(long, requires = "compare")]
    pub ignore_array_order: bool,

    /// With --compare: a regular expression masked in text bodies before comparing (repeatable).
    #[arg(long = "text-mask", value_name = "REGEX", requires = "compare")]
    pub text_masks: Vec<String>,
}

/// `--speed`: `10x`, `10`, `0.5x`.
pub fn parse_speed(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches(['x', 'X']);
    n.parse::<f64>()
        .ok()
        .filter(|f| (0.01..=1000.0).contains(f))
        .ok_or_else(|| format!("invalid --speed '{s}' (0.01x..1000x, e.g. 0.5x or 10x)"))
}

/// Runs the tool; the exit code.
pub async fn run(a: Args) -> u8 {
    let usage = |e: String| {
        eprintln!("spoa-mirror-replay: {e}");
        EXIT_USAGE
    };
    let pace = match a.rate {
        Some(r) if r > 0.0 && r.is_finite() => Pace::Rate { per_second: r },
        Some(r) => return usage(format!("invalid --rate {r} (requests a second, above 0)")),
        None => match parse_speed(&a.speed) {
            Ok(speed) => Pace::Original { speed },
            Err(e) => return usage(e),
        },
    };
    let rules_cfg = match rules(&a) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let comparison = match a.compare.then(|| compare_config(&a)).transpose() {
        Ok(cfg) => cfg.map(|c| Arc::new(Comparison::new(&c))),
        Err(e) => return usage(e),
    };
    let url = match crate::config::MirrorUrl::parse(&a.url) {
        Ok(u) => u.into_uri(),
        Err(e) => return usage(format!("invalid --url '{}': {e}", a.url)),
    };
    let mut cfg = MirrorConfig::new(url);
    cfg.timeout = a.timeout.into();
    cfg.connect_timeout = cfg.timeout;
    cfg.concurrency = a.concurrency.max(1);
    cfg.ca_file = a.ca_file.clone();
    cfg.insecure = a.insecure;
    let sender = match Sender::new(&cfg) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("spoa-mirror-replay: {e}");
            return EXIT_INPUT;
        }
    };
    let files = match input::expand(&a.inputs) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("spoa-mirror-replay: no record files (.gor, .gz) in the inputs");
            return EXIT_INPUT;
        }
        Err(e) => {
            eprintln!("spoa-mirror-replay: {e}");
            return EXIT_INPUT;
        }
    };
    let rules = Rules {
        rules: rules_cfg,
        authority: sender.authority().clone(),
    };

    // A first pass counts the requests, for the progress bar's length and ETA (not when
    // looping: no end, no ETA; nor without a bar).
    let total = if a.repeat || a.quiet {
        0
    } else {
        let counts = Arc::new(InputCounts::default());
        Requests::new(files.clone(), rules.clone(), counts, a.max_record, |_| {}).count() as u64
    };
    let bar = progress_bar(&a, total);
    let counts = Arc::new(InputCounts::default());
    let opts = Options {
        pace,
        repeat: a.repeat,
        concurrency: a.concurrency,
        stop_after: a.duration.map(Into::into),
    };
    let started = std::time::Instant::now();
    let (reporter, max_record) = (bar.clone(), a.max_record);
    let reported = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let source = || {
        let (r, reported) = (reporter.clone(), Arc::clone(&reported));
        Requests::new(
            files.clone(),
            rules.clone(),
            Arc::clone(&counts),
            max_record,
            move |line| report(&r, &reported, line),
        )
        .compare_with(comparison.clone())
    };
    let send = |item: play::Item| {
        let (sender, comparison) = (Arc::clone(&sender), comparison.clone());
        async move {
            let Some(c) = comparison else {
                return sender.send(&item.request).await.map_err(|_| ());
            };
            let (sent, captured) = sender
                .send_capture(&item.request, Some(c.max_body()))
                .await
                .map_err(|_| ())?;
            let req = &item.request;
            c.replayed(&item.id, req.method.as_str(), req.target.path(), captured);
            Ok(sent)
        }
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let totals = play::play(source, &opts, send, &bar, stop).await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    print_summary(&totals, &counts, elapsed, opts.repeat);
    if counts.unreadable_files.load(Ordering::Relaxed) > 0 && totals.sent == 0 {
        return EXIT_INPUT;
    }
    if let Some(c) = &comparison {
        let summary = c.finish();
        summary.print();
        if summary.rate() > a.max_diff_rate {
            return EXIT_DIFFERENCES;
        }
    }
    if totals.failed() > 0 {
        EXIT_FAILED_REQUESTS
    } else {
        EXIT_OK
    }
}

/// Problems shown one a line (above the bar), the first [`MAX_REPORTED`] of them; the summary
/// counts them all.
const MAX_REPORTED: u64 = 20;

fn report(bar: &ProgressBar, reported: &std::sync::atomic::AtomicU64, line: String) {
    let n = reported.fetch_add(1, Ordering::Relaxed);
    let line = match n {
        n if n < MAX_REPORTED => line,
        MAX_REPORTED => "(more problems: see the summary's counts)".to_string(),
        _ => return,
    };
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn progress_bar(a: &Args, total: u64) -> ProgressBar {
    if a.quiet {
        return ProgressBar::hidden();
    }
    let bar = if a.repeat {
        ProgressBar::no_length()
    } else {
        ProgressBar::new(total)
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let template = if a.repeat {
        "{spinner} {elapsed_precise} {pos} sent, {per_sec}, {msg}"
    } else {
        "{bar:30} {pos}/{len} {elapsed_precise} ETA {eta}, {per_sec}, {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_summary(t: &Totals, c: &InputCounts, elapsed: Duration, repeat: bool) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let rate = t.sent as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "sent {} requests in {:.3} s ({rate:.1}/s){}",
        t.sent,
        elapsed.as_secs_f64(),
        if repeat { ", looping" } else { "" }
    );
    println!(
        "responses: 1xx {} 2xx {} 3xx {} 4xx {} 5xx {}",
        t.status[0], t.status[1], t.status[2], t.status[3], t.status[4]
    );
    println!(
        "failed: {} (connect {}, timeout {}, other {}, could not build {})",
        t.failed(),
        t.failed_connect,
        t.failed_timeout,
        t.failed_other,
        t.unsendable
    );
    let ms = |q: f64| {
        t.percentile(q).map_or("-".to_string(), |d| {
            format!("{:.3}", d.as_secs_f64() * 1000.0)
        })
    };
    println!(
        "latency ms: p50 {} p90 {} p99 {} max {}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0)
    );
    println!(
        "records: {} requests read, {} bad records, {} bad requests, {} filtered out, {} responses \
         (not replayed), {} unreadable files; max lag behind schedule {:.3} ms",
        get(&c.requests),
        get(&c.bad_records),
        get(&c.bad_payloads),
        get(&c.filtered),
        get(&c.responses),
        get(&c.unreadable_files),
        t.max_lag.as_secs_f64() * 1000.0
    );
}
