//! The replay tool (`spoa-mirror-replay`, a thin main in src/bin/): reads record files (ours
//! or GoReplay's) and sends their requests to a URL with the recorded timing scaled, or at a
//! fixed rate, through the same client and request rules as a mirror target.
//!
//! ```text
//! input (files → records → requests, filters and header rules) ─▶ play (pace, slots) ─▶ mirror::Sender
//! ```
//!
//! - [`payload`] (pure): a record's raw HTTP/1.x request → a `MirrorRequest`.
//! - [`input`]: paths → files (plain or gzip) → request items; bad records counted.
//! - [`play`]: pacing on tokio's clock, the concurrency limit, the totals.
//! - [`compare`]: `--compare`, replayed responses against the recorded ones (type 2), with
//!   the shadow comparator.
//! - [`cli`]: the options, the progress bar, the summary, the exit code; `options`: the
//!   options as a target's rules and as comparison rules.

pub mod cli;
pub mod compare;
pub mod input;
mod options;
pub mod payload;
pub mod play;
