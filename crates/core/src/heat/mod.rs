//! The portfolio heat gate (P2.6): how hot the whole portfolio runs, and what a harvest close
//! proposal becomes at that heat.
//!
//! `heat = 1 - exp(-k * Σ |notional_i| * sigma_i / equity)`, with `sigma_i` the symbol's daily
//! volatility: the market-state service's `sigma` when it is there and valid, else derived from
//! the symbol's hourly ATR (`atr_pct * sqrt(24)`), and the trace says which. Buckets:
//! COLD < `warm_at` ≤ WARM < `hot_at` ≤ HOT; the ladder of the configuration says what each close
//! becomes in WARM and HOT. When the heat cannot be computed (no equity, a position with no
//! sigma and no ATR) the proposal is left as it was and marked uncalibrated: a close is never
//! changed on a guess.
//!
//! Pure like the decision core: inputs in, calibration and trace out.

mod proposal;

pub use proposal::{HarvestAction, HarvestProposal, MAX_PROPOSAL_BYTES, MAX_PROPOSAL_FIELDS};

use crate::config::HeatConfig;
use crate::plan::parse_decimal;
use crate::trace::{Outcome, Trace};
use crate::types::Symbol;
use serde::Serialize;

/// Where a position's sigma came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SigmaSource {
    /// `quantum:marketstate:{symbol}` field `sigma`.
    #[serde(rename = "marketstate")]
    MarketState,
    /// The symbol's hourly ATR as a fraction of price, scaled to a day: `atr_pct * sqrt(24)`.
    #[serde(rename = "atr")]
    AtrDerived,
}

impl SigmaSource {
    /// The name the trace and the report use.
    pub fn as_str(self) -> &'static str {
        match self {
            SigmaSource::MarketState => "marketstate",
            SigmaSource::AtrDerived => "atr",
        }
    }
}

/// A position's daily volatility and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sigma {
    /// Daily volatility as a fraction of price.
    pub value: f64,
    /// Its source.
    pub source: SigmaSource,
    /// Why the market state's sigma was not used, when it was not.
    pub fallback_reason: Option<String>,
}

/// The daily volatility an hourly ATR (as a fraction of price) stands for.
pub fn sigma_from_atr(atr_pct: f64) -> f64 {
    atr_pct * 24f64.sqrt()
}

/// Parses a market-state `sigma` strictly: a finite decimal above 0 and at most 10.
pub fn parse_sigma(raw: &str) -> Result<f64, String> {
    let v = parse_decimal(raw)?;
    if v > 0.0 && v <= 10.0 {
        Ok(v)
    } else {
        Err("must be above 0 and at most 10 (a daily volatility as a fraction)".to_owned())
    }
}

/// A position's sigma from the market state's raw `sigma` (if the hash had one) and the
/// symbol's ATR (if market data has it). An invalid market-state value is named in the
/// fallback reason, never read as a number.
pub fn resolve_sigma(marketstate: Option<&str>, atr_pct: Option<f64>) -> Result<Sigma, String> {
    let fallback_reason = match marketstate.map(|raw| (raw, parse_sigma(raw))) {
        Some((_, Ok(value))) => {
            return Ok(Sigma {
                value,
                source: SigmaSource::MarketState,
                fallback_reason: None,
            })
        }
        Some((raw, Err(problem))) => format!("marketstate sigma={raw:?} {problem}"),
        None => "no marketstate sigma".to_owned(),
    };
    match atr_pct.filter(|a| a.is_finite() && *a > 0.0) {
        Some(atr) => Ok(Sigma {
            value: sigma_from_atr(atr),
            source: SigmaSource::AtrDerived,
            fallback_reason: Some(fallback_reason),
        }),
        None => Err(format!("{fallback_reason} and no ATR from market data")),
    }
}

/// One held position as the heat formula sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionRisk {
    /// The symbol.
    pub symbol: Symbol,
    /// |qty| × mark price, in USDT.
    pub notional: f64,
    /// Its sigma, or why there is none.
    pub sigma: Result<Sigma, String>,
}

/// Everything the heat of a portfolio depends on.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HeatInput {
    /// Account equity in USDT; `None` when the account could not be read.
    pub equity: Option<f64>,
    /// The held positions.
    pub positions: Vec<PositionRisk>,
}

/// How hot the portfolio runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Bucket {
    /// Below `warm_at`: proposals pass unchanged.
    Cold,
    /// From `warm_at` to below `hot_at`.
    Warm,
    /// From `hot_at`.
    Hot,
}

impl Bucket {
    /// The bucket's name in logs and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Cold => "COLD",
            Bucket::Warm => "WARM",
            Bucket::Hot => "HOT",
        }
    }

    /// The bucket of `heat` under `cfg`'s edges.
    pub fn of(heat: f64, cfg: &HeatConfig) -> Bucket {
        if heat >= cfg.hot_at {
            Bucket::Hot
        } else if heat >= cfg.warm_at {
            Bucket::Warm
        } else {
            Bucket::Cold
        }
    }
}

