//! Klines: one 1 h candle, and the bar length.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One hour in milliseconds: the bar length of every series the governor reads.
pub const BAR_MS: i64 = 3_600_000;

/// One 1 h candle as Binance reports it.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kline {
    /// The bar's open time (UTC, ms).
    pub open_time: Timestamp,
    /// First trade price.
    pub open: f64,
    /// Highest trade price.
    pub high: f64,
    /// Lowest trade price.
    pub low: f64,
    /// Last trade price.
    pub close: f64,
    /// Volume in the base asset.
    pub volume: f64,
}

impl Kline {
    /// When the bar closes (its open time plus one hour).
    pub fn close_time(&self) -> Timestamp {
        Timestamp(self.open_time.0 + BAR_MS)
    }
}
