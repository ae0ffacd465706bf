//! Correlation of two symbols' 1 h log returns, aligned on timestamps (never on row numbers).

use super::indicators::pearson_pairs;
use super::kline::BAR_MS;
use super::summary::SymbolMarket;
use crate::time::Timestamp;
use crate::types::Symbol;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The correlation of the last `window` returns the two series share, and how many they share.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Aligned {
    /// Pearson correlation of the aligned returns (`None`: a series had no variance).
    pub rho: Option<f64>,
    /// How many timestamps both series have, counted up to `window`.
    pub common: usize,
}

/// Whether the last `window` entries of `s` are `window` consecutive hours ending at `end`.
fn contiguous_tail(s: &[(Timestamp, f64)], window: usize, end: Timestamp) -> bool {
    s.len() >= window
        && s[s.len() - 1].0 == end
        && s[s.len() - window].0 .0 == end.0 - (window as i64 - 1) * BAR_MS
}

/// Keeps the last `window` timestamps present in both series (each sorted by time) and
/// correlates those. With fewer than `window` common timestamps `rho` is `None` and `common`
/// says how many there were. When both tails are the same unbroken run of hours (the usual
/// case) the returns are paired in place; otherwise the series are merged back from their ends.
pub fn aligned_correlation(
    a: &[(Timestamp, f64)],
    b: &[(Timestamp, f64)],
    window: usize,
) -> Aligned {
    if window >= 2 {
        if let Some(end) = a.last().map(|l| l.0) {
            if contiguous_tail(a, window, end) && contiguous_tail(b, window, end) {
                let xs = a[a.len() - window..].iter().map(|p| &p.1);
                let ys = b[b.len() - window..].iter().map(|p| &p.1);
                return Aligned {
                    rho: pearson_pairs(xs.zip(ys)),
                    common: window,
                };
            }
        }
    }
    let mut xs = Vec::with_capacity(window);
    let mut ys = Vec::with_capacity(window);
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 && xs.len() < window {
        let (ta, tb) = (a[i - 1].0, b[j - 1].0);
        if ta == tb {
            xs.push(a[i - 1].1);
            ys.push(b[j - 1].1);
            i -= 1;
            j -= 1;
        } else if ta > tb {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    let common = xs.len();
    let rho = if common >= window && window >= 2 {
        pearson_pairs(xs.iter().zip(ys.iter()))
    } else {
        None
    };
    Aligned { rho, common }
}

/// A symbol's 1 h log returns tagged with the bar they end in, oldest first.
type Returns<'r> = &'r [(Timestamp, f64)];

/// Every pair's aligned correlation, computed once per bar (correlation depends on market data
/// only, so no plan should pay for it).
#[derive(Clone, Debug, PartialEq)]
pub struct CorrelationCache {
    /// The window the pairs were computed over.
    pub window: usize,
    /// The symbols, sorted.
    symbols: Vec<Symbol>,
    /// `pairs[i * n + j]`: symbols `i` and `j` (each pair twice, so that a row is contiguous;
    /// the diagonal holds nothing anyone reads).
    pairs: Vec<Aligned>,
}

impl CorrelationCache {
    /// Computes every pair of `market` over `window` aligned returns.
    pub fn build(market: &BTreeMap<Symbol, Arc<SymbolMarket>>, window: usize) -> Self {
        Self::from_returns(
            market
                .iter()
                .map(|(s, m)| (s.clone(), m.returns.as_slice())),
            window,
        )
    }

    /// Computes every pair over `window` aligned returns from each symbol's returns (symbols
    /// in ascending order, each once): what [`CorrelationCache::build`] computes from the
    /// summaries, for a caller that holds the returns without summaries.
    pub fn from_returns<'r>(
        series: impl Iterator<Item = (Symbol, Returns<'r>)>,
        window: usize,
    ) -> Self {
        let (symbols, returns): (Vec<Symbol>, Vec<Returns<'r>>) = series.unzip();
        debug_assert!(symbols.windows(2).all(|w| w[0] < w[1]), "symbols in order");
        let n = symbols.len();
        let none = Aligned {
            rho: None,
            common: 0,
        };
        let mut pairs = vec![none; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let aligned = aligned_correlation(returns[i], returns[j], window);
                pairs[i * n + j] = aligned;
                pairs[j * n + i] = aligned;
            }
        }
        CorrelationCache {
            window,
            symbols,
            pairs,
        }
    }

    /// The pair's correlation (in either order), if it was computed.
    pub fn get(&self, a: &Symbol, b: &Symbol) -> Option<Aligned> {
        self.row(a)?.walk().find(b)
    }

    /// Every computed correlation of `a`, by the other symbol.
    pub fn row(&self, a: &Symbol) -> Option<CorrelationRow<'_>> {
        let i = self.symbols.binary_search(a).ok()?;
        let n = self.symbols.len();
        Some(CorrelationRow {
            me: i,
            symbols: &self.symbols,
            pairs: &self.pairs[i * n..(i + 1) * n],
        })
    }
}

/// One symbol's correlations with every other symbol of a [`CorrelationCache`].
#[derive(Copy, Clone, Debug)]
pub struct CorrelationRow<'c> {
    me: usize,
    symbols: &'c [Symbol],
    pairs: &'c [Aligned],
}

impl<'c> CorrelationRow<'c> {
    /// A cursor for looking several symbols up in ascending order, one step at a time.
    pub fn walk(self) -> RowWalk<'c> {
        RowWalk { row: self, next: 0 }
    }
}

