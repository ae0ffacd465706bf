//! The recorded market indexed once for replaying it bar by bar, shared by every run over the
//! same data — the report's comparison runs, a candidate config, a sweep's runs on all threads.
//!
//! What a bar's market holds is a pure function of the klines closed by then, so it need not
//! be recomputed from scratch at every bar of every run: each symbol's 1 h log returns are
//! taken once for the whole series, its regime features once per replayed bar, and each bar's
//! pairwise correlations once per correlation window. A bar's summaries are then assembled from
//! those, equal to what [`crate::market_data::market_at`] computes from the klines.

use crate::market_data::{closed_by, load_recorded, FEATURE_LOOKBACK};
use anyhow::bail;
use governor_core::market::brackets::BracketTable;
use governor_core::market::correlation::CorrelationCache;
use governor_core::market::regime::{FeatureSeries, RegimeFeatures};
use governor_core::market::{Kline, SymbolMarket, BAR_MS};
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What is computed once for one symbol's bars.
struct Series {
    /// Every log return of a bar over the one before it when they are adjacent hours, tagged
    /// with the later bar's open time, in order.
    returns: Vec<(Timestamp, f64)>,
    /// `returns_through[i]`: how many of `returns` belong to bars `0..=i`.
    returns_through: Vec<usize>,
    /// Regime features by the number of closed bars (`features[n]` over the last
    /// [`FEATURE_LOOKBACK`] of the first `n`), for the counts the timeline reaches.
    features: BTreeMap<usize, Option<RegimeFeatures>>,
    /// The closes and true ranges the features are computed from, for a count the timeline
    /// does not reach.
    feature_series: FeatureSeries,
}

impl Series {
    fn new(klines: &[Kline], timeline: &[Timestamp]) -> Series {
        let mut returns = Vec::with_capacity(klines.len());
        let mut returns_through = Vec::with_capacity(klines.len());
        for (i, bar) in klines.iter().enumerate() {
            if i > 0 && bar.open_time.0 - klines[i - 1].open_time.0 == BAR_MS {
                returns.push((bar.open_time, (bar.close / klines[i - 1].close).ln()));
            }
            returns_through.push(returns.len());
        }
        let counts: BTreeSet<usize> = timeline
            .iter()
            .map(|t| closed_by(klines, *t).len())
            .collect();
        let feature_series = FeatureSeries::new(klines);
        let features = counts
            .into_iter()
            .map(|n| {
                (
                    n,
                    feature_series.features(n.saturating_sub(FEATURE_LOOKBACK), n),
                )
            })
            .collect();
        Series {
            returns,
            returns_through,
            features,
            feature_series,
        }
    }

    /// The regime features over the last [`FEATURE_LOOKBACK`] of the first `n` bars: the ones
    /// computed for the timeline, or computed now for a count it does not reach.
    fn features_of(&self, n: usize) -> Option<RegimeFeatures> {
        match self.features.get(&n) {
            Some(f) => *f,
            None => self
                .feature_series
                .features(n.saturating_sub(FEATURE_LOOKBACK), n),
        }
    }

    /// How many bars have closed by `now`, and the newest `keep_returns` of the returns inside
    /// the last [`FEATURE_LOOKBACK`] of them (bar `start`'s own return is over a bar outside
    /// the window); `None` before the first bar closes.
    fn returns_at(
        &self,
        klines: &[Kline],
        now: Timestamp,
        keep_returns: usize,
    ) -> Option<(usize, &[(Timestamp, f64)])> {
        let n = closed_by(klines, now).len();
        if n == 0 {
            return None;
        }
        let start = n.saturating_sub(FEATURE_LOOKBACK);
        let end = self.returns_through[n - 1];
        let first = self.returns_through[start].max(end.saturating_sub(keep_returns));
        Some((n, &self.returns[first..end]))
    }

    /// The summary as of `now`, as `SymbolMarket::from_klines` gives it over the last
    /// [`FEATURE_LOOKBACK`] closed bars; `None` before the first bar closes.
    fn summary(
        &self,
        klines: &[Kline],
        now: Timestamp,
        keep_returns: usize,
    ) -> Option<SymbolMarket> {
        let (n, returns) = self.returns_at(klines, now, keep_returns)?;
        let last = &klines[n - 1];
        Some(SymbolMarket {
            last_bar_close: last.close_time(),
            last_close: last.close,
            bars: n - n.saturating_sub(FEATURE_LOOKBACK),
            features: self.features_of(n),
            returns: returns.to_vec(),
            brackets: None,
        })
    }
}

/// The bars' correlations for one window, by bar close.
type CorrelationsByBar = BTreeMap<Timestamp, Arc<CorrelationCache>>;

