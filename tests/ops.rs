//! The agent as an operator runs it: the built binary as a process. Daemon mode with a
//! pidfile, the log file modes, `-r` expiry, graceful stop with an in-flight mirror request,
//! a second signal, startup failures (exit 70), the Prometheus endpoint, the `-i` monitor line,
//! and HAProxy's `program` section across a reload.

mod common;
mod support;

use common::agent::{Agent, AGENT_BIN};
use common::haproxy::{Haproxy, HaproxyBin, MirrorSetup};
use common::sink::{Behavior, Sink};
use common::{free_port, local, poll_until, port_is_listening, process_listens_on, send_signal};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::agent::Client;
use support::{hex, wire};

const EXIT_WAIT: Duration = Duration::from_secs(15);

/// A HELLO-ed SPOP connection to `agent` that got one NOTIFY ACKed.
async fn notify_once(addr: std::net::SocketAddr, path: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.send(&wire::haproxy_hello(16380, "")).await;
    let hello = c.frame().await.expect("AGENT-HELLO");
    assert_eq!(hello.get(4), Some(&wire::T_AGENT_HELLO), "{}", hex(&hello));
    c.send(&wire::notify(1, 1, &wire::mirror_message(path)))
        .await;
    assert_eq!(c.frame_hex().await, hex(&wire::ack(1, 1)));
    c
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test]
async fn daemon_mode_writes_pidfile_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (pidfile, logfile) = (dir.path().join("agent.pid"), dir.path().join("agent.log"));
    let port = free_port();
    let started = Instant::now();
    // The parent returns once the daemon listens, with the daemon's startup status.
    let out = Command::new(AGENT_BIN)
        .args(["-D", "-r0", "-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-F")
        .arg(&pidfile)
        .arg("-l")
        .arg(format!("A:{}", logfile.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pid = read_pid(&pidfile).expect("pidfile holds a pid");
    assert!(pid_alive(pid));
    assert_ne!(u32::try_from(pid).unwrap(), std::process::id());
    // Listening already when the parent returned: no poll needed.
    assert!(
        process_listens_on(pid as u32, port),
        "daemon not listening right after the parent exited"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    notify_once(local(port), "/daemon").await;

    send_signal(pid as u32, libc::SIGTERM);
    let gone = poll_until(EXIT_WAIT, || {
        (!pid_alive(pid) && !pidfile.exists()).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "daemon still running or pidfile left behind"
    );
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        log.contains("stopping (SIGTERM)") && log.contains("stopped"),
        "{log}"
    );
    assert!(log.contains("notify 1, ack 1"), "{log}");
}

#[tokio::test]
async fn port_in_use_exits_70_with_and_without_daemon_and_pidfile() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("p.pid");
    let log = format!("a:{}", dir.path().join("log").display());
    // Without -l the error is a log line on stdout; with -l (and with -D) stderr has it.
    for (extra, stream) in [
        (&[][..], "stdout"),
        (&["-l", &log][..], "stderr"),
        (&["-D"][..], "stderr"),
    ] {
        let out = Command::new(AGENT_BIN)
            .args(["-r0", "-a", "127.0.0.1", "-p", &port])
            .arg("-F")
            .arg(&pidfile)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(if stream == "stdout" {
            &out.stdout
        } else {
            &out.stderr
        });
        assert_eq!(out.status.code(), Some(70), "{extra:?}: {out:?}");
        assert!(
            text.contains("cannot listen on 127.0.0.1"),
            "{extra:?}: {out:?}"
        );
        assert!(!pidfile.exists(), "{extra:?}: pidfile left behind");
    }
}

#[tokio::test]
async fn second_instance_with_the_same_pidfile_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("a.pid");
    let first = Agent::builder()
        .arg("-F")
        .arg(pidfile.to_str().unwrap())
        .start()
        .await;
    let out = Command::new(AGENT_BIN)
        .args(["-r0", "-a", "127.0.0.1", "-p", &free_port().to_string()])
        .arg("-F")
        .arg(&pidfile)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked by another running instance"));
    // The running instance's pidfile is untouched.
    assert_eq!(read_pid(&pidfile), Some(first.pid() as i32));
}

#[tokio::test]
async fn log_file_modes_and_runtime_expiry() {
    let dir = tempfile::tempdir().unwrap();
    // (mode prefix, old content kept)
    for (mode, kept) in [
        ("a:", true),
        ("w:", false),
        ("A:", true),
        ("W:", false),
        ("", true),
    ] {
        let path = dir
            .path()
            .join(format!("log-{}", mode.trim_end_matches(':')));
        std::fs::write(&path, "previous run\n").unwrap();
        let started = Instant::now();
        let out = Command::new(AGENT_BIN)
            .args([
                "-r",
                "300ms",
                "-a",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
            ])
            .arg("-l")
            .arg(format!("{mode}{}", path.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: {out:?}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        // Everything went to the file, nothing to stdout.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{mode}");
        let log = std::fs::read_to_string(&path).unwrap();
        assert_eq!(log.starts_with("previous run\n"), kept, "{mode}: {log}");
        assert!(log.contains("listening on 127.0.0.1:"), "{mode}: {log}");
        assert!(log.contains("stopping (runtime exceeded)"), "{mode}: {log}");
        // The last line made it to the file before exit; lines carry a timestamp and level.
        let last = log.lines().last().unwrap();
        assert!(
            last.ends_with("stopped") && last.contains(" INFO "),
            "{mode}: {last}"
        );
        assert!(last.starts_with("20"), "{mode}: {last}");
    }
}

#[tokio::test]
async fn runtime_expiry_exits_0_by_itself() {
    // 3 s, not 1: the harness must see the port listen before the runtime runs out, and on a
    // loaded machine (the whole suite on 2 cores) its 10 ms poll can be late by a second.
    let mut agent = Agent::start(&["-r", "3s"]).await;
    let status = agent.wait_exit(EXIT_WAIT).expect("exited by itself");
    assert!(status.success(), "{status:?}");
    assert!(
        agent.output().contains("stopping (runtime exceeded)"),
        "{}",
        agent.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_disconnects_and_drains_in_flight_requests() {
    let sink = Sink::start("mirror").await;
    sink.set_behavior(Behavior::Slow(Duration::from_millis(800)))
        .await;
    let mut agent = Agent::builder()
        .mirror(&sink.url())
        .args(["--drain-timeout", "10s"])
        .start()
        .await;
    let mut spop = notify_once(agent.addr(), "/in-flight").await;
    // The request is on the wire (the sink has its head) and not answered yet.
    sink.wait_for(1, Duration::from_secs(10)).await;
    let stopped = Instant::now();
    agent.signal(libc::SIGTERM);
    spop.assert_disconnect(0).await;
    let status = agent.wait_exit(EXIT_WAIT).expect("exited");
    assert!(status.success(), "{status:?}");
    let out = agent.output();
    // The answer came during the drain: counted as a 2xx, not dropped.
    assert!(out.contains("mirrored 1 (2xx 1"), "{out}");
    assert!(out.contains("shutdown 0"), "{out}");
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_exits_at_once() {
    let sink = Sink::start("mirror").await;
    sink.set_behavior(Behavior::Slow(Duration::from_secs(60)))
        .await;
    let mut agent = Agent::builder()
        .mirror(&sink.url())
        .args(["--drain-timeout", "60s", "--mirror-timeout", "60s"])
        .start()
        .await;
    let _spop = notify_once(agent.addr(), "/stuck").await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    agent.signal(libc::SIGTERM);
    assert!(
        agent
            .wait_output("waiting up to", EXIT_WAIT)
            .await
            .is_some(),
        "{}",
        agent.output()
    );
    let second = Instant::now();
    agent.signal(libc::SIGINT);
    let status = agent.wait_exit(EXIT_WAIT).expect("exited");
    assert!(second.elapsed() < Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(
        agent
            .output()
            .contains("SIGINT during shutdown: exiting now"),
        "{}",
        agent.output()
    );
}

#[tokio::test]
async fn metrics_endpoint_serves_the_counters() {
    let agent = Agent::start(&[]).await;
    for i in 0..3 {
        notify_once(agent.addr(), &format!("/m{i}")).await;
    }
    assert_eq!(
        agent
            .wait_metric("ack_total", |v| v >= 3.0, Duration::from_secs(10))
            .await,
        (3.0, true)
    );
    let text = agent.metrics_text().await;
    for needle in [
        "# TYPE spoa_mirror_notify counter",
        "spoa_mirror_notify_total 3",
        "spoa_mirror_connections_total 3",
        "# TYPE spoa_mirror_connections_active gauge",
        "spoa_mirror_mirror_status_2xx_total 0",
        "spoa_mirror_mirror_in_flight 0",
        "# TYPE spoa_mirror_ack_latency_seconds histogram",
        "spoa_mirror_ack_latency_seconds_count 3",
        "spoa_mirror_ack_latency_seconds_bucket{le=\"+Inf\"} 3",
        "spoa_mirror_mirror_latency_seconds_count 0",
        "# EOF",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[tokio::test]
async fn monitor_line_appears_when_counters_change() {
    let agent = Agent::start(&["-i", "1s"]).await;
    notify_once(agent.addr(), "/monitored").await;
    let line = agent
        .wait_output("monitor: connections", Duration::from_secs(10))
        .await;
    let line = line.unwrap_or_else(|| panic!("no monitor line:\n{}", agent.output()));
    assert!(line.contains("notify 1, ack 1"), "{line}");
    // Nothing changes after that: no second line within two more intervals.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let lines = agent
        .output()
        .lines()
        .filter(|l| l.contains("monitor: "))
        .count();
    assert_eq!(lines, 1, "{}", agent.output());
}

/// HAProxy `master-worker` runs the agent from a `program` section: it starts with HAProxy,
/// mirrors, keeps running across a reload (`no option start-on-reload`: the new worker opens
/// new SPOP connections to the same agent), and stops when HAProxy stops. 3.1+ deprecates the
/// section: it still works with `expose-deprecated-directives` in `global`, before it.
async fn haproxy_program_section_start_reload_stop(bin: HaproxyBin) {
    let primary = Sink::start("primary").await;
    let mirror = Sink::start("mirror").await;
    let agent_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("agent.pid");
    let mut setup = MirrorSetup::new(&bin, primary.addr(), local(agent_port));
    setup.global_extra.push("master-worker".into());
    if bin.is_spop_mode() {
        setup
            .global_extra
            .push("expose-deprecated-directives".into());
    }
    let program = format!(
        "\nprogram mirror\n    command {AGENT_BIN} -r0 -a 127.0.0.1 -p {agent_port} -u {} -F {}\n    no option start-on-reload\n",
        mirror.url(),
        pidfile.display()
    );
    let files = [
        ("haproxy.cfg", setup.haproxy_cfg() + &program),
        ("spoe.cfg", setup.spoe_cfg()),
    ];
    let mut hap = Haproxy::start_files(&bin, &files, &[]).await;
    let frontend = local(setup.frontend_port);
    let up = poll_until(Duration::from_secs(15), || {
        (port_is_listening(agent_port) && port_is_listening(setup.frontend_port)).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "agent or frontend not listening; HAProxy log:\n{}",
        hap.log()
    );
    let agent_pid = poll_until(Duration::from_secs(5), || read_pid(&pidfile))
        .await
        .expect("agent pidfile");

    let get = |path: &'static str| async move {
        let mut c = common::client::HttpConn::connect(frontend)
            .await
            .expect("connect frontend");
        let r = c.get(path).await.expect("GET through HAProxy");
        assert_eq!(r.status, 200);
    };
    // The first request may race the agent's readiness in HAProxy's eyes (spop-check): retry
    // until one is mirrored, bounded.
    let deadline = Instant::now() + Duration::from_secs(15);
    while mirror.count() == 0 && Instant::now() < deadline {
        get("/before-reload").await;
        let _ = mirror.try_wait_for(1, Duration::from_millis(500)).await;
    }
    assert!(
        mirror.count() >= 1,
        "nothing mirrored before the reload; HAProxy log:\n{}",
        hap.log()
    );

    // Reload: the master re-executes and starts a new worker; the agent is left running.
    hap.signal(libc::SIGUSR2);
    let reloaded = poll_until(Duration::from_secs(15), || {
        (hap.log().matches("Loading success").count() >= 2).then_some(())
    })
    .await;
    assert!(reloaded.is_some(), "HAProxy did not reload:\n{}", hap.log());
    let before = mirror.count();
    let deadline = Instant::now() + Duration::from_secs(15);
    while mirror.count() == before && Instant::now() < deadline {
        get("/after-reload").await;
        let _ = mirror
            .try_wait_for(before + 1, Duration::from_millis(500))
            .await;
    }
    let after: Vec<_> = mirror
        .requests()
        .into_iter()
        .filter(|r| r.target == "/after-reload")
        .collect();
    assert!(
        !after.is_empty(),
        "nothing mirrored after the reload; HAProxy log:\n{}",
        hap.log()
    );
    assert_eq!(
        read_pid(&pidfile),
        Some(agent_pid),
        "the agent was restarted by the reload"
    );
    assert!(pid_alive(agent_pid));

    // Stopping HAProxy stops the agent, which removes its pidfile. (Once the reload is over:
    // the old worker gone; a master signalled while it re-executes itself just dies.)
    let former = hap.wait_log("Former worker", Duration::from_secs(15)).await;
    assert!(former.is_some(), "old worker did not exit:\n{}", hap.log());
    let status = hap.terminate();
    assert!(status.is_some());
    let gone = poll_until(EXIT_WAIT, || {
        (!pid_alive(agent_pid) && !pidfile.exists()).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "agent still running after HAProxy stopped ({status:?}); HAProxy log:\n{}",
        hap.log()
    );
}

per_haproxy!(haproxy_program_section_start_reload_stop);

/// What the systemd unit relies on: `--foreground` beats `-D` (no fork), READY=1 reaches
/// `$NOTIFY_SOCKET` once the port is bound, STOPPING=1 at SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notify_and_foreground_override() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let port = free_port();
    let mut child = Command::new(AGENT_BIN)
        .args([
            "--foreground",
            "-Dr0",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(EXIT_WAIT, notify.recv(&mut buf))
        .await
        .expect("READY in time")
        .unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    // Still our child (it did not fork) and already listening.
    assert!(matches!(child.try_wait(), Ok(None)));
    assert!(process_listens_on(child.id(), port));
    send_signal(child.id(), libc::SIGTERM);
    let n = tokio::time::timeout(EXIT_WAIT, notify.recv(&mut buf))
        .await
        .expect("STOPPING in time")
        .unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = common::wait_child(&mut child, EXIT_WAIT).expect("exited");
    assert!(status.success(), "{status:?}");
}

/// The shipped examples are valid HAProxy configurations (checked with `haproxy -c`), with
/// every alternative `event` line of spoe-mirror.cfg, each in the variant its comments give
/// for the HAProxy at hand: before 3.1 the agents' backend is `mode tcp`; from 3.1 it is
/// `mode spop`, and the `program` section needs `expose-deprecated-directives`.
async fn examples_pass_haproxy_check(bin: HaproxyBin) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().unwrap();
    let spoe = std::fs::read_to_string(examples.join("spoe-mirror.cfg")).unwrap();
    // The commented alternatives, uncommented one at a time.
    let mut events: Vec<String> = vec!["event on-frontend-http-request".into()];
    events.extend(spoe.lines().filter_map(|l| {
        l.trim_start()
            .strip_prefix("#   event ")
            .map(|e| format!("event {e}"))
    }));
    assert!(events.len() >= 5, "{events:?}");
    let mut checked = 0;
    for (i, event) in events.iter().enumerate() {
        let spoe_path = dir.path().join(format!("spoe-{i}.cfg"));
        std::fs::write(
            &spoe_path,
            spoe.replace(
                "    event on-frontend-http-request\n",
                &format!("    {event}\n"),
            ),
        )
        .unwrap();
        for name in [
            "haproxy-program.cfg",
            "haproxy-systemd.cfg",
            "haproxy-scale-out.cfg",
        ] {
            let mut cfg = std::fs::read_to_string(examples.join(name)).unwrap();
            cfg = cfg.replace("/etc/haproxy/spoe-mirror.cfg", spoe_path.to_str().unwrap());
            cfg = cfg.replace("bind :80", &format!("bind 127.0.0.1:{}", free_port()));
            if bin.is_spop_mode() {
                cfg = cfg
                    .replace(
                        "backend mirroragents\n    mode tcp\n",
                        "backend mirroragents\n    mode spop\n",
                    )
                    .replace(
                        "# expose-deprecated-directives",
                        "expose-deprecated-directives",
                    );
            } else {
                cfg = cfg.replace("    mode spop\n", "    mode tcp\n");
            }
            let path = dir.path().join(name);
            std::fs::write(&path, cfg).unwrap();
            common::haproxy::check_config(&bin, &path);
            checked += 1;
        }
    }
    assert_eq!(checked, events.len() * 3);

    // Several targets: haproxy-targets.cfg with spoe-mirror-targets.cfg (`arg_src=src`).
    let spoe_path = dir.path().join("spoe-mirror-targets.cfg");
    std::fs::copy(examples.join("spoe-mirror-targets.cfg"), &spoe_path).unwrap();
    let mut cfg = std::fs::read_to_string(examples.join("haproxy-targets.cfg")).unwrap();
    cfg = cfg.replace(
        "/etc/haproxy/spoe-mirror-targets.cfg",
        spoe_path.to_str().unwrap(),
    );
    cfg = cfg.replace("bind :80", &format!("bind 127.0.0.1:{}", free_port()));
    if bin.is_spop_mode() {
        cfg = cfg.replace(
            "backend mirroragents\n    mode tcp\n",
            "backend mirroragents\n    mode spop\n",
        );
    }
    let path = dir.path().join("haproxy-targets.cfg");
    std::fs::write(&path, cfg).unwrap();
    common::haproxy::check_config(&bin, &path);
}

per_haproxy!(examples_pass_haproxy_check);
