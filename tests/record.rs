//! Record and replay end to end: the real agent records what it mirrors (behind a real HAProxy
//! 2.6, 2.8 and 3.x), `spoa-mirror-replay` plays the files to another recording sink, and the
//! requests arrive as the mirror got them, in order. Hand-written GoReplay files replay too.
//! Rotation, the disk budget, an unwritable directory and a full disk (a small tmpfs; root
//! only) leave mirroring untouched.
//!
//! Every loop and wait is bounded in count and time.

mod common;

use common::agent::AgentProcess;
use common::client::HttpConn;
use common::haproxy::{Haproxy, HaproxyBin, MirrorSetup};
use common::sink::{Recorded, Sink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const REPLAY_BIN: &str = env!("CARGO_BIN_EXE_spoa-mirror-replay");
const WAIT: Duration = Duration::from_secs(20);

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

/// Method, target, version, headers and body.
type Essence = (String, String, String, common::http::Headers, Vec<u8>);

/// Method, target, version, headers (names lowercased, hop-by-hop ones aside) and body.
fn essence(r: &Recorded) -> Essence {
    let headers = r
        .headers
        .iter()
        .map(|(n, v)| (n.to_lowercase(), v.clone()))
        .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
        .collect();
    (
        r.method.clone(),
        r.target.clone(),
        r.version.clone(),
        headers,
        r.body.clone(),
    )
}

/// Files of `dir` (names sorted).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs the replay tool; its exit code and output.
fn replay(args: &[&str]) -> (i32, String) {
    let out = Command::new(REPLAY_BIN)
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run spoa-mirror-replay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn haproxy_for(bin: &HaproxyBin, primary: &Sink, agent: &AgentProcess) -> Haproxy {
    let setup = MirrorSetup::new(bin, primary.addr(), agent.addr());
    Haproxy::start(bin, &setup).await
}

/// The requests of the recorded run: methods, text, CRLF and binary bodies, a body with the
/// separator's emoji inside a line.
fn run_requests() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\r\n\r\n\n\0\xff");
    vec![
        ("GET", "/a?x=1".into(), Vec::new()),
        ("POST", "/form".into(), b"a=1&b=2".to_vec()),
        ("PUT", "/bin".into(), binary),
        (
            "POST",
            "/crlf".into(),
            b"line1\r\n\r\nline2\n\nend\r\n".to_vec(),
        ),
        (
            "PATCH",
            "/emoji".into(),
            "x \u{1F435}\u{1F648}\u{1F649} y\n".as_bytes().to_vec(),
        ),
        ("DELETE", "/item/7".into(), Vec::new()),
        ("OPTIONS", "/opt".into(), Vec::new()),
        ("GET", "/last".into(), Vec::new()),
    ]
}

/// What the mirror received, replayed from the record files, arrives the same, in order.
async fn record_then_replay(bin: HaproxyBin) {
    let (primary, mirror, replayed) = (
        Sink::start("primary").await,
        Sink::start("mirror").await,
        Sink::start("replayed").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let agent = AgentProcess::builder()
        .mirror(&mirror.url())
        .args(["--record-dir", rec.to_str().unwrap()])
        .start()
        .await;
    let hap = haproxy_for(&bin, &primary, &agent).await;
    let reqs = run_requests();
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    for (i, (method, path, body)) in reqs.iter().enumerate() {
        let seq = i.to_string();
        let r = conn
            .request(
                method,
                path,
                &[("X-Seq", &seq), ("X-Kind", "record-test")],
                body,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let n = reqs.len();
    let got = mirror.wait_for(n, WAIT).await;
    assert_eq!(got.len(), n);
    let (written, ok) = agent
        .wait_metric("mirror_record_written_total", |v| v >= n as f64, WAIT)
        .await;
    assert!(ok, "records written: {written}");
    let rec_str = rec.to_str().unwrap();
    let (code, out) = replay(&[
        rec_str,
        "--url",
        &replayed.url(),
        "--speed",
        "100x",
        "--concurrency",
        "1",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("sent {n} requests")), "{out}");
    let back = replayed.wait_for(n, WAIT).await;
    assert_eq!(back.len(), n);
    // In the recorded order (the client's), each as the mirror got it.
    for (i, r) in back.iter().enumerate() {
        assert_eq!(r.header("x-seq"), Some(i.to_string()), "replay order");
        let m = got
            .iter()
            .find(|m| m.header("x-seq") == Some(i.to_string()))
            .unwrap();
        assert_eq!(essence(r), essence(m), "request {i}");
    }
    assert_eq!(back[2].body, reqs[2].2, "binary body");
    assert_eq!(agent.metric("mirror_record_errors_total").await, 0.0);
    assert_eq!(agent.metric("mirror_record_dropped_total").await, 0.0);
}
per_haproxy!(record_then_replay);

/// A GoReplay file as its documentation describes it, written by hand: plain and gzipped, in a
/// directory, with CRLFs and binary bytes inside bodies and a bad record in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_goreplay_files() {
    let sink = Sink::start("goreplay").await;
    let dir = tempfile::tempdir().unwrap();
    let sep = "\n\u{1F435}\u{1F648}\u{1F649}\n";
    let mut plain = Vec::new();
    plain.extend_from_slice(b"1 d7123dasd913jfd21312dasdhas31 1700000000000000000\nGET /one HTTP/1.1\r\nHost: www.w3.org\r\n\r\n");
    plain.extend_from_slice(sep.as_bytes());
    plain.extend_from_slice(b"1 b2 1700000000010000000 0\nPOST /upload HTTP/1.1\r\nContent-Length: 14\r\nHost: www.w3.org\r\n\r\na=1\r\n\r\nb=2\r\n\0\xfe");
    plain.extend_from_slice(sep.as_bytes());
    plain.extend_from_slice(b"this is not a header\nGET /bad HTTP/1.1\r\n\r\n");
    plain.extend_from_slice(sep.as_bytes());
    plain.extend_from_slice(
        b"2 b2 1700000000020000000 300\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    plain.extend_from_slice(sep.as_bytes());
    std::fs::write(dir.path().join("a-1.gor"), &plain).unwrap();
    let mut gz = Vec::new();
    gz.extend_from_slice(b"1 c3 1700000000030000000 0\nPUT /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n\r\n\xff\x00\r\n0\r\n\r\n");
    gz.extend_from_slice(sep.as_bytes());
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &gz).unwrap();
    std::fs::write(dir.path().join("a-2.gor.gz"), enc.finish().unwrap()).unwrap();

    let (code, out) = replay(&[
        dir.path().to_str().unwrap(),
        "--url",
        &sink.url(),
        "--speed",
        "10x",
        "--concurrency",
        "1",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sent 3 requests"), "{out}");
    assert!(out.contains("1 bad records"), "{out}");
    assert!(out.contains("1 responses"), "{out}");
    assert!(
        out.contains("a-1.gor:"),
        "the bad record is reported with its file: {out}"
    );
    let got = sink.wait_for(3, WAIT).await;
    assert_eq!(got[0].target, "/one");
    assert_eq!(got[0].header("host").as_deref(), Some("www.w3.org"));
    assert_eq!(got[1].body, b"a=1\r\n\r\nb=2\r\n\0\xfe");
    assert_eq!(got[1].method, "POST");
    assert_eq!(got[2].target, "/chunked");
    assert_eq!(got[2].body, b"\r\n\xff\x00");
    assert_eq!(got[2].header("content-length").as_deref(), Some("4"));
}

/// Filters and Host rules of the replay tool, as a target's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_filters_and_host() {
    let sink = Sink::start("filtered").await;
    let dir = tempfile::tempdir().unwrap();
    let sep = "\n\u{1F435}\u{1F648}\u{1F649}\n";
    let mut f = Vec::new();
    for (i, (m, p)) in [
        ("GET", "/keep/1"),
        ("POST", "/keep/2"),
        ("GET", "/skip/3"),
        ("GET", "/keep/4"),
    ]
    .iter()
    .enumerate()
    {
        f.extend_from_slice(
            format!("1 r{i} {i} 0\n{m} {p} HTTP/1.1\r\nHost: prod.example\r\nX-Debug: 1\r\n\r\n")
                .as_bytes(),
        );
        f.extend_from_slice(sep.as_bytes());
    }
    let file = dir.path().join("f.gor");
    std::fs::write(&file, &f).unwrap();
    let (code, out) = replay(&[
        file.to_str().unwrap(),
        "--url",
        &sink.url(),
        "--rate",
        "1000",
        "--concurrency",
        "1",
        "--method",
        "GET",
        "--path-exclude",
        "^/skip",
        "--host",
        "target",
        "--remove-header",
        "x-debug",
        "--set-header",
        "X-Replay: yes",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 filtered out"), "{out}");
    let got = sink.wait_for(2, WAIT).await;
    let targets: Vec<_> = got.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/keep/1", "/keep/4"]);
    for r in &got {
        assert_eq!(r.header_all("host"), [sink.addr().to_string()]);
        assert_eq!(r.header("x-debug"), None);
        assert_eq!(r.header("x-replay").as_deref(), Some("yes"));
    }
    // Nobody listening: every request fails, the exit code says so.
    let port = common::free_port();
    let (code, out) = replay(&[
        file.to_str().unwrap(),
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--rate",
        "1000",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("connect 4"), "{out}");
}

/// Small files and budget: files rotate by size, the oldest are deleted, the directory stays
/// within the budget, and the mirror gets every request.
async fn rotation_and_budget(bin: HaproxyBin) {
    let (primary, mirror) = (Sink::start("primary").await, Sink::start("mirror").await);
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let agent = AgentProcess::builder()
        .mirror(&mirror.url())
        .args([
            "--record-dir",
            rec.to_str().unwrap(),
            "--record-file-size",
            "4K",
            "--record-disk-budget",
            "12K",
        ])
        .start()
        .await;
    let hap = haproxy_for(&bin, &primary, &agent).await;
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    let body = vec![b'b'; 1000];
    let n = 40;
    for i in 0..n {
        let r = conn
            .request("POST", &format!("/r/{i}"), &[], &body)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        // One record per batch: wait until it is written before the next.
        let (_, ok) = agent
            .wait_metric("mirror_record_written_total", |v| v >= (i + 1) as f64, WAIT)
            .await;
        assert!(ok);
    }
    assert_eq!(mirror.wait_for(n, WAIT).await.len(), n);
    let rotated = agent.metric("mirror_record_files_rotated_total").await;
    let deleted = agent.metric("mirror_record_files_deleted_total").await;
    assert!(rotated >= 8.0, "rotated {rotated}");
    assert!(deleted >= 1.0, "deleted {deleted}");
    let on_disk: u64 = files(&rec)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(on_disk <= 12 * 1024 + 4 * 1024, "{on_disk} bytes on disk");
    for f in files(&rec) {
        assert!(std::fs::metadata(&f).unwrap().len() <= 4 * 1024, "{f:?}");
    }
    // What is left replays: the newest requests, none broken.
    let sink = Sink::start("rest").await;
    let (code, out) = replay(&[rec.to_str().unwrap(), "--url", &sink.url(), "--rate", "500"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 bad records"), "{out}");
    let kept = files(&rec).len();
    assert!(sink.count() >= kept, "{out}");
    assert_eq!(agent.metric("mirror_record_errors_total").await, 0.0);
}
per_haproxy!(rotation_and_budget);

/// A file older than `--record-rotate` is closed (gzip trailer written) and the next record
/// starts a new one.
async fn rotation_by_time_with_gzip(bin: HaproxyBin) {
    let mirror = Sink::start("mirror").await;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let agent = AgentProcess::builder()
        .mirror(&mirror.url())
        .args([
            "--record-dir",
            rec.to_str().unwrap(),
            "--record-rotate",
            "1s",
            "--record-gzip",
        ])
        .start()
        .await;
    let primary = Sink::start("primary").await;
    let hap = haproxy_for(&bin, &primary, &agent).await;
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    assert_eq!(conn.get("/first").await.unwrap().status, 200);
    // The writer closes the file once it is a second old: an event, awaited.
    let (_, ok) = agent
        .wait_metric("mirror_record_files_rotated_total", |v| v >= 1.0, WAIT)
        .await;
    assert!(ok, "no rotation by time");
    assert_eq!(conn.get("/second").await.unwrap().status, 200);
    let (_, ok) = agent
        .wait_metric("mirror_record_written_total", |v| v >= 2.0, WAIT)
        .await;
    assert!(ok);
    // Stop the agent: the open gzip file gets its trailer.
    drop(hap);
    drop(agent);
    let names: Vec<String> = files(&rec)
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 2, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with(".gor.gz")), "{names:?}");
    let sink = Sink::start("replayed").await;
    // One at a time: with free slots, two requests 10 ms apart may arrive in either order.
    let (code, out) = replay(&[
        rec.to_str().unwrap(),
        "--url",
        &sink.url(),
        "--rate",
        "100",
        "--concurrency",
        "1",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 bad records"), "{out}");
    let got = sink.wait_for(2, WAIT).await;
    let targets: Vec<_> = got.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/first", "/second"]);
}
per_haproxy!(rotation_by_time_with_gzip);

/// A record directory that cannot be created: a clear error at startup, exit code 1.
#[tokio::test]
async fn unwritable_directory_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    // The parent is a regular file: no one, root included, can make a directory under it.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let rec = file.join("rec");
    let out = Command::new(common::agent::AGENT_BIN)
        .args([
            "-u",
            "http://127.0.0.1:9/",
            "-p",
            &common::free_port().to_string(),
        ])
        .args(["-a", "127.0.0.1", "--record-dir", rec.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("record directory") && text.contains("plain-file/rec"),
        "{text}"
    );
}

/// Root only: a tmpfs made by the test.
fn mount_tmpfs(at: &Path, size: &str) {
    std::fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount tmpfs at {at:?}");
}

/// Unmounts on drop (lazily: the agent may still hold a file).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full file system: at startup a clear error; at run time (the disk fills, then turns
/// read-only) records are lost and counted while every request is still mirrored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(is_root), ignore = "needs root to mount a tmpfs")]
#[cfg_attr(not(have_haproxy26), ignore = "HAProxy 2.6 not found (HAPROXY26)")]
async fn full_disk() {
    let dir = tempfile::tempdir().unwrap();
    // Startup: a 512 KiB file system is below the 1 MiB the recorder wants free.
    let small = dir.path().join("small");
    mount_tmpfs(&small, "512k");
    let _small = Mounted(small.clone());
    let out = Command::new(common::agent::AGENT_BIN)
        .args([
            "-u",
            "http://127.0.0.1:9/",
            "-p",
            &common::free_port().to_string(),
        ])
        .args(["-a", "127.0.0.1", "--record-dir", small.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(70), "{text}");
    assert!(text.contains("file system is full"), "{text}");

    // Run time: 2 MiB, then filled up by the test.
    let fs = dir.path().join("fs");
    mount_tmpfs(&fs, "2m");
    let _fs = Mounted(fs.clone());
    let (primary, mirror) = (Sink::start("primary").await, Sink::start("mirror").await);
    let agent = AgentProcess::builder()
        .mirror(&mirror.url())
        .args([
            "--record-dir",
            fs.to_str().unwrap(),
            "--record-file-size",
            "64K",
            "--record-disk-budget",
            "1M",
        ])
        .start()
        .await;
    let bin = common::haproxy::haproxy_26();
    let hap = haproxy_for(&bin, &primary, &agent).await;
    let mut conn = HttpConn::connect(hap.addr()).await.unwrap();
    assert_eq!(conn.get("/before").await.unwrap().status, 200);
    let (_, ok) = agent
        .wait_metric("mirror_record_written_total", |v| v >= 1.0, WAIT)
        .await;
    assert!(ok);
    // Fill the file system (a filler file the budget does not know about).
    let filler = fs.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..64 {
        if std::io::Write::write_all(&mut f, &chunk).is_err() {
            break;
        }
    }
    drop(f);
    let body = vec![b'z'; 4000];
    let n = 20;
    for i in 0..n {
        let r = conn
            .request("POST", &format!("/full/{i}"), &[], &body)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let (errors, ok) = agent
        .wait_metric("mirror_record_errors_total", |v| v >= 1.0, WAIT)
        .await;
    assert!(ok, "no record error counted on a full disk ({errors})");
    // Mirroring is untouched: every request reached the mirror.
    assert_eq!(mirror.wait_for(n + 1, WAIT).await.len(), n + 1);
    let log = agent.wait_output("cannot write records", WAIT).await;
    assert!(log.is_some_and(|l| l.contains("mirroring goes on")));
    // Read-only now (space freed, but no writes allowed): still counted, still mirrored.
    std::fs::remove_file(&filler).unwrap();
    let ok = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let before = agent.metric("mirror_record_errors_total").await;
    for i in 0..5 {
        let r = conn.get(&format!("/ro/{i}")).await.unwrap();
        assert_eq!(r.status, 200);
    }
    let (after, ok) = agent
        .wait_metric("mirror_record_errors_total", |v| v > before, WAIT)
        .await;
    assert!(ok, "errors {before} -> {after}");
    assert_eq!(mirror.wait_for(n + 6, WAIT).await.len(), n + 6);
    // The mirror has the request before the agent has read its answer and counted it sent.
    let (sent, ok) = agent
        .wait_metric("mirror_sent_total", |v| v >= (n + 6) as f64, WAIT)
        .await;
    assert!(ok && sent == (n + 6) as f64, "mirror_sent_total {sent}");
}