/// A recorded market directory, indexed for the replay's timeline.
pub struct Tape {
    /// Each symbol's bars, oldest first.
    pub klines: BTreeMap<Symbol, Vec<Kline>>,
    series: BTreeMap<Symbol, Series>,
    /// Each symbol's leverage brackets.
    pub brackets: BracketTable,
    /// Every bar close between `from` and `to`, in order.
    pub timeline: Vec<Timestamp>,
    /// Per correlation window, computed by the first run that needs it.
    correlations: Mutex<BTreeMap<usize, Arc<CorrelationsByBar>>>,
}

impl Tape {
    /// Loads `dir` and indexes the bars closing between `from` and `to` (inclusive).
    pub fn load(
        dir: &Path,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> anyhow::Result<Tape> {
        let (klines, brackets) = load_recorded(dir)?;
        let timeline: Vec<Timestamp> = klines
            .values()
            .flat_map(|k| k.iter().map(Kline::close_time))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|t| from.is_none_or(|f| *t >= f) && to.is_none_or(|to| *t <= to))
            .collect();
        if timeline.is_empty() {
            bail!("no bars between --from and --to in {}", dir.display());
        }
        let series = klines
            .iter()
            .map(|(s, k)| (s.clone(), Series::new(k, &timeline)))
            .collect();
        Ok(Tape {
            klines,
            series,
            brackets,
            timeline,
            correlations: Mutex::new(BTreeMap::new()),
        })
    }

    /// A symbol's regime features as of `now` (those its summary carries).
    pub fn features(&self, symbol: &Symbol, now: Timestamp) -> Option<RegimeFeatures> {
        let klines = self.klines.get(symbol)?;
        let n = closed_by(klines, now).len();
        self.series.get(symbol)?.features_of(n)
    }

    /// Per-symbol summaries as of `now` with `keep_returns` returns and the symbol's brackets
    /// (the same as `market_data::summaries_at`).
    pub fn summaries_at(
        &self,
        now: Timestamp,
        keep_returns: usize,
    ) -> BTreeMap<Symbol, Arc<SymbolMarket>> {
        self.series
            .iter()
            .filter_map(|(symbol, series)| {
                let summary = series
                    .summary(&self.klines[symbol], now, keep_returns)?
                    .with_brackets(self.brackets.get(symbol).cloned());
                Some((symbol.clone(), Arc::new(summary)))
            })
            .collect()
    }

    /// The market of the bar closing at `now` for decisions: the summaries, and every pair's
    /// correlation over `window` returns (computed for the whole timeline the first time a
    /// window is asked for, then shared).
    pub fn market_at(
        &self,
        now: Timestamp,
        window: usize,
    ) -> (BTreeMap<Symbol, Arc<SymbolMarket>>, Arc<CorrelationCache>) {
        let market = self.summaries_at(now, 2 * window);
        let by_bar = self.correlations_for(window);
        let correlations = match by_bar.get(&now) {
            Some(c) => c.clone(),
            None => Arc::new(CorrelationCache::build(&market, window)),
        };
        (market, correlations)
    }

    fn correlations_for(&self, window: usize) -> Arc<CorrelationsByBar> {
        let mut all = self.correlations.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(window)
            .or_insert_with(|| {
                Arc::new(
                    self.timeline
                        .iter()
                        .map(|t| {
                            // The returns the bar's summaries would carry, without building
                            // the summaries.
                            let returns = self.series.iter().filter_map(|(symbol, series)| {
                                let (_, r) =
                                    series.returns_at(&self.klines[symbol], *t, 2 * window)?;
                                Some((symbol.clone(), r))
                            });
                            (
                                *t,
                                Arc::new(CorrelationCache::from_returns(returns, window)),
                            )
                        })
                        .collect(),
                )
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market_data::market_at;
    use std::path::PathBuf;

    #[test]
    fn a_bar_of_the_tape_is_the_market_computed_from_the_klines() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/klines");
        let tape = Tape::load(&dir, None, None).unwrap();
        let (klines, brackets) = load_recorded(&dir).unwrap();
        // The first bars (too few for features), bars with a gap, and the last one.
        let n = tape.timeline.len();
        for &i in &[0, 1, 49, 50, 51, 299, 300, 301, n / 2, n - 1] {
            let t = tape.timeline[i];
            // Windows of 150 and 200 keep more returns than a 300-bar lookback holds: the
            // window's own bound then decides which returns are in.
            for window in [20, 100, 150, 200] {
                let (ours, our_corr) = tape.market_at(t, window);
                let (theirs, their_corr) = market_at(&klines, &brackets, t, window);
                assert_eq!(ours, theirs, "bar {i}, window {window}");
                assert_eq!(*our_corr, *their_corr, "bar {i}, window {window}");
            }
        }
        // A time between bars sees the bars closed by then.
        let between = Timestamp(tape.timeline[n / 2].0 + 1_234);
        assert_eq!(
            tape.summaries_at(between, 200),
            crate::market_data::summaries_at(&klines, &brackets, between, 200)
        );
    }
}
