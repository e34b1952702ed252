//! The running agent: bind, serve SPOP, mirror, report, and stop in order.
//!
//! Stop (SIGTERM, SIGINT, SIGHUP, SIGUSR1, or `-r` expiry): stop accepting, send
//! AGENT-DISCONNECT (status 0) on every SPOP connection, let in-flight mirror requests finish
//! up to `--drain-timeout`, exit 0. A second signal during that exits at once.
//!
//! With `--config`, SIGHUP is no stop: it re-reads the file, and puts it in force if it is
//! valid (else the running configuration stays, and the failure is logged and counted).
//! Run-time sampling and rate changes made through `--admin-address` give way to the file's;
//! pauses stay (see `mirror::control`).
//!
//! SIGUSR2 hands over to a new copy of the agent (`handover/`): once it serves on the same
//! listening sockets, this process goes through the same orderly stop and exits 0.

use crate::config::{redact_userinfo, Config};
use crate::handler::{Discard, NotifyHandler, Router};
use crate::handover::{Handover, Inherited};
use crate::mirror::Mirror;
use crate::process::{exit, sd_notify, Readiness, EXIT_STARTUP};
use crate::shadow::Shadow;
use crate::stats::Stats;
use humantime::format_duration;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

mod signals;

use signals::{under_haproxy_master, Next, Signals};

/// Runs the agent until stopped; returns the exit code. `ready` is told once the ports are
/// bound (or why they could not be). `inherited`: the sockets of a hand-over, used instead
/// of binding.
pub async fn run(config: Config, mut ready: Readiness, inherited: Option<Inherited>) -> i32 {
    let started = match start(&config, inherited.unwrap_or_default()).await {
        Ok(s) => s,
        Err(text) => return startup_failed(&config, &mut ready, &text),
    };
    log_settings(&config, started.listener.local_addr().ok());
    if let Some(l) = &started.metrics {
        if let Ok(a) = l.local_addr() {
            info!("metrics: serving http://{a}/metrics");
        }
    }
    if let Some(l) = &started.admin {
        if let Ok(a) = l.local_addr() {
            info!("admin: serving run-time control at http://{a}/");
        }
    }
    for n in &config.run.notices {
        warn!("{n}");
    }
    if config.config_file.is_some() {
        log_targets(&config.targets);
    }
    ready.ready();

    let Started {
        mut signals,
        listener,
        metrics,
        admin,
        handler,
        mirror,
        stats,
    } = started;
    let shutdown = CancellationToken::new();
    let mut handover = Handover::new(
        listener.as_raw_fd(),
        metrics.as_ref().map(|m| m.as_raw_fd()),
        admin.as_ref().map(|a| a.as_raw_fd()),
        under_haproxy_master().then_some(
            "started by HAProxy's master (program section): restart the agent through HAProxy",
        ),
    );
    if let Some(l) = metrics {
        tokio::spawn(crate::stats::serve_metrics(
            l,
            Arc::clone(&stats),
            shutdown.clone(),
        ));
    }
    if let Some(l) = admin {
        // The engine handle is passed explicitly: the endpoint reaches nothing else.
        let handle =
            crate::admin::Admin::new(Arc::new(config.clone()), mirror.clone(), Arc::clone(&stats));
        tokio::spawn(crate::admin::serve(l, handle, shutdown.clone()));
    }
    tokio::spawn(crate::stats::monitor(
        Arc::clone(&stats),
        config.run.monitor_interval,
        shutdown.clone(),
    ));
    let serve = tokio::spawn(crate::listener::serve(
        listener,
        config.spop.clone(),
        handler,
        Arc::clone(&stats),
        shutdown.clone(),
    ));

    signals.hup_reloads = config.config_file.is_some();
    let deadline = config.run.runtime.map(|t| tokio::time::Instant::now() + t);
    let expiry = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let (reason, handed_over) = loop {
        let next = tokio::select! {
            s = signals.next() => s,
            () = &mut expiry => Next::Stop("runtime exceeded"),
            _ = handover.ready() => break ("handed over", true),
        };
        match next {
            Next::Stop(reason) => {
                handover.abort();
                break (reason, false);
            }
            Next::Reload => reload(&config, mirror.as_ref(), &stats),
            Next::Handover => handover.begin(),
        }
    };
    stop(
        reason,
        signals,
        shutdown,
        serve,
        mirror,
        &config,
        handed_over,
    )
    .await;
    info!("final counters: {}", crate::stats::monitor_line(&stats));
    info!("stopped");
    0
}

/// Each target and its policy, one line each (no secrets: `set-headers` values are not shown).
fn log_targets(targets: &[crate::config::TargetConfig]) {
    for line in crate::config::describe(targets).lines() {
        info!("{}", line.trim_start());
    }
}

