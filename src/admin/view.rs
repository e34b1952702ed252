//! The JSON the admin endpoint shows: the effective configuration and each target's state.
//! Never a secret: URLs lose their userinfo, the proxy's credentials and header values and the
//! values of `set-headers` rules are not shown (only that they exist, or their names).

use crate::config::{redact_userinfo, Config, HostPolicy, RateCap, Rules, SampleKey, Sampling};
use crate::mirror::{Mirror, TargetView};
use crate::stats::get;
use serde_json::{json, Value};
use std::time::Duration;

fn time(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `GET /config`: the agent's settings and every target's, as in force now.
pub(super) fn config(c: &Config, mirror: Option<&Mirror>) -> Value {
    let targets: Vec<Value> = mirror
        .map(Mirror::targets)
        .unwrap_or_default()
        .iter()
        .map(target_config)
        .collect();
    let r = &c.run;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "listen": {
            "address": c.listen.address,
            "port": c.listen.port,
            "backlog": c.listen.backlog,
        },
        "spop": {
            "max-frame-size": c.spop.max_frame_size,
            "capabilities": c.spop.capabilities.to_list(),
            "processing-delay": time(c.spop.processing_delay),
            "idle-timeout": c.spop.idle_timeout.map(time),
            "frame-timeout": time(c.spop.frame_timeout),
            "max-connections": c.spop.max_connections,
            "ack-noop": c.spop.ack_noop,
        },
        "run": {
            "runtime": r.runtime.map(time),
            "monitor-interval": time(r.monitor_interval),
            "workers": r.workers,
            "daemonize": r.daemonize,
            "pidfile": r.pidfile.as_ref().map(|p| p.display().to_string()),
            "logfile": r.logfile.as_ref().map(|l| l.path.display().to_string()),
            "log-filter": r.log_filter,
            "metrics-address": r.metrics_address.map(|a| a.to_string()),
            "admin-address": r.admin_address.map(|a| a.to_string()),
        },
        "config-file": c.config_file.as_ref().map(|p| p.display().to_string()),
        "mirroring-paused": mirror.is_some_and(Mirror::paused),
        "targets": targets,
    })
}

/// One target's settings: connection and policy in force, and the configured sampling and
/// rate cap (what a reset or a reload puts back).
fn target_config(t: &TargetView) -> Value {
    let m = &t.mirror;
    let proxy = m.proxy.as_ref().map(|p| {
        json!({
            "url": redact_userinfo(&p.url.to_string()),
            "credentials": p.userpwd.is_some(),
            "header-names": p.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            "noproxy": p.noproxy,
        })
    });
    let p = &t.policy;
    json!({
        "name": t.name,
        "url": redact_userinfo(&m.url.to_string()),
        "timeout": time(m.timeout),
        "connect-timeout": time(m.connect_timeout),
        "queue": m.queue_size,
        "concurrency": m.concurrency,
        "memory": m.memory_budget,
        "drain-timeout": time(m.drain_timeout),
        "interface": m.interface,
        "local-ports": m.local_ports.map(|(lo, hi)| format!("{lo}-{hi}")),
        "proxy": proxy,
        "ca-file": m.ca_file.as_ref().map(|f| f.display().to_string()),
        "insecure": m.insecure,
        "sample": p.sample.as_ref().map(sample),
        "rate": p.rate.as_ref().map(rate),
        "breaker": p.breaker.map(|b| json!({
            "failures": b.failures.get(),
            "cool-down": time(b.cool_down),
        })),
        "rules": p.rules.as_ref().map(rules),
        "configured": {
            "sample": t.configured.sample.as_ref().map(sample),
            "rate": t.configured.rate.as_ref().map(rate),
        },
    })
}

/// `GET /targets/NAME`: state (pause, breaker, changes at run time), policy and counters.
pub(super) fn target_state(t: &TargetView) -> Value {
    let s = &t.stats;
    let overridden = t.policy.sample != t.configured.sample || t.policy.rate != t.configured.rate;
    json!({
        "name": t.name,
        "url": redact_userinfo(&t.mirror.url.to_string()),
        "paused": t.paused,
        "breaker-open": t.breaker_open,
        "sample": t.policy.sample.as_ref().map(sample),
        "rate": t.policy.rate.as_ref().map(rate),
        "changed-at-run-time": overridden,
        "configured": {
            "sample": t.configured.sample.as_ref().map(sample),
            "rate": t.configured.rate.as_ref().map(rate),
        },
        "counters": {
            "queued": get(&s.queued_total),
            "sent": get(&s.sent_total),
            "status-2xx": get(&s.status_2xx),
            "failed": get(&s.failed_connect) + get(&s.failed_timeout) + get(&s.failed_other),
            "dropped-paused": get(&s.dropped_paused),
            "dropped-filtered": get(&s.dropped_filtered),
            "dropped-sampled-out": get(&s.dropped_sampled_out),
            "dropped-rate-limited": get(&s.dropped_rate_limited),
            "dropped-breaker-open": get(&s.dropped_breaker_open),
            "dropped-queue-full": get(&s.dropped_queue_full),
            "dropped-memory": get(&s.dropped_memory),
            "in-flight": get(&s.in_flight),
            "queue-now": get(&s.queued),
        },
    })
}

fn key(k: &SampleKey) -> String {
    match k {
        SampleKey::Random => "random".into(),
        SampleKey::Src => "src".into(),
        SampleKey::Header(h) => format!("header:{h}"),
        SampleKey::Cookie(c) => format!("cookie:{c}"),
    }
}

fn sample(s: &Sampling) -> Value {
    json!({ "percent": s.percent, "by": key(&s.by) })
}

fn rate(r: &RateCap) -> Value {
    json!({ "per-second": r.per_second.get(), "burst": r.burst.get() })
}

/// Names only for the headers rules set: their values may be tokens.
fn rules(r: &Rules) -> Value {
    let names =
        |v: &[http::HeaderName]| v.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>();
    let host = match &r.host {
        HostPolicy::Keep => "keep".to_owned(),
        HostPolicy::Target => "target".to_owned(),
        HostPolicy::Literal(v) => v.to_str().unwrap_or("?").to_owned(),
    };
    json!({
        "methods": r.methods.iter().map(|m| m.as_str().to_owned()).collect::<Vec<_>>(),
        "path-include": r.path_include.as_ref().map(|p| p.patterns().to_vec()),
        "path-exclude": r.path_exclude.as_ref().map(|p| p.patterns().to_vec()),
        "remove-headers": names(&r.remove_headers),
        "set-header-names": r.set_headers.iter().map(|(n, _)| n.as_str().to_owned()).collect::<Vec<_>>(),
        "redact-headers": names(&r.redact_headers),
        "host": host,
        "x-forwarded-for": r.x_forwarded_for,
        "forwarded": r.forwarded,
    })
}

/// For the log line of a change: `all`, `25% by random`.
pub(super) fn sample_text(s: Option<&Sampling>) -> String {
    s.map_or("all".into(), |s| {
        format!("{}% by {}", s.percent, key(&s.by))
    })
}

/// For the log line of a change: `no cap`, `100/s burst 100`.
pub(super) fn rate_text(r: Option<&RateCap>) -> String {
    r.map_or("no cap".into(), |r| {
        format!("{}/s burst {}", r.per_second, r.burst)
    })
}
