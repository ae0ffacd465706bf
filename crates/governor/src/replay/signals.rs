//! The sample signal source: a small, documented stand-in for the upstream model, so the
//! replay has plans to govern. It is deliberately simple and not a strategy anyone should run.
//!
//! Each closed hour:
//! - **Opens.** For every universe symbol with 24 h of history, momentum `m = close / close 24 h
//!   earlier − 1`. Direction: long when `m > 0`, short when `m < 0`. Score `50 + 1000 × |m|`,
//!   capped at 100 (a 1 % move scores 60, 5 % scores 100). The best `max_opens_per_hour`
//!   symbols scoring at least `min_score` get an OPEN plan worth `notional_usdt` at the close.
//! - **Kill score.** Market stress from the regime reference: `0.5 × atr_pct / 0.02 +
//!   0.5 × max(0, −24 h return) / 0.05`, capped at 1 — calm markets ≈ 0.2, a sharp sell-off ≥ 0.8.
//! - **Exits** (the harvest planner): each held position gets a close proposal written with
//!   `harvest_action`, as the harvest service writes them: `FULL_CLOSE_PROPOSED` at +3 %
//!   (take-profit), at −2 % (stop-loss) or after 48 h; `PARTIAL_50` once at +1.5 %.
//!
//! Plans are emitted as stream fields and go through the same strict parser as live plans.
//! Open plan ids are `o<hour><rank>_<SYMBOL>`, exit plan ids `x<hour>_<SYMBOL>`.

use governor_core::market::Kline;
use governor_core::snapshot::ExchangeState;
use governor_core::time::Timestamp;
use governor_core::types::{Side, Symbol};
use std::collections::{BTreeMap, BTreeSet};

/// The signal source's knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalConfig {
    /// At most this many open plans per hour.
    pub max_opens_per_hour: usize,
    /// Only symbols scoring at least this get a plan.
    pub min_score: f64,
    /// Each open plan's size in USDT at the close.
    pub notional_usdt: f64,
    /// Leverage the plans ask for.
    pub leverage: u32,
    /// Take-profit, as a fraction of entry.
    pub take_profit: f64,
    /// Partial take-profit (closes half, once).
    pub partial_take_profit: f64,
    /// Stop-loss, as a fraction of entry (positive number).
    pub stop_loss: f64,
    /// Close after this many hours.
    pub max_age_hours: i64,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            max_opens_per_hour: 3,
            min_score: 60.0,
            notional_usdt: 150.0,
            leverage: 5,
            take_profit: 0.03,
            partial_take_profit: 0.015,
            stop_loss: 0.02,
            max_age_hours: 48,
        }
    }
}

/// One plan as the stream would carry it.
pub type PlanFields = Vec<(String, String)>;

fn fields(pairs: &[(&str, String)]) -> PlanFields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The closes of `series` that closed by `now`, newest last.
fn closes_by(series: &[Kline], now: Timestamp) -> &[Kline] {
    let end = series.partition_point(|k| k.close_time() <= now);
    &series[..end]
}

/// Momentum over the last 24 bars, if there are 25 consecutive hourly bars.
fn momentum(closed: &[Kline]) -> Option<f64> {
    let n = closed.len();
    if n < 25 {
        return None;
    }
    let (now, then) = (&closed[n - 1], &closed[n - 25]);
    (now.open_time.0 - then.open_time.0 == 24 * 3_600_000).then(|| now.close / then.close - 1.0)
}

/// The sample model's score for a momentum.
pub fn score(m: f64) -> f64 {
    (50.0 + 1000.0 * m.abs()).min(100.0)
}

/// The sample model's kill score from the reference's ATR% and 24 h return.
pub fn kill_score(atr_pct: f64, return_24h: f64) -> f64 {
    (0.5 * atr_pct / 0.02 + 0.5 * (-return_24h).max(0.0) / 0.05).clamp(0.0, 1.0)
}

