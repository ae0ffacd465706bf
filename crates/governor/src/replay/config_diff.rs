//! `replay --config current.toml --candidate new.toml`: the same data and plans (sample signals
//! or `--plans`) decided under both configs, and what changed — every plan whose verdict or
//! reason differs, with the first gate whose outcome differs (the one that made the
//! difference), the counts by transition, the settings that differ, and both governed
//! accounts side by side.

use super::engine::{run_on, BarStat, Recording, ReplayOptions, ReplayResult};
use super::outcome::AccountOutcome;
use governor_core::snapshot::DecisionRecord;
use governor_core::time::Timestamp;
use governor_core::trace::Trace;
use governor_core::Config;
use serde::Serialize;
use std::collections::BTreeMap;

/// A plan decided differently under the candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangedPlan {
    /// The plan.
    pub plan_id: String,
    /// When the current config decided it (else the candidate).
    pub t: Timestamp,
    /// Its symbol.
    pub symbol: String,
    /// Its action.
    pub action: String,
    /// The current config's verdict and reason (`—`: not decided under it).
    pub current: String,
    /// The candidate's.
    pub candidate: String,
    /// The first gate whose outcome differs between the two traces (`—` when the plan was
    /// decided under one config only: a close the other never published).
    pub gate: String,
}

/// One account's path, for the chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountPath {
    /// Bar close times.
    pub t: Vec<i64>,
    /// Governed equity.
    pub equity: Vec<f64>,
    /// Governed drawdown (fraction).
    pub drawdown: Vec<f64>,
    /// Governed notional ÷ equity.
    pub exposure: Vec<f64>,
}

impl AccountPath {
    fn of(bars: &[BarStat]) -> Self {
        AccountPath {
            t: bars.iter().map(|b| b.t.millis()).collect(),
            equity: bars.iter().map(|b| b.governed.equity).collect(),
            drawdown: bars.iter().map(|b| b.governed.drawdown).collect(),
            exposure: bars
                .iter()
                .map(|b| {
                    if b.governed.equity > 0.0 {
                        b.governed.notional / b.governed.equity
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }
}

/// The report's config diff section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigDiff {
    /// Each setting that differs: key, current value, candidate value.
    pub settings: Vec<(String, String, String)>,
    /// Plans decided under either config.
    pub plans_compared: usize,
    /// Every plan whose verdict or reason changed, in time order.
    pub changed: Vec<ChangedPlan>,
    /// Counts by `current → candidate`.
    pub transitions: BTreeMap<String, usize>,
    /// The current config's governed account.
    pub current: AccountOutcome,
    /// The candidate's.
    pub candidate: AccountOutcome,
    /// Both paths, bar by bar.
    pub paths: (AccountPath, AccountPath),
}

/// A record's verdict as the diff shows it: `ALLOW`, or the verdict and its reason.
fn verdict(r: Option<&DecisionRecord>) -> String {
    match r {
        None => "—".to_owned(),
        Some(r) => match r.reason {
            Some(reason) => format!("{} {}", r.verdict.as_str(), reason.code()),
            None => r.verdict.as_str().to_owned(),
        },
    }
}

/// The first gate whose outcome differs between two traces of the same plan.
fn deciding_gate(a: &Trace, b: &Trace) -> String {
    let (a, b) = (a.lines(), b.lines());
    let differs = a
        .iter()
        .zip(b)
        .find(|(x, y)| x.gate != y.gate || x.outcome != y.outcome);
    match differs {
        Some((x, y)) if x.gate == y.gate => x.gate.to_owned(),
        Some((x, y)) => format!("{} / {}", x.gate, y.gate),
        // One trace stops where the other goes on: the gate after the common part.
        None => {
            let longer = if a.len() > b.len() { a } else { b };
            longer
                .get(a.len().min(b.len()))
                .map_or("—".to_owned(), |l| l.gate.to_owned())
        }
    }
}

/// Every setting as `section.key = value` text.
fn flat_settings(cfg: &Config) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    let table = toml::Value::try_from(cfg).expect("the config serializes");
    walk("", &table, &mut out);
    out
}

/// The settings that differ between two configs (a setting left unset shows as `—`).
pub fn setting_changes(current: &Config, candidate: &Config) -> Vec<(String, String, String)> {
    let (a, b) = (flat_settings(current), flat_settings(candidate));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or("—".into());
            (k.clone(), show(&a), show(&b))
        })
        .collect()
}

