//! `quantum-governor calibrate regime`: the regime features of the reference symbol over the
//! recorded history (one reading per closed bar, over the same window the live governor reads),
//! thresholds that give the targeted shares, and the share each regime gets under the current
//! and the calibrated thresholds side by side.

use crate::market_data::{load_klines_dir, FEATURE_LOOKBACK};
use anyhow::{bail, Context};
use governor_core::config::{RegimeConfig, RegimeReference};
use governor_core::market::calibrate::{calibrate, shares, Targets, ORDER};
use governor_core::market::regime::FeatureSeries;
use governor_core::market::{Kline, RegimeFeatures};
use governor_core::types::Symbol;
use std::fmt::Write;
use std::path::Path;

/// The features at every closed bar of `klines` (oldest first), each over the last
/// [`FEATURE_LOOKBACK`] bars, as the live governor computes them once per bar; bars with too
/// little history for features at all are left out.
pub fn feature_history(klines: &[Kline]) -> Vec<RegimeFeatures> {
    let series = FeatureSeries::new(klines);
    (1..=klines.len())
        .filter_map(|end| series.features(end.saturating_sub(FEATURE_LOOKBACK), end))
        .collect()
}

/// One regime's share of the history under the current and the calibrated thresholds.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ShareRow {
    /// The regime's wire name.
    pub regime: &'static str,
    /// Its share under the thresholds in force.
    pub current: f64,
    /// Its share under the calibrated thresholds.
    pub calibrated: f64,
    /// The share asked for (the regimes that take what is left have none).
    pub target: Option<f64>,
}

impl ShareRow {
    /// The target as text: a percentage, or `–` for a regime that takes what is left.
    pub fn target_text(&self) -> String {
        self.target
            .map_or("–".to_owned(), |t| format!("{:.1}%", t * 100.0))
    }
}

/// What `calibrate regime` found: the history it read, and the thresholds.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// The symbol whose klines were read.
    pub symbol: Symbol,
    /// One reading per closed bar.
    pub history: Vec<RegimeFeatures>,
    /// The thresholds in force.
    pub current: RegimeConfig,
    /// The calibrated thresholds.
    pub calibrated: RegimeConfig,
    /// What was asked.
    pub targets: Targets,
}

/// Calibrates the regime on `data`: the reference symbol of `current` (or `symbol`, which the
/// `candidate` reference needs: there is no single series to read then).
pub fn regime(
    data: &Path,
    current: &RegimeConfig,
    symbol: Option<Symbol>,
    targets: Targets,
) -> anyhow::Result<Calibration> {
    let symbol = match (symbol, &current.reference) {
        (Some(s), _) => s,
        (None, RegimeReference::Symbol(s)) => s.clone(),
        (None, RegimeReference::Candidate) => {
            bail!(
                "regime.reference is \"candidate\": name the symbol to calibrate on with --symbol"
            )
        }
    };
    let mut klines = load_klines_dir(data)?;
    let series = klines
        .remove(&symbol)
        .with_context(|| format!("{symbol} has no klines in {}", data.display()))?;
    Calibration::of(symbol.clone(), feature_history(&series), current, targets)
        .map_err(|e| anyhow::anyhow!("{symbol} in {}: {e}", data.display()))
}

impl Calibration {
    /// Calibrates `current` on `symbol`'s feature `history` (one reading per bar).
    pub fn of(
        symbol: Symbol,
        history: Vec<RegimeFeatures>,
        current: &RegimeConfig,
        targets: Targets,
    ) -> Result<Calibration, String> {
        let calibrated = calibrate(&history, current, targets)?;
        Ok(Calibration {
            symbol,
            history,
            current: current.clone(),
            calibrated,
            targets,
        })
    }

    /// The `[regime]` snippet to paste into a config file.
    pub fn toml(&self) -> String {
        let c = &self.calibrated;
        format!(
            "[regime]\nvolatility_spike_atr_pct = {}\ntrend_strong_trend = {}\n\
             trend_strong_max_atr_pct = {}\nchop_trend = {}\ntrend_moderate_trend = {}\n",
            c.volatility_spike_atr_pct,
            c.trend_strong_trend,
            c.trend_strong_max_atr_pct,
            c.chop_trend,
            c.trend_moderate_trend
        )
    }

    /// Each regime's share under the current and the calibrated thresholds, and its target.
    pub fn rows(&self) -> Vec<ShareRow> {
        let (now, then) = (
            shares(&self.history, &self.current),
            shares(&self.history, &self.calibrated),
        );
        let t = &self.targets;
        ORDER
            .iter()
            .map(|r| r.as_str())
            .filter(|r| *r != "UNKNOWN")
            .map(|r| {
                let target = match r {
                    "VOLATILITY_SPIKE" => Some(t.volatility_spike),
                    "TREND_STRONG" => Some(t.trend_strong),
                    "CHOP" => Some(t.chop),
                    _ => None,
                };
                let get =
                    |m: &std::collections::BTreeMap<&str, f64>| m.get(r).copied().unwrap_or(0.0);
                ShareRow {
                    regime: r,
                    current: get(&now),
                    calibrated: get(&then),
                    target,
                }
            })
            .collect()
    }

    /// The terminal report: the snippet, then the table.
    pub fn render(&self) -> String {
        let mut o = format!(
            "# regime calibrated on {} ({} bars with enough history)\n{}\n",
            self.symbol,
            self.history.len(),
            self.toml()
        );
        let _ = writeln!(
            o,
            "{:<18} {:>9} {:>11} {:>8}",
            "regime", "current", "calibrated", "target"
        );
        for row in self.rows() {
            let _ = writeln!(
                o,
                "{:<18} {:>8.1}% {:>10.1}% {:>8}",
                row.regime,
                row.current * 100.0,
                row.calibrated * 100.0,
                row.target_text()
            );
        }
        o
    }
}
