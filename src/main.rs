//! `spoa-mirror`: parse the command line, daemonize before any thread exists, write the
//! pidfile, start logging, then run the agent on a tokio runtime with `-n` worker threads.
//!
//! The order: `cli` → `Config` → `process` (pidfile, log file, `-D`) → `logging` → runtime
//! → `app::run`. Only this file uses `cli`.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use spoa_mirror::cli::{self, Action};
use spoa_mirror::config::{Config, LogFile, RunConfig};
use spoa_mirror::handover::{self, Inherited};
use spoa_mirror::process::{self, Pidfile, Readiness, EXIT_STARTUP};
use spoa_mirror::{app, logging};
use std::fs::File;

fn main() {
    handover::remember_origin();
    let mut inherited =
        Inherited::from_env().unwrap_or_else(|e| startup_error(format!("hand-over: {e}")));
    let mut config = command_line();
    absolute_paths(&mut config.run);
    let (mut pidfile, logfile) = open_files(&config.run, inherited.as_mut());
    let ready = match inherited.as_mut() {
        Some(h) => handed_over(&config.run, h, pidfile.as_ref()),
        None => {
            let ready = detach(&config.run, logfile.as_ref());
            if let Some(p) = pidfile.as_mut() {
                if let Err(e) = p.write_pid() {
                    startup_error(format!("unable to write PID to pidfile: {e}"));
                }
            }
            ready
        }
    };
    logging::init(&config.run, logfile);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.run.workers)
        .thread_name("spoa-worker")
        .enable_all()
        .build()
        .unwrap_or_else(|e| startup_error(format!("unable to start the runtime: {e}")));
    let code = runtime.block_on(app::run(config, ready, inherited));
    // Tasks still running (connections that ignored the disconnect) are abandoned.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(pidfile);
    process::exit(code)
}

/// The config to run with; `-h`, `-V` and a bad command line end the process here.
fn command_line() -> Config {
    match cli::parse(std::env::args_os()) {
        Ok(Action::Run(config)) => *config,
        Ok(Action::Help(text) | Action::Version(text) | Action::CheckConfig(text)) => {
            print!("{text}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{}", e.message);
            print!("{}", cli::short_usage());
            std::process::exit(e.code)
        }
    }
}

fn startup_error(text: String) -> ! {
    eprintln!("ERROR: {text}");
    process::exit(EXIT_STARTUP)
}

/// -D changes the working directory to /: make the paths absolute first.
fn absolute_paths(run: &mut RunConfig) {
    for path in run
        .pidfile
        .iter_mut()
        .chain(run.logfile.as_mut().map(|l| &mut l.path))
    {
        if let Ok(abs) = std::path::absolute(&*path) {
            *path = abs;
        }
    }
}

/// Both files are opened here, before forking, so that their errors reach the terminal. A
/// hand-over passes the pidfile on, locked, and appends to the log file.
fn open_files(
    run: &RunConfig,
    inherited: Option<&mut Inherited>,
) -> (Option<Pidfile>, Option<File>) {
    let handover = inherited.is_some();
    let passed_on = inherited.and_then(|h| h.pidfile.take());
    let pidfile = run.pidfile.as_deref().map(|p| {
        let opened = match passed_on {
            Some(file) => Pidfile::adopt(file),
            None => Pidfile::create(p),
        };
        opened.unwrap_or_else(|e| {
            startup_error(format!("unable to create pidfile '{}': {e}", p.display()))
        })
    });
    let logfile = run.logfile.as_ref().map(|l| {
        // After a hand-over the file is the old process's too, still written: `w` would
        // cut its lines away.
        let l = &LogFile {
            truncate: l.truncate && !handover,
            ..l.clone()
        };
        logging::open_logfile(l).unwrap_or_else(|e| {
            startup_error(format!(
                "unable to open logfile '{}': {e}",
                l.path.display()
            ))
        })
    });
    (pidfile, logfile)
}

/// With `-D`, forks into the background; the original process exits here with the daemon's
/// startup status and leaves its pidfile alone.
fn detach(run: &RunConfig, logfile: Option<&File>) -> Readiness {
    if !run.daemonize {
        return Readiness::default();
    }
    // Logged at startup too, but a daemon's log may be a file nobody looks at yet.
    for n in &run.notices {
        eprintln!("WARNING: {n}");
    }
    match process::daemonize(logfile) {
        Ok(process::Forked::Parent(code, text)) => {
            if !text.is_empty() {
                eprintln!("{text}");
            }
            std::process::exit(code)
        }
        Ok(process::Forked::Daemon(ready)) => ready,
        Err(e) => startup_error(format!("unable to daemonize: {e}")),
    }
}

/// Started by a hand-over: no fork for `-D` (the old process, our parent, is a daemon
/// already, so this one is detached from any terminal too), but the daemon's working
/// directory; the pid is written once this process serves.
fn handed_over(run: &RunConfig, inherited: &mut Inherited, pidfile: Option<&Pidfile>) -> Readiness {
    if run.daemonize {
        let _ = std::env::set_current_dir("/");
    }
    let Some(pipe) = inherited.ready.take() else {
        startup_error("hand-over: no readiness channel".into())
    };
    let pidfile = pidfile.zip(run.pidfile.as_deref());
    Readiness::handover(pipe, pidfile)
        .unwrap_or_else(|e| startup_error(format!("hand-over: pidfile: {e}")))
}
