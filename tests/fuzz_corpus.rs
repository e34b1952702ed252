//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) and the crash regressions
//! (`fuzz/regressions/<target>/*`) through the same oracles the cargo-fuzz targets run
//! (`fuzz/oracles.rs`), on the stable toolchain and in the default suite.
//!
//! A regression file is an input that once crashed a target; it must now pass its oracle.

#[path = "../fuzz/oracles.rs"]
mod oracles;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Runs every file of `kind/<target>` through the target's oracle; returns how many ran.
fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut total = 0;
    for (target, oracle) in oracles::TARGETS {
        for file in files(&root.join(target)) {
            let data = std::fs::read(&file).expect("read corpus file");
            let outcome = std::panic::catch_unwind(|| oracle(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} fails its oracle",
                file.display()
            );
            total += 1;
        }
    }
    eprintln!("{kind}: {total} inputs replayed");
    total
}

#[test]
fn corpus_replays() {
    let n = replay("corpus");
    // Every target has seeds (fuzz/seeds.py from the captures, then minimised).
    for (target, _) in oracles::TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        assert!(!files(&dir).is_empty(), "no corpus for {target}");
    }
    assert!(n > 0);
}

#[test]
fn regressions_replay() {
    replay("regressions");
}

/// The oracles themselves can fail: a round trip that lost data or a request aimed elsewhere
/// would be caught (checked on hand-made inputs, so a broken oracle does not pass silently).
#[test]
fn oracles_accept_good_inputs() {
    // HAPROXY-HELLO frame from the spec: type 1, FIN, sid 0, fid 0, three KV items.
    let mut hello = vec![1u8, 0, 0, 0, 1, 0, 0];
    for (k, v) in [
        ("supported-versions", "2.0"),
        ("capabilities", "pipelining"),
    ] {
        hello.push(k.len() as u8);
        hello.extend_from_slice(k.as_bytes());
        hello.push(8);
        hello.push(v.len() as u8);
        hello.extend_from_slice(v.as_bytes());
    }
    hello.push(14);
    hello.extend_from_slice(b"max-frame-size");
    hello.push(3);
    hello.extend_from_slice(&[0xF0, 0x0F]); // varint 255? (240 + 15)
    oracles::frame(&hello);
    oracles::hello(hello.get(7..).unwrap());
    oracles::hdrs_bin(b"\x04host\x01a\x00\x00");
    oracles::hdrs_text(b"Host: a\r\nX: 1\r\n\r\n");
    oracles::request(b"\xffGET\xfe/p?q\xfe1.1\xfeHost: elsewhere.test\r\n\r\n\xfe");
}
