//! The files a replay reads: paths (a directory stands for its record files, in name order),
//! each plain or gzip-compressed (told by its first bytes, not its name), and the request
//! records in them, in file order. Bad records are reported (file:line) and counted, and
//! reading goes on; response records (types 2 and 3) are kept apart for a later comparison.

use super::compare::Comparison;
use super::payload::parse_request;
use super::play::Item;
use crate::mirror::{apply_rules, MirrorRequest};
use crate::record::{Kind, Reader, Record};
use flate2::bufread::MultiGzDecoder;
use http::uri::Authority;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What reading found, across passes.
#[derive(Debug, Default)]
pub struct InputCounts {
    /// Request records read.
    pub requests: AtomicU64,
    /// Records that could not be read (bad header, too large, unterminated, read error).
    pub bad_records: AtomicU64,
    /// Request records whose payload is not a request we can send.
    pub bad_payloads: AtomicU64,
    /// Response records (types 2, 3): not replayed (type 2 compared with `--compare`).
    pub responses: AtomicU64,
    /// Requests the method/path filters left out.
    pub filtered: AtomicU64,
    /// Files that could not be opened.
    pub unreadable_files: AtomicU64,
}

/// Files and directories → the files to read, in order: each path in the order given, a
/// directory's `.gor` / `.gz` files sorted by name (as the recorder names them, in time order).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !meta.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|f| {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                f.is_file() && (name.ends_with(".gor") || name.ends_with(".gz"))
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// A file as a byte stream, gunzipped if it starts with gzip's magic bytes.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    })
}

/// Method/path filters and header rules, applied as a target applies them.
#[derive(Clone)]
pub struct Rules {
    pub rules: Option<crate::config::Rules>,
    /// The replay URL's authority (`--host target`).
    pub authority: Authority,
}

impl Rules {
    fn apply(&self, req: MirrorRequest) -> Option<MirrorRequest> {
        match &self.rules {
            None => Some(req),
            Some(r) => apply_rules(r, &req, &self.authority),
        }
    }
}

/// The request items of `files`, one after the other. Problems go to `report` (one line
/// each) and to `counts`.
pub struct Requests<R: FnMut(String)> {
    files: std::vec::IntoIter<PathBuf>,
    reader: Option<Reader<Box<dyn BufRead + Send>>>,
    rules: Rules,
    counts: Arc<InputCounts>,
    max_record: usize,
    report: R,
    /// `--compare`: type-2 records go there.
    comparison: Option<Arc<Comparison>>,
}

impl<R: FnMut(String)> Requests<R> {
    pub fn new(
        files: Vec<PathBuf>,
        rules: Rules,
        counts: Arc<InputCounts>,
        max_record: usize,
        report: R,
    ) -> Self {
        Requests {
            files: files.into_iter(),
            reader: None,
            rules,
            counts,
            max_record,
            report,
            comparison: None,
        }
    }

    /// Hands the response records (type 2) to `comparison`.
    pub fn compare_with(mut self, comparison: Option<Arc<Comparison>>) -> Self {
        self.comparison = comparison;
        self
    }

    fn next_record(&mut self) -> Option<Record> {
        loop {
            let reader = match &mut self.reader {
                Some(r) => r,
                None => {
                    let path = self.files.next()?;
                    match open(&path) {
                        Ok(stream) => self.reader.insert(
                            Reader::new(stream, path.display().to_string())
                                .max_record(self.max_record),
                        ),
                        Err(e) => {
                            inc(&self.counts.unreadable_files);
                            (self.report)(format!("{}: {e}", path.display()));
                            continue;
                        }
                    }
                }
            };
            match reader.next() {
                Some(Ok(record)) => return Some(record),
                Some(Err(e)) => {
                    inc(&self.counts.bad_records);
                    (self.report)(e.to_string());
                }
                None => self.reader = None,
            }
        }
    }
}

impl<R: FnMut(String)> Iterator for Requests<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            let record = self.next_record()?;
            if record.kind != Kind::Request {
                inc(&self.counts.responses);
                if let (Kind::Response, Some(c)) = (record.kind, &self.comparison) {
                    c.recorded(&record.id, &record.payload);
                }
                continue;
            }
            inc(&self.counts.requests);
            let request = match parse_request(&record.payload) {
                Ok(r) => r,
                Err(e) => {
                    inc(&self.counts.bad_payloads);
                    (self.report)(format!("record {}: {e}", record.id));
                    continue;
                }
            };
            match self.rules.apply(request) {
                Some(request) => {
                    if let Some(c) = &self.comparison {
                        c.expect(&record.id);
                    }
                    return Some(Item {
                        timestamp_ns: record.timestamp_ns,
                        request,
                        id: record.id,
                    });
                }
                None => inc(&self.counts.filtered),
            }
        }
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
