//! Indicators as the regime classifier defines them (TA-Lib's seeding conventions).

use super::kline::{Kline, BAR_MS};
use crate::time::Timestamp;

/// The last value of the EMA of period `n`, seeded with the simple mean of the first `n`
/// values (as TA-Lib does). `None` with fewer than `n` values.
pub fn ema_last(values: &[f64], n: usize) -> Option<f64> {
    if n == 0 || values.len() < n {
        return None;
    }
    let alpha = 2.0 / (n as f64 + 1.0);
    let seed = values[..n].iter().sum::<f64>() / n as f64;
    Some(
        values[n..]
            .iter()
            .fold(seed, |ema, v| alpha * v + (1.0 - alpha) * ema),
    )
}

/// True range of `bar` given the previous close.
pub fn true_range(bar: &Kline, prev_close: f64) -> f64 {
    (bar.high - bar.low)
        .max((bar.high - prev_close).abs())
        .max((bar.low - prev_close).abs())
}

/// Each bar's true range over the bar before it (`result[i]` is bar `i + 1`'s): the input of
/// [`atr_wilder_last`], taken once for a whole series.
pub fn true_ranges(klines: &[Kline]) -> Vec<f64> {
    klines
        .windows(2)
        .map(|w| true_range(&w[1], w[0].close))
        .collect()
}

/// The last value of Wilder's ATR of period `n` over consecutive true ranges (see
/// [`true_ranges`]; they start at a series' second bar): the seed is the mean of the first `n`,
/// then `atr = (atr * (n-1) + tr) / n`. `None` with fewer than `n` ranges (`n + 1` bars).
pub fn atr_wilder_last(true_ranges: &[f64], n: usize) -> Option<f64> {
    if n == 0 || true_ranges.len() < n {
        return None;
    }
    let seed = true_ranges[..n].iter().sum::<f64>() / n as f64;
    let nf = n as f64;
    Some(
        true_ranges[n..]
            .iter()
            .fold(seed, |atr, tr| (atr * (nf - 1.0) + tr) / nf),
    )
}

/// 1 h log returns `ln(close_i / close_{i-1})`, tagged with bar i's open time, only where bar
/// i follows bar i-1 by exactly one hour: a gap produces no return rather than a wrong one.
pub fn log_returns(klines: &[Kline]) -> Vec<(Timestamp, f64)> {
    klines
        .windows(2)
        .filter(|w| w[1].open_time.0 - w[0].open_time.0 == BAR_MS)
        .map(|w| (w[1].open_time, (w[1].close / w[0].close).ln()))
        .collect()
}

/// Pearson correlation of two equally long series; `None` when either has no variance.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() {
        return None;
    }
    pearson_pairs(xs.iter().zip(ys))
}

/// Pearson correlation over paired values, two passes (mean, then deviations), no allocation;
/// `None` with fewer than two pairs or when either side has no variance.
pub fn pearson_pairs<'a>(pairs: impl Iterator<Item = (&'a f64, &'a f64)> + Clone) -> Option<f64> {
    let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs.clone() {
        n += 1.0;
        sx += x;
        sy += y;
    }
    if n < 2.0 {
        return None;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        let (dx, dy) = (x - mx, y - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(i: i64, o: f64, h: f64, l: f64, c: f64) -> Kline {
        Kline {
            open_time: Timestamp(i * BAR_MS),
            open: o,
            high: h,
            low: l,
            close: c,
            volume: 1.0,
        }
    }

    #[test]
    fn ema_is_seeded_with_the_simple_mean() {
        // Seed = mean(1,2,3) = 2; alpha = 0.5; then 0.5*4 + 0.5*2 = 3; then 0.5*10 + 0.5*3 = 6.5.
        assert_eq!(ema_last(&[1.0, 2.0, 3.0], 3), Some(2.0));
        assert_eq!(ema_last(&[1.0, 2.0, 3.0, 4.0, 10.0], 3), Some(6.5));
        assert_eq!(ema_last(&[1.0, 2.0], 3), None);
    }

    #[test]
    fn atr_follows_wilder_with_a_mean_seed() {
        // TRs from bar 1: bar1 = max(2, |12-10|, |10-10|) = 2; bar2 = max(4, |15-11|, |11-11|) = 4;
        // bar3 = max(1, |9-14|, |8-14|) = 6. n = 2: seed = (2+4)/2 = 3; then (3*1 + 6)/2 = 4.5.
        let k = [
            bar(0, 10.0, 10.0, 10.0, 10.0),
            bar(1, 10.0, 12.0, 10.0, 11.0),
            bar(2, 11.0, 15.0, 11.0, 14.0),
            bar(3, 14.0, 9.0, 8.0, 8.5),
        ];
        assert_eq!(true_ranges(&k), vec![2.0, 4.0, 6.0]);
        assert_eq!(atr_wilder_last(&true_ranges(&k), 2), Some(4.5));
        assert_eq!(atr_wilder_last(&true_ranges(&k[..2]), 2), None);
    }

    #[test]
    fn log_returns_skip_gaps_instead_of_bridging_them() {
        let k = [
            bar(0, 1.0, 1.0, 1.0, 100.0),
            bar(1, 1.0, 1.0, 1.0, 110.0),
            bar(3, 1.0, 1.0, 1.0, 121.0),
        ];
        let r = log_returns(&k);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, Timestamp(BAR_MS));
        assert!((r[0].1 - (1.1f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn pearson_of_known_series() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        // Hand-computed: x = 1,2,3,4; y = 1,3,2,4 → sxy = 4, sxx = syy = 5 → 0.8.
        assert!(
            (pearson(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap() - 0.8).abs() < 1e-12
        );
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), None);
    }
}
