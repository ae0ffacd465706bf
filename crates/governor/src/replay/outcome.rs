//! A run's governed account in three numbers, for the side-by-side comparisons of the report.

use super::engine::BarStat;
use serde::Serialize;

/// The governed account of one run, in three numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountOutcome {
    /// Equity after the last bar.
    pub final_equity: f64,
    /// Final equity − starting capital.
    pub pnl: f64,
    /// Deepest drawdown from a running peak, as a fraction.
    pub max_drawdown: f64,
}

impl AccountOutcome {
    /// The governed account's outcome over `bars`.
    pub fn of(bars: &[BarStat], initial_equity: f64) -> Self {
        let final_equity = bars.last().map_or(initial_equity, |b| b.governed.equity);
        AccountOutcome {
            final_equity,
            pnl: final_equity - initial_equity,
            max_drawdown: bars.iter().map(|b| b.governed.drawdown).fold(0.0, f64::max),
        }
    }
}
