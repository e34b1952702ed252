//! The command line, flag for flag with hapee-spoa-mirror: every spelling of every option
//! (`-p 1`, `-p1`, `--port=1`, `--port 1`, `--po=1`), every bad value of the spec's §1.5 table
//! (message and exit code), and a few runs of the built binary for the real exit codes and
//! streams. Also keeps the committed man page in step with the clap definition.

use spoa_mirror::cli::{self, Action, CliError};
use spoa_mirror::config::{
    Config, ListenConfig, MirrorConfig, MirrorUrl, RunConfig, SpopConfig, UrlError,
};
use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_spoa-mirror");

fn args(list: &[&str]) -> Vec<OsString> {
    std::iter::once("spoa-mirror")
        .chain(list.iter().copied())
        .map(OsString::from)
        .collect()
}

fn parse(list: &[&str]) -> Result<Action, CliError> {
    cli::parse_with_env(args(list), None)
}

fn config(list: &[&str]) -> Config {
    match parse(list) {
        Ok(Action::Run(c)) => *c,
        other => panic!("{list:?}: expected a config, got {other:?}"),
    }
}

fn error(list: &[&str]) -> CliError {
    match parse(list) {
        Err(e) => e,
        Ok(other) => panic!("{list:?}: expected an error, got {other:?}"),
    }
}

type Probe = fn(&Config) -> String;

/// (short, long, a unique prefix of long, value, what the config shows for it).
#[rustfmt::skip]
const VALUE_OPTIONS: &[(char, &str, &str, &str, &str, Probe)] = &[
    ('a', "address", "ad", "::1", "::1", |c| c.listen.address.clone()),
    ('b', "connection-backlog", "conn", "77", "77", |c| c.listen.backlog.to_string()),
    ('c', "capability", "cap", "pipelining", "pipelining", |c| c.spop.capabilities.to_list()),
    ('B', "libev-backend", "libev", "epoll", "epoll", |c| c.run.libev_backends.join(",")),
    ('F', "pidfile", "pid", "/run/x.pid", "/run/x.pid", |c| format!("{}", c.run.pidfile.as_ref().unwrap().display())),
    ('i', "monitor-interval", "mon", "2s", "2s", |c| format!("{:?}", c.run.monitor_interval)),
    ('l', "logfile", "logf", "W:/tmp/x.log", "/tmp/x.log true true", |c| {
        let l = c.run.logfile.as_ref().unwrap();
        format!("{} {} {}", l.path.display(), l.truncate, l.line_buffered)
    }),
    ('m', "max-frame-size", "max", "16384", "16384", |c| c.spop.max_frame_size.to_string()),
    ('n', "num-workers", "num", "3", "3", |c| c.run.workers.to_string()),
    ('p', "port", "po", "3000", "3000", |c| c.listen.port.to_string()),
    ('r', "runtime", "ru", "90s", "Some(90s)", |c| format!("{:?}", c.run.runtime)),
    ('t', "processing-delay", "proc", "250ms", "250ms", |c| format!("{:?}", c.spop.processing_delay)),
    ('u', "mirror-url", "mirror-u", "http://127.0.0.1:8080/pre", "http://127.0.0.1:8080/pre", |c| c.mirror.as_ref().unwrap().url.to_string()),
];

/// Options that only mean something with `-u`: checked with `-u http://m/` in front.
#[rustfmt::skip]
const MIRROR_OPTIONS: &[(char, &str, &str, &str, &str, Probe)] = &[
    ('I', "mirror-interface", "mirror-int", "eth1", "eth1", |c| c.mirror.as_ref().unwrap().interface.clone().unwrap()),
    ('P', "mirror-local-port", "mirror-l", "4000-4010", "(4000, 4010)", |c| format!("{:?}", c.mirror.as_ref().unwrap().local_ports.unwrap())),
    ('x', "proxy-url", "proxy-ur", "http://proxy:3128", "http://proxy:3128/", |c| c.mirror.as_ref().unwrap().proxy.as_ref().unwrap().url.to_string()),
];

fn spellings(short: char, long: &str, prefix: &str, value: &str) -> Vec<Vec<String>> {
    vec![
        vec![format!("-{short}"), value.into()],
        vec![format!("-{short}{value}")],
        vec![format!("--{long}={value}")],
        vec![format!("--{long}"), value.into()],
        vec![format!("--{prefix}={value}")],
        vec![format!("--{prefix}"), value.into()],
    ]
}

