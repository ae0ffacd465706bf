//! Recorded market data on disk: a directory of `<SYMBOL>-1h.csv` files and, beside them, the
//! symbols' leverage brackets (`leverage-brackets.json`), loaded and checked, and turned into
//! the per-symbol summaries a decision reads at a given time.

use anyhow::{bail, Context};
use governor_core::market::brackets::{parse_binance, BracketTable};
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

/// The file of leverage brackets beside the klines, in the shape of Binance's
/// `GET /fapi/v1/leverageBracket` answer.
pub const BRACKETS_FILE: &str = "leverage-brackets.json";

/// Loads `dir/leverage-brackets.json`. A missing file is an empty table (every open then fails
/// closed for want of tiers, and the caller says so); a file that does not read whole is an
/// error naming the file and what is wrong in it.
pub fn load_brackets(dir: &Path) -> anyhow::Result<BracketTable> {
    let path = dir.join(BRACKETS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BracketTable::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse_binance(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A recorded market: the klines of `dir` and their leverage brackets. Symbols with klines but
/// no brackets are named in a `MARKET_BRACKETS_MISSING` line (their opens fail closed).
pub type Recorded = (BTreeMap<Symbol, Vec<Kline>>, BracketTable);

/// Loads [`Recorded`] from `dir`.
pub fn load_recorded(dir: &Path) -> anyhow::Result<Recorded> {
    let klines = load_klines_dir(dir)?;
    let brackets = load_brackets(dir)?;
    let missing: Vec<&str> = klines
        .keys()
        .filter(|s| !brackets.contains_key(*s))
        .map(Symbol::as_str)
        .collect();
    if !missing.is_empty() {
        crate::logfmt::line(
            "MARKET_BRACKETS_MISSING",
            &[
                ("dir", dir.display().to_string()),
                ("symbols", missing.join(",")),
                ("effect", "opens_refused_market_data_unavailable".to_owned()),
            ],
        );
    }
    Ok((klines, brackets))
}

/// The bars of `klines` that have closed by `now` (oldest first).
pub fn closed_by(klines: &[Kline], now: Timestamp) -> &[Kline] {
    let end = klines.partition_point(|k| k.close_time() <= now);
    &klines[..end]
}

/// Per-symbol summaries as of `now`: only closed bars, indicators over the last
/// [`FEATURE_LOOKBACK`] of them, `keep_returns` returns for correlation, and the symbol's
/// leverage brackets. Symbols with no closed bar yet are absent (a decision needing them fails
/// closed).
pub fn summaries_at(
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    brackets: &BracketTable,
    now: Timestamp,
    keep_returns: usize,
) -> BTreeMap<Symbol, Arc<SymbolMarket>> {
    klines
        .iter()
        .filter_map(|(symbol, series)| {
            let closed = closed_by(series, now);
            let window = &closed[closed.len().saturating_sub(FEATURE_LOOKBACK)..];
            let summary = SymbolMarket::from_klines(window, keep_returns)?
                .with_brackets(brackets.get(symbol).cloned());
            Some((symbol.clone(), Arc::new(summary)))
        })
        .collect()
}

/// The market as of `now` for decisions: per-symbol summaries and every pair's correlation over
/// `window` returns, both computed once for the bar.
pub fn market_at(
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    brackets: &BracketTable,
    now: Timestamp,
    window: usize,
) -> (BTreeMap<Symbol, Arc<SymbolMarket>>, Arc<CorrelationCache>) {
    let market = summaries_at(klines, brackets, now, 2 * window);
    let correlations = Arc::new(CorrelationCache::build(&market, window));
    (market, correlations)
}
