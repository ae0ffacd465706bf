//! Calibrating the regime classifier on recorded history: thresholds under which each targeted
//! regime takes the share of bars asked for, read from the features' own quantiles. The
//! classifier's rule order stays (first match wins: VOLATILITY_SPIKE, TREND_STRONG, CHOP,
//! TREND_MODERATE, RANGE), so each threshold is placed among the bars the rules before it left.

use super::regime::{classify, Regime, RegimeFeatures};
use crate::config::RegimeConfig;
use std::collections::BTreeMap;

/// The share of the classified bars each calibrated regime should take.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Targets {
    /// VOLATILITY_SPIKE.
    pub volatility_spike: f64,
    /// TREND_STRONG.
    pub trend_strong: f64,
    /// CHOP.
    pub chop: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            volatility_spike: 0.05,
            trend_strong: 0.15,
            chop: 0.30,
        }
    }
}

impl Targets {
    /// Reads `TREND_STRONG=0.15,VOLATILITY_SPIKE=0.05,CHOP=0.30` (any of the three, in any
    /// order; the others keep their defaults). The error names the part and what is wrong.
    pub fn parse(raw: &str) -> Result<Targets, String> {
        let mut t = Targets::default();
        for part in raw.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected REGIME=share"))?;
            let share: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: {v:?} is not a number"))?;
            if !(share.is_finite() && (0.0..1.0).contains(&share)) {
                return Err(format!("{part:?}: a share is at least 0 and below 1"));
            }
            match k.trim() {
                "VOLATILITY_SPIKE" => t.volatility_spike = share,
                "TREND_STRONG" => t.trend_strong = share,
                "CHOP" => t.chop = share,
                other => {
                    return Err(format!(
                        "{other:?}: only VOLATILITY_SPIKE, TREND_STRONG and CHOP are calibrated \
                         (TREND_MODERATE and RANGE take what is left)"
                    ))
                }
            }
        }
        if t.volatility_spike + t.trend_strong + t.chop >= 1.0 {
            return Err(format!(
                "the shares add up to {:.2}: they must leave room for the other regimes",
                t.volatility_spike + t.trend_strong + t.chop
            ));
        }
        Ok(t)
    }
}

/// The share of `features` each regime takes under `cfg` (bars too young to classify are
/// left out: they are UNKNOWN whatever the thresholds).
pub fn shares(features: &[RegimeFeatures], cfg: &RegimeConfig) -> BTreeMap<&'static str, f64> {
    let mut counts: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut n = 0.0;
    for f in features.iter().filter(|f| f.bars >= cfg.min_bars as usize) {
        *counts
            .entry(classify(Some(f), cfg).regime.as_str())
            .or_default() += 1.0;
        n += 1.0;
    }
    counts.values_mut().for_each(|c| *c /= n);
    counts
}

/// A threshold with exactly `k` of `values` above it (`values` sorted ascending): halfway
/// between the (n−k)-th and the next value. `None` when `k` exceeds the values.
fn above(values: &[f64], k: usize) -> Option<f64> {
    let n = values.len();
    match k {
        0 => values.last().map(|v| v + v.abs().max(1e-12)),
        k if k > n => None,
        k if k == n => values.first().map(|v| v - v.abs().max(1e-12)),
        k => Some((values[n - k - 1] + values[n - k]) / 2.0),
    }
}

/// Thresholds under which VOLATILITY_SPIKE, TREND_STRONG and CHOP take the `targets` shares
/// of `features`; the other settings of `current` stay. The error says which share the
/// history cannot give (e.g. too few calm bars for the trend share asked).
pub fn calibrate(
    features: &[RegimeFeatures],
    current: &RegimeConfig,
    targets: Targets,
) -> Result<RegimeConfig, String> {
    let usable: Vec<&RegimeFeatures> = features
        .iter()
        .filter(|f| f.bars >= current.min_bars as usize)
        .collect();
    if usable.is_empty() {
        return Err(format!(
            "no bar has the {} bars of history the classifier needs",
            current.min_bars
        ));
    }
    let n = usable.len() as f64;
    let count = |share: f64| (share * n).round() as usize;
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let mut cfg = current.clone();

    let atr = sorted(usable.iter().map(|f| f.atr_pct).collect());
    cfg.volatility_spike_atr_pct = above(&atr, count(targets.volatility_spike))
        .ok_or("the volatility share is more than the history")?;
    // A strong trend also needs calm ranges: never calmer than what is left below a spike.
    cfg.trend_strong_max_atr_pct = current
        .trend_strong_max_atr_pct
        .min(cfg.volatility_spike_atr_pct);
    let calm = sorted(
        usable
            .iter()
            .filter(|f| {
                f.atr_pct <= cfg.volatility_spike_atr_pct
                    && f.atr_pct < cfg.trend_strong_max_atr_pct
            })
            .map(|f| f.trend)
            .collect(),
    );
    cfg.trend_strong_trend = above(&calm, count(targets.trend_strong)).ok_or_else(|| {
        format!(
            "TREND_STRONG {:.2}: only {} bars are calm enough (ATR under {:.4})",
            targets.trend_strong,
            calm.len(),
            cfg.trend_strong_max_atr_pct
        )
    })?;
    let rest = sorted(
        usable
            .iter()
            .filter(|f| {
                let spike = f.atr_pct > cfg.volatility_spike_atr_pct;
                let strong =
                    f.trend > cfg.trend_strong_trend && f.atr_pct < cfg.trend_strong_max_atr_pct;
                !spike && !strong
            })
            .map(|f| f.trend)
            .collect(),
    );
    let chop = count(targets.chop);
    if chop > rest.len() {
        return Err(format!(
            "CHOP {:.2}: only {} bars are left after the spikes and strong trends",
            targets.chop,
            rest.len()
        ));
    }
    // `chop` bars strictly below: the threshold sits above the chop-th smallest trend.
    cfg.chop_trend =
        above(&rest, rest.len() - chop).ok_or("the chop share is more than the history")?;
    // TREND_MODERATE and RANGE share what is left: the moderate line stays where it was if it
    // still lies between the chop and the strong-trend lines, else it goes halfway between.
    cfg.trend_moderate_trend =
        if (cfg.chop_trend..cfg.trend_strong_trend).contains(&current.trend_moderate_trend) {
            current.trend_moderate_trend
        } else {
            (cfg.chop_trend + cfg.trend_strong_trend) / 2.0
        };
    Ok(cfg)
}

