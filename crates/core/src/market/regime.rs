//! The regime classifier and the desired slot count it implies.

use super::indicators::{atr_wilder_last, ema_last, true_ranges};
use super::kline::Kline;
use crate::config::{RegimeConfig, SlotsConfig};
use serde::{Deserialize, Serialize};

/// The market regime, which decides how many slots the account may use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Regime {
    /// atr_pct above the spike threshold.
    VolatilitySpike,
    /// A strong trend with calm ranges.
    TrendStrong,
    /// EMAs on top of each other.
    Chop,
    /// A moderate trend.
    TrendModerate,
    /// Neither trending nor choppy.
    Range,
    /// Too few bars to say.
    Unknown,
}

impl Regime {
    /// The wire name (`TREND_STRONG`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Regime::VolatilitySpike => "VOLATILITY_SPIKE",
            Regime::TrendStrong => "TREND_STRONG",
            Regime::Chop => "CHOP",
            Regime::TrendModerate => "TREND_MODERATE",
            Regime::Range => "RANGE",
            Regime::Unknown => "UNKNOWN",
        }
    }

    /// Slots this regime grants before the hard cap and max_open_positions apply.
    pub fn slots(self, cfg: &SlotsConfig) -> u32 {
        match self {
            Regime::VolatilitySpike => cfg.volatility_spike,
            Regime::TrendStrong => cfg.trend_strong,
            Regime::Chop => cfg.chop,
            Regime::TrendModerate | Regime::Range | Regime::Unknown => cfg.base,
        }
    }
}

/// The features of the last closed bar, computed once per bar and cached.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegimeFeatures {
    /// How many bars they were computed from.
    pub bars: usize,
    /// The last close.
    pub close: f64,
    /// EMA20 of closes (SMA-seeded).
    pub ema20: f64,
    /// EMA50 of closes (SMA-seeded).
    pub ema50: f64,
    /// Wilder ATR14.
    pub atr14: f64,
    /// |ema20 - ema50| / ema50.
    pub trend: f64,
    /// atr14 / close.
    pub atr_pct: f64,
    /// Share of the last 20 returns whose sign matches the trend's direction.
    pub momentum_consistency: f64,
}

impl RegimeFeatures {
    /// Computes the features from closed klines (oldest first); `None` with fewer than 50 bars
    /// (EMA50 needs 50 closes).
    pub fn compute(klines: &[Kline]) -> Option<RegimeFeatures> {
        FeatureSeries::new(klines).features(0, klines.len())
    }
}

/// A symbol's closes and true ranges, taken once, for the features of many windows of its
/// bars (the replay and the calibration read them at every bar).
#[derive(Clone, Debug)]
pub struct FeatureSeries {
    closes: Vec<f64>,
    /// `true_ranges[i]`: bar `i + 1` over bar `i`.
    true_ranges: Vec<f64>,
}

impl FeatureSeries {
    /// Indexes `klines` (oldest first).
    pub fn new(klines: &[Kline]) -> FeatureSeries {
        FeatureSeries {
            closes: klines.iter().map(|k| k.close).collect(),
            true_ranges: true_ranges(klines),
        }
    }

    /// The features of bars `start..end`: what [`RegimeFeatures::compute`] gives for
    /// `&klines[start..end]`, bit for bit (the same values in the same order).
    pub fn features(&self, start: usize, end: usize) -> Option<RegimeFeatures> {
        let closes = &self.closes[start..end];
        // The ranges between bars of the window: bar start+1 over bar start, … .
        let ranges = &self.true_ranges[start..end.saturating_sub(1).max(start)];
        let ema20 = ema_last(closes, 20)?;
        let ema50 = ema_last(closes, 50)?;
        let atr14 = atr_wilder_last(ranges, 14)?;
        let close = *closes.last()?;
        let direction = (ema20 - ema50).signum();
        let recent = &closes[closes.len().saturating_sub(21)..];
        let returns = recent.windows(2).map(|w| w[1] - w[0]);
        let n = recent.len().saturating_sub(1).max(1) as f64;
        let matching = returns
            .filter(|r| direction != 0.0 && r.signum() == direction && *r != 0.0)
            .count() as f64;
        Some(RegimeFeatures {
            bars: closes.len(),
            close,
            ema20,
            ema50,
            atr14,
            trend: (ema20 - ema50).abs() / ema50,
            atr_pct: atr14 / close,
            momentum_consistency: matching / n,
        })
    }
}

