//! Pure: GoReplay's file format, written and read record by record.
//!
//! ```text
//! <type> <id> <timestamp-ns> <latency>\n      type: 1 request, 2 response, 3 replayed response
//! <payload: raw HTTP/1.x message, any bytes>
//! \n🐵🙈🙉\n                                   the separator: a line of three monkey emoji
//! ```
//!
//! A record ends at the first line that is exactly the three emoji; the newline before it is
//! the separator's, not the payload's. So a payload may hold anything (binary bytes, CRLFs,
//! the emoji inside a line) except a line made of the emoji alone: [`encode`] refuses such a
//! payload rather than write a file that would read back differently. GoReplay's own files
//! (a 3-field header without latency included) read the same way.
//!
//! [`Reader`] never panics and bounds each record's size: a bad record is reported with its
//! number and first line, skipped, and counted; reading goes on with the next one.

use std::fmt;
use std::io::{self, BufRead, Read};

/// The line between two records (without its newline).
pub const SEPARATOR_LINE: &[u8] = "🐵🙈🙉".as_bytes();

/// Largest payload the reader accepts by default (a bigger record is skipped and counted).
pub const DEFAULT_MAX_RECORD: usize = 64 * 1024 * 1024;

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `1`: a request.
    Request,
    /// `2`: the original response to the request with the same id.
    Response,
    /// `3`: the response a replay got.
    ReplayedResponse,
}

impl Kind {
    fn digit(self) -> u8 {
        match self {
            Kind::Request => b'1',
            Kind::Response => b'2',
            Kind::ReplayedResponse => b'3',
        }
    }

    fn from_field(f: &[u8]) -> Option<Kind> {
        match f {
            b"1" => Some(Kind::Request),
            b"2" => Some(Kind::Response),
            b"3" => Some(Kind::ReplayedResponse),
            _ => None,
        }
    }
}

/// One record: the header line's fields and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    /// Shared by a request and its responses; printable ASCII without spaces.
    pub id: String,
    /// When the request was made, in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// GoReplay's fourth field (a round trip in ns for responses; 0 for requests); 0 when the
    /// header has only three fields.
    pub latency_ns: i64,
    pub payload: Vec<u8>,
}

/// Why a record cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("record id is empty or has a space, a control or a non-ASCII character")]
    BadId,
    #[error("payload holds a line that is the record separator")]
    SeparatorInPayload,
}

/// Appends `record` (header, payload, separator) to `out`; on error `out` is unchanged.
pub fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if record.id.is_empty() || !record.id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EncodeError::BadId);
    }
    let start = out.len();
    out.push(record.kind.digit());
    out.push(b' ');
    out.extend_from_slice(record.id.as_bytes());
    out.extend_from_slice(format!(" {} {}\n", record.timestamp_ns, record.latency_ns).as_bytes());
    // From the header's newline on, every line the reader will see: none may be the separator.
    let check_from = out.len().saturating_sub(1);
    out.extend_from_slice(&record.payload);
    out.push(b'\n');
    let written = out.get(check_from..).unwrap_or_default();
    if contains_separator_line(written) {
        out.truncate(start);
        return Err(EncodeError::SeparatorInPayload);
    }
    out.extend_from_slice(SEPARATOR_LINE);
    out.push(b'\n');
    Ok(())
}

/// Whether `bytes` (starting and ending with a newline) has a line that is the separator.
fn contains_separator_line(bytes: &[u8]) -> bool {
    let len = SEPARATOR_LINE.len() + 2;
    bytes.windows(len).any(|w| {
        w.first() == Some(&b'\n')
            && w.last() == Some(&b'\n')
            && w.get(1..len - 1) == Some(SEPARATOR_LINE)
    })
}

/// A record that could not be read; reading goes on with the next one.
#[derive(Debug)]
pub struct RecordError {
    /// The file (or whatever the reader was given as its name).
    pub source: String,
    /// 1-based number of the record in the file (separators counted).
    pub record: u64,
    /// 1-based line of the record's header line.
    pub line: u64,
    pub kind: RecordErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordErrorKind {
    #[error("bad header line (want `<1|2|3> <id> <timestamp-ns> [<latency>]`): {0:?}")]
    BadHeader(String),
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    #[error("not ended by the separator line (truncated file?)")]
    Unterminated,
    /// Reading failed (a gzip file cut short, a disk error): the rest of the file is lost.
    #[error("read error: {0}")]
    Io(io::Error),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: record {}: {}",
            self.source, self.line, self.record, self.kind
        )
    }
}

impl std::error::Error for RecordError {}

/// Reads records from a buffered byte stream (plain; the caller unzips). An iterator of
/// records and errors; after an IO error it ends.
pub struct Reader<R> {
    inner: R,
    source: String,
    max_record: usize,
    /// Lines read so far.
    line: u64,
    /// Records started so far (good, bad and skipped).
    record: u64,
    /// Records skipped because they were bad.
    skipped: u64,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// `source` names the stream in errors (a file path).
    pub fn new(inner: R, source: impl Into<String>) -> Reader<R> {
        Reader {
            inner,
            source: source.into(),
            max_record: DEFAULT_MAX_RECORD,
            line: 0,
            record: 0,
            skipped: 0,
            done: false,
        }
    }