/// The portfolio's heat.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct HeatReading {
    /// 0 ≤ heat < 1.
    pub heat: f64,
    /// Its bucket.
    pub bucket: Bucket,
    /// Σ |notional| × sigma / equity, before the exponential.
    pub load: f64,
    /// Σ |notional| / equity (how leveraged the book is).
    pub exposure: f64,
}

/// Computes the heat, writing one trace line per position and one for the portfolio.
pub fn portfolio_heat(
    input: &HeatInput,
    cfg: &HeatConfig,
    trace: &mut Trace,
) -> Result<HeatReading, String> {
    let mut weighted = 0.0;
    let mut notional = 0.0;
    let mut missing: Vec<String> = Vec::new();
    for p in &input.positions {
        trace
            .line("position_risk", Outcome::Pass)
            .id("symbol", &p.symbol)
            .num("notional", p.notional);
        if !(p.notional.is_finite() && p.notional >= 0.0) {
            missing.push(format!(
                "{} notional={} is not a finite amount",
                p.symbol, p.notional
            ));
            trace.last().note("notional is not a finite amount");
            continue;
        }
        match &p.sigma {
            Ok(s) => {
                weighted += p.notional * s.value;
                notional += p.notional;
                trace
                    .last()
                    .num("sigma", s.value)
                    .name("sigma_source", s.source.as_str());
                if let Some(why) = &s.fallback_reason {
                    trace.last().note(why.clone());
                }
            }
            Err(why) => {
                missing.push(format!("{}: {why}", p.symbol));
                trace.last().opt_num("sigma", None).note(why.clone());
            }
        }
    }
    trace
        .line("portfolio_heat", Outcome::Pass)
        .opt_num("equity", input.equity)
        .num("k", cfg.k)
        .num("warm_at", cfg.warm_at)
        .num("hot_at", cfg.hot_at);
    match input.equity {
        Some(e) if e.is_finite() && e > 0.0 => {}
        Some(e) => missing.push(format!("equity={e} is not a positive amount")),
        None => missing.push("account equity unavailable".to_owned()),
    }
    let equity = match input.equity {
        Some(e) if missing.is_empty() => e,
        _ => {
            let why = missing.join("; ");
            trace.last().name("bucket", "UNAVAILABLE").note(why.clone());
            return Err(why);
        }
    };
    let load = weighted / equity;
    let heat = 1.0 - (-cfg.k * load).exp();
    let bucket = Bucket::of(heat, cfg);
    trace
        .last()
        .num("exposure", notional / equity)
        .num("load", load)
        .num("heat", heat)
        .name("bucket", bucket.as_str());
    Ok(HeatReading {
        heat,
        bucket,
        load,
        exposure: notional / equity,
    })
}

/// What the heat gate made of one proposal.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// What harvest proposed.
    pub proposal: HarvestAction,
    /// What the ladder makes of it (the proposal itself when the heat is unavailable).
    pub calibrated: HarvestAction,
    /// The heat, or why it could not be computed.
    pub heat: Result<HeatReading, String>,
    /// position_risk lines, the portfolio_heat line and the ladder line.
    pub trace: Trace,
}

impl Calibration {
    /// Whether the ladder changed the proposal.
    pub fn downgraded(&self) -> bool {
        self.calibrated != self.proposal
    }

    /// Whether the heat was known (an uncalibrated proposal must not be enforced).
    pub fn is_calibrated(&self) -> bool {
        self.heat.is_ok()
    }

    /// The reason code of the SHADOW-COMPARE line and the calibrated entry.
    pub fn reason(&self) -> &'static str {
        match &self.heat {
            Err(_) => "heat_unavailable",
            Ok(_) if !self.downgraded() => "unchanged",
            Ok(r) => match r.bucket {
                Bucket::Hot => "heat_hot",
                Bucket::Warm => "heat_warm",
                Bucket::Cold => "heat_cold",
            },
        }
    }
}

/// Calibrates `proposal` at the heat of `input`.
pub fn calibrate(proposal: HarvestAction, input: &HeatInput, cfg: &HeatConfig) -> Calibration {
    let mut trace = Trace::default();
    let heat = portfolio_heat(input, cfg, &mut trace);
    let calibrated = match &heat {
        Ok(r) => match r.bucket {
            Bucket::Cold => proposal,
            Bucket::Warm => cfg.warm.apply(proposal),
            Bucket::Hot => cfg.hot.apply(proposal),
        },
        Err(_) => proposal,
    };
    let outcome = match (&heat, calibrated == proposal) {
        (Err(_), _) => Outcome::Warn,
        (Ok(_), true) => Outcome::Pass,
        (Ok(_), false) => Outcome::Adjust,
    };
    trace
        .line("heat_ladder", outcome)
        .name("proposal", proposal.as_str())
        .name("calibrated", calibrated.as_str());
    if heat.is_err() {
        trace
            .last()
            .note("heat unavailable: the proposal is passed on uncalibrated");
    }
    Calibration {
        proposal,
        calibrated,
        heat,
        trace,
    }
}

#[cfg(test)]
mod tests;