/// A classification with how far it was from flipping.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegimeReading {
    /// The regime.
    pub regime: Regime,
    /// 0 for UNKNOWN; otherwise 0.5 + 0.5 × min(1, the deciding feature's relative distance
    /// from the threshold that would change the answer): 0.5 on a boundary, 1.0 far from it.
    pub confidence: f64,
}

fn closeness(value: f64, threshold: f64) -> f64 {
    if threshold <= 0.0 {
        return 1.0;
    }
    ((value - threshold).abs() / threshold).min(1.0)
}

/// Classifies, first match wins: VOLATILITY_SPIKE, TREND_STRONG, CHOP, TREND_MODERATE, RANGE;
/// UNKNOWN when there are fewer than `min_bars` bars (or no features at all).
pub fn classify(features: Option<&RegimeFeatures>, cfg: &RegimeConfig) -> RegimeReading {
    let f = match features {
        Some(f) if f.bars >= cfg.min_bars as usize => f,
        _ => {
            return RegimeReading {
                regime: Regime::Unknown,
                confidence: 0.0,
            }
        }
    };
    let (regime, margin) = if f.atr_pct > cfg.volatility_spike_atr_pct {
        (
            Regime::VolatilitySpike,
            closeness(f.atr_pct, cfg.volatility_spike_atr_pct),
        )
    } else if f.trend > cfg.trend_strong_trend && f.atr_pct < cfg.trend_strong_max_atr_pct {
        let m = closeness(f.trend, cfg.trend_strong_trend)
            .min(closeness(f.atr_pct, cfg.trend_strong_max_atr_pct));
        (Regime::TrendStrong, m)
    } else if f.trend < cfg.chop_trend {
        (Regime::Chop, closeness(f.trend, cfg.chop_trend))
    } else if f.trend >= cfg.trend_moderate_trend {
        (
            Regime::TrendModerate,
            closeness(f.trend, cfg.trend_moderate_trend),
        )
    } else {
        let m =
            closeness(f.trend, cfg.chop_trend).min(closeness(f.trend, cfg.trend_moderate_trend));
        (Regime::Range, m)
    };
    RegimeReading {
        regime,
        confidence: 0.5 + 0.5 * margin,
    }
}