/// The regimes in the order the classifier tries them, for tables.
pub const ORDER: [Regime; 6] = [
    Regime::VolatilitySpike,
    Regime::TrendStrong,
    Regime::Chop,
    Regime::TrendModerate,
    Regime::Range,
    Regime::Unknown,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 bars: atr_pct 0.001, 0.002, …, 1.000 %; trend spread the same way but shuffled
    /// against it (i × 379 mod 1000), so the two are not the same ranking.
    fn history() -> Vec<RegimeFeatures> {
        (0..1000)
            .map(|i| RegimeFeatures {
                bars: 300,
                close: 100.0,
                ema20: 100.0,
                ema50: 100.0,
                atr14: 1.0,
                trend: ((i * 379) % 1000) as f64 / 10_000.0,
                atr_pct: i as f64 / 100_000.0,
                momentum_consistency: 0.5,
            })
            .collect()
    }

    #[test]
    fn the_calibrated_thresholds_give_the_targeted_shares() {
        let h = history();
        let current = RegimeConfig::default();
        let t = Targets::default();
        let cfg = calibrate(&h, &current, t).unwrap();
        let s = shares(&h, &cfg);
        // 1,000 bars: 50 spikes, 150 strong trends, 300 chop, exactly.
        assert_eq!(s["VOLATILITY_SPIKE"], 0.05);
        assert_eq!(s["TREND_STRONG"], 0.15);
        assert_eq!(s["CHOP"], 0.30);
        // The spike line sits between the 950th and 951st ATR: (0.00949 + 0.00950) / 2.
        assert!((cfg.volatility_spike_atr_pct - 0.009495).abs() < 1e-12);
        assert_eq!(cfg.min_bars, current.min_bars, "the other settings stay");
        assert!(
            cfg.chop_trend < cfg.trend_moderate_trend
                && cfg.trend_moderate_trend < cfg.trend_strong_trend,
            "the moderate line lies between the two: {cfg:?}"
        );
    }

    #[test]
    fn targets_are_read_with_clear_errors() {
        let t = Targets::parse("CHOP=0.4,TREND_STRONG=0.1").unwrap();
        assert_eq!(
            (t.chop, t.trend_strong, t.volatility_spike),
            (0.4, 0.1, 0.05)
        );
        for (raw, says) in [
            ("RANGE=0.2", "only VOLATILITY_SPIKE, TREND_STRONG and CHOP"),
            ("CHOP=x", "\"x\" is not a number"),
            ("CHOP=NaN", "a share is at least 0 and below 1"),
            ("CHOP", "expected REGIME=share"),
            ("CHOP=0.6,TREND_STRONG=0.4", "add up to 1.05"),
        ] {
            let err = Targets::parse(raw).unwrap_err();
            assert!(err.contains(says), "{raw}: {err}");
        }
    }

    #[test]
    fn a_share_the_history_cannot_give_is_an_error() {
        let calm_only: Vec<_> = history()
            .into_iter()
            .map(|f| RegimeFeatures { atr_pct: 0.5, ..f })
            .collect();
        // Every bar's ATR is 50 %: with no spike asked, none is calm enough for a strong trend.
        let t = Targets {
            volatility_spike: 0.0,
            ..Targets::default()
        };
        let err = calibrate(&calm_only, &RegimeConfig::default(), t).unwrap_err();
        assert!(
            err.starts_with("TREND_STRONG 0.15: only 0 bars are calm enough"),
            "{err}"
        );
    }
}