/// Looks symbols up in a [`CorrelationRow`] in ascending order: each lookup resumes where the
/// one before stopped, so a held book (sorted) costs one comparison per step, not a search.
#[derive(Clone, Debug)]
pub struct RowWalk<'c> {
    row: CorrelationRow<'c>,
    next: usize,
}

impl RowWalk<'_> {
    /// The correlation with `symbol`. Symbols must be asked in ascending order (repeats
    /// allowed): one asked after a larger one is reported missing, never mistaken for another.
    /// The row's own symbol has none.
    pub fn find(&mut self, symbol: &Symbol) -> Option<Aligned> {
        let symbols = self.row.symbols;
        while self.next < symbols.len() {
            match symbols[self.next].cmp(symbol) {
                std::cmp::Ordering::Less => self.next += 1,
                std::cmp::Ordering::Equal if self.next == self.row.me => return None,
                std::cmp::Ordering::Equal => return Some(self.row.pairs[self.next]),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::indicators::pearson;

    fn series(start: i64, values: &[f64]) -> Vec<(Timestamp, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (Timestamp((start + i as i64) * BAR_MS), *v))
            .collect()
    }

    #[test]
    fn alignment_uses_timestamps_not_row_numbers() {
        // b starts one hour later: by rows they would be anti-correlated, by time identical.
        let a = series(0, &[1.0, -1.0, 2.0, -2.0, 3.0]);
        let b = series(1, &[-1.0, 2.0, -2.0, 3.0]);
        let aligned = aligned_correlation(&a, &b, 4);
        assert_eq!(aligned.common, 4);
        assert!((aligned.rho.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gaps_are_skipped_on_the_slow_path_and_agree_with_plain_pearson() {
        // b lacks hour 2: the common hours are 0,1,3,4,5.
        let a = series(0, &[0.3, -0.1, 0.9, 0.2, -0.4, 0.5]);
        let mut b = series(0, &[0.1, -0.2, 7.0, 0.4, -0.3, 0.2]);
        b.remove(2);
        let aligned = aligned_correlation(&a, &b, 5);
        let expected = pearson(&[0.3, -0.1, 0.2, -0.4, 0.5], &[0.1, -0.2, 0.4, -0.3, 0.2]).unwrap();
        assert_eq!(aligned.common, 5);
        assert!((aligned.rho.unwrap() - expected).abs() < 1e-12);
        // The fast path gives what the slow path gives on gap-free data.
        let b_full = series(0, &[0.1, -0.2, 7.0, 0.4, -0.3, 0.2]);
        let fast = aligned_correlation(&a, &b_full, 6).rho.unwrap();
        let slow = pearson(
            &[0.3, -0.1, 0.9, 0.2, -0.4, 0.5],
            &[0.1, -0.2, 7.0, 0.4, -0.3, 0.2],
        )
        .unwrap();
        assert!((fast - slow).abs() < 1e-12);
    }

    #[test]
    fn the_cache_answers_what_the_direct_computation_answers() {
        use crate::market::kline::Kline;
        let bars = |seed: f64| -> Vec<Kline> {
            (0..30)
                .map(|i| {
                    let c = 100.0 + ((i as f64) * seed).sin() * 3.0;
                    Kline {
                        open_time: Timestamp(i * BAR_MS),
                        open: c,
                        high: c + 1.0,
                        low: c - 1.0,
                        close: c,
                        volume: 1.0,
                    }
                })
                .collect()
        };
        let market: BTreeMap<Symbol, Arc<SymbolMarket>> =
            [("AAAUSDT", 0.7), ("BBBUSDT", 1.3), ("CCCUSDT", 2.1)]
                .into_iter()
                .map(|(s, seed)| {
                    (
                        Symbol::parse(s).unwrap(),
                        Arc::new(SymbolMarket::from_klines(&bars(seed), 50).unwrap()),
                    )
                })
                .collect();
        let cache = CorrelationCache::build(&market, 20);
        let (a, c) = (
            Symbol::parse("AAAUSDT").unwrap(),
            Symbol::parse("CCCUSDT").unwrap(),
        );
        let direct = aligned_correlation(&market[&a].returns, &market[&c].returns, 20);
        assert_eq!(cache.get(&a, &c), Some(direct));
        assert_eq!(cache.get(&c, &a), Some(direct));
        assert_eq!(cache.get(&a, &a), None);
        let b = Symbol::parse("BBBUSDT").unwrap();
        let ab = aligned_correlation(&market[&a].returns, &market[&b].returns, 20);
        let bc = aligned_correlation(&market[&b].returns, &market[&c].returns, 20);
        assert_ne!(ab, bc, "distinct pairs, so that a misplaced one shows");
        assert_eq!(cache.get(&b, &a), Some(ab));
        assert_eq!(cache.get(&b, &c), Some(bc));
        // A row walked in order finds each other symbol; one asked out of order is missing.
        let mut walk = cache.row(&b).unwrap().walk();
        assert_eq!(walk.find(&a), Some(ab));
        assert_eq!(walk.find(&b), None, "the row's own symbol");
        assert_eq!(walk.find(&c), Some(bc));
        assert_eq!(walk.find(&a), None, "asked after a larger symbol");
        assert_eq!(cache.get(&Symbol::parse("ZZZUSDT").unwrap(), &a), None);
    }

    #[test]
    fn too_few_common_timestamps_give_no_correlation() {
        let a = series(0, &[1.0, 2.0, 3.0]);
        let b = series(2, &[3.0, 4.0, 5.0]);
        let aligned = aligned_correlation(&a, &b, 3);
        assert_eq!(aligned.common, 1);
        assert_eq!(aligned.rho, None);
    }
}
