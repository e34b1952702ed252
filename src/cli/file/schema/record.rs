//! The `record` table of a target: where and how its requests are written to files.

use super::{BytesText, Count, TimeText};
use crate::cli::values::{parse_bytes, parse_time};
use crate::config::RecordConfig;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `record = { dir = "/var/lib/spoa-mirror/rec", file-size = "64M", rotate = "1h", gzip = true,
/// disk-budget = "10G", queue = 4096 }`: the target's requests written to files.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(in crate::cli::file) struct RecordSpec {
    dir: PathBuf,
    file_size: Option<Size>,
    rotate: Option<Rotate>,
    #[serde(default)]
    gzip: bool,
    disk_budget: Option<Size>,
    queue: Option<Count<1_000_000>>,
}

impl RecordSpec {
    pub(in crate::cli::file) fn config(&self) -> Result<RecordConfig, String> {
        let mut rc = RecordConfig::new(self.dir.clone());
        if let Some(s) = &self.file_size {
            rc.file_size = s.0;
        }
        if let Some(t) = &self.rotate {
            rc.rotate = t.0;
        }
        rc.gzip = self.gzip;
        if let Some(s) = &self.disk_budget {
            rc.disk_budget = s.0;
        }
        if let Some(q) = &self.queue {
            rc.queue = q.0;
        }
        rc.check().map(|()| rc)
    }
}

/// BYTES (`"64M"`), or an integer.
#[derive(Deserialize)]
#[serde(try_from = "BytesText")]
struct Size(u64);

impl TryFrom<BytesText> for Size {
    type Error = String;
    fn try_from(b: BytesText) -> Result<Self, String> {
        let text = b.text();
        parse_bytes(&text)
            .map(Size)
            .ok_or_else(|| format!("invalid size '{text}' (bytes with an optional K/M/G suffix)"))
    }
}

/// The rotation interval: TIME in 1s..1d.
#[derive(Deserialize)]
#[serde(try_from = "TimeText")]
struct Rotate(Duration);

impl TryFrom<TimeText> for Rotate {
    type Error = String;
    fn try_from(t: TimeText) -> Result<Self, String> {
        let text = t.text();
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(86_400));
        parse_time(&text, min, max).map(Rotate)
    }
}
