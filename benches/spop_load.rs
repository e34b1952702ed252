//! End-to-end load tool: plays HAProxy's part over SPOP against the real `spoa-mirror` process,
//! which mirrors to a counting HTTP sink in this process.
//!
//! ```text
//! cargo bench --bench spop_load -- [--connections 8] [--depth 16] [--duration 10s]
//!                                  [--style 2|3] [--agent PATH] [--rate N] [--sink-delay D]
//!                                  [--targets N] [--rules] [-- AGENT-ARGS...]
//! ```
//!
//! Reports mirrored requests/s, ACK latency p50/p99/p999 (NOTIFY written → ACK read, as HAProxy
//! sees it), agent CPU-seconds per 1,000 requests, the agent's peak RSS, TCP connections the
//! agent opened to the sink, and losses (NOTIFYs ACKed but never received by the sink).
//!
//! The sink runs on its own thread (its own single-threaded runtime), so that at full speed the
//! load generator and the sink do not take turns on one thread. `--sink-delay 50ms` makes every
//! sink response wait (a slow mirror); an agent argument `-u URL` replaces the sink (for example
//! `-- -u http://127.0.0.1:1/`, a dead mirror); `-- --no-mirror` starts the agent without `-u`.
//!
//! `--style 2` numbers streams like HAProxy ≤ 3.0 (one global counter, frame-id 1, capabilities
//! "pipelining,async"); `--style 3` like 3.1+ (odd stream-ids per connection, "pipelining").
//! `--rate N` paces the whole run to N NOTIFY/s (0 = as fast as the depth allows), to measure
//! latency below capacity.
//!
//! `--targets N` mirrors every request to N targets, all on the sink: `-u` plus N-1 targets of
//! a `--config` file (the sink then expects N requests per NOTIFY). `--rules` gives each
//! file target a rule set (sticky 100 % sample by a header, redaction of Authorization and
//! Cookie, Host set to the target, X-Forwarded-For), to measure what the policy costs.
//!
//! `-- --record-dir DIR [--record-gzip ...]` makes the agent record every request as well:
//! the report adds the records written, MB/s and drops (the agent's CPU then includes the
//! recorder's thread).

mod support;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use spoa_mirror::spop::{
    Arg, Capabilities, Frame, FrameDecoder, FrameHeader, FrameType, HaproxyHello, Message, Payload,
    TypedData,
};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::hdrs_bin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
struct Options {
    connections: usize,
    depth: usize,
    duration: Duration,
    style: u8,
    rate: u64,
    sink_delay: Duration,
    agent: String,
    agent_args: Vec<String>,
    targets: u64,
    rules: bool,
}

fn parse_options() -> Options {
    let mut o = Options {
        connections: 8,
        depth: 16,
        duration: Duration::from_secs(10),
        style: 3,
        rate: 0,
        sink_delay: Duration::ZERO,
        agent: env!("CARGO_BIN_EXE_spoa-mirror").to_string(),
        agent_args: Vec::new(),
        targets: 1,
        rules: false,
    };
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this file without it, and
    // then a one-second smoke run is enough to show the tool and the agent work.
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching {
        o.connections = 2;
        o.depth = 4;
        o.duration = Duration::from_secs(1);
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--connections" => o.connections = value("--connections").parse().expect("number"),
            "--depth" => o.depth = value("--depth").parse().expect("number"),
            "--duration" => {
                o.duration = humantime::parse_duration(&value("--duration")).expect("duration")
            }
            "--style" => o.style = value("--style").parse().expect("2 or 3"),
            "--rate" => o.rate = value("--rate").parse().expect("number"),
            "--agent" => o.agent = value("--agent"),
            "--targets" => o.targets = value("--targets").parse().expect("number"),
            "--rules" => o.rules = true,
            "--sink-delay" => {
                o.sink_delay = humantime::parse_duration(&value("--sink-delay")).expect("duration")
            }
            "--help" | "-h" => {
                println!("see the header of benches/spop_load.rs");
                std::process::exit(0);
            }
            "--" => o.agent_args = args.by_ref().collect(),
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {}
        }
    }
    assert!(
        o.connections >= 1 && o.connections <= 1000,
        "--connections 1..1000"
    );
    assert!(o.depth >= 1 && o.depth <= 1000, "--depth 1..1000");
    assert!(o.targets >= 1 && o.targets <= 16, "--targets 1..16");
    assert!(
        o.duration <= Duration::from_secs(600),
        "--duration at most 10m"
    );
    o
}

