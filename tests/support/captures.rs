//! Reading the real HAProxy ↔ spoa-mirror conversations under `tests/data/captures/*/*.spop`
//! (format: `tests/data/captures/RECORDING.md`).

use super::unhex;
use std::path::{Path, PathBuf};

/// One line of a capture after the header.
#[derive(Debug, Clone)]
pub enum Event {
    /// `C<n> > hex` (HAProxy → agent) or `C<n> < hex` (agent → HAProxy), with the reference
    /// decoder's summary from the `#   t=...` line that follows.
    Frame {
        conn: u32,
        from_haproxy: bool,
        bytes: Vec<u8>,
        summary: String,
    },
    /// `C<n> close >` (HAProxy closed first) or `C<n> close <` (the agent did).
    Close { conn: u32, by_haproxy: bool },
}

/// One `.spop` file.
#[derive(Debug, Clone)]
pub struct Capture {
    /// `haproxy-2.6/get` etc.
    pub name: String,
    /// Header comment lines, `# ` removed.
    pub header: Vec<String>,
    pub events: Vec<Event>,
}

impl Capture {
    /// The agent command line the capture was recorded with.
    pub fn agent_command(&self) -> &str {
        self.header
            .iter()
            .find_map(|l| l.strip_prefix("Agent command: "))
            .unwrap_or_else(|| panic!("{}: no 'Agent command' line", self.name))
    }

    /// Header lines between `---- <section>` and the next `----` marker.
    pub fn section(&self, section: &str) -> Vec<&str> {
        let marker = format!("---- {section}");
        self.header
            .iter()
            .skip_while(|l| l.trim() != marker)
            .skip(1)
            .take_while(|l| !l.trim_start().starts_with("----"))
            .map(|l| l.as_str())
            .collect()
    }
}

/// The captures folder, in the repository.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures")
}

/// Every `*/*.spop` file, sorted by name.
pub fn load_all(dir: &Path) -> Vec<Capture> {
    let mut files = Vec::new();
    for version in std::fs::read_dir(dir).expect("read captures dir") {
        let version = version.expect("dir entry").path();
        if !version.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&version).expect("read version dir") {
            let file = file.expect("dir entry").path();
            if file.extension().is_some_and(|e| e == "spop") {
                files.push(file);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no .spop files under {}", dir.display());
    files.iter().map(|f| parse(dir, f)).collect()
}

fn parse(dir: &Path, file: &Path) -> Capture {
    let text = std::fs::read_to_string(file).expect("read capture");
    let name = file
        .strip_prefix(dir)
        .expect("file under dir")
        .with_extension("")
        .to_string_lossy()
        .into_owned();
    let mut header = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut in_header = true;
    for line in text.lines() {
        if let Some(summary) = line.strip_prefix("#   t=") {
            // The summary of the frame just read: `+S.SSSSSS <summary>`.
            if let Some(Event::Frame { summary: s, .. }) = events.last_mut() {
                if s.is_empty() {
                    *s = summary
                        .split_once(' ')
                        .map(|(_, rest)| rest)
                        .unwrap_or("")
                        .to_string();
                }
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if in_header {
                header.push(comment.strip_prefix(' ').unwrap_or(comment).to_string());
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        in_header = false;
        events.push(parse_event(&name, line));
    }
    Capture {
        name,
        header,
        events,
    }
}

/// `C<n> > hex`, `C<n> < hex`, `C<n> close >`, `C<n> close <`.
fn parse_event(name: &str, line: &str) -> Event {
    let bad = || -> ! { panic!("{name}: unparsable line {line:?}") };
    let mut parts = line.split(' ');
    let conn: u32 = parts
        .next()
        .and_then(|c| c.strip_prefix('C'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| bad());
    match (parts.next(), parts.next(), parts.next()) {
        (Some("close"), Some(dir), None) => Event::Close {
            conn,
            by_haproxy: dir == ">",
        },
        (Some(dir @ (">" | "<")), Some(hex), None) => Event::Frame {
            conn,
            from_haproxy: dir == ">",
            bytes: unhex(hex),
            summary: String::new(),
        },
        _ => bad(),
    }
}