/// SIGHUP with `--config`: re-read, check, swap; a bad file changes nothing.
fn reload(config: &Config, mirror: Option<&Mirror>, stats: &Stats) {
    let Some(path) = &config.config_file else {
        return;
    };
    let loaded = match config.targets_loader {
        Some(load) => load(config),
        None => Err("no loader for the configuration file".to_string()),
    };
    let result = match (loaded, mirror) {
        (Err(e), _) => Err(e),
        (Ok(targets), Some(m)) => {
            let text = crate::config::describe(&targets);
            m.reload(targets)
                .map(|()| text)
                .map_err(|e| format!("cannot start mirroring: {e}"))
        }
        // With `--config` the engine always runs (see `mirror_handler`).
        (Ok(_), None) => Err("no mirror engine".to_string()),
    };
    match result {
        Ok(text) => {
            crate::stats::inc(&stats.config_reloads_total);
            info!("SIGHUP: {} reloaded", path.display());
            for line in text.lines() {
                info!("{}", line.trim_start());
            }
        }
        Err(e) => {
            crate::stats::inc(&stats.config_reload_failed_total);
            error!("SIGHUP: configuration not reloaded, the running one stays: {e}");
        }
    }
}

/// What startup made, before anything runs.
struct Started {
    signals: Signals,
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    /// `--admin-address`: none unless asked.
    admin: Option<tokio::net::TcpListener>,
    handler: Arc<dyn NotifyHandler>,
    mirror: Option<Mirror>,
    stats: Arc<Stats>,
}

/// Installs the signal handlers, binds the SPOP and metrics ports and builds the mirror
/// engine; the error is the text to report.
async fn start(config: &Config, inherited: Inherited) -> Result<Started, String> {
    // SIGPIPE would kill the process on a write to a closed socket; std ignores it already,
    // say so explicitly since the original does too.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let signals = Signals::new().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let listener = match inherited.spop {
        Some(fd) => crate::handover::listener(fd)
            .map_err(|e| format!("cannot use the inherited SPOP socket: {e}"))?,
        None => crate::listener::bind(&config.listen).map_err(|e| bind_error(config, &e))?,
    };
    let stats = Arc::new(Stats::default());
    let admin = optional_listener(
        config.run.admin_address,
        inherited.admin,
        "the admin endpoint",
    )
    .await?;
    let metrics =
        optional_listener(config.run.metrics_address, inherited.metrics, "metrics").await?;
    let (handler, mirror) = mirror_handler(config, &stats)?;
    Ok(Started {
        signals,
        listener,
        metrics,
        admin,
        handler,
        mirror,
        stats,
    })
}

/// The listener of an optional port (`--metrics-address`, `--admin-address`): none unless
/// asked; after a hand-over the predecessor's socket, already listening; else bound here.
async fn optional_listener(
    address: Option<std::net::SocketAddr>,
    inherited: Option<std::os::fd::OwnedFd>,
    what: &str,
) -> Result<Option<tokio::net::TcpListener>, String> {
    match (address, inherited) {
        (Some(_), Some(fd)) => crate::handover::listener(fd)
            .map(Some)
            .map_err(|e| format!("cannot use the inherited socket of {what}: {e}")),
        (Some(addr), None) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| format!("cannot serve {what} on {addr}: {e}")),
        (None, _) => Ok(None),
    }
}

fn bind_error(config: &Config, e: &std::io::Error) -> String {
    let mut text = format!(
        "cannot listen on {}:{}: {e}",
        config.listen.address, config.listen.port
    );
    if e.kind() == std::io::ErrorKind::AddrInUse && under_haproxy_master() {
        text.push_str(
            " (started by HAProxy: with `option start-on-reload`, the default, the agent \
             started before the reload still serves; add `no option start-on-reload` to \
             the program section)",
        );
    }
    text
}

/// A startup failure is logged, and also shown where the operator looks: the `-D` parent
/// prints it; in the foreground with `-l`, stderr gets it too.
fn startup_failed(config: &Config, ready: &mut Readiness, text: &str) -> i32 {
    error!("{text}");
    if config.run.logfile.is_some() && !config.run.daemonize {
        eprintln!("ERROR: {text}");
    }
    ready.failed(EXIT_STARTUP, &format!("ERROR: {text}"));
    EXIT_STARTUP
}

