//! One account's books as the replay reports them: its state at each bar, what the paper
//! exchange liquidated, the ungoverned account's order counts, and the bar's prices every
//! account trades at.

use crate::exchange::paper::{Liquidated, PaperExchange};
use crate::market_data::closed_by;
use governor_core::config::MarginMode;
use governor_core::market::brackets::BracketTable;
use governor_core::market::Kline;
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use serde::Serialize;
use std::collections::BTreeMap;

/// One account's state at a bar.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccountStat {
    /// Equity (wallet + unrealized PnL).
    pub equity: f64,
    /// Drawdown from the running peak, as a fraction.
    pub drawdown: f64,
    /// Open positions.
    pub positions: usize,
    /// Σ notional at the marks.
    pub notional: f64,
    /// Margin in use / equity.
    pub margin_usage: f64,
    /// Binance's account margin ratio: maintenance margin / equity.
    pub margin_ratio: f64,
    /// The nearest any position is to its liquidation price (a fraction of its mark); `None`
    /// with no position that a positive price liquidates.
    pub closest_liquidation: Option<f64>,
}

/// Counts of one run of the ungoverned account.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UngovernedCounts {
    /// Orders the exchange filled.
    pub filled: usize,
    /// Orders the exchange refused for margin (-2019).
    pub margin_rejected: usize,
}

/// A position the paper exchange liquidated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiquidationRow {
    /// The bar (its close) in which the price reached the liquidation price.
    pub t: Timestamp,
    /// The instrument.
    pub symbol: String,
    /// LONG or SHORT.
    pub side: String,
    /// The position's size.
    pub qty: f64,
    /// Where it was closed.
    pub price: f64,
    /// Realized PnL less the liquidation fee.
    pub loss: f64,
}

impl LiquidationRow {
    /// The row of a liquidation in the bar closing at `t`.
    pub fn of(t: Timestamp, l: &Liquidated) -> Self {
        LiquidationRow {
            t,
            symbol: l.symbol.to_string(),
            side: l.side.as_str().to_owned(),
            qty: l.qty,
            price: l.price,
            loss: l.realized_pnl - l.fee,
        }
    }
}

/// The low and high of each symbol's bar closing at `t` (where liquidations are looked for).
pub fn extremes_at(
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    t: Timestamp,
) -> BTreeMap<Symbol, (f64, f64)> {
    klines
        .iter()
        .filter_map(|(s, series)| {
            let bar = closed_by(series, t).last()?;
            (bar.close_time() == t).then(|| (s.clone(), (bar.low, bar.high)))
        })
        .collect()
}

/// Closing prices at `t` and the opens of the bars starting at `t` (where orders fill).
pub fn prices_at(
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    t: Timestamp,
) -> (BTreeMap<Symbol, f64>, BTreeMap<Symbol, f64>) {
    let mut marks = BTreeMap::new();
    let mut fills = BTreeMap::new();
    for (s, series) in klines {
        if let Some(last) = closed_by(series, t).last() {
            marks.insert(s.clone(), last.close);
        }
        if let Ok(i) = series.binary_search_by_key(&t.0, |k| k.open_time.0) {
            fills.insert(s.clone(), series[i].open);
        }
    }
    (marks, fills)
}

/// The account's state after a bar; `peak` is its running equity peak, updated.
pub fn account_stat(
    x: &PaperExchange,
    peak: &mut f64,
    brackets: &BracketTable,
    mode: MarginMode,
) -> AccountStat {
    let reading = x.reading(brackets, mode);
    let equity = reading.equity;
    *peak = peak.max(equity);
    AccountStat {
        equity,
        drawdown: if *peak > 0.0 {
            (*peak - equity) / *peak
        } else {
            0.0
        },
        positions: x.positions().len(),
        notional: reading.notional,
        margin_usage: if equity > 0.0 {
            reading.margin_used / equity
        } else {
            f64::INFINITY
        },
        margin_ratio: reading.margin_ratio,
        closest_liquidation: reading
            .liquidations
            .into_iter()
            .map(|l| l.3)
            .min_by(f64::total_cmp),
    }
}
