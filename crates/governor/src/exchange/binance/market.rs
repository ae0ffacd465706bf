//! Market data and the account from Binance for the governor's snapshot: closed 1 h klines per
//! symbol fetched once per bar (not per plan), the leverage brackets at start and every hour,
//! the account and positions at most every two seconds. What cannot be fetched is left out or kept as it was — it then shows its age in the
//! trace and the governor fails closed (`market_data_unavailable`, `exchange_state_unavailable`).

use super::venue::BinanceVenue;
use crate::exchange::Exchange;
use crate::inputs::InputsSource;
use crate::inputs::MarketInputs;
use crate::market_data::{closed_by, market_at, FEATURE_LOOKBACK};
use governor_core::market::brackets::BracketTable;
use governor_core::market::{Kline, BAR_MS};
use governor_core::snapshot::ExchangeState;
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How long an account reading is reused.
const ACCOUNT_TTL_MS: i64 = 2_000;

/// How long a fetched bracket table is used before it is fetched again.
pub const BRACKETS_TTL_MS: i64 = 3_600_000;

/// How long after a failed bracket fetch the next one is tried (the last good table stays).
const BRACKETS_RETRY_MS: i64 = 60_000;

/// The symbols to keep klines for (the policy universe and the regime reference).
pub type SymbolSource = Arc<dyn Fn() -> Vec<Symbol> + Send + Sync>;

#[derive(Default)]
struct Cache {
    /// The bar (its open time) the klines were fetched for.
    bar: Option<i64>,
    klines: BTreeMap<Symbol, Vec<Kline>>,
    /// The last good bracket table (empty until one is fetched: opens fail closed).
    brackets: BracketTable,
    /// When brackets were last fetched (good or not), and whether it worked.
    brackets_tried: Option<(i64, bool)>,
    market: Option<(i64, MarketInputs)>,
    account: Option<(i64, Option<ExchangeState>)>,
}

/// Binance as the governor's source of market and account.
pub struct BinanceMarket {
    venue: BinanceVenue,
    symbols: SymbolSource,
    window: usize,
    cache: Mutex<Cache>,
}

impl BinanceMarket {
    /// Reads through `venue` for the symbols `symbols` names at each bar.
    pub fn new(venue: BinanceVenue, symbols: SymbolSource, window: usize) -> Self {
        BinanceMarket {
            venue,
            symbols,
            window,
            cache: Mutex::new(Cache::default()),
        }
    }

    fn refresh_klines(&self, cache: &mut Cache, bar: i64, now: Timestamp) {
        for symbol in (self.symbols)() {
            match self.venue.klines(&symbol, FEATURE_LOOKBACK + 20) {
                // Only closed bars count; the open one is dropped.
                Ok(series) => {
                    let closed = closed_by(&series, now).to_vec();
                    cache.klines.insert(symbol, closed);
                }
                Err(e) => crate::logfmt::line(
                    "BINANCE_KLINES_FAILED",
                    &[("symbol", symbol.to_string()), ("error", e.to_string())],
                ),
            }
        }
        cache.bar = Some(bar);
        cache.market = None;
    }

    /// Fetches the bracket table when it is an hour old (or was never fetched, or the last try
    /// failed a minute ago); a failure keeps the last good table and says so.
    fn refresh_brackets(&self, cache: &mut Cache, now: Timestamp) {
        let due = match cache.brackets_tried {
            None => true,
            Some((at, true)) => now.millis() - at >= BRACKETS_TTL_MS,
            Some((at, false)) => now.millis() - at >= BRACKETS_RETRY_MS,
        };
        if !due {
            return;
        }
        match self.venue.client.leverage_brackets() {
            Ok(table) => {
                crate::logfmt::line("BINANCE_BRACKETS", &[("symbols", table.len().to_string())]);
                cache.brackets = table;
                cache.brackets_tried = Some((now.millis(), true));
                cache.market = None;
            }
            Err(e) => {
                crate::logfmt::line(
                    "BINANCE_BRACKETS_FAILED",
                    &[
                        ("error", e.to_string()),
                        ("kept_symbols", cache.brackets.len().to_string()),
                    ],
                );
                cache.brackets_tried = Some((now.millis(), false));
            }
        }
    }
}

impl InputsSource for BinanceMarket {
    fn inputs(&self, now: Timestamp) -> MarketInputs {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let bar = now.millis() - now.millis().rem_euclid(BAR_MS);
        if cache.bar != Some(bar) {
            self.refresh_klines(&mut cache, bar, now);
        }
        self.refresh_brackets(&mut cache, now);
        let fresh_account = cache
            .account
            .as_ref()
            .is_some_and(|(at, _)| now.millis() - at < ACCOUNT_TTL_MS);
        if !fresh_account {
            if self.venue.client.clock_due(now.millis()) {
                match self.venue.client.sync_time() {
                    Ok(offset) => {
                        crate::logfmt::line("BINANCE_CLOCK", &[("offset_ms", offset.to_string())])
                    }
                    Err(e) => {
                        crate::logfmt::line("BINANCE_CLOCK_FAILED", &[("error", e.to_string())])
                    }
                }
            }
            let account = match self.venue.account() {
                Ok(a) => Some(a),
                Err(e) => {
                    crate::logfmt::line("BINANCE_ACCOUNT_FAILED", &[("error", e.to_string())]);
                    None
                }
            };
            cache.account = Some((now.millis(), account));
        }
        let market = match &cache.market {
            Some((at, m)) if *at == bar => m.clone(),
            _ => {
                let (market, correlations) =
                    market_at(&cache.klines, &cache.brackets, now, self.window);
                let m = MarketInputs {
                    exchange: None,
                    market: market.into(),
                    correlations: Some(correlations),
                };
                cache.market = Some((bar, m.clone()));
                m
            }
        };
        MarketInputs {
            exchange: cache.account.as_ref().and_then(|(_, a)| a.clone()),
            ..market
        }
    }
}
