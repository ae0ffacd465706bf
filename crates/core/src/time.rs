//! Time as a value. The core never reads a clock: every function that needs "now" takes it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time in milliseconds since the Unix epoch (UTC).
///
/// Milliseconds because Binance and Redis stream ids speak milliseconds; a newtype so that
/// seconds and milliseconds can never be mixed up silently.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// A timestamp from whole Unix seconds.
    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `secs` seconds.
    pub fn plus_secs(self, secs: u64) -> Self {
        Timestamp(self.0.saturating_add((secs as i64).saturating_mul(1000)))
    }

    /// This instant moved back by `secs` seconds.
    pub fn minus_secs(self, secs: u64) -> Self {
        Timestamp(self.0.saturating_sub((secs as i64).saturating_mul(1000)))
    }

    /// Seconds elapsed from `earlier` to `self` (negative when `earlier` is in the future).
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