/// Open plans for the hour ending at `now`.
pub fn open_plans(
    cfg: &SignalConfig,
    klines: &BTreeMap<Symbol, Vec<Kline>>,
    universe: &BTreeSet<Symbol>,
    kill: f64,
    now: Timestamp,
) -> Vec<PlanFields> {
    let mut ranked: Vec<(f64, &Symbol, Side, f64)> = universe
        .iter()
        .filter_map(|s| {
            let closed = closes_by(klines.get(s)?, now);
            let m = momentum(closed)?;
            let side = if m > 0.0 { Side::Long } else { Side::Short };
            Some((score(m), s, side, closed.last()?.close))
        })
        .filter(|(sc, _, _, _)| *sc >= cfg.min_score)
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let hour = now.millis() / 3_600_000;
    ranked
        .into_iter()
        .take(cfg.max_opens_per_hour)
        .enumerate()
        .map(|(rank, (sc, s, side, close))| {
            let action = match side {
                Side::Long => "OPEN_LONG",
                Side::Short => "OPEN_SHORT",
            };
            fields(&[
                // The first 8 characters differ per hour and rank: a rotation's close plan is
                // named `rot_<first 8 of plan id>_<SYMBOL>`, so they must not repeat.
                ("plan_id", format!("o{hour}{rank}_{s}")),
                ("symbol", s.to_string()),
                ("action", action.to_owned()),
                ("decision", "EXECUTE".to_owned()),
                ("qty", format!("{:.8}", cfg.notional_usdt / close)),
                ("mark_price", close.to_string()),
                ("leverage", cfg.leverage.to_string()),
                ("score", format!("{sc:.2}")),
                ("kill_score", format!("{kill:.4}")),
                ("intent_created_at", (now.millis() / 1000).to_string()),
            ])
        })
        .collect()
}

/// Remembers which positions already had their partial take-profit.
#[derive(Clone, Debug, Default)]
pub struct ExitPlanner {
    partial_taken: BTreeSet<Symbol>,
    opened_at: BTreeMap<Symbol, Timestamp>,
}

impl ExitPlanner {
    /// Close proposals for the positions `account` holds at `now`.
    pub fn proposals(
        &mut self,
        cfg: &SignalConfig,
        account: &ExchangeState,
        now: Timestamp,
    ) -> Vec<PlanFields> {
        self.opened_at
            .retain(|s, _| account.positions.contains_key(s));
        self.partial_taken
            .retain(|s| account.positions.contains_key(s));
        let hour = now.millis() / 3_600_000;
        let mut out = Vec::new();
        for (s, p) in &account.positions {
            let opened = *self.opened_at.entry(s.clone()).or_insert(now);
            let pnl = (p.mark_price - p.entry_price) / p.entry_price * p.side.sign();
            let age_h = (now.millis() - opened.millis()) / 3_600_000;
            let action =
                if pnl >= cfg.take_profit || pnl <= -cfg.stop_loss || age_h >= cfg.max_age_hours {
                    "FULL_CLOSE_PROPOSED"
                } else if pnl >= cfg.partial_take_profit && !self.partial_taken.contains(s) {
                    self.partial_taken.insert(s.clone());
                    "PARTIAL_50"
                } else {
                    continue;
                };
            out.push(fields(&[
                ("plan_id", format!("x{hour}_{s}")),
                ("symbol", s.to_string()),
                ("harvest_action", action.to_owned()),
                ("decision", "EXECUTE".to_owned()),
                ("reduceOnly", "true".to_owned()),
            ]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_and_kill_score_follow_their_documented_formulas() {
        assert!((score(0.01) - 60.0).abs() < 1e-9);
        assert!((score(-0.02) - 70.0).abs() < 1e-9);
        assert_eq!(score(0.2), 100.0);
        // ATR 0.8 %, up day: 0.5 × 0.4 = 0.2. ATR 2 %, −5 % day: 0.5 + 0.5 = 1.0.
        assert!((kill_score(0.008, 0.01) - 0.2).abs() < 1e-12);
        assert_eq!(kill_score(0.02, -0.05), 1.0);
    }
}