/// Desired slots: the regime's slots, never above the hard cap nor max_open_positions.
pub fn desired_slots(regime: Regime, slots: &SlotsConfig, max_open_positions: u32) -> u32 {
    regime
        .slots(slots)
        .min(slots.hard_cap)
        .min(max_open_positions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::kline::BAR_MS;
    use crate::time::Timestamp;

    /// Bars whose close follows `close(i)` and whose high/low sit `half_range` around it.
    pub(crate) fn synthetic(n: usize, close: impl Fn(usize) -> f64, half_range: f64) -> Vec<Kline> {
        (0..n)
            .map(|i| {
                let c = close(i);
                Kline {
                    open_time: Timestamp(i as i64 * BAR_MS),
                    open: c,
                    high: c * (1.0 + half_range),
                    low: c * (1.0 - half_range),
                    close: c,
                    volume: 1.0,
                }
            })
            .collect()
    }

    fn reading(klines: &[Kline]) -> RegimeReading {
        classify(
            RegimeFeatures::compute(klines).as_ref(),
            &RegimeConfig::default(),
        )
    }

    fn slots_for(klines: &[Kline]) -> u32 {
        desired_slots(reading(klines).regime, &SlotsConfig::default(), 10)
    }

    #[test]
    fn a_steady_climb_with_calm_ranges_is_trend_strong_with_6_slots() {
        // +0.5 % per bar: EMA20 runs well ahead of EMA50 (trend ≈ 7.6 %), ATR ≈ 0.6 % of close.
        let k = synthetic(120, |i| 100.0 * 1.005f64.powi(i as i32), 0.003);
        let f = RegimeFeatures::compute(&k).unwrap();
        assert!(f.trend > 0.05 && f.atr_pct < 0.02, "{f:?}");
        assert_eq!(f.momentum_consistency, 1.0);
        assert_eq!(reading(&k).regime, Regime::TrendStrong);
        assert_eq!(slots_for(&k), 6);
    }

    #[test]
    fn a_window_of_the_indexed_series_is_the_window_computed_alone() {
        // A wavy series, so that every window's EMAs, ATR and momentum differ.
        let k = synthetic(
            200,
            |i| 100.0 + 5.0 * (i as f64 / 7.0).sin() + i as f64 * 0.1,
            0.004,
        );
        let series = FeatureSeries::new(&k);
        for (start, end) in [
            (0, 0),
            (0, 49),
            (0, 50),
            (0, 200),
            (10, 60),
            (37, 152),
            (150, 200),
        ] {
            assert_eq!(
                series.features(start, end),
                RegimeFeatures::compute(&k[start..end]),
                "bars {start}..{end}"
            );
        }
        assert!(series.features(37, 152).is_some());
    }

    #[test]
    fn a_flat_market_is_chop_with_3_slots() {
        let k = synthetic(120, |i| 100.0 + if i % 2 == 0 { 0.1 } else { -0.1 }, 0.002);
        assert_eq!(reading(&k).regime, Regime::Chop);
        assert_eq!(slots_for(&k), 3);
    }

    #[test]
    fn wide_ranges_are_a_volatility_spike_with_3_slots() {
        // High-low of 8 % of the close: ATR ≈ 8 % > 3 %.
        let k = synthetic(120, |_| 100.0, 0.04);
        let f = RegimeFeatures::compute(&k).unwrap();
        assert!((f.atr_pct - 0.08).abs() < 1e-9, "{f:?}");
        assert_eq!(reading(&k).regime, Regime::VolatilitySpike);
        assert_eq!(slots_for(&k), 3);
    }

    #[test]
    fn fewer_than_60_bars_is_unknown_with_4_slots() {
        let k = synthetic(59, |i| 100.0 * 1.005f64.powi(i as i32), 0.003);
        assert!(
            RegimeFeatures::compute(&k).is_some(),
            "features exist from 50 bars"
        );
        assert_eq!(
            reading(&k),
            RegimeReading {
                regime: Regime::Unknown,
                confidence: 0.0
            }
        );
        assert_eq!(slots_for(&k), 4);
    }

    #[test]
    fn a_moderate_trend_and_a_range_get_the_base_4_slots() {
        let moderate = synthetic(120, |i| 100.0 * 1.002f64.powi(i as i32), 0.003);
        let f = RegimeFeatures::compute(&moderate).unwrap();
        assert!(f.trend >= 0.025 && f.trend <= 0.05, "{f:?}");
        assert_eq!(reading(&moderate).regime, Regime::TrendModerate);
        let range = synthetic(120, |i| 100.0 * 1.001f64.powi(i as i32), 0.003);
        let f = RegimeFeatures::compute(&range).unwrap();
        assert!(f.trend >= 0.01 && f.trend < 0.025, "{f:?}");
        assert_eq!(reading(&range).regime, Regime::Range);
        assert_eq!(slots_for(&moderate), 4);
        assert_eq!(slots_for(&range), 4);
    }

    #[test]
    fn desired_slots_never_exceed_hard_cap_or_max_positions() {
        let cfg = SlotsConfig {
            trend_strong: 50,
            hard_cap: 10,
            ..SlotsConfig::default()
        };
        assert_eq!(desired_slots(Regime::TrendStrong, &cfg, 125), 10);
        assert_eq!(desired_slots(Regime::TrendStrong, &cfg, 7), 7);
    }

    #[test]
    fn ema_values_match_a_hand_computation() {
        // Closes 1..=60. The SMA seed of period n on a straight line lags the last value by
        // (n-1)/2, which is exactly the EMA's steady-state lag (1-α)/α, so the EMA keeps that lag:
        // EMA20 = 60 - 9.5 = 50.5 and EMA50 = 60 - 24.5 = 35.5.
        let k = synthetic(60, |i| (i + 1) as f64, 0.0);
        let f = RegimeFeatures::compute(&k).unwrap();
        assert!((f.ema20 - 50.5).abs() < 1e-9, "{}", f.ema20);
        assert!((f.ema50 - 35.5).abs() < 1e-9, "{}", f.ema50);
    }
}
