//! Runs seeds: each seed is one deployment ([`World`]) stepped by one seeded random source on
//! the simulated clock, its invariants checked after every step, then settled (faults stop,
//! streams drain) and checked again. A seed that breaks an invariant stops there and is reported
//! with its step and a readable log of the steps that led to it; running that seed again
//! (`--seed S`) replays it exactly.

use super::invariants::Violation;
use super::rng::Rng;
use super::world::{Market, Schedule, World};
use crate::logfmt;
use governor_core::Config;
use std::collections::BTreeMap;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The schedule the seeds draw their steps from.
    pub schedule: Schedule,
    /// The first seed.
    pub first_seed: u64,
    /// How many seeds, from the first.
    pub seeds: u64,
    /// Steps per seed before the faults stop.
    pub steps: usize,
}

/// A seed that broke an invariant.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The step after which the invariants were broken (`None`: when the run settled).
    pub step: Option<usize>,
    /// What broke.
    pub violations: Vec<Violation>,
    /// The steps that led there, with the service's own log lines between them.
    pub log: String,
}

/// What a run of seeds found.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Steps taken, over every seed (settling not counted).
    pub steps: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// The seeds that broke an invariant.
    pub failures: Vec<Failure>,
}

impl Summary {
    /// Invariant violations found (a failing seed stops at its first failing step, whose
    /// violations all count).
    pub fn violations(&self) -> usize {
        self.failures.iter().map(|f| f.violations.len()).sum()
    }

    /// The last line of a run: seeds, steps, faults by kind, and `violations=V`.
    pub fn line(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(kind, n)| format!("{kind}={n}"))
            .collect();
        let faults = if faults.is_empty() {
            "none".to_owned()
        } else {
            faults.join(" ")
        };
        format!(
            "sim: seeds={} steps={} faults: {faults} violations={}",
            self.seeds,
            self.steps,
            self.violations()
        )
    }
}

/// Runs one seed; returns its steps, faults, and its failure if it broke an invariant. With
/// `keep_log`, the log is kept even when nothing broke (for `--seed`).
pub fn run_seed(
    market: &Market,
    cfg: &Config,
    schedule: Schedule,
    seed: u64,
    steps: usize,
    keep_log: bool,
) -> (usize, BTreeMap<&'static str, u64>, Option<Failure>) {
    logfmt::capture_on_this_thread();
    let _ = logfmt::take_captured();
    let mut rng = Rng::new(seed);
    let mut world = World::new(market, cfg.clone(), schedule);
    let mut log = String::new();
    let mut failure = None;
    let mut taken = 0;
    for step in 0..steps {
        let did = world.step(&mut rng);
        taken += 1;
        log.push_str(&format!("step {step}: {did}\n"));
        log.push_str(&logfmt::take_captured());
        let broken = world.check();
        if !broken.is_empty() {
            failure = Some((Some(step), broken));
            break;
        }
    }
    if failure.is_none() {
        let broken = world.settle();
        log.push_str("settled: faults stopped, streams drained\n");
        log.push_str(&logfmt::take_captured());
        if !broken.is_empty() {
            failure = Some((None, broken));
        }
    }
    let failure = match failure {
        Some((step, violations)) => Some(Failure {
            seed,
            step,
            violations,
            log,
        }),
        None if keep_log => Some(Failure {
            seed,
            step: None,
            violations: Vec::new(),
            log,
        }),
        None => None,
    };
    (taken, world.faults, failure)
}

/// Runs `opts.seeds` seeds from `opts.first_seed`.
pub fn run(market: &Market, cfg: &Config, opts: &Options) -> Summary {
    let mut summary = Summary::default();
    for seed in opts.first_seed..opts.first_seed + opts.seeds {
        let (steps, faults, failure) =
            run_seed(market, cfg, opts.schedule, seed, opts.steps, false);
        summary.seeds += 1;
        summary.steps += steps as u64;
        for (kind, n) in faults {
            *summary.faults.entry(kind).or_default() += n;
        }
        summary.failures.extend(failure);
    }
    summary
}