/// The orderly stop: close the SPOP connections, then let the mirror drain. A second signal
/// meanwhile exits at once (SIGUSR2 is ignored). After a hand-over systemd is not told
/// STOPPING: the service goes on, in the new process.
async fn stop(
    reason: &str,
    mut signals: Signals,
    shutdown: CancellationToken,
    serve: tokio::task::JoinHandle<()>,
    mirror: Option<Mirror>,
    config: &Config,
    handed_over: bool,
) {
    info!("stopping ({reason}): closing SPOP connections");
    if !handed_over {
        sd_notify("STOPPING=1");
    }
    signals.hup_reloads = false;
    tokio::spawn(async move {
        let again = loop {
            match signals.next().await {
                Next::Stop(name) => break name,
                Next::Reload => break "SIGHUP",
                Next::Handover => warn!("SIGUSR2 ignored: this process is stopping"),
            }
        };
        warn!("{again} during shutdown: exiting now");
        exit(0);
    });
    shutdown.cancel();
    let _ = serve.await;
    if let Some(m) = mirror {
        info!(
            "waiting up to {} for in-flight mirror requests",
            format_duration(drain_timeout(config))
        );
        m.shutdown(drain_timeout(config)).await;
    }
}

fn drain_timeout(config: &Config) -> Duration {
    config.target_defaults.drain_timeout
}

type Handlers = (Arc<dyn NotifyHandler>, Option<Mirror>);

/// The handler for NOTIFYs: a router whose default route is the mirror engine with its
/// targets (`-u`, `--config`; every message name, as the original), else one that ACKs and
/// forgets. Another kind of message (a response, for shadow comparison) is one more `route`.
fn mirror_handler(config: &Config, stats: &Arc<Stats>) -> Result<Handlers, String> {
    // With `--config` the engine runs even without targets, so a reload can add some.
    match config.targets.is_empty() && config.config_file.is_none() {
        true => Ok((
            Arc::new(Router::new().default_route(Arc::new(Discard))),
            None,
        )),
        false => {
            let mirror = Mirror::with_targets(config.targets.clone(), Arc::clone(stats))
                .map_err(|e| format!("cannot start mirroring: {e}"))?;
            let mut router = Router::new();
            // Shadow comparison: the primary's responses are one more route; the targets
            // with a compare role report to it; its report is served with the metrics.
            if let Some(cfg) = &config.shadow {
                let shadow = Shadow::start(cfg.clone())?;
                mirror.set_tap(Arc::new(shadow.clone()));
                shadow.record_to(mirror.clone());
                stats.set_exporter(Arc::new(shadow.clone()));
                let name = shadow.message_name().to_owned();
                router = router.route(&name, Arc::new(shadow));
            }
            let router = router.default_route(Arc::new(mirror.clone()));
            Ok((Arc::new(router), Some(mirror)))
        }
    }
}

/// One line with the effective settings; no secrets (userinfo and proxy password hidden).
fn log_settings(c: &Config, bound: Option<std::net::SocketAddr>) {
    let listen = bound.map_or_else(
        || format!("{}:{}", c.listen.address, c.listen.port),
        |a| a.to_string(),
    );
    let caps = c.spop.capabilities.to_list();
    let mirror = match (&c.mirror, &c.config_file) {
        (_, Some(file)) => format!(
            "{} target(s) from {} and -u: [{}]",
            c.targets.len(),
            file.display(),
            c.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, None) => "none (ACK only)".to_string(),
        (Some(m), None) => {
            let mut s = format!(
                "{} (timeout {}, connect {}, queue {}, concurrency {}, memory {} bytes, drain {}",
                redact_userinfo(&m.url.to_string()),
                format_duration(m.timeout),
                format_duration(m.connect_timeout),
                m.queue_size,
                m.concurrency,
                m.memory_budget,
                format_duration(m.drain_timeout)
            );
            if let Some(i) = &m.interface {
                s.push_str(&format!(", interface {i}"));
            }
            if let Some((lo, hi)) = m.local_ports {
                s.push_str(&format!(", local ports {lo}-{hi}"));
            }
            if let Some(p) = &m.proxy {
                s.push_str(&format!(", proxy {}", redact_userinfo(&p.url.to_string())));
                if p.userpwd.is_some() {
                    s.push_str(" with credentials");
                }
            }
            if m.insecure {
                s.push_str(", certificate NOT verified");
            }
            s.push(')');
            s
        }
    };
    info!(
        "spoa-mirror v{} pid {}: listening on {listen} (backlog {}), max-frame-size {}, capabilities [{caps}], \
         processing delay {}, idle timeout {}, mirror {mirror}, runtime {}, monitor every {}, {} worker threads, log filter '{}'",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        c.listen.backlog,
        c.spop.max_frame_size,
        format_duration(c.spop.processing_delay),
        c.spop.idle_timeout.map_or("off".to_string(), |d| format_duration(d).to_string()),
        c.run.runtime.map_or("unlimited".to_string(), |d| format_duration(d).to_string()),
        format_duration(c.run.monitor_interval),
        c.run.workers,
        c.run.log_filter,
    );
    if !c.run.libev_backends.is_empty() {
        info!(
            "-B {}: ignored, tokio chooses the IO driver (epoll on Linux)",
            c.run.libev_backends.join(",")
        );
    }
}
