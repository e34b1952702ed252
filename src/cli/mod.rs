//! The command line of `spoa-mirror` / `hapee-spoa-mirror`, flag for flag, turned into a
//! validated [`Config`].
//!
//! clap only splits the command line into raw strings; every value is checked after
//! parsing, so that all problems are reported at once, each on its own `ERROR:` line, with the
//! texts the original prints (scripts and operators grep for them). Long options accept
//! unambiguous prefixes as getopt does; a prefix that named exactly one option of the original
//! still names it, whatever long-only options this implementation adds.
//!
//! `options` is the option table, `getopt` reads argv with getopt's rules, `values`
//! parses each kind of value and `to_config` maps the result to the config structs.

pub mod file;
mod getopt;
mod options;
mod to_config;
mod values;

pub use values::{parse_bytes, parse_time};

use crate::config::{Config, RunConfig};
use crate::process::EXIT_USAGE;
use clap::Command;
use options::OPTIONS;
use std::ffi::OsString;

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    Run(Box<Config>),
    /// `-h`: the full help text, for stdout, exit 0.
    Help(String),
    /// `-V`: the version line, for stdout, exit 0.
    Version(String),
    /// `--check-config FILE`: the file is valid; the effective targets, for stdout, exit 0.
    CheckConfig(String),
}

/// A bad command line: one `ERROR: ...` line per problem, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

fn usage_error(lines: Vec<String>) -> CliError {
    let message = lines
        .iter()
        .map(|l| format!("ERROR: {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    CliError {
        message,
        code: EXIT_USAGE,
    }
}

const NOTES: &str = "\
Supported libev backend names (accepted, ignored: tokio chooses): select, poll, epoll,
kqueue, devpoll, port, linuxaio, iouring.

Supported capabilities: fragmentation, pipelining, async.

Log file modes: 'a' appends, 'w' truncates; a capital letter ('A', 'W') writes every line
at once instead of buffering. A plain FILE appends.

TIME is an integer with an optional unit (us, ms, s, m, h, d); without a unit it is in
milliseconds. BYTES is an integer with an optional K, M or G suffix (powers of 1024).

The log filter can also be set with the RUST_LOG environment variable.";

fn program() -> &'static str {
    "spoa-mirror"
}

fn usage_lines() -> String {
    let p = program();
    format!("Usage: {p} {{ -h --help }}\n       {p} {{ -V --version }}\n       {p} [ -r --runtime=TIME ] [OPTION]...\n")
}

/// The short usage printed (on stdout) after a command-line error.
pub fn short_usage() -> String {
    format!("\n{}\nFor help type: {} -h\n", usage_lines(), program())
}

/// The version line (`-V`).
pub(crate) fn version() -> String {
    format!("{} v{}\n", program(), env!("CARGO_PKG_VERSION"))
}

/// The clap command built from the option table (also used for the man page).
pub fn command() -> Command {
    let cmd = Command::new(program())
        .version(env!("CARGO_PKG_VERSION"))
        .about("HAProxy SPOE agent that mirrors HTTP requests to another server")
        .long_about(
            "spoa-mirror receives a copy of each HTTP request from HAProxy's SPOE filter over SPOP, \
             acknowledges it at once and sends the request, fire-and-forget, to the mirror URL. \
             It is a drop-in replacement for the C agents spoa-mirror and hapee-spoa-mirror: \
             same options, same defaults where they are safe.",
        )
        .override_usage(usage_lines().trim_start_matches("Usage: ").to_string())
        .after_long_help(NOTES);
    getopt::add_options(cmd)
}

/// The full help text (`-h`), every option with its default.
pub(crate) fn help() -> String {
    let mut out = format!("\n{}\n", usage_lines());
    let mut section = |title: &str, original: bool| {
        out.push_str(title);
        for o in OPTIONS.iter().filter(|o| o.original == original) {
            let short = o
                .short
                .map(|c| format!("-{c}, "))
                .unwrap_or_else(|| "    ".into());
            let value = o.value.map(|v| format!("={v}")).unwrap_or_default();
            let left = format!("  {short}--{}{value}", o.long);
            let mut help = o.help_text();
            if o.id == "num-workers" {
                help = help.replace(
                    options::WORKERS,
                    &format!(
                        "{}, {} here",
                        options::WORKERS,
                        RunConfig::default().workers
                    ),
                );
            }
            out.push_str(&format!("{left:<37} {help}\n"));
        }
    };
    section(
        "Options (those of spoa-mirror and hapee-spoa-mirror):\n",
        true,
    );
    section("\nOptions of this implementation (long only):\n", false);
    out.push('\n');
    out.push_str(NOTES);
    out.push_str("\n\n");
    out
}

/// Parses a command line (`args` includes the program name) as spoa-mirror does.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action, CliError> {
    parse_with_env(args, std::env::var("RUST_LOG").ok())
}

/// [`parse`] with the value of `RUST_LOG` passed in, so tests need no environment.
pub fn parse_with_env(
    args: impl IntoIterator<Item = OsString>,
    rust_log: Option<String>,
) -> Result<Action, CliError> {
    let matches = getopt::get_matches(command(), args.into_iter().collect())?;
    if matches.get_flag("help") {
        return Ok(Action::Help(help()));
    }
    if matches.get_flag("version") {
        return Ok(Action::Version(version()));
    }
    let config = to_config::to_config(&matches, rust_log)?;
    if matches.contains_id("check-config") {
        let mut text = crate::config::describe(&config.targets);
        if let Some(shadow) = &config.shadow {
            text.push_str(&shadow.describe());
            text.push('\n');
        }
        return Ok(Action::CheckConfig(text));
    }
    Ok(Action::Run(Box::new(config)))
}
