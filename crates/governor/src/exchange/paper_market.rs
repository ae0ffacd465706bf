//! Paper mode outside the replay: recorded klines mapped onto the wall clock, and an exchange
//! view that mirrors the ledger at those prices. At start-up the data is shifted so that the bar
//! 30 days before its end (or its first bar with enough history) closes at the current hour;
//! the recorded market then plays forward in real time, so paper mode is neither frozen nor
//! stale until the recording runs out (then opens fail closed on stale data, as they should).

use crate::inputs::InputsSource;
use crate::inputs::MarketInputs;
use crate::market_data::{closed_by, load_recorded, market_at, FEATURE_LOOKBACK};
use crate::store::redis::RedisStore;
use crate::store::StoreError;
use governor_core::book::LedgerPosition;
use governor_core::market::brackets::BracketTable;
use governor_core::market::correlation::CorrelationCache;
use governor_core::market::{Kline, SymbolMarket, BAR_MS};
use governor_core::snapshot::{ExchangePosition, ExchangeState};
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Hours of recorded data kept ahead of the wall clock at start-up.
pub const PLAY_FORWARD_HOURS: usize = 24 * 30;

/// The market of one bar: summaries and pairwise correlations.
type BarMarket = (BTreeMap<Symbol, Arc<SymbolMarket>>, Arc<CorrelationCache>);

/// Where the paper exchange's positions come from: the ledger of the state store.
pub trait LedgerSource: Send + Sync {
    /// The ledger positions at `now`.
    fn ledger_positions(
        &self,
        now: Timestamp,
    ) -> Result<BTreeMap<Symbol, LedgerPosition>, StoreError>;
}

impl LedgerSource for RedisStore {
    fn ledger_positions(
        &self,
        now: Timestamp,
    ) -> Result<BTreeMap<Symbol, LedgerPosition>, StoreError> {
        self.ledger(now)
    }
}

impl LedgerSource for crate::store::memory::MemoryStore {
    fn ledger_positions(
        &self,
        _now: Timestamp,
    ) -> Result<BTreeMap<Symbol, LedgerPosition>, StoreError> {
        Ok(self.read(|st| st.book.positions.clone()))
    }
}

/// Recorded market on the wall clock, plus the ledger mirror as the exchange.
pub struct PaperMarket {
    klines: BTreeMap<Symbol, Vec<Kline>>,
    brackets: BracketTable,
    store: Arc<dyn LedgerSource>,
    capital: f64,
    window: usize,
    cache: Mutex<Option<(Timestamp, BarMarket)>>,
}

/// The shift that puts the anchor bar's close at the start of the current hour.
pub fn wall_clock_shift(klines: &BTreeMap<Symbol, Vec<Kline>>, wall_now: Timestamp) -> i64 {
    let closes: Vec<Timestamp> = klines
        .values()
        .flat_map(|k| k.iter().map(Kline::close_time))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let anchor_index = closes
        .len()
        .saturating_sub(PLAY_FORWARD_HOURS)
        .max(FEATURE_LOOKBACK)
        .min(closes.len().saturating_sub(1));
    let anchor = closes.get(anchor_index).map_or(0, |t| t.millis());
    let hour = wall_now.millis() - wall_now.millis().rem_euclid(BAR_MS);
    hour - anchor
}

impl PaperMarket {
    /// Loads `dir` (klines and leverage brackets) and maps it onto the wall clock at
    /// `wall_now`. Symbols without brackets are named in a `MARKET_BRACKETS_MISSING` line.
    pub fn load(
        dir: &Path,
        wall_now: Timestamp,
        capital: f64,
        store: Arc<dyn LedgerSource>,
        window: usize,
    ) -> anyhow::Result<Self> {
        let (mut klines, brackets) = load_recorded(dir)?;
        let shift = wall_clock_shift(&klines, wall_now);
        for series in klines.values_mut() {
            for k in series.iter_mut() {
                k.open_time = Timestamp(k.open_time.millis() + shift);
            }
        }
        Ok(PaperMarket {
            klines,
            brackets,
            store,
            capital,
            window,
            cache: Mutex::new(None),
        })
    }

    fn market(&self, now: Timestamp) -> BarMarket {
        let bar = Timestamp(now.millis() - now.millis().rem_euclid(BAR_MS));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.as_ref() {
            Some((at, m)) if *at == bar => m.clone(),
            _ => {
                let m = market_at(&self.klines, &self.brackets, now, self.window);
                *cache = Some((bar, m.clone()));
                m
            }
        }
    }

    /// The symbols of the recording (the embedded policy universe).
    pub fn symbols(&self) -> Vec<Symbol> {
        self.klines.keys().cloned().collect()
    }

    /// The closed bars of `symbol` at `now`, the last `limit`.
    pub fn klines_at(&self, symbol: &Symbol, now: Timestamp, limit: usize) -> Vec<Kline> {
        let closed = self
            .klines
            .get(symbol)
            .map_or(&[][..], |k| closed_by(k, now));
        closed[closed.len().saturating_sub(limit)..].to_vec()
    }

    /// The last close of `symbol` at `now`: the paper mark.
    pub fn mark(&self, symbol: &Symbol, now: Timestamp) -> Option<f64> {
        closed_by(self.klines.get(symbol)?, now)
            .last()
            .map(|k| k.close)
    }
}

impl InputsSource for PaperMarket {
    fn inputs(&self, now: Timestamp) -> MarketInputs {
        let exchange = self.store.ledger_positions(now).ok().map(|ledger| {
            let mut unrealized = 0.0;
            let positions = ledger
                .into_iter()
                .map(|(s, p)| {
                    let mark = self.mark(&s, now).unwrap_or(p.entry_price);
                    unrealized += (mark - p.entry_price) * p.qty * p.side.sign();
                    let x = ExchangePosition {
                        side: p.side,
                        qty: p.qty,
                        entry_price: p.entry_price,
                        mark_price: mark,
                        leverage: p.leverage,
                    };
                    (s, x)
                })
                .collect();
            ExchangeState {
                equity_usdt: self.capital + unrealized,
                positions,
                clock: governor_core::snapshot::ExchangeClock::Local,
            }
        });
        let (market, correlations) = self.market(now);
        MarketInputs {
            exchange,
            market: market.into(),
            correlations: Some(correlations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_bar_closes_at_the_current_hour() {
        let series: Vec<Kline> = (0..1000)
            .map(|i| Kline {
                open_time: Timestamp(i * BAR_MS),
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 1.0,
            })
            .collect();
        let klines: BTreeMap<_, _> = [(Symbol::parse("BTCUSDT").unwrap(), series)].into();
        let wall = Timestamp(1_800_000_000_123);
        let shift = wall_clock_shift(&klines, wall);
        // 1000 closes at 1..=1000 h; 720 h ahead would anchor at index 280, but the indicators
        // need 300 bars of history, so the anchor is index 300 → the close at 301 h.
        assert_eq!(
            301 * BAR_MS + shift,
            wall.millis() - wall.millis().rem_euclid(BAR_MS)
        );
    }
}