#[test]
fn every_spelling_of_every_value_option() {
    for (short, long, prefix, value, expected, probe) in VALUE_OPTIONS {
        for spelling in spellings(*short, long, prefix, value) {
            let list: Vec<&str> = spelling.iter().map(String::as_str).collect();
            assert_eq!(probe(&config(&list)), *expected, "{list:?}");
        }
    }
    for (short, long, prefix, value, expected, probe) in MIRROR_OPTIONS {
        for spelling in spellings(*short, long, prefix, value) {
            let mut list = vec!["-u", "http://m/"];
            list.extend(spelling.iter().map(String::as_str));
            assert_eq!(probe(&config(&list)), *expected, "{list:?}");
        }
    }
}

#[test]
fn proxy_credentials_headers_and_noproxy() {
    let both: [&[&str]; 2] = [
        &[
            "-u",
            "http://m/",
            "-x",
            "p:3128",
            "-U",
            "user:secret",
            "-H",
            "X-A: 1",
            "-H",
            "X-B: 2",
            "-N",
            "localhost,.internal",
        ],
        &[
            "-u",
            "http://m/",
            "--proxy-url=p:3128",
            "--proxy-userpwd=user:secret",
            "--proxy-header=X-A: 1",
            "--proxy-h",
            "X-B: 2",
            "--nop=localhost,.internal",
        ],
    ];
    for list in both {
        let c = config(list);
        let p = c.mirror.unwrap().proxy.unwrap();
        assert_eq!(p.url.to_string(), "http://p:3128/");
        assert_eq!(
            p.userpwd.as_ref().map(|s| s.0.as_str()),
            Some("user:secret")
        );
        // Debug never shows the password.
        assert!(!format!("{p:?}").contains("secret"));
        let headers: Vec<String> = p
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(headers, ["x-a: 1", "x-b: 2"]);
        assert_eq!(p.noproxy.as_deref(), Some("localhost,.internal"));
    }
}

#[test]
fn flags_and_repeats() {
    assert!(config(&["-D"]).run.daemonize);
    assert!(config(&["--daemonize"]).run.daemonize);
    assert!(config(&["--da"]).run.daemonize);
    // Bundled short flags with an attached value, as getopt allows.
    let c = config(&["-Dr0", "-p5000"]);
    assert!(c.run.daemonize);
    assert_eq!(c.run.runtime, None);
    assert_eq!(c.listen.port, 5000);
    // --foreground wins over -D wherever it stands (the systemd unit relies on it).
    assert!(!config(&["--foreground", "-D"]).run.daemonize);
    assert!(!config(&["-D", "--foreground"]).run.daemonize);
    // Last value wins for scalar options; -c accumulates; -B accumulates.
    assert_eq!(config(&["-p", "1", "-p", "2"]).listen.port, 2);
    assert_eq!(
        config(&["-c", "pipelining", "-c", "ASYNC", "-c", "fragmentation"])
            .spop
            .capabilities
            .to_list(),
        "fragmentation,pipelining,async"
    );
    assert_eq!(
        config(&["-B", "epoll", "-B", "IOURING"]).run.libev_backends,
        ["epoll", "iouring"]
    );
    // -d takes a value and is ignored with a notice; operands are ignored with a notice.
    let c = config(&["-d", "5", "-r", "1s", "extra"]);
    assert_eq!(c.run.notices.len(), 2, "{:?}", c.run.notices);
    assert!(c.run.notices[0].contains("-d"));
    assert!(c.run.notices[1].contains("'extra'"));
    assert_eq!(c.run.runtime, Some(Duration::from_secs(1)));
    // A value that starts with '-' is still the option's value, as with getopt.
    assert_eq!(
        config(&["-l", "-weird"]).run.logfile.unwrap().path.to_str(),
        Some("-weird")
    );
    // `--` ends the options.
    assert!(!config(&["--", "-D"]).run.daemonize);
}

/// `--original-capabilities`: exactly the capabilities -c names, as the original agent.
#[test]
fn original_capabilities_accepts_only_what_c_names() {
    let caps = |args: &[&str]| config(args).spop.capabilities.to_list();
    assert_eq!(caps(&["--original-capabilities"]), "");
    assert_eq!(caps(&["--original-capabilities", "-c", "async"]), "async");
    assert_eq!(
        caps(&["-c", "pipelining", "--original-capabilities"]),
        "pipelining"
    );
    assert_eq!(caps(&["-c", "fragmentation"]), "fragmentation,pipelining");
}

