//! The heat gate in the replay: `--heat off|shadow|enforce`, and the shadow-compare analysis —
//! how often each downgrade would have happened, and the governed account with the heat gate
//! enforced against the same account without it, on the same signals. The analysis the team
//! wanted from 24-48 h of shadow data, on a month of history.

use crate::heat::heat_input;
use governor_core::heat::{calibrate, Calibration, HarvestProposal};
use governor_core::market::SymbolMarket;
use governor_core::snapshot::ExchangeState;
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use governor_core::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the replay does with the harvest planner's close proposals.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeatReplay {
    /// No heat gate: proposals go to the governor as harvest wrote them.
    Off,
    /// Calibrate and record every proposal; submit them as harvest wrote them.
    #[default]
    Shadow,
    /// Submit the calibrated action instead.
    Enforce,
}

/// One calibrated proposal of the replay (a line of `calibrations.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationRow {
    /// Bar close at which harvest proposed it.
    pub t: Timestamp,
    /// The proposal's plan id.
    pub plan_id: String,
    /// The position.
    pub symbol: String,
    /// What harvest proposed.
    pub proposal: String,
    /// What the ladder made of it.
    pub calibrated: String,
    /// The portfolio heat (absent when it could not be computed).
    pub heat: Option<f64>,
    /// COLD, WARM, HOT or UNAVAILABLE.
    pub bucket: String,
    /// Σ notional / equity.
    pub exposure: Option<f64>,
    /// Whether the ladder changed it.
    pub downgraded: bool,
    /// Why the heat could not be computed, when it could not.
    pub unavailable: Option<String>,
}

/// Calibrates one proposal of the replay's governed account; `None` when the fields are not a
/// proposal (the governor's parser then records the rejection).
pub fn calibrate_exit(
    cfg: &Config,
    fields: &[(String, String)],
    account: &ExchangeState,
    market: &BTreeMap<Symbol, Arc<SymbolMarket>>,
    t: Timestamp,
) -> Option<(CalibrationRow, Calibration)> {
    let proposal = HarvestProposal::parse(fields).ok()?;
    let input = heat_input(
        Some(account),
        market,
        &BTreeMap::new(),
        t,
        cfg.regime.max_kline_age_secs,
    );
    let c = calibrate(proposal.action, &input, &cfg.heat);
    let row = CalibrationRow {
        t,
        plan_id: proposal
            .plan_id
            .as_ref()
            .map_or_else(String::new, |p| p.to_string()),
        symbol: proposal.symbol.to_string(),
        proposal: c.proposal.as_str().to_owned(),
        calibrated: c.calibrated.as_str().to_owned(),
        heat: c.heat.as_ref().ok().map(|r| r.heat),
        bucket: c
            .heat
            .as_ref()
            .map_or("UNAVAILABLE", |r| r.bucket.as_str())
            .to_owned(),
        exposure: c.heat.as_ref().ok().map(|r| r.exposure),
        downgraded: c.downgraded(),
        unavailable: c.heat.as_ref().err().cloned(),
    };
    Some((row, c))
}
