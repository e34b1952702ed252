//! `--config FILE`: the TOML file of mirror targets, checked value by value with the same rules
//! as the flags. Every error names `file:line:col` (toml's spans: each value is validated while
//! it is deserialized, so a bad value carries its own position).
//!
//! The mirror flags (`--mirror-timeout`, `--mirror-queue`, `-x`, `--mirror-ca-file`, ...) are
//! the defaults of every target of the file; `-u`, when given, adds a target named `default`.

mod schema;

use crate::config::{MirrorConfig, ProxyConfig, ShadowConfig, ShadowRole, TargetConfig};
use schema::{FileSpec, TargetSpec};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// A file larger than this is refused (a target list is a few KiB).
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;
/// Targets one file may hold.
pub const MAX_TARGETS: usize = 64;

/// Reads and checks `path`; the targets with the flags' settings as defaults. The error is
/// one line, `file:line:col: message` when it is about a place in the file.
pub fn load(path: &Path, defaults: &MirrorConfig) -> Result<Vec<TargetConfig>, String> {
    load_all(path, defaults).map(|(targets, _)| targets)
}

/// [`load`], and the `[shadow]` table if the file has one.
pub fn load_all(
    path: &Path,
    defaults: &MirrorConfig,
) -> Result<(Vec<TargetConfig>, Option<ShadowConfig>), String> {
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_string(&mut text))
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("{shown}: larger than {MAX_FILE_SIZE} bytes"));
    }
    parse_all(&text, defaults).map_err(|(span, msg)| match span {
        Some(at) => {
            let (line, col) = line_col(&text, at);
            format!("{shown}:{line}:{col}: {msg}")
        }
        None => format!("{shown}: {msg}"),
    })
}

/// `-u`'s target (if any) first, then the file's; a file target may not be called `default`
/// when `-u` is given.
pub fn combine(
    cli: Option<&MirrorConfig>,
    file: Vec<TargetConfig>,
) -> Result<Vec<TargetConfig>, String> {
    let mut all = Vec::with_capacity(file.len() + 1);
    if let Some(m) = cli {
        if file.iter().any(|t| t.name == TargetConfig::DEFAULT_NAME) {
            return Err(format!(
                "the configuration file has a target named '{}', the name of -u's target: \
                 rename it or leave out -u",
                TargetConfig::DEFAULT_NAME
            ));
        }
        all.push(TargetConfig {
            name: TargetConfig::DEFAULT_NAME.to_owned(),
            mirror: m.clone(),
            policy: Default::default(),
        });
    }
    all.extend(file);
    Ok(all)
}

type Failure = (Option<usize>, String);

/// The file's text → targets; the error has the byte offset it is about.
#[cfg(test)]
fn parse(text: &str, defaults: &MirrorConfig) -> Result<Vec<TargetConfig>, Failure> {
    parse_all(text, defaults).map(|(targets, _)| targets)
}

/// The file's text → targets and the `[shadow]` table.
fn parse_all(
    text: &str,
    defaults: &MirrorConfig,
) -> Result<(Vec<TargetConfig>, Option<ShadowConfig>), Failure> {
    let spec: FileSpec =
        toml::from_str(text).map_err(|e| (e.span().map(|s| s.start), e.message().to_owned()))?;
    let shadow = spec.shadow.map(|s| s.config());
    if spec.target.len() > MAX_TARGETS {
        return Err((None, format!("more than {MAX_TARGETS} targets")));
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(spec.target.len());
    for t in spec.target {
        let at = t.name.span().start;
        if !names.insert(t.name.get_ref().to_string()) {
            return Err((
                Some(at),
                format!("duplicate target name '{}'", t.name.get_ref()),
            ));
        }
        let record = match &t.record {
            Some(spec) => Some(spec.config().map_err(|e| (Some(at), e))?),
            None => None,
        };
        let compare = t.compare.as_ref().map(|c| c.0);
        if compare.is_some() && shadow.is_none() {
            return Err((
                Some(at),
                "compare needs a [shadow] table (the SPOE message with the primary's response)"
                    .to_owned(),
            ));
        }
        let mut checked = target(t, defaults);
        checked.mirror.record = record;
        checked.mirror.compare = compare;
        out.push(checked);
    }
    if shadow.is_some() {
        let roles = |r: ShadowRole| out.iter().filter(|t| t.mirror.compare == Some(r)).count();
        if roles(ShadowRole::Candidate) == 0 {
            return Err((
                None,
                "the [shadow] table needs a target with compare = \"candidate\"".to_owned(),
            ));
        }
        if roles(ShadowRole::Reference) > 1 {
            return Err((
                None,
                "at most one target may have compare = \"reference\"".to_owned(),
            ));
        }
    }
    Ok((out, shadow))
}

/// One checked target: the defaults, overridden by what the table says.
fn target(t: TargetSpec, defaults: &MirrorConfig) -> TargetConfig {
    let policy = t.policy();
    let mut m = defaults.clone();
    m.url = t.url.0.into_uri();
    if let Some(v) = t.timeout {
        m.timeout = v.0;
    }
    if let Some(v) = t.connect_timeout {
        m.connect_timeout = v.0;
    }
    if let Some(v) = t.queue {
        m.queue_size = v.0;
    }
    if let Some(v) = t.concurrency {
        m.concurrency = v.0;
    }
    if let Some(v) = t.memory {
        m.memory_budget = v.0;
    }
    if let Some(url) = t.proxy {
        m.proxy = Some(ProxyConfig {
            url: url.0,
            userpwd: None,
            headers: Vec::new(),
            noproxy: None,
        });
    }
    if let Some(f) = t.ca_file {
        m.ca_file = Some(f);
    }
    if let Some(i) = t.insecure {
        m.insecure = i;
    }
    TargetConfig {
        name: t.name.into_inner().into_string(),
        mirror: m,
        policy,
    }
}

/// 1-based line and column (in characters) of byte `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// `--config` re-read (SIGHUP): the file with `config`'s flags as defaults, and `-u`'s target
/// first; what [`crate::config::Config::targets_loader`] points to.
pub fn reload(config: &crate::config::Config) -> Result<Vec<TargetConfig>, String> {
    let Some(path) = &config.config_file else {
        return Ok(config.targets.clone());
    };
    let file = load(path, &config.target_defaults)?;
    combine(config.mirror.as_ref(), file)
}

#[cfg(test)]
mod tests;
