//! Drawdown halt with auto-resume: equity more than `drawdown.limit` below its peak over the
//! rolling window stops opens (`drawdown_halt`) and switches trading to REDUCING; after
//! `resume_after_secs`, once the drawdown is back under `resume_below`, trading resumes by
//! itself (or stays REDUCING until an operator resumes, with `auto_resume = false`).
//!
//! Two halves: the gate (per open plan, from the snapshot) and the monitor (`observe`, run by
//! the sweeper every second and by the replay every bar), which records the equity peaks and
//! switches the state even when no plan arrives.

use super::common::{refuse, Ctx, Refusal};
use crate::book::Book;
use crate::config::{Config, GateMode};
use crate::effects::{Effect, Guard};
pub use crate::halt::Observation;
use crate::halt::{halt_effects, monitor_ids, resume};
use crate::reason::BlockReason;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace};
use crate::types::TradingState;

const HOUR_MS: i64 = 3_600_000;

/// The equity peak of the window and the drawdown from it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Drawdown {
    /// The highest equity of the window (including now).
    pub peak: f64,
    /// `(peak − equity) / peak`.
    pub drawdown: f64,
}

/// The first hour of the window ending at `now`.
fn window_start(now: Timestamp, window_secs: u64) -> i64 {
    (now.millis() - window_secs as i64 * 1000).div_euclid(HOUR_MS)
}

/// The drawdown of `equity` from the window's peak.
pub fn drawdown(book: &Book, equity: f64, now: Timestamp, window_secs: u64) -> Drawdown {
    let from = window_start(now, window_secs);
    let peak = book
        .equity_peaks
        .range(from..)
        .map(|(_, e)| *e)
        .fold(equity, f64::max);
    Drawdown {
        peak,
        drawdown: if peak > 0.0 {
            (peak - equity) / peak
        } else {
            0.0
        },
    }
}

fn detail(d: &Drawdown, equity: f64, limit: f64, window_secs: u64) -> String {
    format!(
        "equity {equity:.2} is {:.2}% below its {:.0} h peak {:.2} (limit {:.2}%)",
        d.drawdown * 100.0,
        window_secs as f64 / 3600.0,
        d.peak,
        limit * 100.0
    )
}

/// The gate: refuses an open while the drawdown is above the limit.
pub fn check(ctx: &Ctx<'_>, equity: f64, trace: &mut Trace) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.drawdown;
    let d = drawdown(&ctx.snap.book, equity, ctx.now, cfg.window_secs);
    trace
        .line("drawdown_halt", Outcome::Pass)
        .num("equity", equity)
        .num("peak", d.peak)
        .num("drawdown", d.drawdown)
        .num("limit", cfg.limit)
        .int("window_secs", cfg.window_secs as i64);
    if !(d.drawdown <= cfg.limit) {
        let why = detail(&d, equity, cfg.limit, cfg.window_secs);
        return Err(refuse(trace, Refusal::new(BlockReason::DrawdownHalt, why)));
    }
    Ok(())
}

/// The monitor: what the equity seen at `now` changes. The plan id and symbol of its events
/// are `governor` and `ACCOUNT` (no plan caused them).
pub fn observe(
    book: &Book,
    state: TradingState,
    equity: f64,
    cfg: &Config,
    now: Timestamp,
) -> Vec<Observation> {
    let mode = cfg.gates.drawdown_halt;
    if mode == GateMode::Off || !(equity.is_finite() && equity > 0.0) {
        return Vec::new();
    }
    let dd_cfg = &cfg.drawdown;
    let hour = now.millis().div_euclid(HOUR_MS);
    let mut out = Vec::new();
    if book
        .equity_peaks
        .get(&hour)
        .is_none_or(|peak| equity > *peak)
    {
        out.push(Observation {
            guards: Vec::new(),
            effects: vec![Effect::RecordEquity {
                hour,
                equity,
                keep_from: window_start(now, dd_cfg.window_secs),
            }],
        });
    }
    if mode != GateMode::Enforce {
        return out;
    }
    let d = drawdown(book, equity, now, dd_cfg.window_secs);
    let (who, account) = monitor_ids();
    match (state, &book.halt) {
        (TradingState::Active, None) if !(d.drawdown <= dd_cfg.limit) => {
            let why = detail(&d, equity, dd_cfg.limit, dd_cfg.window_secs);
            out.push(Observation {
                guards: vec![Guard::TradingStateIs(TradingState::Active)],
                effects: halt_effects(BlockReason::DrawdownHalt, &who, &account, &why, now),
            });
        }
        (TradingState::Reducing, Some(h))
            if h.reason == BlockReason::DrawdownHalt
                && dd_cfg.auto_resume
                && now.secs_since(h.since) >= dd_cfg.resume_after_secs as f64
                && d.drawdown < dd_cfg.resume_below =>
        {
            let why = format!(
                "drawdown {:.2}% is back under {:.2}% after {:.0} s",
                d.drawdown * 100.0,
                dd_cfg.resume_below * 100.0,
                now.secs_since(h.since)
            );
            out.push(resume("drawdown_resume", why, now));
        }
        (TradingState::Active, Some(_)) => {
            // An operator resumed during the halt: the drawdown is acknowledged, the peak
            // starts again from here (else the halt would come straight back).
            out.push(Observation {
                guards: vec![Guard::TradingStateIs(TradingState::Active)],
                effects: vec![Effect::SetHalt(None), Effect::ResetEquity { hour, equity }],
            });
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{plan, run, NOW};

    /// Peaks of 1,000 USDT recorded `hours_ago` before NOW.
    fn gate_with_peak(hours_ago: i64, equity: f64) -> Result<(), BlockReason> {
        let mut book = Book::default();
        let hour = NOW.millis().div_euclid(HOUR_MS) - hours_ago;
        book.equity_peaks.insert(hour, 1_000.0);
        let snap = test_snapshot(book, None);
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        run(&open, &snap, &Config::default(), NOW, |ctx, t| {
            check(ctx, equity, t)
        })
    }

    #[test]
    fn ten_percent_below_the_peak_is_the_limit() {
        // (1,000 − 900) / 1,000 = 10 % exactly: at the limit passes.
        assert_eq!(gate_with_peak(1, 900.0), Ok(()));
        assert_eq!(gate_with_peak(1, 899.9), Err(BlockReason::DrawdownHalt));
        assert_eq!(gate_with_peak(0, 1_200.0), Ok(()));
        // An equity nobody can read is not a drawdown of zero.
        assert_eq!(gate_with_peak(1, f64::NAN), Err(BlockReason::DrawdownHalt));
    }

    #[test]
    fn a_peak_older_than_the_24_hour_window_is_forgotten() {
        // NOW is on the hour: the window starts 24 h back, in the hour 24 h ago.
        assert_eq!(gate_with_peak(24, 800.0), Err(BlockReason::DrawdownHalt));
        assert_eq!(gate_with_peak(25, 800.0), Ok(()));
    }
}
