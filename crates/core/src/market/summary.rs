//! The per-symbol market summary the decision reads, computed once per closed bar.

use super::brackets::LeverageBrackets;
use super::indicators::log_returns;
use super::kline::Kline;
use super::regime::RegimeFeatures;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Everything the decision needs to know about one symbol's market, computed once per closed
/// bar (never per plan): the newest close, the regime features and the recent log returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SymbolMarket {
    /// Close time of the newest closed bar: the data's age is measured from it.
    pub last_bar_close: Timestamp,
    /// The newest close: the mark price when a plan states none.
    pub last_close: f64,
    /// How many closed bars the features were computed from.
    pub bars: usize,
    /// Regime features, when there were enough bars to compute them.
    pub features: Option<RegimeFeatures>,
    /// Recent 1 h log returns tagged with the bar they end in (only between adjacent hours).
    pub returns: Vec<(Timestamp, f64)>,
    /// The exchange's leverage brackets for the symbol; `None` when they are not known (an
    /// open then fails closed: nothing is sized against a guessed tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brackets: Option<LeverageBrackets>,
}

impl SymbolMarket {
    /// Summarises closed klines (oldest first). `keep_returns` bounds the returns kept for
    /// correlation. `None` when there are no bars at all.
    pub fn from_klines(klines: &[Kline], keep_returns: usize) -> Option<SymbolMarket> {
        let last = klines.last()?;
        let mut returns = log_returns(klines);
        if returns.len() > keep_returns {
            returns.drain(..returns.len() - keep_returns);
        }
        Some(SymbolMarket {
            last_bar_close: last.close_time(),
            last_close: last.close,
            bars: klines.len(),
            features: RegimeFeatures::compute(klines),
            returns,
            brackets: None,
        })
    }

    /// The same summary with the symbol's leverage brackets.
    pub fn with_brackets(mut self, brackets: Option<LeverageBrackets>) -> SymbolMarket {
        self.brackets = brackets;
        self
    }

    /// Seconds since the newest bar closed, as of `now`.
    pub fn age_secs(&self, now: Timestamp) -> f64 {
        now.secs_since(self.last_bar_close)
    }
}
