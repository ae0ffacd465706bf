//! Market data as the decision sees it: closed 1 h klines, indicators computed once per bar,
//! the regime classifier, and timestamp-aligned correlation.

pub mod brackets;
pub mod calibrate;
pub mod correlation;
pub mod csv;
pub mod indicators;
pub mod kline;
pub mod regime;
pub mod summary;

pub use kline::{Kline, BAR_MS};
pub use regime::{Regime, RegimeFeatures, RegimeReading};
pub use summary::SymbolMarket;
