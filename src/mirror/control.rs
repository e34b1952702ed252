//! Run-time control of the engine, for the admin endpoint (`src/admin/`): pause and resume
//! mirroring for every target or for one, change a target's sampling and rate cap, read each
//! target's state.
//!
//! The pause flags are the `mirroring_paused` and per-target `paused` gauges: the engine reads
//! them with one atomic load per message (`Inner::offer`) and per target (`Target::offer`), so
//! a pause holds from the very next request. A sampling or rate change builds that target's
//! policy anew (breaker state kept) and swaps the target list, as a reload does, under the
//! same lock.
//!
//! A SIGHUP reload puts the file's policy in force: run-time sampling and rate changes are
//! replaced by the file's (logged); pauses are not configuration and stay (logged).

use super::target::Target;
use super::Mirror;
use crate::config::{MirrorConfig, PolicyConfig, RateCap, SampleKey, Sampling};
use crate::stats::{get, Stats, TargetStats};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Why a change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no target named '{0}'")]
    UnknownTarget(String),
    #[error("the agent is stopping")]
    Stopping,
    #[error("{0}")]
    Invalid(String),
}

/// One target as the admin endpoint shows it.
pub struct TargetView {
    pub name: String,
    /// Its connection settings.
    pub mirror: MirrorConfig,
    /// The policy in force (run-time changes included).
    pub policy: PolicyConfig,
    /// The policy the configuration gives.
    pub configured: PolicyConfig,
    pub paused: bool,
    pub breaker_open: bool,
    pub stats: Arc<TargetStats>,
}

/// The policy of one target before and after a change.
pub struct PolicyChange {
    pub old: PolicyConfig,
    pub new: PolicyConfig,
}

impl Mirror {
    /// Whether mirroring is paused for every target.
    pub fn paused(&self) -> bool {
        get(&self.inner.stats.mirroring_paused) != 0
    }

    /// Pauses (or resumes) mirroring for every target; returns whether it was paused before.
    /// Per-target pauses are kept as they are.
    pub fn set_paused(&self, paused: bool) -> bool {
        let flag = &self.inner.stats.mirroring_paused;
        flag.swap(u64::from(paused), Ordering::AcqRel) != 0
    }

    /// Pauses (or resumes) one target; returns whether it was paused before.
    pub fn set_target_paused(&self, name: &str, paused: bool) -> Result<bool, ControlError> {
        let _one = self.lock()?;
        let targets = self.inner.targets.load();
        let target = targets
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| ControlError::UnknownTarget(name.to_owned()))?;
        let flag = &target.stats().paused;
        Ok(flag.swap(u64::from(paused), Ordering::AcqRel) != 0)
    }

    /// Mirrors `percent` % of the target's requests (`None`: all of them, no sampling). The
    /// sampling key (`by`) stays the one in force, else the configured one, else random.
    pub fn set_sample(
        &self,
        name: &str,
        percent: Option<f64>,
    ) -> Result<PolicyChange, ControlError> {
        if let Some(p) = percent {
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return Err(ControlError::Invalid(format!(
                    "percent {p} is out of range [0, 100]"
                )));
            }
        }
        self.change_policy(name, |now, configured| {
            let by = now
                .sample
                .as_ref()
                .or(configured.sample.as_ref())
                .map_or(SampleKey::Random, |s| s.by.clone());
            let sample = percent.map(|percent| Sampling { percent, by });
            (sample, now.rate)
        })
    }

    /// Caps the target's rate (`None`: no cap).
    pub fn set_rate(
        &self,
        name: &str,
        rate: Option<RateCap>,
    ) -> Result<PolicyChange, ControlError> {
        self.change_policy(name, |now, _| (now.sample.clone(), rate))
    }

    /// Puts the configured sampling and rate cap back in force.
    pub fn reset_policy(&self, name: &str) -> Result<PolicyChange, ControlError> {
        self.change_policy(name, |_, configured| {
            (configured.sample.clone(), configured.rate)
        })
    }

    /// Every target, in order.
    pub fn targets(&self) -> Vec<TargetView> {
        self.inner
            .targets
            .load()
            .iter()
            .map(|t| TargetView {
                name: t.name().to_owned(),
                mirror: t.mirror_config().clone(),
                policy: t.policy().config().clone(),
                configured: t.configured().clone(),
                paused: get(&t.stats().paused) != 0,
                breaker_open: t.policy().breaker_open(),
                stats: Arc::clone(t.stats()),
            })
            .collect()
    }

    /// One reload or change at a time.
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, ControlError> {
        let one = self
            .inner
            .reloading
            .lock()
            .map_err(|_| ControlError::Stopping)?;
        if self.inner.closing.is_cancelled() {
            return Err(ControlError::Stopping);
        }
        Ok(one)
    }

    /// Rebuilds target `name`'s policy with the sampling and rate cap `change` gives (from the
    /// policy in force and the configured one) and swaps the target list.
    fn change_policy(
        &self,
        name: &str,
        change: impl Fn(&PolicyConfig, &PolicyConfig) -> (Option<Sampling>, Option<RateCap>),
    ) -> Result<PolicyChange, ControlError> {
        let _one = self.lock()?;
        let old = self.inner.targets.load_full();
        let mut result = None;
        let built: Vec<Target> = old
            .iter()
            .map(|t| {
                if t.name() != name {
                    return t.with_policy(Arc::clone(t.policy()));
                }
                let now = t.policy().config();
                let (sample, rate) = change(now, t.configured());
                let policy = t.policy().with_overrides(sample, rate);
                result = Some(PolicyChange {
                    old: now.clone(),
                    new: policy.config().clone(),
                });
                t.with_policy(Arc::new(policy))
            })
            .collect();
        let result = result.ok_or_else(|| ControlError::UnknownTarget(name.to_owned()))?;
        self.inner.targets.store(Arc::new(built));
        Ok(result)
    }
}

/// At a reload: says which run-time changes the file replaced, and which pauses stay.
pub(super) fn log_reload(stats: &Stats, old: &[Target], new: &[Target]) {
    if get(&stats.mirroring_paused) != 0 {
        tracing::info!("reload: mirroring stays paused for every target (admin: POST /resume)");
    }
    for t in new {
        let name = t.name();
        if old.iter().any(|o| o.name() == name && o.overridden()) {
            tracing::info!(
                "reload: target '{name}': run-time sampling/rate changes replaced by the configuration's"
            );
        }
        if get(&t.stats().paused) != 0 {
            tracing::info!(
                "reload: target '{name}' stays paused (admin: POST /targets/{name}/resume)"
            );
        }
    }
}