/// Compares two runs over the same data and plans.
pub fn diff(
    current_cfg: &Config,
    candidate_cfg: &Config,
    current: &ReplayResult,
    candidate: &ReplayResult,
) -> ConfigDiff {
    let by_id = |r: &ReplayResult| -> BTreeMap<String, usize> {
        r.decisions
            .iter()
            .enumerate()
            .map(|(i, d)| (d.plan_id.to_string(), i))
            .collect()
    };
    let (ours, theirs) = (by_id(current), by_id(candidate));
    let ids: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let mut changed = Vec::new();
    let mut transitions: BTreeMap<String, usize> = BTreeMap::new();
    for id in &ids {
        let a = ours.get(*id).map(|&i| &*current.decisions[i]);
        let b = theirs.get(*id).map(|&i| &*candidate.decisions[i]);
        let (va, vb) = (verdict(a), verdict(b));
        if va == vb {
            continue;
        }
        *transitions.entry(format!("{va} → {vb}")).or_default() += 1;
        let either = a.or(b).expect("decided under one config at least");
        let gate = match (
            a.and_then(|r| r.trace.lines()),
            b.and_then(|r| r.trace.lines()),
        ) {
            (Some(x), Some(y)) => deciding_gate(x, y),
            _ => "—".to_owned(),
        };
        changed.push(ChangedPlan {
            plan_id: (*id).clone(),
            t: either.decided_at,
            symbol: either.symbol.to_string(),
            action: either.action.clone(),
            current: va,
            candidate: vb,
            gate,
        });
    }
    changed.sort_by(|x, y| x.t.cmp(&y.t).then_with(|| x.plan_id.cmp(&y.plan_id)));
    ConfigDiff {
        settings: setting_changes(current_cfg, candidate_cfg),
        plans_compared: ids.len(),
        changed,
        transitions,
        current: AccountOutcome::of(&current.bars, current.initial_equity),
        candidate: AccountOutcome::of(&candidate.bars, candidate.initial_equity),
        paths: (
            AccountPath::of(&current.bars),
            AccountPath::of(&candidate.bars),
        ),
    }
}

/// Runs the candidate on the same recording (its journal in `out/candidate/`) and compares it
/// with the current run.
pub fn run_candidate(
    recording: &Recording,
    current_cfg: &Config,
    candidate_cfg: &Config,
    opts: &ReplayOptions,
    current: &ReplayResult,
) -> anyhow::Result<ConfigDiff> {
    let candidate_opts = ReplayOptions {
        out_dir: opts.out_dir.join("candidate"),
        progress: false,
        ..opts.clone()
    };
    let candidate = run_on(recording, candidate_cfg, &candidate_opts)?;
    Ok(diff(current_cfg, candidate_cfg, current, &candidate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor_core::reason::BlockReason;
    use governor_core::trace::Outcome;

    fn trace(lines: &[(&'static str, Outcome)]) -> Trace {
        let mut t = Trace::default();
        for (g, o) in lines {
            t.line(g, o.clone());
        }
        t
    }

    #[test]
    fn the_deciding_gate_is_the_first_whose_outcome_differs() {
        let a = trace(&[
            ("schema", Outcome::Pass),
            ("correlation", Outcome::Block(BlockReason::CorrelationCap)),
        ]);
        let b = trace(&[
            ("schema", Outcome::Pass),
            ("correlation", Outcome::Pass),
            ("margin", Outcome::Pass),
        ]);
        assert_eq!(deciding_gate(&a, &b), "correlation");
        // Different gates at the same place (a path that branched): both are named.
        let d = trace(&[("schema", Outcome::Pass), ("exit_lock", Outcome::Pass)]);
        assert_eq!(deciding_gate(&a, &d), "correlation / exit_lock");
        let c = trace(&[("schema", Outcome::Pass)]);
        assert_eq!(
            deciding_gate(&c, &b),
            "correlation",
            "where one trace stops"
        );
        assert_eq!(deciding_gate(&b, &b), "—");
    }

    #[test]
    fn only_the_settings_that_differ_are_listed() {
        let a = Config::default();
        let b = a.with_setting("correlation.max", "0.7").unwrap();
        let changes = setting_changes(&a, &b);
        assert_eq!(
            changes,
            [(
                "correlation.max".to_owned(),
                "0.8".to_owned(),
                "0.7".to_owned()
            )]
        );
        assert!(setting_changes(&a, &a).is_empty());
    }
}
