//! The getopt-compatible reading of argv: short bundles (`-Dr0`), `--opt=val` and
//! `--opt val`, unambiguous long prefixes (a prefix that named exactly one option of the
//! original still names it, whatever long-only options this implementation adds), the next
//! word taken as the value whatever it looks like (`-r -1`), the last value winning for
//! scalar options and every value kept for repeatable ones (`-c`, `-B`, `-H`). clap does the
//! splitting once the long options are spelled out in full.

use super::options::{Opt, OPTIONS};
use super::{usage_error, CliError};
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::ffi::OsString;

/// Adds every option of the table to `cmd`, with getopt's rules.
pub(super) fn add_options(cmd: Command) -> Command {
    let mut cmd = cmd
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .dont_delimit_trailing_values(true);
    for o in OPTIONS {
        let mut arg = Arg::new(o.id).long(o.long).help(o.help_text());
        if let Some(s) = o.short {
            arg = arg.short(s);
        }
        arg = match (o.value, o.repeat) {
            (None, _) => arg.action(ArgAction::SetTrue),
            (Some(v), repeat) => arg
                .value_name(v)
                .num_args(1)
                // getopt takes the next word as the value whatever it looks like (`-r -1`).
                .allow_hyphen_values(true)
                .action(if repeat {
                    ArgAction::Append
                } else {
                    ArgAction::Set
                }),
        };
        cmd = cmd.arg(arg);
    }
    // getopt permutes and ignores operands; accept them and warn.
    cmd.arg(
        Arg::new("operands")
            .num_args(0..)
            .action(ArgAction::Append)
            .hide(true),
    )
}

/// Splits `args` (the program name first) by `cmd`, built with [`add_options`].
pub(super) fn get_matches(cmd: Command, args: Vec<OsString>) -> Result<ArgMatches, CliError> {
    let args = expand_long_prefixes(args)?;
    cmd.try_get_matches_from(args).map_err(clap_error)
}

fn find_long(name: &str) -> Result<Option<&'static Opt>, CliError> {
    if let Some(o) = OPTIONS.iter().find(|o| o.long == name) {
        return Ok(Some(o));
    }
    let matching: Vec<&Opt> = OPTIONS
        .iter()
        .filter(|o| o.long.starts_with(name))
        .collect();
    let originals: Vec<&Opt> = matching.iter().copied().filter(|o| o.original).collect();
    match (originals.as_slice(), matching.as_slice()) {
        ([one], _) | ([], [one]) => Ok(Some(one)),
        (_, []) => Ok(None),
        (many, all) => {
            let list = if many.is_empty() { all } else { many };
            let names = list
                .iter()
                .map(|o| format!("'--{}'", o.long))
                .collect::<Vec<_>>()
                .join(" ");
            Err(usage_error(vec![format!(
                "option '--{name}' is ambiguous; possibilities: {names}"
            )]))
        }
    }
}

/// Rewrites every abbreviated long option to its full name, so clap only sees exact names.
/// Words that are values of the option before them are left alone, as getopt does.
fn expand_long_prefixes(args: Vec<OsString>) -> Result<Vec<OsString>, CliError> {
    let mut out = Vec::with_capacity(args.len());
    let mut words = args.into_iter();
    out.extend(words.next());
    let mut value_next = false;
    while let Some(word) = words.next() {
        if value_next {
            value_next = false;
            out.push(word);
            continue;
        }
        let Some(text) = word.to_str() else {
            out.push(word);
            continue;
        };
        if text == "--" {
            out.push(word);
            out.extend(words);
            break;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            match find_long(name)? {
                Some(o) => {
                    value_next = o.value.is_some() && value.is_none();
                    out.push(match value {
                        Some(v) => format!("--{}={v}", o.long).into(),
                        None => format!("--{}", o.long).into(),
                    });
                }
                None => out.push(word),
            }
        } else if let Some(cluster) = text.strip_prefix('-') {
            // `-Dr0`: flags, then at most one option whose value is the rest or the next word.
            for (i, c) in cluster.char_indices() {
                if OPTIONS
                    .iter()
                    .any(|o| o.short == Some(c) && o.value.is_some())
                {
                    value_next = cluster.get(i + c.len_utf8()..).is_some_and(str::is_empty);
                    break;
                }
            }
            out.push(word);
        } else {
            out.push(word);
        }
    }
    Ok(out)
}

/// clap's own errors (unknown option, missing value) as one `ERROR:` line.
fn clap_error(e: clap::Error) -> CliError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let line = match e.kind() {
        ErrorKind::UnknownArgument => format!("unknown option '{arg}'"),
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            format!(
                "option '{}' requires a value",
                arg.split(' ').next().unwrap_or_default()
            )
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_string()
        }
    };
    usage_error(vec![line])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_original_prefix_stays_unambiguous() {
        // A prefix that named exactly one original option still does.
        for o in OPTIONS.iter().filter(|o| o.original) {
            for len in 1..=o.long.len() {
                let prefix = &o.long[..len];
                let originals = OPTIONS
                    .iter()
                    .filter(|x| x.original && x.long.starts_with(prefix))
                    .count();
                if originals == 1 {
                    assert_eq!(
                        find_long(prefix).unwrap().map(|x| x.id),
                        Some(o.id),
                        "{prefix}"
                    );
                }
            }
        }
    }
}