/// Counts what the agent mirrors.
#[derive(Default)]
struct Sink {
    requests: AtomicU64,
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// Starts the sink on a thread of its own; returns its address.
fn start_sink(sink: Arc<Sink>, delay: Duration) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
    listener.set_nonblocking(true).expect("nonblocking sink");
    let addr = listener.local_addr().expect("sink address");
    std::thread::Builder::new()
        .name("sink".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("sink runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("sink listener");
                run_sink(listener, sink, delay).await
            })
        })
        .expect("sink thread");
    addr
}

async fn run_sink(listener: TcpListener, sink: Arc<Sink>, delay: Duration) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        sink.connections.fetch_add(1, Ordering::Relaxed);
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sink = sink.clone();
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    sink.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    sink.requests.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The NOTIFY payloads of the mix: 70 % browser GET, 20 % 1 KiB JSON POST, 10 % 4 KiB POST.
fn message_mix() -> Vec<Message> {
    let browser = [
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://shop.example.com/search?q=mirror"),
        ("cookie", "session=4f9a8c2e1b7d6a5f; theme=dark"),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("priority", "u=0, i"),
    ];
    let s = |v: &'static str| TypedData::String(Bytes::from_static(v.as_bytes()));
    let arg = |n: &'static str, value: TypedData| Arg {
        name: Bytes::from_static(n.as_bytes()),
        value,
    };
    let msg = |method: &'static str, path: &'static str, headers: Bytes, body: Bytes| Message {
        name: Bytes::from_static(b"mirror"),
        args: vec![
            arg("arg_method", s(method)),
            arg("arg_path", s(path)),
            arg("arg_ver", s("1.1")),
            arg("arg_hdrs", TypedData::Binary(headers)),
            arg("arg_body", TypedData::Binary(body)),
        ],
    };
    let get = msg(
        "GET",
        "/product/42?color=blue",
        hdrs_bin(&browser),
        Bytes::new(),
    );
    let post = |len: &'static str, n: usize| {
        let h = [
            ("host", "shop.example.com"),
            ("user-agent", "client/1.0"),
            ("content-type", "application/json"),
            ("content-length", len),
        ];
        msg(
            "POST",
            "/api/orders",
            hdrs_bin(&h),
            Bytes::from(vec![b'x'; n]),
        )
    };
    let mut mix = vec![get; 7];
    mix.extend([post("1024", 1024), post("1024", 1024), post("4096", 4096)]);
    mix
}

fn encode(frame: Frame) -> Bytes {
    let mut b = BytesMut::new();
    frame.encode(&mut b);
    b.freeze()
}

/// Stream ids shared by all connections in `--style 2` (HAProxy's global uniq_id).
static GLOBAL_SID: AtomicU64 = AtomicU64::new(0);

struct ConnResult {
    latencies_us: Vec<u32>,
    acked: u64,
}

async fn run_connection(
    addr: SocketAddr,
    o: Options,
    payloads: Arc<Vec<Message>>,
    stop: Instant,
    pace: Option<Duration>,
) -> ConnResult {
    let mut stream = TcpStream::connect(addr).await.expect("connect to agent");
    stream.set_nodelay(true).ok();
    let caps = Capabilities {
        pipelining: true,
        r#async: o.style == 2,
        fragmentation: false,
    };
    let hello = HaproxyHello {
        max_frame_size: 16380,
        capabilities: caps,
        engine_id: Some(Bytes::from_static(b"0b5e9c3e-load-4a1b-9c1e-5a0c0ffee000")),
        healthcheck: false,
    };
    stream
        .write_all(&encode(Frame {
            header: FrameHeader::fin(FrameType::HaproxyHello, 0, 0),
            payload: Payload::KvList(hello.to_kv()),
        }))
        .await
        .expect("send HELLO");
    let decoder = FrameDecoder::new(1 << 20);
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    // AGENT-HELLO
    loop {
        if decoder.decode(&mut rbuf).expect("valid frame").is_some() {
            break;
        }
        if stream.read_buf(&mut rbuf).await.expect("read") == 0 {
            panic!("agent closed during handshake");
        }
    }
    let (mut rd, mut wr) = stream.into_split();
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut in_flight: std::collections::HashMap<u64, Instant> = std::collections::HashMap::new();
    let mut local_sid: u64 = 1;
    let mut n: usize = 0;
    let mut acked = 0u64;
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        let sending = now < stop;
        // Top the pipeline up to the depth (paced when --rate is given).
        if sending {
            while in_flight.len() < o.depth && pace.map_or(true, |_| Instant::now() >= next_send) {
                let sid = if o.style == 2 {
                    GLOBAL_SID.fetch_add(1, Ordering::Relaxed)
                } else {
                    let s = local_sid;
                    local_sid += 2;
                    s
                };
                let m = payloads[n % payloads.len()].clone();
                n += 1;
                Frame {
                    header: FrameHeader::fin(FrameType::Notify, sid, 1),
                    payload: Payload::Messages(vec![m]),
                }
                .encode(&mut wbuf);
                in_flight.insert(sid, Instant::now());
                if let Some(p) = pace {
                    next_send += p;
                }
            }
            if !wbuf.is_empty() {
                wr.write_all(&wbuf).await.expect("send NOTIFY");
                wbuf.clear();
            }
        }
        if in_flight.is_empty() {
            if !sending {
                break;
            }
            tokio::time::sleep_until(next_send.into()).await;
            continue;
        }
        let read = match pace {
            Some(_) if sending && in_flight.len() < o.depth => {
                match tokio::time::timeout_at(next_send.into(), rd.read_buf(&mut rbuf)).await {
                    Ok(r) => r,
                    Err(_) => continue,
                }
            }
            _ => {
                match tokio::time::timeout(Duration::from_secs(10), rd.read_buf(&mut rbuf)).await {
                    Ok(r) => r,
                    Err(_) => panic!("no ACK for 10 s ({} outstanding)", in_flight.len()),
                }
            }
        };
        if read.expect("read ACK") == 0 {
            panic!("agent closed the connection");
        }
        while let Some(frame) = decoder.decode(&mut rbuf).expect("valid frame") {
            let (h, _) = Frame::decode_header(frame).expect("header");
            assert_eq!(
                h.frame_type,
                FrameType::Ack,
                "agent sent {:?}",
                h.frame_type
            );
            if let Some(sent) = in_flight.remove(&h.stream_id) {
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                acked += 1;
            }
        }
        let _ = rbuf.remaining();
    }
    ConnResult {
        latencies_us: latencies,
        acked,
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
    }
}