    /// Records whose payload is larger than `max` bytes are skipped (and counted).
    pub fn max_record(mut self, max: usize) -> Reader<R> {
        self.max_record = max;
        self
    }

    /// Bad records skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn error(&mut self, line: u64, kind: RecordErrorKind) -> RecordError {
        self.skipped = self.skipped.saturating_add(1);
        RecordError {
            source: self.source.clone(),
            record: self.record,
            line,
            kind,
        }
    }

    /// The next record's bytes (header line to the separator, exclusive), or `None` at the
    /// end. Past `max_record` (plus room for the header) the bytes are dropped and the
    /// record is marked too large; reading goes on to its separator.
    fn next_raw(&mut self) -> Option<(u64, Result<Vec<u8>, RecordErrorKind>)> {
        let limit = self.max_record.saturating_add(4096);
        let mut buf: Vec<u8> = Vec::new();
        let mut first_line = None;
        let mut too_large = false;
        loop {
            let room = if too_large {
                // Still looking for the separator: read in bounded pieces.
                64 * 1024
            } else {
                limit.saturating_sub(buf.len()).saturating_add(1)
            };
            let mut line = Vec::new();
            let read = (&mut self.inner)
                .take(u64::try_from(room).unwrap_or(u64::MAX))
                .read_until(b'\n', &mut line);
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    let at = first_line.unwrap_or(self.line.saturating_add(1));
                    return Some((at, Err(RecordErrorKind::Io(e))));
                }
            };
            if n == 0 {
                self.done = true;
                return match first_line {
                    // Blank lines only, or nothing, after the last separator: the end.
                    None => None,
                    Some(_) if buf.iter().all(u8::is_ascii_whitespace) && !too_large => None,
                    Some(at) => Some((at, Err(RecordErrorKind::Unterminated))),
                };
            }
            let whole_line = line.last() == Some(&b'\n');
            if whole_line {
                self.line = self.line.saturating_add(1);
            }
            let at = *first_line.get_or_insert(self.line.max(1));
            if whole_line && line.strip_suffix(b"\n") == Some(SEPARATOR_LINE) {
                if too_large {
                    return Some((at, Err(RecordErrorKind::TooLarge(self.max_record))));
                }
                // The newline before the separator line belongs to the separator.
                buf.pop();
                return Some((at, Ok(buf)));
            }
            if too_large {
                continue;
            }
            buf.extend_from_slice(&line);
            if buf.len() > limit {
                too_large = true;
                buf = Vec::new();
            }
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (at, raw) = self.next_raw()?;
        self.record = self.record.saturating_add(1);
        let raw = match raw {
            Ok(raw) => raw,
            Err(kind) => return Some(Err(self.error(at, kind))),
        };
        match parse_record(raw) {
            Ok(r) if r.payload.len() > self.max_record => Some(Err(
                self.error(at, RecordErrorKind::TooLarge(self.max_record))
            )),
            Ok(r) => Some(Ok(r)),
            Err(kind) => Some(Err(self.error(at, kind))),
        }
    }
}

/// Header line and payload of one record's bytes.
fn parse_record(mut raw: Vec<u8>) -> Result<Record, RecordErrorKind> {
    let Some(nl) = raw.iter().position(|&b| b == b'\n') else {
        return Err(bad_header(&raw));
    };
    let header = raw.get(..nl).unwrap_or_default();
    let header = header.strip_suffix(b"\r").unwrap_or(header);
    let fields: Vec<&[u8]> = header.split(|&b| b == b' ').collect();
    let parsed = match fields.as_slice() {
        [kind, id, ts] => Some((kind, id, ts, None)),
        [kind, id, ts, latency] => Some((kind, id, ts, Some(latency))),
        _ => None,
    };
    let record = parsed.and_then(|(kind, id, ts, latency)| {
        let number = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<i64>().ok();
        Some(Record {
            kind: Kind::from_field(kind)?,
            id: std::str::from_utf8(id)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()))?
                .to_owned(),
            timestamp_ns: number(ts)?,
            latency_ns: match latency {
                Some(l) => number(l)?,
                None => 0,
            },
            payload: Vec::new(),
        })
    });
    let Some(mut record) = record else {
        return Err(bad_header(header));
    };
    record.payload = raw.split_off(nl.saturating_add(1));
    Ok(record)
}

fn bad_header(line: &[u8]) -> RecordErrorKind {
    let shown: Vec<u8> = line.iter().copied().take(80).collect();
    RecordErrorKind::BadHeader(String::from_utf8_lossy(&shown).into_owned())
}

#[cfg(test)]
mod tests;
