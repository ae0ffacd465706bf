//! The report's shadow-compare section of the heat gate: the replay run in its heat mode and
//! the same signals once more with the other of off/enforce, compared.

use super::engine::{run_on, Recording, ReplayOptions, ReplayResult};
use super::heat::{CalibrationRow, HeatReplay};
use super::outcome::AccountOutcome;

use governor_core::Config;
use serde::Serialize;
use std::collections::BTreeMap;

/// The report's shadow-compare section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeatComparison {
    /// The mode of the reported run.
    pub mode: HeatReplay,
    /// Proposals calibrated.
    pub proposals: usize,
    /// Proposals by bucket.
    pub by_bucket: BTreeMap<String, usize>,
    /// Changes by `PROPOSAL → CALIBRATED` (bucket), with their counts.
    pub downgrades: BTreeMap<String, usize>,
    /// Proposals whose heat could not be computed (passed on unchanged).
    pub uncalibrated: usize,
    /// The governed account with the heat gate off.
    pub off: AccountOutcome,
    /// The governed account with the heat gate enforced.
    pub enforce: AccountOutcome,
}

/// Counts the calibrations of a run.
fn tally(rows: &[CalibrationRow]) -> (BTreeMap<String, usize>, BTreeMap<String, usize>, usize) {
    let mut by_bucket: BTreeMap<String, usize> = BTreeMap::new();
    let mut downgrades: BTreeMap<String, usize> = BTreeMap::new();
    let mut uncalibrated = 0;
    for r in rows {
        *by_bucket.entry(r.bucket.clone()).or_default() += 1;
        uncalibrated += usize::from(r.heat.is_none());
        if r.downgraded {
            let key = format!("{} → {} ({})", r.proposal, r.calibrated, r.bucket);
            *downgrades.entry(key).or_default() += 1;
        }
    }
    (by_bucket, downgrades, uncalibrated)
}

/// Runs the replay on `recording` with `opts.heat`; unless it is `off`, runs the same signals once more with
/// the other of off/enforce (no journal, no progress bar) for the comparison.
pub fn run_with_comparison(
    recording: &Recording,
    cfg: &Config,
    opts: &ReplayOptions,
) -> anyhow::Result<(ReplayResult, Option<HeatComparison>)> {
    let main = run_on(recording, cfg, opts)?;
    let counterpart = match opts.heat {
        HeatReplay::Off => return Ok((main, None)),
        HeatReplay::Shadow | HeatReplay::Enforce => {
            let other = ReplayOptions {
                heat: if opts.heat == HeatReplay::Enforce {
                    HeatReplay::Off
                } else {
                    HeatReplay::Enforce
                },
                write_journal: false,
                progress: false,
                ..opts.clone()
            };
            run_on(recording, cfg, &other)?
        }
    };
    let (by_bucket, downgrades, uncalibrated) = tally(&main.calibrations);
    let ours = AccountOutcome::of(&main.bars, main.initial_equity);
    let theirs = AccountOutcome::of(&counterpart.bars, counterpart.initial_equity);
    let (off, enforce) = match opts.heat {
        HeatReplay::Enforce => (theirs, ours),
        _ => (ours, theirs),
    };
    let comparison = HeatComparison {
        mode: opts.heat,
        proposals: main.calibrations.len(),
        by_bucket,
        downgrades,
        uncalibrated,
        off,
        enforce,
    };
    Ok((main, Some(comparison)))
}