#[test]
fn defaults() {
    let c = config(&[]);
    assert_eq!(c.listen.address, "0.0.0.0");
    assert_eq!(c.listen.port, 12345);
    assert_eq!(c.listen.backlog, 10);
    assert_eq!(c.spop.max_frame_size, SpopConfig::DEFAULT_MAX_FRAME_SIZE);
    // Pipelining by default (issue 14); the original offers none unless -c asks.
    assert_eq!(c.spop.capabilities.to_list(), "pipelining");
    assert_eq!(c.spop.processing_delay, Duration::ZERO);
    assert_eq!(c.spop.idle_timeout, None);
    assert_eq!(c.spop.frame_timeout, Duration::from_secs(30));
    assert!(!c.spop.ack_noop);
    // -r may be omitted: run until stopped.
    assert_eq!(c.run.runtime, None);
    assert_eq!(c.run.monitor_interval, Duration::from_secs(5));
    assert_eq!(
        c.run.workers,
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(!c.run.daemonize);
    assert_eq!(c.run.pidfile, None);
    assert_eq!(c.run.logfile, None);
    assert_eq!(c.run.log_filter, "info");
    assert_eq!(c.run.metrics_address, None);
    assert!(c.mirror.is_none());
    let m = config(&["-u", "https://m.example/"]).mirror.unwrap();
    assert_eq!(m.timeout, Duration::from_secs(10));
    assert_eq!(m.connect_timeout, Duration::from_secs(10));
    assert_eq!(m.queue_size, 4096);
    assert_eq!(m.concurrency, 256);
    assert_eq!(m.memory_budget, 64 << 20);
    assert_eq!(m.drain_timeout, Duration::from_secs(5));
    assert!(!m.insecure);
    assert_eq!(m.ca_file, None);
    assert!(m.proxy.is_none());
}

#[test]
fn long_only_options() {
    let c = config(&[
        "-u",
        "http://[::1]:9000/",
        "--log-level",
        "debug,hyper=info",
        "--metrics-address=127.0.0.1:9105",
        "--idle-timeout=30s",
        "--mirror-timeout=2s",
        "--mirror-connect-timeout=500",
        "--mirror-queue=10",
        "--mirror-concurrency=3",
        "--mirror-memory=8M",
        "--mirror-ca-file=/etc/ca.pem",
        "--mirror-insecure",
        "--drain-timeout=0",
        "--frame-timeout=2s",
        "--ack-noop",
    ]);
    assert_eq!(c.spop.frame_timeout, Duration::from_secs(2));
    assert!(c.spop.ack_noop);
    assert_eq!(c.run.log_filter, "debug,hyper=info");
    assert_eq!(
        c.run.metrics_address,
        Some("127.0.0.1:9105".parse().unwrap())
    );
    assert_eq!(c.spop.idle_timeout, Some(Duration::from_secs(30)));
    let m = c.mirror.unwrap();
    assert_eq!(m.url.host(), Some("[::1]"));
    assert_eq!(m.timeout, Duration::from_secs(2));
    // A bare TIME is milliseconds, for the new options too.
    assert_eq!(m.connect_timeout, Duration::from_millis(500));
    assert_eq!(m.queue_size, 10);
    assert_eq!(m.concurrency, 3);
    assert_eq!(m.memory_budget, 8 << 20);
    assert_eq!(m.ca_file.unwrap().to_str(), Some("/etc/ca.pem"));
    assert!(m.insecure);
    assert_eq!(m.drain_timeout, Duration::ZERO);
    // RUST_LOG is honoured when --log-level is absent, and loses to it.
    let from_env =
        |list: &[&str], env: &str| match cli::parse_with_env(args(list), Some(env.into())) {
            Ok(Action::Run(c)) => c.run.log_filter.clone(),
            other => panic!("{other:?}"),
        };
    assert_eq!(from_env(&[], "warn"), "warn");
    assert_eq!(from_env(&["--log-level=error"], "warn"), "error");
}

#[test]
fn time_syntax() {
    let t = |s: &str| cli::parse_time(s, Duration::ZERO, Duration::from_secs(7 * 86_400));
    assert_eq!(t("0"), Ok(Duration::ZERO));
    assert_eq!(t("1500"), Ok(Duration::from_millis(1500)));
    assert_eq!(t("250us"), Ok(Duration::from_micros(250)));
    assert_eq!(t("3ms"), Ok(Duration::from_millis(3)));
    assert_eq!(t("4s"), Ok(Duration::from_secs(4)));
    assert_eq!(t("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(t("6h"), Ok(Duration::from_secs(6 * 3600)));
    assert_eq!(t("7d"), Ok(Duration::from_secs(7 * 86_400)));
    assert_eq!(t(" +2s"), Ok(Duration::from_secs(2)));
    for bad in ["1.5s", "5x", "abc", "1 s", "1S", "0x10", "s"] {
        assert_eq!(
            t(bad),
            Err(format!("invalid time format: '{bad}'")),
            "{bad}"
        );
    }
    assert_eq!(t(""), Err("time not defined".into()));
    assert!(t("99999999999999999999")
        .unwrap_err()
        .starts_with("wrong amount of time"));
    assert!(t("999999999999d")
        .unwrap_err()
        .starts_with("wrong amount of time"));
}

#[test]
fn bytes_syntax() {
    assert_eq!(cli::parse_bytes("65536"), Some(65536));
    assert_eq!(cli::parse_bytes("64K"), Some(64 << 10));
    assert_eq!(cli::parse_bytes("64k"), Some(64 << 10));
    assert_eq!(cli::parse_bytes("64M"), Some(64 << 20));
    assert_eq!(cli::parse_bytes("64MiB"), Some(64 << 20));
    assert_eq!(cli::parse_bytes("1G"), Some(1 << 30));
    for bad in ["", "M", "1.5M", "-1", "1T", "99999999999999G"] {
        assert_eq!(cli::parse_bytes(bad), None, "{bad}");
    }
}

/// The §1.5 table (minus the rows about `-r` being mandatory, which it no longer is) and the
/// other validations: the `ERROR:` lines, in order, and the exit code.
#[rustfmt::skip]
const BAD: &[(&[&str], &[&str])] = &[
    (&["-m", "10"], &["ERROR: max-frame-size cannot be less than 512"]),
    (&["-r0", "-m", "10"], &["ERROR: max-frame-size cannot be less than 512"]),
    (&["-m", "511"], &["ERROR: max-frame-size cannot be less than 512"]),
    (&["-m", "abc"], &["ERROR: max-frame-size cannot be less than 512: 'abc' is not a number"]),
    (&["-m", "-1"], &["ERROR: max-frame-size cannot be less than 512: '-1' is not a number"]),
    (&["-m", "4294967296"], &["ERROR: max-frame-size too large: '4294967296' (at most 4294967295)"]),
    (&["-r0", "-p", "99999"], &["ERROR: invalid port '99999'"]),
    (&["-r0", "-p", "0"], &["ERROR: invalid port '0'"]),
    (&["-p", "80abc"], &["ERROR: invalid port '80abc'"]),
    (&["-r", "abc"], &["ERROR: invalid time format: 'abc'"]),
    (&["-r", "5x"], &["ERROR: invalid time format: '5x'"]),
    (&["-r", "1.5s"], &["ERROR: invalid time format: '1.5s'"]),
    (&["-r", "-1"], &["ERROR: wrong amount of time (allowed range [0, 604800.00s]): '-1'"]),
    (&["-r", "8d"], &["ERROR: wrong amount of time (allowed range [0, 604800.00s]): '8d'"]),
    (&["-r", ""], &["ERROR: time not defined"]),
    (&["-r0", "-n", "0"], &["ERROR: invalid number of workers '0'"]),
    (&["-r0", "-n", "1001"], &["ERROR: invalid number of workers '1001'"]),
    (&["-r0", "-i", "500ms"], &["ERROR: wrong amount of time (allowed range [1000.00ms, 3600.00s]): '500ms'"]),
    (&["-i", "2h"], &["ERROR: wrong amount of time (allowed range [1000.00ms, 3600.00s]): '2h'"]),
    (&["-r0", "-t", "2s"], &["ERROR: wrong amount of time (allowed range [0, 1000.00ms]): '2s'"]),
    (&["-r0", "-c", "foo"], &["ERROR: unsupported capability 'foo'"]),
    (&["-r0", "-B", "foo"], &["ERROR: invalid libev backend 'foo'"]),
    (&["-r0", "-P", "10-5"], &["ERROR: invalid port range: '10-5'"]),
    (&["-r0", "-P", "abc"], &["ERROR: invalid port range: 'abc'"]),
    (&["-r0", "-P", "70000"], &["ERROR: invalid port range: '70000'"]),
    (&["-P", ""], &["ERROR: port range is not defined"]),
    (&["-r0", "-u", "ftp://x"], &["ERROR: Unable to set URL 'ftp://x': the scheme must be http:// or https://"]),
    (&["-u", "localhost:8080"], &["ERROR: Unable to set URL 'localhost:8080': the scheme must be http:// or https://"]),
    (&["-u", "http://u:pw@h/"], &["ERROR: Unable to set URL 'http://***@h/': user:password@ is not supported"]),
    (&["-u", "http://u:pw@h/a b"], &["ERROR: Unable to set URL 'http://***@h/a b': invalid uri character"]),
    // Every mirror-URL rule of the engine is checked here (exit 64, not 70 at startup).
    (&["-u", "http://m/?q"], &["ERROR: Unable to set URL 'http://m/?q': a query string cannot be prepended to request targets"]),
    (&["-u", "http://m?q"], &["ERROR: Unable to set URL 'http://m?q': a query string cannot be prepended to request targets"]),
    (&["-u", "http://m/pre/?"], &["ERROR: Unable to set URL 'http://m/pre/?': a query string cannot be prepended to request targets"]),
    (&["-u", "https://u@m/"], &["ERROR: Unable to set URL 'https://***@m/': user:password@ is not supported"]),
    (&["-u", "http://:80/"], &["ERROR: Unable to set URL 'http://:80/': no host"]),
    (&["-u", "http:///x"], &["ERROR: Unable to set URL 'http:///x': invalid format"]),
    (&["-u", "http://"], &["ERROR: Unable to set URL 'http://': empty string"]),
    (&["-u", ""], &["ERROR: Unable to set URL '': empty string"]),
    (&["-u", "/pre"], &["ERROR: Unable to set URL '/pre': the scheme must be http:// or https://"]),
    (&["-u", "ws://m/"], &["ERROR: Unable to set URL 'ws://m/': the scheme must be http:// or https://"]),
    // Validated at parse time here (the original only when opening the file, exit 255).
    (&["-r0", "-l", "x:foo"], &["ERROR: invalid logfile mode 'x'"]),
    (&["-l", "a:"], &["ERROR: logfile name not defined"]),
    (&["-b", "x"], &["ERROR: invalid connection backlog 'x'"]),
    (&["-x", "socks5://p:1080", "-u", "http://m/"], &["ERROR: invalid proxy URL 'socks5://p:1080'"]),
    (&["-H", "no colon"], &["ERROR: invalid proxy header 'no colon' (expected 'Name: value')"]),
    (&["--metrics-address", "9105"], &["ERROR: invalid metrics address '9105' (expected ADDR:PORT, e.g. 127.0.0.1:9105)"]),
    (&["--log-level", "=bad=filter["], &["ERROR: invalid log filter '=bad=filter['"]),
    (&["--mirror-queue", "0"], &["ERROR: invalid --mirror-queue '0' (allowed range [1, 1000000])"]),
    (&["--mirror-concurrency", "x"], &["ERROR: invalid --mirror-concurrency 'x' (allowed range [1, 65535])"]),
    (&["--mirror-memory", "1K"], &["ERROR: invalid --mirror-memory '1K' (bytes with an optional K/M/G suffix, at least 64K)"]),
    (&["--mirror-timeout", "0"], &["ERROR: wrong amount of time (allowed range [1000us, 3600.00s]): '0'"]),
    // Several problems: every one is reported.
    (&["-r", "abc", "-m", "10", "-n", "0", "-p", "0"], &[
        "ERROR: invalid time format: 'abc'",
        "ERROR: invalid port '0'",
        "ERROR: max-frame-size cannot be less than 512",
        "ERROR: invalid number of workers '0'",
    ]),
    // getopt-level errors.
    (&["-Q"], &["ERROR: unknown option '-Q'"]),
    (&["--bogus"], &["ERROR: unknown option '--bogus'"]),
    (&["-r"], &["ERROR: option '--runtime' requires a value"]),
    (&["--port"], &["ERROR: option '--port' requires a value"]),
    (&["-d"], &["ERROR: option '--debug' requires a value"]),
    (&["--mirror=x"], &["ERROR: option '--mirror' is ambiguous; possibilities: '--mirror-url' '--mirror-interface' '--mirror-local-port'"]),
    (&["--p", "1"], &["ERROR: option '--p' is ambiguous; possibilities: '--pidfile' '--port' '--processing-delay' '--proxy-url' '--proxy-userpwd' '--proxy-header'"]),
    (&["--mirror-c=1s"], &["ERROR: option '--mirror-c' is ambiguous; possibilities: '--mirror-connect-timeout' '--mirror-concurrency' '--mirror-ca-file'"]),
];

#[test]
fn every_bad_value_is_reported() {
    for (list, lines) in BAD {
        let e = error(list);
        assert_eq!(e.code, 64, "{list:?}");
        assert_eq!(e.message.lines().collect::<Vec<_>>(), *lines, "{list:?}");
    }
}

#[test]
fn help_and_version() {
    let Ok(Action::Help(help)) = parse(&["-h"]) else {
        panic!("-h")
    };
    // Every option, with its default where it has one.
    for o in cli::command().get_arguments().filter(|a| !a.is_hide_set()) {
        let long = o.get_long().unwrap();
        assert!(
            help.contains(&format!("--{long}")),
            "--{long} missing from -h"
        );
        if let Some(s) = o.get_short() {
            assert!(
                help.contains(&format!("-{s}, --{long}")),
                "-{s} missing from -h"
            );
        }
    }
    for default in [
        "0.0.0.0",
        "12345",
        "(default: 10)",
        "5s",
        "1048576",
        "CPU cores",
        "10s",
        "4096",
        "256",
        "64M",
    ] {
        assert!(help.contains(default), "{default} missing from -h");
    }
    // The defaults shown are the config's own.
    let shown = |d: Duration| format!("(default: {}).", humantime::format_duration(d));
    for (option, default) in [
        ("--frame-timeout", shown(SpopConfig::DEFAULT_FRAME_TIMEOUT)),
        (
            "--monitor-interval",
            shown(RunConfig::DEFAULT_MONITOR_INTERVAL),
        ),
        ("--mirror-timeout", shown(MirrorConfig::DEFAULT_TIMEOUT)),
        (
            "--mirror-connect-timeout",
            shown(MirrorConfig::DEFAULT_CONNECT_TIMEOUT),
        ),
        (
            "--drain-timeout",
            shown(MirrorConfig::DEFAULT_DRAIN_TIMEOUT),
        ),
        (
            "--port",
            format!("(default: {}).", ListenConfig::DEFAULT_PORT),
        ),
        (
            "--connection-backlog",
            format!("(default: {}).", ListenConfig::DEFAULT_BACKLOG),
        ),
        (
            "--mirror-queue",
            format!("(default: {}).", MirrorConfig::DEFAULT_QUEUE_SIZE),
        ),
        (
            "--max-connections",
            format!("(default: {}).", SpopConfig::DEFAULT_MAX_CONNECTIONS),
        ),
    ] {
        let line = help
            .lines()
            .find(|l| l.contains(&format!("{option}=")))
            .unwrap_or_else(|| panic!("{option} missing from -h"));
        assert!(
            line.ends_with(&default),
            "{line:?} should end with {default:?}"
        );
    }
    // -h wins over -V, and over bad values (nothing is validated with -h).
    assert!(matches!(parse(&["-V", "-h"]), Ok(Action::Help(_))));
    assert!(matches!(parse(&["-h", "-m", "10"]), Ok(Action::Help(_))));
    let Ok(Action::Version(v)) = parse(&["--version"]) else {
        panic!("-V")
    };
    assert_eq!(v, format!("spoa-mirror v{}\n", env!("CARGO_PKG_VERSION")));
    assert!(matches!(parse(&["--vers"]), Ok(Action::Version(_))));
}

#[test]
fn mirror_url_parts() {
    let u = MirrorUrl::parse("HTTPS://m.example:8443/pre//").unwrap();
    assert_eq!(u.scheme(), &http::uri::Scheme::HTTPS);
    assert_eq!(u.authority().as_str(), "m.example:8443");
    assert_eq!(u.prefix(), "/pre");
    assert_eq!(MirrorUrl::from_uri(u.uri()), Ok(u.clone()));
    for (text, prefix) in [
        ("http://m", ""),
        ("http://m/", ""),
        ("http://[::1]:9000/a/b/", "/a/b"),
    ] {
        assert_eq!(MirrorUrl::parse(text).unwrap().prefix(), prefix, "{text}");
    }
    // The -u value reaches the config as given.
    let c = config(&["-u", "http://m:81/pre/"]);
    assert_eq!(c.mirror.unwrap().url.to_string(), "http://m:81/pre/");
    assert_eq!(MirrorUrl::parse("http://m/?q"), Err(UrlError::Query));
    assert_eq!(MirrorUrl::parse("ftp://m/"), Err(UrlError::Scheme));
}

/// Runs the binary with a deadline (none of these start the agent).
fn run(list: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(list)
        .output()
        .expect("run spoa-mirror");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn binary_exit_codes_and_streams() {
    let (code, stdout, stderr) = run(&["-r0", "-p", "99999", "-c", "foo"]);
    assert_eq!(code, 64);
    assert_eq!(
        stderr,
        "ERROR: invalid port '99999'\nERROR: unsupported capability 'foo'\n"
    );
    assert!(
        stdout.contains("Usage: spoa-mirror { -h --help }"),
        "{stdout}"
    );
    assert!(stdout.contains("For help type: spoa-mirror -h"), "{stdout}");

    // A mirror URL the engine would refuse is a command-line error.
    let (code, _, stderr) = run(&["-u", "http://m/?q", "-p", "1"]);
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.starts_with("ERROR: Unable to set URL 'http://m/?q'"),
        "{stderr}"
    );

    let (code, stdout, stderr) = run(&["-x"]);
    assert_eq!(
        (code, stderr.as_str()),
        (64, "ERROR: option '--proxy-url' requires a value\n")
    );
    assert!(stdout.contains("For help type"));

    let (code, stdout, stderr) = run(&["-h"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert!(
        stdout.contains("--mirror-url=URL") && stdout.contains("--metrics-address"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&["-V"]);
    assert_eq!(
        (code, stdout),
        (0, format!("spoa-mirror v{}\n", env!("CARGO_PKG_VERSION")))
    );

    // A startup failure (here: the pidfile's directory does not exist) exits 70, not 64.
    let (code, _, stderr) = run(&[
        "-r",
        "1s",
        "-a",
        "127.0.0.1",
        "-p",
        "1",
        "-F",
        "/nonexistent-dir/x.pid",
    ]);
    assert_eq!(code, 70, "{stderr}");
    assert!(
        stderr.starts_with("ERROR: unable to create pidfile '/nonexistent-dir/x.pid'"),
        "{stderr}"
    );
}

/// packaging/spoa-mirror-replay.1, the same way (the replay tool's own clap definition).
#[test]
fn replay_man_page_is_current() {
    use clap::CommandFactory;
    let mut page = Vec::new();
    clap_mangen::Man::new(spoa_mirror::replay::cli::Args::command())
        .render(&mut page)
        .expect("render man page");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/spoa-mirror-replay.1");
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &page).expect("write man page");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == page,
        "{} is out of date: run UPDATE_MAN=1 cargo test --test cli man_page",
        path.display()
    );
}

/// The replay tool: its usage errors and exit codes (the agent's command line is untouched).
#[test]
fn replay_usage() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_spoa-mirror-replay"))
            .args(args)
            .output()
            .expect("run spoa-mirror-replay")
    };
    let out = run(&["x.gor", "--url", "http://127.0.0.1:9/", "--speed", "5000x"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --speed '5000x'"));
    let out = run(&["/nonexistent.gor", "--url", "http://127.0.0.1:9/"]);
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.gor"));
    let out = run(&["x.gor", "--url", "ftp://h/"]);
    assert_eq!(out.status.code(), Some(64));
    let out = run(&["x.gor"]);
    assert_eq!(out.status.code(), Some(2), "clap: --url is required");
}

/// packaging/spoa-mirror.1 is generated from the clap definition; this fails when it is out
/// of date. Regenerate with `UPDATE_MAN=1 cargo test --test cli man_page`.
#[test]
fn man_page_is_current() {
    let mut page = Vec::new();
    clap_mangen::Man::new(cli::command())
        .render(&mut page)
        .expect("render man page");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/spoa-mirror.1");
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &page).expect("write man page");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == page,
        "{} is out of date: run UPDATE_MAN=1 cargo test --test cli man_page",
        path.display()
    );
}
