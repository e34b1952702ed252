//! Signals: which stop the agent, which reload `--config`, which start a hand-over.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::info;

/// What a signal asks for.
pub(super) enum Next {
    Stop(&'static str),
    /// SIGHUP with `--config`.
    Reload,
    /// SIGUSR2.
    Handover,
}

/// The four stop signals, and SIGUSR2 (hand-over).
///
/// Under HAProxy's master (`program` section; it sets `HAPROXY_MWORKER`), SIGUSR1 is not a
/// stop: at every reload the master sends it to its children, programs included, even to a
/// program with `no option start-on-reload` that it means to keep. Stopping then (as the
/// original does) would end mirroring at the first reload.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
    usr1_is_reload: bool,
    /// SIGHUP re-reads `--config` instead of stopping.
    pub(super) hup_reloads: bool,
}

impl Signals {
    pub(super) fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            usr1_is_reload: under_haproxy_master(),
            hup_reloads: false,
        })
    }

    /// Waits for the next stop signal (its name), or a SIGHUP that reloads.
    pub(super) async fn next(&mut self) -> Next {
        loop {
            tokio::select! {
                _ = self.term.recv() => return Next::Stop("SIGTERM"),
                _ = self.int.recv() => return Next::Stop("SIGINT"),
                _ = self.hup.recv() => {
                    return match self.hup_reloads {
                        true => Next::Reload,
                        false => Next::Stop("SIGHUP"),
                    };
                }
                _ = self.usr1.recv() => {
                    if !self.usr1_is_reload {
                        return Next::Stop("SIGUSR1");
                    }
                    info!("SIGUSR1 from the HAProxy master (a reload): still serving; SIGTERM stops");
                }
                _ = self.usr2.recv() => return Next::Handover,
            }
        }
    }
}

/// Whether HAProxy's master started this process (`program` section).
pub(super) fn under_haproxy_master() -> bool {
    std::env::var_os("HAPROXY_MWORKER").is_some()
}