/// The agent's Prometheus text.
async fn scrape(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One sample's value; 0 when absent.
/// The sum of every series of `name` (one per target when there are several).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .map(|v| v as u64)
        .sum()
}

/// The upper bound (µs) of the bucket of a Prometheus histogram that holds quantile `q`.
fn histogram_quantile_us(text: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    // Cumulative counts in bound order.
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = (total * q).ceil().max(1.0);
    buckets
        .iter()
        .find(|(_, c)| *c >= rank)
        .map(|(le, _)| le * 1e6)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn main() {
    let o = parse_options();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let sink = Arc::new(Sink::default());
        let sink_addr = start_sink(sink.clone(), o.sink_delay);

        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let metrics_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = Command::new(&o.agent);
        cmd.args(["--metrics-address", &format!("127.0.0.1:{metrics_port}")]);
        cmd.args([
            "-r0",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "pipelining",
        ]);
        // Mirrored to our sink unless the agent arguments say otherwise.
        let no_mirror = o.agent_args.iter().any(|a| a == "--no-mirror");
        let own_url = o.agent_args.iter().any(|a| a == "-u" || a.starts_with("--mirror-url"));
        let to_sink = !no_mirror && !own_url;
        if to_sink {
            cmd.args(["-u", &format!("http://{sink_addr}/")]);
        }
        let config_dir = tempfile::tempdir().expect("temp dir");
        if to_sink && (o.targets > 1 || o.rules) {
            let rules = if o.rules {
                "sample = { percent = 100, by = \"header:user-agent\" }\n\
                 redact-headers = [\"authorization\", \"cookie\"]\n\
                 host = \"target\"\nx-forwarded-for = true\n"
            } else {
                ""
            };
            let file: String = (2..=o.targets.max(2))
                .map(|i| format!("[[target]]\nname = \"t{i}\"\nurl = \"http://{sink_addr}/\"\n{rules}"))
                .collect();
            let path = config_dir.path().join("targets.toml");
            std::fs::write(&path, file).expect("write targets.toml");
            cmd.arg("--config").arg(&path);
        }
        let per_notify = if to_sink { o.targets.max(1 + u64::from(o.rules)) } else { 0 };
        cmd.args(o.agent_args.iter().filter(|a| *a != "--no-mirror"));
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        let agent = Agent(cmd.spawn().expect("start the agent"));
        let pid = agent.0.id();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let ready = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < ready, "agent did not listen within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let payloads = Arc::new(message_mix());
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        let stop = t0 + o.duration;
        let pace =
            (o.rate > 0).then(|| Duration::from_secs_f64(o.connections as f64 / o.rate as f64));
        let tasks: Vec<_> = (0..o.connections)
            .map(|_| {
                tokio::spawn(run_connection(
                    addr,
                    o.clone(),
                    payloads.clone(),
                    stop,
                    pace,
                ))
            })
            .collect();
        let mut latencies = Vec::new();
        let mut acked = 0;
        for t in tasks {
            let r = t.await.expect("connection task");
            latencies.extend(r.latencies_us);
            acked += r.acked;
        }
        let elapsed = t0.elapsed();
        // Let the mirror finish what it accepted (bounded wait).
        let mirrored_expected = to_sink;
        let drain = Instant::now() + Duration::from_secs(15);
        while mirrored_expected
            && sink.requests.load(Ordering::Relaxed) < acked * per_notify
            && Instant::now() < drain
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cpu = cpu_seconds(pid) - cpu0;
        let hwm_kb = status_kb(pid, "VmHWM:");
        let mirrored = sink.requests.load(Ordering::Relaxed);
        latencies.sort_unstable();
        println!(
            "spop_load: style {} connections {} depth {} duration {:.1}s rate {} mirror {} targets {}{}",
            o.style,
            o.connections,
            o.depth,
            elapsed.as_secs_f64(),
            if o.rate == 0 {
                "max".to_string()
            } else {
                o.rate.to_string()
            },
            if to_sink {
                format!("sink (delay {:?})", o.sink_delay)
            } else if no_mirror {
                "none (no -u)".to_string()
            } else {
                "from agent args".to_string()
            },
            per_notify,
            if o.rules { " (with rules)" } else { "" },
        );
        println!(
            "  NOTIFY acked        {acked} ({:.0}/s)",
            acked as f64 / elapsed.as_secs_f64()
        );
        println!(
            "  mirrored            {mirrored} ({:.0}/s)",
            mirrored as f64 / elapsed.as_secs_f64()
        );
        println!(
            "  lost                {}",
            (acked * per_notify).saturating_sub(mirrored) * u64::from(mirrored_expected)
        );
        println!(
            "  ACK latency us      p50 {} p99 {} p999 {} max {}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 0.999),
            latencies.last().copied().unwrap_or(0)
        );
        println!(
            "  agent CPU           {:.3} s = {:.1} us/request ({:.3} s per 1000)",
            cpu,
            cpu * 1e6 / acked.max(1) as f64,
            cpu * 1000.0 / acked.max(1) as f64
        );
        println!("  agent peak RSS      {:.1} MB", hwm_kb as f64 / 1024.0);
        println!(
            "  sink connections    {}",
            sink.connections.load(Ordering::Relaxed)
        );
        let metrics = scrape(metrics_port).await;
        let m = |name: &str| metric(&metrics, name);
        println!(
            "  agent counters      dropped queue-full {} memory {}, failed connect {} timeout {} other {}, skipped {}",
            m("spoa_mirror_mirror_dropped_queue_full_total"),
            m("spoa_mirror_mirror_dropped_memory_total"),
            m("spoa_mirror_mirror_failed_connect_total"),
            m("spoa_mirror_mirror_failed_timeout_total"),
            m("spoa_mirror_mirror_failed_other_total"),
            m("spoa_mirror_mirror_skipped_invalid_total") + m("spoa_mirror_mirror_skipped_truncated_total"),
        );
        println!(
            "  agent counters      sent {}, connections opened {}",
            m("spoa_mirror_mirror_sent_total"),
            m("spoa_mirror_mirror_connections_total"),
        );
        if o.agent_args.iter().any(|a| a == "--record-dir") {
            // Recording (`-- --record-dir DIR`): records and bytes the writer got on disk.
            let bytes = m("spoa_mirror_mirror_record_bytes_total") as f64;
            let written = m("spoa_mirror_mirror_record_written_total");
            println!(
                "  recording           written {} ({:.2} MB/s, {:.0} B/record), dropped {}, errors {}, rotated {}, deleted {}",
                written,
                bytes / 1e6 / elapsed.as_secs_f64(),
                bytes / written.max(1) as f64,
                m("spoa_mirror_mirror_record_dropped_total"),
                m("spoa_mirror_mirror_record_errors_total"),
                m("spoa_mirror_mirror_record_files_rotated_total"),
                m("spoa_mirror_mirror_record_files_deleted_total"),
            );
        }
        // The agent's own view: NOTIFY decoded → ACK handed to the socket (bucket bounds).
        let q = |p: f64| {
            histogram_quantile_us(&metrics, "spoa_mirror_ack_latency_seconds", p)
                .map_or("-".to_string(), |us| format!("<={us:.0}"))
        };
        println!(
            "  agent ACK latency   p50 {} p99 {} p999 {} us (agent histogram, decode to write)",
            q(0.5),
            q(0.99),
            q(0.999)
        );
        drop(agent);
    });
}
