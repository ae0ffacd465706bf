//! Recorded klines on disk: a directory of `<SYMBOL>-1h.csv` files, loaded and checked, and
//! turned into the per-symbol summaries a decision reads at a given time.

use anyhow::{bail, Context};
use governor_core::market::correlation::CorrelationCache;
use governor_core::market::csv::parse_klines;
use governor_core::market::{Kline, SymbolMarket};
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Bars the indicators look back over. EMA50 seeded 250 bars earlier has forgotten its seed
/// (weight (49/51)^250 ≈ 5e-5), and a bounded window keeps a per-bar update O(1) in history.
pub const FEATURE_LOOKBACK: usize = 300;

/// Loads every `<SYMBOL>-1h.csv` in `dir`. Any bad file or row stops the load with its file
/// and line; a directory without klines is an error too.
pub fn load_klines_dir(dir: &Path) -> anyhow::Result<BTreeMap<Symbol, Vec<Kline>>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the klines directory {}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(stem) = name.strip_suffix("-1h.csv") else {
            bail!("{}: expected files named <SYMBOL>-1h.csv", path.display());
        };
        let symbol = Symbol::parse(stem)
            .map_err(|e| anyhow::anyhow!("{}: symbol {stem:?} {e}", path.display()))?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let klines = parse_klines(&path.display().to_string(), &text)?;
        out.insert(symbol, klines);
    }
    if out.is_empty() {
        bail!("{}: no <SYMBOL>-1h.csv files", dir.display());
    }
    Ok(out)
}

/// The bars of `klines` that have closed by `now` (oldest first).
pub fn closed_by(klines: &[Kline], now: Timestamp) -> &[Kline] {
    let end = klines.partition_point(|k| k.close_time() <= now);
    &klines[..end]
}

/// Per-symbol summaries as of `now`: only closed bars, indicators over the last
/// [`FEATURE_LOOKBACK`] of them, `keep_returns` returns for correlation. Symbols with no
/// closed bar yet are absent (a decision needing them fails closed).
pub fn summaries_at(
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    now: Timestamp,
    keep_returns: usize,
) -> BTreeMap<Symbol, Arc<SymbolMarket>> {
    klines
        .iter()
        .filter_map(|(symbol, series)| {
            let closed = closed_by(series, now);
            let window = &closed[closed.len().saturating_sub(FEATURE_LOOKBACK)..];
            SymbolMarket::from_klines(window, keep_returns).map(|m| (symbol.clone(), Arc::new(m)))
        })
        .collect()
}

/// The market as of `now` for decisions: per-symbol summaries and every pair's correlation over
/// `window` returns, both computed once for the bar.
pub fn market_at(
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    now: Timestamp,
    window: usize,
) -> (BTreeMap<Symbol, Arc<SymbolMarket>>, Arc<CorrelationCache>) {
    let market = summaries_at(klines, now, 2 * window);
    let correlations = Arc::new(CorrelationCache::build(&market, window));
    (market, correlations)
}
